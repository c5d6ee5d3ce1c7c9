/**
 * `bundle install --vip` end to end in the lab: keepalived and haproxy from the bundle (built with --ha) on Debian 13
 * hosts, VRRP between them on the lab bridge, the stub API server (kube-stub-apiserver.socket on 6443) behind
 * haproxy. The failover times measured are printed as test diagnostics. The HA cluster is then upgraded to v1.32.4
 * (`bundle upgrade`) while the API is asked through the address all along.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, describe, test, type TestContext } from 'node:test';
import { readMembers } from '../helpers/bundle-members.js';
import { MANIFEST_FILE } from '../../src/core/bundle/paths.js';
import { buildTestBundles, type TestBundle } from '../helpers/bundle.js';
import { stubKubeadmConfig } from '../helpers/host-secrets.js';
import { StubLog } from '../helpers/host-state.js';
import { labCli, writeLabHostsFile } from '../helpers/lab-cli.js';
import { useLab, type Lab } from '../lab/lab.js';

const VIP = '10.77.0.100';
const HOSTS = [1, 2, 3, 4];
describe('bundle install --vip in the lab', () => {
  let dir: string;
  let bundle: TestBundle;
  let newer: TestBundle;
  // the bundles first: the lab is shared, hold it no longer than needed
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-install-ha-'));
    const extra = ['--runtime', 'containerd', '--ha'];
    [bundle, newer] = (await buildTestBundles(dir, [{ version: 'v1.32.3', extra }, { version: 'v1.32.4', extra }], { target: 'debian-13' })) as [TestBundle, TestBundle];
  });
  const lab = useLab(4, { lockWaitMs: 600_000, suite: 'trixie' });
  before(async () => {
    // keepalived needs perl (libsnmp -> libperl5.x), which a minimal Debian host does not have: the bundle carries it
    const manifest = (await readMembers(bundle.file, [MANIFEST_FILE])).get(MANIFEST_FILE)?.toString('utf8') ?? '';
    assert.match(manifest, /^\s*- name: libperl5\.\d+$/m);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const hostsFile = (name: string, roles: string[]) => writeLabHostsFile(lab(), join(dir, name), roles);
  const bundleCli = (args: string[]) => labCli(lab(), [...args, '--bundle', bundle.file, '--pubkey', bundle.pubkey]);

  /** The hosts (1-based) that have the virtual address on an interface. */
  async function holders(): Promise<number[]> {
    const l = lab();
    const has = await Promise.all(HOSTS.map(async (i) => (await l.ssh(i, `ip -o -4 addr show to ${VIP}`)).stdout.trim() !== ''));
    return HOSTS.filter((_, k) => has[k]);
  }

  /** One request to the stub API through the virtual address, from the lab bridge: its answer. */
  async function askVersion(port: number): Promise<string> {
    const r = await lab().inNetns(['timeout', '5', 'bash', '-c', `exec 3<>/dev/tcp/${VIP}/${port}; echo VERSION >&3; cat <&3`], { check: false });
    return r.stdout.trim();
  }

  /** haproxy's view of its API servers on host i: server name → status (UP, DOWN, ...), from its stats socket. */
  async function serverStates(i: number): Promise<Map<string, string>> {
    const csv = (await lab().ssh(i, "echo 'show stat' | socat stdio /run/haproxy/admin.sock")).stdout.trim().split('\n');
    const header = (csv[0] ?? '').replace(/^# /, '').split(',');
    const [name, status, proxy] = ['svname', 'status', 'pxname'].map((c) => header.indexOf(c)) as [number, number, number];
    const rows = csv.slice(1).map((l) => l.split(',')).filter((f) => f[proxy] === 'kube-apiserver' && !['FRONTEND', 'BACKEND'].includes(f[name] ?? ''));
    return new Map(rows.map((f) => [f[name] ?? '', f[status] ?? '']));
  }

  async function poll<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`not within ${timeoutMs / 1000}s: ${what}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /**
   * Runs `action` on host i and measures, from the lab bridge, the milliseconds from just before it until a
   * request through the address is answered again. The start time is taken on the host (the lab shares one clock).
   */
  async function failover(i: number, action: string, port: number): Promise<number> {
    const l = lab();
    const ssh = `ssh -i ${l.keyFile} -o UserKnownHostsFile=${l.knownHostsFile} -o StrictHostKeyChecking=yes -o BatchMode=yes root@${l.hosts[i - 1]!.ip}`;
    const script = [
      `t0=$(${ssh} 'date +%s%N; ${action}' | head -1)`,
      `until out=$(timeout 1 bash -c 'exec 3<>/dev/tcp/${VIP}/${port}; echo VERSION >&3; cat <&3' 2>/dev/null) && [ "\${out%%$'\\n'*}" = OK ]; do sleep 0.05; done`,
      'echo $(( ($(date +%s%N) - t0) / 1000000 ))',
    ].join('\n');
    const r = await l.inNetns(['timeout', '60', 'bash', '-c', script]);
    return Number(r.stdout.trim());
  }

  async function nothingInstalled(l: Lab, hosts: number[]): Promise<void> {
    for (const i of hosts) {
      const r = await l.ssh(i, 'test -e /var/lib/kube-bundle || test -e /etc/kube-bundle', { check: false });
      assert.notEqual(r.code, 0, `h${i} was not touched`);
    }
  }

  test('a --vip that is a host, or off the hosts\' network, is refused before anything changes; a dry run shows the setup', async () => {
    const hosts = hostsFile('h-bad.txt', ['control-plane', 'control-plane', 'control-plane', 'worker']);
    const isHost = await bundleCli(['install', '--hosts', hosts, '--vip', lab().hosts[1]!.ip]);
    assert.equal(isHost.code, 2, isHost.stderr);
    assert.match(isHost.stderr, /--vip 10\.77\.0\.12 is the address of a host \(.*h-bad\.txt:2\)/);
    const offNet = await bundleCli(['install', '--hosts', hosts, '--vip', '10.78.0.100']);
    assert.equal(offNet.code, 2, offNet.stderr);
    for (const h of ['h1', 'h2', 'h3']) assert.match(offNet.stderr, new RegExp(`${h} \\(10\\.77\\.0\\.1\\d\\): --vip 10\\.78\\.0\\.100 is not in eth0's subnet 10\\.77\\.0\\.0/24`));
    assert.doesNotMatch(offNet.stderr, /h4 \(/, 'the worker holds no address');
    await nothingInstalled(lab(), HOSTS);

    const dry = await bundleCli(['install', '--hosts', hosts, '--vip', VIP, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /Control-plane address 10\.77\.0\.100:8443: haproxy \+ keepalived on the control planes \(h1, h2, h3\)/);
    assert.match(dry.stderr, /h2 \(10\.77\.0\.12\)\$ write .*keepalived\.conf .*10\.77\.0\.100 on eth0, priority 149/);
    assert.match(dry.stderr, /setup-lb\.sh \/etc\/kube-bundle\/ha/);
    await nothingInstalled(lab(), HOSTS);
  });

  test('3 control planes + 1 worker with --vip: the cluster uses the address, haproxy forwards to a live API server', async () => {
    const l = lab();
    const hosts = hostsFile('h-ha.txt', ['control-plane', 'control-plane', 'control-plane', 'worker']);
    const r = await bundleCli(['install', '--hosts', hosts, '--vip', VIP]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Cluster installed/);

    // install deletes its kubeadm configs once no join needs them (they hold secrets): the stub kept copies
    const init = (await stubKubeadmConfig(l, 1, 'init')).text;
    assert.match(init, /^controlPlaneEndpoint: "10\.77\.0\.100:8443"$/m);
    assert.match(init, /certSANs: \[.*"10\.77\.0\.100".*\]/);
    for (const i of [2, 3, 4]) assert.match((await stubKubeadmConfig(l, i, 'join')).text, /apiServerEndpoint: "10\.77\.0\.100:8443"/);
    assert.equal((await l.ssh(4, 'dpkg-query -W haproxy keepalived', { check: false })).code, 1, 'the worker holds no address: no haproxy, no keepalived');

    assert.equal((await holders()).length, 1, 'exactly one host has the address');
    assert.equal(await askVersion(8443), 'OK\nv1.32.3');
    for (const i of [1, 2, 3]) {
      await poll(`h${i}'s haproxy sees every API server UP`, async () => {
        const states = await serverStates(i);
        return [...states.values()].length === 3 && [...states.values()].every((s) => s === 'UP') ? true : undefined;
      });
    }
    assert.match((await l.ssh(1, 'kubectl get nodes')).stdout, /^h4\s/m, 'kubectl on h1 reaches the API through the address');
  });

  test('an API server that stops leaves the pool on every holder; requests through the address still succeed', async () => {
    const l = lab();
    await l.ssh(3, 'systemctl stop kube-stub-apiserver.socket');
    for (const i of [1, 2, 3]) await poll(`h3 DOWN in h${i}'s haproxy`, async () => ((await serverStates(i)).get('h3')?.startsWith('DOWN') ? true : undefined));
    const states = await serverStates(1);
    assert.equal(states.get('h1'), 'UP');
    assert.equal(states.get('h2'), 'UP');
    for (let k = 0; k < 6; k++) assert.equal(await askVersion(8443), 'OK\nv1.32.3', `request ${k + 1} with h3 out of the pool`);
    assert.match((await l.ssh(1, 'journalctl -u haproxy.service --no-pager -o cat')).stdout, /kube-apiserver\/h3 is DOWN/);

    await l.ssh(3, 'systemctl start kube-stub-apiserver.socket');
    for (const i of [1, 2, 3]) await poll(`h3 back UP in h${i}'s haproxy`, async () => ((await serverStates(i)).get('h3') === 'UP' ? true : undefined));
  });

  test('the address moves when keepalived stops on its holder, and when haproxy stops on the next one', async (t: TestContext) => {
    const [first] = await holders();
    assert.ok(first, 'someone holds the address');
    const stopMs = await failover(first, 'systemctl stop keepalived.service', 8443);
    const [second, ...more] = await holders();
    assert.ok(second && second !== first && more.length === 0, `moved from h${first} to exactly one other host`);
    t.diagnostic(`keepalived stopped on h${first}: the address answered from h${second} after ${stopMs} ms`);
    assert.ok(stopMs < 10_000, `failover took ${stopMs} ms`);

    // keepalived's vrrp_script: no haproxy, no address
    const haproxyMs = await failover(second, 'systemctl stop haproxy.service', 8443);
    const [third, ...others] = await holders();
    assert.ok(third && third !== first && third !== second && others.length === 0, `moved from h${second} to the last holder`);
    t.diagnostic(`haproxy stopped on h${second}: the address answered from h${third} after ${haproxyMs} ms`);
    assert.ok(haproxyMs < 10_000, `failover took ${haproxyMs} ms`);
  });

  test('a re-run restarts what was stopped without moving the address; the next one changes nothing', async () => {
    const l = lab();
    const [holder] = await holders();
    const hosts = join(dir, 'h-ha.txt');
    const r = await bundleCli(['install', '--hosts', hosts, '--vip', VIP]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const phase = r.stderr.slice(r.stderr.indexOf('• Set up the control-plane address'), r.stderr.indexOf('• kubeadm init'));
    assert.match(phase, new RegExp(`– h${holder} \\(.*\\): already done`), 'the holder was left alone');
    for (const i of [1, 2, 3]) assert.equal((await l.ssh(i, 'systemctl is-active haproxy.service keepalived.service')).stdout, 'active\nactive\n');
    assert.deepEqual(await holders(), [holder], 'nopreempt: the address stays where it is');

    const again = await bundleCli(['install', '--hosts', hosts, '--vip', VIP]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Nothing to do/);
  });

  test('bundle upgrade to v1.32.4: the API answers through the address at every moment of the rollout, while each joined control plane\'s API server restarts', async (t: TestContext) => {
    const l = lab();
    const [holder] = await holders();
    const lbPids = async () => Promise.all([1, 2, 3].map(async (i) => (await l.ssh(i, 'systemctl show -P MainPID haproxy keepalived')).stdout.trim()));
    const pidsBefore = await lbPids();
    // from the lab bridge, one request through the address every 100 ms for as long as the upgrade runs: its start
    // and end (ns) and the answer, one line each
    const poller = spawn('ip', ['netns', 'exec', l.netns, 'bash', '-c',
      `while :; do s=$(date +%s%N); r=$(timeout 10 bash -c 'exec 3<>/dev/tcp/${VIP}/8443; echo VERSION >&3; cat <&3' 2>&1 | tr '\\n' ' '); echo "$s $(date +%s%N) $r"; sleep 0.1; done`],
    { stdio: ['ignore', 'pipe', 'ignore'] });
    let answers = '';
    poller.stdout.setEncoding('utf8').on('data', (s: string) => (answers += s));
    const r = await labCli(l, ['upgrade', '--hosts', join(dir, 'h-ha.txt'), '--bundle', newer.file, '--pubkey', newer.pubkey]).finally(() => poller.kill());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Cluster upgraded/);
    const lines = answers.slice(0, answers.lastIndexOf('\n')).split('\n'); // a line cut by the kill left out
    const requests = lines.map((line) => {
      const [start, end, ...answer] = line.split(' ');
      return { start: Number(start) / 1e6, ms: (Number(end) - Number(start)) / 1e6, answer: answer.join(' ') };
    });
    assert.ok(requests.length > 50, `the address was asked ${requests.length} times during the upgrade`);
    assert.deepEqual(requests.filter((q) => !/^OK v1\.32\.[34] $/.test(q.answer)), [], 'every request through the address was answered');
    assert.match(requests.at(-1)!.answer, /OK v1\.32\.4/, 'the API server answers with the new version');
    // kubeadm's order on three control planes: apply on the first, `upgrade node` on the other two, one at a time;
    // each of those took its API server away for a while (the stub's static Pod restart), and the address answered
    const log = (await l.ssh(1, 'cat /var/log/kube-stub.log')).stdout;
    assert.match(log, /kubeadm upgrade apply v1\.32\.4/);
    for (const i of [2, 3]) {
      const own = await StubLog.of(l, i);
      assert.match(own.text, /kubeadm upgrade node/, `h${i} upgraded with kubeadm upgrade node`);
      const [down, up] = [own.time(/kube-apiserver restarting/), own.time(/kube-apiserver back/)];
      assert.ok(down < up, `h${i}'s API server went away and came back`);
      const during = requests.filter((q) => q.start >= down && q.start + q.ms <= up);
      assert.ok(during.length >= 10, `${during.length} requests through the address while h${i}'s API server was down`);
      t.diagnostic(`h${i}'s API server down ${((up - down) / 1000).toFixed(1)} s: ${during.length} requests through the address, all answered, the slowest in ${Math.max(...during.map((q) => q.ms)).toFixed(0)} ms`);
    }
    t.diagnostic(`${requests.length} requests through the address during the upgrade, every one answered; the slowest in ${Math.max(...requests.map((q) => q.ms)).toFixed(0)} ms`);
    for (const i of HOSTS) assert.match((await l.ssh(i, 'kubelet --version')).stdout, /Kubernetes v1\.32\.4/, `h${i}'s kubelet`);
    assert.deepEqual(await holders(), [holder], 'the address stayed where it was');
    assert.deepEqual(await lbPids(), pidsBefore, 'haproxy and keepalived ran on throughout, untouched');
  });

  test('bundle reset stops haproxy and keepalived, removes their configs and puts the distribution\'s haproxy.cfg back', async () => {
    const l = lab();
    const resetCli = (extra: string[]) => labCli(l, ['reset', '--hosts', join(dir, 'h-ha.txt'), '--yes', ...extra]);
    const reset = await resetCli([]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.deepEqual(await holders(), [], 'reset gave the address up');
    for (const i of [1, 2, 3]) {
      assert.doesNotMatch((await l.ssh(i, 'systemctl is-active haproxy.service keepalived.service', { check: false })).stdout, /^active$/m, `h${i}: both stopped`);
      assert.equal((await l.ssh(i, 'test -e /etc/keepalived/keepalived.conf', { check: false })).code, 1, `h${i}: keepalived.conf removed`);
      const haproxyCfg = (await l.ssh(i, 'cat /etc/haproxy/haproxy.cfg')).stdout;
      assert.doesNotMatch(haproxyCfg, /kube-bundle/, `h${i}: the distribution's haproxy.cfg is back`);
      assert.match(haproxyCfg, /^defaults/m);
    }
    // the packages go too, so that what the lb install puts where can be seen
    const purge = await resetCli(['--purge']);
    assert.equal(purge.code, 0, purge.stderr);
    const again = await resetCli(['--purge']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });

  test('with lb hosts: they hold the address on 6443 for a single control plane; the address moves between them', async (t: TestContext) => {
    const l = lab();

    const hosts = hostsFile('h-lb.txt', ['lb', 'lb', 'control-plane', 'worker']);
    const r = await bundleCli(['install', '--hosts', hosts, '--vip', VIP]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match((await stubKubeadmConfig(l, 3, 'init')).text, /^controlPlaneEndpoint: "10\.77\.0\.100:6443"$/m);
    for (const i of [1, 2]) assert.equal((await l.ssh(i, 'dpkg-query -W kubeadm', { check: false })).code, 1, `lb host h${i} has no kubeadm`);
    assert.equal((await l.ssh(3, 'dpkg-query -W haproxy', { check: false })).code, 1, 'the control plane runs no haproxy');
    assert.equal(await askVersion(6443), 'OK\nv1.32.3');

    const [holder] = await holders();
    assert.ok(holder === 1 || holder === 2, `an lb host holds the address (h${holder})`);
    const ms = await failover(holder, 'systemctl stop keepalived.service', 6443);
    assert.deepEqual(await holders(), [holder === 1 ? 2 : 1]);
    t.diagnostic(`lb hosts: keepalived stopped on h${holder}: the address answered again after ${ms} ms`);
    assert.ok(ms < 10_000, `failover took ${ms} ms`);
  });
});
