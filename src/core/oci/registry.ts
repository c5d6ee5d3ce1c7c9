/**
 * OCI distribution client: resolves an image reference to its manifests and pulls the blobs for the requested
 * platforms into the download cache.
 *
 * Why not the inherited `oci-registry-client` (v0.2.0, read in node_modules/oci-registry-client/build):
 * - blob GETs accept only HTTP 200/302/303/307 and use the client's fixed headers, so there is no way to send
 *   `Range` or take a 206: downloads cannot resume;
 * - it sets no timeouts (its `connectTimeout` option never reaches node-fetch), so a stalled mirror hangs;
 * - its blob redirect loop ignores 301/308 and stops after 3 hops, and manifests use node-fetch's automatic
 *   redirects, so the cross-origin credential rule would not be ours to enforce;
 * - one token per client instance, fetched after an extra `GET /v2/` ping, no expiry: no per-scope cache;
 * - its digest-checking stream is never wired in (blobs are checked only against a header string).
 * So this client is written on our fetch.ts (got), and reuses the cache's resume and verification.
 *
 * Mirrors: `endpoints` maps an upstream registry host to the base URL to talk to instead; references and
 * repository paths stay upstream's (`registry.k8s.io/pause:3.10` via http://127.0.0.1:5001/v2/pause/…).
 */
import { readFile } from 'node:fs/promises';
import { UserError } from '../../util/errors.js';
import { redactUrl } from '../../util/redact.js';
import type { FetchResult, Fetcher } from '../fetch.js';
import { type HttpResponse, TransientError, discard, hintForStatus, isTransientStatus, readSmallBody } from '../http.js';
import { RegistryAuth } from './auth.js';
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type Platform,
  MANIFEST_ACCEPT,
  formatPlatform,
  isForeignLayer,
  isIndexType,
  parseManifest,
} from './media-types.js';
import { type ImageReference, formatReference, manifestReference, parseReference } from './reference.js';
import { digestHex, SHA256_DIGEST, sha256Of } from '../../util/digest.js';

export interface RegistryClientOptions {
  fetcher: Fetcher;
  /** Upstream registry host (normalized, e.g. "docker.io") → base URL to use instead, e.g. "http://127.0.0.1:5001". */
  endpoints?: Record<string, string>;
}

/** An image resolved for some platforms; every blob it lists is in the cache once `pull` returns. */
export interface PulledImage {
  /** Full upstream reference, e.g. "registry.k8s.io/pause:3.10". */
  reference: string;
  /** The top-level index or manifest, exactly as upstream serves it. */
  descriptor: Descriptor;
  /**
   * The platform manifests carried, each with its platform: for an index the selected entries as the index
   * lists them; for a single manifest, the manifest itself with the platform its config names.
   */
  manifests: Descriptor[];
  /** Every blob to carry: top-level document, selected child manifests, configs, layers; no duplicates. */
  blobs: Descriptor[];
}

/** Manifests are small; anything bigger is not a manifest (the distribution spec suggests 4 MiB). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

interface Repo {
  ref: ImageReference;
  /** For messages: the full reference as the operator wrote it, normalized. */
  name: string;
  /** e.g. "https://registry-1.docker.io/v2/library/busybox" */
  base: string;
  /** Key for the per-repository token. */
  authKey: string;
}

interface FetchedManifest {
  descriptor: Descriptor;
  parsed: ImageIndex | ImageManifest;
}

export class RegistryClient {
  private readonly fetcher: Fetcher;
  private readonly endpoints: Record<string, string>;
  private readonly auth: RegistryAuth;

  constructor(options: RegistryClientOptions) {
    this.fetcher = options.fetcher;
    this.endpoints = checkEndpoints(options.endpoints ?? {});
    this.auth = new RegistryAuth(options.fetcher);
  }

