/**
 * The apt core against this machine's real Debian 12 lists (`apt-get update` must have run): parse bookworm main,
 * bookworm-updates and bookworm-security for amd64, check each list against its InRelease, resolve a closure and
 * compare it with what apt's own solver installs on an empty system.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as openpgp from 'openpgp';
import { PackageIndex, type PackageSource } from '../../src/core/apt/index.js';
import { parseRelease, verifyIndexFile } from '../../src/core/apt/release.js';
import { baseSystem, resolveClosure } from '../../src/core/apt/solver.js';

const LISTS = '/var/lib/apt/lists';
const SUITES = ['bookworm', 'bookworm-updates', 'bookworm-security'];
const ROOTS = ['containerd', 'runc', 'docker.io', 'docker-registry', 'conntrack', 'iptables', 'ethtool'];
const INDEX_PATH = 'main/binary-amd64/Packages';

/** The list file of a suite; apt names it after the archive URL, which this test does not need to know. */
function listFile(suite: string, suffix: string): string {
  const marker = `_dists_${suite}_${suffix}`;
  const found = readdirSync(LISTS).find((f) => f.includes(marker) && !f.includes('.diff'));
  if (!found) throw new Error(`no ${LISTS}/*${marker}* (run apt-get update first)`);
  return join(LISTS, found);
}

/** apt may keep lists compressed (lz4 here); apt-helper decompresses whatever apt wrote. */
function readList(path: string): Buffer {
  return execFileSync('/usr/lib/apt/apt-helper', ['cat-file', path], { maxBuffer: 256 << 20 });
}

