/**
 * What the downloader refuses and hides: a redirect from https to plain http (the guard itself, and through got
 * against a local https server with a self-signed certificate), and a mirror URL's credentials or a query token in
 * any message it produces.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BlobCache } from '../../src/core/cache.js';
import { Fetcher } from '../../src/core/fetch.js';
import { checkRedirect } from '../../src/core/http.js';
import { UserError } from '../../src/util/errors.js';
import { serveBytes, startHttpServer, useHttpTestbed } from './helpers/fake-registry.js';

const data = randomBytes(4096);
const hex = createHash('sha256').update(data).digest('hex');

const bed = useHttpTestbed('kb-fetch-safety-');
const server = bed.server;

let caches = 0;
function newFetcher(): Fetcher {
  return new Fetcher({ cache: new BlobCache(path.join(bed.dir(), `cache-${++caches}`)), retry: { attempts: 2, baseDelayMs: 1 }, timeouts: { connectMs: 2000, idleMs: 2000 } });
}

async function failure(promise: Promise<unknown>): Promise<UserError> {
  const err = await promise.then(() => assert.fail('expected a failure'), (e: unknown) => e);
  assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
  return err;
}

describe('redirects', () => {
  test('from https to http is refused, naming both URLs (redacted)', () => {
    const from = new URL('https://github.com/flannel-io/flannel/releases/download/v0.26.5/kube-flannel.yml');
    const to = new URL('http://cdn.example/asset/1?X-Amz-Signature=abc123');
    assert.throws(
      () => checkRedirect(from, to),
      (e: unknown) =>
        e instanceof UserError &&
        e.message.includes(from.href) &&
        e.message.includes('http://cdn.example/asset/1?***') &&
        !e.message.includes('abc123') &&
        /from https to http/.test(e.message),
    );
  });

  test('https to https, http to http and http to https are followed', () => {
    for (const [from, to] of [
      ['https://a.example/x', 'https://b.example/y'],
      ['http://a.example/x', 'http://b.example/y'],
      ['http://a.example/x', 'https://a.example/y'],
    ] as const) {
      assert.doesNotThrow(() => checkRedirect(new URL(from), new URL(to)), `${from} -> ${to}`);
    }
  });

  test('an https server redirecting to http is refused by the fetcher, which never asks the http server', async (t) => {
    let cert: { key: string; cert: string };
    try {
      const key = path.join(bed.dir(), 'key.pem');
      const crt = path.join(bed.dir(), 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', crt], { stdio: 'pipe' });
      cert = { key: await readFile(key, 'utf8'), cert: await readFile(crt, 'utf8') };
    } catch {
      t.skip('openssl is not available to make a test certificate');
      return;
    }
    const plain = await server((req, res) => serveBytes(req, res, data));
    const tls = https.createServer(cert, (req, res) => {
      if (req.url === '/same') res.writeHead(302, { location: '/there' }).end();
      else if (req.url === '/there') serveBytes(req, res, data);
      else res.writeHead(302, { location: `${plain.base}/file?token=s3cret` }).end();
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const base = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
    // the test's own CA for this process's https requests (got goes through node's global agent), put back after
    const agentOptions = https.globalAgent.options as { ca?: string | Buffer | (string | Buffer)[] };
    const before = agentOptions.ca;
    agentOptions.ca = cert.cert;
    try {
      // https -> https on the same server works: the certificate is trusted, so a refusal below is the guard's
      const ok = await newFetcher().fetchToCache({ url: `${base}/same`, expected: { sha256: hex } });
      assert.equal(ok.sha256, hex);

      const err = await failure(newFetcher().fetchToCache({ url: `${base}/down`, expected: { sha256: hex } }));
      assert.ok(err.message.includes(`${base}/down`), err.message);
      assert.ok(err.message.includes(`${plain.base}/file?***`), err.message);
      assert.match(err.message, /refusing a redirect from https to http/);
      assert.ok(!err.message.includes('s3cret'));
      assert.deepEqual(plain.requests, [], 'the http server was never asked');
    } finally {
      agentOptions.ca = before;
      tls.closeAllConnections();
      await new Promise<void>((resolve) => tls.close(() => resolve()));
    }
  });
});

describe('credentials never appear in messages', () => {
  const SECRET = 'pa55word';
  const TOKEN = 'tok3n';

  const assertClean = (err: UserError) => {
    const text = `${err.message}\n${err.hint ?? ''}`;
    assert.ok(!text.includes(SECRET), `password leaked: ${text}`);
    assert.ok(!text.includes(TOKEN), `token leaked: ${text}`);
  };

  test('an HTTP error from a mirror URL with user:password', async () => {
    const s = await server((_req, res) => res.writeHead(404).end());
    const url = `${s.base.replace('http://', `http://mirror:${SECRET}@`)}/debs/x.deb`;
    const err = await failure(newFetcher().fetchToCache({ url, expected: { sha256: hex } }));
    assert.match(err.message, /HTTP 404/);
    assert.ok(err.message.includes(`http://***@127.0.0.1`), err.message);
    assertClean(err);
    // the credentials did go to the server, as Basic auth
    assert.equal(s.requests[0]?.headers.authorization, `Basic ${Buffer.from(`mirror:${SECRET}`).toString('base64')}`);
  });

  test('a 404 after a redirect to a URL with a token in its query', async () => {
    const s = await server((req, res) => {
      if (req.url?.startsWith('/start')) res.writeHead(302, { location: `/signed?X-Amz-Signature=${TOKEN}` }).end();
      else res.writeHead(404).end();
    });
    const err = await failure(newFetcher().fetchToCache({ url: `${s.base}/start`, expected: {} }));
    assert.match(err.message, /signed\?\*\*\*/);
    assertClean(err);
  });

  test('a refused connection and a content mismatch', async () => {
    const gone = await startHttpServer(() => undefined);
    await gone.close();
    const refused = await failure(newFetcher().fetchToCache({ url: `${gone.base.replace('http://', `http://u:${SECRET}@`)}/x`, expected: {} }));
    assert.match(refused.message, /ECONNREFUSED/);
    assertClean(refused);

    const s = await server((req, res) => serveBytes(req, res, data));
    const url = `${s.base.replace('http://', `http://u:${SECRET}@`)}/x`;
    const wrong = await failure(newFetcher().fetchToCache({ url, expected: { sha256: '0'.repeat(64) } }));
    assert.ok(wrong.message.includes(hex) && wrong.message.includes('0'.repeat(64)), wrong.message);
    assertClean(wrong);
  });
});
