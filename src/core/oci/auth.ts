/**
 * Anonymous registry auth: the distribution token flow.
 *
 * A registry answers 401 with `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`; we GET
 * realm?service=…&scope=… (the realm may be another host, e.g. docker.io → auth.docker.io; it gets no
 * credentials) and send the token back as `Authorization: Bearer`. Tokens are cached per (realm, service,
 * scope) until shortly before they expire, and remembered per repository so blob downloads reuse them.
 * A Basic challenge means the registry wants a password: not supported, said plainly.
 */
import { UserError } from '../../util/errors.js';
import { redactUrl } from '../../util/redact.js';
import type { Fetcher } from '../fetch.js';
import { type HeaderMap, TransientError, discard, isTransientStatus, readSmallBody } from '../http.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

interface BearerParams {
  realm: string;
  service: string | undefined;
  scope: string;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Refresh this long (at most half the lifetime) before the server's expiry, so a token never dies between check and use. */
const EXPIRY_MARGIN_MS = 10_000;
/** The distribution spec's default lifetime when the token server does not say. */
const DEFAULT_TOKEN_SECONDS = 60;
const MAX_TOKEN_RESPONSE = 1024 * 1024;

const CHALLENGE_PART = /\s*(?:([A-Za-z][A-Za-z0-9_-]*)\s+(?=[A-Za-z0-9_-]+\s*=)|([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))\s*,?/y;

/** Parse a WWW-Authenticate value, which may hold several challenges. */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  const trimmed = header.trim();
  const bareScheme = /^([A-Za-z][A-Za-z0-9_-]*)$/.exec(trimmed);
  if (bareScheme?.[1]) return [{ scheme: bareScheme[1].toLowerCase(), params: {} }];
  CHALLENGE_PART.lastIndex = 0;
  while (CHALLENGE_PART.lastIndex < trimmed.length) {
    const m = CHALLENGE_PART.exec(trimmed);
    if (!m) break;
    const [, scheme, key, quoted, token] = m;
    const current = challenges.at(-1);
    if (scheme) challenges.push({ scheme: scheme.toLowerCase(), params: {} });
    else if (key && current) current.params[key.toLowerCase()] = quoted === undefined ? (token ?? '') : quoted.replace(/\\(.)/g, '$1');
  }
  return challenges;
}

export class RegistryAuth {
  private readonly tokens = new Map<string, Promise<CachedToken>>();
  private readonly repoChallenges = new Map<string, BearerParams>();

  constructor(private readonly fetcher: Fetcher) {}

  /** Authorization for a repository (key: endpoint origin + repository) if it ever needed a token, else none. */
  async headersFor(repoKey: string, reference: string): Promise<HeaderMap> {
    const params = this.repoChallenges.get(repoKey);
    if (!params) return {};
    const { token } = await this.token(params, reference);
    return { authorization: `Bearer ${token}` };
  }

  /**
   * Handle a 401: get a token for the challenge and remember it for the repository.
   * `url` is the request that was refused, for the error message.
   */
  async answerChallenge(repoKey: string, header: string | undefined, defaultScope: string, reference: string, url: string): Promise<HeaderMap> {
    const challenges = header === undefined ? [] : parseWwwAuthenticate(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (!bearer) {
      if (challenges.some((c) => c.scheme === 'basic')) {
        throw new UserError(
          `${reference}: ${redactUrl(url)} requires a username and password (Basic auth), which kube-bundle does not support yet`,
          'pull through a --mirror that allows anonymous reads',
        );
      }
      throw new UserError(`${reference}: ${redactUrl(url)} answered 401 without a usable WWW-Authenticate challenge ('${header ?? ''}')`);
    }
    const realm = bearer.params.realm;
    if (!realm) throw new UserError(`${reference}: ${redactUrl(url)} sent a Bearer challenge without a realm`);
    const params: BearerParams = { realm, service: bearer.params.service, scope: bearer.params.scope ?? defaultScope };
    this.repoChallenges.set(repoKey, params);
    const { token } = await this.token(params, reference);
    return { authorization: `Bearer ${token}` };
  }

  private async token(params: BearerParams, reference: string): Promise<CachedToken> {
    const key = `${params.realm} ${params.service ?? ''} ${params.scope}`;
    const cached = this.tokens.get(key);
    if (cached) {
      const token = await cached.catch(() => undefined);
      if (token && token.expiresAt > Date.now()) return token;
    }
    const fresh = this.requestToken(params, reference);
    this.tokens.set(key, fresh);
    fresh.catch(() => this.tokens.delete(key));
    return fresh;
  }

  private requestToken(params: BearerParams, reference: string): Promise<CachedToken> {
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope);
    return this.fetcher.withRetries(`token request for ${reference} at ${redactUrl(url)}`, async () => {
      const res = await this.fetcher.open(url.href, { headers: { accept: 'application/json' } });
      if (isTransientStatus(res.status)) {
        discard(res);
        throw new TransientError(`HTTP ${res.status} from ${redactUrl(url)}`);
      }
      // Not counted in the fetch stats: those measure content, and a warm build still renews its tokens.
      const body = await readSmallBody(res, MAX_TOKEN_RESPONSE);
      if (res.status !== 200) {
        throw new UserError(`${reference}: token server ${redactUrl(url)} answered HTTP ${res.status}`, 'the registry refuses anonymous pulls of this image');
      }
      return parseTokenResponse(body, url.href, reference);
    });
  }
}

function parseTokenResponse(body: Buffer, url: string, reference: string): CachedToken {
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    throw new UserError(`${reference}: token server ${redactUrl(url)} did not answer JSON`);
  }
  const token = typeof doc.token === 'string' ? doc.token : doc.access_token;
  if (typeof token !== 'string' || token === '') throw new UserError(`${reference}: token server ${redactUrl(url)} answered without a token`);
  const seconds = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_SECONDS;
  const issued = typeof doc.issued_at === 'string' ? Date.parse(doc.issued_at) : NaN;
  const start = Number.isFinite(issued) ? Math.min(issued, Date.now()) : Date.now();
  const lifetimeMs = seconds * 1000;
  return { token, expiresAt: start + lifetimeMs - Math.min(EXPIRY_MARGIN_MS, lifetimeMs / 2) };
}
