/**
 * The client against the simulated upstreams (test/upstream/registry.ts): a real distribution registry behind
 * fronts that behave like registry.k8s.io (307 to a CDN host), ghcr.io (token on the registry host, OCI index
 * only with the right Accept) and docker.io (token server on another host), with the kubeadm v1.32.3 image set.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { BlobCache } from '../../src/core/cache.js';
import { Fetcher } from '../../src/core/fetch.js';
import { buildLayout, writeLayoutDir } from '../../src/core/oci/layout.js';
import { parsePlatform } from '../../src/core/oci/media-types.js';
import { type PulledImage, RegistryClient } from '../../src/core/oci/registry.js';
import { type UpstreamRegistries, startRegistries } from '../upstream/registry.js';

const run = promisify(execFile);
const BOTH = [parsePlatform('linux/amd64'), parsePlatform('linux/arm64')];

let work: string;
let upstream: UpstreamRegistries;
let cacheDir: string;
let pulled: PulledImage[];
let coldStats: Fetcher['stats'];

function newClient(): { client: RegistryClient; fetcher: Fetcher } {
  const fetcher = new Fetcher({ cache: new BlobCache(cacheDir), concurrency: 4 });
  return { client: new RegistryClient({ fetcher, endpoints: upstream.registries }), fetcher };
}

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'kb-upstream-'));
  cacheDir = path.join(work, 'cache');
  upstream = await startRegistries({ host: '127.0.0.1', workDir: work });
  const { client, fetcher } = newClient();
  pulled = await Promise.all(upstream.images.map((image) => client.pull(image.ref, BOTH)));
  coldStats = fetcher.stats;
});

after(async () => {
  await upstream?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('pulling the kubeadm v1.32.3 image set from the simulated upstreams', () => {
  test('every image resolves to upstream’s own top-level digest and media type', () => {
    assert.equal(pulled.length, upstream.images.length);
    for (const [i, image] of upstream.images.entries()) {
      const got = pulled[i] as PulledImage;
      assert.equal(got.reference, image.ref);
      assert.equal(got.descriptor.digest, image.indexDigest, image.ref);
      assert.equal(got.descriptor.mediaType, image.mediaType, image.ref);
      assert.equal(got.manifests.length, 2, `${image.ref}: amd64 and arm64, no attestations`);
    }
    assert.ok(coldStats.bytesFetched > 0);
  });

  test('credentials never reached the blob CDN, and blobs were fetched through it', () => {
    const cdn = upstream.requests.filter((r) => r.kind === 'cdn');
    assert.ok(cdn.length > 0);
    assert.ok(cdn.every((r) => !r.authorization && r.status === 200), 'CDN requests carry no Authorization (it answers 400 if they do)');
    const tokenRequests = upstream.requests.filter((r) => r.kind === 'token');
    const tokenScopes = new Set(tokenRequests.map((r) => new URL(r.url, 'http://x').searchParams.get('scope')));
    assert.equal(tokenRequests.length, tokenScopes.size, 'one token per repository scope');
    assert.ok(upstream.requests.filter((r) => r.upstream !== 'registry.k8s.io' && r.kind === 'blob').every((r) => r.authorization));
  });

  test('a warm rebuild from the same cache fetches 0 bytes and never touches the CDN', async () => {
    upstream.resetCounts();
    const { client, fetcher } = newClient();
    const again = await Promise.all(upstream.images.map((image) => client.pull(image.ref, BOTH)));
    assert.deepEqual(again, pulled);
    assert.equal(fetcher.stats.bytesFetched, 0);
    assert.equal(fetcher.stats.itemsFetched, 0);
    assert.ok(fetcher.stats.bytesFromCache >= coldStats.bytesFetched, 'everything the cold build fetched was served from the cache');
    for (const counts of Object.values(upstream.counts)) {
      assert.equal(counts.cdn, 0);
      assert.equal(counts.blob, 0);
    }
  });

  test('the layout of all images is readable by skopeo by full upstream reference', async () => {
    const dir = path.join(work, 'layout');
    await writeLayoutDir(buildLayout(pulled, new BlobCache(cacheDir)), dir);
    for (const reference of ['registry.k8s.io/pause:3.10', 'ghcr.io/flannel-io/flannel:v0.26.5', 'registry.k8s.io/kube-apiserver:v1.32.3']) {
      const { stdout } = await run('skopeo', ['--override-arch', 'arm64', '--override-os', 'linux', 'inspect', `oci:${dir}:${reference}`]);
      const info = JSON.parse(stdout) as { Architecture: string; Layers: string[] };
      assert.equal(info.Architecture, 'arm64', reference);
      assert.ok(info.Layers.length > 0);
    }
  });
});
