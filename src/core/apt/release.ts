/**
 * apt Release files (and the signed body of InRelease): what a repository says about itself, and the size and
 * SHA-256 of each index file, which is how a Packages file is trusted once the Release signature checked out.
 *
 * Two layouts exist: a normal archive (`dists/<suite>/Release` listing `main/binary-amd64/Packages.gz`) and a flat
 * repository such as pkgs.k8s.io (`<dir>/Release` listing `Packages.gz` next to it). Either way the paths in the
 * Release file are relative to the directory holding it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, type Gunzip } from 'node:zlib';
import { diskFullError, UserError } from '../../util/errors.js';
import { parseSingleParagraph } from './deb822.js';
import { SHA256_HEX, sha256Of } from '../../util/digest.js';

export interface ReleaseFileEntry {
  /** Relative to the directory holding the Release file. */
  path: string;
  size: number;
  sha256: string;
}

export interface Release {
  /** Where the Release text came from (its URL), named in errors. */
  source: string;
  origin?: string;
  label?: string;
  suite?: string;
  codename?: string;
  date?: Date;
  validUntil?: Date;
  architectures: string[];
  components: string[];
  files: ReadonlyMap<string, ReleaseFileEntry>;
}

export type IndexCompression = 'gzip' | 'xz' | 'none';

export interface IndexFileChoice {
  path: string;
  url: string;
  compression: IndexCompression;
  expected: ReleaseFileEntry;
}

/** Parse a Release file, or the body of an InRelease file once verifyCleartext has checked and unwrapped it. */
export function parseRelease(text: string, source: string): Release {
  if (text.trimStart().startsWith('-----BEGIN PGP')) {
    throw new UserError(`${source}: Release text is still OpenPGP-armored; verify it and pass the signed text`);
  }
  const fields = parseSingleParagraph(text, { source }).fields;
  const release: Release = {
    source,
    architectures: words(fields.get('architectures')),
    components: words(fields.get('components')),
    files: parseSha256List(fields.get('sha256'), source),
  };
  for (const key of ['origin', 'label', 'suite', 'codename'] as const) {
    const value = fields.get(key);
    if (value !== undefined) release[key] = value;
  }
  const date = fields.get('date');
  if (date !== undefined) release.date = parseReleaseDate(date, 'Date', source);
  const validUntil = fields.get('valid-until');
  if (validUntil !== undefined) release.validUntil = parseReleaseDate(validUntil, 'Valid-Until', source);
  return release;
}

/** apt refuses a Release past its Valid-Until (it could be a replayed, outdated one); so do we. */
export function assertReleaseCurrent(release: Release, now: Date): void {
  if (release.validUntil && now.getTime() > release.validUntil.getTime()) {
    throw new UserError(
      `${release.source} expired on ${release.validUntil.toISOString()} (Valid-Until); it may be a stale mirror`,
      'check the mirror, or the clock of this machine',
    );
  }
}

/** Path of the Packages index in the Release file: `main/binary-amd64/Packages`, or `Packages` for a flat repo. */
export function packagesIndexPath(component: string | undefined, architecture: string): string {
  return component === undefined ? 'Packages' : `${component}/binary-${architecture}/Packages`;
}

/**
 * Which file to download for the index `indexPath` (without compression suffix): the .gz when the Release lists
 * one, else the .xz (Debian's security archive publishes only that; the system `xz` decodes it: xz-utils is a
 * required package on Debian and Ubuntu), else the uncompressed file. `releaseDirUrl` is the URL of the directory
 * holding the Release file.
 */
export function pickIndexFile(release: Release, indexPath: string, releaseDirUrl: string): IndexFileChoice {
  const dir = releaseDirUrl.endsWith('/') ? releaseDirUrl : `${releaseDirUrl}/`;
  const gz = release.files.get(`${indexPath}.gz`);
  if (gz) return { path: gz.path, url: dir + gz.path, compression: 'gzip', expected: gz };
  const xz = release.files.get(`${indexPath}.xz`);
  if (xz) return { path: xz.path, url: dir + xz.path, compression: 'xz', expected: xz };
  const plain = release.files.get(indexPath);
  if (plain) return { path: plain.path, url: dir + plain.path, compression: 'none', expected: plain };
  const others = [...release.files.keys()].filter((p) => p.startsWith(`${indexPath}.`));
  if (others.length > 0) {
    throw new UserError(
      `${dir}${indexPath}: the repository offers only ${others.map((p) => p.slice(indexPath.length)).join(', ')}, which this tool cannot decompress (it needs .gz or an uncompressed file)`,
    );
  }
  const offered = [
    release.architectures.length ? `architectures: ${release.architectures.join(' ')}` : '',
    release.components.length ? `components: ${release.components.join(' ')}` : '',
  ].filter((s) => s !== '');
  throw new UserError(`${release.source} lists no ${indexPath}${offered.length ? ` (${offered.join('; ')})` : ''}`);
}

