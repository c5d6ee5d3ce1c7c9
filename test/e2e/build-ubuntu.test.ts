/**
 * `bundle build` for the Ubuntu targets, through the CLI, against the simulated upstream and the simulated Ubuntu
 * archive (test/upstream/ubuntu.ts: synthetic debs in Ubuntu's layout, signed with a test key trusted with
 * --trust-archive-key). One upstream serves both targets. What this shows: the target definitions name suites,
 * components, per-architecture archives and cri-dockerd assets that resolve; the closure takes the newest version
 * across the release, -updates and -security pockets and leaves out what a minimal Ubuntu host has; the bundle
 * verifies. It does not show that Ubuntu's real packages install: no test installs on an Ubuntu host.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { runCli } from '../helpers/cli.js';
import { startUpstream, type Upstream } from '../upstream/index.js';

interface BuiltPackage {
  name: string;
  version: string;
  arch: string;
  source: string;
}

interface LockFile {
  artifacts: { kind: string; name: string; arch: string; url: string }[];
}

/** What both series carry for kubeadm with both runtimes and --ha, beyond their differently named libraries. */
const COMMON = [
  'ca-certificates', 'conntrack', 'containerd', 'cri-dockerd', 'cri-tools', 'dmsetup', 'docker-registry', 'docker.io', 'ethtool',
  'haproxy', 'iproute2', 'iptables', 'keepalived', 'kubeadm', 'kubectl', 'kubelet', 'kubernetes-cni', 'libcap2', 'libcap2-bin',
  'libdevmapper1.02.1', 'libffi8', 'libip4tc2', 'libip6tc2', 'libmnl0', 'libnetfilter-conntrack3', 'libnfnetlink0', 'libnftnl11',
  'libnl-3-200', 'libnl-genl-3-200', 'libnl-route-3-200', 'libseccomp2', 'libwrap0', 'libxtables12', 'netbase', 'openssl',
  'runc', 'socat', 'tini',
];

/** Docker's side of the closure: absent from a containerd-only bundle. */
const DOCKER_ONLY = ['cri-dockerd', 'dmsetup', 'docker.io', 'libdevmapper1.02.1', 'tini'];

const TARGETS = [
  {
    target: 'ubuntu-22.04',
    codename: 'jammy',
    libraries: ['libbpf0', 'libelf1', 'libglib2.0-0', 'liblua5.3-0', 'libssl3'],
    /** name → [version, the pocket/component it must come from] */
    pockets: {
      containerd: ['1.7.24-0ubuntu1~22.04.2', 'jammy-updates/main'], // -updates newer than -security and release
      'ca-certificates': ['20240203~22.04.1', 'jammy-security/main'], // -security newer than -updates
      'docker.io': ['24.0.7-0ubuntu2~22.04.1', undefined], // the same version in -updates and -security
      runc: ['1.1.12-0ubuntu2~22.04.1', undefined],
      iptables: ['1.8.7-1ubuntu5.2', 'jammy-updates/main'],
      libip4tc2: ['1.8.7-1ubuntu5.2', 'jammy-updates/main'], // pinned (=) by iptables
      ethtool: ['1:5.16-1', 'jammy/main'], // only in the release pocket
      'docker-registry': ['2.8.0+ds1-4', 'jammy/universe'],
    } as Record<string, [string, string | undefined]>,
    /** in the closure's reach but on every minimal jammy host */
    onHost: ['libc6', 'libpcre3', 'libsystemd0', 'libselinux1', 'zlib1g', 'adduser', 'debconf', 'init-system-helpers', 'mount', 'util-linux'],
  },
  {
    target: 'ubuntu-24.04',
    codename: 'noble',
    libraries: ['libbpf1', 'libelf1t64', 'libglib2.0-0t64', 'liblua5.4-0', 'libssl3t64'],
    pockets: {
      containerd: ['1.7.27-0ubuntu1~24.04.1', 'noble-updates/main'],
      'docker.io': ['27.5.1-0ubuntu3~24.04.2', 'noble-updates/universe'], // -security has an older one
      'ca-certificates': ['20241223~24.04.1', 'noble-security/main'],
      runc: ['1.2.5-0ubuntu1~24.04.1', undefined],
      iptables: ['1.8.10-3ubuntu2', 'noble/main'],
      'libdevmapper1.02.1': ['2:1.02.185-3ubuntu3.2', 'noble-updates/main'],
      'docker-registry': ['2.8.2+ds1-1build3', 'noble/universe'],
    } as Record<string, [string, string | undefined]>,
    onHost: ['libc6', 'libpcre2-8-0', 'libsystemd0', 'libselinux1', 'zlib1g', 'adduser', 'debconf', 'init-system-helpers', 'usr-is-merged', 'usrmerge', 'perl', 'mount', 'util-linux'],
  },
];

