/**
 * `bundle install --runtime docker` end to end in the lab: the Docker engine (Debian's docker.io, dockerd for real)
 * 26 and cri-dockerd (its bookworm build) from a debian-13 bundle, on Debian 13 hosts with no route out; stub
 * kubeadm/kubelet/kubectl/cri-dockerd.
 * The simulated upstream is NOT running while install runs: every pull can only be served by the seeded registry.
 * Then `bundle upgrade` to v1.32.4 upgrades a worker's older Docker inside its drain.
 *
 * Inside the lab hosts (root on overlayfs) dockerd cannot use overlay2 ("failed to mount overlay: invalid argument")
 * and picks the vfs storage driver by itself: slower and bigger, but real pulls and real layers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildTestBundles, type TestBundle } from '../helpers/bundle.js';
import { recordOlder, runtimeState, StubLog } from '../helpers/host-state.js';
import { labCli } from '../helpers/lab-cli.js';
import { useLab } from '../lab/lab.js';

const LOG = '/var/log/kube-stub.log';
const CRI_DOCKERD_SOCKET = 'unix:///var/run/cri-dockerd.sock';
/** the site's own daemon.json on h2, with a setting dockerd refuses: install keeps it, and dockerd fails on it */
const SITE_DAEMON_JSON = '{ "log-level": "warn", "no-such-option": true }\n';

