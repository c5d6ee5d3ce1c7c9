/**
 * Small, real, deterministic test images under the exact upstream names and tags kubeadm v1.32.3 and flannel
 * v0.26.5 use, in the same mix of formats as upstream (reference sheet §3, §4):
 *
 * - kube-*: Docker manifest list, Docker v2s2 children, gzip layers (`docker manifest create` style, 3-space JSON).
 * - pause: Docker manifest list whose children have one UNCOMPRESSED layer (`…rootfs.diff.tar`), a real quirk.
 * - etcd, coredns: OCI index with OCI manifests, gzip layers.
 * - flannel, flannel-cni-plugin, docker.io busybox: buildx-style OCI index, arm64 with variant v8, plus one
 *   attestation manifest per platform (platform unknown/unknown, `vnd.docker.reference.type: attestation-manifest`).
 *
 * Layers: every image except pause starts with a base layer shared across images of the same architecture, as
 * real images share base layers. The amd64 base carries a static busybox (/bin/busybox, /bin/sh) from Debian's
 * busybox-static; the arm64 base holds text files only (an arm64 busybox would need a foreign dpkg architecture on
 * this machine). Each child then has a tiny layer with /etc/image-name naming the reference and platform.
 *
 * Same bytes every run: tar headers are fixed (tar.ts), JSON key order is fixed, and each gzip output is cached by
 * the digest of its input, so digests stay stable even if zlib changes.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { TEST_CACHE_DIR, unpackedDebianPackage } from './registry/debian-package.js';
import { createTar, FIXED_MTIME, type TarEntry } from './registry/tar.js';

export type UpstreamName = 'registry.k8s.io' | 'ghcr.io' | 'docker.io';
export const UPSTREAM_NAMES: readonly UpstreamName[] = ['registry.k8s.io', 'ghcr.io', 'docker.io'];

export const MEDIA_TYPES = {
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerTar: 'application/vnd.docker.image.rootfs.diff.tar',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  inToto: 'application/vnd.in-toto+json',
} as const;

export interface UpstreamImage {
  /** Full reference as users write it, e.g. registry.k8s.io/pause:3.10 */
  ref: string;
  /** Digest of the index / manifest list the tag points to. */
  indexDigest: string;
  /** Media type of that index / manifest list. */
  mediaType: string;
  /** Runnable platforms in the index, e.g. ["linux/amd64", "linux/arm64/v8"]; attestations are not listed. */
  platforms: string[];
}

