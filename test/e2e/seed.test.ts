/**
 * Registry seeding: the bundle's seed plan and host script turn its OCI layout into the storage of a real
 * distribution registry, which then serves every image under its upstream path with its upstream digest.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { startDistribution } from '../upstream/distribution.js';
import { buildTestBundle } from '../helpers/bundle.js';

const run = promisify(execFile);

describe('seeding the registry from a bundle', () => {
  let dir: string;
  let x: string;
  let images: { ref: string; digest: string }[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-seed-'));
    const bundle = await buildTestBundle(dir, ['--runtime', 'containerd']);
    x = join(dir, 'x');
    mkdirSync(x);
    await run('tar', ['xf', bundle.file, '-C', x, 'images', 'installer', 'bundle.yaml']);
    images = parse(readFileSync(join(x, 'bundle.yaml'), 'utf8')).components.images;
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the seeded registry serves every image by its upstream path with its upstream digest, and re-seeding is a no-op', async () => {
    const storage = join(dir, 'reg', 'distribution', 'storage');
    const seed = () => run(join(x, 'installer/seed-registry.sh'), [join(x, 'installer/registry-seed.txt'), join(x, 'images'), storage]);
    const first = await seed();
    assert.match(first.stdout, /seed-registry: \d+ blobs in/);
    await seed(); // idempotent
    const registry = await startDistribution({ workDir: join(dir, 'reg') });
    try {
      const host = new URL(registry.url).host;
      for (const image of images) {
        const path = image.ref.replace(/^[^/]+\//, '');
        const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${path}`], { encoding: 'buffer' });
        assert.equal(`sha256:${createHash('sha256').update(stdout).digest('hex')}`, image.digest, image.ref);
      }
      // layers are served too: a full pull of one platform
      const out = join(dir, 'pulled');
      await run('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', 'amd64', `docker://${host}/flannel-io/flannel:v0.26.5`, `oci:${out}:x`]);
      await run('skopeo', ['copy', '--src-tls-verify=false', '--override-arch', 'amd64', `docker://${host}/pause:3.10`, `oci:${out}:p`]);
    } finally {
      await registry.stop();
    }
  });
});