describe('bundle install --runtime docker in the lab', () => {
  const lab = useLab(2, { suite: 'trixie', lockWaitMs: 600_000 });
  let dir: string;
  let bundle: TestBundle;
  let newer: TestBundle;
  let hosts: string;
  let registry: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-install-docker-'));
    const extra = ['--runtime', 'docker'];
    [bundle, newer] = (await buildTestBundles(dir, [{ version: 'v1.32.3', extra }, { version: 'v1.32.4', extra }], { target: 'debian-13' })) as [TestBundle, TestBundle];
    hosts = join(dir, 'hosts.txt');
    writeFileSync(hosts, `${lab().hosts[0]!.ip} control-plane\n${lab().hosts[1]!.ip} worker\n`);
    registry = `${lab().hosts[0]!.ip}:5000`;
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const bundleCli = (args: string[]) => labCli(lab(), args);
  const install = () => bundleCli(['install', '--hosts', hosts, '--runtime', 'docker', '--bundle', bundle.file, '--pubkey', bundle.pubkey]);

  /** The config kubeadm (the stub) was given, as it saved it: `... # config F saved as <copy>` in its log. */
  async function kubeadmConfig(i: number, verb: 'init' | 'join'): Promise<string> {
    const line = (await lab().ssh(i, `grep -E '^\\S+ kubeadm ${verb} ' ${LOG} | tail -n 1`)).stdout;
    const saved = /saved as (\S+)/.exec(line)?.[1];
    assert.ok(saved, `h${i}: kubeadm ${verb} logged its config: ${line}`);
    return (await lab().ssh(i, `cat ${saved}`)).stdout;
  }

  test('dockerd failing on a site setting fails the runtime step within seconds, naming the cause; the fixed re-run installs', async () => {
    const l = lab();
    await l.ssh(2, `mkdir -p /etc/docker && printf '%s' '${SITE_DAEMON_JSON}' > /etc/docker/daemon.json`);
    const started = Date.now();
    const first = await install();
    assert.notEqual(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /Install failed on 1 host\(s\)[\s\S]*h2 .*Configure the container runtime/);
    assert.match(first.stdout, /docker\.service failed to start[\s\S]*no-such-option/, 'dockerd\'s own complaint is shown');
    assert.ok(Date.now() - started < 5 * 60_000, 'failed, did not hang');

    await l.ssh(2, `printf '%s' '{ "log-level": "warn" }' > /etc/docker/daemon.json`);
    const second = await install();
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.match(second.stdout, /Cluster installed/);
    const runtimePhase = second.stderr.slice(second.stderr.indexOf('• Configure the container runtime'), second.stderr.indexOf('• kubeadm init'));
    assert.match(runtimePhase, /– h1 \(.*\): already done/, 'h1 had finished its runtime step');
    assert.match(runtimePhase, /✓ h2 /);
  });

  test('both nodes run Docker + cri-dockerd configured for the seeded registry; kubeadm got the cri-dockerd socket and the registry', async () => {
    const l = lab();
    const init = await kubeadmConfig(1, 'init');
    assert.match(init, new RegExp(`criSocket: "${CRI_DOCKERD_SOCKET}"`));
    assert.match(init, new RegExp(`imageRepository: "${registry}"`));
    assert.match(await kubeadmConfig(2, 'join'), new RegExp(`criSocket: "${CRI_DOCKERD_SOCKET}"`));

    for (const i of [1, 2]) {
      assert.equal((await l.ssh(i, "docker info --format '{{.CgroupDriver}}'")).stdout.trim(), 'systemd', `h${i}: Docker's cgroup driver`);
      assert.equal((await l.ssh(i, 'systemctl is-active cri-docker.service')).stdout.trim(), 'active');
      assert.match((await l.ssh(i, 'cat /run/cri-dockerd/kube-stub.env')).stdout, new RegExp(`^pod_infra_container_image=${registry}/pause:3\\.10$`, 'm'), `h${i}: cri-dockerd's pause`);
      await l.ssh(i, `cmp /etc/docker/certs.d/${registry}/ca.crt /etc/kube-bundle/pki/ca.crt`);
    }
    const siteSettings = JSON.parse((await l.ssh(2, 'cat /etc/docker/daemon.json')).stdout);
    assert.deepEqual(siteSettings, { 'log-level': 'warn', 'exec-opts': ['native.cgroupdriver=systemd'] }, 'the site\'s setting is kept');

    // what kubeadm and the kubelet pulled, under the names this path uses: CoreDNS at kubeadm's flat path, flannel rewritten
    await l.ssh(1, `docker image inspect ${registry}/coredns:v1.11.3 ${registry}/kube-apiserver:v1.32.3 >/dev/null`);
    await l.ssh(2, `docker image inspect ${registry}/flannel-io/flannel:v0.26.5 ${registry}/kube-proxy:v1.32.3 >/dev/null`);
    const flannel = (await l.ssh(1, 'grep -h "image:" /etc/kube-bundle/kube-flannel.yml')).stdout;
    assert.doesNotMatch(flannel, /ghcr\.io/);
    assert.match(flannel, new RegExp(`image: ${registry}/flannel-io/flannel-cni-plugin:v1\\.6\\.2-flannel1`));
    const nodes = (await l.ssh(1, 'kubectl get nodes -o wide')).stdout;
    for (const n of ['h1', 'h2']) assert.match(nodes, new RegExp(`^${n}\\s+Ready\\s.*docker://26\\.1`, 'm'), nodes);

    for (const i of [1, 2]) {
      await l.ssh(i, `docker rmi ${registry}/pause:3.10 >/dev/null 2>&1; docker pull ${registry}/pause:3.10`);
    }

    const again = await install();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Nothing to do/);
  });

  test('bundle upgrade to v1.32.4: the worker whose Docker is older than the bundle\'s gets it upgraded, docker and cri-docker restarted inside its drain; the control plane\'s keep running', async () => {
    const l = lab();
    const docker = (i: number) => runtimeState(l, i, 'docker.io', ['docker', 'cri-docker']);
    // h2's dpkg record says its Docker is older than the bundle's (a bundle built before Debian's last update of it)
    const bundled = await recordOlder(l, 2, 'docker.io');
    const [h1Before, h2Before] = [await docker(1), await docker(2)];
    const r = await bundleCli(['upgrade', '--hosts', hosts, '--bundle', newer.file, '--pubkey', newer.pubkey]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Cluster upgraded/);
    const [h1After, h2After] = [await docker(1), await docker(2)];
    assert.equal(h2After.version, bundled, 'h2\'s Docker is the bundle\'s');
    assert.ok(h2After.pids.every((pid, k) => pid !== h2Before.pids[k] && pid !== '0'), `docker and cri-docker restarted on h2: ${h2Before.pids} → ${h2After.pids}`);
    const log = await StubLog.of(l, 1);
    assert.ok(log.time(/kubectl .*drain h2 /) <= h2After.started && h2After.started <= log.time(/kubectl .*uncordon h2/), 'after h2 was drained, before it was uncordoned');
    assert.deepEqual(h1After, h1Before, 'h1\'s Docker, already the bundle\'s, kept running');
    for (const i of [1, 2]) assert.match((await l.ssh(i, 'kubelet --version')).stdout, /Kubernetes v1\.32\.4/, `h${i}'s kubelet`);
  });

  test('bundle reset stops Docker and cri-dockerd and removes what install wrote, putting the site\'s daemon.json back', async () => {
    const l = lab();
    const reset = await bundleCli(['reset', '--hosts', hosts, '--yes']);
    assert.equal(reset.code, 0, reset.stderr);
    for (const i of [1, 2]) {
      const state = await l.ssh(i, 'systemctl is-active docker.service cri-docker.service; systemctl is-enabled docker.service cri-docker.service', { check: false });
      assert.deepEqual(state.stdout.trim().split('\n'), ['inactive', 'inactive', 'disabled', 'disabled'], `h${i}`);
      const left = await l.ssh(i, `ls -d /etc/systemd/system/cri-docker.service.d /etc/docker/certs.d/${registry} /etc/docker/daemon.json.kube-bundle-orig /etc/kube-bundle /var/lib/kube-bundle 2>/dev/null`, { check: false });
      assert.equal(left.stdout.trim(), '', `h${i}: nothing of the install is left`);
    }
    assert.notEqual((await l.ssh(1, 'test -e /etc/docker/daemon.json', { check: false })).code, 0, 'h1: the daemon.json install wrote is gone');
    assert.equal((await l.ssh(2, 'cat /etc/docker/daemon.json')).stdout, SITE_DAEMON_JSON, 'h2: the site\'s own file, as it was');
  });
});
