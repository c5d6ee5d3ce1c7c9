/**
 * Many hosts: 1 control plane + 7 workers, upstream stopped. The bundle crosses the operator's link once, to the
 * registry host (h1); the workers fetch their part from it inside the site. h8's route to h1's SSH port is
 * filtered, as a firewall between two zones would: it falls back to an upload from the operator, and the summary
 * names it. The operator's bytes are counted on its own interface (br0 in hl-lab: what the operator's stack sends,
 * not what the bridge forwards between hosts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildTestBundle, type TestBundle } from '../helpers/bundle.js';
import { labCli } from '../helpers/lab-cli.js';
import { useLab, type Lab } from '../lab/lab.js';

const HOSTS = 8;
const MB = 1e6;

async function operatorTxBytes(l: Lab): Promise<number> {
  return Number((await l.inNetns(['cat', '/sys/class/net/br0/statistics/tx_bytes'])).stdout.trim());
}

describe(`bundle install on ${HOSTS} hosts`, () => {
  const lab = useLab(HOSTS, { lockWaitMs: 600_000 });
  let dir: string;
  let bundle: TestBundle;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-many-'));
    bundle = await buildTestBundle(dir, ['--runtime', 'containerd']);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('1 control plane + 7 workers: the bundle crosses the operator link once, the workers fetch inside the site, a filtered host gets an upload', async () => {
    const l = lab();
    const hosts = join(dir, 'hosts.txt');
    writeFileSync(hosts, l.hosts.map((h, i) => `${h.ip} ${i === 0 ? 'control-plane' : 'worker'}`).join('\n') + '\n');
    const h1 = l.hosts[0]!.ip;
    // h8 cannot open SSH to h1 (everything else, the registry's port included, passes)
    await l.inNetns(['ip', 'netns', 'exec', 'hl-h8', 'iptables', '-I', 'OUTPUT', '-p', 'tcp', '-d', h1, '--dport', '22', '-j', 'DROP']);
    assert.notEqual((await l.ssh(8, `timeout 3 bash -c 'exec 3<>/dev/tcp/${h1}/22'`, { check: false })).code, 0, 'the filter holds');

    const bundleBytes = statSync(bundle.file).size;
    const before = await operatorTxBytes(l);
    const r = await labCli(l, ['install', '--hosts', hosts, '--bundle', bundle.file, '--pubkey', bundle.pubkey]);
    const sent = (await operatorTxBytes(l)) - before;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Cluster installed/);

    // h2..h7 fetched from h1; h8 was named, with its hosts-file line and why, and got its part uploaded
    for (let i = 2; i < HOSTS; i++) assert.match(r.stderr, new RegExp(`h${i} \\(${l.hosts[i - 1]!.ip.replaceAll('.', '\\.')}\\): fetched .* from h1 `), `h${i}`);
    assert.match(r.stdout, new RegExp(`Uploaded from here \\(could not fetch their part inside the site\\): 1 host\\(s\\)\\n  h8 \\(${l.hosts[7]!.ip.replaceAll('.', '\\.')}\\) \\[${hosts.replaceAll('.', '\\.')}:8\\]: cannot reach it over SSH: .*(timed out|Connection)`));

    // the operator sent the bundle twice (h1, and h8's fallback) and a few MB per host besides, not 8 bundles
    const budget = 1.1 * bundleBytes * 2 + 5 * MB * HOSTS;
    console.log(`operator sent ${(sent / MB).toFixed(1)} MB for ${HOSTS} hosts; bundle ${(bundleBytes / MB).toFixed(1)} MB; budget ${(budget / MB).toFixed(1)} MB`);
    assert.ok(sent <= budget, `operator sent ${sent} bytes, more than ${budget}`);
    assert.ok(sent >= bundleBytes * 2, 'the count is of the operator interface (both uploads went through it)');

    // each worker stores its part only, h1 the whole bundle; every node pulls pause and flannel through the registry
    const stored = async (i: number) => Number((await l.ssh(i, 'du -sb /var/lib/kube-bundle/current/ | cut -f1')).stdout.trim());
    const whole = await stored(1);
    const images = Number((await l.ssh(1, 'du -sb /var/lib/kube-bundle/current/images | cut -f1')).stdout.trim());
    const registryDebs = Number((await l.ssh(1, 'cat /var/lib/kube-bundle/current/packages/docker-registry_*.deb | wc -c')).stdout.trim());
    for (let i = 2; i <= HOSTS; i++) {
      assert.equal((await l.ssh(i, 'test -e /var/lib/kube-bundle/current/images; echo $?')).stdout.trim(), '1', `h${i} stores no image`);
      assert.ok((await stored(i)) <= whole - images - registryDebs, `h${i} stores no more than the bundle without its images and the registry's package`);
      for (const ref of ['registry.k8s.io/pause:3.10', 'ghcr.io/flannel-io/flannel:v0.26.5']) {
        await l.ssh(i, `ctr -n k8s.io images rm ${ref} >/dev/null 2>&1; ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d ${ref} >/dev/null`);
      }
    }
    assert.equal((await l.ssh(8, 'ls /var/lib/kube-bundle/bundles | wc -l')).stdout.trim(), '0', 'the fallback host keeps no bundle file');
    const nodes = (await l.ssh(1, 'kubectl get nodes')).stdout;
    for (let i = 1; i <= HOSTS; i++) assert.match(nodes, new RegExp(`^h${i}\\s+Ready`, 'm'));
    assert.doesNotMatch((await l.ssh(1, 'cat /root/.ssh/authorized_keys')).stdout, /kube-bundle-distribution/, 'the one-time key is gone');

    // re-running changes nothing
    const again = await labCli(l, ['install', '--hosts', hosts, '--bundle', bundle.file, '--pubkey', bundle.pubkey]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /Nothing to do/);
  });
});
