import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/package-root.js';

const SEED = join(packageRoot(), 'scripts', 'host', 'seed-registry.sh');

test('seed-registry.sh: a storage left half-seeded by a cut run (blob missing or cut short, link files cut) is whole after the next run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kb-seed-'));
  try {
    const layout = join(dir, 'images');
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    const blob = (text: string) => {
      const hex = createHash('sha256').update(text).digest('hex');
      writeFileSync(join(layout, 'blobs', 'sha256', hex), text);
      return hex;
    };
    const layer = blob('layer bytes');
    const manifest = blob('{"manifest":1}');
    const plan = join(dir, 'plan.txt');
    writeFileSync(plan, `blob ${layer}\nblob ${manifest}\nlayer pause ${layer}\nmanifest pause ${manifest}\ntag pause 3.10 ${manifest}\n`);
    const root = join(dir, 'registry');
    const store = join(root, 'docker/registry/v2');
    const seed = () => execFileSync('bash', [SEED, plan, layout, root], { encoding: 'utf8' });
    const data = (hex: string) => join(store, 'blobs/sha256', hex.slice(0, 2), hex, 'data');
    const tagLink = join(store, 'repositories/pause/_manifests/tags/3.10/current/link');

    assert.match(seed(), /seed-registry: 2 blobs in/);
    assert.equal(statSync(data(layer)).ino, statSync(join(layout, 'blobs/sha256', layer)).ino, 'a hard link');
    // cut: one blob gone, one replaced by a short copy, a link file cut half-way
    rmSync(data(manifest));
    rmSync(data(layer));
    writeFileSync(data(layer), 'layer');
    writeFileSync(tagLink, 'sha256:');
    seed();
    assert.equal(readFileSync(data(layer), 'utf8'), 'layer bytes');
    assert.equal(readFileSync(data(manifest), 'utf8'), '{"manifest":1}');
    assert.equal(readFileSync(tagLink, 'utf8'), `sha256:${manifest}`);
    assert.equal(readFileSync(join(store, 'repositories/pause/_layers/sha256', layer, 'link'), 'utf8'), `sha256:${layer}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
