/** The package index of some repositories as a build reads it, handed to `use` and disposed of after. */
import type { PackageIndex, PackageSource } from '../../../src/core/apt/index.js';
import { IndexScans, type IndexHooks, type VerifiedRepo } from '../../../src/core/builder/apt-sources.js';
import type { Fetcher } from '../../../src/core/fetch.js';
import type { Mirrors } from '../../../src/core/mirror.js';

/**
 * Run `use` on the package index of `repos` (then `extra`, in that order: earlier sources win ties) for `arch`;
 * see IndexScans for how the indexes are read. Whatever `use` wants of the records' stanzas it must read before
 * it returns.
 */
export async function withPackageIndex<T>(
  fetcher: Fetcher,
  mirrors: Mirrors,
  repos: readonly VerifiedRepo[],
  extra: readonly PackageSource[],
  arch: string,
  use: (index: PackageIndex) => T | Promise<T>,
  hooks: IndexHooks = {},
): Promise<T> {
  const scans = new IndexScans(fetcher, mirrors, repos, arch, hooks);
  try {
    return await use(await scans.index(extra));
  } finally {
    await scans.dispose();
  }
}
