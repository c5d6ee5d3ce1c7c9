/**
 * sha256, the one digest kube-bundle uses everywhere (bundle members, debs, image blobs, uploads): of bytes, of a
 * file, and the two forms it is written in (64 lowercase hex digits; `sha256:<hex>` in OCI and lock files).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { UserError } from './errors.js';

/** 64 lowercase hex digits */
export const SHA256_HEX = /^[0-9a-f]{64}$/;
/** `sha256:<64 lowercase hex digits>`, the hex in group 1 */
export const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;

export function sha256Of(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A file's sha256 and size, read in 1 MiB pieces: never holds more than one buffer of it. */
export async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const handle = await open(file, 'r');
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(1 << 20);
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await handle.close();
  }
}

/** The bare hex of a `sha256:<hex>` digest (or of bare hex); anything else is refused, naming it. */
export function digestHex(digest: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice('sha256:'.length) : digest;
  if (!SHA256_HEX.test(hex)) throw new UserError(`not a sha256 digest: '${digest}'`);
  return hex;
}
