/**
 * Write a bundle: one reproducible tar with SHA256SUMS, SHA256SUMS.asc and bundle.yaml first, then every
 * directory and file in path order.
 *
 * Reproducible: the bytes depend only on the entries' paths and contents, the manifest, `mtime` and the key (owner
 * is root:root, no atime/ctime, modes follow from the paths (memberMode), order is fixed, the signature date is
 * `mtime`).
 * Streaming: files are read in 1 MiB pieces, never whole, so bundle size does not bound memory.
 * Atomic: written to `<output>.partial`, renamed into place only when complete and synced.
 *
 * SHA256SUMS goes first, so each file's hash is needed before the tar is started. Files are hashed in a first
 * pass unless the caller passes a hash it already knows (a content-addressed cache), which saves that read; every
 * file is hashed again as it is copied and must match (unless the caller has just verified it, see `verified`),
 * so a wrong hint or a file changed meanwhile is caught.
 *
 * Packing while downloading: an entry may still be on its way (`ready`), with its size and sha256 known from an
 * index or manifest. Every member's place in the tar follows from the sizes alone, so the packer writes the
 * headers and small files at once and copies each file to its place as soon as it is there, while the rest still
 * downloads: when the last download ends, only that file is left to copy.
 */
import { createHash } from 'node:crypto';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import type * as openpgp from 'openpgp';
import { diskFullError, UserError } from '../../util/errors.js';
import { fingerprintOf, signDetached } from '../pgp.js';
import { completeManifest, manifestMismatches, manifestToYaml, type BundleManifest, type ManifestContent } from './manifest.js';
import { comparePaths, LEADING_FILES, MANIFEST_FILE, memberMode, parentDirs, SIGNATURE_FILE, SUMS_FILE, unsafePathReason } from './paths.js';
import { sha256File, sha256Of } from '../../util/digest.js';
import { formatSums } from './sums.js';
import { encodeHeader, endOfArchive, paddingFor } from './tar.js';

export interface PackEntry {
  /** path in the bundle, e.g. packages/kubeadm_1.32.3-1.1_amd64.deb */
  path: string;
  source: { file: string } | { bytes: Uint8Array };
  /** the file's sha256 when already known (content-addressed cache); verified while packing */
  sha256?: string;
  /**
   * The caller has just checked that the file hashes to `sha256` (it downloaded it, hashing on the way), so the
   * packer does not hash it again; only its size is checked. Saves a second pass over every byte of a fresh build.
   */
  verified?: boolean;
  /**
   * The file is still being fetched: the packer copies it once this settles (true: the fetch verified it, as
   * `verified` says), and fails with its error if it rejects. Needs `sha256` and `size`.
   */
  ready?: Promise<boolean>;
  /** the file's size, when it is not there yet to be measured (with `ready`) */
  size?: number;
  /**
   * With `ready`: watch the download's body from its next piece on (returns the function that stops watching).
   * The packer then writes the pieces to the file's place in the tar as they arrive, and once `ready` says the
   * fetch verified the file, copies only what it did not see; a big layer is not read back whole.
   */
  follow?: (watcher: (chunk: Buffer, offset: number) => void) => () => void;
}

export interface PackOptions {
  output: string;
  /** bundle.yaml without `created` and `signer`, which are taken from `mtime` and `signingKey` */
  manifest: ManifestContent;
  entries: PackEntry[];
  /** SOURCE_DATE_EPOCH: every tar mtime, the manifest's `created` and the signature date */
  mtime: Date;
  /** unsigned bundle when absent */
  signingKey?: openpgp.PrivateKey;
}

export interface PackResult {
  /** of the bundle file */
  size: number;
  manifest: BundleManifest;
}

interface Member {
  path: string;
  type: 'file' | 'directory';
  mode: number;
  size: number;
  sha256: string;
  source: PackEntry['source'] | null;
  /** see PackEntry.verified */
  verified?: boolean;
  /** see PackEntry.ready */
  ready?: Promise<boolean>;
  /** see PackEntry.follow */
  follow?: PackEntry['follow'];
}

const COPY_CHUNK = 1 << 20;
/** files copied into the tar at once: enough to keep the disk busy while downloads finish one after another */
const PARALLEL_COPIES = 2;
/** how far the tar's disk may fall behind a download written to it as it arrives (see Tee) */
const TEE_BACKLOG = 32 << 20;
const MAX_MTIME = 8 ** 11 - 1;

export async function packBundle(options: PackOptions): Promise<PackResult> {
  // taken when the copying starts; a fetch failing before then is not an unhandled rejection meanwhile
  for (const entry of options.entries) entry.ready?.catch(() => undefined);
  checkEntries(options.entries, options.mtime);
  const files = await digestEntries(options.entries);
  const signer = options.signingKey ? fingerprintOf(options.signingKey) : null;
  const manifest = completeManifest(options.manifest, options.mtime, signer);
  checkManifest(manifest, files);

  const manifestBytes = Buffer.from(manifestToYaml(manifest));
  const manifestMember = bytesMember(MANIFEST_FILE, manifestBytes);
  const sums = Buffer.from(formatSums([manifestMember, ...files]));
  const signature = options.signingKey ? Buffer.from(await signDetached(sums, options.signingKey, options.mtime)) : null;

  const members = [
    bytesMember(SUMS_FILE, sums),
    ...(signature ? [bytesMember(SIGNATURE_FILE, signature)] : []),
    manifestMember,
    ...withDirectories(files),
  ];
  const size = await writeAtomically(options.output, (handle) => writeTar(handle, members, options.mtime));
  return { size, manifest };
}

