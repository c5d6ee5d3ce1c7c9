/**
 * Reading signed apt repositories: InRelease (verified against the keys we trust), then the Packages index it
 * lists (verified against the Release hashes, fetched through the content-addressed cache so a warm build
 * transfers only the small InRelease files). What the build resolves from those indexes is cached too, keyed by
 * their sha256s (see cachedResolution), so a warm build does not even read them.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import { UserError } from '../../util/errors.js';
import { packageRoot } from '../../util/package-root.js';
import { decompressIndexFile, packagesIndexPath, parseRelease, pickIndexFile, assertReleaseCurrent, type IndexFileChoice, type Release } from '../apt/release.js';
import { PackageIndex, scanSource, SourceScan, type PackageRecord, type PackageSource, type ScannedRecord } from '../apt/index.js';
import { StreamingScan } from '../apt/stream-scan.js';
import type { BlobCache } from '../cache.js';
import type { Fetcher, FetchResult } from '../fetch.js';
import { discard, isTransientStatus, TransientError } from '../http.js';
import { resolveUrl, shownUrl, type Mirrors } from '../mirror.js';
import { fingerprintOf, readPublicKey, verifyCleartext } from '../pgp.js';
import { SHA256_HEX, sha256Of } from '../../util/digest.js';

const MAX_SMALL = 16 * 1024 * 1024;

export interface RepoRef {
  /** short name for reports, e.g. `bookworm-security` or `pkgs.k8s.io v1.32` */
  label: string;
  /** upstream URL of the directory holding InRelease, ending in / */
  releaseDir: string;
  /** upstream URL the Packages `Filename` fields are relative to */
  baseUrl: string;
  /** e.g. main; undefined for a flat repository */
  component: string | undefined;
}

/** A repository whose InRelease checked out, and the Packages index it lists for the architecture. */
export interface VerifiedRepo {
  label: string;
  baseUrl: string;
  release: Release;
  /** fingerprint of the key that signed InRelease */
  signer: string;
  index: IndexFileChoice;
}

/** A source as a resolution depends on it. */
export interface SourceIdentity {
  label: string;
  baseUrl: string;
  /** named in the records' errors */
  packagesUrl: string;
  /** of the Packages file as fetched (compressed or not) */
  sha256: string;
}

export interface ResolutionInputs {
  arch: string;
  /** in the order they are searched */
  sources: SourceIdentity[];
  /** the roots and options, as plain JSON data built in a fixed order */
  request: unknown;
}

/** The part of a resolved package record a build uses: what to download, and the stanza to re-emit. */
export type ResolvedPackage = Pick<PackageRecord, 'name' | 'version' | 'architecture' | 'source' | 'baseUrl' | 'filename' | 'size' | 'sha256' | 'stanza'>;

/** GET a small document through the mirrors; a 404 is reported with `notFound` when given. */
async function getSmall(fetcher: Fetcher, mirrors: Mirrors, upstreamUrl: string, what: string, notFound?: () => UserError): Promise<Buffer> {
  const url = resolveUrl(mirrors, upstreamUrl);
  const shown = shownUrl(mirrors, upstreamUrl);
  return fetcher.withRetries(`${what} from ${shown}`, async () => {
    const res = await fetcher.open(url);
    if (res.status === 404 && notFound) {
      discard(res);
      throw notFound();
    }
    if (res.status !== 200) {
      discard(res);
      if (isTransientStatus(res.status)) throw new TransientError(`HTTP ${res.status} from ${shown}`);
      throw new UserError(`${what}: HTTP ${res.status} from ${shown}`, res.status === 401 || res.status === 403 ? 'the server wants credentials; kube-bundle fetches anonymously' : undefined);
    }
    return fetcher.readMetadata(res, MAX_SMALL);
  });
}

/**
 * The keys trusted for pkgs.k8s.io: the repository's own Release.key when its fingerprint is pinned in
 * bundles/components.yaml, plus any key given with --trust-key.
 */
export async function kubernetesRepoKeys(fetcher: Fetcher, mirrors: Mirrors, releaseDir: string, pinned: string[], extra: openpgp.PublicKey[]): Promise<openpgp.PublicKey[]> {
  const url = releaseDir + 'Release.key';
  let served: openpgp.PublicKey | undefined;
  try {
    served = await readPublicKey((await getSmall(fetcher, mirrors, url, 'Kubernetes repository key')).toString('utf8'), url);
  } catch (err) {
    if (extra.length === 0) throw err;
  }
  const keys = [...extra];
  if (served && pinned.map((f) => f.toUpperCase()).includes(fingerprintOf(served))) keys.push(served);
  if (keys.length === 0) {
    throw new UserError(
      `${shownUrl(mirrors, url)} serves key ${served ? fingerprintOf(served) : '(none)'}, which is not the pinned Kubernetes signing key (${pinned.join(', ')})`,
      'if you trust it (e.g. a mirror that re-signs), pass it with --trust-key <file>',
    );
  }
  return keys;
}

