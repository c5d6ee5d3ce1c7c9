/**
 * Debian 13 "trixie" end to end: `bundle build v1.32.3 -t debian-13` with Debian's real trixie packages from this
 * machine's archive (the rest from the simulated upstream), its closure installed in a bare debootstrap minbase root
 * with no other package source, then `bundle install` of 1 control plane + 2 workers on trixie lab hosts (systemd
 * 257) with the upstream stopped: every package and image can only come from the bundle.
 *
 * The hosts have the network air-gapped data centers have: two NICs — eth0 on the management network 10.77.0.0/24,
 * eth1 on the cluster network 10.78.0.0/24 — and no default route at all. They are listed by their cluster address,
 * which every component must then use: kubeadm's advertiseAddress, the kubelet's --node-ip, /etc/hosts, flanneld's
 * interface (which by default follows the default route: none here).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { loadTarget } from '../../src/core/definitions.js';
import { buildTestBundle, TEST_BUILD_CACHE, type TestBundle } from '../helpers/bundle.js';
import { debianArchiveUrl } from '../helpers/debian.js';
import { labCli } from '../helpers/lab-cli.js';
import { useLab } from '../lab/lab.js';

/** debootstrap's minbase of trixie, kept between runs next to the build cache (it takes about a minute). */
const MINBASE = join(TEST_BUILD_CACHE, '..', 'trixie-minbase');

/** Builds the cached minbase root once; a `.partial` left by an interrupted run is started again. */
function trixieMinbase(): string {
  if (existsSync(join(MINBASE, 'etc/os-release'))) return MINBASE;
  const partial = `${MINBASE}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  execFileSync('debootstrap', ['--variant=minbase', 'trixie', partial, debianArchiveUrl()], { stdio: 'pipe', timeout: 15 * 60_000 });
  renameSync(partial, MINBASE);
  return MINBASE;
}

/**
 * Runs `script` as root in a throw-away overlay of the minbase root (its own mount namespace, /proc and /dev), with
 * `files` copied in first. policy-rc.d keeps the packages' init scripts from starting daemons in the chroot.
 */
function inMinimalRoot(script: string, files: Record<string, string>): string {
  const work = mkdtempSync(join(tmpdir(), 'kb-trixie-root-'));
  const root = join(work, 'root');
  for (const d of ['upper', 'work', 'root']) mkdirSync(join(work, d));
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${trixieMinbase()},upperdir=${join(work, 'upper')},workdir=${join(work, 'work')}`, root]);
  try {
    for (const [from, to] of Object.entries(files)) execFileSync('cp', ['-a', from, join(root, to)]);
    writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    const enter = `mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && exec chroot "$1" bash -euc "$2"`;
    return execFileSync('unshare', ['-m', '--propagation', 'private', 'bash', '-c', enter, 'enter', root, script], {
      encoding: 'utf8', timeout: 10 * 60_000, stdio: ['ignore', 'pipe', 'pipe'],
    });
  } finally {
    execFileSync('umount', [root]);
    rmSync(work, { recursive: true, force: true });
  }
}

