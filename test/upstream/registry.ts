/**
 * Simulated registry.k8s.io, ghcr.io and docker.io for the tests: one real distribution registry holding the test
 * images (images.ts) under `<upstream>/<repository>`, and per upstream a read-only front that behaves like the real
 * service (registry/frontend.ts), a blob CDN on another host:port that the front redirects blob requests to
 * (registry/cdn.ts), and for docker.io a token server on yet another host:port (like auth.docker.io).
 *
 * When `host` is 127.0.0.1, the CDN and auth URLs say `localhost`, so the redirect and the realm change the host
 * name as well as the port (as with the real services); clients must follow them without carrying credentials.
 */
import { createServer } from 'node:http';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startDistribution } from './distribution.js';
import { catalogueEntry, generateUpstreamImages, type UpstreamImage, type UpstreamName } from './images.js';
import { startBlobCdn } from './registry/cdn.js';
import { TEST_CACHE_DIR } from './registry/debian-package.js';
import { frontendHandler, tokenServerHandler, type FrontendContext, type TokenAuth } from './registry/frontend.js';
import { pushImage } from './registry/push.js';
import { RequestLog, type RequestCounts, type RequestRecord } from './registry/request-log.js';
import { baseUrl, closeServer, listen, serve } from './registry/server-util.js';
import { Signer } from './registry/signing.js';

export type { RequestCounts, RequestKind, RequestRecord } from './registry/request-log.js';
export type { UpstreamName } from './images.js';

export interface RegistriesOptions {
  /** address every listener binds to and the host name in the registry URLs, e.g. 127.0.0.1 */
  host: string;
  /** a scratch directory for the backend's storage is created (and removed on stop) under it */
  workDir: string;
  cacheDir?: string;
  /** also hold the images of the upgrade releases (images.ts) */
  upgrades?: boolean;
}

export interface UpstreamRegistries {
  /** base URL (`http://host:port`, no trailing slash) of each simulated registry host */
  registries: Record<UpstreamName, string>;
  images: readonly UpstreamImage[];
  /** live request counters per upstream: counts['ghcr.io'].blob etc. (see RequestKind) */
  counts: Record<UpstreamName, RequestCounts>;
  /** every answered request, in order */
  requests: readonly RequestRecord[];
  resetCounts(): void;
  /** the distribution backend itself (no auth, writable), repositories named `<upstream>/<repository>` */
  backendUrl: string;
  stop(): Promise<void>;
}

/** How each real service differs from plain distribution (reference sheet §3, §4). */
interface UpstreamProfile {
  name: UpstreamName;
  /** null: anonymous pulls (registry.k8s.io) */
  auth: TokenAuth | null;
  /** ghcr.io: 404 MANIFEST_UNKNOWN for an OCI index unless the Accept header lists the OCI index type */
  ociIndexRequiresAccept: boolean;
}

const PROFILES: readonly UpstreamProfile[] = [
  { name: 'registry.k8s.io', auth: null, ociIndexRequiresAccept: false },
  {
    name: 'ghcr.io',
    auth: { service: 'ghcr.io', responseStyle: 'token-only', tokenHost: 'registry' },
    ociIndexRequiresAccept: true,
  },
  {
    name: 'docker.io',
    auth: { service: 'registry.docker.io', responseStyle: 'oauth', tokenHost: 'separate' },
    ociIndexRequiresAccept: false,
  },
];

export async function startRegistries(options: RegistriesOptions): Promise<UpstreamRegistries> {
  const cacheDir = options.cacheDir ?? TEST_CACHE_DIR;
  const images = await generateUpstreamImages(cacheDir, { upgrades: options.upgrades ?? false });
  const stops: (() => Promise<void>)[] = [];
  try {
    await mkdir(options.workDir, { recursive: true });
    const scratch = await mkdtemp(join(options.workDir, 'registry-'));
    stops.push(() => rm(scratch, { recursive: true, force: true }));
    const backend = await startDistribution({ workDir: scratch, cacheDir });
    stops.push(backend.stop);
    // Images in parallel (each one's own pushes stay in order): halves the start time on a 2-core machine.
    await Promise.all(images.map((image) => pushImage(backend.url, `${image.registry}/${image.repository}`, image)));

    const log = new RequestLog();
    const signer = new Signer();
    const registries = {} as Record<UpstreamName, string>;
    for (const profile of PROFILES) {
      registries[profile.name] = await startUpstream(profile, { ...options, backendUrl: backend.url, log, signer, stops });
    }
    return {
      registries,
      images: images.map(catalogueEntry),
      counts: log.counts,
      requests: log.records,
      resetCounts: () => log.reset(),
      backendUrl: backend.url,
      stop: () => stopAll(stops),
    };
  } catch (err) {
    await stopAll(stops).catch(() => {}); // the start failure is the error worth reporting
    throw err;
  }
}

interface StartContext {
  host: string;
  backendUrl: string;
  log: RequestLog;
  signer: Signer;
  /** each started listener adds its stop here */
  stops: (() => Promise<void>)[];
}

/** CDN, token server if separate, and the registry host of one upstream; returns the registry host's URL. */
async function startUpstream(profile: UpstreamProfile, context: StartContext): Promise<string> {
  const { host, log, signer } = context;
  const publicHost = otherHostName(host);
  const cdn = await startBlobCdn({ upstream: profile.name, host, publicHost, backendUrl: context.backendUrl, signer, log });
  context.stops.push(cdn.stop);

  const registryServer = createServer();
  const registryPort = await listen(registryServer, host);
  context.stops.push(() => closeServer(registryServer));
  const registryUrl = baseUrl(host, registryPort);

  let auth: FrontendContext['auth'] = null;
  if (profile.auth?.tokenHost === 'registry') auth = { ...profile.auth, realm: `${registryUrl}/token` };
  if (profile.auth?.tokenHost === 'separate') {
    const authServer = createServer();
    const authPort = await listen(authServer, host);
    context.stops.push(() => closeServer(authServer));
    serve(authServer, tokenServerHandler(profile.name, profile.auth, signer, log));
    auth = { ...profile.auth, realm: `${baseUrl(publicHost, authPort)}/token` };
  }
  serve(
    registryServer,
    frontendHandler({
      upstream: profile.name,
      auth,
      ociIndexRequiresAccept: profile.ociIndexRequiresAccept,
      backendUrl: context.backendUrl,
      cdn,
      signer,
      log,
    }),
  );
  return registryUrl;
}

/** A second name for the same address, so cross-host redirects change the host name too (see file comment). */
function otherHostName(host: string): string {
  return host === '127.0.0.1' ? 'localhost' : host;
}

/** In reverse start order: listeners, then the backend, then its storage. Stops them all even if one fails. */
async function stopAll(stops: (() => Promise<void>)[]): Promise<void> {
  let firstError: unknown;
  for (const stop of [...stops].reverse()) {
    try {
      await stop();
    } catch (err) {
      firstError ??= err;
    }
  }
  if (firstError !== undefined) throw firstError;
}
