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
import { mkdir, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import type * as openpgp from 'openpgp';
import { writeAtomically } from '../../util/atomic-write.js';
import { digestHex, sha256Of } from '../../util/digest.js';
import { UserError } from '../../util/errors.js';
import type { Progress } from '../../util/progress.js';
import { BlobCache } from '../cache.js';
import { Fetcher, type FetchResult, type FetchStats } from '../fetch.js';
import { ARCHES, controlPlaneImagesFromTable, loadComponents, loadTarget, parseArch, parseRuntimes, type Arch, type Runtime } from '../definitions.js';
import { parseKubeVersion } from '../kube-version.js';
import { parseMirrors, type Mirrors } from '../mirror.js';
import { parsePlatform } from '../oci/media-types.js';
import { RegistryClient, type PulledImage } from '../oci/registry.js';
import { parseReference, formatReference } from '../oci/reference.js';
import { readPublicKey, readSecretKey, fingerprintOf } from '../pgp.js';
import type { PackEntry } from '../bundle/pack.js';
import { manifestFile } from '../bundle/paths.js';
import { assemble, bundleKey, packAndKeep, reuseBundle } from './assemble.js';
import { controlPlaneImages } from './control-plane-images.js';
import { assertSinceMatches, baseBlobDigests, carriedPlan, differentialContent, type DifferentialContent, type SinceBase } from './differential.js';
import { assertMatchesLock, readLock, renderLock } from './lockfile.js';
import { debRequest, fetchDeb, indexScans, kubernetesRepo, resolvePackages, verifyRepositories } from './packages.js';
import { imageSize, lockOf, platformText, type Deb, type Plan, type ResolveContext } from './plan.js';
import { fetchReleaseFile, parsePinFlags, pinFor, type PinSources } from './release-files.js';

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
  /** the lock file of a base bundle: build a differential bundle carrying only what that base lacks */
  since?: string;
  /** armored public keys trusted for the Kubernetes package repository besides the pinned one */
  trustKeys: string[];
  /** armored public keys trusted for the target distribution's archive besides its keyring */
  archiveKeys: string[];
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
  /** a differential bundle (`--since`): its base, and what it leaves to the base; `packages`, `files` and the
   * images' sizes above are what it carries */
  differential?: {
    base: { file: string; kubernetesVersion: string; lockSha256: string };
    carried: { debs: number; blobs: number; files: number; bytes: number };
    fromBase: { debs: number; blobs: number; files: number };
  };
  seconds: number;
}

