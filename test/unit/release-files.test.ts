/**
 * Release files (flannel's manifest, cri-dockerd's debs) are used only with a pinned sha256: from
 * bundles/components.yaml, --pin, or the lock file. No trust on first use.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fetchReleaseFile, parsePinFlags, pinFor, type PinSources } from '../../src/core/builder/release-files.js';
import { BlobCache } from '../../src/core/cache.js';
import { componentsFile, loadComponents, parseReleaseDigests } from '../../src/core/definitions.js';
import { Fetcher } from '../../src/core/fetch.js';
import { parseMirrors } from '../../src/core/mirror.js';
import { UserError } from '../../src/util/errors.js';
import { type TestServer, serveBytes, startHttpServer } from './helpers/fake-registry.js';

const URL_ = 'https://github.com/flannel-io/flannel/releases/download/v0.26.5/kube-flannel.yml';
const content = randomBytes(2048);
const hex = createHash('sha256').update(content).digest('hex');
const other = 'ab'.repeat(32);

let work: string;
let server: TestServer;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'kb-release-'));
  server = await startHttpServer((req, res) => serveBytes(req, res, content));
});
after(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});

let caches = 0;
const fetcher = () => new Fetcher({ cache: new BlobCache(path.join(work, `cache-${++caches}`)), retry: { attempts: 1, baseDelayMs: 1 } });
const mirrors = () => parseMirrors([`https://github.com=${server.base.replace('http://', 'http://me:s3cret@')}`]);
const none: PinSources = { components: {}, flags: new Map() };

async function failure(promise: Promise<unknown>): Promise<UserError> {
  const err = await promise.then(() => assert.fail('expected a failure'), (e: unknown) => e);
  assert.ok(err instanceof UserError, String(err));
  return err;
}

describe('pins', () => {
  test('--pin <url>=sha256:<hex>, repeatable; malformed ones name themselves without credentials', () => {
    assert.deepEqual(parsePinFlags([`${URL_}=sha256:${hex.toUpperCase()}`, `${URL_}=sha256:${hex}`]), new Map([[URL_, hex]]));
    for (const bad of [URL_, `${URL_}=${hex}`, `${URL_}=sha256:abc`, `kube-flannel.yml=sha256:${hex}`, `=sha256:${hex}`]) {
      assert.throws(() => parsePinFlags([bad]), (e: unknown) => e instanceof UserError && e.message.startsWith('--pin '), bad);
    }
    assert.throws(() => parsePinFlags([`${URL_}=sha256:${hex}`, `${URL_}=sha256:${other}`]), /given twice with different digests/);
    assert.throws(() => parsePinFlags([`https://me:s3cret@x/y=sha256:1`]), (e: unknown) => e instanceof UserError && !e.message.includes('s3cret'));
  });

  test('--pin wins over bundles/components.yaml, which wins over the lock file', () => {
    const lock = { file: 'x.lock.yaml', content: { artifacts: [{ kind: 'file', name: 'kube-flannel.yml', version: '-', arch: 'all', url: URL_, digest: `sha256:${'cd'.repeat(32)}` }] } } as unknown as PinSources['lock'];
    const all: PinSources = { components: { [URL_]: other }, flags: new Map([[URL_, hex]]), lock };
    assert.deepEqual(pinFor(URL_, all), { sha256: hex, from: '--pin' });
    assert.deepEqual(pinFor(URL_, { ...all, flags: new Map() }), { sha256: other, from: componentsFile() });
    assert.deepEqual(pinFor(URL_, { ...all, flags: new Map(), components: {} }), { sha256: 'cd'.repeat(32), from: 'lock file x.lock.yaml' });
    assert.equal(pinFor(URL_, none), undefined);
  });

  test('bundles/components.yaml: its releaseDigests table loads; a malformed entry is refused, naming it', () => {
    const components = loadComponents();
    for (const [url, digest] of Object.entries(components.releaseDigests)) {
      assert.match(url, /^https:\/\//);
      assert.match(digest, /^[0-9a-f]{64}$/);
    }
    assert.deepEqual(parseReleaseDigests({ [URL_]: `sha256:${hex}` }, 'c.yaml'), { [URL_]: hex });
    assert.deepEqual(parseReleaseDigests(undefined, 'c.yaml'), {});
    for (const bad of [{ [URL_]: hex }, { 'http://github.com/x': `sha256:${hex}` }, { [URL_]: 'sha256:zz' }, ['x']]) {
      assert.throws(() => parseReleaseDigests(bad, 'c.yaml'), (e: unknown) => e instanceof UserError && e.message.startsWith('c.yaml: releaseDigests'), JSON.stringify(bad));
    }
  });
});

describe('fetchReleaseFile', () => {
  test('a pinned file is fetched through the mirror, and a second time comes from the cache', async () => {
    const f = fetcher();
    const pin = { sha256: hex, from: '--pin' };
    const first = await fetchReleaseFile(f, mirrors(), URL_, 'kube-flannel.yml', pin);
    assert.equal(first.sha256, hex);
    const again = await fetchReleaseFile(f, mirrors(), URL_, 'kube-flannel.yml', pin);
    assert.equal(again.fromCache, true);
  });

  test('other content than pinned fails naming the URL, both digests and where the pin is', async () => {
    const err = await failure(fetchReleaseFile(fetcher(), mirrors(), URL_, 'kube-flannel.yml', { sha256: other, from: componentsFile() }));
    assert.ok(err.message.includes(URL_), err.message);
    assert.ok(err.message.includes(`has sha256 ${hex}, expected ${other}`), err.message);
    assert.ok(err.message.includes(`pinned in ${componentsFile()}`), err.message);
    assert.ok(err.message.includes('(via http://***@127.0.0.1'), err.message);
    assert.ok(!err.message.includes('s3cret'));
  });

  test('an unpinned file is never used: the error names the URL, the digest downloaded and how to pin it', async () => {
    const f = fetcher();
    const err = await failure(fetchReleaseFile(f, mirrors(), URL_, 'kube-flannel.yml', undefined));
    assert.ok(err.message.startsWith(`${URL_} (via http://***@127.0.0.1`), err.message);
    assert.ok(err.message.includes(`has no pinned sha256; the download has sha256:${hex}`), err.message);
    assert.ok(err.hint?.includes(`releaseDigests in ${componentsFile()}`) && err.hint.includes(`--pin ${URL_}=sha256:<hex>`), err.hint);
    assert.ok(!`${err.message}${err.hint}`.includes('s3cret'));
    // and again: nothing was remembered from the first download
    await failure(fetchReleaseFile(f, mirrors(), URL_, 'kube-flannel.yml', undefined));
  });
});
