/**
 * Stub .debs standing in for the real kubeadm/kubelet/kubectl/kubernetes-cni/cri-tools (pkgs.k8s.io) and cri-dockerd
 * (GitHub releases) packages. Their control stanzas copy upstream's (names, versions, Depends, Maintainer, …); their
 * contents come from test/upstream/stubs/<package>/ (a tree mirroring the install root, `@VERSION@` replaced by the
 * upstream version in text files) or, without such a tree, one placeholder script at the package's main binary.
 *
 * Built with `dpkg-deb --build --root-owner-group` under a fixed SOURCE_DATE_EPOCH and fixed mtimes, into a cache
 * directory named by a hash of every input (this file, the specs, the stub trees), so reruns reuse the debs.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, symlink, utimes, lutimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { TEST_CACHE_DIR } from './registry/debian-package.js';

const run = promisify(execFile);

/** 2025-03-11T00:00:00Z, the day v1.32.3 was released: the mtime of every file and ar member. */
export const STUB_SOURCE_DATE_EPOCH = 1741651200;

const here = path.dirname(fileURLToPath(import.meta.url));
const STUBS_DIR = path.join(here, 'stubs');

export interface StubDebSpec {
  package: string;
  /** Debian version, e.g. `1.32.3-1.1` or `0.3.16~3-0~debian-bookworm` */
  version: string;
  /** what `@VERSION@` becomes in the stub tree, e.g. `1.32.3` */
  upstreamVersion: string;
  /** `all` for an architecture-independent package */
  arch: 'amd64' | 'arm64' | 'all';
  /** control fields after Package/Version/Architecture/Installed-Size, in upstream's order */
  fields: ReadonlyArray<readonly [string, string]>;
  /** where the placeholder goes when there is no stub tree */
  mainBinary: string;
  /** path of the built deb inside the set's directory */
  outPath: string;
  /** served only by an upstream started with `upgrades` (see K8S_REPOS) */
  upgrade?: boolean;
}

export interface StubDeb {
  spec: StubDebSpec;
  /** absolute path of the built .deb */
  path: string;
}

export interface StubDebSet {
  /** directory holding every deb at its spec's outPath */
  dir: string;
  debs: StubDeb[];
}

/** Directory (inside a StubDebSet) of the debs of one pkgs.k8s.io minor repo, laid out as `<arch>/<file>.deb`. */
export const k8sRepoDir = (minor: K8sMinor): string => `k8s-${minor}`;
/** Directory (inside a StubDebSet) of the cri-dockerd release assets. */
export const CRI_DOCKERD_DIR = 'cri-dockerd';

export type K8sMinor = 'v1.34' | 'v1.33' | 'v1.32' | 'v1.31';

interface K8sPackage {
  name: string;
  version: string;
  mainBinary: string;
  depends?: string;
  summary: string;
  description: string;
  /** served only with `upgrades` */
  upgrade: boolean;
}

/**
 * Package versions per repo. Depends as pkgs.k8s.io writes them, without a space after the commas (a real stanza
 * reads `Depends: kubelet (>= 1.19.0),kubectl (>= 1.19.0),…`): kubelet from the 2024-08-27 spec, kubeadm with the
 * `cri-tools (>= 1.30.0)` rule that matched first before 2026.
 *
 * `kube` lists every kubeadm/kubelet/kubectl release of the repo, oldest first. The releases in `upgrades` (and a
 * repo with nothing else) are served only by an upstream started with `upgrades: true`: a real repo's newest patch
 * is apt's candidate, and the tests written against the v1.32.3 upstream ask apt for the candidate. v1.33's
 * companions are those the real v1.33 repository lists (reference sheet, "Companion packages per repo":
 * cri-tools 1.33.0-1.1, kubernetes-cni 1.6.0-1.1); v1.34's the sheet's fixture values (1.34.0-1.1, 1.7.1-1.1). v1.34
 * is there for the refusal of an upgrade that skips a minor (v1.32 → v1.34).
 */
