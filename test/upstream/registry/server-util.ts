/** Small HTTP helpers shared by the registry front ends, the blob CDNs and the token servers. */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** Listen on `host` at a free port; resolves with the port. */
export function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections(); // keep-alive clients (skopeo, undici) would otherwise hold close() open
  });
}

/** Attach `handler`, turning a thrown error into a 500 that names the request. */
export function serve(server: Server, handler: Handler): void {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handler(req, res).catch((err: Error) => {
      const text = `internal error handling ${req.method} ${req.url}: ${err.message}\n`;
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(text);
    });
  });
}

/** `http://host:port`, with brackets for an IPv6 literal. */
export function baseUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A distribution-style error body: {"errors":[{"code","message","detail"}]}. */
export function sendRegistryError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { errors: [{ code, message, detail: null }] }, headers);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
}

export function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? '/', 'http://request.invalid');
}
