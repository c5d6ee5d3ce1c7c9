/**
 * The small piece of the POSIX tar format (ustar + pax 'x' records) that bundles use (plus reading GNU tar's
 * long names, so that a bundle re-packed with plain `tar cf` still reads), written and read here
 * rather than through a general tar library so that both directions are fully under our control:
 *
 * - writing: no atime/ctime, no pid-dependent names, no host-dependent owner: the same entry gives the same bytes;
 * - reading: one pass with large reads, strict checks (exact header checksum form, zero padding, clean end),
 *   so that a change to any single byte of a bundle is noticed and blamed on the member it touches.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';

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

const USTAR_MAGIC = Buffer.from('ustar\x0000', 'latin1');
const GNU_MAGIC = Buffer.from('ustar  \x00', 'latin1');
const OWNER = 'root';
const MAX_OCTAL_SIZE = 8 ** 11 - 1;
/** pax records (or a GNU long name) for one entry are a path and a size: anything bigger is not a bundle's. */
const MAX_EXTENDED_HEADER = 64 * 1024;

/** Field offsets and widths of the ustar header. */
const F = {
  name: [0, 100], mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12], chksum: [148, 8],
  typeflag: [156, 1], magic: [257, 8], uname: [265, 32], gname: [297, 32], devmajor: [329, 8], devminor: [337, 8], prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

// ---------------------------------------------------------------------------------------------------------------
// Writing

/** The header block(s) for one entry: a pax 'x' header first when the path or size does not fit ustar. */
export function encodeHeader(fields: HeaderFields): Buffer {
  const name = fields.type === 'directory' ? `${fields.path}/` : fields.path;
  const records: string[] = [];
  const nameFits = Buffer.byteLength(name) <= 100 && /^[\x20-\x7e]*$/.test(name);
  if (!nameFits) records.push(paxRecord('path', name));
  if (fields.size > MAX_OCTAL_SIZE) records.push(paxRecord('size', String(fields.size)));
  const main = ustarBlock({ ...fields, name: nameFits ? name : truncateUtf8(name, 100), size: Math.min(fields.size, MAX_OCTAL_SIZE) }, fields.type === 'directory' ? '5' : '0');
  if (records.length === 0) return main;
  const data = Buffer.from(records.join(''), 'utf8');
  const paxName = `PaxHeader/${truncateUtf8(name.replace(/\/$/, '').split('/').pop() ?? '', 90)}`;
  const paxHeader = ustarBlock({ name: paxName, size: data.length, mode: 0o644, mtime: fields.mtime }, 'x');
  return Buffer.concat([paxHeader, data, Buffer.alloc(paddingFor(data.length)), main]);
}

/** Two zero blocks close the archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

export function paddingFor(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function ustarBlock(h: { name: string; size: number; mode: number; mtime: Date }, typeflag: string): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(h.name, F.name[0], F.name[1], 'utf8');
  writeOctal(block, F.mode, h.mode);
  writeOctal(block, F.uid, 0);
  writeOctal(block, F.gid, 0);
  writeOctal(block, F.size, h.size);
  writeOctal(block, F.mtime, Math.floor(h.mtime.getTime() / 1000));
  block.write(typeflag, F.typeflag[0], 'latin1');
  USTAR_MAGIC.copy(block, F.magic[0]);
  block.write(OWNER, F.uname[0], 'latin1');
  block.write(OWNER, F.gname[0], 'latin1');
  writeOctal(block, F.devmajor, 0);
  writeOctal(block, F.devminor, 0);
  checksumField(block).copy(block, F.chksum[0]);
  return block;
}

function writeOctal(block: Buffer, [offset, width]: readonly [number, number], value: number): void {
  block.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'latin1');
}

/** The checksum field exactly as written: six octal digits, NUL, space (as GNU tar writes it too). */
function checksumField(block: Buffer): Buffer {
  let sum = 8 * 0x20; // the field itself counts as spaces
  for (let i = 0; i < BLOCK; i++) {
    if (i < F.chksum[0] || i >= F.chksum[0] + F.chksum[1]) sum += block[i]!;
  }
  return Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'latin1');
}

