/**
 * The tar format as bundles use it, on tar@7's building blocks: `Header` encodes and decodes the ustar header
 * blocks (octal and base-256 numbers, the name/prefix split, the checksum), `Pax` writes and parses the pax
 * records that carry what ustar cannot (long or non-ASCII paths, sizes of 8 GiB and more).
 *
 * What is left here is what tar@7 does not offer:
 * - writing members that come from cache files under other names and from memory, in a fixed order, with fixed
 *   owner, time and modes, hashing every byte on the way out (tar's `Pack` takes files from disk with their own
 *   metadata, or entries of another archive): the caller writes `encodeHeader()`, the body, `paddingFor()` and
 *   `endOfArchive()` itself;
 * - reading for verification: tar's `Parser` cannot be used, because it gives no byte positions, drops the bytes a
 *   strict reader must look at (the padding after a body, the checksum field's terminators, anything after the
 *   end-of-archive marker) and skips a corrupt header to go on reading the next block as a header, so a change to
 *   one byte could go unnoticed or be blamed on the wrong member. The walk over the blocks is therefore ours;
 *   every header in it is decoded by tar's `Header` and `Pax`.
 */
import { createReadStream } from 'node:fs';
import { Header, Pax, type HeaderData } from 'tar';

export const BLOCK = 512;

export type EntryType = 'file' | 'directory';

export interface HeaderFields {
  /** bundle path without a trailing slash */
  path: string;
  type: EntryType;
  size: number;
  mode: number;
  mtime: Date;
}

/** Every member is root:root: the packing user must not show up in the bytes. */
const OWNER = 'root';
/** pax records (or a GNU long name) for one entry are a path and a size: anything bigger is not a bundle's. */
const MAX_EXTENDED_HEADER = 64 * 1024;
const CHECKSUM_FIELD = [148, 156] as const;
const TYPEFLAG_OFFSET = 156;

// ---------------------------------------------------------------------------------------------------------------
// Writing

/**
 * The header block(s) for one entry: a pax header first when the path or size does not fit ustar. Only the
 * given fields are set (no atime/ctime, no pid- or host-dependent names), so the same entry gives the same bytes.
 */
export function encodeHeader(fields: HeaderFields): Buffer {
  const path = fields.type === 'directory' ? `${fields.path}/` : fields.path;
  const header = new Header({
    path,
    type: fields.type === 'directory' ? 'Directory' : 'File',
    size: fields.size,
    mode: fields.mode,
    mtime: fields.mtime,
    uid: 0,
    gid: 0,
    uname: OWNER,
    gname: OWNER,
  });
  const block = Buffer.alloc(BLOCK);
  const needsPax = header.encode(block);
  return needsPax ? Buffer.concat([new Pax({ path, size: fields.size }).encode(), block]) : block;
}

/** Two zero blocks close the archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

export function paddingFor(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

export interface TarEntry {
  /** path as stored, with the trailing slash of a directory removed */
  path: string;
  /** 'file' and 'directory' are the only kinds a bundle may hold; anything else is reported by its typeflag */
  type: EntryType | 'other';
  typeflag: string;
  /** 0 for a directory: tar@7, like GNU tar, reads the block after a directory header as the next header */
  size: number;
  /** file offset of the entry's first header block (its pax header when it has one) */
  offset: number;
  /** The body in chunks, read as they are asked for. */
  chunks(): AsyncIterable<Buffer>;
  /** The whole body, for small members; refuses bodies larger than `limit`. */
  readAll(limit: number): Promise<Buffer>;
}

/** Something wrong with the archive structure itself. After a fatal one nothing further can be read. */
export interface TarDefect {
  path: string | null;
  offset: number;
  detail: string;
  fatal: boolean;
}

export type TarItem = { kind: 'entry'; entry: TarEntry } | { kind: 'defect'; defect: TarDefect };

/**
 * Walk the archive in one pass. Entries come in file order; the caller may read an entry's body or not
 * (unread bodies are skipped). Defects come as items too, so a caller can report every one of them.
 */