/**
 * Verify a repository's InRelease and pick its Packages index for one architecture. The index itself is not read
 * here: its sha256 from the verified Release identifies it, which is all a cached resolution needs.
 */
export async function verifyRepository(
  fetcher: Fetcher,
  mirrors: Mirrors,
  repo: RepoRef,
  arch: string,
  keys: openpgp.PublicKey[] | Promise<openpgp.PublicKey[]>,
  now: Date,
): Promise<VerifiedRepo> {
  const inReleaseUrl = repo.releaseDir + 'InRelease';
  // the keys may still be on their way (read, or fetched) while the InRelease file downloads
  Promise.resolve(keys).catch(() => undefined); // their failure is reported below, or by whoever else waits for them
  const text = (
    await getSmall(fetcher, mirrors, inReleaseUrl, `${repo.label} InRelease`, () =>
      new UserError(`${repo.label}: no InRelease at ${shownUrl(mirrors, inReleaseUrl)} (HTTP 404)`),
    )
  ).toString('utf8');
  const verified = await verifyCleartext(text, await keys, shownUrl(mirrors, inReleaseUrl));
  const release = parseRelease(verified.text, inReleaseUrl);
  assertReleaseCurrent(release, now);
  const index = pickIndexFile(release, packagesIndexPath(repo.component, arch), repo.releaseDir);
  return { label: repo.label, baseUrl: repo.baseUrl, release, signer: verified.fingerprint, index };
}

/** What a build may do with an index's records before the whole index is read (see build/speculate.ts). */
export interface IndexHooks {
  /** each record of `repos[repo]` as it is scanned: from bytes not yet verified, and possibly more than once */
  onRecord?: (repo: number, scanned: ScannedRecord) => void;
  /** `repos[repo]` is downloaded, verified and scanned: every record of it has been seen */
  onRepoDone?: (repo: number) => void;
}

/**
 * The Packages indexes of some repositories for one architecture, each fetched through the content-addressed
 * cache and scanned while it downloads (see StreamingScan). The plain text goes to a scratch file of the cache,
 * read back for the few stanzas a closure touches, so an index is never held in memory; `dispose()` removes them.
 *
 * `startDownloads()` begins now what is not in the cache yet, so that a build can fetch its indexes while it
 * does other things (cri-dockerd's deb) before it knows whether it needs them read at all: an index already in
 * the cache is only read when `index()` asks for it (a warm build, whose resolution is cached, never does).
 */
export class IndexScans {
  private readonly scans: (Promise<SourceScan> | undefined)[];
  private readonly scratch: string[] = [];
  private disposed = false;

  constructor(
    private readonly fetcher: Fetcher,
    private readonly mirrors: Mirrors,
    private readonly repos: readonly VerifiedRepo[],
    private readonly arch: string,
    private readonly hooks: IndexHooks = {},
  ) {
    this.scans = repos.map(() => undefined);
  }

  /** Start downloading every index that is not in the cache yet. */
  async startDownloads(): Promise<void> {
    await Promise.all(
      this.repos.map(async (repo, i) => {
        if ((await this.fetcher.cache.sizeOf(repo.index.expected.sha256)) === undefined) this.scan(i);
      }),
    );
  }

  /** The index of every repository, then `extra`. */
  async index(extra: readonly PackageSource[] = []): Promise<PackageIndex> {
    const scanned = await Promise.allSettled(this.repos.map((_, i) => this.scan(i)));
    const failed = scanned.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const scans = scanned.map((r) => (r as PromiseFulfilledResult<SourceScan>).value);
    return PackageIndex.fromScans([...scans, ...extra.map((source) => scanSource(source, this.arch))], this.arch);
  }

