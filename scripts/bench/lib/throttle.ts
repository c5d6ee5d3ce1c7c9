/**
 * A bandwidth-limited link for the benchmark's second scenario: local HTTP forwarders, one per upstream origin,
 * whose responses all pass through one shared limit (say 50 MB/s), as if the build machine reached every upstream
 * over the same internet connection. The build (through `--mirror`) and curl (through the same URLs) then compete
 * for the same link, as they would on a real site.
 *
 * Each forwarder passes the request on to its origin unchanged (method, path, headers, body; Host set to the
 * origin's) and streams the answer back, in pieces of at most 64 KiB, each sent only when the link has room for
 * it. A redirect to another origin (a registry's blob CDN) is rewritten to that origin's forwarder, started on
 * first use, so the bytes behind a redirect cross the link too.
 */
import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const PIECE = 64 * 1024;
/** Credit an idle link may bank, so that timer jitter does not cost throughput. */
const BURST_MS = 20;
const HOST = '127.0.0.1';

export interface ThrottledLink {
  /** `url` with its origin replaced by that origin's forwarder (started on first use). */
  via(url: string): Promise<string>;
  /** Bytes sent through the link so far. */
  readonly bytes: number;
  stop(): Promise<void>;
}

/** Start a link that carries at most `bytesPerSecond` in total, for any origin asked of `via`. */
export function startThrottledLink(bytesPerSecond: number): ThrottledLink {
  const pacer = new Pacer(bytesPerSecond);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const forwarders = new Map<string, Promise<Forwarder>>();
  const forwarderFor = (origin: string): Promise<Forwarder> => {
    let forwarder = forwarders.get(origin);
    if (!forwarder) {
      forwarder = startForwarder(origin, { pacer, agent, forwarderFor });
      forwarders.set(origin, forwarder);
    }
    return forwarder;
  };
  return {
    async via(url) {
      const target = new URL(url);
      const forwarder = await forwarderFor(target.origin);
      return `${forwarder.url}${target.pathname}${target.search}`;
    },
    get bytes() {
      return pacer.bytes;
    },
    async stop() {
      const started = await Promise.all(forwarders.values());
      await Promise.all(started.map((f) => f.stop()));
      agent.destroy();
    },
  };
}

/** Hands out send times so that all pieces together never exceed the rate (first come, first served). */
class Pacer {
  bytes = 0;
  private nextFree = 0;

  constructor(private readonly bytesPerSecond: number) {}

  /** Wait until `size` more bytes may go out. */
  async reserve(size: number): Promise<void> {
    const now = performance.now();
    const start = Math.max(this.nextFree, now - BURST_MS);
    this.nextFree = start + (size / this.bytesPerSecond) * 1000;
    this.bytes += size;
    const wait = this.nextFree - now;
    if (wait >= 1) await sleep(wait);
  }
}

interface Forwarder {
  url: string;
  stop(): Promise<void>;
}

interface LinkParts {
  pacer: Pacer;
  agent: Agent;
  forwarderFor(origin: string): Promise<Forwarder>;
}

async function startForwarder(origin: string, link: LinkParts): Promise<Forwarder> {
  const target = new URL(origin);
  if (target.protocol !== 'http:') throw new Error(`the throttled link forwards plain HTTP only, not ${origin}`);
  const server: Server = createServer((req, res) => {
    forward(target, req, res, link).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`forwarding to ${origin} failed: ${(err as Error).message}\n`);
    });
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${HOST}:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function forward(target: URL, req: IncomingMessage, res: ServerResponse, link: LinkParts): Promise<void> {
  const upstream = httpRequest({
    host: target.hostname,
    port: target.port || 80,
    method: req.method,
    path: req.url,
    headers: { ...req.headers, host: target.host },
    agent: link.agent,
  });
  req.pipe(upstream);
  const [answer] = (await once(upstream, 'response')) as [IncomingMessage];
  upstream.on('error', () => undefined); // a later failure surfaces as an error of `answer`, handled below
  const headers = { ...answer.headers };
  if (headers.location) headers.location = await rewriteLocation(headers.location, target, link);
  res.writeHead(answer.statusCode ?? 502, headers);
  for await (const chunk of answer as AsyncIterable<Buffer>) {
    for (let at = 0; at < chunk.length; at += PIECE) {
      const piece = chunk.subarray(at, at + PIECE);
      await link.pacer.reserve(piece.length);
      if (res.destroyed) {
        answer.destroy(); // the client went away
        return;
      }
      if (!res.write(piece)) await drainedOrClosed(res);
    }
  }
  res.end();
}

async function drainedOrClosed(res: ServerResponse): Promise<void> {
  const done = new AbortController();
  try {
    await Promise.race([once(res, 'drain', { signal: done.signal }), once(res, 'close', { signal: done.signal })]);
  } finally {
    done.abort(); // drops the listener that lost
  }
}

/** A redirect to an absolute URL (on any origin, this one too) goes through that origin's forwarder instead. */
async function rewriteLocation(location: string, from: URL, link: LinkParts): Promise<string> {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(location)) return location; // relative: stays on this forwarder
  const next = new URL(location, from);
  if (next.protocol !== 'http:') return location;
  const forwarder = await link.forwarderFor(next.origin);
  return `${forwarder.url}${next.pathname}${next.search}`;
}