const K8S_REPOS: Record<K8sMinor, { kube: string[]; upgrades: string[]; cni: string; criTools: string }> = {
  'v1.34': { kube: ['1.34.1-1.1'], upgrades: ['1.34.1-1.1'], cni: '1.7.1-1.1', criTools: '1.34.0-1.1' },
  'v1.33': { kube: ['1.33.1-1.1'], upgrades: ['1.33.1-1.1'], cni: '1.6.0-1.1', criTools: '1.33.0-1.1' },
  'v1.32': { kube: ['1.32.3-1.1', '1.32.4-1.1'], upgrades: ['1.32.4-1.1'], cni: '1.6.0-1.1', criTools: '1.32.0-1.1' },
  'v1.31': { kube: ['1.31.7-1.1'], upgrades: [], cni: '1.5.1-1.1', criTools: '1.31.1-1.1' },
};

/** The releases an upstream started with `upgrades` adds: what `bundle upgrade` moves a v1.32.3 cluster to. */
export const UPGRADE_RELEASES: readonly string[] = Object.values(K8S_REPOS).flatMap((repo) => repo.upgrades.map((v) => `v${v.replace(/-[^-]+$/, '')}`));

function k8sPackages(minor: K8sMinor): K8sPackage[] {
  const { kube, upgrades, cni, criTools } = K8S_REPOS[minor];
  // a repo whose every release is an upgrade release exists only with `upgrades`, its companions with it
  const repoIsUpgrade = kube.every((v) => upgrades.includes(v));
  const kubePackage = (version: string, name: string, mainBinary: string, summary: string, description: string, depends?: string): K8sPackage => ({
    name, version, mainBinary, summary, description, upgrade: upgrades.includes(version), ...(depends ? { depends } : {}),
  });
  return [
    {
      name: 'cri-tools', version: criTools, mainBinary: 'usr/bin/crictl', upgrade: repoIsUpgrade,
      summary: 'Command-line utility for interacting with a container runtime',
      description: 'Command-line utility for interacting with a container runtime.',
    },
    ...kube.flatMap((version) => [
      kubePackage(version, 'kubeadm', 'usr/bin/kubeadm', 'Command-line utility for administering a Kubernetes cluster',
        'Command-line utility for administering a Kubernetes cluster.', 'cri-tools (>= 1.30.0)'),
      kubePackage(version, 'kubectl', 'usr/bin/kubectl', 'Command-line utility for interacting with a Kubernetes cluster',
        'Command-line utility for interacting with a Kubernetes cluster.'),
      kubePackage(version, 'kubelet', 'usr/bin/kubelet', 'Node agent for Kubernetes clusters',
        'The node agent of Kubernetes, the container cluster manager.',
        'iptables (>= 1.4.21),kubernetes-cni (>= 1.2.0),iproute2,mount,conntrack,util-linux,ethtool'),
    ]),
    {
      name: 'kubernetes-cni', version: cni, mainBinary: 'opt/cni/bin/bridge', upgrade: repoIsUpgrade,
      summary: 'Binaries required to provision kubernetes container networking',
      description: 'Binaries required to provision container networking.',
    },
  ];
}

function k8sSpecs(minor: K8sMinor): StubDebSpec[] {
  return k8sPackages(minor).flatMap((pkg) =>
    (['amd64', 'arm64'] as const).map((arch) => ({
      package: pkg.name,
      version: pkg.version,
      upstreamVersion: pkg.version.replace(/-[^-]+$/, ''),
      arch,
      fields: [
        ['Maintainer', 'Kubernetes Authors <dev@kubernetes.io>'],
        ...(pkg.depends ? [['Depends', pkg.depends] as const] : []),
        ['Section', 'admin'],
        ['Priority', 'optional'],
        ['Homepage', 'https://kubernetes.io'],
        ['Description', `${pkg.summary}\n ${pkg.description}`],
      ],
      mainBinary: pkg.mainBinary,
      outPath: `${k8sRepoDir(minor)}/${arch}/${pkg.name}_${pkg.version}_${arch}.deb`,
      ...(pkg.upgrade ? { upgrade: true } : {}),
    })),
  );
}

