/**
 * Opt-in benchmark: pack a 1 GiB bundle in the temp directory, then time `verifyBundle` against `sha256sum` of the
 * same file (page cache warm for both, best of three), and report the packer's peak memory.
 * Then the on-host side of install (bundle-on-host.ts), run here as a host would: unpack-and-check against plain
 * `tar -xf`, and the check every later run makes.
 * Target: verify ≤ 1.3 × sha256sum; pack peak RSS < 250 MB; the added on-host check < 2 s.
 *
 *   npm run bench -- verify [size-in-MiB]
 *
 * Needs about 1 GiB free in $TMPDIR (the source file is sparse); everything is deleted afterwards.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, readPublicKey, readSecretKey } from '../../src/core/pgp.js';
import { packBundle } from '../../src/core/bundle/pack.js';
import { verifyBundle } from '../../src/core/bundle/verify.js';
import { checkScript, unpackScript } from '../../src/core/install/bundle-on-host.js';

const RUNS = 3;

async function sparseFile(file: string, bytes: number): Promise<void> {
  const handle = await open(file, 'w');
  await handle.truncate(bytes);
  await handle.close();
}

async function best(runs: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  let fastest = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return fastest;
}

export async function runVerifyBench(args: readonly string[]): Promise<void> {
  const sizeMiB = Number(args[0] ?? 1024);
  const dir = await mkdtemp(join(tmpdir(), 'kube-bundle-bench-'));
  try {
    const pair = await generateKeyPair('bench', undefined, new Date('2025-01-01T00:00:00Z'));
    const signingKey = await readSecretKey(pair.secretKey, 'bench key');
    const publicKey = await readPublicKey(pair.publicKey, 'bench key');
    const source = join(dir, 'big.bin');
    await sparseFile(source, sizeMiB * 1024 * 1024);
    const bundle = join(dir, 'bench.tar');

    const packStart = process.hrtime.bigint();
    await packBundle({
      output: bundle,
      entries: [{ path: 'images/blobs/sha256/big', source: { file: source } }],
      manifest: { kubernetesVersion: 'v1.32.3', target: 'ubuntu-24.04', arches: ['amd64'], runtimes: ['containerd'], components: { packages: [], images: [], files: [] } },
      mtime: new Date('2025-03-01T00:00:00Z'),
      signingKey,
    });
    const packSeconds = Number(process.hrtime.bigint() - packStart) / 1e9;
    const packRssMB = process.resourceUsage().maxRSS / 1024;

    execFileSync('sha256sum', [bundle]); // warm the page cache for both contenders
    const sha256sum = await best(RUNS, () => execFileSync('sha256sum', [bundle]));
    const verify = await best(RUNS, async () => {
      const report = await verifyBundle(bundle, { publicKeys: [publicKey], allowUnsigned: false });
      if (!report.ok) throw new Error(`benchmark bundle failed verification: ${JSON.stringify(report.problems)}`);
    });

    const { createHash } = await import('node:crypto');
    const { readMembers } = await import('../../test/helpers/bundle-members.js');
    const sums = (await readMembers(bundle, ['SHA256SUMS'])).get('SHA256SUMS')!;
    const onHost = { tar: bundle, dir: join(dir, 'unpacked'), sumsSha256: createHash('sha256').update(sums).digest('hex'), signed: true };
    const plainDir = join(dir, 'plain');
    const plainTar = await best(RUNS, () => execFileSync('sh', ['-c', `rm -rf ${plainDir} && mkdir ${plainDir} && tar -xf ${bundle} -C ${plainDir} --no-same-owner`]));
    await rm(plainDir, { recursive: true, force: true });
    const unpack = await best(RUNS, () => execFileSync('sh', ['-c', unpackScript(onHost)]));
    const check = await best(RUNS, () => execFileSync('sh', ['-c', checkScript(onHost)]));

    console.log(`bundle:       ${sizeMiB} MiB`);
    console.log(`pack:         ${packSeconds.toFixed(2)} s, peak RSS ${packRssMB.toFixed(0)} MB (whole process, target < 250)`);
    console.log(`sha256sum:    ${sha256sum.toFixed(2)} s (best of ${RUNS})`);
    console.log(`verifyBundle: ${verify.toFixed(2)} s (best of ${RUNS})`);
    console.log(`ratio:        ${(verify / sha256sum).toFixed(2)} × sha256sum (target ≤ 1.3)`);
    console.log(`on the host:  tar -xf ${plainTar.toFixed(2)} s; unpack + check ${unpack.toFixed(2)} s: the check adds ${(unpack - plainTar).toFixed(2)} s (target < 2); the check on a later run ${check.toFixed(2)} s`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
