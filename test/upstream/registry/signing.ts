/**
 * HMAC-signed bearer tokens (what ghcr.io's and auth.docker.io's token endpoints hand out) and signed blob URLs
 * (what the S3 / CDN redirects point to). The secret is random per start, so nothing survives a restart.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const TOKEN_LIFETIME_SECONDS = 300;
const SIGNED_URL_LIFETIME_SECONDS = 600;

interface TokenClaims {
  service: string;
  /** repositories this token may pull */
  pull: string[];
  /** expiry, unix seconds */
  exp: number;
}

export class Signer {
  private readonly secret = randomBytes(32);

  /** A pull token for `repositories` at `service`. */
  issueToken(service: string, repositories: string[]): { token: string; expiresIn: number } {
    const claims: TokenClaims = { service, pull: repositories, exp: nowSeconds() + TOKEN_LIFETIME_SECONDS };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { token: `${payload}.${this.mac(payload)}`, expiresIn: TOKEN_LIFETIME_SECONDS };
  }

  /** Whether `token` is ours, unexpired, for `service`, and (when given) allows pulling `repository`. */
  tokenAllows(token: string, service: string, repository: string | null): boolean {
    const [payload, mac] = token.split('.');
    if (!payload || !mac || !this.macMatches(payload, mac)) return false;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as TokenClaims;
    if (claims.service !== service || claims.exp < nowSeconds()) return false;
    return repository === null || claims.pull.includes(repository);
  }

  /** Query string that makes `path` valid for a while, like an S3 presigned URL. */
  signPath(path: string): string {
    const expires = String(nowSeconds() + SIGNED_URL_LIFETIME_SECONDS);
    return new URLSearchParams({ expires, signature: this.mac(`${path}\n${expires}`) }).toString();
  }

  pathSignatureValid(path: string, query: URLSearchParams): boolean {
    const expires = query.get('expires');
    const signature = query.get('signature');
    if (!expires || !signature || Number(expires) < nowSeconds()) return false;
    return this.macMatches(`${path}\n${expires}`, signature);
  }

  private mac(data: string): string {
    return createHmac('sha256', this.secret).update(data).digest('base64url');
  }

  private macMatches(data: string, mac: string): boolean {
    const expected = Buffer.from(this.mac(data));
    const given = Buffer.from(mac);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
