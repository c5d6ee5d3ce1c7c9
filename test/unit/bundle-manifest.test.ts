import assert from 'node:assert/strict';
import { test } from 'node:test';
import YAML from 'yaml';
import { completeManifest, manifestMismatches, manifestToYaml, parseManifest, type BundleManifest } from '../../src/core/bundle/manifest.js';
import { UserError } from '../../src/util/errors.js';
import { fixture, MTIME, tempDir } from './bundle-fixture.js';

const FPR = '0123456789ABCDEF0123456789ABCDEF01234567';

async function sample(t: { after(fn: () => Promise<void>): void }): Promise<BundleManifest> {
  return completeManifest((await fixture(await tempDir(t))).manifest, MTIME, FPR);
}

test('bundle.yaml round-trips, with apiVersion, kind, created and signer in place', async (t) => {
  const m = await sample(t);
  const text = manifestToYaml(m);
  assert.match(text, /^apiVersion: kube-bundle.dev\/v1alpha1\nkind: Bundle\nkubernetesVersion: v1.32.3\n/);
  assert.match(text, /\ncreated: 2025-03-01T12:00:00.000Z\nsigner: "?0123456789ABCDEF/);
  assert.deepEqual(parseManifest(text, 'bundle.yaml'), m);
  assert.equal(manifestToYaml(parseManifest(text, 'bundle.yaml')), text, 'serialising is stable');
  const unsigned = completeManifest(m, MTIME, null);
  assert.match(manifestToYaml(unsigned), /\nsigner: null\n/);
  assert.equal(parseManifest(manifestToYaml(unsigned), 'x').signer, null);
});

test('an all-digit fingerprint or a version like 1.30 stays a string', async (t) => {
  const m = { ...(await sample(t)), kubernetesVersion: '1.30', signer: '1'.repeat(40) };
  const back = parseManifest(manifestToYaml(m), 'bundle.yaml');
  assert.equal(back.kubernetesVersion, '1.30');
  assert.equal(back.signer, '1'.repeat(40));
});

test('invalid fields are refused naming the source and the field', async (t) => {
  const m = await sample(t);
  const broken = (edit: (doc: any) => void): string => {
    const doc = YAML.parse(manifestToYaml(m));
    edit(doc);
    return YAML.stringify(doc);
  };
  const cases: [string, (doc: any) => void, RegExp][] = [
    ['apiVersion', (d) => (d.apiVersion = 'v2'), /x\.tar: apiVersion must be kube-bundle\.dev\/v1alpha1/],
    ['sha256', (d) => (d.components.packages[0].sha256 = 'ABC'), /components\.packages\[0\]\.sha256 must be 64 lowercase hex/],
    ['size', (d) => (d.components.images[0].size = -1), /components\.images\[0\]\.size must be a whole number/],
    ['digest', (d) => (d.components.images[0].digest = 'md5:00'), /components\.images\[0\]\.digest must be sha256:/],
    ['kind', (d) => (d.components.files[1].kind = 'other'), /components\.files\[1\]\.kind must be one of manifest, release-file, installer/],
    ['path', (d) => (d.components.files[0].path = '../../etc/passwd'), /components\.files\[0\]\.path '\.\.\/\.\.\/etc\/passwd': '\.\.' segment/],
    ['arches', (d) => (d.arches = 'amd64'), /arches must be a list/],
    ['signer', (d) => (d.signer = 'me'), /signer must be null or an OpenPGP fingerprint/],
    ['created', (d) => (d.created = 'yesterday'), /created must be an ISO 8601 time/],
  ];
  for (const [name, edit, pattern] of cases) {
    assert.throws(() => parseManifest(broken(edit), 'x.tar'), (err: unknown) => err instanceof UserError && pattern.test(err.message), name);
  }
  assert.throws(() => parseManifest('a: [', 'x.tar'), /x\.tar is not valid YAML/);
});

test('manifestMismatches names packages, files and image blobs that SHA256SUMS does not back', async (t) => {
  const m = await sample(t);
  const pkg = m.components.packages[0]!;
  const files = m.components.files;
  const blob = `images/blobs/sha256/${m.components.images[0]!.digest.slice(7)}`;
  const all = new Map([[pkg.filename, pkg.sha256], ...files.map((f) => [f.path, f.sha256] as [string, string]), [blob, 'x']]);
  assert.deepEqual(manifestMismatches(m, all), []);
  const partial = new Map(all);
  partial.set(pkg.filename, '0'.repeat(64));
  partial.delete(files[0]!.path);
  partial.delete(blob);
  assert.deepEqual(manifestMismatches(m, partial).map((x) => x.path), [pkg.filename, files[0]!.path, blob]);
});
