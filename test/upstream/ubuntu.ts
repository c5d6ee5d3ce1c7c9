/**
 * Simulated Ubuntu archive for the ubuntu-22.04 (jammy) and ubuntu-24.04 (noble) targets: archive.ubuntu.com/ubuntu
 * for amd64 and ports.ubuntu.com/ubuntu-ports for arm64, laid out as Ubuntu's are: `dists/<codename>{,-updates,
 * -security}/InRelease` (signed with a test key) listing `{main,universe}/binary-<arch>/Packages{,.gz}`, whose
 * `Filename`s point into one `pool/<component>/<prefix>/<source>/` shared by every series and pocket; a version that
 * is in both -updates and -security is one pool file listed by both, as in the real archive.
 *
 * The debs are synthetic (dpkg-deb, through debs.ts: a control file and one placeholder file each), not Ubuntu's:
 * Ubuntu's archive cannot be reached from the machines the tests run on, and re-indexing Debian's real debs would
 * download hundreds of MB (docker.io, containerd, haproxy and their libraries) and still not be Ubuntu's packages.
 * A build never unpacks a distribution package: it checks the InRelease signature, the Packages hashes, each deb's
 * size and sha256, and solves the closure from the stanzas. So what the simulation has to get right is the stanzas,
 * and those follow Ubuntu's: the package names of each series (noble's 64-bit time_t renames such as libssl3t64),
 * Ubuntu's version forms (epochs, `buildN`, `~22.04.1` in -updates/-security), the components (docker.io,
 * docker-registry and tini in universe) and the priorities that decide what a minimal host has. Dependencies are
 * reduced to those that shape the closure (library chains, exact-version pins between binaries of one source, a
 * cycle, alternatives, packages of the base system that the closure must leave out); versions are Ubuntu-style, not
 * a copy of any day's archive.
 */
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readDebControl } from '../../src/core/apt/debfile.js';
import { releaseDate, renderFlatRepo, signRelease, type RepoPackage } from '../../src/core/apt/flatrepo.js';
import { sha256File, sha256Of } from '../../src/util/digest.js';
import { buildDebSet, type StubDebSpec } from './debs.js';
import { type RequestRecord, startStaticServer, stopServing } from './http.js';
import { TEST_CACHE_DIR } from './registry/debian-package.js';
import { testSigningKey } from './test-key.js';

/** The archives the Ubuntu targets name (bundles/targets/ubuntu-*.yaml), each with its path on the simulated server. */
export const UBUNTU_ARCHIVES = [
  { upstream: 'http://archive.ubuntu.com/ubuntu', path: '/ubuntu', arch: 'amd64' },
  { upstream: 'http://ports.ubuntu.com/ubuntu-ports', path: '/ubuntu-ports', arch: 'arm64' },
] as const;

export type UbuntuSeries = 'jammy' | 'noble';
type Component = 'main' | 'universe';
/** the release pocket, -updates, -security */
type Pocket = 'release' | 'updates' | 'security';
const POCKETS: readonly Pocket[] = ['release', 'updates', 'security'];

export interface ArchivePackage {
  name: string;
  component: Component;
  /** the source package, which names the pool directory; the package's own name when absent */
  source?: string;
  all?: true;
  priority?: 'required' | 'important';
  essential?: true;
  /** relations; `{v}` stands for the package's own version (binaries of one source pinned to each other) */
  preDepends?: string;
  depends?: string;
  provides?: string;
  /** its version in each pocket that has it */
  versions: Partial<Record<Pocket, string>>;
}

const p = (name: string, component: Component, versions: Partial<Record<Pocket, string>>, more: Omit<ArchivePackage, 'name' | 'component' | 'versions'> = {}): ArchivePackage => ({ name, component, versions, ...more });