/** cri-dockerd v0.3.16 as its packaging/deb build makes it; GitHub asset names turn `~` into `.`. */
function criDockerdSpecs(): StubDebSpec[] {
  return (['debian-bookworm', 'ubuntu-jammy'] as const).map((distro) => {
    const version = `0.3.16~3-0~${distro}`;
    return {
      package: 'cri-dockerd',
      version,
      upstreamVersion: '0.3.16',
      arch: 'amd64',
      fields: [
        ['Maintainer', 'Mirantis <support@mirantis.com>'],
        ['Depends', 'containerd (>= 1.2.2-3) | containerd.io (>= 1.2.2-3) | moby-containerd (>= 1.2.2), iptables, libseccomp2 (>= 2.3.0)'],
        ['Recommends', 'aufs-tools, ca-certificates, cgroupfs-mount | cgroup-lite, git, pigz, xz-utils, libltdl7'],
        ['Section', 'admin'],
        ['Priority', 'optional'],
        ['Homepage', 'https://www.mirantis.com'],
        ['Description', 'cri-dockerd is a lightweight implementation of the CRI specification which talks to docker.'],
      ],
      mainBinary: 'usr/bin/cri-dockerd',
      outPath: `${CRI_DOCKERD_DIR}/cri-dockerd_${version.replaceAll('~', '.')}_amd64.deb`,
    };
  });
}

export const ALL_STUB_SPECS: readonly StubDebSpec[] = [...k8sSpecs('v1.34'), ...k8sSpecs('v1.33'), ...k8sSpecs('v1.32'), ...k8sSpecs('v1.31'), ...criDockerdSpecs()];

/**
 * Every stub deb, built on first use and cached under `cacheRoot` (default `<test cache>/upstream-debs`, the
 * test cache being $KUBE_BUNDLE_TEST_CACHE or /var/cache/kube-bundle-test).
 */
export function buildStubDebs(cacheRoot = path.join(TEST_CACHE_DIR, 'upstream-debs')): Promise<StubDebSet> {
  return buildDebSet(ALL_STUB_SPECS, cacheRoot);
}

/**
 * The debs of `specs`, built on first use into `<cacheRoot>/<hash of the inputs>`. Safe when several test processes
 * race: each builds into its own temp directory and the first rename wins. Two specs may share an outPath only when
 * they are the same package (an archive's pockets or series listing one pool file).
 */
