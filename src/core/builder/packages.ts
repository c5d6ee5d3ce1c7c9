/**
 * Package resolution for `bundle build`: which repositories (pkgs.k8s.io for the minor, the target distribution's
 * archive) are read and with which keys, what the hosts ask for by name, and the dependency closure of that per
 * architecture, with the packages asked for by name downloading while the indexes are still being scanned.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type * as openpgp from 'openpgp';
import { UserError } from '../../util/errors.js';
import type { PackageIndex } from '../apt/index.js';
import { resolveClosure } from '../apt/solver.js';
import { readDebControl } from '../apt/debfile.js';
import { formatStanza } from '../apt/flatrepo.js';
import { compareVersions } from '../apt/version.js';
import { CRI_DOCKERD_PACKAGE, type Arch, type ComponentsDef, type TargetDef } from '../definitions.js';
import type { Fetcher, FetchResult } from '../fetch.js';
import type { KubeVersion } from '../kube-version.js';
import { resolveUrl, shownUrl, type Mirrors } from '../mirror.js';
import { fingerprintOf } from '../pgp.js';
import {
  cachedResolution,
  kubernetesRepoKeys,
  resolvedPackage,
  sourceIdentity,
  verifiedRepoIdentity,
  verifyRepository,
  IndexScans,
  type MemorySource,
  type RepoRef,
  type ResolvedPackage,
  type VerifiedRepo,
} from './apt-sources.js';
import type { Deb, ResolveContext } from './plan.js';
import { fetchReleaseFile, pinFor } from './release-files.js';
import { Speculator } from './speculate.js';

/** pkgs.k8s.io's repository for the minor of the version being built. */
export function kubernetesRepo(version: KubeVersion, components: ComponentsDef): RepoRef {
  const releaseDir = components.kubernetes.aptRepository.replace('{minor}', version.minorTag);
  return { label: `pkgs.k8s.io ${version.minorTag}`, releaseDir, baseUrl: releaseDir.replace(/\/$/, ''), component: undefined };
}

/** Every repository of every architecture, each InRelease checked against its keys. */
export async function verifyRepositories(ctx: ResolveContext, components: ComponentsDef, k8sRepo: RepoRef): Promise<Map<Arch, VerifiedRepo[]>> {
  const { version, target, arches, mirrors, fetcher } = ctx;
  const now = new Date();
  // the keys are read while the InRelease files download: each is checked once both are there
  const k8sKeys = kubernetesRepoKeys(fetcher, mirrors, k8sRepo.releaseDir, components.kubernetes.signingKeys, ctx.trusted);
  const distroKeys = distributionKeys(target, ctx.archiveTrusted);
  const verified = await Promise.all(
    arches.map(async (arch) => {
      const repos = [
        { repo: k8sRepo, keys: k8sKeys },
        ...distroRepos(target, arch).map((repo) => ({ repo, keys: distroKeys })),
      ];
      const checked = await Promise.allSettled(repos.map(({ repo, keys }) => verifyRepository(fetcher, mirrors, repo, arch, keys, now)));
      return checked.map((outcome, i) => {
        if (outcome.status === 'fulfilled') return outcome.value;
        throw repos[i]?.repo === k8sRepo ? noRepositoryFor(version, outcome.reason) : outcome.reason;
      });
    }),
  );
  return new Map(arches.map((arch, i) => [arch, verified[i] as VerifiedRepo[]]));
}

/**
 * The dependency closure of everything the hosts install, for every architecture, sorted by file name; each
 * architecture's scans are disposed of before the next one's index is read.
 */
export async function resolvePackages(ctx: ResolveContext, components: ComponentsDef, k8sRepo: RepoRef, reposByArch: Map<Arch, VerifiedRepo[]>, scansByArch: Map<Arch, IndexScans>, request: DebRequest): Promise<Deb[]> {
  const { arches, runtimes } = ctx;
  const debs = new Map<string, Deb>();
  const criDockerd = runtimes.includes('docker') ? await criDockerdSources(ctx, components, arches) : new Map<Arch, MemorySource>();
  for (const arch of arches) {
    const extra = criDockerd.has(arch) ? [criDockerd.get(arch) as MemorySource] : [];
    const scans = scansByArch.get(arch) as IndexScans;
    for (const record of await resolveDebs(ctx, arch, reposByArch.get(arch) ?? [], extra, request, scans, k8sRepo)) addDeb(debs, record, arch);
    await scans.dispose(); // before the next architecture's index is read: one at a time on disk
  }
  return [...debs.values()].sort((a, b) => (a.bundleName < b.bundleName ? -1 : a.bundleName > b.bundleName ? 1 : 0));
}