/** What every minimal host of either series has: Priority required or Essential, and what they depend on. */
function baseSystem(series: UbuntuSeries): ArchivePackage[] {
  return [
    p('libc6', 'main', { release: series === 'jammy' ? '2.35-0ubuntu3' : '2.39-0ubuntu8', updates: series === 'jammy' ? '2.35-0ubuntu3.9' : '2.39-0ubuntu8.4' }, { source: 'glibc', depends: 'libgcc-s1' }),
    p('libgcc-s1', 'main', { release: series === 'jammy' ? '12-20220319-1ubuntu1' : '14-20240412-0ubuntu1' }, { source: 'gcc-12', depends: 'libc6 (>= 2.35)' }),
    p('dpkg', 'main', { release: series === 'jammy' ? '1.21.1ubuntu2' : '1.22.6ubuntu6', updates: series === 'jammy' ? '1.21.1ubuntu2.3' : '1.22.6ubuntu6.1' }, { priority: 'required', essential: true, preDepends: 'libc6 (>= 2.34), zlib1g (>= 1:1.1.4)' }),
    p('zlib1g', 'main', { release: series === 'jammy' ? '1:1.2.11.dfsg-2ubuntu9' : '1:1.3.dfsg-3.1ubuntu2', updates: series === 'jammy' ? '1:1.2.11.dfsg-2ubuntu9.2' : undefined }, { source: 'zlib', priority: 'required', depends: 'libc6 (>= 2.14)' }),
    p('perl-base', 'main', { release: series === 'jammy' ? '5.34.0-3ubuntu1' : '5.38.2-3.2build2', security: series === 'jammy' ? '5.34.0-3ubuntu1.3' : '5.38.2-3.2ubuntu0.1' }, { source: 'perl', priority: 'required', essential: true, preDepends: 'libc6 (>= 2.35), libcrypt1 (>= 1:4.1.0)' }),
    p('libcrypt1', 'main', { release: series === 'jammy' ? '1:4.4.27-1' : '1:4.4.36-4build1' }, { source: 'libxcrypt', priority: 'required', depends: 'libc6 (>= 2.25)' }),
    p('util-linux', 'main', { release: series === 'jammy' ? '2.37.2-4ubuntu3' : '2.39.3-9ubuntu6', updates: series === 'jammy' ? '2.37.2-4ubuntu3.4' : '2.39.3-9ubuntu6.2' }, { priority: 'required', essential: true, preDepends: 'libc6 (>= 2.34), libmount1 (>= 2.37.2), libselinux1 (>= 3.1~), libsystemd0, libudev1 (>= 183)' }),
    p('mount', 'main', { release: series === 'jammy' ? '2.37.2-4ubuntu3' : '2.39.3-9ubuntu6', updates: series === 'jammy' ? '2.37.2-4ubuntu3.4' : '2.39.3-9ubuntu6.2' }, { source: 'util-linux', priority: 'required', depends: 'util-linux (= {v}), libmount1 (= {v})' }),
    p('libmount1', 'main', { release: series === 'jammy' ? '2.37.2-4ubuntu3' : '2.39.3-9ubuntu6', updates: series === 'jammy' ? '2.37.2-4ubuntu3.4' : '2.39.3-9ubuntu6.2' }, { source: 'util-linux', depends: 'libc6 (>= 2.34), libselinux1 (>= 3.1~)' }),
    p('libselinux1', 'main', { release: series === 'jammy' ? '3.3-1build2' : '3.5-2ubuntu2' }, { source: 'libselinux', depends: 'libc6 (>= 2.34), libpcre2-8-0 (>= 10.22)' }),
    p('libpcre2-8-0', 'main', { release: series === 'jammy' ? '10.39-3ubuntu0.1' : '10.42-4ubuntu2' }, { source: 'pcre2', depends: 'libc6 (>= 2.14)' }),
    p('libsystemd0', 'main', { release: series === 'jammy' ? '249.11-0ubuntu3' : '255.4-1ubuntu8', updates: series === 'jammy' ? `249.11-0ubuntu3.12` : '255.4-1ubuntu8.5' }, { source: 'systemd', depends: 'libc6 (>= 2.34)' }),
    p('libudev1', 'main', { release: series === 'jammy' ? '249.11-0ubuntu3' : '255.4-1ubuntu8', updates: series === 'jammy' ? `249.11-0ubuntu3.12` : '255.4-1ubuntu8.5' }, { source: 'systemd', depends: 'libc6 (>= 2.34)' }),
    p('grep', 'main', { release: series === 'jammy' ? '3.7-1build1' : '3.11-4build1' }, { priority: 'required', essential: true, preDepends: series === 'jammy' ? 'libc6 (>= 2.34), libpcre3' : 'libc6 (>= 2.34), libpcre2-8-0 (>= 10.34)' }),
    ...(series === 'jammy' ? [p('libpcre3', 'main', { release: '2:8.39-13ubuntu0.22.04.1' }, { source: 'pcre3', depends: 'libc6 (>= 2.14)' })] : []),
    p('debconf', 'main', { release: series === 'jammy' ? '1.5.79ubuntu1' : '1.5.86ubuntu1' }, { all: true, priority: 'required', preDepends: 'perl-base (>= 5.20.1-3~)', provides: 'debconf-2.0' }),
    p('passwd', 'main', { release: series === 'jammy' ? '1:4.8.1-2ubuntu2' : '1:4.13+dfsg1-4ubuntu3', updates: series === 'jammy' ? '1:4.8.1-2ubuntu2.2' : `1:4.13+dfsg1-4ubuntu3.2` }, { source: 'shadow', priority: 'required', depends: 'libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0), libselinux1 (>= 3.1~)' }),
    p('adduser', 'main', { release: series === 'jammy' ? '3.118ubuntu5' : '3.137ubuntu1' }, { all: true, priority: 'required', depends: 'passwd' }),
    // noble's init-system-helpers asks for a merged /usr, which debootstrap satisfies with usr-is-merged (the
    // target's minimalHost); jammy's predates the usrmerge packages.
    p('init-system-helpers', 'main', { release: series === 'jammy' ? '1.62' : '1.66ubuntu1' }, { all: true, priority: 'required', depends: series === 'jammy' ? 'perl-base (>= 5.20.1-3)' : 'usrmerge | usr-is-merged' }),
    ...(series === 'noble'
      ? [
          p('usr-is-merged', 'main', { release: '39ubuntu1' }, { source: 'usrmerge', all: true }),
          p('usrmerge', 'main', { release: '39ubuntu1' }, { all: true, depends: 'perl (>= 5.10.0-19)' }),
          p('perl', 'main', { release: '5.38.2-3.2build2', security: '5.38.2-3.2ubuntu0.1' }, { depends: 'perl-base (= {v})' }),
        ]
      : []),
    p('base-files', 'main', { release: series === 'jammy' ? '12ubuntu4' : '13ubuntu10', updates: series === 'jammy' ? '12ubuntu4.7' : '13ubuntu10.2' }, { priority: 'required', essential: true, depends: 'libc6 (>= 2.34)' }),
  ];
}