/** Check a downloaded file against its Release entry; the error names the URL and what differs. */
export function verifyIndexFile(choice: IndexFileChoice, data: Uint8Array): void {
  const { expected, url } = choice;
  if (data.byteLength !== expected.size) {
    throw new UserError(`${url}: got ${data.byteLength} bytes, the Release file says ${expected.size}`, 'the mirror may be mid-update; try again later');
  }
  const actual = sha256Of(data);
  if (actual !== expected.sha256) {
    throw new UserError(`${url}: SHA-256 is ${actual}, the Release file says ${expected.sha256}`, 'the mirror may be mid-update; try again later');
  }
}

/**
 * Decompress a verified index file from `input` into `output` (a new file), as a stream: a 50 MB Packages file is
 * never held in memory. An uncompressed index needs no call: its file is the index.
 */
export async function decompressIndexFile(choice: IndexFileChoice, input: string, output: string): Promise<void> {
  try {
    if (choice.compression === 'xz') await runXz(input, output);
    else if (choice.compression === 'gzip') await gunzipFile(input, output);
    else throw new Error(`${choice.compression} is not a compression`);
  } catch (err) {
    throw decompressionError(err, choice.url, output);
  }
}

/** What a failure to decompress the index at `url` into `output` is to the operator: a full disk, or a bad index. */
export function decompressionError(err: unknown, url: string, output: string): unknown {
  if (err instanceof UserError) return err;
  const full = diskFullError(err, output, `the unpacked index of ${url}`);
  return full !== err ? full : new UserError(`${url}: cannot decompress (${(err as Error).message})`);
}

/** Pieces of decompressed index: with the 16 KiB default, the hops to zlib's thread cost twice the decompression itself. */
export const INDEX_PIECE = 1 << 20;

/** zlib's gunzip for an index, in INDEX_PIECE pieces. */
export function indexGunzip(): Gunzip {
  return createGunzip({ chunkSize: INDEX_PIECE });
}

function gunzipFile(input: string, output: string): Promise<void> {
  return pipeline(createReadStream(input, { highWaterMark: INDEX_PIECE }), indexGunzip(), createWriteStream(output, { highWaterMark: INDEX_PIECE }));
}

/**
 * The system `xz -dc` (xz-utils is a required package on Debian and Ubuntu) between `stdin` and `stdout`: file
 * descriptors it reads and writes itself, or pipes. `done` settles once it has exited and its output is all out.
 */
export function spawnXz(stdin: number | 'pipe', stdout: number | 'pipe'): { child: ChildProcess; done: Promise<void> } {
  const child = spawn('xz', ['-dc'], { stdio: [stdin, stdout, 'pipe'] });
  let stderr = '';
  (child.stderr as Readable).setEncoding('utf8').on('data', (text: string) => (stderr += text)); // stdio[2] is a pipe
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error('xz is not installed (apt-get install xz-utils)') : err));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`xz exited with ${code}: ${stderr.trim()}`))));
  });
  done.catch(() => undefined); // the caller's to await
  return { child, done };
}

async function runXz(input: string, output: string): Promise<void> {
  const source = await open(input, 'r');
  try {
    const sink = await open(output, 'w');
    try {
      await spawnXz(source.fd, sink.fd).done;
    } finally {
      await sink.close();
    }
  } finally {
    await source.close();
  }
}

function parseSha256List(value: string | undefined, source: string): Map<string, ReleaseFileEntry> {
  if (value === undefined) throw new UserError(`${source}: no SHA256 file list (apt no longer trusts MD5/SHA1-only Release files)`);
  const files = new Map<string, ReleaseFileEntry>();
  for (const line of value.split('\n')) {
    if (line.trim() === '') continue;
    const parts = line.trim().split(/\s+/);
    const [sha256, sizeText, path] = parts;
    if (parts.length !== 3 || !sha256 || !SHA256_HEX.test(sha256.toLowerCase()) || !sizeText || !/^[0-9]+$/.test(sizeText) || !path) {
      throw new UserError(`${source}: bad SHA256 line '${line.trim()}'`);
    }
    files.set(path, { path, size: Number(sizeText), sha256: sha256.toLowerCase() });
  }
  return files;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
// RFC 2822 as apt writes it: `Sat, 10 May 2025 09:35:58 UTC`; some tools write `+0000` instead of UTC.
const RELEASE_DATE = /^(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})\s+(UTC|GMT|Z|[+-]\d{4})$/;

/** Parsed without Date.parse, whose handling of non-ISO text is up to the engine. */
function parseReleaseDate(text: string, field: string, source: string): Date {
  const m = RELEASE_DATE.exec(text.trim());
  const month = m ? MONTHS.indexOf(m[2] ?? '') : -1;
  if (!m || month < 0) throw new UserError(`${source}: cannot parse ${field} '${text}'`);
  const [day, year, hour, minute, second] = [m[1], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const zone = m[7] ?? 'UTC';
  const offsetMinutes = /^[+-]/.test(zone) ? (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5))) : 0;
  return new Date(Date.UTC(year, month, day, hour, minute, second) - offsetMinutes * 60_000);
}

function words(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(/\s+/).filter((w) => w !== '');
}
