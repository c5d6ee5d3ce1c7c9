/**
 * The install's output for a few hosts and for hundreds: a line per host, or a count line per phase; failures
 * always named by host and hosts-file line; bytes reported by the phases adding up to a throughput and kept per
 * host for --json.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InstallContext, InstallHost } from '../../src/core/install/context.js';
import { countBytes, formatTally, newTally, PhaseReporter, tallyEvent, type ReporterOptions } from '../../src/core/install/phase-report.js';
import { runPhases, type Phase } from '../../src/core/install/phase-runner.js';
import { formatSummary, installReporter, summarize } from '../../src/core/install/summary.js';
import { Secrets } from '../../src/core/ssh/command.js';
import type { LiveLine } from '../../src/util/progress.js';

interface Host {
  name: string;
  line: number;
}
const hosts = (n: number): Host[] => Array.from({ length: n }, (_, i) => ({ name: `w${i + 1}`, line: i + 2 }));

/** A reporter on a clock the test moves, printing into `lines`. */
function reporter(overrides: Partial<ReporterOptions<Host>> = {}) {
  const clock = { now: 0 };
  const lines: string[] = [];
  const r = new PhaseReporter<Host>({
    log: (l) => lines.push(l),
    hostsFile: 'site.txt',
    ref: (h) => ({ label: h.name, line: h.line }),
    heading: (title) => `• ${title}`,
    indent: '  ',
    hostLine: (res) => (res.status === 'ok' ? `  ✓ ${res.host.name}` : `  – ${res.host.name}: already done`),
    now: () => clock.now,
    ...overrides,
  });
  return { r, clock, lines };
}

/** A phase whose hosts each take `stepMs` of the test's clock; those named in `fail` fail, in `skip` are done already. */
function phase(clock: { now: number }, opts: { stepMs: number; fail?: string[]; skip?: string[]; bytes?: number; r?: PhaseReporter<Host> }): Phase<Host, object> {
  return {
    title: 'Upload the bundle',
    shouldRun: (h) => !opts.skip?.includes(h.name),
    async run(h) {
      clock.now += opts.stepMs;
      if (opts.bytes) opts.r?.bytes(h, opts.bytes);
      opts.r?.note(h, `sent to ${h.name}`);
      if (opts.fail?.includes(h.name)) throw new Error(`${h.name}: \`apt-get install\` exited with 100`);
    },
    dryRun: () => [],
  };
}

test('a count line names every state that has hosts, the time, and the bytes with their aggregate rate', () => {
  let t = newTally(120);
  for (let i = 0; i < 10; i++) t = tallyEvent(t, { type: 'host-start', title: 'p', host: i });
  t = tallyEvent(t, { type: 'host-end', title: 'p', result: { host: 0, status: 'ok', durationMs: 1 } });
  t = tallyEvent(t, { type: 'host-end', title: 'p', result: { host: 1, status: 'skipped', durationMs: 1 } });
  t = tallyEvent(t, { type: 'host-end', title: 'p', result: { host: 2, status: 'failed', durationMs: 1 } });
  assert.equal(formatTally(t, 65_000), '3/120 hosts: 1 ok, 1 already done, 1 failed, 7 running, 110 waiting; 1m05s');
  assert.equal(formatTally({ ...t, bytes: 300 * 2 ** 20 }, 10_000), '3/120 hosts: 1 ok, 1 already done, 1 failed, 7 running, 110 waiting; 10s, 300.0 MiB at 30.0 MiB/s');
  assert.equal(formatTally({ ...newTally(4), ok: 2, notRun: 2 }, 0), '4/4 hosts: 2 ok, 2 not run; 0s');
});

test('few hosts: a line per host as before, a failure naming its hosts-file line, notes printed under the phase', async () => {
  const { r, clock, lines } = reporter();
  const result = await runPhases([phase(clock, { stepMs: 1000, fail: ['w2'], skip: ['w3'], r })], hosts(3), { ctx: {}, concurrency: 1, onEvent: r.onEvent });
  assert.equal(result.ok, false);
  assert.deepEqual(lines, [
    '• Upload the bundle',
    '    w1: sent to w1',
    '  ✓ w1',
    '    w2: sent to w2',
    '  ✗ w2 [site.txt:3]: w2: `apt-get install` exited with 100',
    '  – w3: already done',
  ]);
});