/** What the target's package sets, kubelet and cri-dockerd pull in beyond the base system. */
function closurePackages(series: UbuntuSeries): ArchivePackage[] {
  if (series === 'jammy') {
    const ipt = { release: '1.8.7-1ubuntu5', updates: '1.8.7-1ubuntu5.2' };
    const ssl = { release: '3.0.2-0ubuntu1', updates: '3.0.2-0ubuntu1.18', security: '3.0.2-0ubuntu1.18' };
    const cap = { release: '1:2.44-1build3', updates: '1:2.44-1ubuntu0.22.04.1', security: '1:2.44-1ubuntu0.22.04.1' };
    const nl = { release: '3.5.0-0.1' };
    return [
      // the container runtimes: -updates is newer than -security for containerd, both list the same runc
      p('containerd', 'main', { release: '1.5.9-0ubuntu3', updates: '1.7.24-0ubuntu1~22.04.2', security: '1.7.24-0ubuntu1~22.04.1' }, { depends: 'libc6 (>= 2.34), libseccomp2 (>= 2.5.0), runc (>= 1.1.0~)' }),
      p('runc', 'main', { release: '1.1.0-0ubuntu1', updates: '1.1.12-0ubuntu2~22.04.1', security: '1.1.12-0ubuntu2~22.04.1' }, { depends: 'libc6 (>= 2.34), libseccomp2 (>= 2.5.0)' }),
      p('libseccomp2', 'main', { release: '2.5.3-2ubuntu2', updates: '2.5.3-2ubuntu3~22.04.1' }, { source: 'libseccomp', depends: 'libc6 (>= 2.14)' }),
      p('docker.io', 'universe', { release: '20.10.12-0ubuntu4', updates: '24.0.7-0ubuntu2~22.04.1', security: '24.0.7-0ubuntu2~22.04.1' }, {
        preDepends: 'init-system-helpers (>= 1.54~)',
        depends: 'adduser, containerd (>= 1.2.6-0ubuntu1~), iptables, debconf (>= 0.5) | debconf-2.0, libc6 (>= 2.34), libdevmapper1.02.1 (>= 2:1.02.97), libsystemd0 (>= 209~), runc (>= 1.0.0~rc10~), tini (>= 0.16.1-1~)',
      }),
      p('tini', 'universe', { release: '0.19.0-1' }),
      p('libdevmapper1.02.1', 'main', { release: '2:1.02.175-2.1ubuntu4' }, { source: 'lvm2', depends: 'libc6 (>= 2.34), libselinux1 (>= 3.1~), libudev1 (>= 183), dmsetup (>= 2:1.02.175-2.1ubuntu4~)' }),
      p('dmsetup', 'main', { release: '2:1.02.175-2.1ubuntu4' }, { source: 'lvm2', depends: 'libc6 (>= 2.34), libdevmapper1.02.1 (>= 2:1.02.175), libudev1 (>= 183)' }),
      p('docker-registry', 'universe', { release: '2.8.0+ds1-4' }, { depends: 'adduser, libc6 (>= 2.34)' }),
      // what install uses on the hosts; -security is newer than -updates for ca-certificates
      p('ca-certificates', 'main', { release: '20211016', updates: '20230311ubuntu0.22.04.1', security: '20240203~22.04.1' }, { all: true, priority: 'important', depends: 'openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0' }),
      p('openssl', 'main', ssl, { depends: 'libc6 (>= 2.34), libssl3 (>= 3.0.2-0ubuntu1.2)' }),
      p('libssl3', 'main', ssl, { source: 'openssl', depends: 'libc6 (>= 2.34)' }),
      p('iptables', 'main', ipt, { priority: 'important', depends: 'libip4tc2 (= {v}), libip6tc2 (= {v}), libxtables12 (= {v}), libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~), libnetfilter-conntrack3 (>= 1.0.6), libnfnetlink0, libnftnl11 (>= 1.1.6), netbase' }),
      p('libip4tc2', 'main', ipt, { source: 'iptables', depends: 'libc6 (>= 2.28)' }),
      p('libip6tc2', 'main', ipt, { source: 'iptables', depends: 'libc6 (>= 2.28)' }),
      p('libxtables12', 'main', ipt, { source: 'iptables', depends: 'libc6 (>= 2.34)' }),
      p('libmnl0', 'main', { release: '1.0.4-3build2' }, { source: 'libmnl', depends: 'libc6 (>= 2.14)' }),
      p('libnetfilter-conntrack3', 'main', { release: '1.0.9-1' }, { source: 'libnetfilter-conntrack', depends: 'libc6 (>= 2.14), libmnl0 (>= 1.0.3-4~), libnfnetlink0 (>= 1.0.1)' }),
      p('libnfnetlink0', 'main', { release: '1.0.1-3build3' }, { source: 'libnfnetlink', depends: 'libc6 (>= 2.14)' }),
      p('libnftnl11', 'main', { release: '1.2.1-1build1' }, { source: 'libnftnl', depends: 'libc6 (>= 2.14), libmnl0 (>= 1.0.3-4~)' }),
      p('netbase', 'main', { release: '6.3' }, { all: true, priority: 'important' }),
      p('conntrack', 'main', { release: '1:1.4.6-2build2' }, { source: 'conntrack-tools', depends: 'libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~), libnetfilter-conntrack3 (>= 1.0.8), libnfnetlink0' }),
      p('ethtool', 'main', { release: '1:5.16-1' }, { priority: 'important', depends: 'libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~)' }),
      p('socat', 'main', { release: '1.7.4.1-3ubuntu4' }, { depends: 'libc6 (>= 2.34), libssl3 (>= 3.0.0~~alpha1), libwrap0 (>= 7.6-4~)' }),
      p('libwrap0', 'main', { release: '7.6.q-31build2' }, { source: 'tcp-wrappers', depends: 'libc6 (>= 2.33)' }),
      // kubelet's iproute2
      p('iproute2', 'main', { release: '5.15.0-1ubuntu2' }, { priority: 'important', depends: 'libbpf0 (>= 1:0.5.0), libc6 (>= 2.34), libcap2-bin, libelf1 (>= 0.131), libmnl0 (>= 1.0.3-4~), libselinux1 (>= 3.1~), libxtables12 (>= 1.6.0+snapshot20161117)' }),
      p('libbpf0', 'main', { release: '1:0.5.0-1', updates: '1:0.5.0-1ubuntu22.04.1' }, { source: 'libbpf', depends: 'libc6 (>= 2.34), libelf1 (>= 0.144), zlib1g (>= 1:1.2.3.3)' }),
      p('libelf1', 'main', { release: '0.186-1build1' }, { source: 'elfutils', depends: 'libc6 (>= 2.34), zlib1g (>= 1:1.1.4)' }),
      p('libcap2-bin', 'main', cap, { source: 'libcap2', depends: 'libc6 (>= 2.34), libcap2 (>= 1:2.33)' }),
      p('libcap2', 'main', cap, { depends: 'libc6 (>= 2.34)' }),
      // --ha
      p('haproxy', 'main', { release: '2.4.14-1ubuntu1', updates: '2.4.24-0ubuntu0.22.04.1', security: '2.4.24-0ubuntu0.22.04.1' }, { depends: 'libc6 (>= 2.34), libcrypt1 (>= 1:4.1.0), liblua5.3-0, libpcre2-8-0 (>= 10.22), libssl3 (>= 3.0.0~~alpha1), libsystemd0, zlib1g (>= 1:1.1.4), adduser' }),
      p('liblua5.3-0', 'main', { release: '5.3.6-1build1' }, { source: 'lua5.3', depends: 'libc6 (>= 2.34)' }),
      p('keepalived', 'main', { release: '1:2.2.4-0.2build1' }, { depends: 'iproute2, libc6 (>= 2.34), libglib2.0-0 (>= 2.26.0), libmnl0 (>= 1.0.3-4~), libnftnl11 (>= 1.1.2), libnl-3-200 (>= 3.2.27), libnl-genl-3-200 (>= 3.2.7), libnl-route-3-200 (>= 3.2.7), libssl3 (>= 3.0.0~~alpha1), libsystemd0' }),
      p('libglib2.0-0', 'main', { release: '2.72.1-1', updates: '2.72.4-0ubuntu2.4', security: '2.72.4-0ubuntu2.4' }, { source: 'glib2.0', depends: 'libc6 (>= 2.34), libffi8 (>= 3.4), libmount1 (>= 2.35.2-7~), libpcre3, libselinux1 (>= 3.1~), zlib1g (>= 1:1.2.2)' }),
      p('libffi8', 'main', { release: '3.4.2-4' }, { source: 'libffi', depends: 'libc6 (>= 2.34)' }),
      p('libnl-3-200', 'main', nl, { source: 'libnl3', depends: 'libc6 (>= 2.14)' }),
      p('libnl-genl-3-200', 'main', nl, { source: 'libnl3', depends: 'libc6 (>= 2.14), libnl-3-200 (= {v})' }),
      p('libnl-route-3-200', 'main', nl, { source: 'libnl3', depends: 'libc6 (>= 2.14), libnl-3-200 (= {v})' }),
    ];
  }
  const ipt = { release: '1.8.10-3ubuntu2' };
  const ssl = { release: '3.0.13-0ubuntu3', updates: '3.0.13-0ubuntu3.5', security: '3.0.13-0ubuntu3.5' };
  const cap = { release: '1:2.66-5ubuntu2', updates: '1:2.66-5ubuntu2.2', security: '1:2.66-5ubuntu2.2' };
  const nl = { release: '3.7.0-0.3build1' };
  return [
    p('containerd', 'main', { release: '1.7.12-0ubuntu4', updates: '1.7.27-0ubuntu1~24.04.1', security: '1.7.24-0ubuntu1~24.04.2' }, { depends: 'libc6 (>= 2.34), libseccomp2 (>= 2.5.0), runc (>= 1.1.0~)' }),
    p('runc', 'main', { release: '1.1.12-0ubuntu3', updates: '1.2.5-0ubuntu1~24.04.1', security: '1.2.5-0ubuntu1~24.04.1' }, { depends: 'libc6 (>= 2.34), libseccomp2 (>= 2.5.0)' }),
    p('libseccomp2', 'main', { release: '2.5.5-1ubuntu3', updates: '2.5.5-1ubuntu3.1' }, { source: 'libseccomp', depends: 'libc6 (>= 2.14)' }),
    p('docker.io', 'universe', { release: '24.0.7-0ubuntu4', updates: '27.5.1-0ubuntu3~24.04.2', security: '26.1.3-0ubuntu1~24.04.1' }, {
      preDepends: 'init-system-helpers (>= 1.54~)',
      depends: 'adduser, containerd (>= 1.7.0~), iptables, debconf (>= 0.5) | debconf-2.0, libc6 (>= 2.34), libdevmapper1.02.1 (>= 2:1.02.97), libsystemd0 (>= 209~), runc (>= 1.1.0~), tini (>= 0.16.1-1~)',
    }),
    p('tini', 'universe', { release: '0.19.0-1build3' }),
    p('libdevmapper1.02.1', 'main', { release: '2:1.02.185-3ubuntu3', updates: '2:1.02.185-3ubuntu3.2' }, { source: 'lvm2', depends: 'libc6 (>= 2.38), libselinux1 (>= 3.1~), libudev1 (>= 183), dmsetup (>= 2:1.02.185-3ubuntu3~)' }),
    p('dmsetup', 'main', { release: '2:1.02.185-3ubuntu3', updates: '2:1.02.185-3ubuntu3.2' }, { source: 'lvm2', depends: 'libc6 (>= 2.38), libdevmapper1.02.1 (>= 2:1.02.185), libudev1 (>= 183)' }),
    p('docker-registry', 'universe', { release: '2.8.2+ds1-1build3' }, { depends: 'adduser, libc6 (>= 2.34)' }),
    p('ca-certificates', 'main', { release: '20240203', updates: '20240203ubuntu0.24.04.1', security: '20241223~24.04.1' }, { all: true, priority: 'important', depends: 'openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0' }),
    p('openssl', 'main', ssl, { depends: 'libc6 (>= 2.34), libssl3t64 (>= 3.0.13)' }),
    // the 64-bit time_t rename keeps the old name as a versioned Provides on 64-bit architectures
    p('libssl3t64', 'main', ssl, { source: 'openssl', depends: 'libc6 (>= 2.34)', provides: 'libssl3 (= {v})' }),
    p('iptables', 'main', ipt, { priority: 'important', depends: 'libip4tc2 (= {v}), libip6tc2 (= {v}), libxtables12 (= {v}), libc6 (>= 2.38), libmnl0 (>= 1.0.3-4~), libnetfilter-conntrack3 (>= 1.0.6), libnfnetlink0, libnftnl11 (>= 1.2.6), netbase' }),
    p('libip4tc2', 'main', ipt, { source: 'iptables', depends: 'libc6 (>= 2.28)' }),
    p('libip6tc2', 'main', ipt, { source: 'iptables', depends: 'libc6 (>= 2.28)' }),
    p('libxtables12', 'main', ipt, { source: 'iptables', depends: 'libc6 (>= 2.38)' }),
    p('libmnl0', 'main', { release: '1.0.5-2build1' }, { source: 'libmnl', depends: 'libc6 (>= 2.14)' }),
    p('libnetfilter-conntrack3', 'main', { release: '1.0.9-6build1' }, { source: 'libnetfilter-conntrack', depends: 'libc6 (>= 2.14), libmnl0 (>= 1.0.3-4~), libnfnetlink0 (>= 1.0.1)' }),
    p('libnfnetlink0', 'main', { release: '1.0.2-2build1' }, { source: 'libnfnetlink', depends: 'libc6 (>= 2.14)' }),
    p('libnftnl11', 'main', { release: '1.2.6-2build1' }, { source: 'libnftnl', depends: 'libc6 (>= 2.14), libmnl0 (>= 1.0.3-4~)' }),
    p('netbase', 'main', { release: '6.4' }, { all: true, priority: 'important' }),
    p('conntrack', 'main', { release: '1:1.4.8-1ubuntu1' }, { source: 'conntrack-tools', depends: 'libc6 (>= 2.38), libmnl0 (>= 1.0.3-4~), libnetfilter-conntrack3 (>= 1.0.9), libnfnetlink0' }),
    p('ethtool', 'main', { release: '1:6.7-1build1' }, { priority: 'important', depends: 'libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~)' }),
    p('socat', 'main', { release: '1.8.0.0-4build3' }, { depends: 'libc6 (>= 2.38), libssl3t64 (>= 3.0.0), libwrap0 (>= 7.6-4~)' }),
    p('libwrap0', 'main', { release: '7.6.q-33' }, { source: 'tcp-wrappers', depends: 'libc6 (>= 2.33)' }),
    p('iproute2', 'main', { release: '6.1.0-1ubuntu6' }, { priority: 'important', depends: 'libbpf1 (>= 1:0.6.0), libc6 (>= 2.38), libcap2-bin, libelf1t64 (>= 0.131), libmnl0 (>= 1.0.3-4~), libselinux1 (>= 3.1~), libxtables12 (>= 1.6.0+snapshot20161117)' }),
    p('libbpf1', 'main', { release: '1:1.3.0-2build2' }, { source: 'libbpf', depends: 'libc6 (>= 2.38), libelf1t64 (>= 0.144), zlib1g (>= 1:1.2.3.3)' }),
    p('libelf1t64', 'main', { release: '0.190-1.1build4' }, { source: 'elfutils', depends: 'libc6 (>= 2.38), zlib1g (>= 1:1.1.4)', provides: 'libelf1 (= {v})' }),
    p('libcap2-bin', 'main', cap, { source: 'libcap2', depends: 'libc6 (>= 2.34), libcap2 (>= 1:2.63)' }),
    p('libcap2', 'main', cap, { depends: 'libc6 (>= 2.38)' }),
    p('haproxy', 'main', { release: '2.8.5-1ubuntu3', updates: '2.8.5-1ubuntu3.3', security: '2.8.5-1ubuntu3.3' }, { depends: 'libc6 (>= 2.38), libcrypt1 (>= 1:4.1.0), liblua5.4-0 (>= 5.4.6), libpcre2-8-0 (>= 10.22), libssl3t64 (>= 3.0.0), libsystemd0, zlib1g (>= 1:1.1.4), adduser' }),
    p('liblua5.4-0', 'main', { release: '5.4.6-3build2' }, { source: 'lua5.4', depends: 'libc6 (>= 2.38)' }),
    p('keepalived', 'main', { release: '1:2.2.8-1build2' }, { depends: 'iproute2, libc6 (>= 2.38), libglib2.0-0t64 (>= 2.26.0), libmnl0 (>= 1.0.3-4~), libnftnl11 (>= 1.1.2), libnl-3-200 (>= 3.2.27), libnl-genl-3-200 (>= 3.2.7), libnl-route-3-200 (>= 3.2.7), libssl3t64 (>= 3.0.0), libsystemd0' }),
    p('libglib2.0-0t64', 'main', { release: '2.80.0-6ubuntu1', updates: '2.80.0-6ubuntu3.4', security: '2.80.0-6ubuntu3.4' }, { source: 'glib2.0', depends: 'libc6 (>= 2.38), libffi8 (>= 3.4), libmount1 (>= 2.35.2-7~), libpcre2-8-0 (>= 10.22), libselinux1 (>= 3.1~), zlib1g (>= 1:1.2.2)', provides: 'libglib2.0-0 (= {v})' }),
    p('libffi8', 'main', { release: '3.4.6-1build1' }, { source: 'libffi', depends: 'libc6 (>= 2.34)' }),
    p('libnl-3-200', 'main', nl, { source: 'libnl3', depends: 'libc6 (>= 2.14)' }),
    p('libnl-genl-3-200', 'main', nl, { source: 'libnl3', depends: 'libc6 (>= 2.14), libnl-3-200 (= {v})' }),
    p('libnl-route-3-200', 'main', nl, { source: 'libnl3', depends: 'libc6 (>= 2.14), libnl-3-200 (= {v})' }),
  ];
}

