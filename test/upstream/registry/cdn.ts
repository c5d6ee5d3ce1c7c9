/**
 * The blob CDN behind one simulated registry (S3 for registry.k8s.io, pkg-containers.githubusercontent.com for
 * ghcr.io, production.cloudflare.docker.com for docker.io): a separate listener that serves blob bytes for
 * signed URLs only. Like S3, it answers 400 to a request that also carries an Authorization header, so a client
 * that forwards registry credentials across hosts on a redirect fails loudly. Single ranges are supported.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import type { UpstreamName } from '../images.js';
import type { RequestLog } from './request-log.js';
import { baseUrl, closeServer, listen, requestUrl, serve } from './server-util.js';
import type { Signer } from './signing.js';

export interface BlobCdn {
  url: string;
  /** Signed URL for blob `digest` of repository `backendRepository` in the backing registry. */
  signedUrl(backendRepository: string, digest: string): string;
  stop(): Promise<void>;
}

export interface BlobCdnOptions {
  upstream: UpstreamName;
  /** address to listen on */
  host: string;
  /** host name to put in URLs (may differ from `host`, so the redirect really crosses hosts) */
  publicHost: string;
  backendUrl: string;
  signer: Signer;
  log: RequestLog;
}

const PATH_PREFIX = '/blobs/';
/** Response headers of the backing registry that a CDN would also send. */
const RELAYED_HEADERS = ['content-length', 'content-range', 'accept-ranges', 'etag'];

export async function startBlobCdn(options: BlobCdnOptions): Promise<BlobCdn> {
  const server = createServer();
  const port = await listen(server, options.host);
  serve(server, (req, res) => handle(req, res, options));
  const url = baseUrl(options.publicHost, port);
  return {
    url,
    signedUrl(backendRepository, digest) {
      const path = `${PATH_PREFIX}${backendRepository}/${digest}`;
      return `${url}${path}?${options.signer.signPath(path)}`;
    },
    stop: () => closeServer(server),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, options: BlobCdnOptions): Promise<void> {
  options.log.track(options.upstream, 'cdn', req, res);
  const url = requestUrl(req);
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed');
  if (req.headers.authorization !== undefined) {
    return sendText(res, 400, 'InvalidArgument: a signed URL must be fetched without an Authorization header');
  }
  if (!url.pathname.startsWith(PATH_PREFIX) || !options.signer.pathSignatureValid(url.pathname, url.searchParams)) {
    return sendText(res, 403, 'AccessDenied: missing, invalid or expired signature');
  }
  const backendPath = toBackendPath(url.pathname);
  if (!backendPath) return sendText(res, 404, 'NoSuchKey');
  await relayBlob(req, res, `${options.backendUrl}${backendPath}`);
}

/** /blobs/<repository>/<digest> → /v2/<repository>/blobs/<digest> */
function toBackendPath(pathname: string): string | null {
  const match = /^\/blobs\/(.+)\/(sha256:[a-f0-9]{64})$/.exec(pathname);
  return match ? `/v2/${match[1]}/blobs/${match[2]}` : null;
}

async function relayBlob(req: IncomingMessage, res: ServerResponse, backendUrl: string): Promise<void> {
  const range = req.headers.range;
  const backend = await fetch(backendUrl, { method: req.method, headers: range ? { range } : {} });
  if (backend.status === 404) {
    await backend.body?.cancel();
    return sendText(res, 404, 'NoSuchKey');
  }
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  for (const name of RELAYED_HEADERS) {
    const value = backend.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  res.writeHead(backend.status, headers);
  if (req.method === 'HEAD' || !backend.body) {
    await backend.body?.cancel();
    res.end();
    return;
  }
  await pipeline(Readable.fromWeb(backend.body as ReadableStream), res);
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(`${text}\n`);
}
