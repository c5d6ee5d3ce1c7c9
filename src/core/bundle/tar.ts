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
/** pax records for one entry are a path and a size: anything bigger is not a bundle's. */
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
  /** 0 for a directory (anything else is a defect: readers disagree on whether a directory has a body) */
  size: number;
  /** permission bits as stored (including setuid, setgid and sticky) */
  mode: number;
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

export interface ReadTarOptions {
  /** bytes read from the file at a time (default 4 MiB) */
  chunkSize?: number;
  /** sees every byte of the file once, in order, as it is read: e.g. to hash the whole file in the same pass */
  onBytes?(chunk: Buffer): void;
}

/**
 * Walk the archive in one pass. Entries come in file order; the caller may read an entry's body or not
 * (unread bodies are skipped). Defects come as items too, so a caller can report every one of them.
 *
 * Canonical form only: every header must be exactly the bytes `encodeHeader` writes for the path, type, size,
 * mode and time it carries — one pax header at most, holding only the path and size and only when ustar cannot,
 * no GNU long names, sparse files, global headers or other extensions, no stray bytes in any field. Readers
 * disagree on those forms (GNU tar and tar@7 give a pax path and a following GNU long name different
 * precedence, for one), so a header this reader understands one way could unpack another way on a host. A
 * header of any other form is a fatal defect: what follows it cannot be read with certainty.
 */
export async function* readTar(file: string, options: ReadTarOptions = {}): AsyncGenerator<TarItem, void, undefined> {
  const input = new Input(file, options.chunkSize ?? 4 << 20, options.onBytes);
  try {
    for (;;) {
      const offset = input.offset;
      const block = await input.exact(BLOCK);
      if (!block) return yield defect(null, offset, 'the archive ends without an end-of-archive marker (truncated?)', true);
      if (isZero(block)) return yield* readTrailer(input, offset);
      const read = await readHeader(input, block);
      if (typeof read === 'string') return yield defect(null, offset, read, true);
      const { header, raw, paxText } = read;
      const problem = formProblem(header, raw, paxText);
      if (problem) return yield defect(header.path, offset, problem, true);
      const entry = new Entry(input, header, offset);
      yield { kind: 'entry', entry };
      const finished = await entry.finish();
      if (finished) {
        yield defect(entry.path, entry.offset, finished.detail, finished.fatal);
        if (finished.fatal) return;
      }
    }
  } finally {
    await input.close();
  }
}

function defect(path: string | null, offset: number, detail: string, fatal: boolean): TarItem {
  return { kind: 'defect', defect: { path, offset, detail, fatal } };
}

/** One entry's header as tar's `Header` decodes it, merged with its pax header. */
interface DecodedHeader {
  path: string;
  type: EntryType | 'other';
  /** the typeflag byte: `Header` calls every unknown one 'Unsupported', a report had better name it */
  typeflag: string;
  size: number;
  mode: number;
  mtime: Date;
}

/** Typeflags that change how the blocks after them are read: refused outright, whatever they say. */
const EXTENSION_TYPES: Record<string, string> = {
  L: 'a GNU long name',
  K: 'a GNU long link name',
  g: 'a pax global header',
  S: 'a GNU sparse file',
  M: 'a GNU multi-volume continuation',
  V: 'a GNU volume label',
  N: 'an old GNU long name',
  D: 'a GNU dump directory',
  X: 'a Solaris extended header',
};

/**
 * The entry's header (and its pax header before it, if any), with the raw bytes of both; or why they cannot be
 * read. Only one pax header may precede an entry: a second one, or any other extension type, is refused.
 */
async function readHeader(input: Input, first: Buffer): Promise<{ header: DecodedHeader; raw: Buffer; paxText: string | null } | string> {
  let decoded = decodeBlock(first, undefined);
  if (typeof decoded === 'string') return decoded;
  if (decoded.typeflag !== 'x') {
    const extension = EXTENSION_TYPES[decoded.typeflag];
    if (extension) return `${decoded.path}: tar type '${decoded.typeflag}' (${extension}) is not a form kube-bundle writes; readers disagree on it`;
    return { header: decoded, raw: first, paxText: null };
  }
  const data = await readExtended(input, decoded.size);
  if (typeof data === 'string') return data;
  const paxText = data.toString('utf8');
  let pax: HeaderData;
  try {
    pax = Pax.parse(paxText, undefined);
  } catch (err) {
    return `unreadable pax header: ${(err as Error).message}`;
  }
  const second = await input.exact(BLOCK);
  if (!second) return 'the archive ends after a pax header (truncated?)';
  if (isZero(second)) return 'a pax header followed by the end-of-archive marker instead of an entry';
  decoded = decodeBlock(second, pax);
  if (typeof decoded === 'string') return decoded;
  if (decoded.typeflag === 'x' || EXTENSION_TYPES[decoded.typeflag]) {
    return `${decoded.path}: a pax header followed by another extension header (tar type '${decoded.typeflag}'); kube-bundle writes at most one pax header per entry`;
  }
  return { header: decoded, raw: Buffer.concat([first, data, Buffer.alloc(paddingFor(data.length)), second]), paxText };
}