export function archivePackages(series: UbuntuSeries): ArchivePackage[] {
  return [...baseSystem(series), ...closurePackages(series)];
}

const SERIES: Record<UbuntuSeries, { version: string; released: Date }> = {
  jammy: { version: '22.04', released: new Date('2022-04-21T17:16:08Z') },
  noble: { version: '24.04', released: new Date('2024-04-25T15:18:12Z') },
};
/** -updates and -security: the day after v1.32.3 was released, as the simulated pkgs.k8s.io. */
const POCKET_DATE = new Date('2025-03-12T00:00:00Z');
const KEY_DATE = new Date('2018-09-17T15:01:46Z');

/** `pool/main/libs/libssl3/…`: Ubuntu's pool, by component, then `lib` + one letter or the first letter, then source. */
function poolPath(pkg: ArchivePackage, version: string, arch: string): string {
  const source = pkg.source ?? pkg.name;
  const prefix = source.startsWith('lib') ? source.slice(0, 4) : source.slice(0, 1);
  return `pool/${pkg.component}/${prefix}/${source}/${pkg.name}_${version.replace(/^\d+:/, '')}_${pkg.all ? 'all' : arch}.deb`;
}

function debSpec(pkg: ArchivePackage, version: string, arch: 'amd64' | 'arm64'): StubDebSpec {
  const relation = (text: string | undefined) => text?.replaceAll('{v}', version);
  const fields: Array<readonly [string, string | undefined]> = [
    ['Maintainer', 'Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>'],
    ['Essential', pkg.essential ? 'yes' : undefined],
    ['Source', pkg.source],
    ['Pre-Depends', relation(pkg.preDepends)],
    ['Depends', relation(pkg.depends)],
    ['Provides', relation(pkg.provides)],
    ['Section', pkg.component === 'universe' ? 'universe/admin' : 'admin'],
    ['Priority', pkg.priority ?? 'optional'],
    ['Description', `${pkg.name} (kube-bundle test stand-in for Ubuntu's package)`],
  ];
  return {
    package: pkg.name,
    version,
    upstreamVersion: version.replace(/^\d+:/, '').replace(/-[^-]*$/, ''),
    arch: pkg.all ? 'all' : arch,
    fields: fields.filter((f): f is readonly [string, string] => f[1] !== undefined),
    mainBinary: `usr/share/doc/${pkg.name}/kube-bundle-stand-in`,
    outPath: poolPath(pkg, version, arch),
  };
}