describe('Debian 13: build -t debian-13, its closure in a minimal root, an install on trixie hosts', () => {
  const lab = useLab(3, { suite: 'trixie', lockWaitMs: 600_000, net2: '10.78.0', defaultRoute: false });
  let dir: string;
  let bundle: TestBundle;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-trixie-'));
    // both runtimes and --ha: the closure check below covers every package a debian-13 bundle can carry
    bundle = await buildTestBundle(dir, ['--ha'], { target: 'debian-13' });
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the bundle carries trixie\'s packages, and they install in a minbase root with only the bundle\'s repository', () => {
    const lock = parse(readFileSync(bundle.lockFile, 'utf8')) as { artifacts: { kind: string; name: string; version: string; url: string }[] };
    const debs = new Map(lock.artifacts.filter((a) => a.kind === 'deb').map((a) => [a.name, a]));
    const expected: [string, RegExp][] = [
      ['containerd', /^1\.7\.24~/], ['runc', /^1\.1\.15\+/], ['docker.io', /^26\.1\./], ['docker-cli', /^26\.1\./],
      ['haproxy', /^3\.0\./], ['keepalived', /^1:2\.3\./], ['docker-registry', /^2\.8\.3\+/], ['kubeadm', /^1\.32\.3-1\.1$/],
      ['cri-dockerd', /^0\.3\.16~3-0~debian-bookworm$/],
    ];
    for (const [name, version] of expected) assert.match(debs.get(name)?.version ?? 'missing', version, name);
    assert.match(debs.get('containerd')!.url, /^http:\/\/ftp\.debian\.org\/debian\/pool\//, 'upstream names in the lock file');
    assert.ok(!debs.has('libc6') && !debs.has('usr-is-merged'), 'what every minimal trixie host has is left out');

    const x = join(dir, 'x');
    mkdirSync(x);
    execFileSync('tar', ['xf', bundle.file, '-C', x, 'packages']);
    const p = loadTarget('debian-13').packages;
    const wanted = ['kubeadm', 'kubelet', 'kubectl', 'cri-dockerd', ...p.containerd, ...p.docker, ...p.registry, ...p.ha, ...p.host];
    const out = inMinimalRoot(
      [
        'rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*',
        'echo "deb [signed-by=/etc/apt/bundle.asc] file:/root/packages ./" > /etc/apt/sources.list.d/bundle.list',
        'apt-get update -q >/dev/null',
        `DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${wanted.join(' ')} >/root/apt.log 2>&1 || { tail -n 40 /root/apt.log; exit 1; }`,
        `dpkg-query -W -f '\${Package} \${Status}\\n' ${wanted.join(' ')}`,
      ].join('\n'),
      { [join(x, 'packages')]: 'root/packages', [bundle.pubkey]: 'etc/apt/bundle.asc' },
    );
    for (const name of wanted) assert.match(out, new RegExp(`^${name.replaceAll('.', '\\.')} install ok installed$`, 'm'), out);
  });

  test('1 control plane + 2 workers on Debian 13 hosts with two NICs and no default route, upstream stopped: containerd 1.7 with a version 2 config, every component on the cluster address', async () => {
    const l = lab();
    assert.match((await l.ssh(1, '. /etc/os-release; echo $VERSION_ID; systemctl --version | head -n 1')).stdout, /^13\nsystemd 257/);
    assert.equal((await l.ssh(1, 'ip route show default')).stdout.trim(), '', 'no default route');
    const cluster = l.hosts.map((h) => h.ip2!);
    const hosts = join(dir, 'hosts.txt');
    writeFileSync(hosts, `${cluster[0]} control-plane\n${cluster[1]} worker\n${cluster[2]} worker\n`);
    const install = () => labCli(l, ['install', '--hosts', hosts, '--bundle', bundle.file, '--pubkey', bundle.pubkey]);
    const first = await install();
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, /Cluster installed/);

    const nodes = (await l.ssh(1, 'kubectl get nodes -o wide')).stdout;
    for (const n of ['h1', 'h2', 'h3']) assert.match(nodes, new RegExp(`^${n}\\s+Ready\\s.*containerd://1\\.7\\.24`, 'm'), nodes);
    // every node registered with its cluster address, and every component was told it (the stubs record what they got)
    for (const [k, n] of ['h1', 'h2', 'h3'].entries()) {
      assert.match(nodes, new RegExp(`^${n}\\s.*\\s${cluster[k]!.replaceAll('.', '\\.')}\\s`, 'm'), `${n}'s INTERNAL-IP`);
      assert.match((await l.ssh(k + 1, 'cat /var/lib/kubelet/kubeadm-flags.env')).stdout, new RegExp(`--node-ip=${cluster[k]!.replaceAll('.', '\\.')}\\b`), `${n}: the kubelet's --node-ip`);
      assert.match((await l.ssh(k + 1, 'sed -n "/BEGIN kube-bundle/,/END kube-bundle/p" /etc/hosts')).stdout, new RegExp(`^${cluster[0]!.replaceAll('.', '\\.')} h1$`, 'm'), `${n}: /etc/hosts`);
    }
    const initConfig = (await l.ssh(1, 'ls /var/log/kube-stub/ | grep -- -init.yaml | head -n 1')).stdout.trim();
    const init = (await l.ssh(1, `cat /var/log/kube-stub/${initConfig}`)).stdout;
    assert.match(init, new RegExp(`advertiseAddress: "${cluster[0]!.replaceAll('.', '\\.')}"`), "kubeadm init's advertiseAddress");
    assert.match(init, new RegExp(`name: "node-ip"\\n\\s+value: "${cluster[0]!.replaceAll('.', '\\.')}"|value: "${cluster[0]!.replaceAll('.', '\\.')}"`), "kubeadm init's kubeletExtraArgs node-ip");
    // flanneld's interface, as the stub kubectl worked it out from the applied DaemonSet: eth1, the cluster NIC
    assert.match((await l.ssh(1, 'cat /var/log/kube-stub.log')).stdout, new RegExp(`kubectl flanneld-interface eth1 ${cluster[0]!.replaceAll('.', '\\.')}\\n`));
    assert.match((await l.ssh(1, 'cat /etc/kube-bundle/kube-flannel.yml')).stdout, /name: FLANNELD_IFACE\n\s+valueFrom:\n\s+fieldRef:\n\s+fieldPath: status\.hostIP/);
    for (const i of [1, 2, 3]) {
      // containerd's own view of the config install wrote: the 1.x format, systemd cgroups, the bundled pause image
      const dump = (await l.ssh(i, 'containerd config dump')).stdout;
      assert.match(dump, /^version = 2$/m, `h${i}`);
      assert.match(dump, /SystemdCgroup = true/, `h${i}`);
      assert.match(dump, /sandbox_image = "registry\.k8s\.io\/pause:3\.10"/, `h${i}`);
      assert.match(dump, /config_path = "\/etc\/containerd\/certs\.d"/, `h${i}`);
    }
    // a worker pulls by the upstream name, through certs.d, from the seeded registry only
    await l.ssh(3, 'ctr -n k8s.io images rm ghcr.io/flannel-io/flannel:v0.26.5 >/dev/null 2>&1; ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d ghcr.io/flannel-io/flannel:v0.26.5');

    const again = await install();
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Nothing to do/);
  });
});
