/**
 * `bundle build`: resolve every artifact a kubeadm cluster needs for one Kubernetes version and target, fetch
 * them through the content-addressed cache, and pack one signed, reproducible bundle file (plus its lock file).
 *
 * The steps, each reported as progress:
 *   1. signing key (before any download: a wrong passphrase fails at once)
 *   2. package indexes: pkgs.k8s.io for the minor, the target distribution's archive; every InRelease verified
 *   3. the exact Kubernetes packages, cri-dockerd's deb, and the dependency closure per architecture
 *   4. images: kubeadm's control-plane list (from the pinned table in bundles/; the downloaded kubeadm is never run
 *      here, where the signing key is), flannel's, and extras; manifests resolved for the chosen platforms
 *   5. lock: what was resolved, checked against --lock when given
 *   6. download (or, with --dry-run, print the list and stop), then pack and sign
 */
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import type * as openpgp from 'openpgp';
import { UserError } from '../../util/errors.js';
import type { Progress } from '../../util/progress.js';
import { PackageIndex } from '../apt/index.js';
import { resolveClosure } from '../apt/solver.js';
import { parseControlStanza, readDebControl } from '../apt/debfile.js';
import { formatStanza, renderFlatRepo, type RepoPackage } from '../apt/flatrepo.js';
import { compareVersions } from '../apt/version.js';
import { BlobCache } from '../cache.js';
import { Fetcher, type FetchResult, type FetchStats } from '../fetch.js';
import { ARCHES, controlPlaneImagesFromTable, loadComponents, loadTarget, parseArch, parseRuntimes, type Arch, type Runtime, type TargetDef } from '../definitions.js';
import { parseKubeVersion, type KubeVersion } from '../kube-version.js';
import { parseMirrors, resolveUrl, shownUrl, type Mirrors } from '../mirror.js';
import { parsePlatform } from '../oci/media-types.js';
import { buildLayout } from '../oci/layout.js';
import { RegistryClient, type PulledImage } from '../oci/registry.js';
import { parseReference, formatReference } from '../oci/reference.js';
import { readPublicKey, readSecretKey, fingerprintOf } from '../pgp.js';
import { packBundle, type PackEntry } from '../bundle/pack.js';
import type { FileComponent, ImageComponent, ManifestContent, PackageComponent } from '../bundle/manifest.js';
import { IMAGES_DIR, installerFile, manifestFile, packageFile, PACKAGES_DIR } from '../bundle/paths.js';
import { packageRoot } from '../../util/package-root.js';
import { seedPlan } from './seed-plan.js';
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
import { controlPlaneImages } from './control-plane-images.js';
import { fetchReleaseFile, parsePinFlags, pinFor, type PinSources } from './release-files.js';
import { Speculator } from './speculate.js';
import { assertMatchesLock, readLock, renderLock, type LockedArtifact, type LockFile } from './lockfile.js';
import { digestHex, sha256Of } from '../../util/digest.js';

export interface BuildOptions {
  /** v1.32.3 or 1.32.3 */
  version: string;
  target: string;
  arches: string[];
  /** comma-separated: containerd,docker */
  runtimes: string;
  output?: string;
  /** armored secret key file; passphrase from `passphrase` */
  keyFile?: string;
  passphrase?: string;
  unsigned: boolean;
  mirrors: string[];
  images: string[];
  imagesFile?: string;
  lockFile?: string;
  /** armored public keys trusted for the Kubernetes package repository besides the pinned one */
  trustKeys: string[];
  /** `<url>=sha256:<hex>`: release files pinned for this build besides bundles/components.yaml */
  pins: string[];
  ha: boolean;
  cacheDir: string;
  concurrency: number;
  dryRun: boolean;
  /** SOURCE_DATE_EPOCH (seconds); the Kubernetes repository's Release date when absent */
  sourceDateEpoch?: string;
  progress: Progress;
}