/** One pax record, "<length> <key>=<value>\n", where <length> counts the whole record including itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLength = Buffer.byteLength(body);
  let length = bodyLength + 1;
  while (String(length).length + bodyLength !== length) length = String(length).length + bodyLength;
  return `${length}${body}`;
}

function truncateUtf8(text: string, maxBytes: number): string {
  let out = '';
  for (const ch of text) {
    if (Buffer.byteLength(out + ch) > maxBytes) break;
    out += ch;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

export interface TarEntry {
  /** path as stored, with the trailing slash of a directory removed */
  path: string;
  /** 'file' and 'directory' are the only kinds a bundle may hold; anything else is reported by its typeflag */
  type: EntryType | 'other';
  typeflag: string;
  size: number;
  /** file offset of the entry's first header block (its pax header when it has one) */
  offset: number;
  /** The body in chunks. A chunk is only valid until the next one is asked for: hash it, copy it, or drop it. */
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
  const handle = await open(file, 'r');
  const reader = new ChunkReader(handle, chunkSize);
  try {
    // Extended headers ('x' pax records, 'L' GNU long name) describe the header that follows them.
    let pax = new Map<string, string>();
    let longName: string | null = null;
    let extendedOffset: number | null = null;
    for (;;) {
      const offset = reader.offset;
      const block = await reader.exact(BLOCK);
      if (!block) return yield defect(null, offset, 'the archive ends without an end-of-archive marker (truncated?)', true);
      if (isZero(block)) return yield* readTrailer(reader, offset);
      const header = decodeHeader(block);
      if (typeof header === 'string') return yield defect(null, offset, `${header}; its name field reads ${JSON.stringify(nameOf(block))}`, true);
      if (header.typeflag === 'x' || header.typeflag === 'L') {
        const data = await readExtended(reader, header.size);
        if (typeof data === 'string') return yield defect(header.name, offset, data, true);
        if (header.typeflag === 'L') {
          longName = cString(data);
        } else {
          const records = parsePaxRecords(data);
          if (typeof records === 'string') return yield defect(header.name, offset, records, true);
          pax = records;
        }
        extendedOffset ??= offset;
        continue;
      }
      const entry = new Entry(reader, {
        path: pax.get('path') ?? longName ?? header.name,
        typeflag: header.typeflag,
        size: pax.has('size') ? Number(pax.get('size')) : header.size,
        offset: extendedOffset ?? offset,
      });
      pax = new Map();
      longName = null;
      extendedOffset = null;
      yield { kind: 'entry', entry };
      const problem = await entry.finish();
      if (problem) {
        yield defect(entry.path, entry.offset, problem.detail, problem.fatal);
        if (problem.fatal) return;
      }
    }
  } finally {
    await reader.settle();
    await handle.close();
  }
}

function defect(path: string | null, offset: number, detail: string, fatal: boolean): TarItem {
  return { kind: 'defect', defect: { path, offset, detail, fatal } };
}

class Entry implements TarEntry {
  readonly path: string;
  readonly type: EntryType | 'other';
  readonly typeflag: string;
  readonly size: number;
  readonly offset: number;
  private remaining: number;
  private truncated = false;

  constructor(private readonly reader: ChunkReader, h: { path: string; typeflag: string; size: number; offset: number }) {
    this.type = h.typeflag === '0' || h.typeflag === '\0' ? 'file' : h.typeflag === '5' ? 'directory' : 'other';
    this.path = this.type === 'directory' && h.path.endsWith('/') ? h.path.slice(0, -1) : h.path;
    this.typeflag = h.typeflag;
    this.size = h.size;
    this.offset = h.offset;
    this.remaining = h.size;
  }

