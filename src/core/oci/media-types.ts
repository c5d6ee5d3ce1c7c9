/**
 * Manifest and layer media types, and typed views of the manifest JSON we rely on.
 * Docker schema 2 and OCI are handled alike: same shapes, different names. Schema 1 is refused.
 */
import { UserError } from '../../util/errors.js';
import { SHA256_DIGEST } from '../../util/digest.js';

export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Every manifest type we accept, for the Accept header (ghcr.io refuses an OCI index if it is missing). */
export const MANIFEST_ACCEPT = [OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(', ');

/** Layers the registry does not serve: their bytes live at `urls` (Windows base layers). */
const FOREIGN_LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  urls?: string[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
}

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

export function isIndexType(mediaType: string): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}

export function isForeignLayer(layer: Descriptor): boolean {
  return FOREIGN_LAYER_TYPES.has(layer.mediaType);
}

/**
 * Parse manifest bytes. The media type comes from the document itself (sniffed when an OCI document leaves it
 * out), never from a Content-Type header, so a cold and a warm build describe the same bytes the same way.
 */
export function parseManifest(bytes: Uint8Array, where: string): ImageIndex | ImageManifest {
  const doc = parseJsonObject(bytes, where);
  if (doc.schemaVersion !== 2) {
    throw new UserError(`${where}: manifest schemaVersion ${String(doc.schemaVersion)} is not supported (only schema 2 / OCI)`);
  }
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (Array.isArray(doc.manifests)) {
    return { kind: 'index', mediaType: declared ?? OCI_INDEX, manifests: doc.manifests.map((d, i) => descriptor(d, `${where} manifests[${i}]`)) };
  }
  if (Array.isArray(doc.layers) && doc.config !== undefined) {
    return {
      kind: 'manifest',
      mediaType: declared ?? OCI_MANIFEST,
      config: descriptor(doc.config, `${where} config`),
      layers: doc.layers.map((d, i) => descriptor(d, `${where} layers[${i}]`)),
    };
  }
  throw new UserError(`${where}: not an image manifest or index (${declared ?? 'no mediaType'})`);
}

function parseJsonObject(bytes: Uint8Array, where: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new UserError(`${where}: manifest is not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new UserError(`${where}: manifest is not a JSON object`);
  return doc as Record<string, unknown>;
}

function descriptor(value: unknown, where: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  if (typeof d?.mediaType !== 'string' || typeof d.digest !== 'string' || typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new UserError(`${where}: descriptor lacks a mediaType, digest or size`);
  }
  if (!SHA256_DIGEST.test(d.digest)) throw new UserError(`${where}: unsupported digest '${d.digest}' (only sha256)`);
  const result: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.platform) result.platform = d.platform;
  if (Array.isArray(d.urls) && d.urls.length > 0) result.urls = d.urls;
  if (d.annotations) result.annotations = d.annotations;
  return result;
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** Parse "linux/arm64" or "linux/arm/v7". */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, ...rest] = text.split('/');
  if (!os || !architecture || rest.length > 0) throw new UserError(`invalid platform '${text}': write it like linux/amd64`);
  return variant ? { os, architecture, variant } : { os, architecture };
}