function checkEntries(entries: readonly PackEntry[], mtime: Date): void {
  const time = mtime.getTime() / 1000;
  if (!Number.isFinite(time) || time < 0 || time > MAX_MTIME) throw new Error(`mtime ${String(mtime)} cannot be stored in a tar header`);
  const seen = new Set<string>();
  for (const { path } of entries) {
    const reason = unsafePathReason(path);
    if (reason) throw new Error(`cannot pack '${path}': ${reason}`);
    if ((LEADING_FILES as readonly string[]).includes(path)) throw new Error(`cannot pack '${path}': the packer writes it`);
    if (seen.has(path)) throw new Error(`cannot pack '${path}' twice`);
    seen.add(path);
  }
  for (const { path } of entries) {
    const clash = parentDirs(path).find((dir) => seen.has(dir));
    if (clash) throw new Error(`cannot pack '${path}': '${clash}' is a file, not a directory`);
  }
}

/** Size and sha256 of every entry: from memory, from the caller's hint plus a stat (or its size), or by reading the file. */
async function digestEntries(entries: readonly PackEntry[]): Promise<Member[]> {
  const members: Member[] = [];
  for (const entry of entries) {
    const mode = memberMode(entry.path, 'file');
    if ('bytes' in entry.source) {
      members.push({ ...bytesMember(entry.path, entry.source.bytes), mode, source: entry.source });
      continue;
    }
    const file = entry.source.file;
    if (entry.ready) {
      if (!entry.sha256 || entry.size === undefined) throw new Error(`cannot pack '${entry.path}' before it is there without its sha256 and size`);
      members.push({ path: entry.path, type: 'file', mode, sha256: entry.sha256, size: entry.size, source: entry.source, ready: entry.ready, follow: entry.follow });
      continue;
    }
    const digest = entry.sha256 ? { sha256: entry.sha256, size: (await statOrThrow(file, entry.path)).size } : await hashOrThrow(file, entry.path);
    members.push({ path: entry.path, type: 'file', mode, ...digest, source: entry.source, verified: entry.sha256 !== undefined && entry.verified === true });
  }
  return members;
}

function bytesMember(path: string, bytes: Uint8Array): Member {
  const sha256 = sha256Of(bytes);
  return { path, type: 'file', mode: memberMode(path, 'file'), size: bytes.length, sha256, source: { bytes } };
}

async function statOrThrow(file: string, path: string): Promise<{ size: number }> {
  try {
    return await stat(file);
  } catch (err) {
    throw new UserError(`cannot read ${file} (for ${path} in the bundle): ${(err as Error).message}`);
  }
}

async function hashOrThrow(file: string, path: string): Promise<{ sha256: string; size: number }> {
  try {
    return await sha256File(file);
  } catch (err) {
    throw new UserError(`cannot read ${file} (for ${path} in the bundle): ${(err as Error).message}`);
  }
}

/** A manifest that disagrees with the files packed is a bug in whoever built it: refuse to write it. */
function checkManifest(manifest: BundleManifest, files: readonly Member[]): void {
  const mismatches = manifestMismatches(manifest, new Map(files.map((f) => [f.path, f.sha256])));
  if (mismatches.length > 0) {
    throw new Error(`bundle.yaml disagrees with the packed files:\n${mismatches.map((m) => `  ${m.path}: ${m.detail}`).join('\n')}`);
  }
}

/** Every file plus each parent directory once, as explicit entries, all in path order. */
function withDirectories(files: readonly Member[]): Member[] {
  const dirs = new Set(files.flatMap((f) => parentDirs(f.path)));
  const dirMembers: Member[] = [...dirs].map((path) => ({ path, type: 'directory', mode: memberMode(path, 'directory'), size: 0, sha256: '', source: null }));
  return [...dirMembers, ...files].sort((a, b) => comparePaths(a.path, b.path));
}

async function writeAtomically(output: string, write: (handle: FileHandle) => Promise<number>): Promise<number> {
  const partial = `${output}.partial`;
  let handle: FileHandle;
  try {
    handle = await open(partial, 'w', 0o644);
  } catch (err) {
    throw new UserError(`cannot write ${partial}: ${(err as Error).message}`);
  }
  try {
    const size = await write(handle);
    await handle.sync();
    await handle.close();
    await rename(partial, output);
    return size;
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw diskFullError(err, output, 'the bundle; nothing was left under that name');
  }
}

/**
 * Write the members, each at the place the sizes before it give it: headers, directories and bytes at once, files
 * as they become ready (PARALLEL_COPIES at a time, in the order they do). Returns the size of the tar. On a
 * failure, waits for the copies under way before throwing the first error, so nothing writes to the file after.
 */
async function writeTar(handle: FileHandle, members: readonly Member[], mtime: Date): Promise<number> {
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
