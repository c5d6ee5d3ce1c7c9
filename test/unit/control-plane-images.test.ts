/**
 * The control-plane image list comes from the pinned table only: the downloaded kubeadm is never executed on the
 * build machine, which holds the signing key.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { controlPlaneImages } from '../../src/core/builder/control-plane-images.js';
import { controlPlaneImagesFile } from '../../src/core/definitions.js';
import { parseKubeVersion } from '../../src/core/kube-version.js';
import { UserError } from '../../src/util/errors.js';

test('a version the table covers gives its images, at once and from the table alone', () => {
  const images = controlPlaneImages(parseKubeVersion('v1.32.3'));
  assert.ok(Array.isArray(images), 'a plain list: nothing to wait for, nothing run');
  assert.ok(images.includes('registry.k8s.io/etcd:3.5.16-0') && images.includes('registry.k8s.io/kube-apiserver:v1.32.3'));
});

test('a version the table does not cover fails naming the table file and the version, with a hint', () => {
  for (const v of ['v1.32.99', 'v1.35.0']) {
    assert.throws(
      () => controlPlaneImages(parseKubeVersion(v)),
      (e: unknown) => e instanceof UserError && e.message.includes(controlPlaneImagesFile()) && e.message.includes(v) && /add the row/.test(e.hint ?? ''),
      v,
    );
  }
});

test('nothing in the build runs a program (a downloaded kubeadm least of all)', () => {
  const dir = path.resolve(import.meta.dirname, '../../src/core/builder');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(path.join(dir, file), 'utf8');
    assert.doesNotMatch(source, /node:child_process|\bexecFile\b|\bspawn\(/, file);
  }
});