/** What the hosts install, by name: the same for every architecture. */
export function debRequest(ctx: ResolveContext, components: ComponentsDef, k8sRepo: RepoRef) {
  const { target, runtimes, version } = ctx;
  return {
    kubernetes: { version: version.plain, repository: k8sRepo.label, packages: components.kubernetes.packages },
    roots: [
      ...components.kubernetes.companions,
      ...target.packages.containerd,
      ...target.packages.registry,
      ...target.packages.host,
      ...(runtimes.includes('docker') ? [...target.packages.docker, CRI_DOCKERD_PACKAGE] : []),
      ...(ctx.ha ? target.packages.ha : []),
    ].map((r) => (typeof r === 'string' ? { name: r } : r)),
    excludePriorityRequired: true,
    minimalHost: target.minimalHost ?? [],
  };
}

export type DebRequest = ReturnType<typeof debRequest>;

/** The package indexes of one architecture; outside a dry run, the packages asked for by name start downloading during the scan. */
export function indexScans(ctx: ResolveContext, arch: Arch, repos: VerifiedRepo[], request: DebRequest): IndexScans {
  const { fetcher, mirrors } = ctx;
  if (ctx.dryRun) return new IndexScans(fetcher, mirrors, repos, arch);
  const speculator = new Speculator(
    {
      repos: repos.length,
      pinned: { names: request.kubernetes.packages, versionPrefix: `${request.kubernetes.version}-`, repo: repos.findIndex((r) => r.label === request.kubernetes.repository) },
      roots: request.roots,
      // cri-dockerd comes from its release, not from these indexes
      elsewhere: [CRI_DOCKERD_PACKAGE],
    },
    ({ record, filename, size, sha256 }) => {
      // errors are the build's own request's to report, when it makes it (it joins this download)
      fetchDeb(fetcher, mirrors, { name: record.name, version: record.version, size, sha256 }, `${record.baseUrl}/${filename}`).catch(() => undefined);
    },
  );
  return new IndexScans(fetcher, mirrors, repos, arch, { onRecord: speculator.record.bind(speculator), onRepoDone: speculator.repoDone.bind(speculator) });
}

/**
 * The dependency closure of everything the hosts install, for one architecture. Taken from the build cache when an
 * earlier build resolved the same request against the same indexes (same sha256s); only then are the Packages
 * files read at all.
 */
async function resolveDebs(ctx: ResolveContext, arch: Arch, repos: VerifiedRepo[], extra: MemorySource[], request: DebRequest, scans: IndexScans, k8sRepo: RepoRef): Promise<ResolvedPackage[]> {
  const { version, mirrors } = ctx;
  const inputs = { arch, sources: [...repos.map(verifiedRepoIdentity), ...extra.map(sourceIdentity)], request };
  return cachedResolution(ctx.fetcher.cache, inputs, async () => {
    const index = await scans.index(extra);
    const kubeVersion = exactKubePackageVersion(index, version, k8sRepo, mirrors);
    const roots = [...request.kubernetes.packages.map((name) => ({ name, version: kubeVersion })), ...request.roots];
    return resolveClosure(index, roots, { excludePriorityRequired: request.excludePriorityRequired, minimalHost: request.minimalHost }).packages.map(resolvedPackage);
  });
}

/** Fetch one package into the cache: the same request (and name in progress and errors) whoever makes it first. */
export function fetchDeb(fetcher: Fetcher, mirrors: Mirrors, deb: { name: string; version: string; sha256: string; size: number }, upstreamUrl: string): Promise<FetchResult> {
  return fetcher.fetchToCache({ url: resolveUrl(mirrors, upstreamUrl), expected: { sha256: deb.sha256, size: deb.size }, label: `${deb.name} ${deb.version} (${upstreamUrl})` });
}


/** The exact Debian version of kubeadm/kubelet/kubectl for this Kubernetes release, as the index has it. */
function exactKubePackageVersion(index: PackageIndex, version: KubeVersion, repo: RepoRef, mirrors: Mirrors): string {
  const all = index.versionsOf('kubeadm').filter((r) => r.source === repo.label);
  const matching = all.filter((r) => r.version.startsWith(`${version.plain}-`)).sort((a, b) => compareVersions(b.version, a.version));
  const best = matching[0];
  if (!best) {
    const known = all.map((r) => r.version.replace(/-[^-]*$/, '')).filter((v, i, a) => a.indexOf(v) === i);
    throw new UserError(
      `Kubernetes ${version.tag} is not in ${shownUrl(mirrors, repo.releaseDir)} (kubeadm there: ${known.join(', ') || 'none'})`,
      'check the version: `bundle build` takes released versions only',
    );
  }
  return best.version;
}