export interface UbuntuArchive {
  /** base URL; Ubuntu's archive is at `${url}/ubuntu`, its ports at `${url}/ubuntu-ports` */
  url: string;
  /** the armored public test key that signs every InRelease: `bundle build --trust-archive-key` */
  keyFile: string;
  /** `--mirror` values from the upstream archive URLs the Ubuntu targets name to this server */
  mirrorFlags: string[];
  requests: RequestRecord[];
  stop(): Promise<void>;
}

export async function startUbuntuArchive({ host, workDir }: { host: string; workDir: string }): Promise<UbuntuArchive> {
  await mkdir(workDir, { recursive: true });
  const key = await testSigningKey(workDir, {
    secretFile: 'ubuntu-archive-signing-key.asc',
    publicKeyFile: 'ubuntu-archive-key.asc',
    userId: 'Ubuntu Archive Automatic Signing Key (kube-bundle test key)',
    created: KEY_DATE,
  });
  const root = await mkdtemp(path.join(workDir, 'ubuntu-archive-'));
  try {
    await writeArchives(root, key.secretKey);
    const server = await startStaticServer({ root, host });
    return {
      url: server.url,
      keyFile: key.publicKeyFile,
      mirrorFlags: UBUNTU_ARCHIVES.map((a) => `${a.upstream}=${server.url}${a.path}`),
      requests: server.requests,
      stop: () => stopServing([server], root),
    };
  } catch (err) {
    await stopServing([], root);
    throw err;
  }
}

