/**
 * Downloads into the content-addressed cache (see cache.ts), plus the HTTP plumbing the registry client shares. *
 * Guarantees:
 * - bodies are streamed to disk with backpressure; nothing ever holds a whole blob in memory;
 * - a download with a known sha256 resumes from its partial file with an HTTP Range request, restarts cleanly
 *   when the server ignores the range, and only a verified file (sha256 + size) is renamed into the cache;
 * - network errors, timeouts and 5xx/429 answers are retried with backoff; every failure that reaches the
 *   operator is a UserError naming the artifact and the URL;
 * - at most `concurrency` downloads run at once, and simultaneous requests for the same content share one.
 *
 * The HTTP itself (redirects, the credential rule, timeouts) is http.ts's.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { digestHex } from '../util/digest.js';
import { diskFullError, UserError } from '../util/errors.js';
import { Limiter } from '../util/limiter.js';
import { redactUrl, redactUrls } from '../util/redact.js';
import { type BlobCache, FileWriter, isNotFound } from './cache.js';
import {
  asNetworkFailure,
  contentLength,
  discard,
  hintForStatus,
  isTransientStatus,
  openUrl,
  readSmallBody,
  TransientError,
  type HeaderMap,
  type HeaderSource,
  type HttpResponse,
  type Timeouts,
} from './http.js';

export interface RetryPolicy {
  /** Total tries, the first one included. */
  attempts: number;
  /** Wait before the 2nd try; doubles for each further one. */
  baseDelayMs: number;
}

export interface Expected {
  /** Bare hex or "sha256:<hex>". Without it the bytes cannot be verified, so they are never resumed. */
  sha256?: string;
  size?: number;
}

export interface FetchRequest {
  url: string;
  headers?: HeaderSource;
  expected: Expected;
  /** What is being fetched, for errors and progress, e.g. "registry.k8s.io/pause:3.10 layer sha256:ab12…". */
  label?: string;
  /** Answers a 401 (given its WWW-Authenticate) with headers to retry once with, e.g. a registry token. */
  authorize?: (wwwAuthenticate: string | undefined) => Promise<HeaderMap>;
}

/** Sees a piece of a download's body and its offset in the file (Fetcher.watch). */
export type DataWatcher = (chunk: Buffer, offset: number) => void;

export interface FetchResult {
  /** The cache file, named by its sha256. */
  path: string;
  sha256: string;
  size: number;
  /** Bytes that came over the network for this item in this call (0 on a cache hit). */
  bytesFetched: number;
  fromCache: boolean;
}

export interface FetchStats {
  /** content bytes that came over the network (packages, blobs, manifests, files) */
  bytesFetched: number;
  /** bytes of documents that are read fresh on every build to learn what is current (InRelease, Release.key) */
  metadataBytesFetched: number;
  bytesFromCache: number;
  itemsFetched: number;
  itemsFromCache: number;
}

export interface ProgressEvent {
  label: string;
  /** Bytes of this item on disk so far (a resumed item starts at its partial size). */
  itemDone: number;
  itemTotal: number | undefined;
  /** Aggregate over every item requested so far; cache hits count as done. */
  done: number;
  total: number;
  /** Aggregate bytes received over the network, the figure to compute a rate from. */
  fetched: number;
}

export interface FetcherOptions {
  cache: BlobCache;
  concurrency?: number;
  timeouts?: Partial<Timeouts>;
  retry?: Partial<RetryPolicy>;
  onProgress?: (event: ProgressEvent) => void;
}

const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 15_000, idleMs: 30_000 };
const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 500 };