/** What apt's own solver installs on a system with nothing installed, without Recommends: `name=version`, by name. */
function aptSimulate(packages: string[], emptyStatus: string): string[] {
  const out = execFileSync(
    'apt-get',
    ['-s', '-o', `Dir::State::status=${emptyStatus}`, '-o', 'Dir::Cache::pkgcache=', '-o', 'Dir::Cache::srcpkgcache=', '-o', 'APT::Install-Recommends=false', 'install', ...packages],
    { maxBuffer: 16 << 20, env: { ...process.env, LC_ALL: 'C' } },
  ).toString('utf8');
  return out
    .split('\n')
    .filter((l) => l.startsWith('Inst '))
    .map((l) => /^Inst (\S+) \((\S+)/.exec(l) ?? [])
    .sort((a, b) => ((a[1] ?? '') < (b[1] ?? '') ? -1 : 1))
    .map(([, name, version]) => `${name}=${version}`);
}

/** A flat repository like pkgs.k8s.io's v1.32 one, with both architectures in one Packages file. */
function k8sPackages(): string {
  const stanza = (name: string, version: string, arch: string, depends?: string) =>
    [`Package: ${name}`, `Version: ${version}`, `Architecture: ${arch}`, ...(depends ? [`Depends: ${depends}`] : []), `Filename: ${arch}/${name}_${version}_${arch}.deb`, 'Size: 1000', `SHA256: ${'ab'.repeat(32)}`].join('\n');
  const stanzas: string[] = [];
  for (const arch of ['amd64', 'arm64']) {
    stanzas.push(
      stanza('kubelet', '1.32.2-1.1', arch, 'iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), iproute2, mount, conntrack, util-linux, ethtool'),
      stanza('kubelet', '1.32.3-1.1', arch, 'iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), iproute2, mount, conntrack, util-linux, ethtool'),
      stanza('kubeadm', '1.32.3-1.1', arch, 'cri-tools (>= 1.30.0)'),
      stanza('kubectl', '1.32.3-1.1', arch),
      stanza('cri-tools', '1.32.0-1.1', arch),
      stanza('kubernetes-cni', '1.5.1-1.1', arch),
      stanza('kubernetes-cni', '1.6.0-1.1', arch),
    );
  }
  return stanzas.join('\n\n') + '\n';
}

describe('apt core on the real bookworm lists', () => {
  let lists: Map<string, Buffer>;
  let index: PackageIndex;
  let work: string;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'apt-real-'));
    lists = new Map(SUITES.map((suite) => [suite, readList(listFile(suite, `main_binary-amd64_Packages`))]));
    const sources: PackageSource[] = SUITES.map((suite) => ({
      label: suite,
      baseUrl: `https://archive.invalid/${suite}/`,
      packages: lists.get(suite) as Buffer,
      packagesUrl: listFile(suite, 'main_binary-amd64_Packages'),
    }));
    const started = performance.now();
    index = PackageIndex.build(sources, 'amd64');
    const ms = performance.now() - started;
    const mb = [...lists.values()].reduce((n, t) => n + t.length, 0) / 1e6;
    process.stdout.write(`parsed ${mb.toFixed(1)} MB of Packages into an index in ${ms.toFixed(0)} ms\n`);
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('each list matches the size and SHA-256 its InRelease gives', async () => {
    for (const suite of SUITES) {
      const inRelease = readFileSync(listFile(suite, 'InRelease'), 'utf8');
      // apt checked the signature when it fetched the list; here only the signed text matters.
      const body = (await openpgp.readCleartextMessage({ cleartextMessage: inRelease })).getText();
      const release = parseRelease(body, listFile(suite, 'InRelease'));
      assert.equal(release.codename, suite);
      const expected = release.files.get(INDEX_PATH);
      assert.ok(expected, `${suite} InRelease lists ${INDEX_PATH}`);
      verifyIndexFile({ path: INDEX_PATH, url: listFile(suite, 'main_binary-amd64_Packages'), compression: 'none', expected }, lists.get(suite) as Buffer);
    }
  });

  it('indexes tens of thousands of packages, with candidates from the newest source', () => {
    assert.ok([...index.packageNames()].length > 50_000);
    const containerd = index.versionsOf('containerd');
    assert.ok(containerd.length >= 1);
    assert.ok(index.candidate('libc6')?.stanza.startsWith('Package: libc6\n'));
  });

  it('resolves the closure of the container runtime packages, leaving out the base system', () => {
    const started = performance.now();
    const closure = resolveClosure(index, ROOTS.map((name) => ({ name })), { excludePriorityRequired: true });
    process.stdout.write(`resolved ${closure.packages.length} packages (${closure.excluded.length} left to the host) in ${(performance.now() - started).toFixed(0)} ms\n`);
    const names = closure.packages.map((p) => p.name);
    for (const needed of [...ROOTS, 'tini', 'libnetfilter-conntrack3', 'libnfnetlink0', 'libmnl0', 'libxtables12', 'libip4tc2', 'libnftnl11', 'libdevmapper1.02.1']) {
      assert.ok(names.includes(needed), `closure should contain ${needed}: ${names.join(' ')}`);
    }
    const excluded = new Map(closure.excluded.map((e) => [e.name, e]));
    assert.match(excluded.get('libc6')?.reason ?? 'missing', /^dependency of required package /);
    assert.ok(excluded.has('libseccomp2'), 'libseccomp2 is on every bookworm host (apt needs it)');
    assert.equal(excluded.get('init-system-helpers')?.reason, 'Essential: yes');
    const base = baseSystem(index);
    assert.deepEqual(names.filter((n) => base.has(n)), [], 'no base-system package in the closure');
  });

  it('resolves kubeadm, kubelet and kubectl from a flat repository over the Debian sources', () => {
    const k8s: PackageSource = { label: 'k8s-v1.32', baseUrl: 'https://k8s.invalid/v1.32/deb/', packages: k8sPackages(), packagesUrl: 'k8s Packages' };
    const debian = SUITES.map((suite) => ({ label: suite, baseUrl: `https://archive.invalid/${suite}/`, packages: lists.get(suite) as Buffer, packagesUrl: suite }));
    const withK8s = PackageIndex.build([k8s, ...debian], 'amd64');
    const closure = resolveClosure(withK8s, [{ name: 'kubeadm', version: '1.32.3-1.1' }, { name: 'kubelet', version: '1.32.3-1.1' }, { name: 'kubectl' }], { excludePriorityRequired: true });
    const chosen = new Map(closure.packages.map((p) => [p.name, p]));
    assert.equal(chosen.get('kubelet')?.filename, 'amd64/kubelet_1.32.3-1.1_amd64.deb');
    assert.equal(chosen.get('kubernetes-cni')?.version, '1.6.0-1.1');
    assert.equal(chosen.get('cri-tools')?.source, 'k8s-v1.32');
    for (const fromDebian of ['conntrack', 'ethtool', 'iproute2', 'iptables']) assert.equal(chosen.get(fromDebian)?.source, 'bookworm', fromDebian);
    const excluded = closure.excluded.map((e) => e.name);
    assert.ok(excluded.includes('mount') && excluded.includes('util-linux'), `mount and util-linux are on every host: ${excluded.join(' ')}`);
  });

  it('picks the same packages and versions as apt on an empty system', () => {
    const emptyStatus = join(work, 'status');
    writeFileSync(emptyStatus, '');
    const full = resolveClosure(index, ROOTS.map((name) => ({ name })), { excludePriorityRequired: false });
    assert.deepEqual(full.packages.map((p) => `${p.name}=${p.version}`), aptSimulate(ROOTS, emptyStatus));
  });

  it('a minimal host as debootstrap makes it has usr-is-merged, not usrmerge: perl is then carried for keepalived', () => {
    const base = baseSystem(index, ['usr-is-merged']);
    assert.ok(base.has('usr-is-merged'));
    assert.ok(!base.has('usrmerge') && !base.has('libperl5.36'), 'usrmerge and perl are not on a minimal host');
    const closure = resolveClosure(index, [{ name: 'keepalived' }], { excludePriorityRequired: true, minimalHost: ['usr-is-merged'] });
    const names = closure.packages.map((p) => p.name);
    for (const name of ['libperl5.36', 'perl-modules-5.36', 'libgdbm6']) assert.ok(names.includes(name), `${name} is carried`);
  });

  it('computes the same base system as apt installing every required and essential package', () => {
    const emptyStatus = join(work, 'status');
    writeFileSync(emptyStatus, '');
    const seeds = [...index.packageNames()].filter((n) => {
      const c = index.candidate(n);
      return c?.priority === 'required' || c?.essential;
    });
    const fromApt = aptSimulate(seeds, emptyStatus).map((l) => l.split('=')[0]);
    assert.deepEqual([...baseSystem(index).keys()].sort(), fromApt);
  });
});
