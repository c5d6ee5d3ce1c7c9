/**
 * Writer for a signed *flat* apt repository: the index files sit next to the debs and clients use a
 * `deb [signed-by=…] <url>/ /` line (pkgs.k8s.io serves its per-minor repos this way, and the bundle carries its own
 * `packages/` repo in the same shape). Output is byte-identical for identical input and date: stanzas and fields are
 * sorted, Packages.gz has no name or mtime in its header, and the OpenPGP signatures are deterministic for a date.
 */
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { PrivateKey } from 'openpgp';
import { sha256File, sha256Of } from '../../util/digest.js';
import { UserError } from '../../util/errors.js';
import { signCleartext, signDetached } from '../pgp.js';
import { type ControlStanza, readDebControl, requireControlField } from './debfile.js';

/** One deb as listed in Packages. */
export interface RepoPackage {
  /** Path relative to the repository root with `/` separators, e.g. `amd64/kubeadm_1.32.3-1.1_amd64.deb`. */
  filename: string;
  /** The deb's own control stanza; Filename, Size and SHA256 are added here and must not be in it. */
  control: ControlStanza;
  size: number;
  /** lowercase hex */
  sha256: string;
}

export interface FlatRepoOptions {
  origin: string;
  label: string;
  /** pkgs.k8s.io's repos say `Suite: /`; omitted when not given. */
  suite?: string;
  description?: string;
  /** Release `Date:`; pass a fixed one (e.g. from SOURCE_DATE_EPOCH) for reproducible output. Also the signature date. */
  date: Date;
  signingKey: PrivateKey;
}

/** The file names writeFlatRepo writes into the repository root. */
export const FLAT_REPO_INDEX_FILES = ['Packages', 'Packages.gz', 'Release', 'InRelease', 'Release.gpg'] as const;

/**
 * Field order of a Packages stanza, as dpkg-scanpackages writes it (and pkgs.k8s.io serves it): identity and
 * relations first, then the fields the index adds, then the descriptive ones. Fields not listed keep their
 * relative order and go last.
 */
const FIELD_ORDER = [
  'Package', 'Package-Type', 'Source', 'Version', 'Built-Using', 'Architecture', 'Essential', 'Origin', 'Bugs',
  'Maintainer', 'Installed-Size', 'Pre-Depends', 'Depends', 'Recommends', 'Suggests', 'Conflicts', 'Breaks',
  'Enhances', 'Replaces', 'Provides', 'Filename', 'Size', 'SHA256', 'Section', 'Priority', 'Multi-Arch', 'Homepage',
  'Description',
].map((name) => name.toLowerCase());

const INDEX_ADDED_FIELDS = new Set(['filename', 'size', 'md5sum', 'sha1', 'sha256', 'sha512']);

/** Scan `repoDir` recursively for .deb files and describe each one for writeFlatRepo. */
async function scanDebs(repoDir: string): Promise<RepoPackage[]> {
  const relativePaths = (await listDebs(repoDir, '')).sort();
  const packages: RepoPackage[] = [];
  for (const relative of relativePaths) {
    const full = path.join(repoDir, relative);
    const [control, { size, sha256 }] = await Promise.all([readDebControl(full), sha256File(full)]);
    packages.push({ filename: relative, control, size, sha256 });
  }
  return packages;
}

/** scanDebs + writeFlatRepo: index and sign every .deb found under `repoDir`. */
export async function writeFlatRepoFromDebs(repoDir: string, options: FlatRepoOptions): Promise<RepoPackage[]> {
  const packages = await scanDebs(repoDir);
  await writeFlatRepo(repoDir, packages, options);
  return packages;
}

/** Write Packages, Packages.gz, Release, InRelease and Release.gpg for `packages` into `repoDir`. */
export async function writeFlatRepo(repoDir: string, packages: readonly RepoPackage[], options: FlatRepoOptions): Promise<void> {
  const files = await renderFlatRepo(packages, options, repoDir);
  await Promise.all(files.map((file) => writeFile(path.join(repoDir, file.name), file.bytes)));
}

/**
 * The index files of a flat repository, as bytes: Packages, Packages.gz and Release, plus InRelease and
 * Release.gpg when there is a signing key (an unsigned repository is used with apt's `[trusted=yes]`).
 * `source` names the repository in errors.
 */
export async function renderFlatRepo(
  packages: readonly RepoPackage[],
  options: Omit<FlatRepoOptions, 'signingKey'> & { signingKey?: PrivateKey },
  source: string,
): Promise<IndexFile[]> {
  const packagesText = Buffer.from(renderPackages(packages, source), 'utf8');
  const packagesGz = gzipSync(packagesText, { level: 9 });
  const release = renderRelease(
    [
      { name: 'Packages', bytes: packagesText },
      { name: 'Packages.gz', bytes: packagesGz },
    ],
    architecturesOf(packages, source),
    options,
  );
  const files: IndexFile[] = [
    { name: 'Packages', bytes: packagesText },
    { name: 'Packages.gz', bytes: packagesGz },
    { name: 'Release', bytes: Buffer.from(release, 'utf8') },
  ];
  if (options.signingKey) files.push(...(await signRelease(release, options.signingKey, options.date)));
  return files;
}

