import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BlobCache } from '../../src/core/cache.js';
import { Fetcher } from '../../src/core/fetch.js';
import { formatPlatform, parsePlatform } from '../../src/core/oci/media-types.js';
import { type PulledImage, RegistryClient } from '../../src/core/oci/registry.js';
import { UserError } from '../../src/util/errors.js';
import { type FakeImage, type FakeRegistry, type FakeRegistryOptions, OCI_INDEX, buildImage, startFakeRegistry } from './helpers/fake-registry.js';

const BOTH = [parsePlatform('linux/amd64'), parsePlatform('linux/arm64')];

let work: string;
const registries: FakeRegistry[] = [];
before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'kb-oci-'));
});
after(async () => {
  await Promise.all(registries.map((r) => r.close()));
  await rm(work, { recursive: true, force: true });
});

async function registry(options: FakeRegistryOptions): Promise<FakeRegistry> {
  const r = await startFakeRegistry(options);
  registries.push(r);
  return r;
}

let caches = 0;
function client(registryHost: string, base: string, cacheDir = path.join(work, `cache-${++caches}`)): { client: RegistryClient; fetcher: Fetcher } {
  const fetcher = new Fetcher({ cache: new BlobCache(cacheDir), retry: { attempts: 2, baseDelayMs: 5 }, timeouts: { connectMs: 2000, idleMs: 2000 } });
  return { client: new RegistryClient({ fetcher, endpoints: { [registryHost]: base } }), fetcher };
}

async function assertUserError(promise: Promise<unknown>, ...fragments: string[]): Promise<void> {
  const err = await promise.then(
    () => assert.fail('expected a UserError'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof UserError, `expected UserError, got ${String(err)}`);
  for (const fragment of fragments) assert.ok(err.message.includes(fragment), `'${err.message}' should mention '${fragment}'`);
}

function platformsOf(image: PulledImage): string[] {
  return image.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : 'none'));
}

function requestedPaths(r: FakeRegistry): string[] {
  return r.registry.requests.map((q) => q.url);
}