  async *chunks(): AsyncIterable<Buffer> {
    while (this.remaining > 0) {
      const chunk = await this.reader.next(this.remaining);
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
    for await (const chunk of this.chunks()) parts.push(Buffer.from(chunk));
    return Buffer.concat(parts);
  }

  /** Skip what the caller did not read, then check the zero padding up to the next header. */
  async finish(): Promise<{ detail: string; fatal: boolean } | null> {
    const rest = this.chunks()[Symbol.asyncIterator]();
    while (!(await rest.next()).done);
    if (this.truncated) return { detail: 'the archive ends inside this member (truncated?)', fatal: true };
    const padding = await this.reader.exact(paddingFor(this.size));
    if (!padding) return { detail: 'the archive ends inside this member\'s padding (truncated?)', fatal: true };
    return isZero(padding) ? null : { detail: 'non-zero bytes in the padding after this member', fatal: false };
  }
}

/** After the first zero block: a second one, and nothing but zeros up to the end of the file. */
async function* readTrailer(reader: ChunkReader, offset: number): AsyncGenerator<TarItem, void, undefined> {
  const second = await reader.exact(BLOCK);
  if (!second) return yield defect(null, offset, 'the end-of-archive marker is one zero block instead of two (truncated?)', false);
  let chunk: Buffer | null = second;
  while (chunk) {
    if (!isZero(chunk)) return yield defect(null, offset, 'non-zero bytes after the end-of-archive marker', false);
    chunk = await reader.next(Number.MAX_SAFE_INTEGER);
  }
}

interface Header {
  name: string;
  typeflag: string;
  size: number;
}

/** The fields we need, or why the block is not a header we accept. */
function decodeHeader(block: Buffer): Header | string {
  if (!checksumField(block).equals(slice(block, F.chksum))) return 'header checksum mismatch (corrupt header)';
  const magic = slice(block, F.magic);
  const ustar = magic.equals(USTAR_MAGIC);
  if (!ustar && !magic.equals(GNU_MAGIC)) return 'not a POSIX tar header';
  const size = parseOctal(slice(block, F.size));
  if (size === null) return 'unreadable size field';
  const prefix = ustar ? cString(slice(block, F.prefix)) : '';
  const name = nameOf(block);
  return { name: prefix ? `${prefix}/${name}` : name, typeflag: String.fromCharCode(block[F.typeflag[0]]!), size };
}

function nameOf(block: Buffer): string {
  return cString(slice(block, F.name));
}

/** The body of an extended header, or why it cannot be used. */
async function readExtended(reader: ChunkReader, size: number): Promise<Buffer | string> {
  if (size > MAX_EXTENDED_HEADER) return `extended header of ${size} bytes is larger than ${MAX_EXTENDED_HEADER}`;
  const data = await reader.exact(size);
  const padding = await reader.exact(paddingFor(size));
  if (!data || !padding) return 'the archive ends inside an extended header (truncated?)';
  if (!isZero(padding)) return 'non-zero bytes in the padding after an extended header';
  return data;
}

function parsePaxRecords(data: Buffer): Map<string, string> | string {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const malformed = `malformed pax record at byte ${at} of the pax header`;
    const space = data.indexOf(0x20, at);
    const lengthText = data.subarray(at, space < 0 ? at : space).toString('latin1');
    const length = Number(lengthText);
    if (!/^[1-9][0-9]*$/.test(lengthText) || at + length > data.length || data[at + length - 1] !== 0x0a) return malformed;
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq <= 0) return malformed;
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  const size = records.get('size');
  if (size !== undefined && !/^[0-9]+$/.test(size)) return `pax size '${size}' is not a number`;
  return records;
}

function slice(block: Buffer, [offset, width]: readonly [number, number]): Buffer {
  return block.subarray(offset, offset + width);
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

/** Octal digits, optionally surrounded by spaces and ended by NUL/space; base-256 sizes are not used by us. */
function parseOctal(field: Buffer): number | null {
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  return /^[0-7]+$/.test(text) ? parseInt(text, 8) : null;
}

function isZero(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Sequential reads with two buffers: while the caller works on one (hashing), the next read fills the other,
 * so disk and CPU overlap. Each returned view is only valid until the next call.
 */
class ChunkReader {
  private readonly buffers: [Buffer, Buffer];
  private spare = 0;
  private current: Buffer = Buffer.alloc(0);
  private position = 0;
  private readAhead: Promise<Buffer> | null = null;
  private filePosition = 0;
  /** file offset of the next byte handed out */
  offset = 0;

  constructor(private readonly handle: FileHandle, chunkSize: number) {
    this.buffers = [Buffer.allocUnsafe(chunkSize), Buffer.allocUnsafe(chunkSize)];
  }

  /** Up to `max` bytes (at least one), or null at end of file. */
  async next(max: number): Promise<Buffer | null> {
    if (this.position === this.current.length && !(await this.refill())) return null;
    const end = Math.min(this.current.length, this.position + max);
    const view = this.current.subarray(this.position, end);
    this.position = end;
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

  /** Wait for a read still in flight, so the file can be closed under no one. */
  async settle(): Promise<void> {
    await this.readAhead?.catch(() => undefined);
  }

  private async refill(): Promise<boolean> {
    this.current = await (this.readAhead ?? this.readInto(this.buffers[this.spare]!));
    this.position = 0;
    if (this.current.length === 0) return false;
    // The buffer just handed over is `current`; the other one is free again: start filling it.
    this.spare ^= 1;
    this.readAhead = this.readInto(this.buffers[this.spare]!);
    // A failed read-ahead is reported when it is awaited; until then it must not count as unhandled.
    this.readAhead.catch(() => undefined);
    return true;
  }

  private async readInto(buffer: Buffer): Promise<Buffer> {
    const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, this.filePosition);
    this.filePosition += bytesRead;
    return buffer.subarray(0, bytesRead);
  }
}
