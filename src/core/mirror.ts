/**
 * `--mirror <from>=<to>`: fetch upstream content from somewhere else while the bundle keeps upstream names.
 *  - URL prefixes:   https://pkgs.k8s.io=http://10.0.0.5:8081/k8s     (longest matching prefix wins)
 *  - registry hosts: registry.k8s.io=http://10.0.0.5:5001            (an OCI registry endpoint)
 */
import { UserError } from '../util/errors.js';
import { redactUrl, redactUrls } from '../util/redact.js';

export interface Mirrors {
  /** URL prefix → replacement prefix, longest first */
  urls: { from: string; to: string }[];
  /** registry host (e.g. registry.k8s.io, docker.io) → endpoint base URL (scheme://host[:port]) */
  registries: Map<string, string>;
}

const REGISTRY_HOST = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?$/i;

/** `flag` is quoted in the errors: the caller passes it redacted. */
function parseUrl(text: string, flag: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError(`--mirror ${flag}: '${redactUrls(text)}' is not a URL`, 'write e.g. https://pkgs.k8s.io=http://10.0.0.5:8081/k8s');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UserError(`--mirror ${flag}: only http and https are supported, not ${url.protocol}`);
  }
  if (url.search || url.hash) throw new UserError(`--mirror ${flag}: a mirror URL cannot have a query or fragment`);
  return url;
}

const withoutSlash = (s: string) => s.replace(/\/+$/, '');

export function parseMirrors(flags: readonly string[] = []): Mirrors {
  const mirrors: Mirrors = { urls: [], registries: new Map() };
  for (const given of flags) {
    const flag = redactUrls(given); // for the errors below: a mirror URL may carry a password
    const eq = given.indexOf('=');
    if (eq <= 0 || eq === given.length - 1) {
      throw new UserError(`--mirror '${flag}' is not <from>=<to>`, 'e.g. --mirror registry.k8s.io=http://10.0.0.5:5001');
    }
    const from = given.slice(0, eq).trim();
    const to = given.slice(eq + 1).trim();
    const target = parseUrl(to, flag);
    if (/^[a-z]+:\/\//i.test(from)) {
      parseUrl(from, flag);
      mirrors.urls.push({ from: withoutSlash(from), to: withoutSlash(target.href) });
    } else if (REGISTRY_HOST.test(from)) {
      if (target.username || target.password) {
        // the registry client pulls anonymously (or with the registry's own token flow): a password here would be ignored
        throw new UserError(`--mirror ${flag}: a registry mirror cannot carry a user name or password`, 'give the registry as scheme://host[:port]; kube-bundle pulls anonymously');
      }
      if (target.pathname !== '/') throw new UserError(`--mirror ${flag}: a registry mirror is a scheme://host[:port], without a path`);
      if (mirrors.registries.has(from)) throw new UserError(`--mirror ${flag}: ${from} is mirrored twice`);
      mirrors.registries.set(from, `${target.protocol}//${target.host}`);
    } else {
      throw new UserError(`--mirror ${flag}: '${redactUrls(from)}' is neither a URL prefix nor a registry host`);
    }
  }
  mirrors.urls.sort((a, b) => b.from.length - a.from.length);
  return mirrors;
}

/** Where to fetch an upstream URL from: the longest mirrored prefix that matches at a path boundary, else itself. */
export function resolveUrl(mirrors: Mirrors, upstream: string): string {
  for (const { from, to } of mirrors.urls) {
    if (upstream === from) return to;
    if (upstream.startsWith(from) && (from.endsWith('/') || '/?#'.includes(upstream.charAt(from.length)))) {
      return to + upstream.slice(from.length);
    }
  }
  return upstream;
}

/** Where an upstream URL is fetched from, fit to print: the mirror's credentials and any query redacted. */
export function shownUrl(mirrors: Mirrors, upstream: string): string {
  return redactUrl(resolveUrl(mirrors, upstream));
}
