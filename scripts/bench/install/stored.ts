/**
 * What an install left on a host, measured there after it: the bytes under install's root (the bundle as the host
 * got it: tar, unpacked tree, journal...), the seeded registry's storage on its own, apt's download cache (where
 * debs fetched over the network would land), and the resident memory of everything running on the host.
 *
 * `du -sb` counts apparent sizes and every inode once per invocation. The registry storage is hard links into the
 * unpacked bundle's images/, so it is measured on its own (`registryBytes`, its blobs counted in full) and left out
 * of `bundleBytes`; `distinctBytes` is the whole root with each hard-linked blob counted once (what the disk holds).
 */
import type { Lab } from '../../../test/lab/lab.js';
import { REGISTRY_STORAGE, REMOTE_ROOT } from '../../../src/core/install/host-paths.js';

export const APT_ARCHIVES = '/var/cache/apt/archives';

export interface Stored {
  host: string;
  /** du -sb of REMOTE_ROOT without REGISTRY_STORAGE */
  bundleBytes: number;
  /** du -sb of REGISTRY_STORAGE (0 where there is none) */
  registryBytes: number;
  /** du -sb of REMOTE_ROOT, hard links counted once */
  distinctBytes: number;
  /** du -sb of apt's download cache */
  aptCacheBytes: number;
  /** sum of the RSS of every process on the host (shared pages counted in each: an upper bound) */
  rssBytes: number;
}

const MEASURE = [
  'set -eu',
  'size() { if [ -e "$1" ]; then du -sb "$@" | cut -f1; else echo 0; fi; }',
  `echo "$(size ${REMOTE_ROOT} --exclude=${REGISTRY_STORAGE}) $(size ${REGISTRY_STORAGE}) $(size ${REMOTE_ROOT}) $(size ${APT_ARCHIVES}) $(ps -eo rss= | awk '{ s += $1 } END { print s * 1024 }')"`,
].join('\n');

export async function storedOn(lab: Lab, index: number): Promise<Stored> {
  const host = lab.hosts[index - 1]!;
  const r = await lab.ssh(index, MEASURE);
  const figures = r.stdout.trim().split(/\s+/).map(Number);
  if (figures.length !== 5 || !figures.every(Number.isSafeInteger)) throw new Error(`${host.name}: unexpected du/ps output ${JSON.stringify(r.stdout)}`);
  const [bundleBytes, registryBytes, distinctBytes, aptCacheBytes, rssBytes] = figures as [number, number, number, number, number];
  return { host: host.name, bundleBytes, registryBytes, distinctBytes, aptCacheBytes, rssBytes };
}
