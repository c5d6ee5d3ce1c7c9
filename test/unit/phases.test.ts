import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import { runPhases, type Phase, type PhaseEvent } from '../../src/core/install/phase-runner.js';

interface FakeHost {
  name: string;
  role: 'cp' | 'worker';
}
const cp1: FakeHost = { name: 'cp1', role: 'cp' };
const w1: FakeHost = { name: 'w1', role: 'worker' };
const w2: FakeHost = { name: 'w2', role: 'worker' };
const all = [cp1, w1, w2];

/** A context that records what happened, in order. */
interface Ctx {
  log: string[];
}

function phase(title: string, overrides: Partial<Phase<FakeHost, Ctx>> = {}): Phase<FakeHost, Ctx> {
  return {
    title,
    async run(host, ctx) {
      ctx.log.push(`${title}:${host.name}`);
    },
    dryRun: (host) => [`${title} on ${host.name}`],
    ...overrides,
  };
}

/** name → status of one phase's hosts */
function statuses(result: { hosts: { host: FakeHost; status: string }[] }): Record<string, string> {
  return Object.fromEntries(result.hosts.map((h) => [h.host.name, h.status]));
}

test('phases run in order, each on the hosts it selects, and results keep the host order', async () => {
  const ctx: Ctx = { log: [] };
  const result = await runPhases(
    [
      phase('prepare', { prepare: (c) => void c.log.push('prepare-once') }),
      phase('init', { hosts: (hs) => hs.filter((h) => h.role === 'cp') }),
      phase('join', { hosts: (hs) => hs.filter((h) => h.role === 'worker') }),
    ],
    all,
    { ctx, concurrency: 1 },
  );
  assert.equal(result.ok, true);
  assert.equal(result.cancelled, false);
  assert.deepEqual(ctx.log, ['prepare-once', 'prepare:cp1', 'prepare:w1', 'prepare:w2', 'init:cp1', 'join:w1', 'join:w2']);
  assert.deepEqual(result.phases.map((p) => [p.title, p.status, Object.keys(statuses(p))]), [
    ['prepare', 'ok', ['cp1', 'w1', 'w2']],
    ['init', 'ok', ['cp1']],
    ['join', 'ok', ['w1', 'w2']],
  ]);
});

test('hosts of a phase run in parallel up to the concurrency limit, never more', async () => {
  const hosts = Array.from({ length: 7 }, (_, i) => ({ name: `h${i}`, role: 'worker' as const }));
  for (const limit of [1, 3, 10]) {
    let inFlight = 0;
    let peak = 0;
    const result = await runPhases(
      [
        phase('work', {
          async run() {
            inFlight++;
            peak = Math.max(peak, inFlight);
            await nextTurn();
            await nextTurn();
            inFlight--;
          },
        }),
      ],
      hosts,
      { ctx: { log: [] }, concurrency: limit },
    );
    assert.equal(result.ok, true);
    assert.equal(peak, Math.min(limit, hosts.length), `limit ${limit}`);
  }
});

test('a failing host does not stop the others in its phase; later phases are not run', async () => {
  const ctx: Ctx = { log: [] };
  const boom = new Error('apt-get failed on w1');
  const result = await runPhases(
    [
      phase('install', {
        async run(host, c) {
          if (host === w1) throw boom;
          c.log.push(`install:${host.name}`);
        },
      }),
      phase('init'),
    ],
    all,
    { ctx, concurrency: 1 },
  );
  assert.equal(result.ok, false);
  assert.equal(result.cancelled, false);
  const [install, init] = result.phases;
  assert.equal(install?.status, 'failed');
  assert.deepEqual(statuses(install!), { cp1: 'ok', w1: 'failed', w2: 'ok' });
  assert.equal(install?.hosts[1]?.error, boom);
  assert.equal(install?.hosts[0]?.error, undefined);
  assert.equal(init?.status, 'not-run');
  assert.deepEqual(statuses(init!), { cp1: 'not-run', w1: 'not-run', w2: 'not-run' });
  assert.deepEqual(ctx.log, ['install:cp1', 'install:w2']);
});

