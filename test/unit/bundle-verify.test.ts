import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, mkdir, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { MANIFEST_FILE, SIGNATURE_FILE, SUMS_FILE } from '../../src/core/bundle/paths.js';
import { readTar } from '../../src/core/bundle/tar.js';
import { assertBundleVerified, verifyBundle, verifyBundleFile, type VerifyReport } from '../../src/core/bundle/verify.js';
import { UserError } from '../../src/util/errors.js';
import { appendCanonical, DEB, FLANNEL, FROM_DISK, makeKey, packFixture, repackCanonical, tempDir, type TestKey } from './bundle-fixture.js';

const key = await makeKey();
const signed = { publicKeys: [key.public], allowUnsigned: false };

/** Extract a bundle with GNU tar so a test can change it and pack it again with standard tools. */
function extract(bundle: string, dir: string): string[] {
  execFileSync('tar', ['xf', bundle, '-C', dir]);
  return execFileSync('tar', ['tf', bundle], { encoding: 'utf8' }).trim().split('\n');
}

/** Re-pack in the packer's header form (GNU tar's own headers are refused as such), keeping the given order. */
const repack = repackCanonical;

function kinds(report: VerifyReport): string[] {
  return report.problems.map((p) => `${p.kind} ${p.path}`).sort();
}

test('an intact signed bundle verifies, names its signer and returns the manifest', async (t) => {
  const dir = await tempDir(t);
  const report = await verifyBundle(await packFixture(dir, key), signed);
  assert.deepEqual(report.problems, []);
  assert.equal(report.ok, true);
  assert.equal(report.signer, key.fingerprint);
  assert.equal(report.files, 10);
  assert.equal(report.manifest?.kubernetesVersion, 'v1.32.3');
  assert.equal(report.manifest?.signer, key.fingerprint);
});

test('a bundle signed by another key is refused as a bad signature', async (t) => {
  const dir = await tempDir(t);
  const other: TestKey = await makeKey('someone else');
  const report = await verifyBundle(await packFixture(dir, other), signed);
  assert.equal(report.ok, false);
  assert.deepEqual(kinds(report), [`bad-signature ${SIGNATURE_FILE}`]);
  assert.match(report.problems[0]!.detail, /untrusted signature/);
  assert.equal(report.signer, null);
});

test('an unsigned bundle is refused unless unsigned bundles are allowed', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, null);
  const refused = await verifyBundle(bundle, signed);
  assert.deepEqual(kinds(refused), [`unsigned ${SIGNATURE_FILE}`]);
  const allowed = await verifyBundle(bundle, { publicKeys: [], allowUnsigned: true });
  assert.equal(allowed.ok, true, JSON.stringify(allowed.problems));
  assert.equal(allowed.signer, null);
  assert.equal(allowed.manifest?.signer, null);
});

test('stripping the signature from a signed bundle is caught even when unsigned bundles are allowed', async (t) => {
  const dir = await tempDir(t);
  const members = extract(await packFixture(dir, key), dir);
  const stripped = join(dir, 'stripped.tar');
  await repack(dir, stripped, members.filter((m) => m !== SIGNATURE_FILE));
  const report = await verifyBundle(stripped, { publicKeys: [], allowUnsigned: true });
  assert.deepEqual(kinds(report), [`bad-manifest ${SIGNATURE_FILE}`]);
  assert.match(report.problems[0]!.detail, /names signer .* but the bundle has no signature/);
});

test('changed, missing and extra files are all reported, each by path', async (t) => {
  const dir = await tempDir(t);
  const x = join(dir, 'x');
  await mkdir(x);
  const members = extract(await packFixture(dir, key), x);
  await writeFile(join(x, FLANNEL), 'tampered\n');
  await writeFile(join(x, DEB), Buffer.alloc(1500));
  await writeFile(join(x, 'manifests/evil.yaml'), 'kind: Pod\n');
  const tampered = join(dir, 'tampered.tar');
  const kept = members.filter((m) => m !== FROM_DISK);
  kept.splice(kept.indexOf(FLANNEL), 0, 'manifests/evil.yaml'); // in path order, as the packer would have put it
  await repack(x, tampered, kept);
  const report = await verifyBundle(tampered, signed);
  assert.equal(report.ok, false);
  assert.deepEqual(kinds(report), [`changed ${FLANNEL}`, `changed ${DEB}`, 'extra manifests/evil.yaml', `missing ${FROM_DISK}`]);
  assert.equal(report.signer, key.fingerprint);
  assert.equal(report.files, 7);
});