/** Content whose sha256 is not the one asked for: names what, where from, and both digests. */
export class DigestMismatchError extends UserError {
  constructor(
    label: string,
    url: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${label}: ${redactUrl(url)} sent content with sha256 ${actual}, expected ${expected}`, 'the upstream or mirror served different bytes; the download was discarded');
    this.name = 'DigestMismatchError';
  }
}

export class Fetcher {
  readonly cache: BlobCache;
  readonly timeouts: Timeouts;
  readonly retry: RetryPolicy;
  private readonly limiter: Limiter;
  private readonly onProgress: ((event: ProgressEvent) => void) | undefined;
  private readonly inFlight = new Map<string, Promise<FetchResult>>();
  private readonly verifiedNow = new Set<string>();
  private readonly watchers = new Map<string, Set<DataWatcher>>();
  private readonly counters: FetchStats = { bytesFetched: 0, metadataBytesFetched: 0, bytesFromCache: 0, itemsFetched: 0, itemsFromCache: 0 };
  private aggregate = { done: 0, total: 0 };

  constructor(options: FetcherOptions) {
    this.cache = options.cache;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.limiter = new Limiter(Math.max(1, options.concurrency ?? 8));
    this.onProgress = options.onProgress;
  }

  get stats(): FetchStats {
    return { ...this.counters };
  }

  /**
   * Whether this fetcher downloaded the content with this sha256 and checked it on the way into the cache, so that
   * who reads the cache file next need not hash it again. A cache hit is never counted: a file on disk since an
   * earlier run may have been damaged meanwhile.
   */
  downloadedAndVerified(sha256: string): boolean {
    return this.verifiedNow.has(digestHex(sha256));
  }

  /**
   * See the body of the download of `sha256`, each piece with its offset in the file as it goes there, from the next
   * piece on: of a download under way, or of one yet to start (a cache hit shows nothing). A resumed download starts
   * past 0, a restarted one at 0 again: whoever needs every byte must check that it saw them all (and read the
   * cache file otherwise), and must not use what it saw before the download has verified them. Must not throw.
   * Returns the function that stops watching.
   */
  watch(sha256: string, watcher: DataWatcher): () => void {
    const hex = digestHex(sha256);
    let set = this.watchers.get(hex);
    if (!set) {
      set = new Set();
      this.watchers.set(hex, set);
    }
    set.add(watcher);
    return () => {
      set.delete(watcher);
      if (set.size === 0 && this.watchers.get(hex) === set) this.watchers.delete(hex);
    };
  }

  /** openUrl with this fetcher's timeouts. */
  open(url: string, options: { method?: 'GET' | 'HEAD'; headers?: HeaderMap } = {}): Promise<HttpResponse> {
    return openUrl(url, { ...options, timeouts: this.timeouts });
  }

  /** readSmallBody, counted in the stats as fetched. */
  async readSmall(res: HttpResponse, limit: number): Promise<Buffer> {
    const body = await readSmallBody(res, limit);
    this.counters.bytesFetched += body.length;
    return body;
  }

  /** readSmallBody for a document that is always fetched fresh (InRelease): counted apart from content. */
  async readMetadata(res: HttpResponse, limit: number): Promise<Buffer> {
    const body = await readSmallBody(res, limit);
    this.counters.metadataBytesFetched += body.length;
    return body;
  }

  /** Record that small content (a manifest) was served from the cache instead of the network. */
  noteSmallCacheHit(size: number): void {
    this.counters.bytesFromCache += size;
  }

  /** Run `attempt`, retrying TransientErrors with backoff; the last failure becomes a UserError about `what`. */
  async withRetries<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof TransientError)) throw err;
        if (tries >= this.retry.attempts) {
          const hint = 'check the network or the mirror; run again to resume';
          // `what` names URLs its callers built: redacted here too, whatever they did
          throw new UserError(redactUrls(`${what} failed after ${tries} attempt(s): ${err.message}`), hint, { cause: err });
        }
        await delay(this.retry.baseDelayMs * 2 ** (tries - 1));
      }
    }
  }

  /**
   * Make sure the content is in the cache and return where. With an expected sha256 a cached copy is returned
   * at once (0 bytes fetched) and simultaneous requests for the same content share one download.
   */
  fetchToCache(request: FetchRequest): Promise<FetchResult> {
    const hex = request.expected.sha256 === undefined ? undefined : digestHex(request.expected.sha256);
    if (hex === undefined) return this.limiter.run(() => this.download(request, undefined));
    const pending = this.inFlight.get(hex);
    if (pending) return pending;
    const result = this.fetchKnown(request, hex).finally(() => this.inFlight.delete(hex));
    this.inFlight.set(hex, result);
    return result;
  }

  private async fetchKnown(request: FetchRequest, hex: string): Promise<FetchResult> {
    const hit = await this.cacheHit(hex, request.expected.size);
    if (hit !== undefined) {
      this.counters.bytesFromCache += hit;
      this.counters.itemsFromCache++;
      this.trackItem(labelOf(request), hit).start(hit, undefined);
      return { path: this.cache.blobPath(hex), sha256: hex, size: hit, bytesFetched: 0, fromCache: true };
    }
    return this.limiter.run(() => this.download(request, hex));
  }

  /** Size of a usable cached copy; a copy of the wrong size is evicted (it can only be a damaged file). */
  private async cacheHit(hex: string, expectedSize: number | undefined): Promise<number | undefined> {
    const size = await this.cache.sizeOf(hex);
    if (size === undefined || expectedSize === undefined || size === expectedSize) return size;
    await this.cache.evict(hex);
    return undefined;
  }

  private async download(request: FetchRequest, hex: string | undefined): Promise<FetchResult> {
    const partial = await this.cache.partialPath(hex);
    const item = this.trackItem(labelOf(request), request.expected.size);
    try {
      const result = await this.withRetries(`download of ${labelOf(request)} from ${redactUrl(request.url)}`, () =>
        this.attemptDownload(request, hex, partial, item),
      );
      this.counters.itemsFetched++;
      return result;
    } catch (err) {
      // A verifiable partial is kept for the next run to resume; an unverifiable one is useless.
      if (hex === undefined) await rm(partial, { force: true });
      throw err;
    }
  }

  private async attemptDownload(request: FetchRequest, hex: string | undefined, partial: string, item: ItemProgress): Promise<FetchResult> {
    const { size } = request.expected;
    const resume = hex === undefined ? undefined : await this.loadPartial(partial, size);
    if (resume && size !== undefined && resume.offset === size) return this.finish(request, hex, partial, resume.hash, size, 0, true);

    const headers = { ...(await resolveHeaders(request.headers)) };
    if (resume) headers.range = `bytes=${resume.offset}-`;
    const res = await this.openAuthorized(request, headers);
    const offset = this.checkDownloadResponse(request, res, resume?.offset ?? 0);
    const hash = offset > 0 && resume ? resume.hash : createHash('sha256');
    item.start(offset, offset === 0 ? contentLength(res) : undefined);

    const received = await this.writeBody(request, res, partial, offset, hash, item, hex);
    return this.finish(request, hex, partial, hash, offset + received, received, offset > 0);
  }

  /**
   * Append the body to the partial, hashing as it goes; returns the bytes written. A plain loop rather than
   * stream.pipeline: when the connection breaks, every byte received is written out before the error is passed
   * on (pipeline would drop buffered chunks), so the resume starts exactly where the network stopped. The writes
   * overlap with receiving and hashing (see FileWriter).
   */
  private async writeBody(request: FetchRequest, res: HttpResponse, partial: string, offset: number, hash: Hash, item: ItemProgress, hex: string | undefined): Promise<number> {
    const { size } = request.expected;
    const file = new FileWriter(await open(partial, offset > 0 ? 'a' : 'w'));
    let received = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (size !== undefined && offset + received + chunk.length > size) {
          throw new UserError(`${labelOf(request)}: ${redactUrl(res.url)} sent more than the expected ${size} bytes`);
        }
        hash.update(chunk);
        const watchers = hex === undefined ? undefined : this.watchers.get(hex); // who watches may start mid-way
        if (watchers) for (const watch of watchers) watch(chunk, offset + received);
        await file.write(chunk);
        received += chunk.length;
        this.counters.bytesFetched += chunk.length;
        item.advance(chunk.length);
      }
    } catch (err) {
      res.body.destroy();
      await file.close().catch(() => undefined);
      const full = diskFullError(err, partial, `${labelOf(request)} from ${redactUrl(res.url)}`);
      throw full !== err || err instanceof UserError ? full : asNetworkFailure(err, new URL(res.url), this.timeouts);
    }
    try {
      await file.close();
    } catch (err) {
      throw diskFullError(err, partial, `${labelOf(request)} from ${redactUrl(res.url)}`);
    }
    return received;
  }

  private async openAuthorized(request: FetchRequest, headers: HeaderMap): Promise<HttpResponse> {
    const res = await this.open(request.url, { headers });
    if (res.status !== 401 || !request.authorize) return res;
    discard(res);
    return this.open(request.url, { headers: { ...headers, ...(await request.authorize(res.headers['www-authenticate'])) } });
  }

  /** An existing partial's size and the sha256 state over its bytes, or undefined to start afresh. */
  private async loadPartial(partial: string, size: number | undefined): Promise<{ offset: number; hash: Hash } | undefined> {
    let offset: number;
    try {
      offset = (await stat(partial)).size;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    if (offset === 0 || (size !== undefined && offset > size)) {
      await rm(partial, { force: true });
      return undefined;
    }
    // Hashed before the request goes out, so a slow disk cannot trip the idle timeout of an open response.
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(partial) as AsyncIterable<Buffer>) hash.update(chunk);
    return { offset, hash };
  }

  /** Validate status and ranges; returns the offset the body starts at (0 when the server restarted us). */
  private checkDownloadResponse(request: FetchRequest, res: HttpResponse, offset: number): number {
    const label = labelOf(request);
    if (res.status === 206 && offset > 0) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
      if (range?.[1] !== String(offset)) {
        discard(res);
        throw new TransientError(`${redactUrl(res.url)} answered a resume from byte ${offset} with Content-Range '${res.headers['content-range'] ?? ''}'`);
      }
      return offset;
    }
    if (res.status === 200) {
      const announced = contentLength(res);
      const { size } = request.expected;
      if (size !== undefined && announced !== undefined && announced !== size) {
        discard(res);
        throw new UserError(`${label}: ${redactUrl(request.url)} sends ${announced} bytes, expected ${size}`);
      }
      return 0;
    }
    discard(res);
    if (res.status === 416) throw new TransientError(`${redactUrl(res.url)} refused to resume at byte ${offset} (HTTP 416)`);
    if (isTransientStatus(res.status)) throw new TransientError(`HTTP ${res.status} from ${redactUrl(res.url)}`);
    const where = res.url === request.url ? '' : ` (at ${redactUrl(res.url)})`;
    throw new UserError(`cannot fetch ${label}: ${redactUrl(request.url)} answered HTTP ${res.status}${where}`, hintForStatus(res.status));
  }

  private async finish(
    request: FetchRequest,
    hex: string | undefined,
    partial: string,
    hash: Hash,
    size: number,
    fetched: number,
    resumed: boolean,
  ): Promise<FetchResult> {
    const label = labelOf(request);
    if (request.expected.size !== undefined && size < request.expected.size) {
      // Keep the partial: the next attempt resumes from it.
      throw new TransientError(`${redactUrl(request.url)} ended after ${size} of ${request.expected.size} bytes`);
    }
    const actual = hash.digest('hex');
    if (hex !== undefined && actual !== hex) {
      await rm(partial, { force: true });
      if (resumed) throw new TransientError(`sha256 mismatch after resuming ${label}; starting over`);
      throw new DigestMismatchError(label, request.url, hex, actual);
    }
    const path = await this.cache.commit(partial, actual);
    this.verifiedNow.add(actual);
    return { path, sha256: actual, size, bytesFetched: fetched, fromCache: false };
  }

  /** Progress of one item, folded into the aggregate; every update emits one event. */
  private trackItem(label: string, expectedSize: number | undefined): ItemProgress {
    return new ItemProgress(expectedSize, (doneDelta, totalDelta, itemDone, itemTotal) => {
      this.aggregate.done += doneDelta;
      this.aggregate.total += totalDelta;
      this.onProgress?.({ label, itemDone, itemTotal, ...this.aggregate, fetched: this.counters.bytesFetched });
    });
  }
}

type ItemUpdate = (doneDelta: number, totalDelta: number, itemDone: number, itemTotal: number | undefined) => void;

/** The per-item share of the aggregate progress, kept right across restarts and resumes. */
class ItemProgress {
  private done = 0;
  private total = 0;
  constructor(
    private readonly expectedSize: number | undefined,
    private readonly update: ItemUpdate,
  ) {}

  /** (Re)start at `offset` bytes; `announced` is the Content-Length of the rest, when known. */
  start(offset: number, announced: number | undefined): void {
    const total = this.expectedSize ?? (announced === undefined ? this.total : offset + announced);
    const [doneDelta, totalDelta] = [offset - this.done, total - this.total];
    this.done = offset;
    this.total = total;
    this.update(doneDelta, totalDelta, this.done, this.itemTotal());
  }

  advance(bytes: number): void {
    this.done += bytes;
    this.update(bytes, 0, this.done, this.itemTotal());
  }

  private itemTotal(): number | undefined {
    return this.expectedSize ?? (this.total > 0 ? this.total : undefined);
  }
}

async function resolveHeaders(source: HeaderSource | undefined): Promise<HeaderMap> {
  if (source === undefined) return {};
  return typeof source === 'function' ? source() : source;
}

function labelOf(request: FetchRequest): string {
  return request.label ?? redactUrl(request.url);
}