test('a prepare that throws fails the phase without touching its hosts', async () => {
  const ctx: Ctx = { log: [] };
  const result = await runPhases(
    [
      phase('facts', {
        prepare() {
          throw new Error('no bundle');
        },
      }),
      phase('next'),
    ],
    all,
    { ctx },
  );
  assert.equal(result.ok, false);
  assert.equal(result.phases[0]?.status, 'failed');
  assert.match(String(result.phases[0]?.error), /no bundle/);
  assert.deepEqual(statuses(result.phases[0]!), { cp1: 'not-run', w1: 'not-run', w2: 'not-run' });
  assert.equal(result.phases[1]?.status, 'not-run');
  assert.deepEqual(ctx.log, []);
});

test('shouldRun false skips the host; an error in shouldRun fails it', async () => {
  const result = await runPhases(
    [
      phase('containerd', {
        shouldRun(host) {
          if (host === w2) throw new Error('cannot query dpkg');
          return host !== cp1;
        },
      }),
    ],
    all,
    { ctx: { log: [] } },
  );
  assert.deepEqual(statuses(result.phases[0]!), { cp1: 'skipped', w1: 'ok', w2: 'failed' });
  assert.match(String(result.phases[0]?.hosts[2]?.error), /cannot query dpkg/);
});

test('dry-run: prepare and dryRun are called, run never; the plan is per host', async () => {
  const ctx: Ctx = { log: [] };
  const result = await runPhases(
    [
      phase('upload', {
        prepare: (c) => void c.log.push('prepare'),
        shouldRun: (host) => host !== w2,
        async run() {
          throw new Error('run called in dry-run');
        },
        dryRun: (host) => [`upload bundle to ${host.name}`, `verify on ${host.name}`],
      }),
    ],
    all,
    { ctx, dryRun: true },
  );
  assert.equal(result.ok, true);
  assert.deepEqual(ctx.log, ['prepare']);
  assert.deepEqual(
    result.phases[0]?.hosts.map((h) => [h.host.name, h.status, h.plan]),
    [
      ['cp1', 'ok', ['upload bundle to cp1', 'verify on cp1']],
      ['w1', 'ok', ['upload bundle to w1', 'verify on w1']],
      ['w2', 'skipped', undefined],
    ],
  );
});

test('durations are recorded per host and per phase', async () => {
  const result = await runPhases(
    [phase('slow', { run: (host) => delay(host === cp1 ? 40 : 0) })],
    all,
    { ctx: { log: [] }, concurrency: 3 },
  );
  const slow = result.phases[0]!;
  assert.ok(slow.hosts[0]!.durationMs >= 35, `cp1 took ${slow.hosts[0]!.durationMs} ms`);
  assert.ok(slow.hosts[1]!.durationMs < 35, `w1 took ${slow.hosts[1]!.durationMs} ms`);
  assert.ok(slow.durationMs >= slow.hosts[0]!.durationMs);
  assert.ok(result.durationMs >= slow.durationMs);
});

test('cancellation: running steps see the signal, nothing new starts, the rest is not-run', async () => {
  const controller = new AbortController();
  const seen: string[] = [];
  const result = await runPhases(
    [
      phase('install', {
        async run(host, _ctx, signal) {
          seen.push(host.name);
          if (host === w1) {
            controller.abort(); // Ctrl-C arrives while w1 is being worked on
            if (signal.aborted) throw new Error('cancelled');
          }
        },
      }),
      phase('init'),
    ],
    all,
    { ctx: { log: [] }, concurrency: 1, signal: controller.signal },
  );
  assert.deepEqual(seen, ['cp1', 'w1']);
  assert.equal(result.cancelled, true);
  assert.equal(result.ok, false);
  assert.deepEqual(statuses(result.phases[0]!), { cp1: 'ok', w1: 'failed', w2: 'not-run' });
  assert.equal(result.phases[1]?.status, 'not-run');
});

