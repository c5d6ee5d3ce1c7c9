/**
 * Differential bundles' pure parts: what a build carries against a base lock (builder/differential.ts), and the
 * bundle.yaml fields that name the base (bundle/manifest.ts): validated on read, fixed order, and verify's one
 * allowed absence.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertSinceMatches, baseBlobDigests, carriedPlan, differentialContent, sinceMismatches } from '../../src/core/builder/differential.js';
import type { LockedArtifact, LockFile } from '../../src/core/builder/lockfile.js';
import type { Plan } from '../../src/core/builder/plan.js';
import { completeManifest, manifestMismatches, manifestToYaml, parseManifest, type BundleManifest } from '../../src/core/bundle/manifest.js';
import { UserError } from '../../src/util/errors.js';
import { editedManifestText, fixture, MTIME, tempDir } from './bundle-fixture.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

function lock(version: string, artifacts: LockedArtifact[], over: Partial<LockFile> = {}): LockFile {
  return { apiVersion: 'kube-bundle.dev/v1alpha1', kind: 'Lock', kubernetesVersion: version, target: 'debian-12', arches: ['amd64'], runtimes: ['containerd'], artifacts, ...over };
}
const deb = (name: string, version: string, digest: string): LockedArtifact => ({ kind: 'deb', name, version, arch: 'amd64', url: `https://x/${name}_${version}.deb`, digest });
const image = (name: string, digest: string, blobs?: string[]): LockedArtifact => ({ kind: 'image', name, version: name.split(':')[1]!, arch: 'all', url: `docker://${name}`, digest, ...(blobs ? { blobs } : {}) });
const file = (name: string, digest: string): LockedArtifact => ({ kind: 'file', name, version: '-', arch: 'all', url: `https://github.com/x/${name}`, digest });

// v1.32.4 → v1.33.1 in miniature: kubeadm is new, containerd is the same deb, flannel's manifest the same file;
// kube-apiserver has a new index, manifest and name layer over the shared base layer 'b'; pause is the same image.
const BASE = lock('v1.32.4', [
  deb('kubeadm', '1.32.4-1.1', d('1')),
  deb('containerd', '1.6.20~ds1-1+b1', d('2')),
  image('registry.k8s.io/kube-apiserver:v1.32.4', d('a'), [d('a'), d('3'), d('b'), d('4')]),
  image('registry.k8s.io/pause:3.10', d('p'), [d('p'), d('5'), d('6')]),
  file('kube-flannel.yml', d('f')),
]);
const NEXT = lock('v1.33.1', [
  deb('kubeadm', '1.33.1-1.1', d('7')),
  deb('containerd', '1.6.20~ds1-1+b1', d('2')),
  image('registry.k8s.io/kube-apiserver:v1.33.1', d('c'), [d('c'), d('8'), d('b'), d('9')]),
  image('registry.k8s.io/pause:3.10', d('p'), [d('p'), d('5'), d('6')]),
  file('kube-flannel.yml', d('f')),
]);

test('a differential build carries exactly the debs, blobs and files whose digests the base lock lacks', () => {
  const content = differentialContent(BASE, NEXT);
  assert.deepEqual([...content.carried.debs], [d('7')]);
  assert.deepEqual([...content.carried.blobs].sort(), [d('8'), d('9'), d('c')], 'the shared base layer b stays in the base');
  assert.deepEqual([...content.carried.files], []);
  assert.deepEqual(content.fromBase, { debs: 1, files: 1, blobs: 4 }, 'b, and pause whole (p, 5, 6)');
});

test('a rebuilt deb of the same name and version is carried (content, not names, decides)', () => {
  const rebuilt = lock('v1.33.1', [deb('containerd', '1.6.20~ds1-1+b1', d('e'))]);
  assert.deepEqual([...differentialContent(BASE, rebuilt).carried.debs], [d('e')]);
});

test('against itself nothing is carried; against an empty base everything is', () => {
  const same = differentialContent(NEXT, NEXT);
  assert.equal(same.carried.debs.size + same.carried.blobs.size + same.carried.files.size, 0);
  const all = differentialContent(lock('v1.32.0', []), NEXT);
  assert.deepEqual(all.carried.debs.size, 2);
  assert.deepEqual(all.carried.blobs.size, 7, 'c 8 b 9 p 5 6, each once');
  assert.deepEqual(all.fromBase, { debs: 0, files: 0, blobs: 0 });
});

test('a base lock without blob lists (written before them) still leaves out an image it has whole', () => {
  const old = lock('v1.32.3', [image('registry.k8s.io/pause:3.10', d('p')), image('registry.k8s.io/kube-apiserver:v1.32.3', d('a'))]);
  const content = differentialContent(old, NEXT);
  assert.ok(![d('p'), d('5'), d('6')].some((b) => content.carried.blobs.has(b)), 'pause is in the base by its index digest');
  assert.ok(content.carried.blobs.has(d('b')), 'without blob lists a shared layer cannot be known: it is carried');
  assert.deepEqual([...baseBlobDigests(old)].sort(), [d('a'), d('p')]);
});

test('--since refuses another target, another architecture set and a newer base, naming each', () => {
  const build = { kubernetesVersion: 'v1.33.1', target: 'debian-12', arches: ['amd64'] };
  assert.deepEqual(sinceMismatches(BASE, build), []);
  assert.deepEqual(sinceMismatches(BASE, { ...build, arches: ['amd64'] }), []);
  const problems = sinceMismatches(lock('v1.34.0', [], { target: 'debian-13', arches: ['amd64', 'arm64'] }), build);
  assert.deepEqual(problems, [
    'target: the base is for debian-13, this build for debian-12',
    'architectures: the base carries amd64,arm64, this build amd64',
    "kubernetesVersion: the base is v1.34.0, newer than this build's v1.33.1 (a site does not go back)",
  ]);
  assert.throws(
    () => assertSinceMatches('old.lock.yaml', lock('v1.32.4', [], { arches: ['arm64'] }), build),
    (err: unknown) => err instanceof UserError && /--since old\.lock\.yaml cannot be the base of this build:\n  architectures: the base carries arm64, this build amd64/.test(err.message),
  );
});

test('carriedPlan keeps the carried debs and files, and every image with only its carried blobs', () => {
  const desc = (c: string, size: number) => ({ mediaType: 'x', digest: d(c), size });
  const plan = {
    debs: [{ record: { sha256: '7'.repeat(64) } }, { record: { sha256: '2'.repeat(64) } }],
    images: [
      { reference: 'registry.k8s.io/kube-apiserver:v1.33.1', descriptor: desc('c', 1), manifests: [], blobs: [desc('c', 1), desc('8', 2), desc('b', 300), desc('9', 4)] },
      { reference: 'registry.k8s.io/pause:3.10', descriptor: desc('p', 1), manifests: [], blobs: [desc('p', 1), desc('5', 2), desc('6', 3)] },
    ],
    files: [{ sha256: 'f'.repeat(64) }],
  } as unknown as Plan;
  const carried = carriedPlan(plan, differentialContent(BASE, NEXT));
  assert.deepEqual(carried.debs.map((x) => x.record.sha256), ['7'.repeat(64)]);
  assert.deepEqual(carried.files, []);
  assert.deepEqual(carried.images.map((i) => [i.reference, i.blobs.map((b) => b.digest)]), [
    ['registry.k8s.io/kube-apiserver:v1.33.1', [d('c'), d('8'), d('9')]],
    ['registry.k8s.io/pause:3.10', []],
  ]);
});

async function differential(t: { after(fn: () => Promise<void>): void }): Promise<BundleManifest> {
  const m = completeManifest((await fixture(await tempDir(t))).manifest, MTIME, null);
  // the fixture's image is carried; a second one, which the base has whole, is listed with its digest only
  const images = [...m.components.images, { ref: 'registry.k8s.io/kube-proxy:v1.32.3', digest: d('9'), mediaType: 'application/vnd.oci.image.index.v1+json', platforms: ['linux/amd64'], size: 0, fromBase: true as const }];
  return { ...m, base: { kubernetesVersion: 'v1.32.3', lockSha256: 'ab'.repeat(32) }, components: { ...m.components, images } };
}

test('bundle.yaml names the base after signer and marks images the base has; full bundles read as before', async (t) => {
  const m = await differential(t);
  const text = manifestToYaml(m);
  assert.match(text, /\nsigner: null\nbase:\n {2}kubernetesVersion: v1\.32\.3\n {2}lockSha256: (ab){32}\ncomponents:\n/);
  assert.match(text, /\n {6}fromBase: true\n/);
  assert.deepEqual(parseManifest(text, 'bundle.yaml'), m);
  assert.equal(manifestToYaml(parseManifest(text, 'bundle.yaml')), text, 'serialising is stable');
  const full = { ...m, components: { ...m.components, images: m.components.images.map(({ fromBase: _, ...i }) => i) } };
  delete (full as Partial<BundleManifest>).base;
  const fullText = manifestToYaml(full);
  assert.doesNotMatch(fullText, /base:|fromBase/, 'a full bundle has neither field');
  assert.equal(parseManifest(fullText, 'bundle.yaml').base, undefined);
});

test('the base fields are validated on read, naming the field', async (t) => {
  const m = await differential(t);
  const broken = (edit: (doc: any) => void): string => editedManifestText(m, edit);
  const cases: [string, (doc: any) => void, RegExp][] = [
    ['lockSha256', (doc) => (doc.base.lockSha256 = 'XYZ'), /x\.tar: base\.lockSha256 must be 64 lowercase hex digits/],
    ['version', (doc) => (doc.base.kubernetesVersion = 'latest'), /base\.kubernetesVersion must be a release version like v1\.32\.3, got 'latest'/],
    ['not a mapping', (doc) => (doc.base = 'v1.32.3'), /x\.tar: base must be a mapping/],
    ['fromBase false', (doc) => (doc.components.images[1].fromBase = false), /components\.images\[1\]\.fromBase must be true when present, got false/],
    ['fromBase on a full bundle', (doc) => delete doc.base, /components\.images\[1\]\.fromBase is allowed in a differential bundle only/],
  ];
  for (const [name, edit, pattern] of cases) {
    assert.throws(() => parseManifest(broken(edit), 'x.tar'), (err: unknown) => err instanceof UserError && pattern.test(err.message), name);
  }
});

test('manifestMismatches accepts a missing image blob only for an image marked fromBase in a differential bundle', async (t) => {
  const m = await differential(t);
  const [carried, fromBase] = m.components.images as [BundleManifest['components']['images'][number], BundleManifest['components']['images'][number]];
  const blob = (digest: string) => `images/blobs/sha256/${digest.slice(7)}`;
  const sums = new Map<string, string>([
    ...m.components.packages.map((p) => [p.filename, p.sha256] as [string, string]),
    ...m.components.files.map((f) => [f.path, f.sha256] as [string, string]),
    [blob(carried.digest), 'x'],
  ]);
  assert.deepEqual(manifestMismatches(m, sums), [], 'the fromBase image has no blob here: accepted');

  const withBlob = new Map(sums).set(blob(fromBase.digest), 'x');
  assert.deepEqual(manifestMismatches(m, withBlob).map((x) => x.detail), [`image ${fromBase.ref}@${fromBase.digest} is marked fromBase in bundle.yaml but its blob is in SHA256SUMS`]);

  const missingCarried = new Map(sums);
  missingCarried.delete(blob(carried.digest));
  assert.deepEqual(manifestMismatches(m, missingCarried).map((x) => x.path), [blob(carried.digest)], 'an unmarked image must have its blob');

  const full = { ...m, components: { ...m.components, images: m.components.images.map(({ fromBase: _, ...i }) => i) } };
  delete (full as Partial<BundleManifest>).base;
  assert.deepEqual(manifestMismatches(full, sums).map((x) => x.path), [blob(fromBase.digest)], 'in a full bundle the same absence fails');
});
