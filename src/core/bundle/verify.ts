/**
 * Verify a bundle in one streaming pass: SHA256SUMS and SHA256SUMS.asc lead the tar, so the signature is
 * checked before anything else is read; then every member is hashed as it streams past and compared. Every
 * problem is collected (not just the first) and named by path, so an operator knows what is wrong.
 *
 * The same checks can be made with standard tools only: `tar xf`, `gpgv --keyring <key.gpg> SHA256SUMS.asc
 * SHA256SUMS`, `sha256sum -c SHA256SUMS`. This code is stricter in one way: it also refuses any tar member that
 * is not a plain file or directory, any path that escapes the extraction directory, duplicates and stray bytes,
 * because tar would act on those before sha256sum could object.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import * as openpgp from 'openpgp';
import { UserError } from '../../util/errors.js';
import { readPublicKey, verifyDetached } from '../pgp.js';
import { manifestMismatches, parseManifest, type BundleManifest } from './manifest.js';
import { comparePaths, MANIFEST_FILE, memberMode, parentDirs, SIGNATURE_FILE, SUMS_FILE, unsafePathReason } from './paths.js';
import { parseSums } from './sums.js';
import { readTar, type TarDefect, type TarEntry } from './tar.js';
import { sha256Of } from '../../util/digest.js';

export type ProblemKind = 'changed' | 'missing' | 'extra' | 'bad-entry' | 'bad-signature' | 'unsigned' | 'bad-manifest';

export interface VerifyProblem {
  /** bundle path the problem is about; '(archive)' for the tar structure as a whole */
  path: string;
  kind: ProblemKind;
  detail: string;
}

export interface VerifyOptions {
  /** trusted signers; empty only together with allowUnsigned */
  publicKeys: openpgp.PublicKey[];
  /** accept a bundle without SHA256SUMS.asc (and do not check a signature when no key is given) */
  allowUnsigned: boolean;
  /**
   * Small members whose verified bodies the caller needs (bundle.yaml is always kept): taken from this same
   * pass, so what the caller uses is what was checked, not a second read of a file that may have changed since.
   */
  keep?: readonly string[];
}

export interface VerifyReport {
  ok: boolean;
  /** fingerprint of the key whose signature checked out; null when unsigned or not checked */
  signer: string | null;
  /** files whose sha256 matched SHA256SUMS */
  files: number;
  problems: VerifyProblem[];
  /** bundle.yaml, when it was intact and valid */
  manifest: BundleManifest | null;
  /** sha256 (hex) of the whole bundle file as this pass read it; null when the walk stopped early */
  sha256: string | null;
  /** sha256 (hex) of SHA256SUMS: what hosts check their unpacked copy against; null when there was none */
  sumsSha256: string | null;
  /** SHA256SUMS as read (path → sha256), when it parsed */
  sums: ReadonlyMap<string, string> | null;
  /** the bodies of the `keep` members that verified, by path */
  kept: Map<string, Buffer>;
}

const MAX_SUMS_SIZE = 64 << 20;
const MAX_SIGNATURE_SIZE = 64 << 10;
const MAX_MANIFEST_SIZE = 64 << 20;
const MAX_KEPT_SIZE = 64 << 20;
const ARCHIVE = '(archive)';

export async function verifyBundle(file: string, options: VerifyOptions): Promise<VerifyReport> {
  const run = new Verification(options);
  await run.walk(file);
  return run.report();
}

/** One verification: the state that builds up while the tar streams past. */
class Verification {
  private readonly problems: VerifyProblem[] = [];
  private sums: Map<string, string> | null = null;
  private sumsBytes: Buffer | null = null;
  private signature: string | null = null;
  private signatureChecked = false;
  private signer: string | null = null;
  private readonly seen = new Set<string>();
  private intact = 0;
  private manifestText: string | null = null;
  /** set when the walk stopped early, so files never reached are not misreported as missing */
  private stopped = false;
  private readonly whole = createHash('sha256');
  private readonly directories: { path: string }[] = [];
  /** the last member after bundle.yaml, for the order check */
  private previous: string | null = null;
  private readonly kept = new Map<string, Buffer>();
  private readonly keep: Set<string>;

  constructor(private readonly options: VerifyOptions) {
    this.keep = new Set([MANIFEST_FILE, ...(options.keep ?? [])]);
  }

