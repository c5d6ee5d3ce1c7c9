/**
 * What a build derives from content-addressed inputs and keeps in the build cache: the resolved package closure,
 * keyed by everything it depends on (in BlobCache's derived entries).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PackageIndex } from '../../src/core/apt/index.js';
import { parseRelease, pickIndexFile } from '../../src/core/apt/release.js';
import { resolveClosure } from '../../src/core/apt/solver.js';
import { cachedResolution, IndexScans, resolutionKey, resolvedPackage, sourceIdentity, type ResolutionInputs, type ResolvedPackage, type VerifiedRepo } from '../../src/core/builder/apt-sources.js';
import { BlobCache } from '../../src/core/cache.js';
import { Fetcher } from '../../src/core/fetch.js';
import { parseMirrors } from '../../src/core/mirror.js';
import { serveBytes, startHttpServer, type TestServer } from './helpers/fake-registry.js';
import { withPackageIndex } from './helpers/package-index.js';

const SHA = (c: string) => c.repeat(64);
const PACKAGES = [
  'Package: containerd\nVersion: 1.6.20~ds1-1\nArchitecture: amd64\nDepends: runc (>= 1.0)\nFilename: pool/c/containerd.deb\nSize: 100\nSHA256: ' + SHA('a') + '\nDescription: daemon\n with a long — non-ASCII — text',
  'Package: runc\nVersion: 1.1.5\nArchitecture: amd64\nFilename: pool/r/runc.deb\nSize: 50\nSHA256: ' + SHA('b'),
].join('\n\n');

const source = { label: 'bookworm', baseUrl: 'http://archive.test/debian', packages: PACKAGES, packagesUrl: 'http://archive.test/Packages' };
const inputs: ResolutionInputs = { arch: 'amd64', sources: [sourceIdentity(source)], request: { roots: ['containerd'], excludePriorityRequired: true } };

let work: string;
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'kb-index-cache-'));
});
const servers: TestServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(work, { recursive: true, force: true });
});

let caches = 0;
const newCache = () => new BlobCache(path.join(work, `cache-${++caches}`));

/** A resolve function that really resolves, and counts its calls. */
function counting(): { resolve: () => Promise<ResolvedPackage[]>; calls: () => number } {
  let calls = 0;
  return {
    resolve: async () => {
      calls++;
      const index = PackageIndex.build([source], 'amd64');
      return resolveClosure(index, [{ name: 'containerd' }], { excludePriorityRequired: true }).packages.map(resolvedPackage);
    },
    calls: () => calls,
  };
}

describe('cachedResolution', () => {
  it('computes once, then answers from the cache with the same packages and stanzas', async () => {
    const cache = newCache();
    const { resolve, calls } = counting();
    const first = await cachedResolution(cache, inputs, resolve);
    const second = await cachedResolution(cache, inputs, resolve);
    assert.equal(calls(), 1);
    assert.deepEqual(second, first);
    assert.deepEqual(first.map((p) => [p.name, p.version, p.filename, p.size, p.sha256, p.source, p.baseUrl]), [
      ['containerd', '1.6.20~ds1-1', 'pool/c/containerd.deb', 100, SHA('a'), 'bookworm', 'http://archive.test/debian'],
      ['runc', '1.1.5', 'pool/r/runc.deb', 50, SHA('b'), 'bookworm', 'http://archive.test/debian'],
    ]);
    assert.ok(second[0]?.stanza.endsWith(' with a long — non-ASCII — text'));
  });

  it('gets a new key for any change of what the resolution depends on', () => {
    const [identity] = inputs.sources;
    assert.ok(identity);
    const variants: ResolutionInputs[] = [
      { ...inputs, arch: 'arm64' },
      { ...inputs, request: { roots: ['containerd', 'runc'], excludePriorityRequired: true } },
      { ...inputs, sources: [{ ...identity, sha256: SHA('c') }] },
      { ...inputs, sources: [{ ...identity, label: 'bookworm-security' }] },
      { ...inputs, sources: [{ ...identity, baseUrl: 'http://mirror.test/debian' }] },
      { ...inputs, sources: [identity, identity] },
    ];
    const keys = new Set([inputs, ...variants].map(resolutionKey));
    assert.equal(keys.size, variants.length + 1);
    assert.equal(resolutionKey(structuredClone(inputs)), resolutionKey(inputs));
  });

  it('recomputes when the source content changes (another sha256)', async () => {
    const cache = newCache();
    const { resolve, calls } = counting();
    await cachedResolution(cache, inputs, resolve);
    const changed = sourceIdentity({ ...source, packages: PACKAGES.replace('Size: 50', 'Size: 51') });
    await cachedResolution(cache, { ...inputs, sources: [changed] }, resolve);
    assert.equal(calls(), 2);
  });

  it('treats a damaged or foreign entry as a miss and replaces it', async () => {
    const cache = newCache();
    const { resolve, calls } = counting();
    const good = await cachedResolution(cache, inputs, resolve);
    const dir = path.join(cache.root, 'derived', 'apt-resolution');
    const [entry] = await readdir(dir);
    assert.ok(entry);
    const file = path.join(dir, entry);
    const original = await readFile(file, 'utf8');
    const damaged = [
      original.slice(0, original.length / 2), // torn
      original.replace(resolutionKey(inputs), '0'.repeat(64)), // written for another key
      original.replace(`"size":100`, `"size":"100"`), // not the shape this version writes
      original.replace(SHA('a'), 'not a digest'),
    ];
    for (const text of damaged) {
      await writeFile(file, text);
      assert.deepEqual(await cachedResolution(cache, inputs, resolve), good);
    }
    assert.equal(calls(), 1 + damaged.length);
    assert.equal(await readFile(file, 'utf8'), original);
  });
});

