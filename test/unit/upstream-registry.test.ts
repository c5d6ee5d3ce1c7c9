/**
 * The simulated registry.k8s.io / ghcr.io / docker.io: real distribution behind fronts that behave like the real
 * services, checked with plain HTTP and with the real skopeo (which does the token dance and follows the 307s).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { generateUpstreamImages, MEDIA_TYPES, UPSTREAM_IMAGES } from '../upstream/images.js';
import { startRegistries, type UpstreamRegistries } from '../upstream/registry.js';

const run = promisify(execFile);
const OCI_INDEX_AND_MANIFESTS = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest].join(', ');
const ALL_MANIFESTS = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerManifest].join(', ');

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}
interface Index {
  mediaType: string;
  manifests: Descriptor[];
}
interface Manifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

let upstream: UpstreamRegistries;
let workDir: string;
let startMs: number;

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'upstream-registry-test-'));
  const started = Date.now();
  upstream = await startRegistries({ host: '127.0.0.1', workDir });
  startMs = Date.now() - started;
});

after(async () => {
  await upstream?.stop();
  await rm(workDir, { recursive: true, force: true });
});

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function hostPort(url: string): string {
  return new URL(url).host;
}

function image(ref: string) {
  const found = upstream.images.find((entry) => entry.ref === ref);
  assert.ok(found, `catalogue has ${ref}`);
  return found;
}

async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: T; response: Response }> {
  const response = await fetch(url, { headers });
  return { status: response.status, body: (await response.json()) as T, response };
}

/** Manifest bytes from registry.k8s.io (no auth). */
async function k8sManifest<T>(repository: string, reference: string): Promise<T> {
  const url = `${upstream.registries['registry.k8s.io']}/v2/${repository}/manifests/${reference}`;
  const { status, body } = await getJson<T>(url, { accept: ALL_MANIFESTS });
  assert.equal(status, 200, `GET ${url}`);
  return body;
}

async function childFor(repository: string, tag: string, architecture: string): Promise<Manifest> {
  const index = await k8sManifest<Index>(repository, tag);
  const child = index.manifests.find((entry) => entry.platform?.architecture === architecture);
  assert.ok(child, `${repository}:${tag} has a ${architecture} child`);
  return k8sManifest<Manifest>(repository, child.digest);
}

/** Anonymous token from the realm in a 401 challenge. */
async function tokenFromChallenge(challenge: string): Promise<{ realm: string; token: string }> {
  const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  assert.ok(params['realm'] && params['service'] && params['scope'], `challenge has realm, service, scope: ${challenge}`);
  const url = new URL(params['realm']);
  url.searchParams.set('service', params['service']);
  url.searchParams.set('scope', params['scope']);
  const { status, body } = await getJson<{ token?: string }>(url.toString());
  assert.equal(status, 200, `GET ${url}`);
  assert.ok(body.token, 'token response has a token');
  return { realm: params['realm'], token: body.token };
}

