/**
 * OpenPGP through openpgp.js: keys, detached signatures (SHA256SUMS.asc) and cleartext signatures (apt's InRelease).
 * Both forms verify with `gpgv` on any Debian/Ubuntu host. Signing is deterministic for a given date, so that
 * a rebuild with the same SOURCE_DATE_EPOCH gives the same bytes.
 */
import * as openpgp from 'openpgp';
import { UserError } from '../util/errors.js';

export interface KeyPair {
  /** armored secret key (protected when a passphrase was given) */
  secretKey: string;
  /** armored public key */
  publicKey: string;
  fingerprint: string;
}

const deterministic = { nonDeterministicSignaturesViaNotation: false } as const;

export async function generateKeyPair(name: string, passphrase?: string, date?: Date): Promise<KeyPair> {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name }],
    ...(passphrase ? { passphrase } : {}),
    ...(date ? { date } : {}),
    format: 'armored',
  });
  const key = await openpgp.readKey({ armoredKey: publicKey });
  return { secretKey: privateKey, publicKey, fingerprint: key.getFingerprint().toUpperCase() };
}

/** Read an armored secret key, unlocking it with the passphrase when it is protected. `source` names it in errors. */
export async function readSecretKey(armored: string, source: string, passphrase?: string): Promise<openpgp.PrivateKey> {
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armored });
  } catch (err) {
    throw new UserError(`${source} is not an armored OpenPGP secret key: ${(err as Error).message}`, 'make one with `bundle keygen --out <dir>`');
  }
  if (key.isDecrypted()) return key;
  if (!passphrase) {
    throw new UserError(`${source} is protected by a passphrase`, 'set KUBE_BUNDLE_PASSPHRASE');
  }
  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase });
  } catch {
    throw new UserError(`wrong passphrase for ${source}`, 'check KUBE_BUNDLE_PASSPHRASE');
  }
}

export async function readPublicKey(armored: string, source: string): Promise<openpgp.PublicKey> {
  try {
    const key = await openpgp.readKey({ armoredKey: armored });
    return key.toPublic();
  } catch (err) {
    throw new UserError(`${source} is not an armored OpenPGP public key: ${(err as Error).message}`);
  }
}

export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase();
}

/**
 * The date a signature carries. A signature may not predate its key (openpgp.js refuses to make one and gpgv
 * warns), so a SOURCE_DATE_EPOCH older than the key is moved up to the key's creation: still fixed for a given key.
 */
export function signatureDate(key: openpgp.PrivateKey, wanted?: Date): Date | undefined {
  if (!wanted) return undefined;
  const created = key.getCreationTime();
  return wanted < created ? created : wanted;
}

/** Detached, armored signature over `data` (for SHA256SUMS.asc). */
export async function signDetached(data: Uint8Array | string, key: openpgp.PrivateKey, wanted?: Date): Promise<string> {
  const date = signatureDate(key, wanted);
  const message = typeof data === 'string' ? await openpgp.createMessage({ text: data, format: 'binary' }) : await openpgp.createMessage({ binary: data });
  return (await openpgp.sign({ message, signingKeys: key, detached: true, format: 'armored', config: deterministic, ...(date ? { date } : {}) })) as string;
}

/** Cleartext-signed text (apt's InRelease). */
export async function signCleartext(text: string, key: openpgp.PrivateKey, wanted?: Date): Promise<string> {
  const date = signatureDate(key, wanted);
  const message = await openpgp.createCleartextMessage({ text });
  return openpgp.sign({ message, signingKeys: key, config: deterministic, ...(date ? { date } : {}) });
}

export interface Verified {
  fingerprint: string;
}

/** Verify a detached signature; throws a UserError naming `what` when it does not check out. */
export async function verifyDetached(data: Uint8Array | string, armoredSignature: string, keys: openpgp.PublicKey[], what: string): Promise<Verified> {
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature });
  } catch (err) {
    throw new UserError(`${what}: the signature is not a valid OpenPGP signature (${(err as Error).message})`);
  }
  const message = typeof data === 'string' ? await openpgp.createMessage({ text: data, format: 'binary' }) : await openpgp.createMessage({ binary: data });
  return checkSignatures(await openpgp.verify({ message, signature, verificationKeys: keys, expectSigned: false }), keys, what);
}

/** Verify a cleartext-signed document (InRelease) and return its text. */
export async function verifyCleartext(armored: string, keys: openpgp.PublicKey[], what: string): Promise<Verified & { text: string }> {
  let message: openpgp.CleartextMessage;
  try {
    message = await openpgp.readCleartextMessage({ cleartextMessage: armored });
  } catch (err) {
    throw new UserError(`${what}: not an OpenPGP cleartext-signed document (${(err as Error).message})`);
  }
  const result = await openpgp.verify({ message, verificationKeys: keys, expectSigned: false });
  const verified = await checkSignatures(result, keys, what);
  return { ...verified, text: message.getText() };
}

async function checkSignatures(result: openpgp.VerifyMessageResult<unknown>, keys: openpgp.PublicKey[], what: string): Promise<Verified> {
  // A signature names the key id of whichever key made it: archives such as Debian's sign with subkeys.
  const known = new Map(keys.flatMap((k) => k.getKeyIDs().map((id) => [id.toHex(), k] as const)));
  const reasons: string[] = [];
  for (const sig of result.signatures) {
    const key = known.get(sig.keyID.toHex());
    try {
      await sig.verified;
      if (key) return { fingerprint: fingerprintOf(key) };
    } catch (err) {
      reasons.push((err as Error).message);
    }
  }
  const signers = result.signatures.map((s) => s.keyID.toHex().toUpperCase()).join(', ') || 'none';
  throw new UserError(
    `${what}: bad or untrusted signature (signed by key ${signers}; ${reasons[0] ?? 'no signature by a trusted key'})`,
    'check that the public key given is the signer\'s',
  );
}