export interface BuildResult {
  kubernetesVersion: string;
  target: string;
  arches: Arch[];
  runtimes: Runtime[];
  dryRun: boolean;
  output?: string;
  lockFile?: string;
  size?: number;
  signer: string | null;
  packages: { name: string; version: string; arch: string; size: number; source: string }[];
  images: { ref: string; digest: string; platforms: string[]; size: number }[];
  files: { path: string; url: string; size: number }[];
  /** what the content-addressed cache served vs what came over the network */
  fetch: FetchStats;
  /** the same bundle was packed before: linked from the cache instead of written again */
  reusedBundle: boolean;
  seconds: number;
}

interface Deb {
  record: ResolvedPackage;
  arch: Arch;
  /** path in the bundle's flat repository (relative to packages/) */
  bundleName: string;
  upstreamUrl: string;
}

interface Plan {
  version: KubeVersion;
  target: TargetDef;
  arches: Arch[];
  runtimes: Runtime[];
  debs: Deb[];
  images: PulledImage[];
  files: { path: string; url: string; cachePath: string; sha256: string; size: number }[];
  releaseDate: Date | undefined;
}

export async function build(options: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const { progress } = options;
  const version = parseKubeVersion(options.version);
  const target = loadTarget(options.target);
  const arches = uniqueArches(options.arches);
  const runtimes = parseRuntimes(options.runtimes);
  const mirrors = parseMirrors(options.mirrors);
  const output = resolvePath(options.output ?? `kube-bundle-${version.tag}-${target.name}-${arches.join('+')}.tar`);
  const lockPath = output.replace(/\.tar$/, '') + '.lock.yaml';
  const lock = options.lockFile ? readLock(options.lockFile) : undefined;
  const pins: PinSources = { components: loadComponents().releaseDigests, flags: parsePinFlags(options.pins), ...(lock && options.lockFile ? { lock: { file: options.lockFile, content: lock } } : {}) };
  const extraImages = [...options.images, ...(options.imagesFile ? readImagesFile(options.imagesFile) : [])];
  const signingKey = options.dryRun ? undefined : await loadSigningKey(options);
  const trusted = await Promise.all(options.trustKeys.map(async (f) => readPublicKey(await readTextFile(f, 'trusted key'), f)));

  const cache = new BlobCache(options.cacheDir);
  const fetcher = new Fetcher({
    cache,
    concurrency: options.concurrency,
    onProgress: (e) => progress.bytes(e.done, e.total),
  });

  const client = new RegistryClient({ fetcher, endpoints: Object.fromEntries(mirrors.registries) });
  const plan = await resolvePlan({ version, target, arches, runtimes, mirrors, fetcher, client, trusted, extraImages, ha: options.ha, pins, dryRun: options.dryRun, progress });
  const resolvedLock = lockOf(plan);
  if (lock && options.lockFile) assertMatchesLock(options.lockFile, lock, resolvedLock);

  const result: BuildResult = {
    kubernetesVersion: version.tag,
    target: target.name,
    arches,
    runtimes,
    dryRun: options.dryRun,
    signer: signingKey ? fingerprintOf(signingKey) : null,
    packages: plan.debs.map((d) => ({ name: d.record.name, version: d.record.version, arch: d.record.architecture, size: d.record.size, source: d.record.source })),
    images: plan.images.map((i) => ({ ref: i.reference, digest: i.descriptor.digest, platforms: i.manifests.map(platformText), size: imageSize(i) })),
    files: plan.files.map((f) => ({ path: f.path, url: f.url, size: f.size })),
    fetch: fetcher.stats,
    reusedBundle: false,
    seconds: 0,
  };
  if (options.dryRun) {
    result.seconds = (Date.now() - started) / 1000;
    return result;
  }

  const sourceDate = sourceDateOf(options.sourceDateEpoch, plan.releaseDate);
  const { entries, manifest } = await assemble(plan, cache, signingKey, sourceDate);
  await mkdir(dirname(output), { recursive: true });
  const key = bundleKey(entries, manifest, sourceDate, signingKey);
  let packed = await reuseBundle(cache, key, output);
  const reusedBundle = packed !== undefined;
  if (packed) progress.step(`Linking ${basename(output)}: the same bundle was packed before`);
  else {
    // Packages and image blobs (many under way since resolving) download while the bundle is packed: each file is
    // copied to its place in the tar as soon as it is there, so little is left to do when the last one arrives.
    progress.step(`Downloading ${plan.debs.length} packages and ${plan.images.length} images into ${basename(output)}`);
    const downloads = startDownloads(plan, { fetcher, mirrors, client });
    const packing = entries.map((entry): PackEntry => {
      const { sha256 } = entry;
      if (sha256 === undefined) return entry;
      const ready = downloads.get(sha256);
      if (ready) return { ...entry, ready, follow: (watcher) => fetcher.watch(sha256, watcher) };
      return { ...entry, verified: fetcher.downloadedAndVerified(sha256) };
    });
    // every download is done once the packing is (a failed one fails it, with its error)
    packed = await packAndKeep(cache, key, { output, manifest, entries: packing, mtime: sourceDate, ...(signingKey ? { signingKey } : {}) });
  }
  await writeAtomically(lockPath, renderLock(resolvedLock));
  progress.succeed(`Wrote ${output}`);

  return { ...result, output, lockFile: lockPath, size: packed.size, fetch: fetcher.stats, reusedBundle, seconds: (Date.now() - started) / 1000 };
}

