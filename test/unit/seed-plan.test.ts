import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seedPlan, seededRepositories } from '../../src/core/builder/seed-plan.js';
import type { PulledImage } from '../../src/core/oci/registry.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const desc = (digest: string) => ({ mediaType: 'x', digest, size: 1 });

function image(reference: string, top: string, child: string, layers: string[]): PulledImage {
  return { reference, descriptor: desc(d(top)), manifests: [desc(d(child))], blobs: [desc(d(top)), desc(d(child)), ...layers.map((l) => desc(d(l)))] };
}

test('the plan lists blobs, then layer and manifest links per repository, then tags; shared blobs once', () => {
  const plan = seedPlan([
    image('registry.k8s.io/pause:3.10', 'a', 'b', ['c', 'e']),
    image('ghcr.io/flannel-io/flannel:v0.26.5', 'f', '1', ['c', '2']),
  ]).trim().split('\n');
  assert.equal(plan.filter((l) => l === `blob ${'c'.repeat(64)}`).length, 1, 'a shared layer is stored once');
  assert.ok(plan.includes(`layer pause ${'c'.repeat(64)}`) && plan.includes(`layer flannel-io/flannel ${'c'.repeat(64)}`), 'but linked into both repositories');
  assert.ok(plan.includes(`manifest pause ${'a'.repeat(64)}`) && plan.includes(`manifest pause ${'b'.repeat(64)}`));
  assert.ok(plan.includes(`tag pause 3.10 ${'a'.repeat(64)}`));
  assert.ok(plan.includes(`tag flannel-io/flannel v0.26.5 ${'f'.repeat(64)}`));
  const kinds = plan.map((l) => l.split(' ')[0]);
  assert.deepEqual(kinds, [...kinds].sort((x, y) => ['blob', 'layer', 'manifest', 'tag'].indexOf(x!) - ['blob', 'layer', 'manifest', 'tag'].indexOf(y!)));
});

test('two registries with the same repository path cannot share one seeded registry', () => {
  assert.throws(
    () => seedPlan([image('docker.io/library/app:1', 'a', 'b', []), image('quay.io/library/app:2', 'c', 'e', [])]),
    /both be served under the repository path 'library\/app'/,
  );
});

test("CoreDNS is also linked under kubeadm's flat path <repository>/coredns, sharing its blobs", () => {
  const plan = seedPlan([image('registry.k8s.io/coredns/coredns:v1.11.3', 'a', 'b', ['c'])]).trim().split('\n');
  for (const repo of ['coredns/coredns', 'coredns']) {
    assert.ok(plan.includes(`tag ${repo} v1.11.3 ${'a'.repeat(64)}`), `tagged under ${repo}`);
    assert.ok(plan.includes(`manifest ${repo} ${'b'.repeat(64)}`), `child manifest linked under ${repo}`);
    assert.ok(plan.includes(`layer ${repo} ${'c'.repeat(64)}`), `layer linked under ${repo}`);
  }
  assert.equal(plan.filter((l) => l.startsWith('blob ')).length, 3, 'the alias adds links, no blobs');
  assert.deepEqual(seededRepositories('registry.k8s.io/pause:3.10'), ['pause'], 'other images keep their one path');
  assert.deepEqual(seededRepositories('docker.io/coredns/coredns:1.11.3'), ['coredns/coredns'], 'only the registry.k8s.io image is flattened by kubeadm');
});

test('an image at the flat CoreDNS path of another repository is refused', () => {
  assert.throws(
    () => seedPlan([image('registry.k8s.io/coredns/coredns:v1.11.3', 'a', 'b', []), image('ghcr.io/coredns:v1', 'c', 'e', [])]),
    /registry\.k8s\.io\/coredns\/coredns:v1\.11\.3 and ghcr\.io\/coredns:v1 would both be served under the repository path 'coredns'/,
  );
});
