import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { BlobCache } from '../../src/core/cache.js';
import { Fetcher } from '../../src/core/fetch.js';
import { type LayoutEntry, buildLayout, writeLayoutDir } from '../../src/core/oci/layout.js';
import { parsePlatform } from '../../src/core/oci/media-types.js';
import { type PulledImage, RegistryClient } from '../../src/core/oci/registry.js';
import { DOCKER_LIST, type FakeImage, type FakeRegistry, OCI_INDEX, buildImage, startFakeRegistry } from './helpers/fake-registry.js';

const run = promisify(execFile);
const BOTH = [parsePlatform('linux/amd64'), parsePlatform('linux/arm64')];

let work: string;
let registry: FakeRegistry;
let cache: BlobCache;
let images: FakeImage[];
let pulled: PulledImage[];

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'kb-layout-'));
  const shared = gzipSync(randomBytes(2000));
  images = [
    buildImage({ repository: 'pause', tag: '3.10', format: 'docker', layerMediaType: 'application/vnd.docker.image.rootfs.diff.tar', sharedLayer: shared }),
    buildImage({ repository: 'etcd', tag: '3.5.16-0', attestation: true, sharedLayer: shared }),
  ];
  registry = await startFakeRegistry({ images });
  cache = new BlobCache(path.join(work, 'cache'));
  const client = new RegistryClient({ fetcher: new Fetcher({ cache }), endpoints: { 'registry.k8s.io': registry.base } });
  pulled = [await client.pull('registry.k8s.io/pause:3.10', BOTH), await client.pull('registry.k8s.io/etcd:3.5.16-0', BOTH)];
});
after(async () => {
  await registry.close();
  await rm(work, { recursive: true, force: true });
});

function contentOf(entry: LayoutEntry): Promise<Buffer> {
  return 'bytes' in entry.source ? Promise.resolve(Buffer.from(entry.source.bytes)) : readFile(entry.source.file);
}

describe('OCI image layout', () => {
  test('one index.json entry per image: upstream descriptor, full reference in both annotations, sorted', async () => {
    const entries = buildLayout(pulled, cache);
    assert.deepEqual(
      entries.slice(0, 2).map((e) => e.path),
      ['oci-layout', 'index.json'],
    );
    assert.deepEqual(JSON.parse((await contentOf(entries[0] as LayoutEntry)).toString()), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse((await contentOf(entries[1] as LayoutEntry)).toString()) as { manifests: Array<Record<string, unknown>> };
    const [pause, etcd] = images as [FakeImage, FakeImage];
    const named = (reference: string) => ({ 'io.containerd.image.name': reference, 'org.opencontainers.image.ref.name': reference });
    assert.deepEqual(index.manifests[0], { mediaType: OCI_INDEX, digest: etcd.top.digest, size: etcd.top.bytes.length, annotations: named('registry.k8s.io/etcd:3.5.16-0') });
    assert.deepEqual(index.manifests[2], { mediaType: DOCKER_LIST, digest: pause.top.digest, size: pause.top.bytes.length, annotations: named('registry.k8s.io/pause:3.10') });
    assert.equal(index.manifests.length, 3);
  });

  test('a Docker-typed image also gets an OCI alias index (for skopeo) listing the same platform manifests, before the original', async () => {
    const entries = buildLayout(pulled, cache);
    const index = JSON.parse((await contentOf(entries[1] as LayoutEntry)).toString()) as { manifests: Array<{ digest: string; mediaType: string; annotations: Record<string, string> }> };
    const pause = images[0] as FakeImage;
    const alias = index.manifests[1];
    assert.ok(alias);
    assert.equal(alias.mediaType, OCI_INDEX);
    assert.deepEqual(alias.annotations, { 'io.kube-bundle.alias-of': pause.top.digest, 'org.opencontainers.image.ref.name': 'registry.k8s.io/pause:3.10' });
    const aliasEntry = entries.find((e) => e.path === `blobs/sha256/${alias.digest.slice(7)}`);
    assert.ok(aliasEntry);
    const aliasDoc = JSON.parse((await contentOf(aliasEntry)).toString()) as { mediaType: string; manifests: unknown[] };
    const upstream = JSON.parse(pause.top.bytes.toString()) as { manifests: unknown[] };
    assert.equal(aliasDoc.mediaType, OCI_INDEX);
    assert.deepEqual(aliasDoc.manifests, upstream.manifests);
  });

  test('blobs are stored once, sorted, each with its true size and sha256, streamed from the cache', async () => {
    const entries = buildLayout(pulled, cache);
    const blobs = entries.slice(2);
    const paths = blobs.map((e) => e.path);
    assert.deepEqual(paths, [...new Set(paths)].sort());
    const upstream = images.flatMap((i) => i.blobs.filter((b) => !i.attestationDigests.includes(b.digest)).map((b) => `blobs/sha256/${b.digest.slice(7)}`));
    const unique = new Set(upstream);
    assert.ok(unique.size < upstream.length, 'the fixture shares a layer between platforms and images');
    assert.equal(paths.length, unique.size + 1, "each blob once, plus pause's alias index");
    for (const p of upstream) assert.ok(paths.includes(p), `${p} carried`);
    for (const entry of blobs) {
      if (upstream.includes(entry.path)) assert.ok('file' in entry.source && entry.source.file.startsWith(cache.blobsDir), 'upstream blobs stream from the cache');
      const bytes = await contentOf(entry);
      assert.equal(bytes.length, entry.size);
      assert.equal(`blobs/sha256/${createHash('sha256').update(bytes).digest('hex')}`, entry.path);
    }
  });

  test('deterministic: the same images in any order give identical entries', async () => {
    const a = buildLayout(pulled, cache);
    const b = buildLayout([...pulled].reverse(), cache);
    assert.deepEqual(a, b);
  });

  test('skopeo reads the written directory by full upstream reference', async () => {
    const dir = path.join(work, 'layout');
    await writeLayoutDir(buildLayout(pulled, cache), dir);
    assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'index.json', 'oci-layout']);

    const etcd = images[1] as FakeImage;
    const raw = await run('skopeo', ['inspect', '--raw', `oci:${dir}:registry.k8s.io/etcd:3.5.16-0`]);
    assert.equal(raw.stdout, etcd.top.bytes.toString(), 'an OCI index is carried byte for byte');

    for (const [arch, reference] of [
      ['amd64', 'registry.k8s.io/pause:3.10'],
      ['arm64', 'registry.k8s.io/etcd:3.5.16-0'],
    ] as const) {
      const { stdout } = await run('skopeo', ['--override-arch', arch, '--override-os', 'linux', 'inspect', `oci:${dir}:${reference}`]);
      const info = JSON.parse(stdout) as { Architecture: string; Os: string; Layers: string[] };
      assert.equal(info.Architecture, arch);
      assert.equal(info.Os, 'linux');
      assert.equal(info.Layers.length, 2);
    }
  });
});