  async walk(file: string): Promise<void> {
    for await (const item of readTar(file, { onBytes: (chunk) => this.whole.update(chunk) })) {
      if (item.kind === 'defect') this.defect(item.defect);
      else if (!(await this.entry(item.entry))) this.stopped = true;
      if (this.stopped) return;
    }
    // A bundle of only SHA256SUMS (+ .asc) still needs its signature checked.
    if (this.sums) await this.checkSignature();
  }

  report(): VerifyReport {
    if (this.sums && !this.stopped) {
      this.reportMissing(this.sums);
      this.reportStrayDirectories(this.sums);
    }
    const manifest = this.stopped ? null : this.manifest();
    const kept = new Map([...this.kept].filter(([path]) => path !== MANIFEST_FILE || this.options.keep?.includes(path)));
    return {
      ok: this.problems.length === 0,
      signer: this.signer,
      files: this.intact,
      problems: this.problems,
      manifest,
      sha256: this.stopped ? null : this.whole.digest('hex'),
      sumsSha256: this.sumsBytes ? sha256Of(this.sumsBytes) : null,
      sums: this.sums,
      kept,
    };
  }

  /** Handle one member; false when nothing after it can be trusted or read. */
  private async entry(entry: TarEntry): Promise<boolean> {
    if (!this.sums) return this.leadingSums(entry);
    if (!this.signatureChecked && entry.path === SIGNATURE_FILE && entry.type === 'file' && this.seen.size === 1) {
      this.seen.add(entry.path);
      this.checkMode(entry);
      this.signature = (await entry.readAll(MAX_SIGNATURE_SIZE).catch(() => null))?.toString('latin1') ?? '';
      return true;
    }
    if (!(await this.checkSignature())) return false;
    if (!this.acceptable(entry)) return true;
    this.checkOrder(entry);
    this.seen.add(entry.path);
    if (entry.type === 'file') await this.hashFile(entry);
    else this.directories.push(entry);
    return true;
  }

  private async leadingSums(entry: TarEntry): Promise<boolean> {
    if (entry.path !== SUMS_FILE || entry.type !== 'file') {
      this.problem(entry.path, 'bad-entry', `the first member must be ${SUMS_FILE}; is this a kube-bundle?`);
      return false;
    }
    this.seen.add(SUMS_FILE);
    this.checkMode(entry);
    if (entry.size > MAX_SUMS_SIZE) {
      this.problem(SUMS_FILE, 'bad-entry', `${entry.size} bytes is implausibly large`);
      return false;
    }
    this.sumsBytes = await entry.readAll(MAX_SUMS_SIZE);
    try {
      this.sums = parseSums(this.sumsBytes.toString('utf8'), SUMS_FILE);
    } catch (err) {
      this.problem(SUMS_FILE, 'bad-entry', (err as Error).message);
      return false;
    }
    return true;
  }

  /** Check the signature once, when the members after SHA256SUMS(.asc) begin; false when it failed. */
  private async checkSignature(): Promise<boolean> {
    if (this.signatureChecked) return true;
    this.signatureChecked = true;
    const failure = await this.signatureFailure();
    if (failure) this.problems.push(failure);
    return failure === null;
  }

  private async signatureFailure(): Promise<VerifyProblem | null> {
    const { publicKeys, allowUnsigned } = this.options;
    if (this.signature === null) {
      return allowUnsigned ? null : { path: SIGNATURE_FILE, kind: 'unsigned', detail: 'the bundle is not signed (no SHA256SUMS.asc); refusing it unless unsigned bundles are allowed' };
    }
    if (publicKeys.length === 0) {
      return allowUnsigned ? null : { path: SIGNATURE_FILE, kind: 'bad-signature', detail: 'no public key given to check the signature with' };
    }
    const reason = await canonicalArmorProblem(this.signature);
    if (reason) return { path: SIGNATURE_FILE, kind: 'bad-signature', detail: reason };
    try {
      this.signer = (await verifyDetached(this.sumsBytes!, this.signature, publicKeys, SIGNATURE_FILE)).fingerprint;
      return null;
    } catch (err) {
      return { path: SIGNATURE_FILE, kind: 'bad-signature', detail: (err as Error).message };
    }
  }

  /** Report what may not be in a bundle; true when the member is a plain file or directory at a safe, new path. */
  private acceptable(entry: TarEntry): boolean {
    const reason = unsafePathReason(entry.path);
    if (reason) return this.problem(entry.path, 'bad-entry', `refusing path: ${reason}`);
    if (this.seen.has(entry.path)) return this.problem(entry.path, 'bad-entry', 'appears more than once (tar would extract the last copy)');
    return this.checkMode(entry);
  }

