import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatInspect, inspectBundle } from '../../src/core/bundle/inspect.js';
import { formatBytes as humanSize } from '../../src/util/progress.js';
import { readTar } from '../../src/core/bundle/tar.js';
import { MANIFEST_FILE } from '../../src/core/bundle/paths.js';
import { UserError } from '../../src/util/errors.js';
import { DEB, makeKey, packFixture, tempDir } from './bundle-fixture.js';

const key = await makeKey();

test('inspect reports versions, components, totals and the signer', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  const s = await inspectBundle(bundle);
  assert.equal(s.signed, true);
  assert.equal(s.size, (await readFile(bundle)).length);
  assert.equal(s.manifest.signer, key.fingerprint);
  assert.equal(s.manifest.kubernetesVersion, 'v1.32.3');
  assert.deepEqual(s.totals, { packages: 1500, images: 88, files: 88 });
  assert.equal(s.manifest.components.packages[0]?.filename, DEB);

  const text = formatInspect(s);
  assert.match(text, /^Bundle +.*bundle\.tar \(22\.5 KiB\)$/m);
  assert.match(text, /^Kubernetes +v1\.32\.3$/m);
  assert.match(text, /^Target +ubuntu-24\.04 \(amd64\)$/m);
  assert.match(text, new RegExp(`^Signer +${key.fingerprint} \\(not checked here`, 'm'));
  assert.match(text, /^Packages \(1, 1\.5 KiB\)\n +NAME +VERSION +ARCH +SIZE\n +kubeadm +1\.32\.3-1\.1 +amd64 +1\.5 KiB$/m);
  assert.match(text, /^ +registry\.k8s\.io\/pause:3\.10 +sha256:[0-9a-f]{12} +linux\/amd64 +88 B$/m);
  assert.match(text, /^ +manifests\/kube-flannel\.yml +manifest +62 B$/m);
});

test('an unsigned bundle is shown as such', async (t) => {
  const s = await inspectBundle(await packFixture(await tempDir(t), null));
  assert.equal(s.signed, false);
  assert.match(formatInspect(s), /^Signer +none \(unsigned bundle\)$/m);
});

test('inspect reads only up to bundle.yaml: the rest of the file may be anything', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  let manifestEnd = 0;
  for await (const item of readTar(bundle)) {
    if (item.kind === 'entry' && item.entry.path === MANIFEST_FILE) {
      manifestEnd = item.entry.offset + 512 + Math.ceil(item.entry.size / 512) * 512;
      break;
    }
  }
  const original = await readFile(bundle);
  await writeFile(bundle, Buffer.concat([original.subarray(0, manifestEnd), Buffer.alloc(1 << 20, 0xee)]));
  assert.equal((await inspectBundle(bundle)).manifest.kubernetesVersion, 'v1.32.3');
});

test('inspect names the file when it is not a bundle', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(inspectBundle(join(dir, 'nope.tar')), (err: unknown) => err instanceof UserError && /cannot read bundle .*nope\.tar/.test(err.message));
  const junk = join(dir, 'junk.tar');
  await writeFile(junk, Buffer.alloc(2048, 0x41));
  await assert.rejects(inspectBundle(junk), /junk\.tar: header checksum mismatch/);
  const empty = join(dir, 'empty.tar');
  await writeFile(empty, Buffer.alloc(1024));
  await assert.rejects(inspectBundle(empty), /empty\.tar has no bundle\.yaml/);
});

test('humanSize', () => {
  assert.equal(humanSize(0), '0 B');
  assert.equal(humanSize(1023), '1023 B');
  assert.equal(humanSize(1536), '1.5 KiB');
  assert.equal(humanSize(3 * 1024 ** 3), '3.0 GiB');
});