describe('catalogue', () => {
  it('lists the kubeadm v1.32.3 images, flannel v0.26.5 and busybox with the upstream formats', () => {
    const expected: Record<string, string> = {
      'registry.k8s.io/kube-apiserver:v1.32.3': MEDIA_TYPES.dockerList,
      'registry.k8s.io/kube-controller-manager:v1.32.3': MEDIA_TYPES.dockerList,
      'registry.k8s.io/kube-scheduler:v1.32.3': MEDIA_TYPES.dockerList,
      'registry.k8s.io/kube-proxy:v1.32.3': MEDIA_TYPES.dockerList,
      'registry.k8s.io/coredns/coredns:v1.11.3': MEDIA_TYPES.ociIndex,
      'registry.k8s.io/pause:3.10': MEDIA_TYPES.dockerList,
      'registry.k8s.io/etcd:3.5.16-0': MEDIA_TYPES.ociIndex,
      'ghcr.io/flannel-io/flannel:v0.26.5': MEDIA_TYPES.ociIndex,
      'ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1': MEDIA_TYPES.ociIndex,
      'docker.io/library/busybox:1.36': MEDIA_TYPES.ociIndex,
    };
    assert.deepEqual(Object.fromEntries(upstream.images.map((entry) => [entry.ref, entry.mediaType])), expected);
    assert.deepEqual(upstream.images, UPSTREAM_IMAGES);
    assert.deepEqual(image('ghcr.io/flannel-io/flannel:v0.26.5').platforms, ['linux/amd64', 'linux/arm64/v8']);
    assert.deepEqual(image('registry.k8s.io/pause:3.10').platforms, ['linux/amd64', 'linux/arm64']);
  });

  it('generates the same bytes from scratch (fresh cache directory, nothing reused)', async () => {
    const freshCache = await mkdtemp(join(tmpdir(), 'upstream-registry-cache-'));
    try {
      const regenerated = await generateUpstreamImages(freshCache);
      assert.deepEqual(
        regenerated.map((entry) => [entry.ref, entry.indexDigest]),
        upstream.images.map((entry) => [entry.ref, entry.indexDigest]),
      );
    } finally {
      await rm(freshCache, { recursive: true, force: true });
    }
  });

  it('starts in a few seconds once the caches are warm', () => {
    assert.ok(startMs < 15_000, `startRegistries took ${startMs} ms`);
  });
});

