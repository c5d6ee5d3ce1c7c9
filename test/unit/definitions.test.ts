import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { parseKubeVersion } from '../../src/core/kube-version.js';
import { controlPlaneImagesFromTable, loadComponents, loadTarget, parseArch, parseRuntimes, targetNames } from '../../src/core/definitions.js';
import { UserError } from '../../src/util/errors.js';

test('Kubernetes versions: v-prefixed or plain, exact releases only', () => {
  assert.deepEqual(parseKubeVersion('v1.32.3'), { major: 1, minor: 32, patch: 3, plain: '1.32.3', tag: 'v1.32.3', minorTag: 'v1.32' });
  assert.equal(parseKubeVersion('1.31.7').tag, 'v1.31.7');
  for (const bad of ['1.32', 'v1.32.3-rc.1', 'latest', 'v1.32.x', '']) {
    assert.throws(() => parseKubeVersion(bad), (e: unknown) => e instanceof UserError && /not a Kubernetes release version/.test(e.message), bad);
  }
  assert.throws(() => parseKubeVersion('v1.20.0'), /not supported/);
});

test('the image table gives kubeadm\'s list for v1.32.3 in kubeadm\'s order', () => {
  assert.deepEqual(controlPlaneImagesFromTable(parseKubeVersion('v1.32.3')), [
    'registry.k8s.io/kube-apiserver:v1.32.3',
    'registry.k8s.io/kube-controller-manager:v1.32.3',
    'registry.k8s.io/kube-scheduler:v1.32.3',
    'registry.k8s.io/kube-proxy:v1.32.3',
    'registry.k8s.io/coredns/coredns:v1.11.3',
    'registry.k8s.io/pause:3.10',
    'registry.k8s.io/etcd:3.5.16-0',
  ]);
  assert.equal(controlPlaneImagesFromTable(parseKubeVersion('v1.32.11'))?.at(-1), 'registry.k8s.io/etcd:3.5.24-0');
  assert.equal(controlPlaneImagesFromTable(parseKubeVersion('v1.34.0'))?.[5], 'registry.k8s.io/pause:3.10.1');
  assert.equal(controlPlaneImagesFromTable(parseKubeVersion('v1.32.99')), undefined);
});

test('targets, arches and runtimes', () => {
  assert.deepEqual(targetNames(), ['debian-12', 'ubuntu-22.04', 'ubuntu-24.04']);
  const debian = loadTarget('debian-12');
  assert.equal(debian.codename, 'bookworm');
  assert.ok(existsSync(debian.keyring), debian.keyring);
  assert.throws(() => loadTarget('centos-7'), (e: unknown) => e instanceof UserError && /unknown target 'centos-7'/.test(e.message) && /debian-12/.test(e.hint ?? ''));
  assert.equal(parseArch('arm64'), 'arm64');
  assert.throws(() => parseArch('x86_64'), /unknown architecture 'x86_64'/);
  assert.deepEqual(parseRuntimes('docker,containerd'), ['containerd', 'docker']);
  assert.throws(() => parseRuntimes('crio'), /unknown runtime 'crio'/);
  assert.equal(loadComponents().flannel.version, 'v0.26.5');
});
