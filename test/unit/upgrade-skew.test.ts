/**
 * Whether a cluster may go to a version: kubeadm's policy (no downgrade, one minor at a time) and the kubelet skew
 * policy (never newer than the API server, at most three minors older), every problem named at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { atVersion, upgradeProblems, versionIn } from '../../src/core/upgrade/skew.js';

const nodes = (...kubelets: string[]) => kubelets.map((kubelet, i) => ({ label: `h${i + 1}`, kubelet }));

test('a patch release, and the next minor, are allowed; a half-done upgrade to the same version continues', () => {
  assert.deepEqual(upgradeProblems({ apiServer: 'v1.32.3', nodes: nodes('v1.32.3', 'v1.32.3') }, 'v1.32.4'), []);
  assert.deepEqual(upgradeProblems({ apiServer: 'v1.32.4', nodes: nodes('v1.32.4', 'v1.32.4') }, 'v1.33.1'), []);
  assert.deepEqual(upgradeProblems({ apiServer: 'v1.33.1', nodes: nodes('v1.33.1', 'v1.32.4') }, 'v1.33.1'), []);
});

test('a downgrade, a skipped minor and kubelets out of skew are refused, all at once, naming the node', () => {
  assert.deepEqual(upgradeProblems({ apiServer: 'v1.32.4', nodes: nodes('v1.32.4') }, 'v1.32.3'), [
    "the control plane runs v1.32.4, newer than the bundle's v1.32.3: kube-bundle does not downgrade",
    "h1: its kubelet runs v1.32.4, newer than the bundle's v1.32.3",
  ]);
  assert.match(upgradeProblems({ apiServer: 'v1.32.4', nodes: nodes('v1.32.4') }, 'v1.34.0')[0]!, /skips a minor release: upgrade one minor at a time \(v1\.32\.4 → v1\.33\.x → v1\.34\.0\)/);
  assert.deepEqual(upgradeProblems({ apiServer: 'v1.32.0', nodes: nodes('v1.32.1', 'v1.29.9') }, 'v1.33.0'), [
    "h1: its kubelet runs v1.32.1, newer than the API server's v1.32.0 (out of the skew policy)",
    'h2: its kubelet runs v1.29.9, more than three minors older than v1.33.0: upgrade it first',
  ]);
});

test('versions as kubelet and kubectl print them; nothing to do only when everything runs the target', () => {
  assert.equal(versionIn('Kubernetes v1.32.3\n'), 'v1.32.3');
  assert.equal(versionIn('no version here'), null);
  assert.equal(atVersion({ apiServer: 'v1.32.4', nodes: nodes('v1.32.4', 'v1.32.4') }, 'v1.32.4'), true);
  assert.equal(atVersion({ apiServer: 'v1.32.4', nodes: nodes('v1.32.4', 'v1.32.3') }, 'v1.32.4'), false);
});