test('an already-aborted signal runs nothing', async () => {
  const controller = new AbortController();
  controller.abort();
  const ctx: Ctx = { log: [] };
  const result = await runPhases([phase('a'), phase('b')], all, { ctx, signal: controller.signal });
  assert.deepEqual(ctx.log, []);
  assert.deepEqual(result.phases.map((p) => p.status), ['not-run', 'not-run']);
  assert.equal(result.cancelled, true);
});

test('events: phase-start, host-start/host-end per host, phase-end; nothing for phases that do not run', async () => {
  const events: string[] = [];
  const onEvent = (e: PhaseEvent<FakeHost>): void => {
    if (e.type === 'phase-start') events.push(`start ${e.title} [${e.hosts.map((h) => h.name).join(',')}]`);
    else if (e.type === 'host-start') events.push(`  ${e.title}:${e.host.name}`);
    else if (e.type === 'host-end') events.push(`  ${e.title}:${e.result.host.name} ${e.result.status}`);
    else events.push(`end ${e.result.title} ${e.result.status}`);
  };
  await runPhases(
    [
      phase('one', {
        hosts: (hs) => hs.slice(0, 2),
        async run(host) {
          if (host === w1) throw new Error('x');
        },
      }),
      phase('two'),
    ],
    all,
    { ctx: { log: [] }, concurrency: 1, onEvent },
  );
  assert.deepEqual(events, ['start one [cp1,w1]', '  one:cp1', '  one:cp1 ok', '  one:w1', '  one:w1 failed', 'end one failed']);
});

test('a rolling phase: its own concurrency caps the run\'s, and with stopOnFailure a failed host stops the rest', async () => {
  let inFlight = 0;
  let most = 0;
  const rolling = phase('roll', {
    concurrency: () => 1,
    stopOnFailure: true,
    async run(host, ctx) {
      inFlight++;
      most = Math.max(most, inFlight);
      await delay(5);
      inFlight--;
      ctx.log.push(`roll:${host.name}`);
      if (host === w1) throw new Error('w1 did not come back Ready');
    },
  });
  const ctx: Ctx = { log: [] };
  const result = await runPhases([rolling], all, { ctx, concurrency: 8 });
  assert.equal(most, 1, 'one host at a time');
  assert.deepEqual(statuses(result.phases[0]!), { cp1: 'ok', w1: 'failed', w2: 'not-run' });
  assert.deepEqual(ctx.log, ['roll:cp1', 'roll:w1'], 'no host was started after the failure');
});

test('finish runs once after the hosts whatever they did, not in dry-run; its error fails the phase and keeps the host results', async () => {
  const finished: string[] = [];
  const p = phase('hand-out', { finish: (c) => void finished.push(`finish after ${c.log.length}`), run: async (host) => { if (host === w2) throw new Error('w2 failed'); } });
  const r = await runPhases([p], all, { ctx: { log: [] } });
  assert.deepEqual(finished, ['finish after 0']);
  assert.equal(r.phases[0]!.status, 'failed');
  await runPhases([p], all, { ctx: { log: [] }, dryRun: true });
  assert.equal(finished.length, 1, 'not in dry-run');
  const failing = phase('hand-out', { finish: () => { throw new Error('could not remove the key'); } });
  const f = await runPhases([failing, phase('next')], all, { ctx: { log: [] } });
  assert.equal(f.phases[0]!.status, 'failed');
  assert.match((f.phases[0]!.error as Error).message, /could not remove the key/);
  assert.deepEqual(statuses(f.phases[0]!), { cp1: 'ok', w1: 'ok', w2: 'ok' });
  assert.equal(f.phases[1]!.status, 'not-run');
});
