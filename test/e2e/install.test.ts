/**
 * `bundle install` end to end in the lab: real sshd, systemd, dpkg/apt, containerd and the distribution registry
 * on Debian 12 hosts with no route out; stub kubeadm/kubelet/kubectl from the bundle. The bundle is built from
 * the simulated upstream, which is NOT running while install runs: every pull below can only be served by the
 * seeded registry.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync, closeSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI_MAIN } from '../helpers/cli.js';
import { buildTestBundle, type TestBundle } from '../helpers/bundle.js';
import { addSudoUser, assertNoSecretOnHost, configValue, stubKubeadmConfig, sudoJournal } from '../helpers/host-secrets.js';
import { labCli, writeLabHostsFile } from '../helpers/lab-cli.js';
import { useLab, type Lab } from '../lab/lab.js';

const LOG = '/var/log/kube-stub.log';
/** the SSH user of the installs below: not root, so every command runs through sudo, which logs it to the journal */
const USER = 'deploy';
/** files that held a join secret, all gone once the install is done */
const SECRET_FILES = '/etc/kube-bundle/cluster.env /etc/kube-bundle/kubeadm-init.yaml /etc/kube-bundle/kubeadm-join.yaml /etc/kube-bundle/kubeadm-upload-certs.yaml';

describe('bundle install in the lab', () => {
  const lab = useLab(4);
  let dir: string;
  let bundle: TestBundle;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-install-'));
    bundle = await buildTestBundle(dir, ['--runtime', 'containerd']);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const hostsFile = (name: string, roles: string[]) => writeLabHostsFile(lab(), join(dir, name), roles);
  /** the hosts h1, h2... with these roles (null: left out), logging in as USER */
  const sudoHostsFile = (name: string, roles: Array<string | null>) => {
    const lines = roles.flatMap((role, i) => (role ? [`${lab().hosts[i]!.ip} ${role} user=${USER}`] : []));
    writeFileSync(join(dir, name), lines.join('\n') + '\n');
    return join(dir, name);
  };
  const bundleCli = (args: string[], opts: { knownHosts?: string; bundleFile?: string; pubkey?: string } = {}) =>
    labCli(lab(), [...args, '--bundle', opts.bundleFile ?? bundle.file, '--pubkey', opts.pubkey ?? bundle.pubkey], opts);

  async function nothingInstalled(l: Lab, hosts: number[]): Promise<void> {
    for (const i of hosts) {
      const r = await l.ssh(i, 'test -e /var/lib/kube-bundle || test -e /etc/kube-bundle', { check: false });
      assert.notEqual(r.code, 0, `h${i} was not touched`);
    }
  }

  test('a wrong public key or a tampered bundle stops install before any host is touched', async () => {
    const hosts = hostsFile('h-faults.txt', ['control-plane', 'worker']);
    const other = join(dir, 'other.pub.asc');
    const { execFileSync } = await import('node:child_process');
    execFileSync(process.execPath, ['--import', 'tsx', CLI_MAIN, 'keygen', '--out', join(dir, 'other')]);
    copyFileSync(join(dir, 'other/signer.pub.asc'), other);
    const wrongKey = await bundleCli(['install', '--hosts', hosts], { pubkey: other });
    assert.equal(wrongKey.code, 2, wrongKey.stderr);
    assert.match(wrongKey.stderr, /failed verification[\s\S]*signature/);

    const tampered = join(dir, 'tampered.tar');
    copyFileSync(bundle.file, tampered);
    const fd = openSync(tampered, 'r+');
    const at = Math.floor(statSync(tampered).size / 3);
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    writeSync(fd, Buffer.from([(b[0] ?? 0) ^ 0xff]), 0, 1, at);
    closeSync(fd);
    const bad = await bundleCli(['install', '--hosts', hosts], { bundleFile: tampered });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /failed verification/);
    await nothingInstalled(lab(), [1, 2]);
  });

  test('an unknown host key is refused unless --accept-new-host-keys; a host that is down is named; nothing changes', async () => {
    const l = lab();
    const empty = join(dir, 'known_hosts.empty');
    writeFileSync(empty, '');
    const hosts = hostsFile('h-keys.txt', ['control-plane', 'worker']);
    const unknown = await bundleCli(['install', '--hosts', hosts, '--dry-run'], { knownHosts: empty });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /host key.*SHA256:/i);
    const accepted = await bundleCli(['install', '--hosts', hosts, '--dry-run', '--accept-new-host-keys'], { knownHosts: empty });
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.match(readFileSync(empty, 'utf8'), new RegExp(l.hosts[0]!.ip.replace(/\./g, '\\.')));
    assert.match(accepted.stderr + accepted.stdout, /kubeadm init --config/, 'the dry run shows the exact commands');

    const down = join(dir, 'h-down.txt');
    writeFileSync(down, `${l.hosts[0]!.ip} control-plane\n10.77.0.99 worker name=ghost\n`);
    const started = Date.now();
    const r = await bundleCli(['install', '--hosts', down]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot reach 1 of 2 host\(s\); nothing was changed[\s\S]*10\.77\.0\.99 \(.*h-down\.txt:2\)/);
    assert.ok(Date.now() - started < 60_000, 'a down host is reported within seconds, not minutes');
    await nothingInstalled(l, [1, 2]);
  });

  test('1 control plane + 2 workers: a package step that fails once is resumed by the re-run, then the cluster is up', async () => {
    const l = lab();
    await addSudoUser(l, [1, 2, 3, 4], USER, dir);
    const hosts = sudoHostsFile('h-3.txt', ['control-plane', 'worker', 'worker']);
    // Leave dpkg "interrupted" on h3, as a crashed upgrade does: apt refuses to install until it is dealt with.
    await l.ssh(3, 'mkdir -p /var/lib/dpkg/updates && echo broken > /var/lib/dpkg/updates/0001');
    const first = await bundleCli(['install', '--hosts', hosts]);
    assert.notEqual(first.code, 0);
    assert.match(first.stdout, /Install failed on 1 host\(s\)[\s\S]*h3 .*Install packages from the bundle/);
    await l.ssh(3, 'rm /var/lib/dpkg/updates/0001');

    const second = await bundleCli(['install', '--hosts', hosts]);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.match(second.stdout, /Cluster installed/);
    const packagesPhase = second.stderr.slice(second.stderr.indexOf('• Install packages'), second.stderr.indexOf('• Seed and start'));
    assert.match(packagesPhase, /– h1 \(.*\): already done/, 'the re-run resumed: h1 and h2 had finished their packages');
    assert.match(packagesPhase, /✓ h3 /);

    // kubeadm init ran on the control plane with the generated config; joins used the real CA hash and the init's
    // token; every config holding a secret was private (0600) while it existed (the stub's log keeps a copy)
    const cpLog = (await l.ssh(1, `cat ${LOG}`)).stdout;
    assert.match(cpLog, /kubeadm init --config \/etc\/kube-bundle\/kubeadm-init\.yaml/);
    const init = await stubKubeadmConfig(l, 1, 'init');
    assert.equal(init.mode, '600', 'the token and certificate key were in no world-readable file');
    const secrets = [configValue(init.text, 'token'), configValue(init.text, 'certificateKey')];
    const caHash = (await l.ssh(1, "openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1")).stdout.trim();
    for (const i of [2, 3]) {
      const joinConfig = await stubKubeadmConfig(l, i, 'join');
      assert.match(joinConfig.text, new RegExp(`sha256:${caHash}`));
      assert.equal(configValue(joinConfig.text, 'token'), secrets[0]);
      assert.equal(joinConfig.mode, '600', 'the token was in no world-readable file');
    }
    const nodes = (await l.ssh(1, 'kubectl get nodes')).stdout;
    for (const n of ['h1', 'h2', 'h3']) assert.match(nodes, new RegExp(`^${n}\\s`, 'm'));

    // The join token and certificate key appear in no output. On the hosts they never were in a process's
    // arguments (the stubs log theirs; sudo logs every command text sent to the journal), and once the joins are
    // done they are gone: from the cluster (the token is deleted by its public ID) and from every file.
    for (const secret of secrets) {
      for (const out of [first.stdout, first.stderr, second.stdout, second.stderr]) assert.ok(!out.includes(secret), 'a secret leaked into the output');
    }
    assert.match(await sudoJournal(l, 1), /COMMAND=.*kubeadm init --config/, 'sudo logged the commands to the journal');
    assert.match(cpLog, new RegExp(`kubeadm token delete ${secrets[0]!.slice(0, 6)}\n`));
    assert.ok(!(await l.ssh(1, 'kubeadm token list')).stdout.includes(secrets[0]!), 'the token is deleted from the cluster');
    for (const i of [1, 2, 3]) {
      assert.equal((await l.ssh(i, `ls ${SECRET_FILES} 2>/dev/null || true`)).stdout, '', `h${i}: the files that held secrets are removed`);
      await assertNoSecretOnHost(l, i, secrets);
    }

    // the bundle crossed the operator's link to h1, the registry host, only: the workers fetched their part from it
    // inside the site (no image, no registry or HA package), and the one-time key that let them is gone again
    assert.match(first.stderr, /h2 .*fetched [\d.]+ [KMG]i?B from h1 /);
    assert.doesNotMatch(first.stderr + second.stderr, /cannot fetch from/);
    assert.equal((await l.ssh(1, 'ls /var/lib/kube-bundle/current/images/blobs/sha256 | wc -l')).stdout.trim() !== '0', true);
    for (const i of [2, 3]) {
      assert.equal((await l.ssh(i, 'test -e /var/lib/kube-bundle/current/images; echo $?')).stdout.trim(), '1', `h${i} stores no image`);
      assert.equal((await l.ssh(i, 'ls /var/lib/kube-bundle/current/packages | grep -c -e docker-registry -e haproxy || true')).stdout.trim(), '0', `h${i} stores no registry or HA package`);
      assert.equal((await l.ssh(i, 'ls /var/lib/kube-bundle/bundles 2>/dev/null | wc -l')).stdout.trim(), '0', `h${i} keeps no bundle file`);
    }
    const authorized = (await l.ssh(1, `cat ~${USER}/.ssh/authorized_keys`)).stdout;
    assert.doesNotMatch(authorized, /kube-bundle-distribution/, 'the one-time key was removed');
    assert.match(authorized, /ssh-/, 'the login key is still there');
    assert.equal((await l.ssh(1, 'test -e /var/lib/kube-bundle/serve-bundle; echo $?')).stdout.trim(), '1', 'and so was its forced command');

    // every node pulls through containerd's registry config, from the seeded registry only
    for (const i of [1, 2, 3]) {
      for (const ref of ['registry.k8s.io/pause:3.10', 'ghcr.io/flannel-io/flannel:v0.26.5', 'ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1']) {
        await l.ssh(i, `ctr -n k8s.io images rm ${ref} >/dev/null 2>&1; ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d ${ref}`);
      }
    }
    // the registry speaks TLS only, and refuses pushes
    const plain = await l.ssh(2, `timeout 5 bash -c 'exec 3<>/dev/tcp/${l.hosts[0]!.ip}/5000; printf "GET /v2/ HTTP/1.0\\r\\n\\r\\n" >&3; cat <&3'`, { check: false });
    assert.match(plain.stdout, /HTTP\/1\.[01] 400|client sent an HTTP request to an HTTPS server/i);
    // trusting the CA for the registry's own address, a push reaches it over TLS and is refused
    await l.ssh(2, `mkdir -p /etc/containerd/certs.d/${l.hosts[0]!.ip}:5000 && printf '[host."https://${l.hosts[0]!.ip}:5000"]\n  ca = "/etc/kube-bundle/pki/ca.crt"\n' > /etc/containerd/certs.d/${l.hosts[0]!.ip}:5000/hosts.toml`);
    const push = await l.ssh(2, `ctr -n k8s.io images tag --force registry.k8s.io/pause:3.10 ${l.hosts[0]!.ip}:5000/pushed:1 >/dev/null && ctr -n k8s.io images push --hosts-dir /etc/containerd/certs.d ${l.hosts[0]!.ip}:5000/pushed:1 2>&1`, { check: false });
    assert.notEqual(push.code, 0, 'push refused');
    assert.doesNotMatch(push.stdout, /x509|certificate/i, 'refused by the registry, not by TLS');
    await l.ssh(2, `rm -r /etc/containerd/certs.d/${l.hosts[0]!.ip}:5000`);

    // a re-run changes nothing and says so
    const again = await bundleCli(['install', '--hosts', hosts]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Nothing to do/);

    // other settings on a re-run would be silently ignored by the phases already done: refused, naming them
    const changed = await bundleCli(['install', '--hosts', hosts, '--pod-cidr', '10.200.0.0/16']);
    assert.equal(changed.code, 2);
    assert.match(changed.stderr, /podCidr: the cluster has 10\.244\.0\.0\/16, this run asks for 10\.200\.0\.0\/16/);
  });

  test('a worker added to the hosts file is joined on the next run with a new token, deleted after; the rest untouched', async () => {
    const l = lab();
    const hosts = sudoHostsFile('h-4.txt', ['control-plane', 'worker', 'worker', 'worker']);
    const before = (await l.ssh(2, `wc -l < ${LOG}`)).stdout.trim();
    const r = await bundleCli(['install', '--hosts', hosts]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match((await l.ssh(1, 'kubectl get nodes')).stdout, /^h4\s/m);
    assert.equal((await l.ssh(2, `wc -l < ${LOG}`)).stdout.trim(), before, 'h2 ran no kube command');

    // the first install's token was deleted: kubeadm made a new one, printed it, and it is deleted in turn
    const cpLog = (await l.ssh(1, `cat ${LOG}`)).stdout;
    assert.match(cpLog, /kubeadm token create --ttl 24h0m0s --description kube-bundle\\ join\n/);
    const token = configValue((await stubKubeadmConfig(l, 4, 'join')).text, 'token');
    assert.match(cpLog, new RegExp(`kubeadm token delete ${token.slice(0, 6)}\n`));
    for (const i of [1, 4]) await assertNoSecretOnHost(l, i, [token]);
    assert.equal((await l.ssh(4, `ls ${SECRET_FILES} 2>/dev/null || true`)).stdout, '');
  });

  test('a registry started by a run cut before its journal line is this install\'s; a foreign holder of its port is named', async () => {
    const l = lab();
    const hosts = sudoHostsFile('h-4.txt', ['control-plane', 'worker', 'worker', 'worker']);
    // as a CLI killed after the registry started leaves h1: the registry runs, the journal does not say so
    const forget = () => l.ssh(1, "sed -i '/^registry /d; /^installed /d' /var/lib/kube-bundle/journal");
    await forget();
    const resumed = await bundleCli(['install', '--hosts', hosts]);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.match(resumed.stderr.slice(resumed.stderr.indexOf('• Seed and start')), /✓ h1 /, 'the registry phase ran again');

    // the same, but another program holds the port: refused, naming it; nothing changed
    await forget();
    // the same registry binary, but not kube-bundle's unit: told apart by the unit its process runs in
    await l.ssh(1, "systemctl stop kube-bundle-registry.service && printf 'version: 0.1\\nstorage:\\n  filesystem:\\n    rootdirectory: /tmp/foreign\\nhttp:\\n  addr: :5000\\n' > /tmp/foreign.yml && systemd-run --quiet --unit kb-foreign /usr/bin/docker-registry serve /tmp/foreign.yml");
    try {
      await l.ssh(1, 'for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null && exit 0; sleep 0.1; done; exit 1');
      const refused = await bundleCli(['install', '--hosts', hosts]);
      assert.equal(refused.code, 2, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /h1 .*: port 5000 already in use by docker-registry \(pid \d+, kb-foreign\.service\)/);
    } finally {
      await l.ssh(1, 'systemctl stop kb-foreign.service', { check: false });
    }
    const again = await bundleCli(['install', '--hosts', hosts]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal((await l.ssh(1, 'systemctl is-active kube-bundle-registry.service')).stdout.trim(), 'active');
  });

  test('bundle reset leaves the hosts able to install again: 3 control planes + 1 worker with an endpoint', async () => {
    const l = lab();
    const all = hostsFile('h-reset.txt', ['control-plane', 'worker', 'worker', 'worker']);
    const reset = await labCli(l, ['reset', '--hosts', all, '--yes']);
    assert.equal(reset.code, 0, reset.stderr);
    await nothingInstalled(l, [1, 2, 3, 4]);
    // on hosts already reset every step finds its target gone: a second reset succeeds and changes nothing
    const twice = await labCli(l, ['reset', '--hosts', all, '--yes']);
    assert.equal(twice.code, 0, twice.stdout + twice.stderr);
    await nothingInstalled(l, [1, 2, 3, 4]);

    // h3 joins as a control plane on a later run, when the init's token and key are deleted: kubeadm makes a
    // new token and a new certificate key, which reaches `upload-certs` in a config file
    const first = await bundleCli(['install', '--hosts', sudoHostsFile('h-ha2.txt', ['control-plane', 'control-plane', null, 'worker']), '--control-plane-endpoint', l.hosts[0]!.ip]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const r = await bundleCli(['install', '--hosts', sudoHostsFile('h-ha.txt', ['control-plane', 'control-plane', 'control-plane', 'worker']), '--control-plane-endpoint', l.hosts[0]!.ip]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const keys: string[] = [];
    for (const i of [2, 3]) {
      const config = await stubKubeadmConfig(l, i, 'join');
      assert.match(config.text, /controlPlane:[\s\S]*certificateKey: "[0-9a-f]{64}"/);
      keys.push(configValue(config.text, 'certificateKey'));
    }
    assert.notEqual(keys[1], keys[0], 'h3 joined with a new certificate key');
    const cpLog = (await l.ssh(1, `cat ${LOG}`)).stdout;
    assert.match(cpLog, /kubeadm certs certificate-key\n/);
    assert.match(cpLog, /kubeadm init phase upload-certs --upload-certs --config \/etc\/kube-bundle\/kubeadm-upload-certs\.yaml # config \S+ \(mode 600\)/);
    const token = configValue((await stubKubeadmConfig(l, 3, 'join')).text, 'token');
    for (const i of [1, 3]) await assertNoSecretOnHost(l, i, [token, keys[1]!]);
    const nodes = (await l.ssh(1, 'kubectl get nodes')).stdout;
    assert.equal(nodes.match(/control-plane/g)?.length, 3, nodes);
  });
  test('a bundle file changed on a host after the upload is refused by that host before any phase runs; mended, the re-run is a no-op', async () => {
    const l = lab();
    // the cluster as the test before left it (same settings, or the re-run is refused before any host is looked at)
    const hosts = sudoHostsFile('h-ha.txt', ['control-plane', 'control-plane', 'control-plane', 'worker']);
    const rerun = () => bundleCli(['install', '--hosts', hosts, '--control-plane-endpoint', l.hosts[0]!.ip]);
    const logBefore = (await l.ssh(4, `wc -l < ${LOG}`)).stdout.trim();
    // a script made setuid and given other content, as someone with a foothold on h4 would
    await l.ssh(4, 'cd /var/lib/kube-bundle/current && cp -p installer/prepare-host.sh /root/prepare-host.sh.orig && echo "id > /tmp/owned" >> installer/prepare-host.sh && chmod 4755 installer/prepare-host.sh');
    const refused = await rerun();
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout, /h4 .*Check the bundle on the hosts:[\s\S]*mode differs from the one kube-bundle packs: \.\/installer\/prepare-host\.sh/);
    assert.equal((await l.ssh(4, `wc -l < ${LOG}`)).stdout.trim(), logBefore, 'nothing ran on h4');
    assert.equal((await l.ssh(4, 'test -e /tmp/owned', { check: false })).code, 1);

    // the mode put back, the content is still not the signed one
    await l.ssh(4, 'chmod 0755 /var/lib/kube-bundle/current/installer/prepare-host.sh');
    const content = await rerun();
    assert.notEqual(content.code, 0);
    assert.match(content.stdout, /h4 .*Check the bundle on the hosts:[\s\S]*differs from its SHA256SUMS[\s\S]*installer\/prepare-host\.sh/);

    await l.ssh(4, 'cp -p /root/prepare-host.sh.orig /var/lib/kube-bundle/current/installer/prepare-host.sh');
    const mended = await rerun();
    assert.equal(mended.code, 0, mended.stdout + mended.stderr);
    assert.match(mended.stdout, /Nothing to do/);
  });
});
