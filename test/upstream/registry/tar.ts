/**
 * A minimal ustar writer for test image layers. Written by hand (not with the tar package) so that every header
 * field is fixed: same entries in, same bytes out, on every machine and every run.
 */

export type TarEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; content: Buffer }
  | { type: 'symlink'; path: string; target: string };

const BLOCK = 512;
/** 2025-03-11T00:00:00Z, the Kubernetes v1.32.3 release day: a fixed mtime keeps layers reproducible. */
export const FIXED_MTIME = 1741651200;

export function createTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const content = entry.type === 'file' ? entry.content : Buffer.alloc(0);
    parts.push(header(entry, content.length), content, Buffer.alloc(padding(content.length)));
  }
  parts.push(Buffer.alloc(2 * BLOCK)); // end-of-archive marker
  return Buffer.concat(parts);
}

function header(entry: TarEntry, size: number): Buffer {
  const name = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: path longer than 100 bytes is not supported: ${name}`);
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0);
  block.write(octal(entry.type === 'symlink' ? 0o777 : entry.mode, 8), 100);
  block.write(octal(0, 8), 108); // uid
  block.write(octal(0, 8), 116); // gid
  block.write(octal(size, 12), 124);
  block.write(octal(FIXED_MTIME, 12), 136);
  block.write({ file: '0', dir: '5', symlink: '2' }[entry.type], 156);
  if (entry.type === 'symlink') block.write(entry.target, 157);
  block.write('ustar\u000000', 257);
  block.write('root', 265);
  block.write('root', 297);
  writeChecksum(block);
  return block;
}

/** The checksum is the byte sum of the header with its own field read as eight spaces. */
function writeChecksum(block: Buffer): void {
  block.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148);
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\u0000`;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
