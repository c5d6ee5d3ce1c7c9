/**
 * Tar members in forms the packer never writes, for the attack and fuzz tests: GNU long names, pax headers
 * with any records, several extension headers before one entry. Built on tar@7's `Header` so every block has a
 * valid checksum (a reader that checks only checksums would take them).
 */
import { Header } from 'tar';
import { BLOCK, encodeHeader, paddingFor } from '../../../src/core/bundle/tar.js';
import { memberMode } from '../../../src/core/bundle/paths.js';
import { MTIME } from '../bundle-fixture.js';

type HeaderType = 'File' | 'Directory' | 'ExtendedHeader' | 'GlobalExtendedHeader' | 'NextFileHasLongPath' | 'SparseFile' | 'SymbolicLink';

/** One header block of any type, with the fields given (the rest as the packer would set them). */
export function block(fields: { path: string; type: HeaderType; size: number; mode?: number; mtime?: Date }): Buffer {
  const out = Buffer.alloc(BLOCK);
  new Header({
    path: fields.path,
    type: fields.type,
    size: fields.size,
    mode: fields.mode ?? 0o644,
    mtime: fields.mtime ?? MTIME,
    uid: 0,
    gid: 0,
    uname: 'root',
    gname: 'root',
  }).encode(out);
  return out;
}

/** A body padded to whole blocks. */
export function padded(body: Buffer): Buffer {
  return Buffer.concat([body, Buffer.alloc(paddingFor(body.length))]);
}

/** pax records ("<len> <key>=<value>\n", the length counting itself). */
export function paxRecords(records: Record<string, string>): Buffer {
  let text = '';
  for (const [key, value] of Object.entries(records)) {
    const rest = ` ${key}=${value}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
    text += `${len}${rest}`;
  }
  return Buffer.from(text);
}

/** A pax extended header ('x') with the given records. */
export function paxHeader(records: Record<string, string>, type: 'ExtendedHeader' | 'GlobalExtendedHeader' = 'ExtendedHeader'): Buffer {
  const body = paxRecords(records);
  return Buffer.concat([block({ path: 'PaxHeader/x', type, size: body.length }), padded(body)]);
}

/** A GNU long-name header ('L') naming `path`. */
export function gnuLongName(path: string): Buffer {
  const body = Buffer.from(`${path}\0`);
  return Buffer.concat([block({ path: '././@LongLink', type: 'NextFileHasLongPath', size: body.length }), padded(body)]);
}

/** A plain file member: its ustar header (name as given, however short) and body. */
export function fileMember(name: string, body: Buffer, mode?: number): Buffer {
  return Buffer.concat([block({ path: name, type: 'File', size: body.length, mode: mode ?? memberMode(name, 'file') }), padded(body)]);
}

/** A file member exactly as the packer writes it. */
export function canonicalFile(path: string, body: Buffer): Buffer {
  return Buffer.concat([encodeHeader({ path, type: 'file', size: body.length, mode: memberMode(path, 'file'), mtime: MTIME }), padded(body)]);
}
