import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { BlobCache, FileWriter } from '../../src/core/cache.js';
import { Fetcher, type FetcherOptions, type ProgressEvent } from '../../src/core/fetch.js';
import { UserError } from '../../src/util/errors.js';
import { serveBytes, startHttpServer, useHttpTestbed } from './helpers/fake-registry.js';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const data = randomBytes(256 * 1024);
const hex = createHash('sha256').update(data).digest('hex');

const bed = useHttpTestbed('kb-fetch-');
const server = bed.server;

let cacheCount = 0;
function newFetcher(options: Partial<FetcherOptions> = {}, cacheDir?: string): Fetcher {
  const dir = cacheDir ?? path.join(bed.dir(), `cache-${++cacheCount}`);
  return new Fetcher({ cache: new BlobCache(dir), retry: { attempts: 3, baseDelayMs: 10 }, timeouts: { connectMs: 2000, idleMs: 2000 }, ...options });
}

async function assertUserError(promise: Promise<unknown>, ...fragments: string[]): Promise<UserError> {
  const err = await promise.then(
    () => assert.fail('expected a UserError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof UserError, `expected UserError, got ${String(err)}`);
  for (const fragment of fragments) assert.ok(err.message.includes(fragment), `'${err.message}' should mention '${fragment}'`);
  return err;
}

async function listFiles(dir: string): Promise<string[]> {
  return existsSync(dir) ? readdir(dir) : [];
}

describe('fetchToCache', () => {
  test('downloads, verifies and stores by sha256; a second fetch is a cache hit with 0 bytes fetched', async () => {
    const s = await server((req, res) => serveBytes(req, res, data));
    const fetcher = newFetcher();
    const first = await fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: `sha256:${hex}`, size: data.length } });
    assert.equal(first.fromCache, false);
    assert.equal(first.bytesFetched, data.length);
    assert.equal(first.path, path.join(fetcher.cache.root, 'blobs', 'sha256', hex));
    assert.deepEqual(await readFile(first.path), data);

    const second = await fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    assert.equal(second.fromCache, true);
    assert.equal(second.bytesFetched, 0);
    assert.equal(s.requests.length, 1, 'the hit must not touch the network');
    assert.deepEqual(fetcher.stats, { bytesFetched: data.length, metadataBytesFetched: 0, bytesFromCache: data.length, itemsFetched: 1, itemsFromCache: 1 });
    assert.deepEqual(await listFiles(fetcher.cache.tmpDir), [], 'no partial left behind');
  });

  test('says which content it downloaded and verified itself, never what it found in the cache', async () => {
    const s = await server((req, res) => serveBytes(req, res, data));
    const fetcher = newFetcher();
    assert.equal(fetcher.downloadedAndVerified(hex), false);
    await fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    assert.equal(fetcher.downloadedAndVerified(`sha256:${hex}`), true);
    const later = new Fetcher({ cache: fetcher.cache });
    await later.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    assert.equal(later.downloadedAndVerified(hex), false, 'a cache hit, which the packer hashes again');
  });

  test('shows each piece of the body to a watcher with its offset, as it goes to disk', async () => {
    const s = await server((req, res) => serveBytes(req, res, data));
    const pieces: [number, number][] = [];
    const fetcher = newFetcher();
    const stop = fetcher.watch(hex, (chunk, offset) => pieces.push([offset, chunk.length]));
    await fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    stop();
    let next = 0;
    for (const [offset, length] of pieces) {
      assert.equal(offset, next);
      next += length;
    }
    assert.equal(next, data.length);
  });

  test('watch shows a download under way from the next piece on, until told to stop', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const half = Math.floor(data.length / 2);
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': data.length });
      res.write(data.subarray(0, half));
      void released.then(() => res.end(data.subarray(half)));
    });
    const fetcher = newFetcher();
    const seen: [number, number][] = [];
    let firstPieces = 0;
    const stopFirst = fetcher.watch(hex, () => firstPieces++);
    const download = fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    while (firstPieces === 0) await delay(5);
    stopFirst();
    const stop = fetcher.watch(`sha256:${hex}`, (chunk, offset) => seen.push([offset, chunk.length]));
    release();
    await download;
    stop();
    assert.ok(seen.length > 0 && (seen[0] as [number, number])[0] > 0, 'it starts mid-way, at the next piece');
    let next = (seen[0] as [number, number])[0];
    for (const [offset, length] of seen) {
      assert.equal(offset, next);
      next += length;
    }
    assert.equal(next, data.length);
  });

  test('without an expected digest the content is stored under the sha256 it turns out to have', async () => {
    const s = await server((req, res) => serveBytes(req, res, data));
    const result = await newFetcher().fetchToCache({ url: `${s.base}/x`, expected: {} });
    assert.equal(result.sha256, hex);
    assert.deepEqual(await readFile(result.path), data);
  });

  test('resumes with Range after the server cuts the connection mid-body', async () => {
    const cutAt = 100_000;
    const s = await server((req, res, n) => {
      if (n === 1) {
        res.writeHead(200, { 'content-length': data.length });
        res.write(data.subarray(0, cutAt), () => req.socket.destroy());
      } else serveBytes(req, res, data);
    });
    const fetcher = newFetcher();
    const result = await fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    assert.deepEqual(await readFile(result.path), data);
    assert.equal(s.requests.length, 2);
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(s.requests[1]?.headers.range ?? '')?.[1]);
    assert.ok(resumedFrom > 0 && resumedFrom <= cutAt, `second request resumes (Range: ${s.requests[1]?.headers.range})`);
    assert.equal(result.bytesFetched, data.length - resumedFrom, 'the call counts only the resumed part');
    assert.equal(fetcher.stats.bytesFetched, data.length, 'nothing was fetched twice');
  });

  test('restarts cleanly when the server ignores Range and answers 200', async () => {
    const fetcher = newFetcher();
    const partial = await fetcher.cache.partialPath(hex);
    await writeFile(partial, data.subarray(0, 5000));
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': data.length }).end(data);
    });
    const result = await fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    assert.equal(s.requests[0]?.headers.range, 'bytes=5000-');
    assert.deepEqual(await readFile(result.path), data);
    assert.equal(result.bytesFetched, data.length);
  });

  test('a corrupt partial is detected after resuming, discarded, and the download starts over', async () => {
    const fetcher = newFetcher();
    const partial = await fetcher.cache.partialPath(hex);
    await writeFile(partial, randomBytes(5000));
    const s = await server((req, res) => serveBytes(req, res, data));
    const result = await fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    assert.deepEqual(await readFile(result.path), data);
    assert.deepEqual(
      s.requests.map((r) => r.headers.range),
      ['bytes=5000-', undefined],
    );
  });

  test('a blob whose content does not match its digest is refused, naming label and URL, and never cached', async () => {
    const evil = Buffer.from(data);
    evil[1000] = (evil[1000] ?? 0) ^ 0xff;
    const s = await server((req, res) => serveBytes(req, res, evil));
    const fetcher = newFetcher();
    const url = `${s.base}/layer`;
    await assertUserError(fetcher.fetchToCache({ url, expected: { sha256: hex, size: data.length }, label: 'my layer' }), 'my layer', url, hex);
    assert.deepEqual(await listFiles(fetcher.cache.blobsDir), []);
    assert.deepEqual(await listFiles(fetcher.cache.tmpDir), [], 'the bad bytes are not kept for resuming');
  });

  test('a server sending more than the expected size is stopped', async () => {
    // No Content-Length (chunked), so only counting the body can notice.
    const s = await server((_req, res) => {
      res.write(data);
      res.end('extra');
    });
    const url = `${s.base}/big`;
    await assertUserError(newFetcher().fetchToCache({ url, expected: { sha256: hex, size: data.length } }), url, 'more than the expected');
  });

  for (const status of [404, 401, 403]) {
    test(`HTTP ${status} is a UserError naming the artifact and URL, not retried`, async () => {
      const s = await server((_req, res) => res.writeHead(status).end('no'));
      const url = `${s.base}/missing.deb`;
      await assertUserError(newFetcher().fetchToCache({ url, expected: {}, label: 'kubeadm 1.32.3' }), 'kubeadm 1.32.3', url, String(status));
      assert.equal(s.requests.length, 1);
    });
  }

  test('5xx is retried with backoff, and succeeds when the server recovers', async () => {
    const s = await server((req, res, n) => (n <= 2 ? res.writeHead(503).end() : serveBytes(req, res, data)));
    const result = await newFetcher().fetchToCache({ url: `${s.base}/flaky`, expected: { sha256: hex } });
    assert.equal(s.requests.length, 3);
    assert.equal(result.size, data.length);
  });

  test('persistent 5xx ends in a UserError naming the URL after the configured attempts', async () => {
    const s = await server((_req, res) => res.writeHead(502).end());
    const url = `${s.base}/down`;
    await assertUserError(newFetcher().fetchToCache({ url, expected: { sha256: hex } }), url, '3 attempt', '502');
    assert.equal(s.requests.length, 3);
  });

  test('an idle server trips the idle timeout: UserError naming the URL', async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': data.length });
      res.write(data.subarray(0, 1000));
    });
    const url = `${s.base}/stall`;
    const fetcher = newFetcher({ timeouts: { idleMs: 200 }, retry: { attempts: 2, baseDelayMs: 10 } });
    await assertUserError(fetcher.fetchToCache({ url, expected: { sha256: hex, size: data.length } }), url, 'timed out');
    assert.equal(s.requests.length, 2);
    assert.equal(s.requests[1]?.headers.range, 'bytes=1000-', 'the retry resumes what the stalled try saved');
  });

  test('a refused connection is a UserError naming the URL', async () => {
    const s = await startHttpServer(() => undefined);
    await s.close();
    const url = `${s.base}/gone`;
    await assertUserError(newFetcher({ retry: { attempts: 1, baseDelayMs: 1 } }).fetchToCache({ url, expected: {} }), url, 'ECONNREFUSED');
  });

  test('redirects are followed; credentials go only to the origin they were meant for', async () => {
    const other = await server((req, res) => serveBytes(req, res, data));
    const origin = await server((req, res) => {
      if (req.url === '/start') res.writeHead(302, { location: '/same-origin' }).end();
      else res.writeHead(307, { location: `${other.base}/elsewhere?signature=1` }).end();
    });
    const headers = { authorization: 'Bearer secret', cookie: 'session=1', 'x-trace': 'keep' };
    await newFetcher().fetchToCache({ url: `${origin.base}/start`, headers, expected: { sha256: hex } });
    assert.deepEqual(
      origin.requests.map((r) => [r.url, r.headers.authorization]),
      [
        ['/start', 'Bearer secret'],
        ['/same-origin', 'Bearer secret'],
      ],
    );
    const [cross] = other.requests;
    assert.equal(cross?.url, '/elsewhere?signature=1');
    assert.equal(cross?.headers.authorization, undefined);
    assert.equal(cross?.headers.cookie, undefined);
    assert.equal(cross?.headers['x-trace'], 'keep');
  });

  test('never runs more downloads at once than the concurrency limit', async () => {
    let active = 0;
    let peak = 0;
    const blobs = Array.from({ length: 6 }, (_, i) => Buffer.from(`blob ${i} `.repeat(1000)));
    const s = await server((req, res) => {
      active++;
      peak = Math.max(peak, active);
      const body = blobs[Number(req.url?.slice(1))] as Buffer;
      setTimeout(() => {
        active--;
        serveBytes(req, res, body);
      }, 30);
    });
    const fetcher = newFetcher({ concurrency: 2 });
    const results = await Promise.all(
      blobs.map((b, i) => fetcher.fetchToCache({ url: `${s.base}/${i}`, expected: { sha256: createHash('sha256').update(b).digest('hex') } })),
    );
    assert.equal(results.length, 6);
    assert.equal(peak, 2);
  });

  test('simultaneous requests for the same content share one download', async () => {
    const s = await server((req, res) => setTimeout(() => serveBytes(req, res, data), 20));
    const fetcher = newFetcher();
    const request = { url: `${s.base}/shared`, expected: { sha256: hex, size: data.length } };
    const [a, b] = await Promise.all([fetcher.fetchToCache(request), fetcher.fetchToCache(request)]);
    assert.equal(s.requests.length, 1);
    assert.equal(a.path, b.path);
  });

  test('reports per-item and aggregate progress, ending at the total', async () => {
    const small = Buffer.from('small blob');
    const s = await server((req, res) => serveBytes(req, res, req.url === '/a' ? data : small));
    const events: ProgressEvent[] = [];
    const fetcher = newFetcher({ onProgress: (e) => events.push(e) });
    await Promise.all([
      fetcher.fetchToCache({ url: `${s.base}/a`, expected: { sha256: hex, size: data.length }, label: 'A' }),
      fetcher.fetchToCache({ url: `${s.base}/b`, expected: { sha256: createHash('sha256').update(small).digest('hex'), size: small.length }, label: 'B' }),
    ]);
    const last = events.at(-1) as ProgressEvent;
    assert.equal(last.total, data.length + small.length);
    assert.equal(last.done, last.total);
    assert.equal(last.fetched, data.length + small.length);
    const lastA = events.filter((e) => e.label === 'A').at(-1);
    assert.deepEqual([lastA?.itemDone, lastA?.itemTotal], [data.length, data.length]);
    assert.ok(events.every((e, i) => i === 0 || e.fetched >= (events[i - 1] as ProgressEvent).fetched), 'aggregate never goes backwards');
  });

  test('a killed download leaves only a partial, never a cache entry; the next run resumes it', async () => {
    const big = randomBytes(4 * 1024 * 1024);
    const bigHex = createHash('sha256').update(big).digest('hex');
    const sent = 1024 * 1024;
    const s = await server((req, res, n) => {
      if (n > 1) return serveBytes(req, res, big);
      res.writeHead(200, { 'content-length': big.length });
      res.write(big.subarray(0, sent)); // then stall until the client is killed
    });
    const cacheDir = path.join(bed.dir(), 'killed');
    const script = `
      const { BlobCache } = await import(${JSON.stringify(path.join(REPO_ROOT, 'src/core/cache.ts'))});
      const { Fetcher } = await import(${JSON.stringify(path.join(REPO_ROOT, 'src/core/fetch.ts'))});
      const fetcher = new Fetcher({ cache: new BlobCache(${JSON.stringify(cacheDir)}) });
      await fetcher.fetchToCache({ url: ${JSON.stringify(`${s.base}/big`)}, expected: { sha256: ${JSON.stringify(bigHex)}, size: ${big.length} } });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const partial = path.join(cacheDir, 'tmp', `${bigHex}.partial`);
    await waitFor(async () => existsSync(partial) && (await stat(partial)).size === sent, 20_000);
    child.kill('SIGKILL');
    await exited;

    assert.deepEqual(await listFiles(path.join(cacheDir, 'blobs', 'sha256')), [], 'no cache entry from a killed download');
    const fetcher = newFetcher({}, cacheDir);
    const result = await fetcher.fetchToCache({ url: `${s.base}/big`, expected: { sha256: bigHex, size: big.length } });
    assert.equal(s.requests[1]?.headers.range, `bytes=${sent}-`);
    assert.equal(result.bytesFetched, big.length - sent);
    assert.equal(createHash('sha256').update(await readFile(result.path)).digest('hex'), bigHex);
  });

  test('streams a 512 MiB blob with a small, bounded memory footprint', async () => {
    const chunk = randomBytes(1024 * 1024);
    const chunks = 512;
    const hash = createHash('sha256');
    for (let i = 0; i < chunks; i++) hash.update(chunk);
    const bigHex = hash.digest('hex');
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': chunk.length * chunks });
      let sent = 0;
      const pump = (): void => {
        while (sent < chunks) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    const cacheDir = path.join(bed.dir(), 'huge');
    const script = `
      const { BlobCache } = await import(${JSON.stringify(path.join(REPO_ROOT, 'src/core/cache.ts'))});
      const { Fetcher } = await import(${JSON.stringify(path.join(REPO_ROOT, 'src/core/fetch.ts'))});
      const fetcher = new Fetcher({ cache: new BlobCache(${JSON.stringify(cacheDir)}) });
      const r = await fetcher.fetchToCache({ url: ${JSON.stringify(`${s.base}/huge`)}, expected: { sha256: ${JSON.stringify(bigHex)}, size: ${chunk.length * chunks} } });
      process.stdout.write(JSON.stringify({ size: r.size, maxRssKiB: process.resourceUsage().maxRSS }));
    `;
    const output = await runNode(script);
    const { size, maxRssKiB } = JSON.parse(output) as { size: number; maxRssKiB: number };
    assert.equal(size, chunk.length * chunks);
    assert.ok(maxRssKiB < 250 * 1024, `peak RSS ${Math.round(maxRssKiB / 1024)} MiB must stay under 250 MiB`);
    await rm(cacheDir, { recursive: true, force: true });
  });
});

describe('BlobCache', () => {
  test('putBytes stores small content under its sha256, atomically and idempotently', async () => {
    const cache = new BlobCache(path.join(bed.dir(), 'put'));
    const bytes = Buffer.from('{"schemaVersion":2}');
    const key = await cache.putBytes(bytes);
    assert.equal(key, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(await cache.putBytes(bytes), key);
    assert.deepEqual(await readFile(cache.blobPath(key)), bytes);
    assert.deepEqual(await listFiles(cache.tmpDir), []);
  });

  test('a cached file of the wrong size is evicted and fetched again', async () => {
    const fetcher = newFetcher();
    await mkdir(fetcher.cache.blobsDir, { recursive: true });
    await writeFile(fetcher.cache.blobPath(hex), 'truncated');
    const s = await server((req, res) => serveBytes(req, res, data));
    const result = await fetcher.fetchToCache({ url: `${s.base}/blob`, expected: { sha256: hex, size: data.length } });
    assert.equal(result.fromCache, false);
    assert.deepEqual(await readFile(result.path), data);
  });
});

describe('FileWriter', () => {
  test('writes every chunk in order across batches: tiny chunks, big ones, and a resumed file', async () => {
    const file = path.join(bed.dir(), 'writer-order');
    const chunks = [
      ...Array.from({ length: 700 }, (_, i) => Buffer.from([i % 256])), // more than one batch's worth of chunks
      randomBytes(3 << 20), // more than one batch's worth of bytes
      ...Array.from({ length: 50 }, () => randomBytes(40_000)),
    ];
    const writer = new FileWriter(await open(file, 'w'));
    for (const chunk of chunks.slice(0, 400)) await writer.write(chunk);
    await writer.close();
    const resumed = new FileWriter(await open(file, 'a'));
    for (const chunk of chunks.slice(400)) await resumed.write(chunk);
    await resumed.close();
    assert.deepEqual(await readFile(file), Buffer.concat(chunks));
  });

  test('a failing write is thrown by close, after the file is closed, and never left unhandled', async () => {
    const file = path.join(bed.dir(), 'writer-fails');
    await writeFile(file, 'x');
    const handle = await open(file, 'r'); // writes fail with EBADF
    const writer = new FileWriter(handle);
    await writer.write(randomBytes(2 << 20)).catch(() => undefined); // may already see the failure
    await assert.rejects(writer.close(), /EBADF|bad file descriptor/i);
    await assert.rejects(handle.stat(), /closed/i);
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await delay(20);
  }
}

function runNode(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`))));
  });
}