  /** The mode must be the one the packer gives this path: tar as root creates the file with it. */
  private checkMode(entry: TarEntry): boolean {
    if (entry.type === 'other') return false; // refused by readTar already
    const mode = memberMode(entry.path, entry.type);
    if (entry.mode === mode) return true;
    return this.problem(entry.path, 'bad-entry', `mode ${octal(entry.mode)}; kube-bundle packs this ${entry.type} as ${octal(mode)} (modes follow from the path)`);
  }

  /**
   * The packer's order: bundle.yaml right after SHA256SUMS(.asc), then every directory and file in path order.
   * (An archive in another order can unpack to the same tree; refusing it keeps "what verify accepts" exactly
   * "what the packer writes".)
   */
  private checkOrder(entry: TarEntry): void {
    const first = this.seen.size === (this.signature === null ? 1 : 2);
    if (first) {
      if (entry.path !== MANIFEST_FILE) this.problem(entry.path, 'bad-entry', `the member after ${SUMS_FILE}${this.signature === null ? '' : ` and ${SIGNATURE_FILE}`} must be ${MANIFEST_FILE}`);
      else return;
    }
    if (this.previous !== null && comparePaths(this.previous, entry.path) >= 0) {
      this.problem(entry.path, 'bad-entry', `out of order after ${this.previous} (kube-bundle writes members in path order)`);
    }
    this.previous = entry.path;
  }

  /**
   * Directories are exactly the parents of the listed files, each with its own entry: tar would create any
   * other one, empty, wherever it says; and one without an entry would get whatever mode tar makes up for it.
   */
  private reportStrayDirectories(sums: Map<string, string>): void {
    const parents = new Set([...sums.keys()].flatMap(parentDirs));
    for (const dir of this.directories) {
      if (!parents.has(dir.path)) this.problem(dir.path, 'extra', `a directory that holds no file listed in ${SUMS_FILE}`);
    }
    const entered = new Set(this.directories.map((d) => d.path));
    for (const dir of [...parents].sort(comparePaths)) {
      if (!entered.has(dir)) this.problem(dir, 'missing', 'no directory entry (kube-bundle writes one for every directory)');
    }
  }

  private async hashFile(entry: TarEntry): Promise<void> {
    const expected = this.sums!.get(entry.path);
    if (expected === undefined) {
      this.problem(entry.path, 'extra', `not listed in ${SUMS_FILE}`);
      return;
    }
    const limit = entry.path === MANIFEST_FILE ? MAX_MANIFEST_SIZE : MAX_KEPT_SIZE;
    const keep = this.keep.has(entry.path) && entry.size <= limit ? [] as Buffer[] : null;
    const hash = createHash('sha256');
    for await (const chunk of entry.chunks()) {
      hash.update(chunk);
      keep?.push(Buffer.from(chunk));
    }
    if (hash.digest('hex') !== expected) {
      this.problem(entry.path, 'changed', `sha256 differs from ${SUMS_FILE}`);
      return;
    }
    this.intact++;
    if (!keep) return;
    this.kept.set(entry.path, Buffer.concat(keep));
    if (entry.path === MANIFEST_FILE) this.manifestText = this.kept.get(entry.path)!.toString('utf8');
  }

  private defect(d: TarDefect): void {
    const unread = d.fatal && this.sums ? [...this.sums.keys()].filter((p) => !this.seen.has(p)).length : 0;
    const rest = d.fatal ? `; the rest of the archive cannot be read${unread ? ` (${unread} listed files not checked)` : ''}` : '';
    this.problem(d.path ?? ARCHIVE, 'bad-entry', `${d.detail} (tar header at byte ${d.offset})${rest}`);
    if (d.fatal) this.stopped = true;
  }

  private reportMissing(sums: Map<string, string>): void {
    for (const path of sums.keys()) {
      if (!this.seen.has(path)) this.problem(path, 'missing', `listed in ${SUMS_FILE} but not in the bundle`);
    }
  }

  /** bundle.yaml, parsed and checked against SHA256SUMS and the signature; null when it cannot be trusted. */
  private manifest(): BundleManifest | null {
    if (this.manifestText === null || !this.sums) return null;
    let manifest: BundleManifest;
    try {
      manifest = parseManifest(this.manifestText, MANIFEST_FILE);
    } catch (err) {
      this.problem(MANIFEST_FILE, 'bad-manifest', (err as Error).message);
      return null;
    }
    for (const m of manifestMismatches(manifest, this.sums)) this.problem(m.path, 'bad-manifest', m.detail);
    if (this.signature === null && manifest.signer !== null) {
      this.problem(SIGNATURE_FILE, 'bad-manifest', `bundle.yaml names signer ${manifest.signer} but the bundle has no signature (was ${SIGNATURE_FILE} removed?)`);
    } else if (this.signer !== null && manifest.signer !== this.signer) {
      this.problem(MANIFEST_FILE, 'bad-manifest', `bundle.yaml names signer ${String(manifest.signer)} but ${SIGNATURE_FILE} is by ${this.signer}`);
    }
    return manifest;
  }

