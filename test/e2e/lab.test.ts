/**
 * The test-host lab itself: hosts, isolation, the lock, and that nothing survives `down`, a signal or a crashed run.
 * Needs root (netns, mounts, cgroups). Run: node --import tsx --test test/e2e/lab.test.ts
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_LAB_DIR, HOSTLAB_SCRIPT, LOCK_FILE, startLab, useLab } from '../lab/lab.js';

const LAB_TS = new URL('../lab/lab.ts', import.meta.url).pathname;

function sh(cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

/** Everything of a lab that could outlive it; [] when the machine is clean. */
function labTraces(): string[] {
  const mounts = sh('findmnt', ['-rn', '-o', 'TARGET']).stdout.split('\n').filter((m) => m.startsWith(`${DEFAULT_LAB_DIR}/`));
  const netns = sh('ip', ['netns', 'list']).stdout.split('\n').filter((l) => l.startsWith('hl-'));
  const nspawn = sh('pgrep', ['-af', 'systemd-nspawn']).stdout.split('\n').filter(Boolean);
  const cgroups = ['/sys/fs/cgroup/hostlab', '/sys/fs/cgroup/systemd/hostlab', '/sys/fs/cgroup/unified/hostlab'].filter(existsSync);
  const hostDirs = existsSync(join(DEFAULT_LAB_DIR, 'hosts')) ? [join(DEFAULT_LAB_DIR, 'hosts')] : [];
  return [
    ...mounts.map((m) => `mount ${m}`),
    ...netns.map((n) => `netns ${n}`),
    ...nspawn.map((p) => `process ${p}`),
    ...cgroups.map((c) => `cgroup ${c}`),
    ...hostDirs.map((d) => `dir ${d}`),
  ];
}

/** Resolves with the first stdout line of `child` that matches, rejects if it exits first. */
function lineFrom(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) resolve(line);
    });
    child.once('close', (code) => reject(new Error(`exited ${code} before printing ${pattern}: ${out}\n${err}`)));
  });
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
}

