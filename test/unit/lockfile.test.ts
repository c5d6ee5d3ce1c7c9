import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertMatchesLock, diffLock, readLock, renderLock, type LockFile } from '../../src/core/builder/lockfile.js';

const base: LockFile = {
  apiVersion: 'kube-bundle.dev/v1alpha1',
  kind: 'Lock',
  kubernetesVersion: 'v1.32.3',
  target: 'debian-12',
  arches: ['amd64'],
  runtimes: ['containerd'],
  artifacts: [
    { kind: 'deb', name: 'kubeadm', version: '1.32.3-1.1', arch: 'amd64', url: 'https://pkgs.k8s.io/x.deb', digest: 'sha256:aa' },
    { kind: 'image', name: 'registry.k8s.io/pause:3.10', version: '3.10', arch: 'all', url: 'docker://registry.k8s.io/pause:3.10', digest: 'sha256:bb' },
  ],
};

test('a lock file round-trips and equals itself', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lock-'));
  writeFileSync(join(dir, 'l.yaml'), renderLock(base));
  const back = readLock(join(dir, 'l.yaml'));
  assert.deepEqual(diffLock(back, base), []);
  assert.doesNotThrow(() => assertMatchesLock('l.yaml', back, base));
});

test('every difference is named: version, digest, missing, extra, arches', () => {
  const resolved: LockFile = {
    ...base,
    arches: ['amd64', 'arm64'],
    artifacts: [
      { ...base.artifacts[0]!, version: '1.32.3-2.1' },
      { ...base.artifacts[1]!, digest: 'sha256:cc' },
      { kind: 'deb', name: 'conntrack', version: '1:1.4.7-1+b2', arch: 'amd64', url: 'u', digest: 'sha256:dd' },
    ],
  };
  const diffs = diffLock(base, resolved);
  assert.equal(diffs.length, 4, diffs.join('\n'));
  assert.ok(diffs.some((d) => d.includes('deb kubeadm amd64: locked at 1.32.3-1.1, resolved 1.32.3-2.1')));
  assert.ok(diffs.some((d) => d.includes('locked digest sha256:bb, upstream now sha256:cc')));
  assert.ok(diffs.some((d) => d.includes('deb conntrack amd64: 1:1.4.7-1+b2 is not in the lock file')));
  assert.ok(diffs.some((d) => d.startsWith('arches:')));
  assert.throws(() => assertMatchesLock('my.lock', base, resolved), /differs from lock file my\.lock in 4 place/);
  const gone: LockFile = { ...base, artifacts: [base.artifacts[0]!] };
  assert.deepEqual(diffLock(base, gone), ['image registry.k8s.io/pause:3.10 all: locked at 3.10 (sha256:bb) but not part of this build']);
});

test('a file that is not a lock is refused by name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lock-'));
  writeFileSync(join(dir, 'x.yaml'), 'kind: Other\n');
  assert.throws(() => readLock(join(dir, 'x.yaml')), /x\.yaml is not a kube-bundle lock file/);
});