  /**
   * Resolve `reference` and download what `platforms` need. With `layers: false` only manifests (and a
   * single-platform image's config) are fetched: enough to list every blob with its size, for a dry run.
   */
  async pull(reference: string, platforms: Platform[], options: { layers?: boolean } = {}): Promise<PulledImage> {
    const download = options.layers !== false;
    const repo = this.repo(parseReference(reference));
    const top = await this.fetchManifest(repo, manifestReference(repo.ref), undefined);
    const blobs = new Map<string, Descriptor>([[top.descriptor.digest, top.descriptor]]);
    const add = (d: Descriptor): void => void blobs.set(d.digest, blobs.get(d.digest) ?? d);

    let manifests: Descriptor[];
    if (top.parsed.kind === 'index') {
      manifests = selectPlatforms(top.parsed, platforms, repo.name);
      const fetched = await Promise.all(manifests.map((child) => this.fetchChildManifest(repo, child)));
      manifests.forEach(add);
      const content = fetched.flatMap((m) => [m.config, ...m.layers]);
      content.forEach(add);
      if (download) await Promise.all(content.map((d) => this.fetchBlob(repo, d)));
    } else {
      const manifest = top.parsed;
      manifests = [{ ...top.descriptor, platform: await this.checkSinglePlatform(repo, manifest, platforms) }];
      [manifest.config, ...manifest.layers].forEach(add);
      if (download) await Promise.all(manifest.layers.map((d) => this.fetchBlob(repo, d)));
    }
    return { reference: repo.name, descriptor: top.descriptor, manifests, blobs: [...blobs.values()] };
  }

  /**
   * Download one blob of an image `pull` described (into the cache; a blob there already, or on its way, is not
   * fetched twice): how a build fetches the layers of images it resolved without them.
   */
  downloadBlob(reference: string, blob: Descriptor): Promise<FetchResult> {
    return this.fetchBlob(this.repo(parseReference(reference)), blob);
  }

  private repo(ref: ImageReference): Repo {
    const endpoint = (this.endpoints[ref.registry] ?? defaultEndpoint(ref.registry)).replace(/\/+$/, '');
    return { ref, name: formatReference(ref), base: `${endpoint}/v2/${ref.repository}`, authKey: `${new URL(endpoint).origin} ${ref.repository}` };
  }

  private async fetchChildManifest(repo: Repo, child: Descriptor): Promise<ImageManifest> {
    if (isIndexType(child.mediaType)) {
      throw new UserError(`${repo.name}: index entry ${child.digest} is itself an index; nested indexes are not supported`);
    }
    const { parsed } = await this.fetchManifest(repo, child.digest, child);
    if (parsed.kind !== 'manifest') throw new UserError(`${repo.name}: ${child.digest} is listed as a manifest but is an index`);
    for (const layer of parsed.layers) checkDistributable(repo, layer);
    return parsed;
  }

  /** A plain manifest has one platform, named in its config; it must cover every requested platform. */
  private async checkSinglePlatform(repo: Repo, manifest: ImageManifest, platforms: Platform[]): Promise<Platform> {
    for (const layer of manifest.layers) checkDistributable(repo, layer);
    if (manifest.config.size > MAX_CONFIG_BYTES) {
      throw new UserError(`${repo.name}: image config ${manifest.config.digest} is implausibly large (${manifest.config.size} bytes)`);
    }
    const config = await readFile((await this.fetchBlob(repo, manifest.config)).path);
    const own = platformOfConfig(config);
    if (!own) throw new UserError(`${repo.name}: single-platform image whose config ${manifest.config.digest} names no os/architecture`);
    const missing = platforms.filter((p) => !platformMatches(own, p));
    if (missing.length > 0) {
      throw new UserError(
        `${repo.name} is a single-platform image for ${formatPlatform(own)}; it has no ${missing.map(formatPlatform).join(', ')} image`,
        'drop that architecture from the build or use an image built for it',
      );
    }
    return own;
  }

  private fetchBlob(repo: Repo, blob: Descriptor): Promise<FetchResult> {
    const url = `${repo.base}/blobs/${blob.digest}`;
    return this.fetcher.fetchToCache({
      url,
      expected: { sha256: blob.digest, size: blob.size },
      label: `${repo.name} blob ${blob.digest}`,
      headers: () => this.auth.headersFor(repo.authKey, repo.name),
      authorize: (challenge) => this.auth.answerChallenge(repo.authKey, challenge, pullScope(repo), repo.name, url),
    });
  }

