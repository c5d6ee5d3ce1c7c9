/**
 * Bundle assembly and reuse: every file of the bundle (packages, the flat repository's index, the OCI layout,
 * manifests, the installer) with its sha256 and size, its bundle.yaml, and the bundle kept in the cache under a key
 * over exactly those, so that a warm rebuild of the same thing links it instead of packing it again.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { copyFile, link, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type * as openpgp from 'openpgp';
import { writeAtomically } from '../../util/atomic-write.js';
import { sha256Of } from '../../util/digest.js';
import { packageRoot } from '../../util/package-root.js';
import { parseControlStanza } from '../apt/debfile.js';
import { renderFlatRepo, type RepoPackage } from '../apt/flatrepo.js';
import type { BlobCache } from '../cache.js';
import { buildLayout } from '../oci/layout.js';
import type { PulledImage } from '../oci/registry.js';
import { fingerprintOf } from '../pgp.js';
import type { FileComponent, ImageComponent, ManifestContent, PackageComponent } from '../bundle/manifest.js';
import { packBundle, type PackEntry } from '../bundle/pack.js';
import { IMAGES_DIR, installerFile, packageFile, PACKAGES_DIR } from '../bundle/paths.js';
import { carriedPlan, type BaseRef, type DifferentialContent } from './differential.js';
import { imageSize, platformText, type Plan } from './plan.js';
import { seedPlan } from './seed-plan.js';

/**
 * Every file of the bundle (each from the cache with its sha256 and size), and its bundle.yaml. With
 * `differential`, only what the base lacks (differential.ts): the flat repository's index lists only the packages
 * carried (the install side merges it with the base's repository, which lists the rest); the OCI layout's
 * index.json names every image, its blobs only those carried, and bundle.yaml marks the images the base has
 * whole (`fromBase`). The registry seed plan describes every image in full, whichever bundle carries its blobs.
 */
export async function assemble(full: Plan, cache: BlobCache, signingKey: openpgp.PrivateKey | undefined, date: Date, differential?: { base: BaseRef; content: DifferentialContent }): Promise<{ entries: PackEntry[]; manifest: ManifestContent }> {
  const plan = differential ? carriedPlan(full, differential.content) : full;
  const images = plan.images;
  const repoPackages: RepoPackage[] = plan.debs.map((d) => ({
    filename: d.bundleName,
    control: parseControlStanza(d.record.stanza, d.upstreamUrl).filter(([name]) => !/^(filename|size|md5sum|sha1|sha256|sha512|description-md5)$/i.test(name)),
    size: d.record.size,
    sha256: d.record.sha256,
  }));
  const repoFiles = await renderFlatRepo(repoPackages, { origin: 'kube-bundle', label: 'kube-bundle', suite: 'stable', date, ...(signingKey ? { signingKey } : {}) }, PACKAGES_DIR);
  const fromBase = (i: PulledImage) => differential !== undefined && !differential.content.carried.blobs.has(i.descriptor.digest);
  const layout = buildLayout(images, cache, new Set(images.filter(fromBase).map((i) => i.reference)));
  const entries: PackEntry[] = [
    ...plan.debs.map((d) => ({ path: packageFile(d.bundleName), source: { file: cache.blobPath(d.record.sha256) }, sha256: d.record.sha256, size: d.record.size })),
    ...repoFiles.map((f) => ({ path: `${PACKAGES_DIR}/${f.name}`, source: { bytes: f.bytes } })),
    ...layout.map((e) => ({ path: `${IMAGES_DIR}/${e.path}`, source: e.source, ...('file' in e.source ? { sha256: basename(e.path), size: e.size } : {}) })),
    ...plan.files.map((f) => ({ path: f.path, source: { file: f.cachePath }, sha256: f.sha256, size: f.size })),
  ];
  const packages: PackageComponent[] = plan.debs.map((d) => ({ name: d.record.name, version: d.record.version, arch: d.record.architecture, filename: packageFile(d.bundleName), size: d.record.size, sha256: d.record.sha256, url: d.upstreamUrl }));
  const imageComponents: ImageComponent[] = images.map((i) => ({ ref: i.reference, digest: i.descriptor.digest, mediaType: i.descriptor.mediaType, platforms: i.manifests.map(platformText), size: imageSize(i), ...(fromBase(i) ? { fromBase: true as const } : {}) }));
  const installer = installerFiles(full.images);
  entries.push(...installer.map((f) => ({ path: f.path, source: { bytes: f.bytes } })));
  const files: FileComponent[] = [
    ...plan.files.map((f) => ({ path: f.path, url: f.url, sha256: f.sha256, size: f.size, kind: 'manifest' as const })),
    ...installer.map((f) => ({ path: f.path, url: f.url, sha256: sha256Of(f.bytes), size: f.bytes.length, kind: 'installer' as const })),
  ];
  return {
    entries,
    manifest: { kubernetesVersion: plan.version.tag, target: plan.target.name, arches: plan.arches, runtimes: plan.runtimes, ...(differential ? { base: { kubernetesVersion: differential.base.kubernetesVersion, lockSha256: differential.base.lockSha256 } } : {}), components: { packages, images: imageComponents, files } },
  };
}

