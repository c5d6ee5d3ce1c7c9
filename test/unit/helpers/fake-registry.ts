/**
 * In-test HTTP servers: a logging server, a Range-aware byte server, and a small fake OCI registry with the
 * behaviours the client must cope with (token auth on another origin, blobs redirected to another origin,
 * ghcr's refusal of an OCI index without the right Accept, tampered content, attestation manifests).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { gzipSync } from 'node:zlib';

export interface LoggedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface TestServer {
  base: string;
  requests: LoggedRequest[];
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, requestNumber: number) => void;

export async function startHttpServer(handler: Handler): Promise<TestServer> {
  const requests: LoggedRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answer with `data`, honouring a `Range: bytes=N-` request with 206 + Content-Range. */
export function serveBytes(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer, headers: http.OutgoingHttpHeaders = {}): void {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  if (start > data.length) {
    res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
    return;
  }
  const body = data.subarray(start);
  const status = range ? 206 : 200;
  const rangeHeader = range ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {};
  res.writeHead(status, { 'content-length': body.length, ...rangeHeader, ...headers });
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

// ---- images ----

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

export interface FakeBlob {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface FakeImage {
  repository: string;
  tag: string;
  /** The top-level index or manifest. */
  top: FakeBlob;
  /** Every blob of the image, top-level included, attestation content included. */
  blobs: FakeBlob[];
  /** Digests that belong only to the attestation manifest, which a client must not fetch. */
  attestationDigests: string[];
}

export interface ImageSpec {
  repository: string;
  tag: string;
  /** "linux/amd64", "linux/arm64/v8", … Default: linux/amd64 and linux/arm64. */
  platforms?: string[];
  /** 'oci' (default): OCI index; 'docker': manifest list; 'single': one manifest, no index (first platform). */
  format?: 'oci' | 'docker' | 'single';
  attestation?: boolean;
  layerMediaType?: string;
  /** Extra layer descriptor fields, e.g. foreign layer urls. */
  layerExtra?: Record<string, unknown>;
  /** A layer every platform shares (to test de-duplication across images). */
  sharedLayer?: Buffer;
}

function blob(mediaType: string, bytes: Buffer): FakeBlob {
  return { digest: sha256(bytes), mediaType, bytes };
}

function json(document: unknown): Buffer {
  return Buffer.from(JSON.stringify(document));
}

function descriptorOf(b: FakeBlob, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { mediaType: b.mediaType, digest: b.digest, size: b.bytes.length, ...extra };
}

export function buildImage(spec: ImageSpec): FakeImage {
  const format = spec.format ?? 'oci';
  const docker = format === 'docker';
  const manifestType = docker ? DOCKER_MANIFEST : OCI_MANIFEST;
  const configType = docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json';
  const layerType = spec.layerMediaType ?? (docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip');
  const platforms = (spec.platforms ?? ['linux/amd64', 'linux/arm64']).slice(0, format === 'single' ? 1 : undefined);

  const blobs: FakeBlob[] = [];
  const children = platforms.map((text) => {
    const [os = 'linux', architecture = 'amd64', variant] = text.split('/');
    const layer = blob(layerType, gzipSync(Buffer.from(`${spec.repository}:${spec.tag} ${text} layer\n`.repeat(50))));
    const layers = spec.sharedLayer ? [blob(layerType, spec.sharedLayer), layer] : [layer];
    const config = blob(configType, json({ architecture, os, ...(variant ? { variant } : {}), created: '2025-01-01T00:00:00Z', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {} }));
    const manifest = blob(manifestType, json({ schemaVersion: 2, mediaType: manifestType, config: descriptorOf(config), layers: layers.map((l) => descriptorOf(l, spec.layerExtra)) }));
    blobs.push(manifest, config, ...layers);
    return { manifest, platform: { architecture, os, ...(variant ? { variant } : {}) } };
  });

  if (format === 'single') {
    const only = children[0]?.manifest as FakeBlob;
    return { repository: spec.repository, tag: spec.tag, top: only, blobs, attestationDigests: [] };
  }

  const entries = children.map((c) => descriptorOf(c.manifest, { platform: c.platform }));
  const attestationDigests: string[] = [];
  if (spec.attestation) {
    const statement = blob('application/vnd.in-toto+json', json({ _type: 'https://in-toto.io/Statement/v0.1' }));
    const config = blob('application/vnd.oci.image.config.v1+json', json({ architecture: 'unknown', os: 'unknown' }));
    const manifest = blob(OCI_MANIFEST, json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptorOf(config), layers: [descriptorOf(statement)] }));
    blobs.push(manifest, config, statement);
    attestationDigests.push(manifest.digest, config.digest, statement.digest);
    const first = children[0]?.manifest.digest ?? '';
    entries.push(
      descriptorOf(manifest, {
        platform: { architecture: 'unknown', os: 'unknown' },
        annotations: { 'vnd.docker.reference.digest': first, 'vnd.docker.reference.type': 'attestation-manifest' },
      }),
    );
  }
  const indexType = docker ? DOCKER_LIST : OCI_INDEX;
  const top = blob(indexType, json({ schemaVersion: 2, mediaType: indexType, manifests: entries }));
  blobs.unshift(top);
  return { repository: spec.repository, tag: spec.tag, top, blobs, attestationDigests };
}

// ---- registry ----

export interface FakeRegistryOptions {
  images: FakeImage[];
  /** Demand a Bearer token, issued by a token server on another origin. */
  requireToken?: boolean;
  /** Demand Basic auth (which the client does not support). */
  requireBasic?: boolean;
  /** The token server issues tokens the registry then rejects. */
  rejectTokens?: boolean;
  /** Answer blob GETs with 307 to a blob server on another origin (like registry.k8s.io → S3). */
  redirectBlobs?: boolean;
  /** digest → bytes served instead of the real content (headers still announce the real digest). */
  tamper?: Record<string, Buffer>;
}

export interface FakeRegistry {
  base: string;
  registry: TestServer;
  tokenServer: TestServer;
  blobServer: TestServer;
  /** Every token request's scope. */
  tokenScopes: string[];
  close(): Promise<void>;
}

const MANIFEST_PATH = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const BLOB_PATH = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/;

export async function startFakeRegistry(options: FakeRegistryOptions): Promise<FakeRegistry> {
  const tokenScopes: string[] = [];
  const issued = new Map<string, string>();
  const content = new Map<string, FakeBlob>();
  for (const image of options.images) for (const b of image.blobs) content.set(b.digest, b);
  const bodyOf = (b: FakeBlob): Buffer => options.tamper?.[b.digest] ?? b.bytes;

  const tokenServer = await startHttpServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scope = url.searchParams.get('scope') ?? '';
    tokenScopes.push(scope);
    const token = `tok-${tokenScopes.length}`;
    if (!options.rejectTokens) issued.set(token, scope);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
  });

  const blobServer = await startHttpServer((req, res) => {
    const digest = /^\/blob\/(sha256:[a-f0-9]{64})/.exec(req.url ?? '')?.[1];
    const found = digest ? content.get(digest) : undefined;
    if (!found) res.writeHead(404).end();
    else serveBytes(req, res, bodyOf(found));
  });

  const authorized = (req: http.IncomingMessage, repository: string): boolean => {
    if (options.requireBasic) return false;
    if (!options.requireToken) return true;
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    return token !== undefined && issued.get(token) === `repository:${repository}:pull`;
  };

  const registry = await startHttpServer((req, res) => {
    const path = req.url ?? '/';
    const manifest = MANIFEST_PATH.exec(path);
    const blobMatch = BLOB_PATH.exec(path);
    const repository = manifest?.[1] ?? blobMatch?.[1];
    if (!repository) {
      res.writeHead(404).end();
      return;
    }
    if (!authorized(req, repository)) {
      const challenge = options.requireBasic
        ? 'Basic realm="fake"'
        : `Bearer realm="${tokenServer.base}/token",service="fake-registry",scope="repository:${repository}:pull"`;
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    if (manifest) serveManifest(req, res, repository, manifest[2] ?? '');
    else serveBlob(req, res, blobMatch?.[2] ?? '');
  });

  function serveManifest(req: http.IncomingMessage, res: http.ServerResponse, repository: string, reference: string): void {
    const image = options.images.find((i) => i.repository === repository);
    const found = reference.startsWith('sha256:') ? (image ? content.get(reference) : undefined) : image?.tag === reference ? image.top : undefined;
    if (!found) {
      registryError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      return;
    }
    if (found.mediaType === OCI_INDEX && !(req.headers.accept ?? '').includes(OCI_INDEX)) {
      registryError(res, 404, 'MANIFEST_UNKNOWN', 'OCI index found, but Accept header does not support OCI indexes');
      return;
    }
    serveBytes(req, res, bodyOf(found), { 'content-type': found.mediaType, 'docker-content-digest': found.digest });
  }

  function serveBlob(req: http.IncomingMessage, res: http.ServerResponse, digest: string): void {
    const found = content.get(digest);
    if (!found) registryError(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry');
    else if (options.redirectBlobs) res.writeHead(307, { location: `${blobServer.base}/blob/${digest}?X-Amz-Signature=abc` }).end();
    else serveBytes(req, res, bodyOf(found));
  }

  return {
    base: registry.base,
    registry,
    tokenServer,
    blobServer,
    tokenScopes,
    close: async () => {
      await Promise.all([registry.close(), tokenServer.close(), blobServer.close()]);
    },
  };
}

function registryError(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code, message }] }));
}

/**
 * For a test file: a scratch directory and the HTTP servers its tests start, made before its tests and removed and
 * closed after them. Call at the file's top level.
 */
export function useHttpTestbed(prefix: string): { dir(): string; server(handler: Handler): Promise<TestServer> } {
  let dir = '';
  const servers: TestServer[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    dir: () => dir,
    async server(handler) {
      const s = await startHttpServer(handler);
      servers.push(s);
      return s;
    },
  };
}