test('many hosts: count lines at most every interval and one at the end instead of a line per host; failures named as they happen', async () => {
  const { r, clock, lines } = reporter({ intervalMs: 5000 });
  const many = hosts(20);
  const result = await runPhases([phase(clock, { stepMs: 1000, fail: ['w7', 'w15'], skip: ['w1', 'w2'], bytes: 2 ** 20, r })], many, { ctx: {}, concurrency: 1, onEvent: r.onEvent });
  assert.equal(result.phases[0]!.status, 'failed');
  assert.equal(lines[0], '• Upload the bundle');
  assert.ok(!lines.some((l) => /✓ w\d|sent to/.test(l)), `no per-host lines:\n${lines.join('\n')}`);
  assert.deepEqual(lines.filter((l) => l.includes('✗ w')), [
    '  ✗ w7 [site.txt:8]: w7: `apt-get install` exited with 100',
    '  ✗ w15 [site.txt:16]: w15: `apt-get install` exited with 100',
  ]);
  const counts = lines.filter((l) => l.startsWith('  … '));
  // 18 hosts ran, a second of the clock each: a count every 5s at most
  assert.ok(counts.length >= 2 && counts.length <= 18 / 5, counts.join('\n'));
  // printed as a host ends: the skipped ones took no time, five ran (w7 failing)
  assert.equal(counts[0], '  … 7/20 hosts: 4 ok, 2 already done, 1 failed, 13 waiting; 5s, 5.0 MiB at 1.0 MiB/s');
  assert.equal(lines.at(-1), '  ✗ 20/20 hosts: 16 ok, 2 already done, 2 failed; 18s, 18.0 MiB at 1.0 MiB/s');
  assert.equal(r.detail('Upload the bundle', many[4]!)?.bytes, 2 ** 20);
  assert.deepEqual(r.detail('Upload the bundle', many[4]!)?.notes, ['sent to w5']);
  assert.equal(r.detail('Upload the bundle', many[0]!), undefined, 'a host already done reported nothing');
});

test('many hosts with nothing changing: a count line at the heartbeat, to show time passing', () => {
  const { r, clock, lines } = reporter({ intervalMs: 5000, heartbeatMs: 30_000 });
  const many = hosts(10);
  r.onEvent({ type: 'phase-start', title: 'Join the workers', hosts: many });
  for (const h of many) r.onEvent({ type: 'host-start', title: 'Join the workers', host: h });
  clock.now = 6000;
  r.tick();
  clock.now = 12_000;
  r.tick(); // no change since the last line, within the heartbeat
  clock.now = 36_000;
  r.tick();
  r.close();
  assert.deepEqual(lines, ['• Join the workers', '  … 0/10 hosts: 0 ok, 10 running; 6s', '  … 0/10 hosts: 0 ok, 10 running; 36s']);
});

test('on a terminal, many hosts redraw one line; printed lines go above it; few hosts leave it alone', async () => {
  const calls: string[] = [];
  const live: LiveLine = { update: (t) => void calls.push(`update ${t}`), clear: () => void calls.push('clear'), stop: () => void calls.push('stop') };
  const { r, clock, lines } = reporter({ live, log: (l) => calls.push(`log ${l}`) });
  await runPhases([phase(clock, { stepMs: 1000, fail: ['w3'], r })], hosts(9), { ctx: {}, concurrency: 1, onEvent: r.onEvent });
  assert.deepEqual(lines, []);
  assert.equal(calls[0], 'log • Upload the bundle');
  assert.equal(calls[1], 'update Upload the bundle: 0/9 hosts: 0 ok, 9 waiting; 0s');
  const failure = calls.indexOf('log   ✗ w3 [site.txt:4]: w3: `apt-get install` exited with 100');
  assert.equal(calls[failure - 1], 'clear', 'the live line is cleared before a line is printed');
  assert.equal(calls[failure + 1], 'update Upload the bundle: 3/9 hosts: 2 ok, 1 failed, 6 waiting; 3s');
  assert.deepEqual(calls.slice(-2), ['stop', 'log   ✗ 9/9 hosts: 8 ok, 1 failed; 9s']);
  assert.ok(!calls.some((c) => /✓ w/.test(c)));

  calls.length = 0;
  await runPhases([phase(clock, { stepMs: 1000, r })], hosts(2), { ctx: {}, concurrency: 1, onEvent: r.onEvent });
  assert.ok(!calls.some((c) => /^(update|clear|stop)/.test(c)), calls.join('\n'));
});

