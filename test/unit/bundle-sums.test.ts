import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { imageBlobFile, packageFile, parentDirs, unsafePathReason } from '../../src/core/bundle/paths.js';
import { formatSums, parseSums } from '../../src/core/bundle/sums.js';
import { sha256File } from '../../src/util/digest.js';
import { tempDir } from './bundle-fixture.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

test('SHA256SUMS is sorted by path in sha256sum format and parses back', () => {
  const text = formatSums([{ path: 'packages/z.deb', sha256: A }, { path: 'bundle.yaml', sha256: B }, { path: 'packages/Packages', sha256: A }]);
  assert.equal(text, `${B}  bundle.yaml\n${A}  packages/Packages\n${A}  packages/z.deb\n`);
  assert.deepEqual([...parseSums(text, 'SHA256SUMS')], [['bundle.yaml', B], ['packages/Packages', A], ['packages/z.deb', A]]);
  assert.equal(parseSums('', 'SHA256SUMS').size, 0);
});

test('SHA256SUMS parsing is strict and names the line', () => {
  assert.throws(() => parseSums(`${A} bundle.yaml\n`, 'SHA256SUMS'), /SHA256SUMS line 1: expected/);
  assert.throws(() => parseSums(`${A}  a\n${A.toUpperCase()}  b\n`, 'SHA256SUMS'), /line 2: expected/);
  assert.throws(() => parseSums(`${A}  a\n${B}  a\n`, 'SHA256SUMS'), /line 2: 'a' is listed twice/);
  assert.throws(() => parseSums(`${A}  ../a\n`, 'SHA256SUMS'), /line 1: refusing path '\.\.\/a'/);
  assert.throws(() => parseSums(`${A}  a`, 'SHA256SUMS'), /not terminated by a newline/);
});

test('sha256File streams a file to the same digest as sha256sum', async (t) => {
  const file = join(await tempDir(t), 'f');
  await writeFile(file, 'hello\n');
  assert.deepEqual(await sha256File(file), { sha256: '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03', size: 6 });
});

test('bundle paths: unsafe ones are named, helpers build the layout', () => {
  assert.equal(unsafePathReason('packages/a.deb'), null);
  for (const [path, reason] of [
    ['', /empty/],
    ['/etc/x', /absolute/],
    ['a/../b', /traversal/],
    ['..', /traversal/],
    ['a/./b', /'\.' or empty/],
    ['a/', /'\.' or empty/],
    ['a\\b', /backslash/],
    ['a\nb', /newline/],
  ] as const) {
    assert.match(unsafePathReason(path) ?? 'accepted', reason, JSON.stringify(path));
  }
  assert.deepEqual(parentDirs('images/blobs/sha256/x'), ['images', 'images/blobs', 'images/blobs/sha256']);
  assert.deepEqual(parentDirs('bundle.yaml'), []);
  assert.equal(imageBlobFile(`sha256:${A}`), `images/blobs/sha256/${A}`);
  assert.throws(() => imageBlobFile('sha512:00'), /not a sha256 digest/);
  assert.equal(packageFile('kubeadm_1.32.3-1.1_amd64.deb'), 'packages/kubeadm_1.32.3-1.1_amd64.deb');
  assert.throws(() => packageFile('../x.deb'), /bad bundle path/);
});