  /** Remove the scratch files; the records' stanzas cannot be read afterwards. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.all(this.scratch.map((file) => rm(file, { force: true })));
  }

  private scan(position: number): Promise<SourceScan> {
    let scan = this.scans[position];
    if (!scan) {
      scan = this.download(position);
      scan.catch(() => undefined); // reported by index(); a download started early may never be asked for
      this.scans[position] = scan;
    }
    return scan;
  }

  /** Download and scan one repository's index, streaming when the bytes come over the network from the start. */
  private async download(position: number): Promise<SourceScan> {
    const { fetcher, mirrors, hooks, arch } = this;
    const repo = this.repos[position] as VerifiedRepo;
    const { index } = repo;
    const onRecord = (scanned: ScannedRecord): void => hooks.onRecord?.(position, scanned);
    const plainFile = async (): Promise<string> => {
      if (index.compression === 'none') return fetcher.cache.blobPath(index.expected.sha256);
      // a download started early and finishing after the build moved on leaves no scratch file behind
      if (this.disposed) throw new Error(`${repo.label}: index no longer wanted`);
      const file = await fetcher.cache.partialPath();
      this.scratch.push(file);
      return file;
    };
    const sourceIn = (file: string): PackageSource => ({ label: repo.label, baseUrl: repo.baseUrl, packages: { file }, packagesUrl: index.url });

    const streamed = await plainFile();
    const scan = new SourceScan(sourceIn(streamed), arch);
    const stream = new StreamingScan(scan, index.compression, streamed, onRecord);
    const stopWatching = fetcher.watch(index.expected.sha256, (chunk, offset) => stream.data(chunk, offset));
    let fetched: FetchResult;
    try {
      fetched = await fetcher.fetchToCache({
        url: resolveUrl(mirrors, index.url),
        expected: { sha256: index.expected.sha256, size: index.expected.size },
        label: `${repo.label} ${index.path}`,
      });
    } catch (err) {
      stream.abandon();
      throw err;
    } finally {
      stopWatching();
    }
    if (await stream.complete(fetched.size)) {
      hooks.onRepoDone?.(position);
      return scan;
    }
    // A cache hit, a resumed download, or one that another request had started: read the file. (A scratch file of
    // its own: the abandoned stream's last write may still land in the first one.)
    const file = await plainFile();
    if (index.compression !== 'none') await decompressIndexFile(index, fetched.path, file);
    const whole = scanSource(sourceIn(file), arch, onRecord);
    hooks.onRepoDone?.(position);
    return whole;
  }
}

/** What a source contributes to a resolution: the names that go into its records, and its content's sha256. */
export function verifiedRepoIdentity(repo: VerifiedRepo): SourceIdentity {
  return { label: repo.label, baseUrl: repo.baseUrl, packagesUrl: repo.index.url, sha256: repo.index.expected.sha256 };
}

/** A source held in memory, such as one made up from a downloaded deb. */
export type MemorySource = PackageSource & { packages: Uint8Array | string };

export function sourceIdentity(source: MemorySource): SourceIdentity {
  const sha256 = sha256Of(source.packages);
  return { label: source.label, baseUrl: source.baseUrl, packagesUrl: source.packagesUrl, sha256 };
}

/**
 * The result of `resolve` (plain records, see resolvedPackage), which must be a function of `inputs` alone: from
 * the build cache when an earlier build computed it, else computed and stored. A warm build thus neither reads nor
 * parses the ~50 MB Debian index; any change to an index (a new sha256 in its Release), to the request, or of this
 * tool's version gives another key.
 */
export async function cachedResolution(cache: BlobCache, inputs: ResolutionInputs, resolve: () => Promise<ResolvedPackage[]>): Promise<ResolvedPackage[]> {
  const key = resolutionKey(inputs);
  const cached = parseCachedResolution(await cache.readDerived(RESOLUTION_KIND, key), key);
  if (cached) return cached;
  const packages = await resolve();
  const doc: CachedResolution = { key, packages };
  await cache.writeDerived(RESOLUTION_KIND, key, Buffer.from(JSON.stringify(doc)));
  return packages;
}

/** sha256 over everything a resolution depends on, the format of the cached document and this tool's version. */
export function resolutionKey(inputs: ResolutionInputs): string {
  const identity = { format: RESOLUTION_FORMAT, tool: toolVersion(), arch: inputs.arch, sources: inputs.sources, request: inputs.request };
  return sha256Of(JSON.stringify(identity));
}

const RESOLUTION_KIND = 'apt-resolution';
/** Bump when the solver's or the index's behaviour changes within one tool version (development builds). */
const RESOLUTION_FORMAT = 1;

interface CachedResolution {
  key: string;
  packages: ResolvedPackage[];
}

/** A cached document that is not exactly what this version writes (damaged, or by another version) is a miss. */
function parseCachedResolution(bytes: Buffer | undefined, key: string): ResolvedPackage[] | undefined {
  if (!bytes) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  const { key: stored, packages } = (doc ?? {}) as Partial<CachedResolution>;
  if (stored !== key || !Array.isArray(packages) || !packages.every(isResolvedPackage)) return undefined;
  return packages;
}

const STRING_FIELDS = ['name', 'version', 'architecture', 'source', 'baseUrl', 'filename', 'sha256', 'stanza'] as const;

function isResolvedPackage(value: unknown): value is ResolvedPackage {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return STRING_FIELDS.every((f) => typeof record[f] === 'string') && Number.isSafeInteger(record.size) && SHA256_HEX.test(record.sha256 as string);
}

/** Only the fields a build uses after resolving, copied out of an index's record (whose fields are getters). */
export function resolvedPackage(record: ResolvedPackage): ResolvedPackage {
  const { name, version, architecture, source, baseUrl, filename, size, sha256, stanza } = record;
  return { name, version, architecture, source, baseUrl, filename, size, sha256, stanza };
}

let cachedToolVersion: string | undefined;

function toolVersion(): string {
  cachedToolVersion ??= (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  return cachedToolVersion;
}
