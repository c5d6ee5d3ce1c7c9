/**
 * HTTP transport for every download and registry request: one GET/HEAD through got, redirects followed by hand.
 *
 * - Redirects are followed here rather than by got, so that each 3xx is seen: credentials are dropped as soon as a
 *   redirect leaves the origin (scheme + host + port) they were meant for, and a redirect from https to http is
 *   refused.
 * - got's retries and decompression are off: the caller (fetch.ts, the registry client) counts, hashes and resumes
 *   the exact bytes itself, and decides what to retry; network errors and timeouts come back as TransientError.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import got, { RequestError, TimeoutError } from 'got';
import { UserError } from '../util/errors.js';
import { redactUrl, redactUrls } from '../util/redact.js';

export interface Timeouts {
  /** DNS lookup and TCP/TLS connect, each. */
  connectMs: number;
  /** Longest silence on an open connection, before or during the body. */
  idleMs: number;
}

export type HeaderMap = Record<string, string>;
/** Headers may be computed per attempt, e.g. to refresh a registry token that expired while queued. */
export type HeaderSource = HeaderMap | (() => Promise<HeaderMap>);

export interface HttpResponse {
  /** The URL that answered (after redirects). */
  url: string;
  status: number;
  headers: IncomingHttpHeaders;
  /** Must be consumed or destroyed by the caller. */
  body: Readable;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
/** Headers that carry a credential and so must never follow a redirect to another origin. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** A failure worth another try: the network, a timeout, a 5xx/429, a bad resume. */
export class TransientError extends Error {
  override readonly name = 'TransientError';
}

/** GET/HEAD a URL, following redirects by hand; see the module comment for the credential rule. */
export async function openUrl(
  url: string,
  options: { method?: 'GET' | 'HEAD'; headers?: HeaderMap; timeouts: Timeouts },
): Promise<HttpResponse> {
  let current = new URL(url);
  let headers = { ...options.headers };
  for (let hop = 0; ; hop++) {
    const res = await openOnce(current, options.method ?? 'GET', headers, options.timeouts);
    if (!REDIRECT_STATUSES.has(res.status)) return res;
    res.body.destroy();
    const location = res.headers.location;
    if (!location) throw new UserError(`${redactUrl(current)} answered HTTP ${res.status} without a Location header (asked for ${redactUrl(url)})`);
    if (hop >= MAX_REDIRECTS) throw new UserError(`more than ${MAX_REDIRECTS} redirects fetching ${redactUrl(url)}`);
    const next = new URL(location, current);
    checkRedirect(current, next);
    if (next.origin !== current.origin) headers = withoutCredentials(headers);
    current = next;
  }
}

function openOnce(url: URL, method: 'GET' | 'HEAD', headers: HeaderMap, timeouts: Timeouts): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const stream = got.stream(url, {
      method,
      headers,
      followRedirect: false,
      throwHttpErrors: false,
      decompress: false,
      retry: { limit: 0 },
      timeout: { lookup: timeouts.connectMs, connect: timeouts.connectMs, socket: timeouts.idleMs },
    });
    // Kept for the stream's life (a no-op once settled) so a late error never goes unhandled.
    stream.on('error', (err) => reject(asNetworkFailure(err, url, timeouts)));
    stream.once('response', (res: { statusCode: number; headers: IncomingHttpHeaders }) =>
      resolve({ url: url.href, status: res.statusCode, headers: res.headers, body: stream }),
    );
  });
}

function withoutCredentials(headers: HeaderMap): HeaderMap {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.has(name.toLowerCase())));
}

/**
 * A redirect we refuse to follow: from https to plain http, which would hand the rest of the download (and its
 * integrity until the digest check, and any token in the new URL) to whoever sits on the network path. An http
 * mirror is fine when the operator names it (`--mirror`); a server must not downgrade on its own.
 */
export function checkRedirect(from: URL, to: URL): void {
  if (from.protocol === 'https:' && to.protocol !== 'https:') {
    throw new UserError(
      `${redactUrl(from)} redirects to ${redactUrl(to)}: refusing a redirect from https to ${to.protocol.replace(/:$/, '')}`,
      'the server downgrades the connection; fix it, or name a plain-http source yourself with --mirror if that is really meant',
    );
  }
}

/** Turn got's errors into a TransientError whose message says what happened and where. */
export function asNetworkFailure(err: unknown, url: URL, timeouts: Timeouts): Error {
  if (err instanceof TimeoutError) {
    const what = err.event === 'socket' ? `no data for ${timeouts.idleMs} ms` : `${err.event} took over ${timeouts.connectMs} ms`;
    return new TransientError(`timed out (${what}) talking to ${redactUrl(url)}`);
  }
  if (err instanceof RequestError) return new TransientError(`${err.code ?? 'network error'}: ${redactUrls(err.message)} (${redactUrl(url)})`);
  return err instanceof Error ? err : new Error(String(err));
}

/** Read a small body (manifest, token, error document) into memory, refusing more than `limit` bytes. */
export async function readSmallBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.body.destroy();
      throw new UserError(`${redactUrl(res.url)} sent more than ${limit} bytes where a small document was expected`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Throw away a body we do not need, so the connection can be reused. */
export function discard(res: HttpResponse): void {
  res.body.resume();
}

/** 5xx and 429 are worth retrying; other failures are answers. */
export function isTransientStatus(status: number): boolean {
  return status >= 500 || status === 429;
}

/** The Content-Length an answer announced, when it did. */
export function contentLength(res: HttpResponse): number | undefined {
  const value = res.headers['content-length'];
  return value === undefined ? undefined : Number(value);
}

/** What the operator can do about an answer that is neither content nor worth retrying. */
export function hintForStatus(status: number): string | undefined {
  if (status === 401 || status === 403) return 'the server wants credentials or refuses this client; kube-bundle fetches anonymously';
  if (status === 404) return 'the artifact does not exist there: check the version, the name and any --mirror';
  return undefined;
}
