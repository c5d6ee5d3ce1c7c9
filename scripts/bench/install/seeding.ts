/**
 * Registry seeding vs `skopeo copy`, both on this machine, both ending with a distribution registry (Debian's
 * docker-registry, as on the registry host) that serves every image of the bundle:
 *
 *   seeding  installer/seed-registry.sh (hard links from the extracted OCI layout) into an empty storage directory,
 *            then starting the registry on it until GET /v2/ answers: what the install's registry phase does
 *   skopeo   one `skopeo copy` per image, platform and repository path the seeded registry serves it under, from
 *            `oci:<images>:<ref>` into an empty registry that is already running (its start is not counted)
 *
 * Rounds alternate who goes first; every round starts from a fresh storage directory. After each contender the
 * registry is asked for every image, so a contender that silently copied nothing cannot win.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageComponent } from '../../../src/core/bundle/manifest.js';
import { seededRepositories } from '../../../src/core/builder/seed-plan.js';
import { MANIFEST_ACCEPT } from '../../../src/core/oci/media-types.js';
import { parseReference } from '../../../src/core/oci/reference.js';
import { startDistribution, type DistributionRegistry } from '../../../test/upstream/distribution.js';
import type { BenchBundle } from './bundles.js';
import { run, secondsSince } from './run.js';

export interface SeedingRound {
  /** seed script + registry start until it answers */
  seedSeconds: number;
  /** of which the seed script */
  seedScriptSeconds: number;
  skopeoSeconds: number;
}

export interface SeedingResult {
  images: number;
  /** skopeo copy runs per round */
  copies: number;
  /** bytes in the OCI layout's blobs/: what both contenders make the registry hold */
  blobBytes: number;
  /** the seeded blobs were hard links (else seed-registry.sh fell back to copying) */
  hardLinked: boolean;
  rounds: SeedingRound[];
}

interface Copy {
  source: string;
  /** <repository>:<tag> in the destination registry */
  destination: string;
  platform: string;
}

export async function compareSeeding(bundle: BenchBundle, workDir: string, rounds: number): Promise<SeedingResult> {
  const copies = skopeoCopies(bundle);
  const result: SeedingResult = { images: bundle.images.length, copies: copies.length, blobBytes: await blobBytes(bundle), hardLinked: true, rounds: [] };
  for (let round = 1; round <= rounds; round++) {
    let seeded: { seconds: number; scriptSeconds: number; hardLinked: boolean } | undefined;
    let skopeoSeconds = 0;
    for (const which of round % 2 === 1 ? ['seed', 'skopeo'] : ['skopeo', 'seed']) {
      const dir = join(workDir, `${which}-${round}`);
      if (which === 'seed') seeded = await timeSeeding(bundle, dir);
      else skopeoSeconds = await timeSkopeo(bundle, copies, dir);
      await rm(dir, { recursive: true, force: true });
    }
    result.hardLinked &&= seeded!.hardLinked;
    result.rounds.push({ seedSeconds: seeded!.seconds, seedScriptSeconds: seeded!.scriptSeconds, skopeoSeconds });
  }
  return result;
}

async function timeSeeding(bundle: BenchBundle, dir: string): Promise<{ seconds: number; scriptSeconds: number; hardLinked: boolean }> {
  const { extracted } = bundle;
  const storage = join(dir, 'distribution', 'storage'); // where startDistribution({ workDir: dir }) keeps it
  const started = process.hrtime.bigint();
  const script = await run(join(extracted, 'installer/seed-registry.sh'), [join(extracted, 'installer/registry-seed.txt'), join(extracted, 'images'), storage]);
  const registry = await startDistribution({ workDir: dir });
  const seconds = secondsSince(started);
  try {
    await assertServesAll(registry, bundle.images);
    return { seconds, scriptSeconds: script.seconds, hardLinked: await blobsHardLinked(storage) };
  } finally {
    await registry.stop();
  }
}

async function timeSkopeo(bundle: BenchBundle, copies: Copy[], dir: string): Promise<number> {
  const registry = await startDistribution({ workDir: dir });
  try {
    const host = new URL(registry.url).host;
    const started = process.hrtime.bigint();
    for (const copy of copies) await run('skopeo', skopeoArgs(copy, host));
    const seconds = secondsSince(started);
    await assertServesAll(registry, bundle.images);
    return seconds;
  } finally {
    await registry.stop();
  }
}

/** Every platform the bundle carries, under every repository path the seed plan links the image under. */
function skopeoCopies(bundle: BenchBundle): Copy[] {
  const layout = join(bundle.extracted, 'images');
  return bundle.images.flatMap((image) => {
    const tag = tagOf(image);
    return seededRepositories(image.ref).flatMap((repository) =>
      image.platforms.map((platform) => ({ source: `oci:${layout}:${image.ref}`, destination: `${repository}:${tag}`, platform })),
    );
  });
}

/**
 * One platform per copy: the bundle's indexes list platforms whose blobs it does not carry, so `--all` would
 * fail on the first missing manifest. Plain HTTP registry, hence --dest-tls-verify=false.
 */
function skopeoArgs(copy: Copy, host: string): string[] {
  const [os = '', arch = '', variant] = copy.platform.split('/');
  return [
    'copy', '--quiet', '--override-os', os, '--override-arch', arch, ...(variant ? ['--override-variant', variant] : []),
    '--dest-tls-verify=false', copy.source, `docker://${host}/${copy.destination}`,
  ];
}

function tagOf(image: ImageComponent): string {
  const { tag } = parseReference(image.ref);
  if (!tag) throw new Error(`${image.ref}: the benchmark copies images by tag, and this one has none`);
  return tag;
}

async function assertServesAll(registry: DistributionRegistry, images: ImageComponent[]): Promise<void> {
  for (const image of images) {
    for (const repository of seededRepositories(image.ref)) {
      const url = `${registry.url}/v2/${repository}/manifests/${tagOf(image)}`;
      const res = await fetch(url, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
      if (res.status !== 200) throw new Error(`registry in ${registry.storageDir}: HEAD ${url} answered ${res.status}; ${image.ref} is missing`);
    }
  }
}

async function blobBytes(bundle: BenchBundle): Promise<number> {
  const dir = join(bundle.extracted, 'images/blobs/sha256');
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

/** Each blob's data file in the seeded storage has a second name (its file in the extracted layout). */
async function blobsHardLinked(storage: string): Promise<boolean> {
  const blobs = join(storage, 'docker/registry/v2/blobs/sha256');
  for (const prefix of await readdir(blobs)) {
    for (const hex of await readdir(join(blobs, prefix))) {
      if ((await stat(join(blobs, prefix, hex, 'data'))).nlink < 2) return false;
    }
  }
  return true;
}