test('a link appended with GNU tar is refused by its type, and nothing after it is read', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  const x = join(dir, 'x');
  await mkdir(join(x, 'manifests'), { recursive: true });
  await symlink('/etc/passwd', join(x, 'manifests/link.yaml'));
  await writeFile(join(x, 'later.yaml'), 'kind: Pod\n');
  // GNU tar appends after the last member, dropping the end-of-archive blocks: how an attacker would add members.
  execFileSync('tar', ['rf', bundle, '-C', x, 'manifests/link.yaml', 'later.yaml']);
  const report = await verifyBundle(bundle, signed);
  assert.deepEqual(kinds(report), ['bad-entry manifests/link.yaml']);
  assert.match(report.problems[0]!.detail, /not a regular file or directory \(tar type '2'\); refusing links and devices .*the rest of the archive cannot be read/);
});

test("absolute paths, .. paths and duplicates in the packer's own header form are each refused by name", async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  await appendCanonical(bundle, [
    { path: 'packages/Packages', body: Buffer.from('Package: evil\n') },
    { path: '/etc/cron.d/evil', body: Buffer.from('* * * * * root sh\n') },
    { path: '../escape', body: Buffer.from('escape\n') },
  ]);
  const report = await verifyBundle(bundle, signed);
  const byPath = new Map(report.problems.map((p) => [p.path, p]));
  assert.match(byPath.get('packages/Packages')?.detail ?? '', /appears more than once/);
  assert.match(byPath.get('/etc/cron.d/evil')?.detail ?? '', /absolute path/);
  assert.match(byPath.get('../escape')?.detail ?? '', /path traversal/);
  assert.equal(report.problems.length, 3, JSON.stringify(report.problems));
  assert.ok(report.problems.every((p) => p.kind === 'bad-entry'));
});

test('a device appended with GNU tar is refused by its type', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  execFileSync('tar', ['rf', bundle, '--transform', 's,^/dev/,,', '-P', '/dev/zero']);
  const report = await verifyBundle(bundle, signed);
  assert.deepEqual(kinds(report), ['bad-entry zero']);
  assert.match(report.problems[0]!.detail, /tar type '3'/);
});

test('truncation, trailing garbage and a non-bundle are reported as bad entries', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  const original = await readFile(bundle);

  await appendFile(bundle, 'garbage');
  assert.deepEqual(kinds(await verifyBundle(bundle, signed)), ['bad-entry (archive)']);

  await writeFile(bundle, original.subarray(0, original.length - 3000));
  const truncated = await verifyBundle(bundle, signed);
  assert.equal(truncated.ok, false);
  assert.match(truncated.problems.map((p) => p.detail).join('\n'), /truncated/);

  await writeFile(bundle, 'just some text that is not a tar archive\n');
  await truncate(bundle, 4096);
  const notTar = await verifyBundle(bundle, signed);
  assert.equal(notTar.ok, false);
  assert.match(notTar.problems[0]!.detail, /header checksum mismatch/);
});

/** Which member each byte of the archive belongs to, and whether it is header, data or padding. */
async function layout(bundle: string): Promise<{ path: string; start: number; dataStart: number; dataEnd: number; end: number }[]> {
  const entries: { path: string; start: number; size: number }[] = [];
  for await (const item of readTar(bundle)) if (item.kind === 'entry') entries.push({ path: item.entry.path, start: item.entry.offset, size: item.entry.size });
  const end = (await readFile(bundle)).length - 1024;
  return entries.map((e, i) => {
    const next = entries[i + 1]?.start ?? end;
    const dataStart = next - Math.ceil(e.size / 512) * 512;
    return { path: e.path, start: e.start, dataStart, dataEnd: dataStart + e.size, end: next };
  });
}

