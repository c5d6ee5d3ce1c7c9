/**
 * Day 2 in the lab, upstream stopped during every install and upgrade: 1 control plane + 2 workers installed at
 * v1.32.3, upgraded to v1.32.4 with a full bundle, then to v1.33.1 with a differential bundle made --since the
 * v1.32.4 lock (that run killed with SIGKILL inside the workers' rollout, and run again). After each, the API server
 * and every kubelet report the new version, the new control-plane images come through the seeded registry and the
 * old ones still do; a re-run has nothing to do. A node whose containerd is older than the bundle's has it upgraded
 * and restarted inside its drain; the others keep theirs running. Refused before any host changes: the differential
 * bundle on a cluster that lacks its base, an upgrade that skips a minor (v1.32 → v1.34), a downgrade.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildTestBundles, type TestBundle } from '../helpers/bundle.js';
import { recordOlder, runtimeState, StubLog } from '../helpers/host-state.js';
import { CLI_MAIN } from '../helpers/cli.js';
import { labCli } from '../helpers/lab-cli.js';
import { useLab, type Lab } from '../lab/lab.js';

const KUBECTL = 'kubectl --kubeconfig /etc/kubernetes/admin.conf';

describe('bundle upgrade: v1.32.3 → v1.32.4 (full bundle) → v1.33.1 (differential bundle)', () => {
  const lab = useLab(3, { lockWaitMs: 600_000 });
  let dir: string;
  let v1323: TestBundle;
  let v1324: TestBundle;
  let v1331: TestBundle;
  let v1341: TestBundle;
  let hosts: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-upgrade-'));
    [v1323, v1324, v1331, v1341] = await buildTestBundles(dir, [
      { version: 'v1.32.3', extra: ['--runtime', 'containerd'] },
      { version: 'v1.32.4', extra: ['--runtime', 'containerd'] },
      { version: 'v1.33.1', extra: ['--runtime', 'containerd'], sinceIndex: 1 },
      { version: 'v1.34.1', extra: ['--runtime', 'containerd'] },
    ]) as [TestBundle, TestBundle, TestBundle, TestBundle];
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const run = (l: Lab, verb: string, b: TestBundle, extra: string[] = []) =>
    labCli(l, [verb, '--hosts', hosts, '--bundle', b.file, '--pubkey', b.pubkey, ...extra]);

  async function assertVersion(l: Lab, version: string): Promise<void> {
    const server = JSON.parse((await l.ssh(1, `${KUBECTL} version -o json`)).stdout) as { serverVersion: { gitVersion: string } };
    assert.equal(server.serverVersion.gitVersion, version, 'the API server');
    const nodes = JSON.parse((await l.ssh(1, `${KUBECTL} get nodes -o json`)).stdout) as { items: { metadata: { name: string }; spec?: { unschedulable?: boolean }; status: { nodeInfo: { kubeletVersion: string } } }[] };
    assert.equal(nodes.items.length, 3);
    for (const n of nodes.items) {
      assert.equal(n.status.nodeInfo.kubeletVersion, version, `${n.metadata.name}'s kubelet`);
      assert.ok(!n.spec?.unschedulable, `${n.metadata.name} is uncordoned`);
    }
    for (const i of [1, 2, 3]) assert.match((await l.ssh(i, 'kubelet --version')).stdout, new RegExp(`Kubernetes ${version.replaceAll('.', '\\.')}`));
  }

  /** Runs the CLI in the lab's netns and SIGKILLs it `delayMs` after stderr shows `line`; true when it was killed, false when it ended first. */
  function killAt(l: Lab, args: string[], line: string, delayMs: number): Promise<boolean> {
    const child = spawn('ip', ['netns', 'exec', l.netns, process.execPath, '--import', 'tsx', CLI_MAIN, ...args, '-i', l.keyFile, '--known-hosts', l.knownHostsFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let killed = false;
    child.stderr.on('data', (chunk: Buffer) => {
      if (!stderr.includes(line) && (stderr += chunk.toString()).includes(line)) setTimeout(() => (killed = child.kill('SIGKILL')), delayMs);
    });
    return new Promise((resolve) => child.on('exit', () => resolve(killed)));
  }

  /** a worker pulls by the upstream name, through containerd's certs.d, from the seeded registry */
  async function pulls(l: Lab, refs: string[], host = 3): Promise<void> {
    for (const ref of refs) await l.ssh(host, `ctr -n k8s.io images rm ${ref} >/dev/null 2>&1; ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d ${ref} >/dev/null`);
  }

  test('install v1.32.3; refused on it before any host changes: the differential v1.33.1 bundle (naming the base it lacks), v1.34.1 (skips a minor)', async () => {
    const l = lab();
    hosts = join(dir, 'hosts.txt');
    writeFileSync(hosts, `${l.hosts[0]!.ip} control-plane\n${l.hosts[1]!.ip} worker\n${l.hosts[2]!.ip} worker\n`);
    const installed = await run(l, 'install', v1323);
    assert.equal(installed.code, 0, installed.stdout + installed.stderr);
    await assertVersion(l, 'v1.32.3');

    const journal = (await l.ssh(1, 'cat /var/lib/kube-bundle/journal')).stdout;
    const notInstall = await run(l, 'install', v1331);
    assert.equal(notInstall.code, 2);
    assert.match(notInstall.stderr, /is a differential bundle \(only what its base v1\.32\.4 lacks\): it upgrades a cluster, it cannot install one/);
    const refused = await run(l, 'upgrade', v1331);
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /holds no v1\.32\.4 bundle, which this differential bundle was made against/);
    assert.match(refused.stderr, /nothing was changed/);
    const skips = await run(l, 'upgrade', v1341);
    assert.equal(skips.code, 2, skips.stdout + skips.stderr);
    assert.match(skips.stderr, /the control plane runs v1\.32\.3; v1\.34\.1 skips a minor release: upgrade one minor at a time \(v1\.32\.3 → v1\.33\.x → v1\.34\.1\)/);
    assert.match(skips.stderr, /nothing was changed/);
    assert.equal((await l.ssh(1, 'cat /var/lib/kube-bundle/journal')).stdout, journal, 'no host changed');
    assert.match((await l.ssh(2, 'kubelet --version')).stdout, /v1\.32\.3/);
  });

  test('v1.32.3 → v1.32.4 with a full bundle: --dry-run changes nothing; a failing node stops the rollout; the re-run upgrades every node in kubeadm\'s order, old and new images served; then nothing to do; a downgrade is refused', async (t) => {
    const l = lab();
    // h2 runs an older containerd than the bundle carries (its dpkg record says so, as after a bundle built before
    // Debian's last point release): upgraded and restarted inside h2's drain; h3's is the bundle's, left running
    const containerd = (i: number) => runtimeState(l, i, 'containerd', ['containerd']);
    const bundled = await recordOlder(l, 2, 'containerd');
    const [h2Before, h3Before] = [await containerd(2), await containerd(3)];
    assert.equal(h2Before.version, `${bundled}~older`);

    // --dry-run: every check, then per host the commands it would run; nothing changes
    const journal = (await l.ssh(1, 'cat /var/lib/kube-bundle/journal')).stdout;
    const dry = await run(l, 'upgrade', v1324, ['--dry-run']);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.match(dry.stderr, /kubeadm upgrade apply v1\.32\.4 --yes/);
    assert.match(dry.stderr, /drain h3 --ignore-daemonsets/);
    assert.match(dry.stdout, /Dry run: nothing was changed/);
    assert.equal((await l.ssh(1, 'cat /var/lib/kube-bundle/journal')).stdout, journal, 'the dry run changed nothing');
    assert.equal((await containerd(2)).version, `${bundled}~older`);

    // a node that fails stops the rollout: h2's kubelet cannot be restarted (its unit masked); h3 is not drained,
    // the control plane serves at v1.32.4, and the summary names h2, the step and how to go on
    await l.ssh(2, 'systemctl mask kubelet');
    t.after(() => l.ssh(2, 'systemctl unmask kubelet', { check: false })); // whatever fails below, the next test has h2 back
    const stopped = await run(l, 'upgrade', v1324);
    assert.equal(stopped.code, 2, stopped.stdout + stopped.stderr);
    assert.match(stopped.stderr, /The cluster runs v1\.32\.3 \(kubelets: v1\.32\.3\); upgrading to v1\.32\.4/);
    const h2 = l.hosts[1]!.ip.replaceAll('.', '\\.');
    assert.match(stopped.stdout, new RegExp(`Upgrade failed on 1 host\\(s\\); run it again to resume after fixing:\\n  h2 \\(${h2}\\) \\[${hosts.replaceAll('.', '\\.')}:2\\] — Upgrade the workers`));
    // named by the step's own command, with apt's account of why (not the lock's plumbing around it)
    assert.match(stopped.stdout, new RegExp(`${h2}: \`[^\`]*/installer/install-packages\\.sh [^\`]* kubelet=1\\.32\\.4-1\\.1 kubectl=1\\.32\\.4-1\\.1\` exited with 100:`));
    assert.doesNotMatch(stopped.stdout, /flock/);
    assert.match(stopped.stdout, /kubelet\.service is masked/);
    assert.match(stopped.stderr, /hint: run the same command again to resume/);
    assert.doesNotMatch((await l.ssh(1, 'cat /var/log/kube-stub.log')).stdout, /drain h3 /, 'h3 was not drained');
    assert.match((await l.ssh(3, 'kubelet --version')).stdout, /v1\.32\.3/);
    assert.match((await l.ssh(1, `${KUBECTL} version`)).stdout, /Server Version: v1\.32\.4/);
    await l.ssh(2, 'systemctl unmask kubelet');

    const r = await run(l, 'upgrade', v1324);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Cluster upgraded\./);
    assert.match(r.stderr, /The cluster runs v1\.32\.4 \(kubelets: v1\.32\.4, v1\.32\.3\); upgrading to v1\.32\.4/, 'the re-run took up the rollout where h2 stopped it');
    await assertVersion(l, 'v1.32.4');
    // kubeadm's order, as the stubs logged it: apply on the control plane, then drain → upgrade node → uncordon per worker
    const log = await StubLog.of(l, 1);
    const at = (re: RegExp) => log.at(re);
    assert.ok(at(/kubeadm upgrade apply v1\.32\.4/) >= 0, 'upgrade apply ran');
    assert.ok(at(/kubeadm upgrade plan v1\.32\.4/) < at(/kubeadm upgrade apply v1\.32\.4/), 'plan before apply');
    for (const w of ['h2', 'h3']) {
      assert.ok(at(new RegExp(`kubectl .*drain ${w} --ignore-daemonsets --delete-emptydir-data`)) > at(/kubeadm upgrade apply/), `${w} drained after apply`);
      assert.ok(at(new RegExp(`kubectl .*uncordon ${w}`)) > at(new RegExp(`kubectl .*drain ${w} `)), `${w} uncordoned after its drain`);
    }
    // one node at a time (--max-unavailable 1): the control plane, then h2, then h3, each back before the next goes
    assert.ok(at(/kubectl .*uncordon h1/) < at(/kubectl .*drain h2 /), 'h2 drained only once h1 was back');
    assert.ok(at(/kubectl .*uncordon h2/) < at(/kubectl .*drain h3 /), 'h3 drained only once h2 was back');
    // the runtime: h2's upgraded to the bundle's and restarted between its drain and its uncordon, h3's untouched
    const [h2After, h3After] = [await containerd(2), await containerd(3)];
    assert.equal(h2After.version, bundled, 'h2\'s containerd is the bundle\'s');
    assert.notEqual(h2After.pids[0], h2Before.pids[0], 'h2\'s containerd was restarted');
    assert.ok(log.time(/kubectl .*drain h2 /) <= h2After.started && h2After.started <= log.time(/kubectl .*uncordon h2/), 'after h2 was drained, before it was uncordoned');
    assert.deepEqual([h3After.version, h3After.pids], [h3Before.version, h3Before.pids], 'h3\'s containerd, already the bundle\'s, kept running');
    await pulls(l, ['registry.k8s.io/pause:3.10'], 2);
    await pulls(l, ['registry.k8s.io/kube-proxy:v1.32.4', 'registry.k8s.io/kube-apiserver:v1.32.4', 'registry.k8s.io/kube-proxy:v1.32.3', 'registry.k8s.io/pause:3.10']);
    // the old packages stay on the hosts, for a rollback
    assert.match((await l.ssh(2, 'ls /var/lib/kube-bundle/*/packages/')).stdout, /kubelet_1\.32\.3-1\.1_amd64\.deb[\s\S]*kubelet_1\.32\.4-1\.1_amd64\.deb|kubelet_1\.32\.4-1\.1_amd64\.deb[\s\S]*kubelet_1\.32\.3-1\.1_amd64\.deb/);

    const again = await run(l, 'upgrade', v1324);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /Nothing to do: every host is already as upgraded\./);

    const down = await run(l, 'upgrade', v1323);
    assert.equal(down.code, 2);
    assert.match(down.stderr, /the control plane runs v1\.32\.4, newer than the bundle's v1\.32\.3: kube-bundle does not downgrade/);
  });

  test('v1.32.4 → v1.33.1 with a differential bundle far smaller than a full one, both workers at once, killed mid-rollout and run again', async () => {
    const l = lab();
    assert.ok(statSync(v1331.file).size * 10 < statSync(v1324.file).size, `differential ${statSync(v1331.file).size} B vs full ${statSync(v1324.file).size} B`);
    // both workers at once (--max-unavailable 2); kill -9 of the CLI in the middle of their rollout, and the same
    // command run again completes it
    const logBefore = (await l.ssh(1, 'cat /var/log/kube-stub.log')).stdout.length;
    const killed = await killAt(l, ['upgrade', '--hosts', hosts, '--bundle', v1331.file, '--pubkey', v1331.pubkey, '--max-unavailable', '2'], '• Upgrade the workers', 1500);
    assert.ok(killed, 'the CLI was killed inside the workers\' phase');
    const r = await run(l, 'upgrade', v1331, ['--max-unavailable', '2']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr, /– h1 \(.*\): already done/, 'the re-run resumed: the control plane was done before the kill');
    await assertVersion(l, 'v1.33.1');
    const log = await StubLog.of(l, 1, logBefore);
    const at = (re: RegExp) => log.at(re);
    assert.ok(at(/kubectl .*drain h3 /) < at(/kubectl .*uncordon h2/), 'h3 drained while h2 was still out (two at once)');
    assert.ok(at(/kubectl .*uncordon h1/) < at(/kubectl .*drain h2 /), 'the workers only after the control plane');
    await pulls(l, ['registry.k8s.io/kube-proxy:v1.33.1', 'registry.k8s.io/coredns/coredns:v1.12.0', 'registry.k8s.io/kube-proxy:v1.32.4']);
    const again = await run(l, 'upgrade', v1331);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /Nothing to do/);
    // --json: per phase and host, each one done before
    const json = await run(l, 'upgrade', v1331, ['--json']);
    assert.equal(json.code, 0, json.stdout + json.stderr);
    const summary = JSON.parse(json.stdout) as { ok: boolean; changed: boolean; phases: { title: string; hosts: { host: string; line: number; status: string }[] }[] };
    assert.deepEqual([summary.ok, summary.changed], [true, false]);
    const workers = summary.phases.find((p) => p.title.startsWith('Upgrade the workers'));
    assert.deepEqual(workers?.hosts.map((h) => [h.host, h.line, h.status]), [[`h2 (${l.hosts[1]!.ip})`, 2, 'skipped'], [`h3 (${l.hosts[2]!.ip})`, 3, 'skipped']]);
  });
});