describe('a 3-host lab', () => {
  const lab = useLab(3);

  test('each host answers ssh as itself: hostname, machine-id, IP, systemd running', async () => {
    const seen = await Promise.all(
      lab().hosts.map(async (h) => {
        const r = await lab().ssh(h.index, 'hostname; cat /etc/machine-id; ip -4 -o addr show dev eth0; ps -p 1 -o comm=; systemctl is-system-running');
        const [hostname, machineId, addr, pid1, state] = r.stdout.trim().split('\n');
        return { h, hostname, machineId, addr, pid1, state };
      }),
    );
    assert.deepEqual(seen.map((s) => s.hostname), ['h1', 'h2', 'h3']);
    assert.deepEqual(lab().hosts.map((h) => h.ip), ['10.77.0.11', '10.77.0.12', '10.77.0.13']);
    for (const s of seen) {
      assert.match(s.machineId ?? '', /^[0-9a-f]{32}$/);
      assert.match(s.addr ?? '', new RegExp(`inet ${s.h.ip.replaceAll('.', '\\.')}/24 `));
      assert.equal(s.pid1, 'systemd');
      assert.equal(s.state, 'running');
      assert.deepEqual(s.h.failedUnits, []);
    }
    assert.equal(new Set(seen.map((s) => s.machineId)).size, 3, 'machine-ids must differ');
  });

  test('hosts reach each other on port 22, by IP and by name', async () => {
    const { hosts } = lab();
    const probes = hosts.map(async (from) => {
      const targets = hosts.filter((h) => h !== from).flatMap((to) => [to.ip, to.name]);
      const script = targets.map((t) => `echo ${t} $(timeout 3 bash -c 'exec 3<>/dev/tcp/${t}/22; head -c 8 <&3')`).join('; ');
      const r = await lab().ssh(from.index, script);
      assert.equal(r.stdout, targets.map((t) => `${t} SSH-2.0-\n`).join(''), `from ${from.name}`);
    });
    await Promise.all(probes);
  });

  test('hosts cannot reach the internet: no route past the bridge, a connect fails fast', async () => {
    const routes = await lab().ssh(1, 'ip -4 route show default; ip -6 route show default');
    assert.equal(routes.stdout.trim(), 'default via 10.77.0.1 dev eth0');
    const bridgeRoutes = await lab().inNetns(['ip', '-4', 'route', 'show']);
    assert.equal(bridgeRoutes.stdout.trim(), '10.77.0.0/24 dev br0 proto kernel scope link src 10.77.0.1');
    const started = Date.now();
    const r = await lab().ssh(1, "timeout 10 bash -c 'exec 3<>/dev/tcp/1.1.1.1/443'", { check: false });
    const ms = Date.now() - started;
    assert.equal(r.code, 1, `connect should fail, not time out: ${r.stderr}`);
    assert.match(r.stderr, /Network is unreachable/);
    assert.ok(ms < 5000, `connect took ${ms} ms`);
  });

  test('copyTo puts a file on a host, modes kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lab-test-'));
    const file = join(dir, 'hello.sh');
    writeFileSync(file, 'echo hello from $(hostname)\n', { mode: 0o750 });
    await lab().copyTo(2, file, '/root/hello.sh');
    const r = await lab().ssh(2, 'stat -c %a /root/hello.sh && bash /root/hello.sh');
    assert.equal(r.stdout, '750\nhello from h2\n');
  });

  test('a server started in hl-lab on the bridge IP is reachable from the hosts and stopped by stop()', async () => {
    const serve = `require('http').createServer((q, s) => s.end('upstream ' + q.url)).listen(8080, '10.77.0.1', () => console.log('listening'))`;
    const byLine = await lab().spawnInNetns([process.execPath, '-e', serve], { ready: { line: 'listening' } });
    const r = await lab().ssh(3, `exec 3<>/dev/tcp/10.77.0.1/8080; printf 'GET /x HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3`);
    assert.match(r.stdout, /^HTTP\/1\.1 200 OK/);
    assert.match(r.stdout, /upstream \/x$/);
    await byLine.stop();
    assert.notEqual(byLine.child.exitCode ?? byLine.child.signalCode, null);
    const byUrl = await lab().spawnInNetns([process.execPath, '-e', serve], { ready: { url: 'http://10.77.0.1:8080/' } });
    const again = await lab().inNetns(['curl', '-sS', 'http://10.77.0.1:8080/y']);
    assert.equal(again.stdout, 'upstream /y');
    await byUrl.stop();
  });

  test('systemState reports a degraded host with its failed units', async () => {
    await lab().ssh(2, 'systemd-run --wait --quiet --unit=lab-test-broken /bin/false || true');
    try {
      assert.deepEqual(await lab().systemState(2), { state: 'degraded', failedUnits: ['lab-test-broken.service'] });
    } finally {
      await lab().ssh(2, 'systemctl reset-failed lab-test-broken.service');
    }
    assert.deepEqual(await lab().systemState(2), { state: 'running', failedUnits: [] });
  });

  test('ssh with check throws naming the host and stderr; failures of a dead server are reported', async () => {
    await assert.rejects(lab().ssh(2, 'echo oops >&2; exit 3'), /ssh h2 \(10\.77\.0\.12\).*exit code 3\noops/s);
    await assert.rejects(lab().ssh(4, 'true'), /no lab host 4: hosts are numbered 1\.\.3/);
    await assert.rejects(
      lab().spawnInNetns(['bash', '-c', 'echo boom; exit 7'], { ready: { line: 'never' } }),
      /exited \(code 7\) before it was ready; output:\nboom/,
    );
  });

  test('the lock refuses a second lab while this one is up', async () => {
    const other = sh('bash', [HOSTLAB_SCRIPT, 'up', '1']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, new RegExp(`the lab is in use: ${LOCK_FILE} is held by pid ${process.pid} `));
    await assert.rejects(startLab(1), /this process already has a lab up/);
    const r = await lab().ssh(1, 'hostname'); // untouched by the refused attempts
    assert.equal(r.stdout, 'h1\n');
  });
});