export async function buildDebSet(specs: readonly StubDebSpec[], cacheRoot: string): Promise<StubDebSet> {
  const unique = uniqueByOutPath(specs);
  const key = await inputsHash(unique);
  const dir = path.join(cacheRoot, key);
  const debs = specs.map((spec) => ({ spec, path: path.join(dir, spec.outPath) }));
  if (existsSync(dir)) return { dir, debs };
  await mkdir(cacheRoot, { recursive: true });
  const work = await mkdtemp(path.join(cacheRoot, `.build-${key}-`));
  try {
    await buildAll(unique, work);
    await publish(path.join(work, 'out'), dir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return { dir, debs };
}

function uniqueByOutPath(specs: readonly StubDebSpec[]): StubDebSpec[] {
  const byPath = new Map<string, StubDebSpec>();
  for (const spec of specs) {
    const seen = byPath.get(spec.outPath);
    if (seen && JSON.stringify(seen) !== JSON.stringify(spec)) throw new Error(`two different stub debs would be written to ${spec.outPath}: ${JSON.stringify(seen)} and ${JSON.stringify(spec)}`);
    byPath.set(spec.outPath, spec);
  }
  return [...byPath.values()];
}

async function publish(built: string, dir: string): Promise<void> {
  try {
    await rename(built, dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // another process finished the same build first; its result is identical
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
}

/** Two builds at a time: dpkg-deb is mostly xz, and the machine's cores are shared. */
async function buildAll(specs: readonly StubDebSpec[], work: string): Promise<void> {
  const queue = [...specs];
  const worker = async (): Promise<void> => {
    for (let spec = queue.shift(); spec; spec = queue.shift()) await buildDeb(spec, work);
  };
  await Promise.all([worker(), worker()]);
}

async function buildDeb(spec: StubDebSpec, work: string): Promise<void> {
  // by the deb's place in the set: the same package version may be in two repositories (kubernetes-cni 1.6.0-1.1)
  const staging = path.join(work, 'staging', spec.outPath.replace(/\.deb$/, ''));
  const tree = path.join(STUBS_DIR, spec.package);
  if (existsSync(tree)) await copyTree(tree, staging, spec.upstreamVersion);
  else await writePlaceholder(path.join(staging, spec.mainBinary), spec);
  const installedKiB = await installedSize(staging);
  await writeControl(staging, spec, installedKiB);
  await clampMtimes(staging);
  const out = path.join(work, 'out', spec.outPath);
  await mkdir(path.dirname(out), { recursive: true });
  try {
    await run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', staging, out], {
      env: { ...process.env, SOURCE_DATE_EPOCH: String(STUB_SOURCE_DATE_EPOCH) },
    });
  } catch (err) {
    throw new Error(`dpkg-deb --build failed for ${spec.outPath} (stub tree ${tree}): ${(err as { stderr?: string }).stderr ?? err}`);
  }
}

/** Copy a stub tree, keeping modes and symlinks, with `@VERSION@` replaced in text (NUL-free) files. */
async function copyTree(from: string, to: string, version: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of (await readdir(from, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    const stats = await lstat(source);
    if (entry.isDirectory()) {
      await copyTree(source, target, version);
      await chmod(target, stats.mode & 0o7777);
    } else if (entry.isSymbolicLink()) {
      await symlink(await readlink(source), target);
    } else {
      const bytes = await readFile(source);
      const text = bytes.includes(0) ? bytes : Buffer.from(bytes.toString('utf8').replaceAll('@VERSION@', version), 'utf8');
      await writeFile(target, text);
      await chmod(target, isMaintainerScript(from, entry.name) ? 0o755 : stats.mode & 0o7777);
    }
  }
}

/** dpkg-deb refuses maintainer scripts that are not executable; a stub author's missing chmod should not matter. */
function isMaintainerScript(dir: string, name: string): boolean {
  return path.basename(dir) === 'DEBIAN' && ['preinst', 'postinst', 'prerm', 'postrm', 'config'].includes(name);
}

async function writePlaceholder(file: string, spec: StubDebSpec): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const name = path.basename(file);
  await writeFile(file, `#!/bin/sh\n# kube-bundle test stub standing in for ${spec.package} ${spec.version}\necho "${name} ${spec.upstreamVersion} (test stub)"\n`, { mode: 0o755 });
  await chmod(file, 0o755);
}

/** Installed-Size in KiB, counted per file rounded up as dpkg-gencontrol does; DEBIAN/ is not installed. */
async function installedSize(staging: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(staging, { withFileTypes: true })) {
    if (entry.name !== 'DEBIAN') total += await entrySize(path.join(staging, entry.name));
  }
  return total;
}

async function entrySize(full: string): Promise<number> {
  const stats = await lstat(full);
  if (!stats.isDirectory()) return Math.max(1, Math.ceil(stats.size / 1024));
  let total = 0;
  for (const name of await readdir(full)) total += await entrySize(path.join(full, name));
  return total;
}

async function writeControl(staging: string, spec: StubDebSpec, installedKiB: number): Promise<void> {
  const fields: Array<readonly [string, string]> = [
    ['Package', spec.package],
    ['Version', spec.version],
    ['Architecture', spec.arch],
    ['Installed-Size', String(installedKiB)],
    ...spec.fields,
  ];
  const debian = path.join(staging, 'DEBIAN');
  await mkdir(debian, { recursive: true });
  await chmod(debian, 0o755);
  await writeFile(path.join(debian, 'control'), fields.map(([name, value]) => `${name}: ${value}\n`).join(''), { mode: 0o644 });
}

async function clampMtimes(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await clampMtimes(full);
    await lutimes(full, STUB_SOURCE_DATE_EPOCH, STUB_SOURCE_DATE_EPOCH);
  }
  await utimes(dir, STUB_SOURCE_DATE_EPOCH, STUB_SOURCE_DATE_EPOCH);
}

/** Hash of everything a build depends on: this builder's source, the specs and each stub tree (paths, modes, bytes). */
async function inputsHash(specs: readonly StubDebSpec[]): Promise<string> {
  const hash = createHash('sha256');
  hash.update(await readFile(fileURLToPath(import.meta.url)));
  hash.update(JSON.stringify(specs));
  for (const name of [...new Set(specs.map((spec) => spec.package))].sort()) {
    hash.update(`\0tree ${name}\0`);
    await hashTree(hash, path.join(STUBS_DIR, name), '');
  }
  return hash.digest('hex').slice(0, 16);
}

async function hashTree(hash: ReturnType<typeof createHash>, root: string, relative: string): Promise<void> {
  const dir = path.join(root, relative);
  if (!existsSync(dir)) return;
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const child = path.join(relative, entry.name);
    const stats = await lstat(path.join(root, child));
    hash.update(`${child}\0${stats.mode.toString(8)}\0`);
    if (entry.isDirectory()) await hashTree(hash, root, child);
    else if (entry.isSymbolicLink()) hash.update(await readlink(path.join(root, child)));
    else hash.update(await readFile(path.join(root, child)));
  }
}