describe('registry.k8s.io', () => {
  it('answers /v2/ with 200 and the API version header, without auth', async () => {
    const response = await fetch(`${upstream.registries['registry.k8s.io']}/v2/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.equal(response.headers.get('www-authenticate'), null);
  });

  it('serves the index whose digest is in the catalogue', async () => {
    const entry = image('registry.k8s.io/kube-apiserver:v1.32.3');
    const response = await fetch(`${upstream.registries['registry.k8s.io']}/v2/kube-apiserver/manifests/v1.32.3`, {
      headers: { accept: ALL_MANIFESTS },
    });
    const bytes = Buffer.from(await response.arrayBuffer());
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), MEDIA_TYPES.dockerList);
    assert.equal(response.headers.get('docker-content-digest'), entry.indexDigest);
    assert.equal(sha256(bytes), entry.indexDigest);
  });

  it('redirects blob GETs (307) to another host:port that serves the bytes, with ranges', async () => {
    const child = await childFor('kube-apiserver', 'v1.32.3', 'amd64');
    const layer = child.layers[0]!;
    const blobUrl = `${upstream.registries['registry.k8s.io']}/v2/kube-apiserver/blobs/${layer.digest}`;
    const redirect = await fetch(blobUrl, { redirect: 'manual' });
    assert.equal(redirect.status, 307);
    const location = redirect.headers.get('location');
    assert.ok(location, '307 has a Location');
    assert.notEqual(hostPort(location), hostPort(blobUrl));
    assert.notEqual(new URL(location).hostname, new URL(blobUrl).hostname);

    const blob = await fetch(location);
    const bytes = Buffer.from(await blob.arrayBuffer());
    assert.equal(blob.status, 200);
    assert.equal(bytes.length, layer.size);
    assert.equal(sha256(bytes), layer.digest);

    const partial = await fetch(location, { headers: { range: 'bytes=10-19' } });
    assert.equal(partial.status, 206);
    assert.deepEqual(Buffer.from(await partial.arrayBuffer()), bytes.subarray(10, 20));
  });

  it('the blob CDN refuses credentials (400) and unsigned URLs (403)', async () => {
    const child = await childFor('kube-proxy', 'v1.32.3', 'arm64');
    const blobUrl = `${upstream.registries['registry.k8s.io']}/v2/kube-proxy/blobs/${child.config.digest}`;
    const location = (await fetch(blobUrl, { redirect: 'manual' })).headers.get('location')!;
    const withAuth = await fetch(location, { headers: { authorization: 'Bearer anything' } });
    assert.equal(withAuth.status, 400);
    const unsigned = new URL(location);
    unsigned.search = '';
    assert.equal((await fetch(unsigned)).status, 403);
  });

  it('answers 404 BLOB_UNKNOWN for a blob it does not have', async () => {
    const missing = `sha256:${'0'.repeat(64)}`;
    const url = `${upstream.registries['registry.k8s.io']}/v2/pause/blobs/${missing}`;
    const { status, body } = await getJson<{ errors: { code: string }[] }>(url);
    assert.equal(status, 404);
    assert.equal(body.errors[0]?.code, 'BLOB_UNKNOWN');
  });

  it('pause children use an uncompressed layer; kube-* children gzip', async () => {
    for (const architecture of ['amd64', 'arm64']) {
      const pause = await childFor('pause', '3.10', architecture);
      assert.equal(pause.mediaType, MEDIA_TYPES.dockerManifest);
      assert.deepEqual(pause.layers.map((layer) => layer.mediaType), [MEDIA_TYPES.dockerLayerTar]);
    }
    const scheduler = await childFor('kube-scheduler', 'v1.32.3', 'amd64');
    assert.deepEqual(scheduler.layers.map((layer) => layer.mediaType), [MEDIA_TYPES.dockerLayerGzip, MEDIA_TYPES.dockerLayerGzip]);
  });

  it('etcd and coredns are OCI indexes with OCI manifests', async () => {
    for (const [repository, tag] of [['etcd', '3.5.16-0'], ['coredns/coredns', 'v1.11.3']] as const) {
      const index = await k8sManifest<Index>(repository, tag);
      assert.equal(index.mediaType, MEDIA_TYPES.ociIndex);
      assert.deepEqual(index.manifests.map((entry) => entry.mediaType), [MEDIA_TYPES.ociManifest, MEDIA_TYPES.ociManifest]);
    }
  });

  it('kube-apiserver and kube-proxy share the base layer but not the image layer', async () => {
    for (const architecture of ['amd64', 'arm64']) {
      const apiserver = await childFor('kube-apiserver', 'v1.32.3', architecture);
      const proxy = await childFor('kube-proxy', 'v1.32.3', architecture);
      assert.equal(apiserver.layers[0]?.digest, proxy.layers[0]?.digest, `${architecture} base layer`);
      assert.notEqual(apiserver.layers[1]?.digest, proxy.layers[1]?.digest);
    }
    const amd64 = await childFor('kube-apiserver', 'v1.32.3', 'amd64');
    const arm64 = await childFor('kube-apiserver', 'v1.32.3', 'arm64');
    assert.notEqual(amd64.layers[0]?.digest, arm64.layers[0]?.digest);
    assert.ok(amd64.layers[0]!.size > 500_000, 'the amd64 base layer carries busybox');
  });

  it('refuses pushes with 405', async () => {
    const base = upstream.registries['registry.k8s.io'];
    assert.equal((await fetch(`${base}/v2/pause/blobs/uploads/`, { method: 'POST' })).status, 405);
    const put = await fetch(`${base}/v2/pause/manifests/evil`, { method: 'PUT', body: '{}' });
    assert.equal(put.status, 405);
  });
});

describe('ghcr.io', () => {
  const flannel = () => `${upstream.registries['ghcr.io']}/v2/flannel-io/flannel/manifests/v0.26.5`;

  it('answers 401 with a Bearer challenge for the repository scope without a token', async () => {
    const response = await fetch(flannel(), { headers: { accept: OCI_INDEX_AND_MANIFESTS } });
    assert.equal(response.status, 401);
    const realm = `${upstream.registries['ghcr.io']}/token`;
    assert.equal(
      response.headers.get('www-authenticate'),
      `Bearer realm="${realm}",service="ghcr.io",scope="repository:flannel-io/flannel:pull"`,
    );
    assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0]?.code, 'UNAUTHORIZED');
    assert.equal((await fetch(`${upstream.registries['ghcr.io']}/v2/`)).status, 401);
  });

  it('serves the index with a token, MANIFEST_UNKNOWN without the OCI index Accept type', async () => {
    const challenge = (await fetch(flannel())).headers.get('www-authenticate')!;
    const { token } = await tokenFromChallenge(challenge);
    const authorization = `Bearer ${token}`;

    const refused = await getJson<{ errors: { code: string; message: string }[] }>(flannel(), {
      authorization,
      accept: `${MEDIA_TYPES.dockerList}, ${MEDIA_TYPES.dockerManifest}, ${MEDIA_TYPES.ociManifest}`,
    });
    assert.equal(refused.status, 404);
    assert.deepEqual(
      [refused.body.errors[0]?.code, refused.body.errors[0]?.message],
      ['MANIFEST_UNKNOWN', 'OCI index found, but Accept header does not support OCI indexes'],
    );

    const served = await getJson<Index>(flannel(), { authorization, accept: OCI_INDEX_AND_MANIFESTS });
    assert.equal(served.status, 200);
    assert.equal(served.response.headers.get('docker-content-digest'), image('ghcr.io/flannel-io/flannel:v0.26.5').indexDigest);
    const attestations = served.body.manifests.filter((entry) => entry.platform?.architecture === 'unknown');
    assert.equal(attestations.length, 2);
    for (const attestation of attestations) {
      assert.equal(attestation.platform?.os, 'unknown');
      assert.equal(attestation.annotations?.['vnd.docker.reference.type'], 'attestation-manifest');
      const subject = attestation.annotations?.['vnd.docker.reference.digest'];
      assert.ok(served.body.manifests.some((entry) => entry.digest === subject && entry.platform?.os === 'linux'));
    }
  });

  it('does not accept a token scoped to another repository', async () => {
    const cni = `${upstream.registries['ghcr.io']}/v2/flannel-io/flannel-cni-plugin/manifests/v1.6.2-flannel1`;
    const { token } = await tokenFromChallenge((await fetch(cni)).headers.get('www-authenticate')!);
    assert.equal((await fetch(cni, { headers: { authorization: `Bearer ${token}`, accept: OCI_INDEX_AND_MANIFESTS } })).status, 200);
    const response = await fetch(flannel(), { headers: { authorization: `Bearer ${token}`, accept: OCI_INDEX_AND_MANIFESTS } });
    assert.equal(response.status, 401);
  });

  it('blobs: 307 to another host:port, which refuses the registry token (400) and serves the signed URL', async () => {
    const base = upstream.registries['ghcr.io'];
    const challenge = (await fetch(flannel())).headers.get('www-authenticate')!;
    const authorization = `Bearer ${(await tokenFromChallenge(challenge)).token}`;
    const index = (await getJson<Index>(flannel(), { authorization, accept: OCI_INDEX_AND_MANIFESTS })).body;
    const childUrl = `${base}/v2/flannel-io/flannel/manifests/${index.manifests[0]!.digest}`;
    const child = (await getJson<Manifest>(childUrl, { authorization, accept: OCI_INDEX_AND_MANIFESTS })).body;
    const blobUrl = `${base}/v2/flannel-io/flannel/blobs/${child.config.digest}`;

    assert.equal((await fetch(blobUrl, { redirect: 'manual' })).status, 401);
    const redirect = await fetch(blobUrl, { redirect: 'manual', headers: { authorization } });
    assert.equal(redirect.status, 307);
    const location = redirect.headers.get('location')!;
    assert.notEqual(hostPort(location), hostPort(base));
    assert.equal((await fetch(location, { headers: { authorization } })).status, 400);
    const bytes = Buffer.from(await (await fetch(location)).arrayBuffer());
    assert.equal(sha256(bytes), child.config.digest);
  });

  it('skopeo inspect --raw gets the index (token dance done by skopeo)', async () => {
    const reference = `docker://${hostPort(upstream.registries['ghcr.io'])}/flannel-io/flannel:v0.26.5`;
    const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', reference]);
    assert.equal(sha256(Buffer.from(stdout)), image('ghcr.io/flannel-io/flannel:v0.26.5').indexDigest);
  });

  it('skopeo copy --all pulls the multi-arch index through tokens and 307s without leaking credentials', async () => {
    const target = await mkdtemp(join(tmpdir(), 'upstream-registry-oci-'));
    try {
      upstream.resetCounts();
      const source = `docker://${hostPort(upstream.registries['ghcr.io'])}/flannel-io/flannel:v0.26.5`;
      await run('skopeo', ['copy', '--all', '--src-tls-verify=false', source, `oci:${target}:x`]);
      const layout = JSON.parse(await readFile(join(target, 'index.json'), 'utf8')) as Index;
      const indexDigest = image('ghcr.io/flannel-io/flannel:v0.26.5').indexDigest;
      assert.equal(layout.manifests[0]?.digest, indexDigest);
      const copied = await readFile(join(target, 'blobs', 'sha256', indexDigest.slice('sha256:'.length)));
      assert.equal(sha256(copied), indexDigest);

      const counts = upstream.counts['ghcr.io'];
      assert.ok(counts.token >= 1, 'skopeo fetched a token');
      assert.ok(counts.blob >= 4 && counts.cdn === counts.blob, `blobs ${counts.blob}, cdn ${counts.cdn}`);
      const cdnRequests = upstream.requests.filter((record) => record.upstream === 'ghcr.io' && record.kind === 'cdn');
      assert.ok(cdnRequests.every((record) => record.status === 200 && !record.authorization));
    } finally {
      await rm(target, { recursive: true, force: true });
    }
  });

  it('refuses a skopeo push', async () => {
    const source = `docker://${hostPort(upstream.registries['ghcr.io'])}/flannel-io/flannel:v0.26.5`;
    const destination = `docker://${hostPort(upstream.registries['ghcr.io'])}/flannel-io/evil:x`;
    await assert.rejects(
      run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', source, destination]),
      /401|unauthorized|authentication required/i,
    );
  });
});

describe('docker.io', () => {
  const busybox = () => `${upstream.registries['docker.io']}/v2/library/busybox/manifests/1.36`;

  it('gets its token from a realm on another host, for service registry.docker.io', async () => {
    const response = await fetch(busybox(), { headers: { accept: ALL_MANIFESTS } });
    assert.equal(response.status, 401);
    const challenge = response.headers.get('www-authenticate')!;
    assert.match(challenge, /service="registry\.docker\.io",scope="repository:library\/busybox:pull"$/);
    const { realm, token } = await tokenFromChallenge(challenge);
    assert.notEqual(new URL(realm).host, hostPort(upstream.registries['docker.io']));
    assert.notEqual(new URL(realm).hostname, new URL(upstream.registries['docker.io']).hostname);

    const served = await fetch(busybox(), { headers: { authorization: `Bearer ${token}`, accept: ALL_MANIFESTS } });
    assert.equal(served.status, 200);
    assert.equal(served.headers.get('docker-content-digest'), image('docker.io/library/busybox:1.36').indexDigest);
  });

  it('does not accept a ghcr.io token, and refuses pushes with 401', async () => {
    const ghcrChallenge = (await fetch(`${upstream.registries['ghcr.io']}/v2/library/busybox/manifests/1.36`)).headers.get(
      'www-authenticate',
    )!;
    const { token } = await tokenFromChallenge(ghcrChallenge);
    assert.equal((await fetch(busybox(), { headers: { authorization: `Bearer ${token}` } })).status, 401);
    const push = await fetch(`${upstream.registries['docker.io']}/v2/library/busybox/blobs/uploads/`, { method: 'POST' });
    assert.equal(push.status, 401);
    assert.match(push.headers.get('www-authenticate') ?? '', /scope="repository:library\/busybox:pull,push"/);
  });

  it('counts requests per kind: a manifest fetch is not a blob fetch', async () => {
    upstream.resetCounts();
    const { token } = await tokenFromChallenge((await fetch(busybox())).headers.get('www-authenticate')!);
    await fetch(busybox(), { headers: { authorization: `Bearer ${token}`, accept: ALL_MANIFESTS } });
    assert.deepEqual(
      { manifest: upstream.counts['docker.io'].manifest, token: upstream.counts['docker.io'].token, blob: upstream.counts['docker.io'].blob },
      { manifest: 2, token: 1, blob: 0 },
    );
    assert.equal(upstream.counts['ghcr.io'].manifest, 0);
  });
});
