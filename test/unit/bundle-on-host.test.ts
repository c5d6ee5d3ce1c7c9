/**
 * The scripts install runs on each host to unpack the uploaded bundle and check the tree, run here with the
 * local shell and GNU tar (as root, like on a host): a tree that checks out is moved into place with the packed
 * modes; every kind of change made to it afterwards is refused, naming the path.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, chmod, chown, mkdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { SUMS_FILE } from '../../src/core/bundle/paths.js';
import { checkScript, unpackScript, type BundleOnHost } from '../../src/core/install/bundle-on-host.js';
import { DEB, FROM_DISK, INSTALL_SH, makeKey, packFixture, tempDir } from './bundle-fixture.js';

const run = promisify(execFile);
const key = await makeKey();

async function sh(script: string): Promise<{ code: number; stderr: string }> {
  try {
    await run('sh', ['-c', script]);
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

async function unpacked(t: { after(fn: () => Promise<void>): void }): Promise<BundleOnHost> {
  const dir = await tempDir(t);
  const tar = await packFixture(dir, key);
  const sumsText = execFileSync('tar', ['-xOf', tar, SUMS_FILE]);
  const b = { tar, dir: join(dir, 'unpacked'), sumsSha256: createHash('sha256').update(sumsText).digest('hex'), signed: true };
  const r = await sh(unpackScript(b));
  assert.equal(r.code, 0, r.stderr);
  return b;
}

const modeOf = async (path: string) => ((await stat(path)).mode & 0o7777).toString(8);

test('unpack: the tree checks out, with the packed modes, owned by root, and no partial directory is left', async (t) => {
  const b = await unpacked(t);
  assert.equal(await modeOf(join(b.dir, INSTALL_SH)), '755');
  assert.equal(await modeOf(join(b.dir, DEB)), '644');
  assert.equal(await modeOf(join(b.dir, 'installer')), '755');
  assert.equal((await stat(join(b.dir, DEB))).uid, 0);
  await assert.rejects(stat(`${b.dir}.partial`));
  assert.deepEqual(await sh(checkScript(b)), { code: 0, stderr: '' });
});

test('unpack refuses a tar whose SHA256SUMS is not the verified one, and leaves nothing under the final name', async (t) => {
  const dir = await tempDir(t);
  const tar = await packFixture(dir, key);
  const b = { tar, dir: join(dir, 'unpacked'), sumsSha256: '0'.repeat(64), signed: true };
  const r = await sh(unpackScript(b));
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /SHA256SUMS is not the one the verified bundle has/);
  await assert.rejects(stat(b.dir));
});

const tampering: [string, (b: BundleOnHost) => Promise<void>, RegExp][] = [
  ['changed content', (b) => appendFile(join(b.dir, INSTALL_SH), 'id\n'), /differs from its SHA256SUMS:\n {2}changed: installer\/install\.sh\n$/],
  ['a missing file', (b) => rm(join(b.dir, DEB)), / {2}missing: packages\/kubeadm_1\.32\.3-1\.1_amd64\.deb/],
  ['an extra file', (b) => writeFile(join(b.dir, 'installer/extra.sh'), '#!/bin/sh\n', { mode: 0o755 }), / {2}not listed: installer\/extra\.sh/],
  ['a setuid script', (b) => chmod(join(b.dir, FROM_DISK), 0o4755), /mode differs from the one kube-bundle packs: \.\/installer\/from-disk\.sh/],
  ['a world-writable directory', (b) => chmod(join(b.dir, 'installer'), 0o1777), /mode differs from the one kube-bundle packs: \.\/installer\n/],
  ['a symlink', (b) => symlink('/etc/shadow', join(b.dir, 'manifests/shadow')), /not a file or directory: \.\/manifests\/shadow/],
  ['an extra directory', (b) => mkdir(join(b.dir, 'etc')), / {2}a directory holding no listed file: etc\n/],
  ['SHA256SUMS rewritten', (b) => appendFile(join(b.dir, SUMS_FILE), `${'0'.repeat(64)}  installer/extra.sh\n`), /SHA256SUMS is not the one the verified bundle has/],
  ['the signature removed', (b) => rm(join(b.dir, 'SHA256SUMS.asc')), /SHA256SUMS\.asc is missing/],
  ['another owner', (b) => chown(join(b.dir, DEB), 1000, 1000), /not owned by root: \.\/packages\/kubeadm/],
];

for (const [what, change, refused] of tampering) {
  test(`check refuses ${what}, naming it`, async (t) => {
    const b = await unpacked(t);
    await change(b);
    const r = await sh(checkScript(b));
    assert.notEqual(r.code, 0, `${what} passed the check`);
    assert.match(r.stderr, refused);
  });
}

test('a host storing a part: only its paths are unpacked, the tar goes, and the check wants exactly that part', async (t) => {
  const dir = await tempDir(t);
  const tar = await packFixture(dir, key);
  const sumsText = execFileSync('tar', ['-xOf', tar, SUMS_FILE]);
  const all = execFileSync('tar', ['-tf', tar]).toString().trim().split('\n').filter((p) => !p.endsWith('/'));
  const only = all.filter((p) => p !== DEB && !p.startsWith('images/'));
  assert.ok(only.length > 3 && only.length < all.length - 2);
  const b = { tar, dir: join(dir, 'unpacked'), sumsSha256: createHash('sha256').update(sumsText).digest('hex'), signed: true, only };
  const r = await sh(unpackScript(b, { dropTar: true }));
  assert.equal(r.code, 0, r.stderr);
  const unpackedFiles = execFileSync('find', ['.', '-type', 'f', '-printf', '%P\n'], { cwd: b.dir }).toString().trim().split('\n').sort();
  assert.deepEqual(unpackedFiles, [...only].sort());
  await assert.rejects(stat(tar), 'the uploaded file is gone once unpacked');
  assert.deepEqual(await sh(checkScript(b)), { code: 0, stderr: '' });
  // a file of the bundle that is not this host's part is refused like any stranger
  await mkdir(join(b.dir, 'packages'), { recursive: true });
  await writeFile(join(b.dir, DEB), 'x');
  assert.match((await sh(checkScript(b))).stderr, / {2}not listed: packages\/kubeadm_1\.32\.3-1\.1_amd64\.deb/);
  // and a missing file of the part is named
  await rm(join(b.dir, DEB));
  await rm(join(b.dir, INSTALL_SH));
  assert.match((await sh(checkScript(b))).stderr, / {2}missing: installer\/install\.sh/);
});