/** One header block as tar's `Header` decodes it, merged with the pax records before it; or why it is not one. */
function decodeBlock(block: Buffer, pax: HeaderData | undefined): DecodedHeader | string {
  let header: Header;
  try {
    header = new Header(block, 0, pax);
  } catch (err) {
    return `unreadable header: ${(err as Error).message}`;
  }
  // `Header` puts the ustar prefix in front of a pax path too (tar's own ReadEntry takes the pax path again).
  const rawPath = pax?.path ?? header.path ?? '';
  const named = `; the header names ${JSON.stringify(rawPath)}`;
  if (!hasValidChecksum(block, header)) return `header checksum mismatch (corrupt header)${named}`;
  if (header.size === undefined) return `unreadable size field${named}`;
  const typeflag = String.fromCharCode(block[TYPEFLAG_OFFSET]!);
  const type: DecodedHeader['type'] = typeflag === '0' ? 'file' : typeflag === '5' ? 'directory' : 'other';
  const path = type === 'directory' && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
  if (typeflag !== 'x' && (header.mode === undefined || header.mtime === undefined)) return `unreadable mode or time field${named}`;
  return { path, type, typeflag, size: header.size, mode: header.mode ?? 0, mtime: header.mtime ?? new Date(0) };
}

/** Why the header's bytes are not exactly what the packer writes for what it says; null when they are. */
function formProblem(header: DecodedHeader, raw: Buffer, paxText: string | null): string | null {
  if (header.type === 'other') return `not a regular file or directory (tar type '${printableTypeflag(header.typeflag)}'); refusing links and devices`;
  // readers disagree on whether a directory has a body to skip
  if (header.type === 'directory' && header.size !== 0) return `a directory header with a size of ${header.size} (kube-bundle writes 0)`;
  const expected = encodeHeader({ path: header.path, type: header.type, size: header.size, mode: header.mode, mtime: header.mtime });
  if (raw.equals(expected)) return null;
  const expectedPax = expected.subarray(0, expected.length - BLOCK);
  if (paxText !== null && expectedPax.length === 0) return `a pax header (records: ${paxKeys(paxText)}) where ustar holds everything; kube-bundle writes none there`;
  if (paxText === null && expectedPax.length > 0) return 'no pax header, where ustar cannot hold the path or size';
  if (paxText !== null && !raw.subarray(0, raw.length - BLOCK).equals(expectedPax)) {
    return `a pax header (records: ${paxKeys(paxText)}) not in the form kube-bundle writes (the path and size only)`;
  }
  const at = firstDifference(raw.subarray(raw.length - BLOCK), expected.subarray(expected.length - BLOCK));
  return `the header's ${fieldAt(at)} field is not as kube-bundle writes it (byte ${at} of the header block)`;
}

const HEADER_FIELDS: [number, string][] = [
  [0, 'name'], [100, 'mode'], [108, 'uid'], [116, 'gid'], [124, 'size'], [136, 'mtime'], [148, 'checksum'], [156, 'typeflag'],
  [157, 'linkname'], [257, 'magic'], [263, 'version'], [265, 'uname'], [297, 'gname'], [329, 'devmajor'], [337, 'devminor'],
  [345, 'prefix'], [500, 'padding'],
];

function fieldAt(offset: number): string {
  return HEADER_FIELDS.filter(([start]) => start <= offset).at(-1)![1];
}

function firstDifference(a: Buffer, b: Buffer): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}

function paxKeys(text: string): string {
  const keys = [...text.matchAll(/^\d+ ([^=\n]*)=/gm)].map((m) => m[1]);
  return keys.length ? keys.join(', ') : '(none readable)';
}

function printableTypeflag(typeflag: string): string {
  return /^[\x21-\x7e]$/.test(typeflag) ? typeflag : `\\x${typeflag.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/**
 * tar's `Header` checks the checksum's value but reads it only up to the first non-octal byte, so the two bytes
 * after the six digits would be covered by nothing: we accept only the forms tar@7 ("%06o SP NUL") and GNU tar
 * ("%06o NUL SP") write. (The canonical-form check then accepts tar@7's alone: that is what the packer writes.)
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
  readonly mode: number;
  private remaining: number;
  private truncated = false;

  constructor(private readonly input: Input, header: DecodedHeader, readonly offset: number) {
    this.type = header.type;
    this.path = header.path;
    this.typeflag = header.typeflag;
    this.size = header.size;
    this.mode = header.mode;
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

  constructor(file: string, chunkSize: number, private readonly onBytes?: (chunk: Buffer) => void) {
    this.reads = createReadStream(file, { highWaterMark: chunkSize })[Symbol.asyncIterator]();
  }

  /** Up to `max` bytes (at least one), or null at end of file. */
  async next(max: number): Promise<Buffer | null> {
    while (this.current.length === 0) {
      const read = await this.reads.next();
      if (read.done) return null;
      this.current = read.value;
      this.onBytes?.(read.value);
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