test('many hosts cut short: the last count says which hosts never ran', async () => {
  const { r, clock, lines } = reporter();
  const stop = new AbortController();
  const cut: Phase<Host, object> = {
    title: 'Install packages',
    async run(h) {
      clock.now += 1000;
      if (h.name === 'w4') stop.abort();
    },
    dryRun: () => [],
  };
  const result = await runPhases([cut], hosts(12), { ctx: {}, concurrency: 2, signal: stop.signal, onEvent: r.onEvent });
  assert.equal(result.cancelled, true);
  assert.equal(lines.at(-1), '  ✗ 12/12 hosts: 4 ok, 8 not run; 4s');
});

test('countBytes turns a running total into bytes moved: a resumed prefix is not counted, a restart starts anew', () => {
  const moved: number[] = [];
  const onProgress = countBytes({ bytes: (_h, n) => void moved.push(n), note() {} }, 'h1');
  for (const done of [400, 500, 900, 0, 300]) onProgress(done);
  assert.deepEqual(moved, [100, 400, 300]);
});

test('--json: per phase and host its line, status, time, error, bytes and notes; the summary names failures by hosts-file line', () => {
  const secrets = new Secrets();
  secrets.add('s3cret-token');
  const node = (i: number): InstallHost =>
    ({ label: `w${i} (10.0.0.${i})`, name: `w${i}`, spec: { address: `10.0.0.${i}`, role: i === 1 ? 'control-plane' : 'worker', line: i + 1 } }) as InstallHost;
  const nodes = Array.from({ length: 12 }, (_, i) => node(i + 1));
  const options = { hostsFile: 'site.txt', dryRun: false, log: () => {} } as unknown as InstallContext['options'];
  const ctx = { options, hosts: nodes, firstControlPlane: nodes[0], secrets, fallbacks: new Map() } as unknown as InstallContext;
  const report = installReporter(options);
  report.onEvent({ type: 'phase-start', title: 'Upload the bundle', hosts: nodes });
  report.bytes(nodes[1]!, 3000);
  report.bytes(nodes[1]!, 1000);
  report.note(nodes[1]!, 'sent 4 KiB, token s3cret-token');
  const results = nodes.map((host, i) =>
    i === 4 ? { host, status: 'failed' as const, error: new Error('w5: `kubeadm join` exited with 1 (s3cret-token)'), durationMs: 2500 } : { host, status: 'ok' as const, durationMs: 1000 },
  );
  report.onEvent({ type: 'phase-end', result: { title: 'Upload the bundle', status: 'failed', hosts: results, durationMs: 3000 } });
  const summary = summarize(ctx, { ok: false, cancelled: false, phases: [{ title: 'Upload the bundle', status: 'failed', hosts: results, durationMs: 3000 }], durationMs: 3000 }, Date.now(), report);

  const json = JSON.parse(JSON.stringify(summary)) as typeof summary;
  assert.equal(json.hostsFile, 'site.txt');
  const p = json.phases[0]!;
  assert.equal(p.bytes, 4000);
  assert.deepEqual(p.hosts[1], { host: 'w2 (10.0.0.2)', line: 3, status: 'ok', seconds: 1, bytes: 4000, notes: ['sent 4 KiB, token ***'] });
  assert.deepEqual(p.hosts[4], { host: 'w5 (10.0.0.5)', line: 6, status: 'failed', seconds: 2.5, error: 'w5: `kubeadm join` exited with 1 (***)' });

  const text = formatSummary(summary);
  assert.match(text, /^Install failed on 1 host\(s\)/);
  assert.match(text, /^ {2}w5 \(10\.0\.0\.5\) \[site\.txt:6\] — Upload the bundle:\n {4}w5: `kubeadm join` exited with 1 \(\*\*\*\)$/m);
  assert.match(text, /^Nodes: 12 \(1 control-plane, 11 worker; each one with --json\)$/m);
  assert.doesNotMatch(text, /^ {2}w7 /m, 'no line per node with many');
  assert.match(text, /Upload the bundle\s+failed\s+3\.0s {2}3\.9 KiB at 1\.3 KiB\/s/);
});