describe('RegistryClient.pull', () => {
  test('ghcr-like registry: token flow on another origin, one token per scope, OCI index accepted, attestations skipped', async () => {
    const image = buildImage({ repository: 'flannel-io/flannel', tag: 'v0.26.5', attestation: true });
    const r = await registry({ images: [image], requireToken: true });
    const { client: c, fetcher } = client('ghcr.io', r.base);
    const pulled = await c.pull('ghcr.io/flannel-io/flannel:v0.26.5', BOTH);

    assert.equal(pulled.reference, 'ghcr.io/flannel-io/flannel:v0.26.5');
    assert.deepEqual(pulled.descriptor, { mediaType: OCI_INDEX, digest: image.top.digest, size: image.top.bytes.length });
    assert.deepEqual(platformsOf(pulled), ['linux/amd64', 'linux/arm64']);
    assert.deepEqual(r.tokenScopes, ['repository:flannel-io/flannel:pull'], 'one token, reused for every request');

    const wanted = image.blobs.filter((b) => !image.attestationDigests.includes(b.digest));
    assert.deepEqual(new Set(pulled.blobs.map((b) => b.digest)), new Set(wanted.map((b) => b.digest)));
    for (const b of wanted) assert.deepEqual(await readFile(fetcher.cache.blobPath(b.digest.slice(7))), b.bytes);
    for (const digest of image.attestationDigests) {
      assert.ok(!requestedPaths(r).some((p) => p.includes(digest)), `attestation content ${digest} must not be fetched`);
    }
    const manifestRequests = r.registry.requests.filter((q) => q.url.includes('/manifests/'));
    assert.ok(manifestRequests.every((q) => q.headers.accept?.includes(OCI_INDEX) && q.headers.accept.includes('manifest.list.v2+json')));
    const afterToken = r.registry.requests.slice(1);
    assert.ok(afterToken.every((q) => q.headers.authorization === 'Bearer tok-1'), 'the token is sent on every later request');
    assert.equal(r.tokenServer.requests[0]?.headers.authorization, undefined, 'the token server gets no credentials');
  });

  test('registry.k8s.io-like: blobs redirect to another origin, which never sees the Authorization header', async () => {
    const image = buildImage({ repository: 'pause', tag: '3.10', format: 'docker', layerMediaType: 'application/vnd.docker.image.rootfs.diff.tar' });
    const r = await registry({ images: [image], requireToken: true, redirectBlobs: true });
    const { client: c, fetcher } = client('registry.k8s.io', r.base);
    const pulled = await c.pull('registry.k8s.io/pause:3.10', BOTH);

    assert.equal(pulled.descriptor.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
    const blobRequests = r.blobServer.requests;
    assert.ok(blobRequests.length >= 4, 'configs and layers came from the blob host');
    assert.ok(blobRequests.every((q) => q.headers.authorization === undefined));
    assert.ok(r.registry.requests.filter((q) => q.url.includes('/blobs/')).every((q) => q.headers.authorization === 'Bearer tok-1'));
    for (const b of image.blobs) assert.ok(existsSync(fetcher.cache.blobPath(b.digest.slice(7))), `${b.digest} cached`);
  });

  test('a single-manifest image: its config names the platform, and a missing one is an error naming the reference', async () => {
    const image = buildImage({ repository: 'library/busybox', tag: '1.36', format: 'single', platforms: ['linux/amd64'] });
    const r = await registry({ images: [image] });
    const { client: c } = client('docker.io', r.base);
    const pulled = await c.pull('busybox:1.36', [parsePlatform('linux/amd64')]);
    assert.equal(pulled.reference, 'docker.io/library/busybox:1.36');
    assert.deepEqual(pulled.manifests, [{ ...pulled.descriptor, platform: { os: 'linux', architecture: 'amd64' } }]);
    assert.equal(pulled.descriptor.digest, image.top.digest);
    assert.equal(pulled.blobs.length, 3);
    await assertUserError(client('docker.io', r.base).client.pull('busybox:1.36', BOTH), 'docker.io/library/busybox:1.36', 'linux/arm64');
  });

  test('a platform the index lacks is an error naming the reference and what it has (attestations not counted)', async () => {
    const image = buildImage({ repository: 'etcd', tag: '3.5.16-0', attestation: true });
    const r = await registry({ images: [image] });
    await assertUserError(
      client('registry.k8s.io', r.base).client.pull('registry.k8s.io/etcd:3.5.16-0', [parsePlatform('linux/s390x')]),
      'registry.k8s.io/etcd:3.5.16-0',
      'linux/s390x',
      'it has: linux/amd64, linux/arm64)',
    );
    assert.ok(!requestedPaths(r).some((p) => p.includes('/blobs/')), 'nothing downloaded for an impossible pull');
  });

  test('an arm64/v8 variant in the index satisfies linux/arm64', async () => {
    const image = buildImage({ repository: 'coredns/coredns', tag: 'v1.11.3', platforms: ['linux/amd64', 'linux/arm64/v8'] });
    const r = await registry({ images: [image] });
    const pulled = await client('registry.k8s.io', r.base).client.pull('registry.k8s.io/coredns/coredns:v1.11.3', BOTH);
    assert.deepEqual(platformsOf(pulled), ['linux/amd64', 'linux/arm64/v8']);
  });

  test('a manifest whose bytes do not match Docker-Content-Digest is refused, naming reference and URL; nothing cached', async () => {
    const image = buildImage({ repository: 'kube-proxy', tag: 'v1.32.3' });
    const tampered = Buffer.from(image.top.bytes.toString().replace('"schemaVersion":2', '"schemaVersion":2 '));
    const r = await registry({ images: [image], tamper: { [image.top.digest]: tampered } });
    const { client: c, fetcher } = client('registry.k8s.io', r.base);
    await assertUserError(c.pull('registry.k8s.io/kube-proxy:v1.32.3', BOTH), 'registry.k8s.io/kube-proxy:v1.32.3', `${r.base}/v2/kube-proxy/manifests/`, image.top.digest);
    assert.deepEqual(existsSync(fetcher.cache.blobsDir) ? await readdir(fetcher.cache.blobsDir) : [], []);
  });

  test('a child manifest that does not match its digest in the index is refused', async () => {
    const image = buildImage({ repository: 'kube-scheduler', tag: 'v1.32.3' });
    const child = image.blobs[1];
    assert.ok(child);
    const r = await registry({ images: [image], tamper: { [child.digest]: Buffer.from(child.bytes.toString().replace('{', '{ ')) } });
    await assertUserError(client('registry.k8s.io', r.base).client.pull('registry.k8s.io/kube-scheduler:v1.32.3', BOTH), 'registry.k8s.io/kube-scheduler:v1.32.3', child.digest);
  });

  test('a pinned digest is verified against the content', async () => {
    const image = buildImage({ repository: 'kube-apiserver', tag: 'v1.32.3' });
    const other = buildImage({ repository: 'kube-apiserver', tag: 'other', platforms: ['linux/amd64'] });
    const r = await registry({ images: [image], tamper: { [image.top.digest]: other.top.bytes } });
    await assertUserError(
      client('registry.k8s.io', r.base).client.pull(`registry.k8s.io/kube-apiserver@${image.top.digest}`, BOTH),
      `registry.k8s.io/kube-apiserver@${image.top.digest}`,
      `${r.base}/v2/kube-apiserver/manifests/${image.top.digest}`,
    );
  });

  test('a layer whose bytes do not match its digest is refused, naming reference and URL', async () => {
    const image = buildImage({ repository: 'kube-controller-manager', tag: 'v1.32.3' });
    const layer = image.blobs.find((b) => b.mediaType.includes('layer'));
    assert.ok(layer);
    const evil = Buffer.from(layer.bytes);
    evil[10] = (evil[10] ?? 0) ^ 1;
    const r = await registry({ images: [image], tamper: { [layer.digest]: evil } });
    const { client: c, fetcher } = client('registry.k8s.io', r.base);
    await assertUserError(c.pull('registry.k8s.io/kube-controller-manager:v1.32.3', BOTH), 'registry.k8s.io/kube-controller-manager:v1.32.3', `${r.base}/v2/kube-controller-manager/blobs/${layer.digest}`);
    assert.ok(!existsSync(fetcher.cache.blobPath(layer.digest.slice(7))));
  });

  test('an unknown tag quotes the registry error and names the URL', async () => {
    const r = await registry({ images: [buildImage({ repository: 'pause', tag: '3.10' })] });
    await assertUserError(client('registry.k8s.io', r.base).client.pull('registry.k8s.io/pause:3.99', BOTH), 'registry.k8s.io/pause:3.99', `${r.base}/v2/pause/manifests/3.99`, '404', 'MANIFEST_UNKNOWN');
  });

  test('a Basic challenge is a clear UserError (credentials are not supported)', async () => {
    const r = await registry({ images: [buildImage({ repository: 'private/app', tag: '1' })], requireBasic: true });
    await assertUserError(client('registry.example.com', r.base).client.pull('registry.example.com/private/app:1', BOTH), 'registry.example.com/private/app:1', 'Basic', 'not support');
  });

  test('a 401 after the token flow names the reference and URL', async () => {
    const r = await registry({ images: [buildImage({ repository: 'flannel-io/flannel', tag: 'v1' })], requireToken: true, rejectTokens: true });
    await assertUserError(client('ghcr.io', r.base).client.pull('ghcr.io/flannel-io/flannel:v1', BOTH), 'ghcr.io/flannel-io/flannel:v1', `${r.base}/v2/flannel-io/flannel/manifests/v1`, '401');
  });

  test('foreign layers with urls are refused: an offline bundle cannot carry them', async () => {
    const image = buildImage({
      repository: 'windows/servercore',
      tag: 'ltsc2022',
      format: 'docker',
      layerMediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
      layerExtra: { urls: ['https://mcr.microsoft.com/blob'] },
    });
    const r = await registry({ images: [image] });
    await assertUserError(client('mcr.microsoft.com', r.base).client.pull('mcr.microsoft.com/windows/servercore:ltsc2022', BOTH), 'non-distributable', 'mcr.microsoft.com/blob');
  });

  test('a warm pull from the same cache transfers 0 bytes (tags are resolved with HEAD)', async () => {
    const images: FakeImage[] = [buildImage({ repository: 'flannel-io/flannel', tag: 'v0.26.5', attestation: true })];
    const r = await registry({ images, requireToken: true, redirectBlobs: true });
    const cacheDir = path.join(work, 'warm');
    const cold = client('ghcr.io', r.base, cacheDir);
    const first = await cold.client.pull('ghcr.io/flannel-io/flannel:v0.26.5', BOTH);
    assert.ok(cold.fetcher.stats.bytesFetched > 0);

    const blobHostRequests = r.blobServer.requests.length;
    const warm = client('ghcr.io', r.base, cacheDir);
    const second = await warm.client.pull('ghcr.io/flannel-io/flannel:v0.26.5', BOTH);
    assert.deepEqual(second, first);
    assert.equal(warm.fetcher.stats.bytesFetched, 0);
    assert.equal(warm.fetcher.stats.itemsFetched, 0);
    assert.ok(warm.fetcher.stats.bytesFromCache > 0);
    assert.equal(r.blobServer.requests.length, blobHostRequests, 'no blob request at all');
  });

  test('a blob download answered 401 runs the token flow itself (manifests cached, digest-pinned reference)', async () => {
    const image = buildImage({ repository: 'flannel-io/flannel-cni-plugin', tag: 'v1.6.2-flannel1' });
    const r = await registry({ images: [image], requireToken: true });
    const cacheDir = path.join(work, 'pinned');
    await client('ghcr.io', r.base, cacheDir).client.pull('ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1', BOTH);
    const layer = image.blobs.find((b) => b.mediaType.includes('layer'));
    assert.ok(layer);
    await rm(path.join(cacheDir, 'blobs', 'sha256', layer.digest.slice(7)));
    r.registry.requests.length = 0;

    const fresh = client('ghcr.io', r.base, cacheDir);
    await fresh.client.pull(`ghcr.io/flannel-io/flannel-cni-plugin@${image.top.digest}`, BOTH);
    assert.deepEqual(
      r.registry.requests.map((q) => [q.url, q.headers.authorization]),
      [
        [`/v2/flannel-io/flannel-cni-plugin/blobs/${layer.digest}`, undefined],
        [`/v2/flannel-io/flannel-cni-plugin/blobs/${layer.digest}`, 'Bearer tok-2'],
      ],
    );
    assert.equal(fresh.fetcher.stats.itemsFetched, 1);
  });

  test('a mirror endpoint that is not an http(s) URL is refused up front', () => {
    const fetcher = new Fetcher({ cache: new BlobCache(path.join(work, 'unused')) });
    assert.throws(
      () => new RegistryClient({ fetcher, endpoints: { 'registry.k8s.io': '10.0.0.5:5000' } }),
      (err: unknown) => err instanceof UserError && err.message.includes('registry.k8s.io') && err.message.includes('10.0.0.5:5000'),
    );
  });
});
