import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seedPlan } from '../../src/core/build/seed-plan.js';
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
    /same repository path 'library\/app'/,
  );
});