const CRI_DOCKERD_JAMMY = 'https://github.com/Mirantis/cri-dockerd/releases/download/v0.3.16/cri-dockerd_0.3.16.3-0.ubuntu-jammy_amd64.deb';

describe('bundle build v1.32.3 for the Ubuntu targets, from a simulated Ubuntu archive', () => {
  let upstream: Upstream;
  let dir: string;
  /** every flag but the target's: the simulated upstream and archive, their keys, the pins, one cache */
  let common: string[];

  const build = (target: string, extra: string[]) => runCli(['build', 'v1.32.3', '-t', target, ...common, '--json', ...extra]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-build-ubuntu-'));
    upstream = await startUpstream({ ubuntu: true });
    const keygen = await runCli(['keygen', '--out', join(dir, 'keys')]);
    assert.equal(keygen.code, 0, keygen.stderr);
    common = [
      ...upstream.mirrorFlags.flatMap((m) => ['--mirror', m]),
      '--trust-key', upstream.k8sKeyFile,
      '--trust-archive-key', upstream.ubuntuKeyFile as string,
      ...upstream.pinFlags.flatMap((p) => ['--pin', p]),
      '--cache', join(dir, 'cache'),
    ];
  });

  after(async () => {
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const t of TARGETS) {
    test(`${t.target}: --ha with both runtimes carries the closure, each package from its newest pocket, and verifies`, async () => {
      const output = join(dir, `${t.target}.tar`);
      const r = await build(t.target, ['--ha', '--key', join(dir, 'keys/signer.asc'), '-o', output]);
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout) as { target: string; packages: BuiltPackage[]; lockFile: string };
      assert.equal(result.target, t.target);
      const byName = new Map(result.packages.map((p) => [p.name, p]));
      assert.deepEqual([...byName.keys()].sort(), [...COMMON, ...t.libraries].sort());

      for (const [name, [version, source]] of Object.entries(t.pockets)) {
        const pkg = byName.get(name);
        assert.equal(pkg?.version, version, `${name}'s version`);
        if (source) assert.equal(pkg?.source, source, `${name}'s pocket`);
        else assert.match(pkg?.source ?? '', new RegExp(`^${t.codename}-(updates|security)/`), `${name}'s pocket`);
      }
      for (const name of t.onHost) assert.ok(!byName.has(name), `${name} is on every minimal ${t.codename} host, not in the bundle`);

      // cri-dockerd: the release's Ubuntu jammy asset (noble has none of its own), not the Debian one
      assert.equal(byName.get('cri-dockerd')?.version, '0.3.16~3-0~ubuntu-jammy');
      const lock = parse(readFileSync(result.lockFile, 'utf8')) as LockFile;
      assert.deepEqual(lock.artifacts.filter((a) => a.name === 'cri-dockerd').map((a) => a.url), [CRI_DOCKERD_JAMMY]);
      // the distribution's debs keep Ubuntu's upstream URLs (the mirror is not recorded), main and universe in one pool
      const ubuntuDebs = lock.artifacts.filter((a) => a.kind === 'deb' && byName.get(a.name)?.source.startsWith(t.codename));
      assert.equal(ubuntuDebs.length, COMMON.length + t.libraries.length - 6); // less the 5 Kubernetes packages and cri-dockerd
      for (const a of ubuntuDebs) assert.match(a.url, /^http:\/\/archive\.ubuntu\.com\/ubuntu\/pool\/(main|universe)\/[^/]+\/[^/]+\/[^/]+_(amd64|all)\.deb$/, a.name);
      assert.match(lock.artifacts.find((a) => a.name === 'docker.io')?.url ?? '', /\/pool\/universe\/d\/docker\.io\//);

      const verify = await runCli(['verify', output, '--pubkey', join(dir, 'keys/signer.pub.asc')]);
      assert.equal(verify.code, 0, verify.stderr);
      assert.match(verify.stdout, /OK, \d+ files intact, signed by [0-9A-F]{40}/);
      const inspect = await runCli(['inspect', output, '--json']);
      assert.equal(inspect.code, 0, inspect.stderr);
      const manifest = (JSON.parse(inspect.stdout) as { manifest: { target: string; components: { packages: { name: string; version: string }[] } } }).manifest;
      assert.equal(manifest.target, t.target);
      assert.deepEqual(
        manifest.components.packages.map((p) => `${p.name} ${p.version}`).sort(),
        result.packages.map((p) => `${p.name} ${p.version}`).sort(),
        'bundle.yaml lists what the build resolved',
      );
    });

    test(`${t.target}: --runtime containerd carries neither the Docker engine nor cri-dockerd`, async () => {
      const r = await build(t.target, ['--runtime', 'containerd', '--dry-run']);
      assert.equal(r.code, 0, r.stderr);
      const names = new Set((JSON.parse(r.stdout) as { packages: BuiltPackage[] }).packages.map((p) => p.name));
      for (const name of DOCKER_ONLY) assert.ok(!names.has(name), `${name} is Docker's`);
      for (const name of ['containerd', 'runc', 'libseccomp2', 'docker-registry', 'kubelet']) assert.ok(names.has(name), `${name} is carried`);
    });
  }

  test('ubuntu-24.04 for arm64 takes Ubuntu\'s packages from ports.ubuntu.com', async () => {
    const output = join(dir, 'arm64.tar');
    const r = await build('ubuntu-24.04', ['-a', 'arm64', '--runtime', 'containerd', '--unsigned', '-o', output]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { packages: BuiltPackage[]; lockFile: string };
    const ubuntu = new Set(result.packages.filter((p) => p.source.startsWith('noble')).map((p) => p.name));
    assert.ok(ubuntu.has('containerd') && ubuntu.has('libssl3t64'), [...ubuntu].join(' '));
    const lock = parse(readFileSync(result.lockFile, 'utf8')) as LockFile;
    const debs = lock.artifacts.filter((a) => a.kind === 'deb' && ubuntu.has(a.name));
    assert.equal(debs.length, ubuntu.size);
    for (const a of debs) assert.match(a.url, /^http:\/\/ports\.ubuntu\.com\/ubuntu-ports\/pool\/.+_(arm64|all)\.deb$/, a.name);
    assert.ok(debs.some((a) => a.arch === 'arm64'));
  });

  test('without --trust-archive-key the simulated archive is not trusted', async () => {
    const untrusted = common.filter((flag, i) => flag !== '--trust-archive-key' && common[i - 1] !== '--trust-archive-key');
    const r = await runCli(['build', 'v1.32.3', '-t', 'ubuntu-22.04', ...untrusted, '--dry-run']);
    assert.equal(r.code, 2, r.stderr);
    // this machine has no Ubuntu keyring (the error names it); one that has it refuses the test key's signature
    assert.match(r.stderr, /\/usr\/share\/keyrings\/ubuntu-archive-keyring\.gpg|http:\/\/archive\.ubuntu\.com\/ubuntu\/dists\/jammy[^ ]*\/InRelease/);
  });
});
