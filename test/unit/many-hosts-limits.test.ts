/**
 * Hundreds of hosts, bounded: the default --concurrency, SSH handshakes through the limiter, file descriptors
 * checked before connecting and named when they run out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Command } from 'commander';
import { createProgram } from '../../src/cli/program.js';
import { connectAll } from '../../src/core/install/connect.js';
import type { HostSpec } from '../../src/core/install/hosts.js';
import { checkOpenFiles, DEFAULT_CONCURRENCY, openFilesNeeded } from '../../src/core/install/limits.js';
import { runPhases } from '../../src/core/install/phase-runner.js';
import { describeFailure, UserError } from '../../src/util/errors.js';
import { openFilesLimit, tooManyOpenFiles } from '../../src/util/open-files.js';

const specs = (n: number): HostSpec[] => Array.from({ length: n }, (_, i) => ({ address: `10.0.${i >> 8}.${i & 255}`, role: 'worker', line: i + 1 }) as HostSpec);

/** Counts what is in flight at once. */
function gauge() {
  let now = 0;
  let max = 0;
  return {
    enter: () => void (max = Math.max(max, ++now)),
    leave: () => void now--,
    get max() {
      return max;
    },
  };
}

test('the default concurrency is below sshd\'s MaxStartups of 10, for install and reset alike', () => {
  assert.ok(DEFAULT_CONCURRENCY <= 10);
  const program = createProgram();
  for (const name of ['install', 'reset']) {
    const command = program.commands.find((c: Command) => c.name() === name)!;
    const option = command.options.find((o) => o.long === '--concurrency')!;
    assert.equal(option.defaultValue, String(DEFAULT_CONCURRENCY), name);
    assert.match(option.description, /MaxStartups/, `${name} --help says why`);
  }
});

test('the runner works on DEFAULT_CONCURRENCY hosts at once when not told otherwise', async () => {
  const inFlight = gauge();
  const hosts = Array.from({ length: 3 * DEFAULT_CONCURRENCY }, (_, i) => i);
  const result = await runPhases(
    [{ title: 'p', run: async () => { inFlight.enter(); await delay(5); inFlight.leave(); }, dryRun: () => [] }],
    hosts,
    { ctx: {} },
  );
  assert.equal(result.ok, true);
  assert.equal(inFlight.max, DEFAULT_CONCURRENCY);
});

test('connecting to many hosts: never more handshakes in flight than the concurrency, examining outside the limit', async () => {
  const handshakes = gauge();
  const examining = gauge();
  const closed: string[] = [];
  const hosts = await connectAll(specs(40), {
    hostsFile: 'hosts.txt',
    concurrency: 4,
    async connect(spec) {
      handshakes.enter();
      await delay(2);
      handshakes.leave();
      return { address: spec.address, close: async () => void closed.push(spec.address) };
    },
    async examine(spec, conn) {
      examining.enter();
      await delay(20);
      examining.leave();
      return `${conn.address}@${spec.line}`;
    },
  });
  assert.equal(handshakes.max, 4);
  assert.ok(examining.max > 4, `examining is not held to the handshake limit (${examining.max})`);
  assert.equal(hosts.length, 40);
  assert.equal(hosts[7], '10.0.0.7@8', 'results in the hosts-file order');
  assert.deepEqual(closed, [], 'connections stay open for the install');
});

test('hosts that cannot be reached are named with their hosts-file line, and every connection made is closed', async () => {
  const closed: string[] = [];
  const failing = new Set(['10.0.0.3', '10.0.0.9']);
  const attempt = connectAll(specs(12), {
    hostsFile: 'site/hosts.txt',
    concurrency: 3,
    async connect(spec) {
      await delay(1);
      if (failing.has(spec.address)) throw new Error('connection refused');
      return { close: async () => void closed.push(spec.address) };
    },
    examine: async () => 'ok',
  });
  await assert.rejects(attempt, (err: Error) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /^cannot reach 2 of 12 host\(s\); nothing was changed/);
    assert.match(err.message, /10\.0\.0\.3 \(site\/hosts\.txt:4\): connection refused/);
    assert.match(err.message, /10\.0\.0\.9 \(site\/hosts\.txt:10\): connection refused/);
    return true;
  });
  assert.equal(closed.length, 10);
});

test('open files: one per host plus the hosts worked on; an install that would run out is refused before connecting', () => {
  assert.equal(openFilesNeeded(500, 8) - openFilesNeeded(100, 8), 400, 'one socket per host');
  assert.equal(openFilesNeeded(3, 8), openFilesNeeded(3, 100), 'no more hosts in flight than there are hosts');
  assert.doesNotThrow(() => checkOpenFiles(900, 8, 1024));
  assert.doesNotThrow(() => checkOpenFiles(5000, 8, undefined), 'no limit known (not Linux): left to the EMFILE message');
  assert.throws(
    () => checkOpenFiles(1000, 8, 1024),
    (err: UserError) => /1000 hosts need about 1080 open files .* may open 1024 .*nothing was changed/.test(err.message) && /ulimit -Hn/.test(err.hint ?? ''),
  );
});

test('node raised this process\'s soft limit of open files to its hard limit', async () => {
  const limits = await import('node:fs/promises').then((fs) => fs.readFile('/proc/self/limits', 'utf8')).catch(() => undefined);
  if (!limits) return; // not Linux
  const [, soft, hard] = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits)!;
  assert.equal(soft, hard);
  assert.equal(openFilesLimit(limits), soft === 'unlimited' ? Infinity : Number(soft));
  assert.equal(openFilesLimit('Max processes 5 5\nMax open files            1024                 4096                 files\n'), 1024);
  assert.equal(openFilesLimit('nothing here'), undefined);
});

test('running out of file descriptors is named, in a connect error and anywhere else', () => {
  assert.match(tooManyOpenFiles('EMFILE')!, /too many open files in this process .*one SSH connection per host/);
  assert.match(tooManyOpenFiles('ENFILE')!, /system-wide/);
  assert.equal(tooManyOpenFiles('ECONNRESET'), undefined);
  const err = Object.assign(new Error('connect EMFILE 10.0.0.5:22 - Local (undefined:undefined)'), { code: 'EMFILE' });
  const { exitCode, text } = describeFailure(err, false);
  assert.equal(exitCode, 2);
  assert.match(text, /^error: connect EMFILE 10\.0\.0\.5:22 .*: too many open files in this process/);
});