/**
 * Fetch every package and image blob of the plan into the cache (what is there already, or on its way, is not
 * fetched again), each as its own promise by sha256 hex, resolving to whether this build verified it on the way.
 */
function startDownloads(plan: Plan, { fetcher, mirrors, client }: { fetcher: Fetcher; mirrors: Mirrors; client: RegistryClient }): Map<string, Promise<boolean>> {
  const downloads = new Map<string, Promise<boolean>>();
  const add = (digest: string, fetch: () => Promise<FetchResult>): void => {
    const hex = digestHex(digest);
    if (downloads.has(hex)) return;
    const download = fetch().then(() => fetcher.downloadedAndVerified(hex));
    download.catch(() => undefined); // the packer takes every outcome
    downloads.set(hex, download);
  };
  for (const d of plan.debs) add(d.record.sha256, () => fetchDeb(fetcher, mirrors, d.record, d.upstreamUrl));
  // by the digests resolved (and locked) above: a tag moving meanwhile cannot mix versions
  for (const image of plan.images) for (const blob of image.blobs) add(blob.digest, () => client.downloadBlob(image.reference, blob));
  return downloads;
}

interface ResolveContext {
  version: KubeVersion;
  target: TargetDef;
  arches: Arch[];
  runtimes: Runtime[];
  mirrors: Mirrors;
  fetcher: Fetcher;
  client: RegistryClient;
  trusted: openpgp.PublicKey[];
  extraImages: string[];
  ha: boolean;
  pins: PinSources;
  dryRun: boolean;
  progress: Progress;
}

