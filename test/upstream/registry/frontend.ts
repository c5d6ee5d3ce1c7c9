/**
 * The registry host of one simulated upstream: a read-only front on the shared distribution backend, where
 * repository `<name>` of upstream `<u>` is stored as `<u>/<name>` (e.g. ghcr.io/flannel-io/flannel). It adds what
 * the real service does on top of the plain distribution API (reference sheet §3, §4): bearer-token auth or none,
 * blob GETs answered with a 307 to a CDN host, ghcr's refusal of OCI indexes to clients that do not accept them,
 * and refusal of every write.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MEDIA_TYPES, type UpstreamName } from '../images.js';
import type { BlobCdn } from './cdn.js';
import type { RequestLog } from './request-log.js';
import { requestUrl, sendJson, sendRegistryError, type Handler } from './server-util.js';
import type { Signer } from './signing.js';

export interface TokenAuth {
  /** the `service` of the challenge and the token request, e.g. registry.docker.io */
  service: string;
  /** ghcr.io answers {"token"} only; auth.docker.io also sends access_token, expires_in, issued_at */
  responseStyle: 'token-only' | 'oauth';
  /** ghcr.io serves /token on the registry host; docker.io on a separate auth host */
  tokenHost: 'registry' | 'separate';
}

export interface FrontendContext {
  upstream: UpstreamName;
  /** null: anonymous pulls; otherwise token auth with the token endpoint URL (`realm`) for challenges */
  auth: (TokenAuth & { realm: string }) | null;
  ociIndexRequiresAccept: boolean;
  backendUrl: string;
  cdn: BlobCdn;
  signer: Signer;
  log: RequestLog;
}

const API_VERSION_HEADER = { 'docker-distribution-api-version': 'registry/2.0' };
const ALL_MANIFEST_TYPES = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerList,
  MEDIA_TYPES.dockerManifest,
].join(', ');

type Route =
  | { kind: 'ping' }
  | { kind: 'token' }
  | { kind: 'manifest' | 'blob' | 'tags'; repository: string; reference: string }
  | { kind: 'upload'; repository: string }
  | { kind: 'other' };

export function frontendHandler(context: FrontendContext): Handler {
  return async (req, res) => {
    const url = requestUrl(req);
    const { auth, signer } = context;
    const route = parseRoute(url.pathname, auth?.tokenHost === 'registry');
    context.log.track(context.upstream, route.kind, req, res);
    if (route.kind === 'token' && auth) return answerToken(req, res, auth, signer);
    const repository = 'repository' in route ? route.repository : null;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      // registry.k8s.io answers 405 to anything but GET/HEAD; token registries first want a push scope (401)
      if (!auth) return sendRegistryError(res, 405, 'UNSUPPORTED', 'this registry is read-only', API_VERSION_HEADER);
      return challenge(res, auth, repository, 'pull,push');
    }
    if (auth && !authorized(req, auth, signer, repository)) return challenge(res, auth, repository, 'pull');
    switch (route.kind) {
      case 'ping':
        return sendJson(res, 200, {}, API_VERSION_HEADER);
      case 'manifest':
        return serveManifest(req, res, route.repository, route.reference, context);
      case 'blob':
        return redirectBlob(res, route.repository, route.reference, context);
      case 'tags':
        return serveTags(res, route.repository, url.search, context);
      default:
        return sendRegistryError(res, 404, 'NOT_FOUND', `no route for ${url.pathname}`, API_VERSION_HEADER);
    }
  };
}

function parseRoute(pathname: string, servesTokens: boolean): Route {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'ping' };
  if (pathname === '/token' && servesTokens) return { kind: 'token' };
  const upload = /^\/v2\/(.+)\/blobs\/uploads\/.*$/.exec(pathname);
  if (upload?.[1]) return { kind: 'upload', repository: upload[1] };
  const match = /^\/v2\/(.+)\/(manifests|blobs|tags)\/([^/]+)$/.exec(pathname);
  if (!match?.[1] || !match[2] || !match[3]) return { kind: 'other' };
  const kind = ({ manifests: 'manifest', blobs: 'blob', tags: 'tags' } as const)[match[2] as 'manifests' | 'blobs' | 'tags'];
  return { kind, repository: match[1], reference: match[3] };
}

/** A bearer token of ours for this service that allows pulling `repository` (any valid one for /v2/). */
function authorized(req: IncomingMessage, auth: TokenAuth, signer: Signer, repository: string | null): boolean {
  const match = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
  return match?.[1] !== undefined && signer.tokenAllows(match[1], auth.service, repository);
}

function challenge(res: ServerResponse, auth: TokenAuth & { realm: string }, repository: string | null, actions: string): void {
  const parts = [`realm="${auth.realm}"`, `service="${auth.service}"`];
  if (repository) parts.push(`scope="repository:${repository}:${actions}"`);
  sendRegistryError(res, 401, 'UNAUTHORIZED', 'authentication required', {
    ...API_VERSION_HEADER,
    'www-authenticate': `Bearer ${parts.join(',')}`,
  });
}

