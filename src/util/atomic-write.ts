/**
 * The one way a file is made to appear under its final name: whole or not at all.
 *
 * `fill` writes (or links, or copies) the content to a partial file, which is renamed over the target only once
 * `fill` succeeded, so no reader, and no later run after a crash, ever finds half a file under the final name. The
 * partial is removed whatever happens: on failure it is garbage, and after a rename between two names of one file
 * (which POSIX makes a no-op) it is an extra link.
 */
import { open, rename, rm, writeFile } from 'node:fs/promises';

export interface AtomicWriteOptions {
  /** where the content is written first; `<target>.partial` by default (same directory, so rename is atomic) */
  partial?: string;
  /** fsync the partial before the rename: for content a crash right after must not leave torn */
  sync?: boolean;
}

/**
 * Put `content` at `target` atomically: bytes or text are written as they are; a function is given the partial's
 * path to fill however it likes (stream into it, hard-link to it) and its result is returned.
 */
export async function writeAtomically<T = void>(
  target: string,
  content: string | Uint8Array | ((partial: string) => Promise<T>),
  options: AtomicWriteOptions = {},
): Promise<T> {
  const partial = options.partial ?? `${target}.partial`;
  const fill = typeof content === 'function' ? content : async (file: string) => void (await writeFile(file, content));
  // a partial left by a killed run must not stand in the way (a link onto it would fail)
  await rm(partial, { force: true });
  try {
    const result = (await fill(partial)) as T;
    if (options.sync) await syncFile(partial);
    await rename(partial, target);
    return result;
  } finally {
    await rm(partial, { force: true });
  }
}

/** fsync a file by name: its data is on disk once this returns. */
export async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