  /**
   * Get a manifest by digest or tag, verified, via the cache. For a tag a HEAD asks for the digest first, so
   * a warm build transfers no manifest bytes; a GET by tag (HEAD gave no digest) is verified against
   * Docker-Content-Digest when the registry sends one.
   */
  private async fetchManifest(repo: Repo, reference: string, listed: Descriptor | undefined): Promise<FetchedManifest> {
    const pinned = reference.startsWith('sha256:') ? reference : await this.digestOfTag(repo, reference);
    if (pinned) {
      const cached = await this.readCachedManifest(repo, pinned);
      if (cached) return cached;
    }
    // Once the digest is known, GET by digest: a tag that moves between HEAD and GET cannot mix versions.
    const url = `${repo.base}/manifests/${pinned ?? reference}`;
    return this.fetcher.withRetries(`manifest of ${repo.name} from ${redactUrl(url)}`, async () => {
      const res = await this.send(repo, url, 'GET');
      if (res.status !== 200) throw await registryFailure(repo, res, url);
      const bytes = await this.fetcher.readSmall(res, MAX_MANIFEST_BYTES);
      const digest = verifyManifestDigest(repo, url, bytes, pinned ?? headerDigest(res));
      if (listed && listed.size !== bytes.length) {
        throw new UserError(`${repo.name}: manifest ${digest} from ${redactUrl(url)} has ${bytes.length} bytes, its index says ${listed.size}`);
      }
      await this.fetcher.cache.putBytes(bytes);
      return describeManifest(repo, bytes, digest);
    });
  }

  /** HEAD a tag for its digest; undefined when the registry does not say (then the GET decides). */
  private async digestOfTag(repo: Repo, tag: string): Promise<string | undefined> {
    const url = `${repo.base}/manifests/${tag}`;
    return this.fetcher.withRetries(`manifest of ${repo.name} from ${redactUrl(url)}`, async () => {
      const res = await this.send(repo, url, 'HEAD');
      discard(res);
      if (isTransientStatus(res.status)) throw new TransientError(`HTTP ${res.status} from ${redactUrl(res.url)}`);
      return res.status === 200 ? headerDigest(res) : undefined;
    });
  }

  private async readCachedManifest(repo: Repo, digest: string): Promise<FetchedManifest | undefined> {
    const hex = digestHex(digest);
    if ((await this.fetcher.cache.sizeOf(hex)) === undefined) return undefined;
    const bytes = await readFile(this.fetcher.cache.blobPath(hex));
    this.fetcher.noteSmallCacheHit(bytes.length);
    return describeManifest(repo, bytes, digest);
  }

  /** One request with the repository's token; a 401 is answered with the token flow and retried once. */
  private async send(repo: Repo, url: string, method: 'GET' | 'HEAD'): Promise<HttpResponse> {
    const accept = { accept: MANIFEST_ACCEPT };
    const first = await this.fetcher.open(url, { method, headers: { ...accept, ...(await this.auth.headersFor(repo.authKey, repo.name)) } });
    if (first.status !== 401) return first;
    discard(first);
    const auth = await this.auth.answerChallenge(repo.authKey, first.headers['www-authenticate'], pullScope(repo), repo.name, url);
    const second = await this.fetcher.open(url, { method, headers: { ...accept, ...auth } });
    if (second.status === 401) {
      discard(second);
      const hint = 'the image may be private; kube-bundle pulls anonymously';
      throw new UserError(`${repo.name}: ${redactUrl(url)} still answers 401 Unauthorized after the anonymous token flow`, hint);
    }
    return second;
  }
}

/** Mirror endpoints must be http(s) base URLs; say which one is not. */
function checkEndpoints(endpoints: Record<string, string>): Record<string, string> {
  for (const [registry, endpoint] of Object.entries(endpoints)) {
    let protocol: string | undefined;
    try {
      protocol = new URL(endpoint).protocol;
    } catch {
      protocol = undefined;
    }
    if (protocol !== 'http:' && protocol !== 'https:') {
      throw new UserError(`mirror for ${registry} is not an http(s) URL: '${redactUrl(endpoint)}'`, 'write it like registry.k8s.io=http://10.0.0.5:5000');
    }
  }
  return endpoints;
}

export function defaultEndpoint(registry: string): string {
  return registry === 'docker.io' ? 'https://registry-1.docker.io' : `https://${registry}`;
}

function pullScope(repo: Repo): string {
  return `repository:${repo.ref.repository}:pull`;
}

