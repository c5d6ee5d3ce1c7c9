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
import { open, stat } from 'node:fs/promises';
import type * as openpgp from 'openpgp';
import { writeAtomically } from '../../util/atomic-write.js';
import { sha256File, sha256Of } from '../../util/digest.js';
import { diskFullError, UserError } from '../../util/errors.js';
import { fingerprintOf, signDetached } from '../pgp.js';
import { completeManifest, manifestMismatches, manifestToYaml, type BundleManifest, type ManifestContent } from './manifest.js';
import { comparePaths, LEADING_FILES, MANIFEST_FILE, memberMode, parentDirs, SIGNATURE_FILE, SUMS_FILE, unsafePathReason } from './paths.js';
import { formatSums } from './sums.js';
import { writeTar, type Follow, type Member, type MemberSource } from './tar-writer.js';

export interface PackEntry {
  /** path in the bundle, e.g. packages/kubeadm_1.32.3-1.1_amd64.deb */
  path: string;
  source: MemberSource;
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
  follow?: Follow;
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
  const size = await writeBundleFile(options.output, members, options.mtime);
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

/** The tar, written through `<output>.partial` (synced before the rename): a bundle is there whole or not at all. */
async function writeBundleFile(output: string, members: readonly Member[], mtime: Date): Promise<number> {
  try {
    return await writeAtomically(output, async (partial) => {
      const handle = await open(partial, 'w', 0o644).catch((err: unknown) => {
        throw new UserError(`cannot write ${partial}: ${(err as Error).message}`);
      });
      let size: number;
      try {
        size = await writeTar(handle, members, mtime);
        await handle.sync();
      } catch (err) {
        await handle.close().catch(() => undefined); // the write's error is the one worth reporting
        throw err;
      }
      await handle.close();
      return size;
    });
  } catch (err) {
    throw diskFullError(err, output, 'the bundle; nothing was left under that name');
  }
}