describe('withPackageIndex', () => {
  const compressed = { gzip: gzipSync(Buffer.from(PACKAGES)), xz: execFileSync('xz', ['-c'], { input: PACKAGES }) };
  const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

  /** A repository on a local server offering the index in one compression, as its Release file says. */
  async function repository(compression: 'gzip' | 'xz'): Promise<{ repo: VerifiedRepo; fetcher: Fetcher }> {
    const data = compressed[compression];
    const name = `main/binary-amd64/Packages.${compression === 'gzip' ? 'gz' : 'xz'}`;
    const server = await startHttpServer((req, res) => (req.url === `/debian/dists/bookworm/${name}` ? serveBytes(req, res, data) : res.writeHead(404).end()));
    servers.push(server);
    const releaseDir = `${server.base}/debian/dists/bookworm/`;
    const release = parseRelease(`SHA256:\n ${sha(data)} ${data.length} ${name}\n`, `${releaseDir}InRelease`);
    const index = pickIndexFile(release, 'main/binary-amd64/Packages', releaseDir);
    return { repo: { label: 'bookworm', baseUrl: `${server.base}/debian`, release, signer: 'test', index }, fetcher: new Fetcher({ cache: newCache() }) };
  }

  for (const compression of ['gzip', 'xz'] as const) {
    it(`reads a ${compression} index from a scratch file that is gone afterwards`, async () => {
      const { repo, fetcher } = await repository(compression);
      const stanzas = await withPackageIndex(fetcher, parseMirrors([]), [repo], [], 'amd64', (index) => {
        return ['containerd', 'runc'].map((name) => index.candidate(name)?.stanza);
      });
      assert.deepEqual(stanzas, PACKAGES.split('\n\n'));
      assert.deepEqual(await readdir(fetcher.cache.tmpDir), []);
    });
  }

  it('reads a big index while it downloads, and again from the cache: the same records and hooks both times', async () => {
    // ~3 MB of stanzas, so that records come out (a MiB at a time) long before the end
    const big = Array.from({ length: 3000 }, (_, i) => `Package: p${i}\nVersion: 1.${i}\nArchitecture: amd64\nFilename: pool/p${i}.deb\nSize: ${i + 1}\nSHA256: ${SHA('c')}\nDescription: x\n${' text of a description\n'.repeat(40)}`).join('\n');
    const data = gzipSync(big);
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
      setTimeout(resolve, 5000).unref(); // so that a scan that does not stream fails the test rather than hangs
    });
    let bodyComplete = false;
    // the server stops a third of the way in until the test has seen a record: only a streaming scan sees one
    const server = await startHttpServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.write(data.subarray(0, Math.floor(data.length / 3)));
      void released.then(() => {
        bodyComplete = true;
        res.end(data.subarray(Math.floor(data.length / 3)));
      });
    });
    servers.push(server);
    const releaseDir = `${server.base}/dists/bookworm/`;
    const release_ = parseRelease(`SHA256:\n ${sha(data)} ${data.length} main/binary-amd64/Packages.gz\n`, `${releaseDir}InRelease`);
    const repo: VerifiedRepo = { label: 'bookworm', baseUrl: server.base, release: release_, signer: 'test', index: pickIndexFile(release_, 'main/binary-amd64/Packages', releaseDir) };
    const fetcher = new Fetcher({ cache: newCache() });

    const run = async (): Promise<{ names: string[]; beforeEnd: boolean; done: number[]; size: number | undefined }> => {
      let seen = 0;
      let beforeEnd = false;
      const done: number[] = [];
      const hooks = {
        onRecord: (repoIndex: number, scanned: { size: number }) => {
          assert.equal(repoIndex, 0);
          assert.ok(scanned.size > 0);
          seen++;
          if (seen === 1) {
            beforeEnd = !bodyComplete;
            release();
          }
        },
        onRepoDone: (repoIndex: number) => done.push(repoIndex),
      };
      return withPackageIndex(fetcher, parseMirrors([]), [repo], [], 'amd64', (index) => ({ names: [...index.packageNames()], beforeEnd, done, size: index.candidate('p2999')?.size }), hooks);
    };
    const streamed = await run();
    assert.equal(streamed.beforeEnd, true, 'the first record came before the rest of the body');
    assert.equal(streamed.names.length, 3000);
    assert.equal(streamed.size, 3000, 'stanzas are read back from the unpacked file');
    assert.deepEqual(streamed.done, [0]);
    assert.equal(server.requests.length, 1);
    const cached = await run();
    assert.equal(server.requests.length, 1, 'the second time the index comes from the cache');
    assert.deepEqual({ ...cached, beforeEnd: true }, streamed);
    assert.deepEqual(await readdir(fetcher.cache.tmpDir), []);
  });

  it('IndexScans starts downloading what the cache lacks, and reads a cached index only when asked', async () => {
    const { repo, fetcher } = await repository('gzip');
    const server = servers[servers.length - 1] as TestServer;
    const seen: string[] = [];
    const hooks = { onRecord: (_: number, s: { record: { name: string } }) => seen.push(s.record.name) };
    const cold = new IndexScans(fetcher, parseMirrors([]), [repo], 'amd64', hooks);
    await cold.startDownloads();
    for (let i = 0; i < 200 && seen.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(server.requests.length, 1, 'the download began before anyone asked for the index');
    assert.deepEqual(seen, ['containerd', 'runc']);
    assert.deepEqual([...(await cold.index()).packageNames()].sort(), ['containerd', 'runc']);
    await cold.dispose();

    seen.length = 0;
    const warm = new IndexScans(fetcher, parseMirrors([]), [repo], 'amd64', hooks);
    await warm.startDownloads();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(seen, [], 'an index in the cache is not read unless asked for');
    assert.equal(server.requests.length, 1);
    assert.equal((await warm.index()).candidate('runc')?.version, '1.1.5');
    assert.deepEqual(seen, ['containerd', 'runc']);
    await warm.dispose();
    assert.deepEqual(await readdir(fetcher.cache.tmpDir), []);
  });

  it('removes the scratch files when `use` fails too', async () => {
    const { repo, fetcher } = await repository('gzip');
    await assert.rejects(
      withPackageIndex(fetcher, parseMirrors([]), [repo], [], 'amd64', () => {
        throw new Error('resolution failed');
      }),
      /resolution failed/,
    );
    assert.deepEqual(await readdir(fetcher.cache.tmpDir), []);
  });
});

describe('BlobCache derived entries', () => {
  it('stores small data under a kind and a sha256 key, atomically', async () => {
    const cache = newCache();
    const key = SHA('d');
    assert.equal(await cache.readDerived('notes', key), undefined);
    await cache.writeDerived('notes', key, Buffer.from('derived'));
    await cache.writeDerived('notes', key, Buffer.from('derived again'));
    assert.equal((await cache.readDerived('notes', key))?.toString(), 'derived again');
    assert.deepEqual(await readdir(cache.tmpDir), []);
  });

  it('refuses keys that are not sha256 digests and kinds that could leave the directory', async () => {
    const cache = newCache();
    await assert.rejects(cache.readDerived('notes', '../../etc/passwd'), /not a lowercase sha256/);
    await assert.rejects(cache.writeDerived('../x', SHA('e'), Buffer.from('')), /not a derived-data kind/);
  });
});