  private problem(path: string, kind: ProblemKind, detail: string): false {
    this.problems.push({ path, kind, detail });
    return false;
  }
}

/**
 * The armor around a signature (its checksum line, line breaks, the END line) is not covered by the signature,
 * so a byte could change there unnoticed. We accept SHA256SUMS.asc only in the exact form it is written in.
 */
async function canonicalArmorProblem(armored: string): Promise<string | null> {
  try {
    const signature = await openpgp.readSignature({ armoredSignature: armored });
    return signature.armor() === armored ? null : `${SIGNATURE_FILE} is not in the exact armored form kube-bundle writes`;
  } catch (err) {
    return `${SIGNATURE_FILE} is not a valid OpenPGP signature: ${(err as Error).message}`;
  }
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

// ---------------------------------------------------------------------------------------------------------------
// For the CLI and the installer: options from flags, errors that name what failed.

export interface VerifyFileOptions {
  file: string;
  /** armored public key of the trusted signer */
  pubkeyFile?: string;
  allowUnsigned: boolean;
  /** see VerifyOptions.keep */
  keep?: readonly string[];
}

export interface VerifiedFile extends VerifyReport {
  /** the armored key the signature was checked with, as read once from pubkeyFile; null without one */
  publicKeyArmored: string | null;
}

/** Read the key, check the bundle can be opened, verify. Throws a UserError only for unusable inputs. */
export async function verifyBundleFile(options: VerifyFileOptions): Promise<VerifiedFile> {
  if (!options.pubkeyFile && !options.allowUnsigned) {
    throw new UserError('no public key to check the bundle\'s signature with', 'pass --pubkey <signer.pub.asc>, or --allow-unsigned to skip signature checks');
  }
  const publicKeyArmored = options.pubkeyFile ? await readText(options.pubkeyFile, 'public key') : null;
  const publicKeys = publicKeyArmored !== null ? [await readPublicKey(publicKeyArmored, options.pubkeyFile!)] : [];
  await stat(options.file).catch((err: Error) => {
    throw new UserError(`cannot read bundle ${options.file}: ${err.message}`);
  });
  const report = await verifyBundle(options.file, { publicKeys, allowUnsigned: options.allowUnsigned, ...(options.keep ? { keep: options.keep } : {}) });
  return { ...report, publicKeyArmored };
}

/** Verify and throw a UserError listing every problem unless the bundle is intact. */
export async function assertBundleVerified(options: VerifyFileOptions): Promise<VerifiedFile> {
  const report = await verifyBundleFile(options);
  if (!report.ok) throw verificationFailure(options.file, report);
  return report;
}

export function verificationFailure(file: string, report: VerifyReport): UserError {
  const width = Math.max(...report.problems.map((p) => p.kind.length));
  const lines = report.problems.map((p) => `  ${p.kind.padEnd(width)}  ${p.path}: ${p.detail}`);
  const count = report.problems.length === 1 ? '1 problem' : `${report.problems.length} problems`;
  return new UserError(`${file} failed verification (${count}):\n${lines.join('\n')}`, 'do not install it; copy the bundle again from its source, or check that --pubkey is the signer\'s key');
}

/** One line for a bundle that verified; the file's sha256 comes from the same pass, for a transfer record. */
export function formatVerified(file: string, report: VerifyReport): string {
  const signer = report.signer ? `signed by ${report.signer}` : 'NOT signature-checked (unsigned allowed)';
  const base = report.manifest?.base;
  // a differential bundle verifies on its own; what it leaves to its base is named, not checked here
  const differential = base ? `; differential, base ${base.kubernetesVersion} (lock sha256 ${base.lockSha256})` : '';
  return `${file}: OK, ${report.files} files intact, ${signer}${differential}; sha256 of the file ${report.sha256}`;
}

/** What `verify --json` prints: the report without the kept bodies and the key. */
export function verifyReportJson(report: VerifyReport): object {
  const { ok, signer, files, problems, manifest, sha256 } = report;
  return { ok, signer, files, problems, manifest, sha256 };
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}
