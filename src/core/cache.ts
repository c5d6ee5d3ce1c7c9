/**
 * The content-addressed download cache.
 *
 *   <root>/blobs/sha256/<hex>   finished, verified content; the name IS the sha256 of the bytes
 *   <root>/tmp/<id>.partial     a download in progress (or cut short); never read as content
 *   <root>/derived/<kind>/<key> small data computed from cached content, e.g. a resolved package closure, under a
 *                               key the caller derives from the digests of its inputs (see readDerived)
 *
 * Only `commit` moves a file into blobs/, by an atomic rename after the caller verified it, so a killed
 * process leaves at most a partial behind and never a corrupt cache entry.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { syncFile, writeAtomically } from '../util/atomic-write.js';
import { diskFullError } from '../util/errors.js';
import { SHA256_HEX, sha256Of } from '../util/digest.js';

export class BlobCache {
  readonly blobsDir: string;
  readonly tmpDir: string;

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.tmpDir = path.join(root, 'tmp');
  }

  /** Where the blob with this sha256 lives (whether or not it is there yet). */
  blobPath(sha256Hex: string): string {
    return path.join(this.blobsDir, checkHex(sha256Hex));
  }

  /** Size of the cached blob, or undefined when it is not cached. */
  async sizeOf(sha256Hex: string): Promise<number | undefined> {
    try {
      const info = await stat(this.blobPath(sha256Hex));
      return info.isFile() ? info.size : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * The partial file for a download. A known sha256 gives a stable name, so a later run finds and resumes
   * it; without one the name is random, since unverifiable bytes must never be resumed.
   */
  async partialPath(sha256Hex?: string): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    const id = sha256Hex === undefined ? `anon-${randomUUID()}` : checkHex(sha256Hex);
    return path.join(this.tmpDir, `${id}.partial`);
  }

  /** Move a verified file into place. fsync first: a crash right after the rename must not leave a torn blob. */
  async commit(verifiedFile: string, sha256Hex: string): Promise<string> {
    const target = this.blobPath(sha256Hex);
    try {
      await syncFile(verifiedFile);
      await mkdir(this.blobsDir, { recursive: true });
      await rename(verifiedFile, target);
    } catch (err) {
      // a full disk may only show when the data is flushed
      throw diskFullError(err, verifiedFile, 'the download cache');
    }
    return target;
  }

  /** Store small content held in memory (manifests, indexes); returns its sha256 hex. */
  async putBytes(bytes: Uint8Array): Promise<string> {
    const hex = sha256Of(bytes);
    if ((await this.sizeOf(hex)) === bytes.length) return hex;
    const tmp = await this.partialPath();
    try {
      await mkdir(this.blobsDir, { recursive: true });
      await writeAtomically(this.blobPath(hex), bytes, { partial: tmp, sync: true });
    } catch (err) {
      throw diskFullError(err, tmp, 'the download cache');
    }
    return hex;
  }

  /**
   * Data stored by writeDerived under `kind` and `key`, or undefined. Its key names what it was derived from, so
   * it is never stale, but it is not verified: the caller checks that it is well-formed and treats a damaged
   * entry as a miss.
   */
  async readDerived(kind: string, key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.derivedEntry(kind, key));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Where a derived file of any size is kept under `key` (a packed bundle, linked in rather than copied); the
   * directory exists once this returns. Like readDerived's entries, what is there is not verified.
   */
  async derivedFile(kind: string, key: string): Promise<string> {
    const entry = this.derivedEntry(kind, key);
    await mkdir(path.dirname(entry), { recursive: true });
    return entry;
  }

  /** Store small derived data atomically (no fsync: readDerived's callers recompute a damaged entry). */
  async writeDerived(kind: string, key: string, bytes: Uint8Array): Promise<void> {
    const entry = this.derivedEntry(kind, key);
    const tmp = await this.partialPath();
    try {
      await mkdir(path.dirname(entry), { recursive: true });
      await writeAtomically(entry, bytes, { partial: tmp });
    } catch (err) {
      throw diskFullError(err, tmp, 'the download cache');
    }
  }

  private derivedEntry(kind: string, key: string): string {
    if (!/^[a-z0-9-]+$/.test(kind)) throw new Error(`not a derived-data kind: '${kind}'`);
    return path.join(this.root, 'derived', kind, checkHex(key));
  }

  /** Drop a blob whose size proved wrong, so it is fetched again. */
  async evict(sha256Hex: string): Promise<void> {
    await rm(this.blobPath(sha256Hex), { force: true });
  }
}