/** Choose one child manifest per requested platform; attestations (unknown/unknown) are never candidates. */
function selectPlatforms(index: ImageIndex, platforms: Platform[], reference: string): Descriptor[] {
  const images = index.manifests.filter((d) => !isAttestation(d));
  const chosen: Descriptor[] = [];
  for (const wanted of platforms) {
    const match = images.find((d) => d.platform && platformMatches(d.platform, wanted));
    if (!match) {
      const available = images.map((d) => (d.platform ? formatPlatform(d.platform) : 'unspecified')).join(', ') || 'none';
      const hint = 'drop that architecture from the build or use another image';
      throw new UserError(`${reference} has no ${formatPlatform(wanted)} image (it has: ${available})`, hint);
    }
    if (!chosen.includes(match)) chosen.push(match);
  }
  return chosen;
}

function isAttestation(d: Descriptor): boolean {
  return (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown') || d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
}

/** os and architecture must be equal; a variant matters only when asked for. */
function platformMatches(have: Platform, wanted: Platform): boolean {
  return have.os === wanted.os && have.architecture === wanted.architecture && (!wanted.variant || have.variant === wanted.variant);
}

function platformOfConfig(config: Buffer): Platform | undefined {
  try {
    const doc = JSON.parse(config.toString('utf8')) as { os?: unknown; architecture?: unknown; variant?: unknown };
    if (typeof doc.os !== 'string' || typeof doc.architecture !== 'string') return undefined;
    const platform: Platform = { os: doc.os, architecture: doc.architecture };
    if (typeof doc.variant === 'string') platform.variant = doc.variant;
    return platform;
  } catch {
    return undefined;
  }
}

/**
 * Foreign / non-distributable layers with `urls` live outside the registry (Windows base layers, licensed so).
 * We do not fetch them from those URLs: an offline bundle would carry content it may not redistribute, and
 * such layers never occur in the Linux images a kubeadm cluster runs. Without `urls` the registry serves them.
 */
function checkDistributable(repo: Repo, layer: Descriptor): void {
  if (isForeignLayer(layer) && layer.urls) {
    throw new UserError(
      `${repo.name}: layer ${layer.digest} is non-distributable (${layer.mediaType}, served from ${layer.urls.join(', ')}); ` +
        'an offline bundle cannot carry it',
    );
  }
}

function headerDigest(res: HttpResponse): string | undefined {
  const value = res.headers['docker-content-digest'];
  return typeof value === 'string' && SHA256_DIGEST.test(value) ? value : undefined;
}

function verifyManifestDigest(repo: Repo, url: string, bytes: Buffer, expected: string | undefined): string {
  const actual = `sha256:${sha256Of(bytes)}`;
  if (expected !== undefined && actual !== expected) {
    const hint = 'the registry or mirror served different content; nothing was cached';
    throw new UserError(`${repo.name}: manifest from ${redactUrl(url)} has digest ${actual}, expected ${expected}`, hint);
  }
  return actual;
}

function describeManifest(repo: Repo, bytes: Buffer, digest: string): FetchedManifest {
  const parsed = parseManifest(bytes, `${repo.name} (${digest})`);
  return { descriptor: { mediaType: parsed.mediaType, digest, size: bytes.length }, parsed };
}

/** A non-200 manifest answer as an error; the registry's own error code and message are quoted. */
async function registryFailure(repo: Repo, res: HttpResponse, url: string): Promise<Error> {
  if (isTransientStatus(res.status)) {
    discard(res);
    return new TransientError(`HTTP ${res.status} from ${redactUrl(res.url)}`);
  }
  const body = await readErrorBody(res);
  return new UserError(`${repo.name}: ${redactUrl(url)} answered HTTP ${res.status}${body ? ` (${body})` : ''}`, hintForStatus(res.status));
}

async function readErrorBody(res: HttpResponse): Promise<string> {
  const text = (await readSmallBody(res, MAX_ERROR_BODY).catch(() => Buffer.alloc(0))).toString('utf8');
  try {
    const doc = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const errors = (doc.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(': '));
    if (errors.length > 0) return errors.join('; ');
  } catch {
    // not the registry's JSON error document; quote the start of the text
  }
  return text.trim().slice(0, 200);
}
