/**
 * One OCI image layout (image-spec image-layout.md) holding every image of a bundle:
 *
 *   oci-layout            {"imageLayoutVersion":"1.0.0"}
 *   index.json            one descriptor per image: its top-level index/manifest as upstream serves it
 *   blobs/sha256/<hex>    every manifest, config and layer, each stored once however many images share it
 *
 * Each index.json entry is annotated with the full upstream reference twice: `io.containerd.image.name`
 * (what `ctr images import` names the image by) and `org.opencontainers.image.ref.name` (what
 * `skopeo … oci:<dir>:<ref>` looks up).
 *
 * Docker-typed images (a manifest list or a schema 2 manifest, e.g. registry.k8s.io/pause:3.10) keep their
 * upstream bytes and media type, so their digest stays upstream's. But skopeo (containers/image) skips
 * index.json entries that are not of an OCI type, so such an image also gets an "alias": a small OCI index
 * listing the same platform manifests, annotated with ref.name and `io.kube-bundle.alias-of` (no
 * io.containerd.image.name), placed right BEFORE the original entry. skopeo finds the alias. `ctr images
 * import` names the alias by its ref.name too, but creates images in index.json order, so the original entry,
 * coming later, is what the name ends up pointing at. Tools reading index.json themselves should skip entries
 * carrying `io.kube-bundle.alias-of`. The alias adds one small blob; the platform manifests are shared.
 *
 * Only the selected platforms' content is present: import with a platform (ctr's default), not --all-platforms.
 *
 * The layout is first described as a list of entries whose content is either a cache file or bytes, so the
 * bundle packer can stream blobs from the cache into its tar without copying them; `writeLayoutDir` writes
 * the same entries as a directory. Output is deterministic: images sorted by reference, blobs by digest.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../util/errors.js';
import type { BlobCache } from '../cache.js';
import { OCI_INDEX, OCI_MANIFEST } from './media-types.js';
import type { PulledImage } from './registry.js';
import { digestHex, sha256Of } from '../../util/digest.js';

export type LayoutSource = { file: string } | { bytes: Uint8Array };

export interface LayoutEntry {
  /** Relative path inside the layout, '/'-separated, e.g. "blobs/sha256/<hex>". */
  path: string;
  size: number;
  source: LayoutSource;
}

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';
/** On an alias entry: the digest of the upstream document it stands for. */
export const ALIAS_OF_ANNOTATION = 'io.kube-bundle.alias-of';

/**
 * The layout for these images, every blob read from `cache`. `inBase` (a differential bundle's): references whose
 * top-level document the base bundle holds, and so also their alias, which is made from the same bytes; their
 * index.json entries stay, their alias blob is left to the base like the rest.
 */
export function buildLayout(images: PulledImage[], cache: BlobCache, inBase: ReadonlySet<string> = new Set()): LayoutEntry[] {
  const byReference = uniqueByReference(images);
  const references = [...byReference.keys()].sort();
  const blobs = new Map<string, LayoutEntry>();
  for (const blob of images.flatMap((image) => image.blobs)) {
    const hex = digestHex(blob.digest);
    addBlob(blobs, blobEntry(hex, blob.size, { file: cache.blobPath(hex) }));
  }

  const manifests = references.flatMap((reference) => {
    const image = byReference.get(reference) as PulledImage;
    const { mediaType, digest, size } = image.descriptor;
    const original = { mediaType, digest, size, annotations: { [CONTAINERD_NAME_ANNOTATION]: reference, [REF_NAME_ANNOTATION]: reference } };
    if (mediaType === OCI_INDEX || mediaType === OCI_MANIFEST) return [original];
    const alias = jsonBytes({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: image.manifests });
    const aliasHex = sha256Of(alias);
    if (!inBase.has(reference)) addBlob(blobs, blobEntry(aliasHex, alias.length, { bytes: alias }));
    const annotations = { [ALIAS_OF_ANNOTATION]: digest, [REF_NAME_ANNOTATION]: reference };
    return [{ mediaType: OCI_INDEX, digest: `sha256:${aliasHex}`, size: alias.length, annotations }, original];
  });
  const index = jsonBytes({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });

  const sortedBlobs = [...blobs.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const layoutHeader = jsonBytes({ imageLayoutVersion: '1.0.0' });
  return [
    { path: 'oci-layout', size: layoutHeader.length, source: { bytes: layoutHeader } },
    { path: 'index.json', size: index.length, source: { bytes: index } },
    ...sortedBlobs,
  ];
}

/** Write the entries as a directory (created if needed; files of the same name are replaced). */
export async function writeLayoutDir(entries: LayoutEntry[], dir: string): Promise<void> {
  for (const entry of entries) {
    const target = path.join(dir, ...entry.path.split('/'));
    await mkdir(path.dirname(target), { recursive: true });
    if ('file' in entry.source) await copyFile(entry.source.file, target);
    else await writeFile(target, entry.source.bytes);
  }
}

function blobEntry(hex: string, size: number, source: LayoutSource): LayoutEntry {
  return { path: `blobs/sha256/${hex}`, size, source };
}

function addBlob(blobs: Map<string, LayoutEntry>, entry: LayoutEntry): void {
  if (!blobs.has(entry.path)) blobs.set(entry.path, entry);
}

function jsonBytes(document: unknown): Buffer {
  return Buffer.from(JSON.stringify(document), 'utf8');
}

/** One image per reference; the same reference twice is fine only if it resolved to the same content. */
function uniqueByReference(images: PulledImage[]): Map<string, PulledImage> {
  const byReference = new Map<string, PulledImage>();
  for (const image of images) {
    const seen = byReference.get(image.reference);
    if (seen && seen.descriptor.digest !== image.descriptor.digest) {
      throw new UserError(`${image.reference} resolved to two different images (${seen.descriptor.digest}, ${image.descriptor.digest}) in one build`);
    }
    byReference.set(image.reference, image);
  }
  return byReference;
}