interface Listing {
  dir: string;
  series: UbuntuSeries;
  pocket: Pocket;
  component: Component;
  arch: 'amd64' | 'arm64';
  spec: StubDebSpec;
}

/** Every (archive, series, pocket, component, arch) listing of a deb: what the Packages files are made of. */
function listings(): Listing[] {
  return UBUNTU_ARCHIVES.flatMap(({ path: dir, arch }) =>
    (Object.keys(SERIES) as UbuntuSeries[]).flatMap((series) =>
      archivePackages(series).flatMap((pkg) =>
        POCKETS.flatMap((pocket) => {
          const version = pkg.versions[pocket];
          return version ? [{ dir, series, pocket, component: pkg.component, arch, spec: debSpec(pkg, version, arch) }] : [];
        }),
      ),
    ),
  );
}

async function writeArchives(root: string, signingKey: Parameters<typeof signRelease>[1]): Promise<void> {
  const all = listings();
  const built = await buildDebSet(all.map((l) => l.spec), path.join(TEST_CACHE_DIR, 'ubuntu-debs'));
  const debFile = new Map(built.debs.map((d) => [d.spec.outPath, d.path]));
  // each pool file is copied once per archive and described once
  const described = new Map<string, RepoPackage>();
  for (const l of all) {
    const target = path.join(root, l.dir, l.spec.outPath);
    if (described.has(target)) continue;
    const source = debFile.get(l.spec.outPath) as string;
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(source, target);
    const [control, { size, sha256 }] = await Promise.all([readDebControl(source), sha256File(source)]);
    described.set(target, { filename: l.spec.outPath, control, size, sha256 });
  }
  for (const { path: dir, arch } of UBUNTU_ARCHIVES) {
    for (const series of Object.keys(SERIES) as UbuntuSeries[]) {
      for (const pocket of POCKETS) {
        const suite = pocket === 'release' ? series : `${series}-${pocket}`;
        const suiteDir = path.join(root, dir, 'dists', suite);
        const indexFiles: { name: string; bytes: Buffer }[] = [];
        for (const component of ['main', 'universe'] as const) {
          const packages = all
            .filter((l) => l.dir === dir && l.series === series && l.pocket === pocket && l.component === component)
            .map((l) => described.get(path.join(root, dir, l.spec.outPath)) as RepoPackage);
          // renderFlatRepo's Packages and Packages.gz are what a dists/ component holds; its flat Release is not used
          const rendered = await renderFlatRepo(packages, { origin: 'Ubuntu', label: 'Ubuntu', date: POCKET_DATE }, `${suiteDir}/${component}`);
          for (const file of rendered.filter((f) => f.name.startsWith('Packages'))) {
            indexFiles.push({ name: `${component}/binary-${arch}/${file.name}`, bytes: file.bytes });
          }
        }
        const release = suiteRelease(series, pocket, suite, arch, indexFiles);
        const date = pocket === 'release' ? SERIES[series].released : POCKET_DATE;
        for (const file of [...indexFiles, { name: 'Release', bytes: Buffer.from(release) }, ...(await signRelease(release, signingKey, date))]) {
          await mkdir(path.dirname(path.join(suiteDir, file.name)), { recursive: true });
          await writeFile(path.join(suiteDir, file.name), file.bytes);
        }
      }
    }
  }
}

/** A suite's Release file, in the fields and order Ubuntu's have. */
function suiteRelease(series: UbuntuSeries, pocket: Pocket, suite: string, arch: string, files: { name: string; bytes: Buffer }[]): string {
  const { version, released } = SERIES[series];
  const name = series[0]?.toUpperCase() + series.slice(1);
  const lines = [
    'Origin: Ubuntu',
    'Label: Ubuntu',
    `Suite: ${suite}`,
    `Version: ${version}`,
    `Codename: ${series}`,
    `Date: ${releaseDate(pocket === 'release' ? released : POCKET_DATE)}`,
    `Architectures: ${arch}`,
    'Components: main universe',
    `Description: Ubuntu ${name} ${pocket === 'release' ? version : pocket === 'updates' ? 'Updates' : 'Security'}`,
    'SHA256:',
    ...files.map((f) => ` ${sha256Of(f.bytes)} ${String(f.bytes.length).padStart(16)} ${f.name}`),
  ];
  return lines.join('\n') + '\n';
}