async function serveManifest(
  req: IncomingMessage,
  res: ServerResponse,
  repository: string,
  reference: string,
  context: FrontendContext,
): Promise<void> {
  // Ask the backend for every type, then apply this upstream's own content negotiation.
  const backendUrl = `${context.backendUrl}/v2/${backendRepository(context, repository)}/manifests/${reference}`;
  const backend = await fetch(backendUrl, { headers: { accept: ALL_MANIFEST_TYPES } });
  if (!backend.ok) return relayError(res, backend);
  const bytes = Buffer.from(await backend.arrayBuffer());
  const mediaType = backend.headers.get('content-type') ?? '';
  const digest = backend.headers.get('docker-content-digest') ?? '';
  if (context.ociIndexRequiresAccept && mediaType === MEDIA_TYPES.ociIndex && !accepts(req, mediaType)) {
    const message = 'OCI index found, but Accept header does not support OCI indexes';
    return sendRegistryError(res, 404, 'MANIFEST_UNKNOWN', message, API_VERSION_HEADER);
  }
  res.writeHead(200, {
    ...API_VERSION_HEADER,
    'content-type': mediaType,
    'content-length': bytes.length,
    'docker-content-digest': digest,
    etag: `"${digest}"`,
  });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

function accepts(req: IncomingMessage, mediaType: string): boolean {
  const accepted = (req.headers.accept ?? '').split(',').map((item) => item.split(';')[0]?.trim());
  return accepted.includes(mediaType);
}

/** The bytes come from the CDN host: answer with a 307 to a signed URL there (GET and HEAD alike). */
async function redirectBlob(res: ServerResponse, repository: string, digest: string, context: FrontendContext): Promise<void> {
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
    return sendRegistryError(res, 400, 'DIGEST_INVALID', `invalid digest ${digest}`, API_VERSION_HEADER);
  }
  const stored = backendRepository(context, repository);
  const backend = await fetch(`${context.backendUrl}/v2/${stored}/blobs/${digest}`, { method: 'HEAD' });
  if (!backend.ok) {
    return sendRegistryError(res, 404, 'BLOB_UNKNOWN', `blob unknown to registry: ${digest}`, API_VERSION_HEADER);
  }
  res.writeHead(307, { ...API_VERSION_HEADER, location: context.cdn.signedUrl(stored, digest), 'content-length': 0 });
  res.end();
}

async function serveTags(res: ServerResponse, repository: string, search: string, context: FrontendContext): Promise<void> {
  const stored = backendRepository(context, repository);
  const backend = await fetch(`${context.backendUrl}/v2/${stored}/tags/list${search}`);
  if (!backend.ok) return relayError(res, backend);
  const body = (await backend.json()) as { tags: string[] | null };
  const headers: Record<string, string> = { ...API_VERSION_HEADER };
  const link = backend.headers.get('link');
  if (link) headers['link'] = link.replace(`/v2/${stored}/`, `/v2/${repository}/`);
  sendJson(res, 200, { name: repository, tags: body.tags }, headers);
}

/** Pass a backend error (e.g. 404 MANIFEST_UNKNOWN / NAME_UNKNOWN) through unchanged. */
async function relayError(res: ServerResponse, backend: Response): Promise<void> {
  const body = Buffer.from(await backend.arrayBuffer());
  res.writeHead(backend.status, {
    ...API_VERSION_HEADER,
    'content-type': backend.headers.get('content-type') ?? 'application/json',
    'content-length': body.length,
  });
  res.end(body);
}

function backendRepository(context: FrontendContext, repository: string): string {
  return `${context.upstream}/${repository}`;
}

/** The handler of a separate auth host (auth.docker.io): only /token. */
export function tokenServerHandler(upstream: UpstreamName, auth: TokenAuth, signer: Signer, log: RequestLog): Handler {
  return async (req, res) => {
    const pathname = requestUrl(req).pathname;
    log.track(upstream, pathname === '/token' ? 'token' : 'other', req, res);
    if (pathname !== '/token') return sendJson(res, 404, { details: `no route for ${pathname}` });
    answerToken(req, res, auth, signer);
  };
}

/**
 * GET /token?service=…&scope=repository:<name>:pull — anonymous, as for public images: grants pull on every
 * requested repository (push is never granted).
 */
function answerToken(req: IncomingMessage, res: ServerResponse, auth: TokenAuth, signer: Signer): void {
  if (req.method !== 'GET') return sendJson(res, 405, { details: `${req.method} is not supported on /token` });
  const query = requestUrl(req).searchParams;
  const service = query.get('service');
  if (service !== auth.service) {
    return sendJson(res, 400, { details: `unknown service ${JSON.stringify(service)}, expected ${auth.service}` });
  }
  const { token, expiresIn } = signer.issueToken(auth.service, pullScopes(query));
  if (auth.responseStyle === 'token-only') return sendJson(res, 200, { token });
  sendJson(res, 200, { token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() });
}

/** Repositories named in `scope=repository:<name>:<actions>` parameters whose actions include pull. */
function pullScopes(query: URLSearchParams): string[] {
  const scopes = query.getAll('scope').flatMap((value) => value.split(' '));
  const repositories: string[] = [];
  for (const scope of scopes) {
    const match = /^repository:(.+):([a-z*,]+)$/.exec(scope);
    if (match?.[1] && match[2]?.split(',').includes('pull')) repositories.push(match[1]);
  }
  return repositories;
}
