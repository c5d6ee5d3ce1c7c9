/**
 * The positional tar writer behind packBundle: every member's place in the tar follows from the sizes of the
 * members before it, so headers, directories and small files are written at once and each file is copied to its
 * place as soon as it is there (a download under way is written as its pieces arrive, see Tee), in whatever order
 * the files become ready. The format itself (header encoding, padding) is tar.ts's.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { UserError } from '../../util/errors.js';
import { encodeHeader, endOfArchive, paddingFor } from './tar.js';

/** Where a member's bytes come from: a file (the cache) or memory (bundle.yaml, SHA256SUMS, the repo index). */
export type MemberSource = { file: string } | { bytes: Uint8Array };

/** Watches a download's body from its next piece on; returns the function that stops watching (see PackEntry.follow). */
export type Follow = (watcher: (chunk: Buffer, offset: number) => void) => () => void;

/** One member of the tar, as the packer planned it: path, mode, size and sha256 are final. */
export interface Member {
  path: string;
  type: 'file' | 'directory';
  mode: number;
  size: number;
  sha256: string;
  source: MemberSource | null;
  /** see PackEntry.verified */
  verified?: boolean;
  /** see PackEntry.ready */
  ready?: Promise<boolean>;
  /** see PackEntry.follow */
  follow?: Follow;
}

/** bytes read from a file, and gathered from a download, per write */
const COPY_CHUNK = 1 << 20;
/** files copied into the tar at once: enough to keep the disk busy while downloads finish one after another */
const PARALLEL_COPIES = 2;
/** how far the tar's disk may fall behind a download written to it as it arrives (see Tee) */
const TEE_BACKLOG = 32 << 20;

/**
 * Write the members, each at the place the sizes before it give it: headers, directories and bytes at once, files
 * as they become ready (PARALLEL_COPIES at a time, in the order they do). Returns the size of the tar. On a
 * failure, waits for the copies under way before throwing the first error, so nothing writes to the file after.
 */
export async function writeTar(handle: FileHandle, members: readonly Member[], mtime: Date): Promise<number> {
  const placed: { member: Member; offset: number }[] = [];
  const head: { bytes: Uint8Array; offset: number }[] = [];
  let offset = 0;
  for (const member of members) {
    const header = encodeHeader({ path: member.path, type: member.type, size: member.size, mode: member.mode, mtime });
    head.push({ bytes: header, offset });
    offset += header.length;
    if (member.source && 'bytes' in member.source) head.push({ bytes: member.source.bytes, offset });
    else if (member.source) placed.push({ member, offset });
    offset += member.size + paddingFor(member.size);
  }
  const end = endOfArchive();
  head.push({ bytes: end, offset });
  const size = offset + end.length;
  // downloads under way are written to their places as they arrive, from now on
  const tees = new Map(placed.filter((p) => p.member.follow).map((p) => [p.member, new Tee(handle, p)]));
  // padding is zeros, which the file has wherever nothing is written
  await handle.truncate(size);
  await writeAt(handle, head);

  const queue = new ReadyQueue(placed);
  const copier = async (): Promise<void> => {
    for (let next = await queue.take(); next; next = await queue.take()) {
      try {
        // what a tee wrote of a verified download need not be copied again: only the part before it
        const teed = await tees.get(next.member)?.finish();
        const unseen = next.verified && teed?.end === next.member.size ? teed.start : next.member.size;
        await copyFile(handle, next.member, next.offset, next.verified, unseen);
      } catch (err) {
        queue.fail(err);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(PARALLEL_COPIES, placed.length) }, copier));
  } finally {
    // nothing writes to the file once this returns
    await Promise.all([...tees.values()].map((tee) => tee.finish().catch(() => undefined)));
  }
  queue.throwFailure();
  return size;
}

/**
 * Writes the pieces of a download under way to the file's place in the tar as they arrive, gathered into writes of
 * about a MiB (the network hands out 16-64 KiB pieces), one at a time. What it wrote is one run of the file's bytes,
 * [start, end): a download that restarts or resumes elsewhere begins a new run (earlier pieces at the same places
 * are overwritten, or were the same bytes: the content is addressed by its sha256 and verified). Should the disk
 * fall more than TEE_BACKLOG behind the network, it gives up (memory stays bounded) and the file is copied whole.
 */
class Tee {
  private start = 0;
  private end = -1;
  private batch: Buffer[] = [];
  private batchAt = 0;
  private batchBytes = 0;
  /** bytes taken in and not yet written */
  private backlog = 0;
  private gaveUp = false;
  private writes: Promise<void> = Promise.resolve();
  private failure: unknown;
  private readonly stop: () => void;

