/**
 * A linux/amd64 image whose one layer is a real tar holding one file of `payloadBytes` incompressible bytes, pushed
 * into a distribution registry over its HTTP API without ever being held in memory or written to a local file: the
 * layer streams out of an AES-CTR keystream in a chunked PATCH upload while it is hashed, and the digest closes the
 * upload afterwards. Pushed either as a single-platform manifest under the tag (`pushBigImage`) or, as most real
 * images are, as an OCI index with that one amd64 child under the tag (`pushIndexedImage`).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { request } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { encodeHeader, endOfArchive, paddingFor } from '../../../src/core/bundle/tar.js';
import { OCI_INDEX, OCI_MANIFEST } from '../../../src/core/oci/media-types.js';

const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
const CHUNK = 1 << 20;

export interface BigImage {
  layerDigest: string;
  layerBytes: number;
}

/** Push the image as `<repository>:<tag>` into `registryUrl` (no auth, e.g. the simulated upstreams' backend). */
export async function pushBigImage(registryUrl: string, repository: string, tag: string, payloadBytes: number): Promise<BigImage> {
  const image = await pushPlatformImage(registryUrl, repository, payloadBytes);
  await putManifest(registryUrl, repository, tag, OCI_MANIFEST, image.manifest);
  return { layerDigest: image.layerDigest, layerBytes: image.layerBytes };
}

/**
 * Push the image as an OCI index under `<repository>:<tag>` whose one child (linux/amd64) is pushed by digest.
 * The payload is seeded by repository and tag, so that images of equal size still share no bytes.
 */
export async function pushIndexedImage(registryUrl: string, repository: string, tag: string, payloadBytes: number): Promise<BigImage> {
  const image = await pushPlatformImage(registryUrl, repository, payloadBytes, `${repository}:${tag}`);
  const childDigest = sha256Digest(image.manifest);
  await putManifest(registryUrl, repository, childDigest, OCI_MANIFEST, image.manifest);
  const index = jsonBytes({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ mediaType: OCI_MANIFEST, digest: childDigest, size: image.manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
  });
  await putManifest(registryUrl, repository, tag, OCI_INDEX, index);
  return { layerDigest: image.layerDigest, layerBytes: image.layerBytes };
}

/** Layer and config pushed; the manifest's bytes returned for the caller to put under a tag or digest. */
async function pushPlatformImage(registryUrl: string, repository: string, payloadBytes: number, seed = ''): Promise<BigImage & { manifest: Buffer }> {
  const layer = await uploadStreamed(registryUrl, repository, bigLayer(payloadBytes, seed));
  const config = jsonBytes({
    architecture: 'amd64',
    os: 'linux',
    config: {},
    // an uncompressed layer's diff_id is its own digest
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  });
  const configDigest = await uploadMonolithic(registryUrl, repository, config);
  const manifest = jsonBytes({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
    layers: [{ mediaType: OCI_LAYER_TAR, digest: layer.digest, size: layer.size }],
  });
  return { layerDigest: layer.digest, layerBytes: layer.size, manifest };
}

async function putManifest(registryUrl: string, repository: string, reference: string, mediaType: string, bytes: Buffer): Promise<void> {
  await expectStatus(
    await fetch(`${registryUrl}/v2/${repository}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body: new Uint8Array(bytes) }),
    201,
    `PUT manifest ${repository}:${reference} to ${registryUrl}`,
  );
}

/** The layer's bytes: ustar header, the payload (an AES-CTR keystream keyed by `seed`: incompressible), padding, end. */
async function* bigLayer(payloadBytes: number, seed: string): AsyncGenerator<Buffer> {
  yield encodeHeader({ path: 'big.bin', type: 'file', size: payloadBytes, mode: 0o644, mtime: new Date('2025-01-01T00:00:00Z') });
  // the empty seed keeps the 1 GiB image's historical key (and so its digest)
  const key = seed === '' ? Buffer.alloc(16, 1) : createHash('sha256').update(seed).digest().subarray(0, 16);
  const keystream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(CHUNK);
  for (let left = payloadBytes; left > 0; left -= CHUNK) {
    yield keystream.update(left >= CHUNK ? zeros : zeros.subarray(0, left));
  }
  yield Buffer.alloc(paddingFor(payloadBytes));
  yield endOfArchive();
}

/** POST to open an upload, one chunked PATCH with the whole stream, PUT with the digest to commit it. */
async function uploadStreamed(registryUrl: string, repository: string, source: AsyncIterable<Buffer>): Promise<{ digest: string; size: number }> {
  const opened = await openUpload(registryUrl, repository);
  const hash = createHash('sha256');
  let size = 0;
  const counted = async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      hash.update(chunk);
      size += chunk.length;
      yield chunk;
    }
  };
  const next = await patchStream(opened, counted());
  const digest = `sha256:${hash.digest('hex')}`;
  await commitUpload(registryUrl, next, digest, undefined);
  return { digest, size };
}

async function uploadMonolithic(registryUrl: string, repository: string, bytes: Buffer): Promise<string> {
  const digest = sha256Digest(bytes);
  await commitUpload(registryUrl, await openUpload(registryUrl, repository), digest, bytes);
  return digest;
}

async function openUpload(registryUrl: string, repository: string): Promise<URL> {
  const url = `${registryUrl}/v2/${repository}/blobs/uploads/`;
  const res = await expectStatus(await fetch(url, { method: 'POST' }), 202, `POST ${url}`);
  return locationOf(res.headers.get('location'), registryUrl, `POST ${url}`);
}

/** The PATCH body is streamed with backpressure (node:http, not fetch, which would want a web stream). */
function patchStream(uploadUrl: URL, body: AsyncIterable<Buffer>): Promise<URL> {
  return new Promise((resolve, reject) => {
    const req = request(uploadUrl, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      res.resume();
      const what = `PATCH ${uploadUrl.origin}${uploadUrl.pathname}`;
      if (res.statusCode !== 202) return reject(new Error(`${what}: expected HTTP 202, got ${res.statusCode}`));
      try {
        resolve(locationOf(res.headers.location ?? null, uploadUrl.origin, what));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
    pipeline(body, req).catch(reject);
  });
}

async function commitUpload(registryUrl: string, uploadUrl: URL, digest: string, body: Buffer | undefined): Promise<void> {
  const url = new URL(uploadUrl);
  url.searchParams.set('digest', digest);
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(body ?? Buffer.alloc(0)) });
  await expectStatus(res, 201, `PUT ${url.origin}${url.pathname} (blob ${digest}) to ${registryUrl}`);
}

function locationOf(location: string | null, base: string, what: string): URL {
  if (!location) throw new Error(`${what}: answer without a Location header`);
  return new URL(location, base);
}

function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function jsonBytes(doc: object): Buffer {
  return Buffer.from(JSON.stringify(doc));
}

async function expectStatus(res: Response, status: number, what: string): Promise<Response> {
  if (res.status === status) {
    await res.body?.cancel();
    return res;
  }
  throw new Error(`${what}: expected HTTP ${status}, got ${res.status}: ${(await res.text()).slice(0, 500)}`);
}
