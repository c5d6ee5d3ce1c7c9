/** Reads a few members of a bundle for the tests (and the verify benchmark); the CLI reads bundles through verify. */
import { UserError } from '../../src/util/errors.js';
import { readTar } from '../../src/core/bundle/tar.js';

/** The bodies of a few small members of a bundle, read in one pass that stops once all are found. */
export async function readMembers(file: string, paths: readonly string[], limit = 16 << 20): Promise<Map<string, Buffer>> {
  const wanted = new Set(paths);
  const found = new Map<string, Buffer>();
  for await (const item of readTar(file)) {
    if (item.kind !== 'entry' || !wanted.has(item.entry.path)) continue;
    found.set(item.entry.path, await item.entry.readAll(limit));
    if (found.size === wanted.size) break;
  }
  const missing = paths.filter((p) => !found.has(p));
  if (missing.length) throw new UserError(`${file} has no ${missing.join(', ')}: is it a kube-bundle bundle of this release?`);
  return found;
}
