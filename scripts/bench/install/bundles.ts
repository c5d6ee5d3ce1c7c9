/**
 * The two bundles the install benchmark needs, built with the compiled CLI from the simulated upstream (plus this
 * machine's Debian archive) and extracted the way the registry host extracts them:
 *
 *   standard  `--runtime containerd`: what gets installed; its images are small test images (about 1 MiB)
 *   big       the same plus one image with a single ~200 MiB incompressible gzip layer, so that seeding vs
 *             skopeo is not decided by fixed costs (process starts, registry start)
 *
 * The download cache persists between runs (BENCH_CACHE), so only the first run fetches the debs and the big layer.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseManifest, type ImageComponent } from '../../../src/core/bundle/manifest.js';
import { IMAGES_DIR, INSTALLER_DIR, MANIFEST_FILE } from '../../../src/core/bundle/paths.js';
import { pushBigImage } from '../lib/big-image.js';
import { startBenchUpstream, type BenchUpstream } from '../lib/upstream.js';
import { log, run, runBundle } from './run.js';

const BENCH_CACHE = '/var/tmp/kube-bundle-bench-cache/install';
const BIG_IMAGE = { rawRepository: 'docker.io/library/big-tar', repository: 'docker.io/library/big', tag: 'gzip-200m', payloadBytes: 200 * 2 ** 20 };
export const BIG_IMAGE_REF = `${BIG_IMAGE.repository}:${BIG_IMAGE.tag}`;

export interface BenchBundle {
  file: string;
  bytes: number;
  /** where images/, installer/ and bundle.yaml were extracted */
  extracted: string;
  images: ImageComponent[];
}

export interface BenchBundles {
  standard: BenchBundle;
  big: BenchBundle;
  pubkeyFile: string;
}

/** `npm run build`: the benchmark measures the compiled CLI, so it must match the sources. */
export async function compileCli(): Promise<void> {
  log('npm run build');
  await run('npm', ['run', 'build']);
}

export async function buildBundles(dir: string): Promise<BenchBundles> {
  return withSigningUpstream(dir, async (upstream, keyFile) => {
    const standard = await build(upstream, keyFile, join(dir, 'standard.tar'), []);
    await pushBigGzipImage(upstream.backendUrl);
    const big = await build(upstream, keyFile, join(dir, 'big.tar'), ['--image', BIG_IMAGE_REF]);
    return { standard: await extract(standard, join(dir, 'standard')), big: await extract(big, join(dir, 'big')) };
  });
}

export type BundleKind = keyof Omit<BenchBundles, 'pubkeyFile'>;

/** One of the two bundles, for benchmarks that need only that one. */
export async function buildBundle(dir: string, kind: BundleKind): Promise<{ bundle: BenchBundle; pubkeyFile: string }> {
  return withSigningUpstream(dir, async (upstream, keyFile) => {
    if (kind === 'big') await pushBigGzipImage(upstream.backendUrl);
    const file = await build(upstream, keyFile, join(dir, `${kind}.tar`), kind === 'big' ? ['--image', BIG_IMAGE_REF] : []);
    return { bundle: await extract(file, join(dir, kind)) };
  });
}

/** A new signing key in `dir/keys` and the simulated upstream for the time of `builds`, stopped afterwards. */
async function withSigningUpstream<T>(dir: string, builds: (upstream: BenchUpstream, keyFile: string) => Promise<T>): Promise<T & { pubkeyFile: string }> {
  const keys = join(dir, 'keys');
  await runBundle(['keygen', '--out', keys]);
  log('starting the simulated upstream');
  const upstream = await startBenchUpstream();
  try {
    return { ...(await builds(upstream, join(keys, 'signer.asc'))), pubkeyFile: join(keys, 'signer.pub.asc') };
  } finally {
    await upstream.stop();
  }
}

/**
 * pushBigImage makes an uncompressed layer, which skopeo would gzip on its way into a registry: extra work that
 * real (gzip) images never cause and a different digest. So skopeo itself turns it into a gzip image first.
 */
async function pushBigGzipImage(backendUrl: string): Promise<void> {
  log(`pushing ${BIG_IMAGE_REF} (one ${BIG_IMAGE.payloadBytes / 2 ** 20} MiB incompressible gzip layer) into the simulated docker.io`);
  await pushBigImage(backendUrl, BIG_IMAGE.rawRepository, BIG_IMAGE.tag, BIG_IMAGE.payloadBytes);
  const backend = `docker://${new URL(backendUrl).host}`;
  await run('skopeo', [
    'copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', '--dest-compress-format', 'gzip',
    `${backend}/${BIG_IMAGE.rawRepository}:${BIG_IMAGE.tag}`, `${backend}/${BIG_IMAGE.repository}:${BIG_IMAGE.tag}`,
  ]);
}

async function build(upstream: BenchUpstream, keyFile: string, output: string, extra: string[]): Promise<string> {
  const r = await runBundle([
    'build', 'v1.32.3', '-t', 'debian-12', '--runtime', 'containerd', '--key', keyFile, '-o', output,
    '--cache', BENCH_CACHE, '--trust-key', upstream.k8sKeyFile, ...upstream.pins.flatMap((p) => ['--pin', p]), ...upstream.mirrors.flatMap((m) => ['--mirror', m]),
    ...extra,
  ]);
  log(`built ${output} in ${r.seconds.toFixed(1)} s`);
  return output;
}

/** Only what registry seeding reads; on the same file system as the registry storage, so hard links work. */
async function extract(file: string, extracted: string): Promise<BenchBundle> {
  await mkdir(extracted, { recursive: true });
  await run('tar', ['-xf', file, '-C', extracted, IMAGES_DIR, INSTALLER_DIR, MANIFEST_FILE]);
  const manifestPath = join(extracted, MANIFEST_FILE);
  const manifest = parseManifest(await readFile(manifestPath, 'utf8'), manifestPath);
  return { file, bytes: (await stat(file)).size, extracted, images: manifest.components.images };
}
