/**
 * The OpenPGP test keys that sign the simulated apt archives (pkgs.k8s.io, Ubuntu's archive): each made on first
 * use and kept in the upstream's work directory, so that reruns sign with the same key.
 */
import { existsSync } from 'node:fs';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PrivateKey } from 'openpgp';
import { generateKeyPair, readSecretKey } from '../../src/core/pgp.js';

export interface TestSigningKey {
  secretKey: PrivateKey;
  /** armored */
  publicKey: string;
  /** the armored public key, written into the work directory */
  publicKeyFile: string;
}

export interface TestKeySpec {
  /** file names inside the work directory */
  secretFile: string;
  publicKeyFile: string;
  /** the key's user id */
  userId: string;
  /** the key's creation date: fixed, so that signatures made at fixed dates are valid */
  created: Date;
}

/**
 * The key, made on first use. The secret key file is created with link(2), which fails when it exists, so racing
 * first starts agree on one key; the public key file is derived from it and the same for everyone.
 */
export async function testSigningKey(workDir: string, spec: TestKeySpec): Promise<TestSigningKey> {
  const secretFile = path.join(workDir, spec.secretFile);
  const publicKeyFile = path.join(workDir, spec.publicKeyFile);
  if (!existsSync(secretFile)) await createSecretKey(secretFile, spec);
  const secretKey = await readSecretKey(await readFile(secretFile, 'utf8'), secretFile);
  const publicKey = secretKey.toPublic().armor();
  await writeAtomically(publicKeyFile, publicKey);
  return { secretKey, publicKey, publicKeyFile };
}

async function createSecretKey(secretFile: string, spec: TestKeySpec): Promise<void> {
  const pair = await generateKeyPair(spec.userId, undefined, spec.created);
  const temp = `${secretFile}.${process.pid}.tmp`;
  await writeFile(temp, pair.secretKey, { mode: 0o600 });
  try {
    await link(temp, secretFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await rm(temp, { force: true });
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, text);
  await rename(temp, file);
}