async function resolvePlan(ctx: ResolveContext): Promise<Plan> {
  const { version, target, arches, runtimes, mirrors, fetcher, progress } = ctx;
  const components = loadComponents();
  const now = new Date();

  progress.step('Reading package indexes');
  const k8sDir = components.kubernetes.aptRepository.replace('{minor}', version.minorTag);
  // the keys are read while the InRelease files download: each is checked once both are there
  const k8sKeys = kubernetesRepoKeys(fetcher, mirrors, k8sDir, components.kubernetes.signingKeys, ctx.trusted);
  const distroKeys = distributionKeys(target);
  const k8sRepo: RepoRef = { label: `pkgs.k8s.io ${version.minorTag}`, releaseDir: k8sDir, baseUrl: k8sDir.replace(/\/$/, ''), component: undefined };
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
  const reposByArch = new Map(arches.map((arch, i) => [arch, verified[i] as VerifiedRepo[]]));
  progress.succeed();

  // The first architecture's indexes start downloading now (and its named packages once the scan knows their
  // versions, see speculate.ts), ahead of the images, which fill the link while the indexes are scanned.
  const request = debRequest(ctx, components, k8sRepo);
  const scansByArch = new Map(arches.map((arch) => [arch, indexScans(ctx, arch, reposByArch.get(arch) ?? [], request)]));
  const debs = new Map<string, Deb>();
  const platforms = arches.map((a) => parsePlatform(`linux/${a}`));
  const { client } = ctx;
  // each image is resolved (its manifests); outside a dry run its blobs then start downloading, not awaited here
  const pullImages = (refs: string[]) =>
    Promise.all(
      refs.map(async (ref) => {
        const image = await client.pull(ref, platforms, { layers: false });
        if (!ctx.dryRun) for (const blob of image.blobs) client.downloadBlob(image.reference, blob).catch(() => undefined);
        return image;
      }),
    );
  let earlyImages: ReturnType<typeof settled<PulledImage[]>>;
  try {
    await scansByArch.get(arches[0] as Arch)?.startDownloads();
    // Images do not wait for the package closure: those the image table names (with flannel's and the extras)
    // are resolved, and outside a dry run downloaded, while the Debian indexes are parsed; kubeadm's own list is
    // checked against them below and anything it adds is fetched then.
    earlyImages = settled(pullImages(uniqueRefs([...(controlPlaneImagesFromTable(version) ?? []), ...components.flannel.images, ...ctx.extraImages])));

    progress.step('Resolving packages');
    const criDockerd = runtimes.includes('docker') ? await criDockerdSources(ctx, components, arches) : new Map<Arch, MemorySource>();
    for (const arch of arches) {
      const extra = criDockerd.has(arch) ? [criDockerd.get(arch) as MemorySource] : [];
      const scans = scansByArch.get(arch) as IndexScans;
      for (const record of await resolveDebs(ctx, arch, reposByArch.get(arch) ?? [], extra, request, scans, k8sRepo)) addDeb(debs, record, arch);
      await scans.dispose(); // before the next architecture's index is read: one at a time on disk
    }
  } finally {
    await Promise.all([...scansByArch.values()].map((scans) => scans.dispose()));
  }
  const sortedDebs = [...debs.values()].sort((a, b) => (a.bundleName < b.bundleName ? -1 : a.bundleName > b.bundleName ? 1 : 0));
  progress.succeed(`Resolved ${sortedDebs.length} packages for ${arches.join(', ')}`);

  progress.step('Resolving images');
  // after the packages: a version that was never released is named as such (not as missing from the table)
  const refs = uniqueRefs([...controlPlaneImages(version), ...components.flannel.images, ...ctx.extraImages]);
  const pulled = new Map((await earlyImages.value()).map((image) => [image.reference, image]));
  for (const image of await pullImages(refs.filter((ref) => !pulled.has(ref)))) pulled.set(image.reference, image);
  const images = refs.map((ref) => pulled.get(ref) as PulledImage);
  progress.succeed(`Resolved ${images.length} images`);

  progress.step('Fetching release files');
  const manifestUrl = components.flannel.manifest;
  const flannel = await fetchReleaseFile(fetcher, mirrors, manifestUrl, 'kube-flannel.yml', pinFor(manifestUrl, ctx.pins));
  progress.succeed();

  return {
    version,
    target,
    arches,
    runtimes,
    debs: sortedDebs,
    images,
    files: [{ path: manifestFile('kube-flannel.yml'), url: manifestUrl, cachePath: flannel.path, sha256: flannel.sha256, size: flannel.size }],
    releaseDate: reposByArch.get(arches[0] as Arch)?.[0]?.release.date,
  };
}

/** The package name of cri-dockerd, which comes from its release rather than from an apt repository. */
const CRI_DOCKERD = 'cri-dockerd';