/**
 * Sequential writes of a big file (a download, a bundle) that do not wait for each other: chunks are gathered into
 * batches of about 1 MiB, and one batch is written (one writev) while the next fills, so at most two are held.
 * Every 64 MiB a datasync is started in the background, so the kernel writes the data out while more arrives
 * rather than all of it at the final fsync; only one such sync runs at a time in the whole process, since each
 * holds one of libuv's four threads until the disk is done. Buffers passed to `write` must not change afterwards.
 */
export class FileWriter {
  private static readonly BATCH_BYTES = 1 << 20;
  /** well under IOV_MAX (1024 on Linux), should the chunks be tiny */
  private static readonly BATCH_CHUNKS = 256;
  private static readonly SYNC_EVERY = 64 << 20;
  private static syncing = false;

  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  private inFlight: Promise<void> = Promise.resolve();
  private syncBehind: Promise<void> = Promise.resolve();
  private sinceSync = 0;
  private failure: unknown;

  constructor(private readonly handle: FileHandle) {}

  /** Queue `chunk`; waits only when a full batch must go out and the previous one is still being written. */
  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return;
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    if (this.batchBytes >= FileWriter.BATCH_BYTES || this.batch.length >= FileWriter.BATCH_CHUNKS) await this.flush();
  }

  /** Write everything queued and wait until it is written; throws the first write error. The file stays open. */
  async finish(): Promise<void> {
    await this.flush();
    await this.inFlight;
    await this.syncBehind;
    this.throwFailure();
  }

  /** finish(), then close the file, also when writing failed (the error is thrown after). */
  async close(): Promise<void> {
    try {
      await this.finish();
    } finally {
      await this.handle.close();
    }
  }

  private async flush(): Promise<void> {
    await this.inFlight;
    this.throwFailure();
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.sinceSync += this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    // failures are kept, not left rejected: a write may fail while the caller waits for the network
    this.inFlight = writeAll(this.handle, batch).then(
      () => this.maybeSyncBehind(),
      (err: unknown) => this.fail(err),
    );
  }

  private maybeSyncBehind(): void {
    if (this.sinceSync < FileWriter.SYNC_EVERY || FileWriter.syncing) return;
    FileWriter.syncing = true;
    this.sinceSync = 0;
    this.syncBehind = this.handle
      .datasync()
      .catch((err: unknown) => this.fail(err))
      .finally(() => (FileWriter.syncing = false));
  }

  private fail(err: unknown): void {
    this.failure ??= err;
  }

  private throwFailure(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

/** writev until every byte is out: a write may take fewer bytes than offered. */
async function writeAll(handle: FileHandle, buffers: Uint8Array[]): Promise<void> {
  let pending = buffers;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending as NodeJS.ArrayBufferView[]);
    pending = dropBytes(pending, bytesWritten);
  }
}

function dropBytes(buffers: Uint8Array[], count: number): Uint8Array[] {
  let left = count;
  let i = 0;
  while (i < buffers.length && left >= (buffers[i] as Uint8Array).length) left -= (buffers[i++] as Uint8Array).length;
  const rest = buffers.slice(i);
  if (left > 0 && rest[0]) rest[0] = rest[0].subarray(left);
  return rest;
}

function checkHex(hex: string): string {
  if (!SHA256_HEX.test(hex)) throw new Error(`not a lowercase sha256 hex digest: '${hex}'`);
  return hex;
}

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