describe('teardown', () => {
  test('startLab fails clearly while another process holds the lab lock, or waits for it with lockWaitMs', async () => {
    const holder = spawn('flock', ['-n', LOCK_FILE, '-c', `echo 'pid 4242 (fake holder)' > ${LOCK_FILE}; echo locked; exec sleep 60`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: flock and the sleep holding the lock die together
    });
    const exited = exitOf(holder);
    const releaseHolder = async () => {
      process.kill(-(holder.pid ?? 0), 'SIGKILL');
      await exited;
    };
    try {
      await lineFrom(holder, /^locked$/);
      await assert.rejects(startLab(1), /another test-host lab is in use on this machine: .* held by pid 4242 \(fake holder\)/);
      const waiting = startLab(1, { lockWaitMs: 60_000 });
      await releaseHolder();
      const lab = await waiting;
      try {
        assert.equal((await lab.ssh(1, 'hostname')).stdout, 'h1\n');
      } finally {
        await lab.down();
      }
    } finally {
      if (holder.exitCode === null && holder.signalCode === null) await releaseHolder();
    }
    assert.deepEqual(labTraces(), []);
  });

  test('SIGTERM to a process using the lab tears the lab down', async () => {
    const script = `import { startLab } from ${JSON.stringify(LAB_TS)};
      const lab = await startLab(1); console.log('up ' + lab.hosts[0].ip); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(await lineFrom(child, /^up /), 'up 10.77.0.11');
    assert.notDeepEqual(labTraces(), []);
    child.kill('SIGTERM');
    assert.deepEqual(await exitOf(child), { code: 143, signal: null });
    assert.deepEqual(labTraces(), []);
  });

  test('a process that dies of an uncaught error with the lab up takes the lab down', async () => {
    const script = `import { startLab } from ${JSON.stringify(LAB_TS)};
      await startLab(1); console.log('up'); setTimeout(() => { throw new Error('test crashed'); }, 10);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    await lineFrom(child, /^up$/);
    assert.deepEqual(await exitOf(child), { code: 1, signal: null });
    assert.deepEqual(labTraces(), []);
  });

  test('up after a crash (nspawn killed -9, everything left) works, and down leaves nothing', async (t) => {
    const crashed = sh('bash', [HOSTLAB_SCRIPT, 'up', '2']);
    assert.equal(crashed.code, 0, crashed.stderr);
    // a server of the crashed run, still in hl-lab
    const orphan = spawn('bash', [HOSTLAB_SCRIPT, 'exec', 'sleep', '4711'], { detached: true, stdio: 'ignore' });
    orphan.unref();
    const nspawns = sh('pgrep', ['-x', 'systemd-nspawn']).stdout.split('\n').filter(Boolean);
    assert.equal(nspawns.length, 2);
    sh('kill', ['-9', ...nspawns]);
    await until(() => sh('pgrep', ['-f', 'sleep 4711']).code === 0, 'the hl-lab server to start');
    assert.ok(labTraces().some((x) => x.startsWith('mount ')) && labTraces().some((x) => x === 'netns hl-lab'));

    let started = Date.now();
    const lab = await startLab(3);
    const upMs = Date.now() - started;
    t.diagnostic(`startLab(3) over a crashed 2-host lab: ${upMs} ms`);
    assert.ok(upMs < 60_000);
    try {
      const names = await Promise.all(lab.hosts.map((h) => lab.ssh(h.index, 'hostname')));
      assert.deepEqual(names.map((r) => r.stdout.trim()), ['h1', 'h2', 'h3']);
      assert.equal(sh('pgrep', ['-f', 'sleep 4711']).code, 1, 'the crashed run\'s server must be gone');
    } finally {
      started = Date.now();
      await lab.down();
      t.diagnostic(`down of 3 hosts: ${Date.now() - started} ms`);
    }
    assert.ok(Date.now() - started < 60_000);
    assert.deepEqual(labTraces(), []);
    assert.deepEqual(readdirSync(DEFAULT_LAB_DIR).sort(), ['base', 'keys']);
    assert.equal(sh('flock', ['-n', LOCK_FILE, 'true']).code, 0, 'the lock must be released');
  });
});