/** What the hosts install, by name: the same for every architecture. */
function debRequest(ctx: ResolveContext, components: ReturnType<typeof loadComponents>, k8sRepo: RepoRef) {
  const { target, runtimes, version } = ctx;
  return {
    kubernetes: { version: version.plain, repository: k8sRepo.label, packages: components.kubernetes.packages },
    roots: [
      ...components.kubernetes.companions,
      ...target.packages.containerd,
      ...target.packages.registry,
      ...target.packages.host,
      ...(runtimes.includes('docker') ? [...target.packages.docker, CRI_DOCKERD] : []),
      ...(ctx.ha ? target.packages.ha : []),
    ].map((r) => (typeof r === 'string' ? { name: r } : r)),
    excludePriorityRequired: true,
    minimalHost: target.minimalHost ?? [],
  };
}

type DebRequest = ReturnType<typeof debRequest>;

/** The package indexes of one architecture; outside a dry run, the packages asked for by name start downloading during the scan. */
function indexScans(ctx: ResolveContext, arch: Arch, repos: VerifiedRepo[], request: DebRequest): IndexScans {
  const { fetcher, mirrors } = ctx;
  if (ctx.dryRun) return new IndexScans(fetcher, mirrors, repos, arch);
  const speculator = new Speculator(
    {
      repos: repos.length,
      pinned: { names: request.kubernetes.packages, versionPrefix: `${request.kubernetes.version}-`, repo: repos.findIndex((r) => r.label === request.kubernetes.repository) },
      roots: request.roots,
      // cri-dockerd comes from its release, not from these indexes
      elsewhere: [CRI_DOCKERD],
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
function fetchDeb(fetcher: Fetcher, mirrors: Mirrors, deb: { name: string; version: string; sha256: string; size: number }, upstreamUrl: string): Promise<FetchResult> {
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

async function distributionKeys(target: TargetDef): Promise<openpgp.PublicKey[]> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(target.keyring);
  } catch {
    throw new UserError(`the archive keyring for ${target.name} is missing: ${target.keyring}`, target.os === 'ubuntu' ? 'install the ubuntu-keyring package on the build machine' : undefined);
  }
  const { readKeys } = await import('openpgp');
  const keys = (await readKeys({ binaryKeys: bytes })).map((k) => k.toPublic());
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
async function criDockerdSources(ctx: ResolveContext, components: ReturnType<typeof loadComponents>, arches: Arch[]): Promise<Map<Arch, MemorySource>> {
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

function lockOf(plan: Plan): LockFile {
  const artifacts: LockedArtifact[] = [
    ...plan.debs.map((d) => ({ kind: 'deb' as const, name: d.record.name, version: d.record.version, arch: d.record.architecture === 'all' ? 'all' : d.arch, url: d.upstreamUrl, digest: `sha256:${d.record.sha256}` })),
    ...plan.images.map((i) => ({ kind: 'image' as const, name: i.reference, version: tagOf(i.reference), arch: 'all', url: `docker://${i.reference}`, digest: i.descriptor.digest })),
    ...plan.files.map((f) => ({ kind: 'file' as const, name: basename(f.path), version: '-', arch: 'all', url: f.url, digest: `sha256:${f.sha256}` })),
  ];
  return { apiVersion: 'kube-bundle.dev/v1alpha1', kind: 'Lock', kubernetesVersion: plan.version.tag, target: plan.target.name, arches: plan.arches, runtimes: plan.runtimes, artifacts };
}

/** Every file of the bundle (each from the cache with its sha256 and size), and its bundle.yaml. */
async function assemble(plan: Plan, cache: BlobCache, signingKey: openpgp.PrivateKey | undefined, date: Date): Promise<{ entries: PackEntry[]; manifest: ManifestContent }> {
  const images = plan.images;
  const repoPackages: RepoPackage[] = plan.debs.map((d) => ({
    filename: d.bundleName,
    control: parseControlStanza(d.record.stanza, d.upstreamUrl).filter(([name]) => !/^(filename|size|md5sum|sha1|sha256|sha512|description-md5)$/i.test(name)),
    size: d.record.size,
    sha256: d.record.sha256,
  }));
  const repoFiles = await renderFlatRepo(repoPackages, { origin: 'kube-bundle', label: 'kube-bundle', suite: 'stable', date, ...(signingKey ? { signingKey } : {}) }, PACKAGES_DIR);
  const layout = buildLayout(images, cache);
  const entries: PackEntry[] = [
    ...plan.debs.map((d) => ({ path: packageFile(d.bundleName), source: { file: cache.blobPath(d.record.sha256) }, sha256: d.record.sha256, size: d.record.size })),
    ...repoFiles.map((f) => ({ path: `${PACKAGES_DIR}/${f.name}`, source: { bytes: f.bytes } })),
    ...layout.map((e) => ({ path: `${IMAGES_DIR}/${e.path}`, source: e.source, ...('file' in e.source ? { sha256: basename(e.path), size: e.size } : {}) })),
    ...plan.files.map((f) => ({ path: f.path, source: { file: f.cachePath }, sha256: f.sha256, size: f.size })),
  ];
  const packages: PackageComponent[] = plan.debs.map((d) => ({ name: d.record.name, version: d.record.version, arch: d.record.architecture, filename: packageFile(d.bundleName), size: d.record.size, sha256: d.record.sha256, url: d.upstreamUrl }));
  const imageComponents: ImageComponent[] = images.map((i) => ({ ref: i.reference, digest: i.descriptor.digest, mediaType: i.descriptor.mediaType, platforms: i.manifests.map(platformText), size: imageSize(i) }));
  const installer = installerFiles(images);
  entries.push(...installer.map((f) => ({ path: f.path, source: { bytes: f.bytes } })));
  const files: FileComponent[] = [
    ...plan.files.map((f) => ({ path: f.path, url: f.url, sha256: f.sha256, size: f.size, kind: 'manifest' as const })),
    ...installer.map((f) => ({ path: f.path, url: f.url, sha256: sha256Of(f.bytes), size: f.bytes.length, kind: 'installer' as const })),
  ];
  return {
    entries,
    manifest: { kubernetesVersion: plan.version.tag, target: plan.target.name, arches: plan.arches, runtimes: plan.runtimes, components: { packages, images: imageComponents, files } },
  };
}

/**
 * A bundle is a function of its entries, bundle.yaml, its date and its signer: the cache remembers, under a key
 * over exactly those, the bundle it packed (the file itself, hard-linked into the cache, so no second copy on
 * disk). A warm rebuild of the same thing then links it instead of writing and hashing it all again.
 */
function bundleKey(entries: PackEntry[], manifest: ManifestContent, date: Date, signingKey: openpgp.PrivateKey | undefined): string {
  const hash = createHash('sha256').update(`kube-bundle pack v1\n${date.toISOString()}\n${signingKey ? fingerprintOf(signingKey) : 'unsigned'}\n`);
  hash.update(JSON.stringify(manifest));
  for (const e of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const digest = 'bytes' in e.source ? sha256Of(e.source.bytes) : e.sha256;
    if (!digest) return randomUUID(); // a file whose digest is not known: never reuse
    hash.update(`${e.path} ${digest}\n`);
  }
  return hash.digest('hex');
}

/** The bundle kept under `key` by an earlier build, linked (or copied) to `output`; undefined when there is none. */
async function reuseBundle(cache: BlobCache, key: string, output: string): Promise<{ size: number } | undefined> {
  const kept = await cache.derivedFile(KEPT_BUNDLE, key);
  let size: number;
  try {
    size = (await stat(kept)).size;
  } catch {
    return undefined;
  }
  const partial = `${output}.partial`;
  await rm(partial, { force: true });
  try {
    await link(kept, partial);
  } catch {
    await copyFile(kept, partial);
  }
  await rename(partial, output);
  await rm(partial, { force: true }); // rename does nothing when both names are links to one file already
  return { size };
}

/** Pack, and keep the bundle in the cache under `key` (a hard link: no second copy on disk). */
async function packAndKeep(cache: BlobCache, key: string, options: Parameters<typeof packBundle>[0]): Promise<{ size: number }> {
  const packed = await packBundle(options);
  const partial = await cache.partialPath();
  try {
    const kept = await cache.derivedFile(KEPT_BUNDLE, key);
    await link(options.output, partial);
    await rename(partial, kept);
  } catch {
    // another file system than the cache (a link is impossible): not worth a second copy of the bundle
    await rm(partial, { force: true });
  }
  return packed;
}

/** The derived-data kind under which packed bundles are kept (see bundleKey). */
const KEPT_BUNDLE = 'bundle-file';

/** What the installer runs on the hosts: the host-side scripts of this release and the registry seed plan. */
function installerFiles(images: PulledImage[]): { path: string; url: string; bytes: Buffer }[] {
  const dir = join(packageRoot(), 'scripts', 'host');
  const scripts = readdirSync(dir).filter((f) => f.endsWith('.sh')).sort();
  return [
    { path: installerFile('registry-seed.txt'), url: 'kube-bundle:generated', bytes: Buffer.from(seedPlan(images)) },
    ...scripts.map((name) => ({ path: installerFile(name), url: `kube-bundle:scripts/host/${name}`, bytes: readFileSync(join(dir, name)) })),
  ];
}

async function loadSigningKey(options: BuildOptions): Promise<openpgp.PrivateKey | undefined> {
  if (options.keyFile && options.unsigned) throw new UserError('--key and --unsigned contradict each other', 'drop one of them');
  if (!options.keyFile) {
    if (options.unsigned) return undefined;
    throw new UserError('no signing key: pass --key <file> (make one with `bundle keygen`), or --unsigned to build an unsigned bundle', 'install refuses an unsigned bundle unless told --allow-unsigned');
  }
  return readSecretKey(await readTextFile(options.keyFile, 'signing key'), options.keyFile, options.passphrase);
}

async function readTextFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function readImagesFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read --images-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return text.split('\n').flatMap((line, i) => {
    const ref = line.replace(/#.*/, '').trim();
    if (!ref) return [];
    try {
      parseReference(ref);
    } catch (err) {
      throw new UserError(`${file}:${i + 1}: ${(err as Error).message}`);
    }
    return [ref];
  });
}

/**
 * Start a promise now and take its result later without an unhandled rejection in between: the failure is
 * kept and thrown where the value is asked for.
 */
function settled<T>(promise: Promise<T>): { value(): Promise<T> } {
  const outcome = promise.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
  return {
    async value() {
      const o = await outcome;
      if (!o.ok) throw o.error;
      return o.value;
    },
  };
}

function uniqueArches(list: string[]): Arch[] {
  const arches = (list.length ? list : ['amd64']).map(parseArch);
  return ARCHES.filter((a) => arches.includes(a));
}

function uniqueRefs(refs: string[]): string[] {
  const seen = new Map<string, string>();
  for (const ref of refs) {
    const normal = formatReference(parseReference(ref));
    if (!seen.has(normal)) seen.set(normal, normal);
  }
  return [...seen.keys()];
}

function tagOf(reference: string): string {
  const ref = parseReference(reference);
  return ref.tag ?? ref.digest ?? '';
}

function platformText(d: { platform?: { os: string; architecture: string; variant?: string } }): string {
  const p = d.platform;
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : 'unknown';
}

function imageSize(image: PulledImage): number {
  return image.blobs.reduce((sum, b) => sum + b.size, 0);
}

/** SOURCE_DATE_EPOCH when given, else the Kubernetes repository's Release date: both fixed for fixed upstream content. */
function sourceDateOf(epoch: string | undefined, releaseDate: Date | undefined): Date {
  if (epoch !== undefined && epoch !== '') {
    if (!/^\d+$/.test(epoch)) throw new UserError(`SOURCE_DATE_EPOCH must be whole seconds since 1970, not '${epoch}'`);
    return new Date(Number(epoch) * 1000);
  }
  return releaseDate ?? new Date(0);
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await writeFile(`${file}.partial`, text);
  await rename(`${file}.partial`, file);
}

