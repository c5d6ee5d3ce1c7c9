/**
 * The static-file server behind the simulated upstreams (pkgs.k8s.io, GitHub releases and their CDNs). It behaves
 * like the object stores those services sit on: no directory listings (403), 404 for unknown paths, HEAD, single
 * byte ranges (206, 416) with If-Range, If-Modified-Since (304), S3's `response-content-disposition` parameter, and
 * optionally a 302 to another server instead of the bytes. Every request is logged so tests can show which server answered what.
 */
import { createReadStream, type Stats } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface StaticServerOptions {
  /** Directory whose files are served. */
  root: string;
  host: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** URL path prefix the root appears under, e.g. `/repositories/isv:/kubernetes:`; default none. */
  mount?: string;
  /**
   * For an existing file, an absolute URL to send the client to with a 302 instead of the bytes; undefined serves
   * the file here. Receives the decoded URL path (with the mount).
   */
  redirect?: (urlPath: string) => string | undefined;
  /** Content-Type for every file (GitHub's asset CDN says application/octet-stream for all); default by extension. */
  contentType?: string;
  /** Status for a directory: object stores say 403 (the default), GitHub's release pages 404. */
  directoryStatus?: 403 | 404;
}

export interface RequestRecord {
  method: string;
  /** the request target as sent, query included */
  url: string;
  status: number;
  range?: string;
}

export interface StaticServer {
  /** `http://host:port`, no trailing slash */
  url: string;
  requests: RequestRecord[];
  stop(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.deb': 'application/vnd.debian.binary-package',
  '.gz': 'application/gzip',
  '.yml': 'text/plain; charset=utf-8',
  '.yaml': 'text/plain; charset=utf-8',
};

/** Stop the servers of one simulated service and remove the directory it served from. */
export async function stopServing(servers: readonly StaticServer[], root: string): Promise<void> {
  await Promise.allSettled(servers.map((server) => server.stop()));
  await rm(root, { recursive: true, force: true });
}

export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const requests: RequestRecord[] = [];
  const server = http.createServer((req, res) => {
    res.on('finish', () => {
      const range = req.headers.range;
      requests.push({ method: req.method ?? '', url: req.url ?? '', status: res.statusCode, ...(range ? { range } : {}) });
    });
    handle(req, res, options).catch((err: Error) => {
      if (!res.headersSent) sendText(res, 500, `internal error: ${err.message}\n`);
      else res.destroy(err);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, options: StaticServerOptions): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return sendText(res, 405, 'method not allowed\n');
  }
  const urlPath = decodePath(req.url ?? '/');
  const file = urlPath === undefined ? undefined : fileFor(urlPath, options);
  if (urlPath === undefined || file === undefined) return sendText(res, 404, 'not found\n');
  const stats = await statOrUndefined(file);
  if (!stats) return sendText(res, 404, 'not found\n');
  // No listings: any directory, with or without a slash, is refused.
  if (stats.isDirectory()) {
    const status = options.directoryStatus ?? 403;
    return sendText(res, status, status === 403 ? 'forbidden\n' : 'not found\n');
  }
  const location = options.redirect?.(urlPath);
  if (location) {
    res.writeHead(302, { Location: location, 'Content-Length': 0 });
    return void res.end();
  }
  // S3 (behind GitHub's asset CDN) sets Content-Disposition from this signed-URL parameter; clients name files by it.
  const disposition = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('response-content-disposition');
  if (disposition) res.setHeader('Content-Disposition', disposition);
  sendFile(req, res, file, stats, options.contentType ?? TYPES[path.extname(file)] ?? 'application/octet-stream');
}

/** The decoded path without query, or undefined when it cannot be decoded or tries to climb out with `..`. */
function decodePath(target: string): string | undefined {
  const raw = target.split('?')[0] ?? '/';
  try {
    const decoded = decodeURIComponent(raw);
    return decoded.split('/').some((part) => part === '..' || part.includes('\0')) ? undefined : decoded;
  } catch {
    return undefined;
  }
}

function fileFor(urlPath: string, options: StaticServerOptions): string | undefined {
  const mount = options.mount ?? '';
  if (mount !== '' && urlPath !== mount && !urlPath.startsWith(`${mount}/`)) return undefined;
  return path.join(options.root, urlPath.slice(mount.length));
}

async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

function sendFile(req: http.IncomingMessage, res: http.ServerResponse, file: string, stats: Stats, contentType: string): void {
  const lastModified = stats.mtime.toUTCString();
  res.setHeader('Content-Type', contentType);
  res.setHeader('Last-Modified', lastModified);
  res.setHeader('Accept-Ranges', 'bytes');
  if (notModifiedSince(req.headers['if-modified-since'], stats.mtime)) {
    res.writeHead(304);
    return void res.end();
  }
  const rangeHeader = req.headers.range;
  const ifRange = req.headers['if-range'];
  const range = rangeHeader !== undefined && (ifRange === undefined || ifRange === lastModified) ? parseRange(rangeHeader, stats.size) : undefined;
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'Content-Range': `bytes */${stats.size}`, 'Content-Length': 0 });
    return void res.end();
  }
  const { start, end } = range ?? { start: 0, end: stats.size - 1 };
  if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${stats.size}`);
  res.writeHead(range ? 206 : 200, { 'Content-Length': Math.max(0, end - start + 1) });
  if (req.method === 'HEAD' || stats.size === 0) return void res.end();
  const stream = createReadStream(file, { start, end });
  stream.on('error', (err) => res.destroy(err));
  stream.pipe(res);
}

/** HTTP dates have whole seconds; a file is unmodified when its mtime, truncated, is not after the client's copy. */
function notModifiedSince(header: string | undefined, mtime: Date): boolean {
  if (header === undefined) return false;
  const since = Date.parse(header);
  return !Number.isNaN(since) && Math.floor(mtime.getTime() / 1000) * 1000 <= since;
}

/**
 * One byte range (`a-b`, `a-`, `-n`). Multiple ranges or a malformed header are ignored, which RFC 9110 allows:
 * the whole file is sent with 200.
 */
export function parseRange(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  const [first, last] = [match[1] ?? '', match[2] ?? ''];
  if (first === '') {
    const suffix = Number(last);
    return suffix === 0 || size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return undefined;
  return start >= size ? 'unsatisfiable' : { start, end };
}

function sendText(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
