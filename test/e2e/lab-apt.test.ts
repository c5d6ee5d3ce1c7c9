/**
 * apt on a real minimal Debian 12 host (a lab host, no route out):
 *  - installs kubeadm from the simulated pkgs.k8s.io, trusting only the test key;
 *  - installs the whole runtime from a bundle's packages/ alone, with every other package source removed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { useLab, type LabServer } from '../lab/lab.js';
import { buildTestBundle, type TestBundle } from '../helpers/bundle.js';

const ROOT = join(import.meta.dirname, '../..');

describe('apt in a lab host', () => {
  const lab = useLab(2);
  let dir: string;
  let bundle: TestBundle;
  let upstream: LabServer;
  let info: { pkgs: string; k8sKeyFile: string };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-lab-apt-'));
    bundle = await buildTestBundle(dir, ['--runtime', 'containerd']);
    // The simulated upstream, reachable from the hosts: inside the lab's network namespace, on the bridge address.
    upstream = await lab().spawnInNetns(
      [process.execPath, '--import', 'tsx', join(ROOT, 'test/upstream/serve.ts'), '--host', lab().bridgeIp],
      { ready: { line: /^\{"pkgs"/ }, cwd: ROOT, timeoutMs: 60_000 },
    );
    info = JSON.parse(upstream.output().split('\n').find((l) => l.startsWith('{"pkgs"')) ?? '{}');
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('kubeadm installs from the simulated pkgs.k8s.io with the test key, and not with another key', async () => {
    const host = lab();
    await host.copyTo(1, info.k8sKeyFile, '/etc/apt/keyrings-k8s.asc');
    const repo = `${info.pkgs}/core:/stable:/v1.32/deb/`;
    await host.ssh(1, `echo "deb [signed-by=/etc/apt/keyrings-k8s.asc] ${repo} /" > /etc/apt/sources.list.d/kubernetes.list`);
    await host.ssh(1, 'apt-get update -q -o Dir::Etc::SourceList=/dev/null');
    await host.ssh(1, 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q kubeadm kubectl');
    assert.equal((await host.ssh(1, 'kubeadm version -o short')).stdout.trim(), 'v1.32.3');
    assert.match((await host.ssh(1, 'dpkg-query -W cri-tools')).stdout, /cri-tools\s+1\.32\.0-1\.1/);

    // Trusting a different key must make apt refuse the repository.
    await host.ssh(2, `echo "deb [signed-by=/etc/ssh/ssh_host_ed25519_key.pub] ${repo} /" > /etc/apt/sources.list.d/kubernetes.list`);
    const refused = await host.ssh(2, 'apt-get update -q -o Dir::Etc::SourceList=/dev/null 2>&1; apt-get install -y -q kubeadm 2>&1', { check: false });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout, /(NO_PUBKEY|not signed|signatures couldn't be verified|Unable to locate package kubeadm)/);
  });

  test('the bundle\'s packages/ alone installs kubeadm, kubelet, kubectl, containerd and the registry on a minimal host', async () => {
    const host = lab();
    const x = join(dir, 'x');
    mkdirSync(x);
    execFileSync('tar', ['xf', bundle.file, '-C', x, 'packages']);
    await host.copyTo(2, join(x, 'packages'), '/root/packages');
    // apt checks signatures as the unprivileged _apt user: the key must be readable by it (not under /root).
    await host.copyTo(2, bundle.pubkey, '/etc/apt/keyrings-bundle.asc');
    await host.ssh(2, 'rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*');
    await host.ssh(2, 'echo "deb [signed-by=/etc/apt/keyrings-bundle.asc] file:/root/packages ./" > /etc/apt/sources.list.d/bundle.list');
    await host.ssh(2, 'apt-get update -q');
    const install = await host.ssh(2, 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kubeadm kubelet kubectl containerd docker-registry 2>&1', { check: false, timeoutMs: 600_000 });
    assert.equal(install.code, 0, install.stdout.slice(-3000));
    const versions = (await host.ssh(2, "dpkg-query -W -f '${Package} ${Version}\\n' kubeadm kubelet containerd runc docker-registry conntrack")).stdout;
    assert.match(versions, /kubeadm 1\.32\.3-1\.1/);
    assert.match(versions, /containerd 1\.6\.20/);
    assert.match(versions, /conntrack /);
    assert.match((await host.ssh(2, 'containerd --version')).stdout, /containerd/);
  });
});
