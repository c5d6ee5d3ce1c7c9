/**
 * The benchmark's scratch space: gigabytes of bundles, caches and downloads in one directory on disk, refused up
 * front when the disk is short, and removed afterwards, also when the run is interrupted.
 */
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';

export const GIB = 1024 ** 3;

export interface Workspace {
  dir: string;
  /** run `cleanup` at the end, or on SIGINT/SIGTERM; cleanups run in reverse order of registration */
  onCleanup(cleanup: () => Promise<void>): void;
  cleanup(): Promise<void>;
}

/** Free bytes for an unprivileged writer on the filesystem holding `path`. */
async function freeBytes(path: string): Promise<number> {
  const fs = await statfs(path);
  return fs.bavail * fs.bsize;
}

/** Fail unless every directory in `paths` has `minFree` bytes free (they may share a filesystem). */
export async function assertFreeSpace(paths: string[], minFree: number): Promise<void> {
  for (const path of paths) {
    const free = await freeBytes(path);
    if (free < minFree) {
      throw new Error(`only ${(free / GIB).toFixed(1)} GiB free on the filesystem of ${path}; the benchmark needs ${(minFree / GIB).toFixed(0)} GiB (it writes several 1 GiB files there)`);
    }
  }
}

export async function createWorkspace(parent: string): Promise<Workspace> {
  const dir = await mkdtemp(join(parent, 'kube-bundle-bench-'));
  const cleanups: (() => Promise<void>)[] = [() => rm(dir, { recursive: true, force: true })];
  let done: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    done ??= (async () => {
      for (const fn of [...cleanups].reverse()) await fn().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    })();
    return done;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: removing ${dir} and stopping the simulated upstream`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  return { dir, onCleanup: (fn) => cleanups.push(fn), cleanup };
}
