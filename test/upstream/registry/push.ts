/**
 * Pushes generated images into a distribution registry over its HTTP API (no auth): each blob with a monolithic
 * upload (POST to open an upload, one PUT with the whole body and the digest), then every child manifest by
 * digest (a registry refuses an index whose children are missing), then the index by digest and by tag.
 */
import type { Content, GeneratedImage } from '../images.js';

/** Push `image` into `registryUrl` under repository `repository` (which may differ from the image's own name). */
export async function pushImage(registryUrl: string, repository: string, image: GeneratedImage): Promise<void> {
  for (const blob of image.blobs) await pushBlob(registryUrl, repository, blob);
  for (const child of image.children) await putManifest(registryUrl, repository, child.digest, child);
  await putManifest(registryUrl, repository, image.index.digest, image.index);
  await putManifest(registryUrl, repository, image.tag, image.index);
}

async function pushBlob(registryUrl: string, repository: string, blob: Content): Promise<void> {
  const blobUrl = `${registryUrl}/v2/${repository}/blobs/${blob.digest}`;
  const existing = await fetch(blobUrl, { method: 'HEAD' });
  if (existing.status === 200) return;

  const startUrl = `${registryUrl}/v2/${repository}/blobs/uploads/`;
  const started = await expectStatus(await fetch(startUrl, { method: 'POST' }), 202, `POST ${startUrl}`);
  const location = started.headers.get('location');
  if (!location) throw new Error(`POST ${startUrl}: 202 without a Location header`);
  const uploadUrl = new URL(location, registryUrl);
  uploadUrl.searchParams.set('digest', blob.digest);
  const finished = await fetch(uploadUrl, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: new Uint8Array(blob.bytes),
  });
  await expectStatus(finished, 201, `PUT ${uploadUrl.origin}${uploadUrl.pathname} (blob ${blob.digest})`);
}

async function putManifest(registryUrl: string, repository: string, reference: string, manifest: Content): Promise<void> {
  const url = `${registryUrl}/v2/${repository}/manifests/${reference}`;
  const response = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': manifest.mediaType },
    body: new Uint8Array(manifest.bytes),
  });
  await expectStatus(response, 201, `PUT ${url} (${manifest.mediaType})`);
}

async function expectStatus(response: Response, status: number, what: string): Promise<Response> {
  if (response.status === status) {
    await response.body?.cancel();
    return response;
  }
  const body = await response.text();
  throw new Error(`${what}: expected HTTP ${status}, got ${response.status}: ${body.slice(0, 500)}`);
}
