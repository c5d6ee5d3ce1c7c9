/**
 * Resume from any moment (issue #10): the CLI is killed with SIGKILL — an operator's laptop dying, a VPN
 * dropping — at random moments inside every phase of an install on a 3-host lab (2 control planes behind a
 * --vip, 1 worker: the registry, HA, init and both join phases all run), and the next plain re-run must go on.
 * Each phase is hit twice: early (while its first host command may be starting) and later (while its work runs
 * on the hosts, which go on without the CLI). Afterwards kubeadm init ran exactly once (or once more after a
 * `kubeadm reset` the install did itself and said so), every node is registered and pulls pause through the
 * seeded registry, and a re-run has nothing to do. Then the same for `bundle reset`.
 *
 * CHAOS_SEED replays a run (the kill delays come from it); the kill points are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { buildTestBundle, type TestBundle } from '../helpers/bundle.js';
import { CLI_MAIN } from '../helpers/cli.js';
import { labCli } from '../helpers/lab-cli.js';
import { useLab, type Lab } from '../lab/lab.js';

const LOG = '/var/log/kube-stub.log';
const VIP = '10.77.0.100';
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);

/** The phases of this layout, in order, as install prints them ("• <title>"). */
const PHASES = [
  'Upload the bundle to the registry host',
  'Hand out the bundle inside the site',
  'Check the bundle on the hosts',
  'Prepare the hosts',
  'Install packages from the bundle',
  'Seed and start the registry',
  'Configure the container runtime',
  'Set up the control-plane address',
  'kubeadm init on the first control plane',
  'Wait for the API server through the control-plane address',
  'Apply flannel',
  'Join the other control planes',
  'Join the workers',
  'Check the cluster',
];

function random(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

interface KillPoint {
  /** the phase the kill aimed at, and the one the CLI had last announced when it died */
  target: string;
  phase: string;
  delayMs: number;
  /** false: the CLI ended on its own before the kill (nothing left to do in that phase) */
  killed: boolean;
}

/**
 * Run the CLI in the lab's network namespace and SIGKILL it `delayMs` after it announces the phase `target` (or
 * any later one), or at once when the next phase starts first. Resolves with where it died; when it ends on its own
 * first, with its exit code.
 */
function runAndKill(lab: Lab, args: string[], target: string, delayMs: number): Promise<KillPoint & { code: number | null; stderr: string }> {
  const argv = ['netns', 'exec', lab.netns, process.execPath, '--import', 'tsx', CLI_MAIN, ...args, '-i', lab.keyFile, '--known-hosts', lab.knownHostsFile];
  const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const at = PHASES.indexOf(target);
  let stderr = '';
  let phase = '(before the first phase)';
  let timer: NodeJS.Timeout | undefined;
  let killed = false;
  child.stdout.resume();
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const [, title] of stderr.matchAll(/^• (.+)$/gm)) {
      const i = PHASES.findIndex((p) => title!.startsWith(p));
      if (i >= 0) phase = PHASES[i]!;
      if (i >= at && !timer) {
        timer = setTimeout(() => {
          killed = child.kill('SIGKILL');
        }, delayMs);
      } else if (i > at && timer && !killed) {
        // the target phase ended before the delay did: kill now, at the next phase's start, so that a delay too
        // long for this phase never lets the run finish the phases the next targets are meant to hit
        clearTimeout(timer);
        killed = child.kill('SIGKILL');
      }
    }
  });
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ target, phase, delayMs, killed, code, stderr });
    });
  });
}