/** A content-addressed blob or manifest, with its exact bytes. */
export interface Content {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

/** Everything needed to push one image: blobs, then child manifests, then the index under `tag`. */
export interface GeneratedImage extends UpstreamImage {
  registry: UpstreamName;
  repository: string;
  tag: string;
  /** an image of an upgrade release (see IMAGE_SPECS) */
  upgrade: boolean;
  blobs: Content[];
  /** Image and attestation manifests, in push order. */
  children: Content[];
  index: Content;
}

type ImageFormat = 'docker-list' | 'docker-list-uncompressed' | 'oci-index' | 'oci-index-attested';

interface ImageSpec {
  registry: UpstreamName;
  repository: string;
  tag: string;
  format: ImageFormat;
  /** held only by registries started with `upgrades` */
  upgrade?: boolean;
}

const IMAGE_SPECS: readonly ImageSpec[] = [
  { registry: 'registry.k8s.io', repository: 'kube-apiserver', tag: 'v1.32.3', format: 'docker-list' },
  { registry: 'registry.k8s.io', repository: 'kube-controller-manager', tag: 'v1.32.3', format: 'docker-list' },
  { registry: 'registry.k8s.io', repository: 'kube-scheduler', tag: 'v1.32.3', format: 'docker-list' },
  { registry: 'registry.k8s.io', repository: 'kube-proxy', tag: 'v1.32.3', format: 'docker-list' },
  { registry: 'registry.k8s.io', repository: 'coredns/coredns', tag: 'v1.11.3', format: 'oci-index' },
  { registry: 'registry.k8s.io', repository: 'pause', tag: '3.10', format: 'docker-list-uncompressed' },
  { registry: 'registry.k8s.io', repository: 'etcd', tag: '3.5.16-0', format: 'oci-index' },
  { registry: 'ghcr.io', repository: 'flannel-io/flannel', tag: 'v0.26.5', format: 'oci-index-attested' },
  { registry: 'ghcr.io', repository: 'flannel-io/flannel-cni-plugin', tag: 'v1.6.2-flannel1', format: 'oci-index-attested' },
  { registry: 'docker.io', repository: 'library/busybox', tag: '1.36', format: 'oci-index-attested' },
  // The upgrade releases (debs.ts UPGRADE_RELEASES). Their images share the base layers above, as a real release's
  // images share base layers with the previous one's; each has its own name layer, config and manifests.
  // kubeadm v1.32.4 lists the same coredns/etcd/pause as v1.32.3 (patches 0-9); kubeadm v1.33.1 lists coredns
  // v1.12.0, etcd 3.5.21-0 and pause 3.10 (bundles/control-plane-images.yaml, 1.33 patches 0-5, and the reference
  // sheet upstream-formats.md, "K8s patches | coredns | etcd | pause"); kubeadm v1.34.1 coredns v1.12.1, etcd
  // 3.6.4-0 and pause 3.10.1 (1.34 patches 0-1).
  ...['v1.32.4', 'v1.33.1', 'v1.34.1'].flatMap((tag) =>
    ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy'].map((repository): ImageSpec => ({ registry: 'registry.k8s.io', repository, tag, format: 'docker-list', upgrade: true })),
  ),
  { registry: 'registry.k8s.io', repository: 'coredns/coredns', tag: 'v1.12.0', format: 'oci-index', upgrade: true },
  { registry: 'registry.k8s.io', repository: 'etcd', tag: '3.5.21-0', format: 'oci-index', upgrade: true },
  { registry: 'registry.k8s.io', repository: 'coredns/coredns', tag: 'v1.12.1', format: 'oci-index', upgrade: true },
  { registry: 'registry.k8s.io', repository: 'etcd', tag: '3.6.4-0', format: 'oci-index', upgrade: true },
  { registry: 'registry.k8s.io', repository: 'pause', tag: '3.10.1', format: 'docker-list-uncompressed', upgrade: true },
];

interface Platform {
  architecture: 'amd64' | 'arm64';
  os: 'linux';
  variant?: 'v8';
}

const CREATED = new Date(FIXED_MTIME * 1000).toISOString();

interface BuildContext {
  cacheDir: string;
  busybox: Buffer;
  /** Base layer tar per architecture, built once and shared by every image. */
  baseLayers: Map<Platform['architecture'], Buffer>;
}

const generated = new Map<string, Promise<GeneratedImage[]>>();

/**
 * The test images with their bytes (with `upgrades`, the upgrade releases' too); generated once per process and
 * cache directory.
 */
export async function generateUpstreamImages(cacheDir: string = TEST_CACHE_DIR, { upgrades = false }: { upgrades?: boolean } = {}): Promise<GeneratedImage[]> {
  let images = generated.get(cacheDir);
  if (!images) {
    images = buildAll(cacheDir);
    generated.set(cacheDir, images);
  }
  return (await images).filter((image) => upgrades || !image.upgrade);
}

/** Public catalogue of what the simulated upstreams serve, digests computed at generation. */
export const UPSTREAM_IMAGES: readonly UpstreamImage[] = (await generateUpstreamImages()).map(catalogueEntry);

export function catalogueEntry(image: GeneratedImage): UpstreamImage {
  return { ref: image.ref, indexDigest: image.indexDigest, mediaType: image.mediaType, platforms: image.platforms };
}

async function buildAll(cacheDir: string): Promise<GeneratedImage[]> {
  const busyboxRoot = await unpackedDebianPackage('busybox-static', cacheDir);
  const busybox = await readFile(join(busyboxRoot, 'bin/busybox'));
  const context: BuildContext = { cacheDir, busybox, baseLayers: new Map() };
  const images: GeneratedImage[] = [];
  for (const spec of IMAGE_SPECS) images.push(await buildImage(spec, context));
  return images;
}

async function buildImage(spec: ImageSpec, context: BuildContext): Promise<GeneratedImage> {
  const ref = `${spec.registry}/${spec.repository}:${spec.tag}`;
  const buildx = spec.format === 'oci-index-attested';
  const platforms: Platform[] = [
    { architecture: 'amd64', os: 'linux' },
    buildx ? { architecture: 'arm64', os: 'linux', variant: 'v8' } : { architecture: 'arm64', os: 'linux' },
  ];
  const blobs: Content[] = [];
  const children: Content[] = [];
  const entries: IndexEntry[] = [];
  for (const platform of platforms) {
    const child = await buildPlatformManifest(spec, ref, platform, context);
    blobs.push(...child.blobs);
    children.push(child.manifest);
    entries.push({ content: child.manifest, platform });
  }
  if (buildx) {
    for (const subject of [...entries]) {
      const attestation = buildAttestation(ref, subject);
      blobs.push(...attestation.blobs);
      children.push(attestation.manifest);
      entries.push(attestation.entry);
    }
  }
  const index = buildIndex(spec.format, entries);
  return {
    ref,
    indexDigest: index.digest,
    mediaType: index.mediaType,
    platforms: platforms.map(platformString),
    registry: spec.registry,
    repository: spec.repository,
    tag: spec.tag,
    upgrade: spec.upgrade ?? false,
    blobs: uniqueByDigest(blobs),
    children,
    index,
  };
}

interface PlatformManifest {
  manifest: Content;
  blobs: Content[];
}

async function buildPlatformManifest(
  spec: ImageSpec,
  ref: string,
  platform: Platform,
  context: BuildContext,
): Promise<PlatformManifest> {
  const docker = isDockerFormat(spec.format);
  const withBase = spec.format !== 'docker-list-uncompressed'; // pause: only its own small layer
  const nameLayerTar = createTar(imageNameEntries(ref, platform));
  const layerTars = withBase ? [baseLayerTar(platform, context), nameLayerTar] : [nameLayerTar];
  const layers = await Promise.all(layerTars.map((tar) => layerContent(spec.format, tar, context)));
  const hasShell = withBase && platform.architecture === 'amd64';
  const config = content(
    docker ? MEDIA_TYPES.dockerConfig : MEDIA_TYPES.ociConfig,
    json(imageConfig(platform, layerTars.map(sha256Digest), hasShell)),
  );
  const manifestDocument = {
    schemaVersion: 2,
    mediaType: docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest,
    config: descriptor(config),
    layers: layers.map(descriptor),
  };
  const manifest = docker
    ? content(MEDIA_TYPES.dockerManifest, dockerJson(manifestDocument))
    : content(MEDIA_TYPES.ociManifest, json(manifestDocument));
  return { manifest, blobs: [config, ...layers] };
}

async function layerContent(format: ImageFormat, tar: Buffer, context: BuildContext): Promise<Content> {
  switch (format) {
    case 'docker-list-uncompressed':
      return content(MEDIA_TYPES.dockerLayerTar, tar);
    case 'docker-list':
      return content(MEDIA_TYPES.dockerLayerGzip, await gzipCached(tar, context));
    case 'oci-index':
    case 'oci-index-attested':
      return content(MEDIA_TYPES.ociLayerGzip, await gzipCached(tar, context));
  }
}

/** The per-architecture base layer shared by all images of that architecture (see the file comment). */
function baseLayerTar(platform: Platform, context: BuildContext): Buffer {
  let tar = context.baseLayers.get(platform.architecture);
  if (!tar) {
    tar = createTar(baseLayerEntries(platform, context.busybox));
    context.baseLayers.set(platform.architecture, tar);
  }
  return tar;
}

function baseLayerEntries(platform: Platform, busybox: Buffer): TarEntry[] {
  const release = `kube-bundle test base layer for linux/${platform.architecture}\n`;
  const entries: TarEntry[] = [
    { type: 'dir', path: 'bin', mode: 0o755 },
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'file', path: 'etc/base-release', mode: 0o644, content: Buffer.from(release) },
  ];
  if (platform.architecture === 'amd64') {
    entries.push(
      { type: 'file', path: 'bin/busybox', mode: 0o755, content: busybox },
      { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    );
  }
  return entries;
}

function imageNameEntries(ref: string, platform: Platform): TarEntry[] {
  return [
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'file', path: 'etc/image-name', mode: 0o644, content: Buffer.from(`${ref} ${platformString(platform)}\n`) },
  ];
}

