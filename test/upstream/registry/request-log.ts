/** Which requests each simulated upstream saw, so tests can assert e.g. "the second build fetched 0 blobs". */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { UPSTREAM_NAMES, type UpstreamName } from '../images.js';

/**
 * ping: /v2/ · manifest, blob, tags: /v2/<name>/… on the registry host (blob = the request that gets the 307) ·
 * upload: /v2/<name>/blobs/uploads/… (a push attempt) · token: the token endpoint · cdn: a request to the blob CDN
 * host (the bytes) · other: anything else.
 */
export type RequestKind = 'ping' | 'manifest' | 'blob' | 'tags' | 'upload' | 'token' | 'cdn' | 'other';
export type RequestCounts = Record<RequestKind, number>;

export interface RequestRecord {
  upstream: UpstreamName;
  kind: RequestKind;
  method: string;
  /** request target as sent, query included */
  url: string;
  status: number;
  authorization: boolean;
}

export class RequestLog {
  readonly records: RequestRecord[] = [];
  /** Live counters (the objects stay the same across reset()). */
  readonly counts = Object.fromEntries(UPSTREAM_NAMES.map((name) => [name, zeroCounts()])) as Record<
    UpstreamName,
    RequestCounts
  >;

  /** Count the request now, and log it with its status once the response is sent. */
  track(upstream: UpstreamName, kind: RequestKind, req: IncomingMessage, res: ServerResponse): void {
    this.counts[upstream][kind] += 1;
    res.once('finish', () => {
      this.records.push({
        upstream,
        kind,
        method: req.method ?? '',
        url: req.url ?? '',
        status: res.statusCode,
        authorization: req.headers.authorization !== undefined,
      });
    });
  }

  reset(): void {
    this.records.length = 0;
    for (const counts of Object.values(this.counts)) Object.assign(counts, zeroCounts());
  }
}

function zeroCounts(): RequestCounts {
  return { ping: 0, manifest: 0, blob: 0, tags: 0, upload: 0, token: 0, cdn: 0, other: 0 };
}