export async function build(options: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const { progress } = options;
  const version = parseKubeVersion(options.version);
  const target = loadTarget(options.target);
  const arches = uniqueArches(options.arches);
  const runtimes = parseRuntimes(options.runtimes);
  const mirrors = parseMirrors(options.mirrors);
  const since = options.since ? readSinceBase(options.since) : undefined;
  if (since) assertSinceMatches(since.file, since.lock, { kubernetesVersion: version.tag, target: target.name, arches });
  const output = resolvePath(options.output ?? `kube-bundle-${version.tag}-${target.name}-${arches.join('+')}${since ? `-since-${since.kubernetesVersion}` : ''}.tar`);
  const lockPath = output.replace(/\.tar$/, '') + '.lock.yaml';
  const lock = options.lockFile ? readLock(options.lockFile) : undefined;
  const pins: PinSources = { components: loadComponents().releaseDigests, flags: parsePinFlags(options.pins), ...(lock && options.lockFile ? { lock: { file: options.lockFile, content: lock } } : {}) };
  const extraImages = [...options.images, ...(options.imagesFile ? readImagesFile(options.imagesFile) : [])];
  const signingKey = options.dryRun ? undefined : await loadSigningKey(options);
  const trusted = await readTrustedKeys(options.trustKeys, 'trusted key');
  const archiveTrusted = await readTrustedKeys(options.archiveKeys, 'trusted archive key');

  const cache = new BlobCache(options.cacheDir);
  const fetcher = new Fetcher({
    cache,
    concurrency: options.concurrency,
    onProgress: (e) => progress.bytes(e.done, e.total),
  });

  const client = new RegistryClient({ fetcher, endpoints: Object.fromEntries(mirrors.registries) });
  const baseBlobs = since ? baseBlobDigests(since.lock) : undefined;
  const plan = await resolvePlan({ version, target, arches, runtimes, mirrors, fetcher, client, trusted, archiveTrusted, extraImages, ha: options.ha, pins, dryRun: options.dryRun, progress, ...(baseBlobs ? { heldBlob: (digest: string) => baseBlobs.has(digest) } : {}) });
  // the lock lists everything resolved, a differential build's too: the next --since compares against it
  const resolvedLock = lockOf(plan);
  if (lock && options.lockFile) assertMatchesLock(options.lockFile, lock, resolvedLock);
  const differential = since ? { base: since, content: differentialContent(since.lock, resolvedLock) } : undefined;
  const carried = differential ? carriedPlan(plan, differential.content) : plan;

  const result: BuildResult = {
    kubernetesVersion: version.tag,
    target: target.name,
    arches,
    runtimes,
    dryRun: options.dryRun,
    signer: signingKey ? fingerprintOf(signingKey) : null,
    packages: carried.debs.map((d) => ({ name: d.record.name, version: d.record.version, arch: d.record.architecture, size: d.record.size, source: d.record.source })),
    images: carried.images.map((i) => ({ ref: i.reference, digest: i.descriptor.digest, platforms: i.manifests.map(platformText), size: imageSize(i) })),
    files: carried.files.map((f) => ({ path: f.path, url: f.url, size: f.size })),
    fetch: fetcher.stats,
    reusedBundle: false,
    seconds: 0,
    ...(differential ? { differential: differentialSummary(differential.base, differential.content, carried) } : {}),
  };
  if (options.dryRun) {
    result.seconds = (Date.now() - started) / 1000;
    return result;
  }

  const sourceDate = sourceDateOf(options.sourceDateEpoch, plan.releaseDate);
  const { entries, manifest } = await assemble(plan, cache, signingKey, sourceDate, differential);
  await mkdir(dirname(output), { recursive: true });
  const key = bundleKey(entries, manifest, sourceDate, signingKey);
  let packed = await reuseBundle(cache, key, output);
  const reusedBundle = packed !== undefined;
  if (packed) progress.step(`Linking ${basename(output)}: the same bundle was packed before`);
  else {
    // Packages and image blobs (many under way since resolving) download while the bundle is packed: each file is
    // copied to its place in the tar as soon as it is there, so little is left to do when the last one arrives.
    progress.step(`Downloading ${carried.debs.length} packages and ${carried.images.length} images into ${basename(output)}`);
    const downloads = startDownloads(carried, { fetcher, mirrors, client });
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

async function resolvePlan(ctx: ResolveContext): Promise<Plan> {
  const { version, target, arches, runtimes, mirrors, fetcher, progress } = ctx;
  const components = loadComponents();

  progress.step('Reading package indexes');
  const k8sRepo = kubernetesRepo(version, components);
  const reposByArch = await verifyRepositories(ctx, components, k8sRepo);
  progress.succeed();

  // The first architecture's indexes start downloading now (and its named packages once the scan knows their
  // versions, see speculate.ts), ahead of the images, which fill the link while the indexes are scanned.
  const request = debRequest(ctx, components, k8sRepo);
  const scansByArch = new Map(arches.map((arch) => [arch, indexScans(ctx, arch, reposByArch.get(arch) ?? [], request)]));
  const platforms = arches.map((a) => parsePlatform(`linux/${a}`));
  const { client } = ctx;
  // each image is resolved (its manifests); outside a dry run its blobs then start downloading, not awaited here
  const pullImages = (refs: string[]) =>
    Promise.all(
      refs.map(async (ref) => {
        const image = await client.pull(ref, platforms, { layers: false });
        if (!ctx.dryRun) for (const blob of image.blobs) if (!ctx.heldBlob?.(blob.digest)) client.downloadBlob(image.reference, blob).catch(() => undefined);
        return image;
      }),
    );
  let earlyImages: ReturnType<typeof settled<PulledImage[]>>;
  let debs: Deb[];
  try {
    await scansByArch.get(arches[0] as Arch)?.startDownloads();
    // Images do not wait for the package closure: those the image table names (with flannel's and the extras)
    // are resolved, and outside a dry run downloaded, while the Debian indexes are parsed; kubeadm's own list is
    // checked against them below and anything it adds is fetched then.
    earlyImages = settled(pullImages(uniqueRefs([...(controlPlaneImagesFromTable(version) ?? []), ...components.flannel.images, ...ctx.extraImages])));

    progress.step('Resolving packages');
    debs = await resolvePackages(ctx, components, k8sRepo, reposByArch, scansByArch, request);
  } finally {
    await Promise.all([...scansByArch.values()].map((scans) => scans.dispose()));
  }
  progress.succeed(`Resolved ${debs.length} packages for ${arches.join(', ')}`);

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
    debs,
    images,
    files: [{ path: manifestFile('kube-flannel.yml'), url: manifestUrl, cachePath: flannel.path, sha256: flannel.sha256, size: flannel.size }],
    releaseDate: reposByArch.get(arches[0] as Arch)?.[0]?.release.date,
  };
}

/** The base of a differential build: its lock file, and the sha256 of the file's bytes (what bundle.yaml names). */
function readSinceBase(file: string): SinceBase {
  const lock = readLock(file);
  return { file, lock, kubernetesVersion: lock.kubernetesVersion, lockSha256: sha256Of(readFileSync(file)) };
}

function differentialSummary(base: SinceBase, content: DifferentialContent, carried: Plan): NonNullable<BuildResult['differential']> {
  const blobBytes = new Map(carried.images.flatMap((i) => i.blobs.map((b) => [b.digest, b.size] as const)));
  const bytes = carried.debs.reduce((sum, d) => sum + d.record.size, 0) + carried.files.reduce((sum, f) => sum + f.size, 0) + [...blobBytes.values()].reduce((sum, n) => sum + n, 0);
  const { debs, blobs, files } = content.carried;
  return {
    base: { file: base.file, kubernetesVersion: base.kubernetesVersion, lockSha256: base.lockSha256 },
    carried: { debs: debs.size, blobs: blobs.size, files: files.size, bytes },
    fromBase: { ...content.fromBase },
  };
}

async function loadSigningKey(options: BuildOptions): Promise<openpgp.PrivateKey | undefined> {
  if (options.keyFile && options.unsigned) throw new UserError('--key and --unsigned contradict each other', 'drop one of them');
  if (!options.keyFile) {
    if (options.unsigned) return undefined;
    throw new UserError('no signing key: pass --key <file> (make one with `bundle keygen`), or --unsigned to build an unsigned bundle', 'install refuses an unsigned bundle unless told --allow-unsigned');
  }
  return readSecretKey(await readTextFile(options.keyFile, 'signing key'), options.keyFile, options.passphrase);
}

/** The armored public keys of `files`, each error naming its file. */
function readTrustedKeys(files: string[], what: string): Promise<openpgp.PublicKey[]> {
  return Promise.all(files.map(async (f) => readPublicKey(await readTextFile(f, what), f)));
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

/** SOURCE_DATE_EPOCH when given, else the Kubernetes repository's Release date: both fixed for fixed upstream content. */
function sourceDateOf(epoch: string | undefined, releaseDate: Date | undefined): Date {
  if (epoch !== undefined && epoch !== '') {
    if (!/^\d+$/.test(epoch)) throw new UserError(`SOURCE_DATE_EPOCH must be whole seconds since 1970, not '${epoch}'`);
    return new Date(Number(epoch) * 1000);
  }
  return releaseDate ?? new Date(0);
}