/** InRelease and Release.gpg for the text of a Release file, signed at `date`. */
export async function signRelease(release: string, signingKey: PrivateKey, date: Date): Promise<IndexFile[]> {
  const [signedRelease, releaseGpg] = await Promise.all([signCleartext(release, signingKey, date), signDetached(release, signingKey, date)]);
  // openpgp.js emits the signed text with CRLF line ends. The signature covers the canonical (CRLF) form whichever
  // ends are transmitted, so LF is just as valid, and it is what Debian archives serve and every apt parses.
  return [
    { name: 'InRelease', bytes: Buffer.from(signedRelease.replace(/\r\n/g, '\n'), 'utf8') },
    { name: 'Release.gpg', bytes: Buffer.from(releaseGpg, 'utf8') },
  ];
}

/** The Packages file: one stanza per deb, sorted by package, architecture, version and file name. `source` names the repository in errors. */
function renderPackages(packages: readonly RepoPackage[], source: string): string {
  const sorted = [...packages].sort((a, b) => compareKeys(sortKey(a, source), sortKey(b, source)));
  return sorted.map((pkg) => formatStanza(indexStanza(pkg, source))).join('\n');
}

/** Render one stanza (with its trailing newline). */
export function formatStanza(stanza: ControlStanza): string {
  return stanza.map(([name, value]) => (value === '' || value.startsWith('\n') ? `${name}:${value}` : `${name}: ${value}`)).join('\n') + '\n';
}

function indexStanza(pkg: RepoPackage, source: string): ControlStanza {
  checkFilename(pkg.filename, source);
  const clash = pkg.control.find(([name]) => INDEX_ADDED_FIELDS.has(name.toLowerCase()));
  if (clash) throw new UserError(`${source}: control stanza of ${pkg.filename} already has a ${clash[0]} field`);
  const fields: Array<readonly [string, string]> = [
    ...pkg.control,
    ['Filename', pkg.filename],
    ['Size', String(pkg.size)],
    ['SHA256', pkg.sha256],
  ];
  return fields
    .map((field, index) => ({ field, index, rank: rankOf(field[0]) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map(({ field }) => field);
}

function rankOf(name: string): number {
  const rank = FIELD_ORDER.indexOf(name.toLowerCase());
  return rank === -1 ? FIELD_ORDER.length : rank;
}

function sortKey(pkg: RepoPackage, source: string): string[] {
  const field = (name: string): string => requireControlField(pkg.control, name, `${source}/${pkg.filename}`);
  return [field('Package'), field('Architecture'), field('Version'), pkg.filename];
}

/** Plain code-unit comparison: locale-aware comparison would make the order depend on the build machine. */
function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? '';
    const y = b[i] ?? '';
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** apt resolves Filename against the repository URL, so it must stay inside it. */
function checkFilename(filename: string, source: string): void {
  const parts = filename.split('/');
  if (filename.startsWith('/') || parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new UserError(`${source}: '${filename}' is not a plain path relative to the repository root`);
  }
}

function architecturesOf(packages: readonly RepoPackage[], source: string): string[] {
  const archs = new Set(packages.map((pkg) => requireControlField(pkg.control, 'Architecture', `${source}/${pkg.filename}`)));
  archs.delete('all');
  return [...archs].sort();
}

export interface IndexFile {
  name: string;
  bytes: Buffer;
}

/** The Release file: metadata plus the SHA256 of every index file, which is what apt checks after the signature. */
function renderRelease(files: readonly IndexFile[], architectures: readonly string[], options: Omit<FlatRepoOptions, 'signingKey'>): string {
  const header: Array<[string, string | undefined]> = [
    ['Origin', options.origin],
    ['Label', options.label],
    ['Suite', options.suite],
    ['Architectures', architectures.join(' ')],
    ['Date', releaseDate(options.date)],
    ['Description', options.description],
  ];
  const lines = header.filter((field): field is [string, string] => field[1] !== undefined).map(([name, value]) => `${name}: ${value}`);
  lines.push('SHA256:');
  for (const file of files) {
    const digest = sha256Of(file.bytes);
    lines.push(` ${digest} ${String(file.bytes.length).padStart(16)} ${file.name}`);
  }
  return lines.join('\n') + '\n';
}

/** RFC 1123 in UTC, the form Debian archives use: `Tue, 11 Mar 2025 18:00:00 UTC`. */
export function releaseDate(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new UserError('the flat repository Release date is not a valid date');
  return date.toUTCString().replace(/GMT$/, 'UTC');
}

async function listDebs(root: string, relative: string): Promise<string[]> {
  const dir = path.join(root, relative);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new UserError(`cannot list ${dir}: ${(err as Error).message}`);
  }
  const found: string[] = [];
  for (const entry of entries) {
    const child = relative === '' ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory()) found.push(...(await listDebs(root, child)));
    else if (entry.isFile() && entry.name.endsWith('.deb')) found.push(child);
  }
  return found;
}