export async function* readTar(file: string, chunkSize = 4 << 20): AsyncGenerator<TarItem, void, undefined> {
  const input = new Input(file, chunkSize);
  try {
    // What extended headers ('x' pax records, 'L' GNU long name) say about the header that follows them.
    let extended: HeaderData | undefined;
    let extendedOffset: number | null = null;
    for (;;) {
      const offset = input.offset;
      const block = await input.exact(BLOCK);
      if (!block) return yield defect(null, offset, 'the archive ends without an end-of-archive marker (truncated?)', true);
      if (isZero(block)) return yield* readTrailer(input, offset);
      const header = decodeHeader(block, extended);
      if (typeof header === 'string') return yield defect(extended?.path ?? null, offset, header, true);
      if (header.type === 'ExtendedHeader' || header.type === 'NextFileHasLongPath') {
        const data = await readExtended(input, header.size);
        if (typeof data === 'string') return yield defect(header.path, offset, data, true);
        extended = header.type === 'ExtendedHeader' ? Pax.parse(data.toString('utf8'), extended) : { ...extended, path: cString(data) };
        extendedOffset ??= offset;
        continue;
      }
      const entry = new Entry(input, header, extendedOffset ?? offset);
      extended = undefined;
      extendedOffset = null;
      yield { kind: 'entry', entry };
      const problem = await entry.finish();
      if (problem) {
        yield defect(entry.path, entry.offset, problem.detail, problem.fatal);
        if (problem.fatal) return;
      }
    }
  } finally {
    await input.close();
  }
}

function defect(path: string | null, offset: number, detail: string, fatal: boolean): TarItem {
  return { kind: 'defect', defect: { path, offset, detail, fatal } };
}

/** One header block as tar's `Header` decodes it, merged with the extended headers before it. */
interface DecodedHeader {
  path: string;
  type: Header['type'];
  /** the typeflag byte: `Header` calls every unknown one 'Unsupported', a report had better name it */
  typeflag: string;
  size: number;
}

/** The header, or why the block is not a header we accept. */
function decodeHeader(block: Buffer, extended: HeaderData | undefined): DecodedHeader | string {
  let header: Header;
  try {
    header = new Header(block, 0, extended);
  } catch (err) {
    return `unreadable header: ${(err as Error).message}`;
  }
  // `Header` puts the ustar prefix in front of a pax path too (tar's own ReadEntry takes the pax path again).
  const path = extended?.path ?? header.path ?? '';
  const named = `; the header names ${JSON.stringify(path)}`;
  if (!hasValidChecksum(block, header)) return `header checksum mismatch (corrupt header)${named}`;
  if (header.size === undefined) return `unreadable size field${named}`;
  return { path, type: header.type, typeflag: String.fromCharCode(block[TYPEFLAG_OFFSET]!), size: header.size };
}

/**
 * tar's `Header` checks the checksum's value but reads it only up to the first non-octal byte, so the two bytes
 * after the six digits would be covered by nothing: we accept only the forms tar@7 ("%06o SP NUL") and GNU tar
 * ("%06o NUL SP") write.
 */
function hasValidChecksum(block: Buffer, header: Header): boolean {
  if (!header.cksumValid || header.cksum === undefined) return false;
  const digits = header.cksum.toString(8).padStart(6, '0');
  const field = block.toString('latin1', ...CHECKSUM_FIELD);
  return field === `${digits} \0` || field === `${digits}\0 `;
}

class Entry implements TarEntry {
  readonly path: string;
  readonly type: EntryType | 'other';
  readonly typeflag: string;
  readonly size: number;
  private remaining: number;
  private truncated = false;

  constructor(private readonly input: Input, header: DecodedHeader, readonly offset: number) {
    this.type = header.type === 'File' || header.type === 'OldFile' ? 'file' : header.type === 'Directory' ? 'directory' : 'other';
    this.path = this.type === 'directory' && header.path.endsWith('/') ? header.path.slice(0, -1) : header.path;
    this.typeflag = header.typeflag;
    this.size = header.size;
    this.remaining = header.size;
  }

