/** Files the tests and benchmarks make. */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';

/** Write `mib` MiB of incompressible bytes to `path`, a MiB at a time; returns their sha256. */
export function writeRandomFile(path: string, mib: number): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < mib; i++) {
      const block = randomBytes(1 << 20);
      hash.update(block);
      writeSync(fd, block);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
