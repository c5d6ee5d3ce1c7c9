/**
 * `bundle keygen`: a signing key pair for bundles, as two armored files in one directory:
 * signer.asc (secret, mode 0600, passphrase-protected when one is given) and signer.pub.asc (public, to carry
 * into the air gap). Existing files are never overwritten: losing a signing key silently is worse than an error.
 */
import { lstat, mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { generateKeyPair } from './pgp.js';

export const SECRET_KEY_FILE = 'signer.asc';
export const PUBLIC_KEY_FILE = 'signer.pub.asc';

export interface KeygenOptions {
  outDir: string;
  /** user id on the key */
  name: string;
  /** protect the secret key with this passphrase (from KUBE_BUNDLE_PASSPHRASE) */
  passphrase?: string;
}

export interface KeygenResult {
  fingerprint: string;
  secretKeyFile: string;
  publicKeyFile: string;
  passphraseProtected: boolean;
}

export async function keygen(options: KeygenOptions): Promise<KeygenResult> {
  const secretKeyFile = join(options.outDir, SECRET_KEY_FILE);
  const publicKeyFile = join(options.outDir, PUBLIC_KEY_FILE);
  await refuseExisting([secretKeyFile, publicKeyFile]);
  await mkdir(options.outDir, { recursive: true, mode: 0o700 }).catch((err: Error) => {
    throw new UserError(`cannot create ${options.outDir}: ${err.message}`);
  });
  const pair = await generateKeyPair(options.name, options.passphrase);
  await writeNew(secretKeyFile, pair.secretKey, 0o600);
  try {
    await writeNew(publicKeyFile, pair.publicKey, 0o644);
  } catch (err) {
    // Half a key pair is useless and confusing: take the secret back out.
    await rm(secretKeyFile, { force: true });
    throw err;
  }
  return { fingerprint: pair.fingerprint, secretKeyFile, publicKeyFile, passphraseProtected: Boolean(options.passphrase) };
}

export function formatKeygen(r: KeygenResult): string {
  return [
    `fingerprint: ${r.fingerprint}`,
    `secret key:  ${r.secretKeyFile} (mode 0600${r.passphraseProtected ? ', passphrase-protected' : ', NOT passphrase-protected: set KUBE_BUNDLE_PASSPHRASE to protect it'})`,
    `public key:  ${r.publicKeyFile} (carry this into the air gap: bundle install --pubkey ${r.publicKeyFile})`,
  ].join('\n');
}

async function refuseExisting(files: string[]): Promise<void> {
  for (const file of files) {
    const exists = await lstat(file).then(() => true, () => false);
    if (exists) throw new UserError(`${file} already exists; refusing to overwrite a key`, 'choose another --out directory or move the old key away');
  }
}

/** Create `file` (failing if it exists) with exactly `mode`, whatever the umask. */
async function writeNew(file: string, text: string, mode: number): Promise<void> {
  let handle;
  try {
    handle = await open(file, 'wx', mode);
  } catch (err) {
    throw new UserError(`cannot create ${file}: ${(err as Error).message}`);
  }
  try {
    await handle.chmod(mode);
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}