/**
 * A bundle is a function of its entries, bundle.yaml, its date and its signer: the cache remembers, under a key
 * over exactly those, the bundle it packed (the file itself, hard-linked into the cache, so no second copy on
 * disk). A warm rebuild of the same thing then links it instead of writing and hashing it all again.
 */
export function bundleKey(entries: PackEntry[], manifest: ManifestContent, date: Date, signingKey: openpgp.PrivateKey | undefined): string {
  const hash = createHash('sha256').update(`kube-bundle pack v1\n${date.toISOString()}\n${signingKey ? fingerprintOf(signingKey) : 'unsigned'}\n`);
  hash.update(JSON.stringify(manifest));
  for (const e of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const digest = 'bytes' in e.source ? sha256Of(e.source.bytes) : e.sha256;
    if (!digest) return randomUUID(); // a file whose digest is not known: never reuse
    hash.update(`${e.path} ${digest}\n`);
  }
  return hash.digest('hex');
}

/** The bundle kept under `key` by an earlier build, linked (or copied) to `output`; undefined when there is none. */
export async function reuseBundle(cache: BlobCache, key: string, output: string): Promise<{ size: number } | undefined> {
  const kept = await cache.derivedFile(KEPT_BUNDLE, key);
  let size: number;
  try {
    size = (await stat(kept)).size;
  } catch {
    return undefined;
  }
  // a hard link where the file system allows (no second copy on disk); the output is there whole or not at all
  await writeAtomically(output, async (partial) => {
    try {
      await link(kept, partial);
    } catch {
      await copyFile(kept, partial);
    }
  });
  return { size };
}

/** Pack, and keep the bundle in the cache under `key` (a hard link: no second copy on disk). */
export async function packAndKeep(cache: BlobCache, key: string, options: Parameters<typeof packBundle>[0]): Promise<{ size: number }> {
  const packed = await packBundle(options);
  const partial = await cache.partialPath();
  try {
    const kept = await cache.derivedFile(KEPT_BUNDLE, key);
    await writeAtomically(kept, (file) => link(options.output, file), { partial });
  } catch {
    // another file system than the cache (a link is impossible): not worth a second copy of the bundle
  }
  return packed;
}

/** The derived-data kind under which packed bundles are kept (see bundleKey). */
const KEPT_BUNDLE = 'bundle-file';

/** What the installer runs on the hosts: the host-side scripts of this release and the registry seed plan. */
function installerFiles(images: PulledImage[]): { path: string; url: string; bytes: Buffer }[] {
  const dir = join(packageRoot(), 'scripts', 'host');
  const scripts = readdirSync(dir).filter((f) => f.endsWith('.sh')).sort();
  return [
    { path: installerFile('registry-seed.txt'), url: 'kube-bundle:generated', bytes: Buffer.from(seedPlan(images)) },
    ...scripts.map((name) => ({ path: installerFile(name), url: `kube-bundle:scripts/host/${name}`, bytes: readFileSync(join(dir, name)) })),
  ];
}