  constructor(
    private readonly handle: FileHandle,
    private readonly place: Placed,
  ) {
    const follow = place.member.follow as NonNullable<Member['follow']>;
    this.stop = follow((chunk, at) => {
      if (this.gaveUp) return;
      if (this.backlog + chunk.length > TEE_BACKLOG) {
        this.gaveUp = true;
        this.batch = [];
        this.batchBytes = 0;
        this.stop();
        return;
      }
      if (at !== this.end) this.start = at;
      this.end = at + chunk.length;
      if (this.batchBytes > 0 && at !== this.batchAt + this.batchBytes) this.flush();
      if (this.batchBytes === 0) this.batchAt = at;
      this.batch.push(chunk);
      this.batchBytes += chunk.length;
      this.backlog += chunk.length;
      if (this.batchBytes >= COPY_CHUNK) this.flush();
    });
  }

  /** Stop watching and wait for the writes; the run written (none when it gave up). Throws a failed write's error. */
  async finish(): Promise<{ start: number; end: number }> {
    this.stop();
    this.flush();
    await this.writes;
    if (this.failure !== undefined) throw this.failure;
    return this.gaveUp ? { start: 0, end: -1 } : { start: this.start, end: this.end };
  }

  private flush(): void {
    if (this.batchBytes === 0) return;
    const pieces = this.batch;
    const bytes = this.batchBytes;
    const at = this.place.offset + this.batchAt;
    this.batch = [];
    this.batchBytes = 0;
    this.writes = this.writes
      .then(() => writeAt(this.handle, [{ bytes: pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces), offset: at }]))
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.backlog -= bytes;
      });
  }
}

interface Placed {
  member: Member;
  offset: number;
}

/**
 * The files to copy, handed out in the order they become ready, each once, with whether its fetch verified it.
 * The first failure (a fetch's, or a copy's given to `fail`) stops the handing out and is what `throwFailure` throws.
 */
class ReadyQueue {
  private readonly ready: (Placed & { verified: boolean })[] = [];
  private left: number;
  private failure: { err: unknown } | undefined;
  private waiters: (() => void)[] = [];

  constructor(items: readonly Placed[]) {
    this.left = items.length;
    for (const item of items) {
      const { ready, verified } = item.member;
      if (!ready) this.ready.push({ ...item, verified: verified === true });
      else
        ready.then(
          (fetchVerified) => this.push({ ...item, verified: fetchVerified }),
          (err: unknown) => this.fail(err),
        );
    }
  }

  /** The next file to copy; undefined once all were handed out, or after a failure. */
  async take(): Promise<(Placed & { verified: boolean }) | undefined> {
    for (;;) {
      if (this.failure || this.left === 0) return undefined;
      const next = this.ready.shift();
      if (next) {
        this.left--;
        return next;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  fail(err: unknown): void {
    this.failure ??= { err };
    this.signal();
  }

  throwFailure(): void {
    if (this.failure) throw this.failure.err;
  }

  private push(item: Placed & { verified: boolean }): void {
    this.ready.push(item);
    this.signal();
  }

  /** Every copier waiting looks again. */
  private signal(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** Write each piece at its offset. */
async function writeAt(handle: FileHandle, pieces: readonly { bytes: Uint8Array; offset: number }[]): Promise<void> {
  for (const { bytes, offset } of pieces) {
    for (let done = 0; done < bytes.length; ) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, offset + done);
      done += bytesWritten;
    }
  }
}

/**
 * Copy the first `length` bytes of the member's file (all of them by default) to `offset` in the tar, and check
 * that the file has the member's size and, unless the fetch that brought it has just verified it, hashes to
 * `member.sha256` (reading the rest of the file for that). The next piece is read while the current one is hashed
 * and written, so the disk and the hashing overlap.
 */
async function copyFile(out: FileHandle, member: Member, offset: number, verified: boolean, length = member.size): Promise<void> {
  const file = (member.source as { file: string }).file;
  const handle = await open(file, 'r').catch((err: unknown) => {
    throw new UserError(`cannot read ${file} (for ${member.path} in the bundle): ${(err as Error).message}`);
  });
  try {
    const hash = verified ? undefined : createHash('sha256');
    const toRead = verified ? length : member.size;
    const readAhead = (at: number): Promise<Buffer> => {
      const read = readPiece(handle, Math.min(COPY_CHUNK, toRead - at), at);
      read.catch(() => undefined); // awaited below; never an unhandled rejection if the loop stops first
      return read;
    };
    let copied = 0;
    let next = toRead > 0 ? readAhead(0) : undefined;
    while (next) {
      const piece = await next;
      const at = copied;
      copied += piece.length;
      next = piece.length > 0 && copied < toRead ? readAhead(copied) : undefined;
      hash?.update(piece);
      if (at < length) await writeAt(out, [{ bytes: piece.subarray(0, Math.min(piece.length, length - at)), offset: offset + at }]);
    }
    const { size } = await handle.stat();
    if (copied !== toRead || size !== member.size || (hash && hash.digest('hex') !== member.sha256)) {
      throw new UserError(
        `${file} (for ${member.path} in the bundle) changed while packing or does not match its expected sha256 ${member.sha256}`,
        'if it is in the download cache, delete it there and build again',
      );
    }
  } finally {
    await handle.close();
  }
}

/** Up to `length` bytes at `position`, in a buffer of their own (the writer may still hold the previous one). */
async function readPiece(handle: FileHandle, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}