  async *chunks(): AsyncIterable<Buffer> {
    while (this.remaining > 0) {
      const chunk = await this.input.next(this.remaining);
      if (!chunk) {
        this.truncated = true;
        return;
      }
      this.remaining -= chunk.length;
      yield chunk;
    }
  }

  async readAll(limit: number): Promise<Buffer> {
    if (this.size > limit) throw new Error(`${this.path} is ${this.size} bytes, more than the ${limit} expected`);
    const parts: Buffer[] = [];
    for await (const chunk of this.chunks()) parts.push(chunk);
    return Buffer.concat(parts);
  }

  /** Skip what the caller did not read, then check the zero padding up to the next header. */
  async finish(): Promise<{ detail: string; fatal: boolean } | null> {
    const rest = this.chunks()[Symbol.asyncIterator]();
    while (!(await rest.next()).done);
    if (this.truncated) return { detail: 'the archive ends inside this member (truncated?)', fatal: true };
    const padding = await this.input.exact(paddingFor(this.size));
    if (!padding) return { detail: 'the archive ends inside this member\'s padding (truncated?)', fatal: true };
    return isZero(padding) ? null : { detail: 'non-zero bytes in the padding after this member', fatal: false };
  }
}

/** After the first zero block: a second one, and nothing but zeros up to the end of the file. */
async function* readTrailer(input: Input, offset: number): AsyncGenerator<TarItem, void, undefined> {
  const second = await input.exact(BLOCK);
  if (!second) return yield defect(null, offset, 'the end-of-archive marker is one zero block instead of two (truncated?)', false);
  let chunk: Buffer | null = second;
  while (chunk) {
    if (!isZero(chunk)) return yield defect(null, offset, 'non-zero bytes after the end-of-archive marker', false);
    chunk = await input.next(Number.MAX_SAFE_INTEGER);
  }
}

/** The body of an extended header, or why it cannot be used. */
async function readExtended(input: Input, size: number): Promise<Buffer | string> {
  if (size > MAX_EXTENDED_HEADER) return `extended header of ${size} bytes is larger than ${MAX_EXTENDED_HEADER}`;
  const data = await input.exact(size);
  const padding = await input.exact(paddingFor(size));
  if (!data || !padding) return 'the archive ends inside an extended header (truncated?)';
  if (!isZero(padding)) return 'non-zero bytes in the padding after an extended header';
  return data;
}

/** Text up to the first NUL, as a GNU long name or a header's name field holds it. */
function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

function isZero(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * The file as a sequence of byte ranges of any size asked for. Node's read stream reads the next chunk while
 * the caller works on (hashes) the current one, so disk and CPU overlap.
 */
class Input {
  private readonly reads: AsyncIterator<Buffer>;
  private current: Buffer = Buffer.alloc(0);
  /** file offset of the next byte handed out */
  offset = 0;

  constructor(file: string, chunkSize: number) {
    this.reads = createReadStream(file, { highWaterMark: chunkSize })[Symbol.asyncIterator]();
  }

  /** Up to `max` bytes (at least one), or null at end of file. */
  async next(max: number): Promise<Buffer | null> {
    while (this.current.length === 0) {
      const read = await this.reads.next();
      if (read.done) return null;
      this.current = read.value;
    }
    const view = this.current.subarray(0, max);
    this.current = this.current.subarray(view.length);
    this.offset += view.length;
    return view;
  }

  /** Exactly `n` bytes (copied when they straddle two reads), or null when the file ends first. */
  async exact(n: number): Promise<Buffer | null> {
    if (n === 0) return Buffer.alloc(0);
    const first = await this.next(n);
    if (!first || first.length === n) return first;
    const out = Buffer.allocUnsafe(n);
    let filled = first.copy(out);
    while (filled < n) {
      const more = await this.next(n - filled);
      if (!more) return null;
      filled += more.copy(out, filled);
    }
    return out;
  }

  /** Stop reading and close the file, also when the walk ends early. */
  async close(): Promise<void> {
    await this.reads.return?.();
  }
}