describe('resume from any moment: the CLI killed inside every phase', () => {
  let dir: string;
  let bundle: TestBundle;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-chaos-'));
    bundle = await buildTestBundle(dir, ['--runtime', 'containerd', '--ha']);
  });
  const lab = useLab(3, { lockWaitMs: 600_000 });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const hostsFile = () => {
    const l = lab();
    const file = join(dir, 'hosts.txt');
    writeFileSync(file, `${l.hosts[0]!.ip} control-plane\n${l.hosts[1]!.ip} control-plane\n${l.hosts[2]!.ip} worker\n`);
    return file;
  };
  const installArgs = () => ['install', '--hosts', hostsFile(), '--vip', VIP, '--bundle', bundle.file, '--pubkey', bundle.pubkey];

  test(`install: killed twice in each of ${PHASES.length} phases, the next plain re-run completes (seed ${SEED})`, async (t: TestContext) => {
    const l = lab();
    const next = random(SEED);
    const points: KillPoint[] = [];
    const outputs: string[] = [];
    for (const target of PHASES) {
      // early: within the first command; later: while the hosts work. A kill that lands after the phase ended (it
      // was quicker than the delay) is kept as a kill point of the later phase, and tried again sooner, so that
      // each phase gets its own.
      for (let delayMs of [next(400), 400 + next(4000)]) {
        for (let attempt = 0; attempt < 4; attempt++, delayMs = Math.floor(delayMs / 4)) {
          const r = await runAndKill(l, installArgs(), target, delayMs);
          points.push(r);
          outputs.push(r.stderr);
          if (!r.killed) {
            assert.ok(r.code === 0 || r.stderr.includes(`• ${target}`), `the run aimed at "${target}" ended with ${r.code} before reaching it:\n${r.stderr}`);
            break;
          }
          if (r.phase === target) break;
        }
      }
    }
    const killed = points.filter((p) => p.killed);
    t.diagnostic(`${killed.length} kill points survived: ${killed.map((p) => `${p.phase} +${p.delayMs}ms`).join('; ')}`);
    assert.ok(killed.length >= 20, `only ${killed.length} of ${points.length} runs were killed before they ended`);
    const hit = new Set(killed.map((p) => p.phase));
    for (const phase of ['Install packages from the bundle', 'Seed and start the registry', 'Set up the control-plane address', 'kubeadm init on the first control plane']) {
      assert.ok(hit.has(phase), `no kill landed inside "${phase}"`);
    }
    assert.ok(hit.has('Join the other control planes') || hit.has('Join the workers'), 'no kill landed inside a join');
    t.diagnostic(`${hit.size} of ${PHASES.length} phases hit: ${PHASES.filter((p) => hit.has(p)).join('; ')}`);

    const final = await labCli(l, installArgs());
    assert.equal(final.code, 0, final.stdout + final.stderr);
    assert.match(final.stdout, /Cluster installed|Nothing to do/);

    // kubeadm init ran once, or once more after each reset that the install did itself and said it did
    const cpLog = (await l.ssh(1, `cat ${LOG}`)).stdout;
    const inits = cpLog.match(/ kubeadm init --config /g)?.length ?? 0;
    const resets = cpLog.match(/ kubeadm reset /g)?.length ?? 0;
    assert.equal(inits, 1 + resets, `kubeadm init ran ${inits} times with ${resets} resets:\n${cpLog}`);
    // each reset the install did was said, on the run that did it (a run killed between saying it and doing it
    // says it again on the next one: it may be said more often than done, never less)
    const said = [...outputs, final.stderr].join('\n').match(/kubeadm reset -f, then kubeadm init again/g)?.length ?? 0;
    assert.ok(said >= resets, `${resets} kubeadm reset(s) before a second init, ${said} reported`);
    t.diagnostic(`kubeadm init ran ${inits} time(s), after ${resets} reset(s) by the install`);

    const nodes = (await l.ssh(1, 'kubectl get nodes')).stdout;
    for (const n of ['h1', 'h2', 'h3']) assert.match(nodes, new RegExp(`^${n}\\s`, 'm'));
    for (const i of [1, 2, 3]) {
      await l.ssh(i, 'ctr -n k8s.io images rm registry.k8s.io/pause:3.10 >/dev/null 2>&1; ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d registry.k8s.io/pause:3.10');
    }
    // a run killed while the workers fetched from h1 left its one-time key there; the runs after took it away
    assert.doesNotMatch((await l.ssh(1, 'cat /root/.ssh/authorized_keys')).stdout, /kube-bundle-distribution/);
    const again = await labCli(l, installArgs());
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Nothing to do/);
  });

  test('reset: killed at random moments, the next plain reset completes and the hosts can be installed again', async (t: TestContext) => {
    const l = lab();
    const next = random(SEED + 1);
    const resetArgs = ['reset', '--hosts', hostsFile(), '--yes'];
    // reset prints no phases: it is killed by time from its start (starting and connecting take about 1.5 s, the
    // first reset's work on the hosts a few seconds more; later ones find less to do, and how long all of it takes
    // depends on the machine). A run that ends before its kill says how long a reset takes now: the next kill falls
    // at a random point inside that time. Five kills that land, in ten runs at most.
    const points: string[] = [];
    let delay = 1200 + next(1500);
    while (points.filter((p) => !p.includes('ended first')).length < 5 && points.length < 10) {
      const run = await killAfter(l, resetArgs, delay);
      points.push(`+${delay}ms${run.killed ? '' : ` (ended first, at ${run.elapsedMs}ms)`}`);
      delay = run.killed ? 1200 + next(1500) : Math.floor(run.elapsedMs * (0.3 + next(600) / 1000));
    }
    t.diagnostic(`reset killed at ${points.join(', ')}`);
    assert.ok(points.filter((p) => !p.includes('ended first')).length >= 2, `reset was killed too rarely: ${points.join(', ')}`);
    const done = await labCli(l, resetArgs);
    assert.equal(done.code, 0, done.stdout + done.stderr);
    for (const i of [1, 2, 3]) {
      const left = await l.ssh(i, 'test -e /var/lib/kube-bundle || test -e /etc/kube-bundle || test -e /etc/kubernetes/admin.conf || test -e /etc/kubernetes/kubelet.conf', { check: false });
      assert.notEqual(left.code, 0, `h${i} is clean after the reset`);
    }
  });
});

/** Run the CLI and SIGKILL it `delayMs` after it starts: whether it was killed before it ended, and when it ended. */
function killAfter(lab: Lab, args: string[], delayMs: number): Promise<{ killed: boolean; elapsedMs: number }> {
  const argv = ['netns', 'exec', lab.netns, process.execPath, '--import', 'tsx', CLI_MAIN, ...args, '-i', lab.keyFile, '--known-hosts', lab.knownHostsFile];
  const started = Date.now();
  const child = spawn('ip', argv, { stdio: 'ignore' });
  let killed = false;
  const timer = setTimeout(() => {
    killed = child.kill('SIGKILL');
  }, delayMs);
  return new Promise((resolve) => {
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ killed, elapsedMs: Date.now() - started });
    });
  });
}
