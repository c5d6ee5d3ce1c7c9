/**
 * SHA256SUMS: the list that the signature covers, in the exact format `sha256sum -c` reads
 * (`<64 hex>  <path>\n`, text mode, one line per file, sorted by path).
 */
import { SHA256_HEX } from '../../util/digest.js';
import { UserError } from '../../util/errors.js';
import { comparePaths, unsafePathReason } from './paths.js';

export interface FileDigest {
  path: string;
  sha256: string;
}


export function formatSums(files: readonly FileDigest[]): string {
  const sorted = [...files].sort((a, b) => comparePaths(a.path, b.path));
  return sorted.map((f) => `${f.sha256}  ${f.path}\n`).join('');
}

/**
 * Parse SHA256SUMS into path → sha256. Strict: any line not in the form we write (or a path that is unsafe
 * or listed twice) is refused, since this text decides what is trusted. `source` names it in errors.
 */
export function parseSums(text: string, source: string): Map<string, string> {
  const sums = new Map<string, string>();
  if (text !== '' && !text.endsWith('\n')) throw new UserError(`${source}: last line is not terminated by a newline`);
  const lines = text === '' ? [] : text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `${source} line ${i + 1}`;
    const hex = line.slice(0, 64);
    const path = line.slice(66);
    if (!SHA256_HEX.test(hex) || line.slice(64, 66) !== '  ') throw new UserError(`${where}: expected '<64 lowercase hex digits>  <path>', got '${line}'`);
    const reason = unsafePathReason(path);
    if (reason) throw new UserError(`${where}: refusing path '${path}': ${reason}`);
    if (sums.has(path)) throw new UserError(`${where}: '${path}' is listed twice`);
    sums.set(path, hex);
  });
  return sums;
}

