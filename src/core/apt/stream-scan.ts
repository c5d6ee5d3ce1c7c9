/**
 * Scanning a Packages index while it downloads: the compressed bytes go through the decompressor as they arrive,
 * the plain bytes to a scratch file (where the records' stanzas are read back later) and through the deb822
 * scanner into a SourceScan. Downloading (~12 MB of gzip for Debian's main), decompressing (zlib on libuv's
 * threads, or the system `xz` process) and scanning (this thread) thus overlap instead of running one after the
 * other, and the records a build can act on early (see build/speculate.ts) are known long before the index is
 * complete.
 *
 * Nothing read here is trusted until the download's sha256 checks out: the caller must not use the scan unless
 * `complete()` says every byte was seen, in order, and the download was verified.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { Deb822Feed } from './deb822.js';
import type { ScannedRecord, SourceScan } from './index.js';
import { decompressionError, indexGunzip, INDEX_PIECE, spawnXz, type IndexCompression } from './release.js';

export class StreamingScan {
  private expectedOffset = 0;
  /** set once the stream cannot be used (a gap, a restart, an error): the caller falls back to the file */
  private broken = false;
  /** the caller, or a gap, stopped it: what the stopped decompressor reports then is no failure */
  private abandoned = false;
  private failure: unknown;
  private readonly feed: Deb822Feed;
  private readonly decoder: Decoder | undefined;
  private readonly scratch: WriteStream | undefined;
  private readonly decoded: Promise<void>;

  /**
   * @param scan receives the records (its source's file must be `scratchFile`, or for an uncompressed index the
   *   downloaded file itself)
   * @param scratchFile where the decompressed bytes go; unused for an uncompressed index
   * @param onRecord sees each record as soon as it is scanned (from bytes not yet verified)
   */
  constructor(
    private readonly scan: SourceScan,
    compression: IndexCompression,
    private readonly scratchFile: string,
    private readonly onRecord: (scanned: ScannedRecord) => void = () => undefined,
  ) {
    this.feed = new Deb822Feed(scan.scanOptions, INDEX_PIECE);
    if (compression === 'none') {
      this.decoded = Promise.resolve();
      return;
    }
    this.scratch = createWriteStream(scratchFile, { highWaterMark: INDEX_PIECE });
    this.scratch.on('error', (err) => this.fail(err));
    this.decoder = compression === 'gzip' ? gunzipDecoder() : xzDecoder();
    this.decoder.output.on('data', (plain: Buffer) => {
      if (this.broken) return;
      this.scratch?.write(plain);
      this.take(plain);
    });
    this.decoded = new Promise<void>((resolve) => {
      this.decoder?.done.then(resolve, (err: unknown) => {
        this.fail(err);
        resolve();
      });
    });
  }

  /** A piece of the download at `offset` in it (what Fetcher.watch shows). */
  data(chunk: Buffer, offset: number): void {
    if (this.broken) return;
    if (offset !== this.expectedOffset) {
      // a resumed or restarted download: what came before is not here; the file will be read instead
      this.abandon();
      return;
    }
    this.expectedOffset += chunk.length;
    if (this.decoder) this.decoder.input.write(chunk);
    else this.take(chunk);
  }

  /**
   * Once the download is complete and verified (`size` bytes): true when every byte went through here, the last
   * records are in the scan and the scratch file is written; false when the caller must read the file instead.
   * Throws what the scan or decompression found wrong in the verified bytes.
   */
  async complete(size: number): Promise<boolean> {
    if (this.failure !== undefined) {
      this.abandon();
      throw this.failure;
    }
    if (this.broken || this.expectedOffset !== size) {
      this.abandon();
      return false;
    }
    this.decoder?.input.end();
    await this.decoded;
    if (!this.broken) this.take(undefined);
    if (this.scratch) {
      await new Promise<void>((resolve) => {
        this.scratch?.end(() => resolve());
      });
    }
    if (this.failure !== undefined) throw this.failure;
    return !this.broken;
  }

  /** Stop, and free the decompressor; safe to call more than once. */
  abandon(): void {
    this.abandoned = true;
    this.broken = true;
    this.decoder?.stop();
    this.scratch?.destroy();
  }

  /** Scan plain bytes; undefined marks the end. A malformed stanza is kept to be thrown by complete(). */
  private take(plain: Buffer | undefined): void {
    try {
      for (const span of plain === undefined ? this.feed.end() : this.feed.push(plain)) {
        const scanned = this.scan.add(span);
        if (scanned) this.onRecord(scanned);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.abandoned) return;
    this.failure ??= decompressionError(err, this.scan.scanOptions.source ?? 'index', this.scratchFile);
    this.broken = true;
    this.decoder?.stop();
  }
}

interface Decoder {
  input: Writable;
  output: Readable;
  /** settles when the output has ended (every 'data' event delivered), or the decoder failed */
  done: Promise<void>;
  stop(): void;
}

function gunzipDecoder(): Decoder {
  const gunzip = indexGunzip();
  const done = new Promise<void>((resolve, reject) => {
    gunzip.on('end', resolve);
    gunzip.on('error', reject);
    // destroyed by stop(): no 'end' and no 'error' follow (a no-op after 'end')
    gunzip.on('close', () => reject(new Error('stopped')));
  });
  done.catch(() => undefined);
  return { input: gunzip, output: gunzip, done, stop: () => gunzip.destroy() };
}

function xzDecoder(): Decoder {
  const { child, done } = spawnXz('pipe', 'pipe');
  const input = child.stdin as Writable;
  // a write after xz has gone (it failed, or was stopped) is reported through `done`, not thrown
  input.on('error', () => undefined);
  return { input, output: child.stdout as Readable, done, stop: () => child.kill() };
}