test('changing any single byte fails verification and names the member (sampled over the whole file)', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  const original = await readFile(bundle);
  const members = await layout(bundle);
  const flipped = join(dir, 'flipped.tar');
  // Every 23rd byte (23 is prime to 512, so all positions within a block get sampled), plus every byte of the signature and of every header checksum field.
  const offsets = new Set<number>();
  for (let i = 0; i < original.length; i += 23) offsets.add(i);
  const asc = members.find((m) => m.path === SIGNATURE_FILE)!;
  for (let i = asc.dataStart; i < asc.dataEnd; i++) offsets.add(i);
  for (const m of members) for (let i = 148; i < 156; i++) offsets.add(m.dataStart - 512 + i);

  for (const offset of offsets) {
    const copy = Buffer.from(original);
    copy[offset] = copy[offset]! ^ 0x5a;
    await writeFile(flipped, copy);
    const report = await verifyBundle(flipped, signed);
    const where = `byte ${offset}: ${JSON.stringify(report.problems)}`;
    assert.equal(report.ok, false, where);
    const member = members.find((m) => offset >= m.start && offset < m.end);
    if (!member) continue; // end-of-archive blocks: reported as '(archive)'
    const named = report.problems.map((p) => p.path);
    if (offset >= member.dataStart && offset < member.dataEnd) {
      const blamed = member.path === SUMS_FILE || member.path === SIGNATURE_FILE ? [SUMS_FILE, SIGNATURE_FILE] : [member.path];
      assert.ok(named.some((p) => blamed.includes(p)), where);
    } else if (offset >= member.dataEnd) {
      assert.ok(report.problems.some((p) => p.kind === 'bad-entry' && p.path === member.path), where);
    } else {
      assert.ok(report.problems.some((p) => p.kind === 'bad-entry' || p.path === member.path), where);
    }
  }
});

test('bundle.yaml that disagrees with SHA256SUMS is reported', async (t) => {
  const dir = await tempDir(t);
  const x = join(dir, 'x');
  await mkdir(x);
  const members = extract(await packFixture(dir, null), x);
  const yaml = await readFile(join(x, MANIFEST_FILE), 'utf8');
  await writeFile(join(x, MANIFEST_FILE), yaml.replace('kube-flannel.yml', 'kube-flannel.yaml'));
  // Unsigned, so the SHA256SUMS can be rewritten consistently: only the manifest check can notice.
  const sums = execFileSync('sha256sum', [MANIFEST_FILE], { cwd: x, encoding: 'utf8' });
  const old = await readFile(join(x, SUMS_FILE), 'utf8');
  await writeFile(join(x, SUMS_FILE), old.replace(/^[0-9a-f]{64} {2}bundle\.yaml\n/m, sums));
  const bad = join(dir, 'bad.tar');
  await repack(x, bad, members);
  const report = await verifyBundle(bad, { publicKeys: [], allowUnsigned: true });
  assert.deepEqual(kinds(report), ['bad-manifest manifests/kube-flannel.yaml']);
});

test('the CLI wrapper needs a key or --allow-unsigned and names every failed file', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  await assert.rejects(verifyBundleFile({ file: bundle, allowUnsigned: false }), (err: unknown) => err instanceof UserError && /no public key/.test(err.message));
  const pub = join(dir, 'signer.pub.asc');
  await writeFile(pub, key.publicArmored);
  await assert.rejects(verifyBundleFile({ file: join(dir, 'nope.tar'), pubkeyFile: pub, allowUnsigned: false }), /cannot read bundle .*nope\.tar/);
  assert.equal((await assertBundleVerified({ file: bundle, pubkeyFile: pub, allowUnsigned: false })).ok, true);

  const x = join(dir, 'x');
  await mkdir(x);
  const members = extract(bundle, x);
  await writeFile(join(x, FLANNEL), 'changed\n');
  await rm(join(x, DEB));
  await repack(x, bundle, members.filter((m) => m !== DEB));
  await assert.rejects(assertBundleVerified({ file: bundle, pubkeyFile: pub, allowUnsigned: false }), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /failed verification \(2 problems\)/);
    assert.match(err.message, new RegExp(`changed +${FLANNEL}`));
    assert.match(err.message, new RegExp(`missing +${DEB.replace(/\./g, '\\.')}`));
    return true;
  });
});