function noRepositoryFor(version: KubeVersion, err: unknown): unknown {
  if (err instanceof UserError && /HTTP 404/.test(err.message)) {
    return new UserError(`Kubernetes ${version.tag}: there is no package repository for ${version.minorTag} (${err.message})`, 'check the version; pkgs.k8s.io has one repository per released minor');
  }
  return err;
}

/**
 * The keys trusted for the target distribution's archive: those of its keyring (only the ones listed in
 * `keyFingerprints` when the target names any), plus `extra` (--trust-archive-key). With extra keys, a keyring that
 * is missing or holds none of the listed keys is no error: the extra keys alone are trusted (a mirror that re-signs
 * is read on a machine that need not have the distribution's keyring).
 */
export async function distributionKeys(target: TargetDef, extra: readonly openpgp.PublicKey[] = []): Promise<openpgp.PublicKey[]> {
  try {
    return [...(await keyringKeys(target)), ...extra];
  } catch (err) {
    if (extra.length > 0 && err instanceof UserError) return [...extra];
    throw err;
  }
}

async function keyringKeys(target: TargetDef): Promise<openpgp.PublicKey[]> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(target.keyring);
  } catch {
    throw new UserError(
      `the archive keyring for ${target.name} is missing: ${target.keyring}`,
      `${target.os === 'ubuntu' ? 'install the ubuntu-keyring package on the build machine, or ' : ''}for a mirror that re-signs, pass its key with --trust-archive-key <file>`,
    );
  }
  const { readKeys } = await import('openpgp');
  let keys: openpgp.PublicKey[];
  try {
    keys = (await readKeys({ binaryKeys: bytes })).map((k) => k.toPublic());
  } catch (err) {
    throw new UserError(`${target.keyring} is not a binary OpenPGP keyring: ${(err as Error).message}`);
  }
  if (!target.keyFingerprints) return keys;
  const wanted = target.keyFingerprints.map((f) => f.replace(/\s+/g, '').toUpperCase());
  const chosen = keys.filter((k) => wanted.includes(fingerprintOf(k)));
  if (chosen.length === 0) throw new UserError(`${target.keyring} holds none of the ${target.name} archive keys (${wanted.join(', ')})`);
  return chosen;
}

function distroRepos(target: TargetDef, arch: Arch): RepoRef[] {
  return target.sources
    .filter((s) => !s.arches || s.arches.includes(arch))
    .flatMap((s) => s.suites.flatMap((suite) => s.components.map((component) => ({
      label: `${suite}${s.components.length > 1 ? `/${component}` : ''}`,
      releaseDir: `${s.url.replace(/\/$/, '')}/dists/${suite}/`,
      baseUrl: s.url.replace(/\/$/, ''),
      component,
    }))));
}


/** cri-dockerd comes from its GitHub release, not an index: describe the downloaded deb as a one-package source. */
async function criDockerdSources(ctx: ResolveContext, components: ComponentsDef, arches: Arch[]): Promise<Map<Arch, MemorySource>> {
  const def = components['cri-dockerd'];
  const sources = new Map<Arch, MemorySource>();
  for (const arch of arches) {
    if (!def.arches.includes(arch)) {
      throw new UserError(`cri-dockerd ${def.version} publishes no ${arch} package, so the docker runtime cannot be carried for ${arch}`, `build ${arch} with --runtime containerd`);
    }
    const url = def.deb.replace('{asset}', ctx.target.criDockerdAsset).replace('{arch}', arch);
    const fetched = await fetchReleaseFile(ctx.fetcher, ctx.mirrors, url, `cri-dockerd ${def.version}`, pinFor(url, ctx.pins));
    const control = await readDebControl(fetched.path);
    const stanza = formatStanza([...control, ['Filename', basename(url)], ['Size', String(fetched.size)], ['SHA256', fetched.sha256]]);
    sources.set(arch, { label: `cri-dockerd ${def.version}`, baseUrl: dirname(url), packages: stanza, packagesUrl: url });
  }
  return sources;
}

function addDeb(debs: Map<string, Deb>, record: ResolvedPackage, arch: Arch): void {
  const bundleName = basename(record.filename);
  const existing = debs.get(bundleName);
  if (existing) {
    if (existing.record.sha256 !== record.sha256) {
      throw new UserError(`two different packages are both named ${bundleName}: from ${existing.record.source} and ${record.source}`);
    }
    return;
  }
  debs.set(bundleName, { record, arch, bundleName, upstreamUrl: `${record.baseUrl}/${record.filename}` });
}