function imageConfig(platform: Platform, diffIds: string[], hasShell: boolean): object {
  return {
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    created: CREATED,
    config: {
      Env: ['PATH=/bin'],
      ...(hasShell ? { Cmd: ['/bin/sh'] } : {}),
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
}

interface IndexEntry {
  content: Content;
  platform: Platform | { architecture: 'unknown'; os: 'unknown' };
  annotations?: Record<string, string>;
}

/** A buildx-style provenance attestation for one platform manifest. */
function buildAttestation(ref: string, subject: IndexEntry): { manifest: Content; blobs: Content[]; entry: IndexEntry } {
  const statement = content(
    MEDIA_TYPES.inToto,
    json({
      _type: 'https://in-toto.io/Statement/v0.1',
      predicateType: 'https://slsa.dev/provenance/v0.2',
      subject: [{ name: `pkg:docker/${ref}`, digest: { sha256: subject.content.digest.slice('sha256:'.length) } }],
      predicate: { buildType: 'https://mobyproject.org/buildkit@v1', builder: { id: '' } },
    }),
  );
  const config = content(
    MEDIA_TYPES.ociConfig,
    json({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [statement.digest] } }),
  );
  const layer = { ...descriptor(statement), annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' } };
  const manifest = content(
    MEDIA_TYPES.ociManifest,
    json({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: descriptor(config), layers: [layer] }),
  );
  const entry: IndexEntry = {
    content: manifest,
    platform: { architecture: 'unknown', os: 'unknown' },
    annotations: {
      'vnd.docker.reference.digest': subject.content.digest,
      'vnd.docker.reference.type': 'attestation-manifest',
    },
  };
  return { manifest, blobs: [config, statement], entry };
}

function buildIndex(format: ImageFormat, entries: IndexEntry[]): Content {
  const docker = isDockerFormat(format);
  const mediaType = docker ? MEDIA_TYPES.dockerList : MEDIA_TYPES.ociIndex;
  const document = {
    schemaVersion: 2,
    mediaType,
    manifests: entries.map((entry) => ({
      ...descriptor(entry.content),
      ...(entry.annotations ? { annotations: entry.annotations } : {}),
      platform: entry.platform,
    })),
  };
  return content(mediaType, docker ? dockerJson(document) : json(document));
}

function isDockerFormat(format: ImageFormat): boolean {
  return format === 'docker-list' || format === 'docker-list-uncompressed';
}

function platformString(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

function content(mediaType: string, bytes: Buffer): Content {
  return { digest: sha256Digest(bytes), mediaType, bytes };
}

function descriptor(item: Content): { mediaType: string; size: number; digest: string } {
  return { mediaType: item.mediaType, size: item.bytes.length, digest: item.digest };
}

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** `docker manifest push` writes indented JSON (3 spaces); keep it, since clients must not re-serialise. */
function dockerJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 3));
}

function uniqueByDigest(items: Content[]): Content[] {
  return [...new Map(items.map((item) => [item.digest, item])).values()];
}

/**
 * gzip, remembered on disk by the digest of the input: reruns skip compressing busybox and, more importantly,
 * always get the same compressed bytes (and so the same layer digests) for the same input.
 */
async function gzipCached(input: Buffer, context: BuildContext): Promise<Buffer> {
  const dir = join(context.cacheDir, 'images', 'gzip');
  const path = join(dir, `${sha256Digest(input).slice('sha256:'.length)}.gz`);
  if (existsSync(path)) return readFile(path);
  const output = gzipSync(input, { level: 9 });
  await mkdir(dir, { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, output);
  await rename(temporary, path);
  return output;
}
