import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { packBundle, type PackEntry } from '../../src/core/bundle/pack.js';
import { parseManifest } from '../../src/core/bundle/manifest.js';
import { UserError } from '../../src/util/errors.js';
import { DEB, fixture, FLANNEL, FROM_DISK, INSTALL_SH, makeKey, MTIME, packFixture, tempDir } from './bundle-fixture.js';

const key = await makeKey();
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** GNU tar's verbose listing with numeric owners and full times: what a reviewer of the archive would see. */
function listing(bundle: string): string[] {
  return execFileSync('tar', ['tvf', bundle, '--numeric-owner', '--full-time'], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } })
    .trim()
    .split('\n');
}

test('packing the same entries twice gives byte-identical bundles, whatever the entry order and file times', async (t) => {
  const dir = await tempDir(t);
  const first = await packFixture(dir, key, 'first.tar');
  const { entries, manifest } = await fixture(dir);
  await utimes(join(dir, 'kubeadm.bin'), new Date('2030-01-01'), new Date('2030-01-01'));
  const output = join(dir, 'second.tar');
  const result = await packBundle({ output, entries: [...entries].reverse(), manifest, mtime: MTIME, signingKey: key.secret });
  const [a, b] = [await readFile(first), await readFile(output)];
  assert.equal(sha256(a), sha256(b));
  assert.ok(a.equals(b));
  assert.equal(result.size, b.length);
  assert.equal(result.manifest.signer, key.fingerprint);
  assert.deepEqual(await readdir(dir).then((names) => names.filter((n) => n.endsWith('.partial'))), []);
});

test('a different mtime or key gives a different bundle', async (t) => {
  const dir = await tempDir(t);
  const base = sha256(await readFile(await packFixture(dir, key, 'a.tar')));
  const { entries, manifest } = await fixture(dir);
  await packBundle({ output: join(dir, 'b.tar'), entries, manifest, mtime: new Date(MTIME.getTime() + 1000), signingKey: key.secret });
  assert.notEqual(sha256(await readFile(join(dir, 'b.tar'))), base);
  const other = await makeKey('other');
  assert.notEqual(sha256(await readFile(await packFixture(dir, other, 'c.tar'))), base);
});

test('members: SHA256SUMS, signature and bundle.yaml first, then directories and files in order, root-owned, fixed time and modes', async (t) => {
  const dir = await tempDir(t);
  const lines = listing(await packFixture(dir, key));
  const names = lines.map((l) => l.split(/\s+/).slice(5).join(' '));
  assert.deepEqual(names.slice(0, 3), ['SHA256SUMS', 'SHA256SUMS.asc', 'bundle.yaml']);
  const rest = names.slice(3);
  assert.deepEqual(rest, [...rest].sort());
  assert.ok(rest.includes('images/blobs/sha256/'), 'parent directories are listed explicitly');
  for (const line of lines) {
    const [mode, owner, , date, time] = line.split(/\s+/);
    assert.equal(owner, '0/0', line);
    assert.equal(`${date} ${time}`, '2025-03-01 12:00:00', line);
    assert.match(mode!, /^(-rw-r--r--|-rwxr-xr-x|drwxr-xr-x)$/, line);
  }
  const modeOf = (path: string): string => lines.find((l) => l.endsWith(` ${path}`))!.split(/\s+/)[0]!;
  assert.equal(modeOf(INSTALL_SH), '-rwxr-xr-x');
  assert.equal(modeOf(FROM_DISK), '-rwxr-xr-x');
  assert.equal(modeOf(FLANNEL), '-rw-r--r--');
  assert.equal(modeOf('packages/'), 'drwxr-xr-x');
});

test('standard tools verify it: tar xf, gpgv with the dearmored key, sha256sum -c', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, key);
  const x = join(dir, 'x');
  await mkdir(x);
  execFileSync('tar', ['xf', bundle, '-C', x]);
  const keyring = join(dir, 'signer.gpg');
  await writeFile(keyring, key.public.write());
  const gnupgHome = join(dir, 'gnupg');
  await mkdir(gnupgHome, { mode: 0o700 });
  const gpgv = () => spawnSync('gpgv', ['--keyring', keyring, 'SHA256SUMS.asc', 'SHA256SUMS'], { cwd: x, encoding: 'utf8', env: { ...process.env, GNUPGHOME: gnupgHome } });
  const good = gpgv();
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stderr, /Good signature/);
  assert.ok(good.stderr.includes(key.fingerprint), good.stderr);
  const check = execFileSync('sha256sum', ['-c', '--strict', 'SHA256SUMS'], { cwd: x, encoding: 'utf8' });
  const ok = check.trim().split('\n');
  assert.equal(ok.length, 10);
  assert.ok(ok.every((l) => l.endsWith(': OK')), check);
  assert.ok(ok.some((l) => l.startsWith('bundle.yaml:')), 'bundle.yaml is covered');
  assert.ok(!ok.some((l) => l.startsWith('SHA256SUMS')), 'SHA256SUMS(.asc) do not list themselves');

  await writeFile(join(x, 'SHA256SUMS'), (await readFile(join(x, 'SHA256SUMS'), 'utf8')).replace(/^./, (c) => (c === '0' ? '1' : '0')));
  const bad = gpgv();
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /BAD signature/);
});

test('an unsigned bundle has no SHA256SUMS.asc and says signer: null', async (t) => {
  const dir = await tempDir(t);
  const bundle = await packFixture(dir, null);
  const names = listing(bundle).map((l) => l.split(/\s+/).slice(5).join(' '));
  assert.deepEqual(names.slice(0, 2), ['SHA256SUMS', 'bundle.yaml']);
  const yaml = execFileSync('tar', ['xOf', bundle, 'bundle.yaml'], { encoding: 'utf8' });
  const manifest = parseManifest(yaml, 'bundle.yaml');
  assert.equal(manifest.signer, null);
  assert.equal(manifest.created, MTIME.toISOString());
});

test('refuses unsafe, reserved, duplicate and clashing paths', async (t) => {
  const dir = await tempDir(t);
  const { manifest } = await fixture(dir);
  const pack = (path: string, extra: string[] = []) =>
    packBundle({
      output: join(dir, 'x.tar'),
      manifest: { ...manifest, components: { packages: [], images: [], files: [] } },
      entries: [path, ...extra].map((p) => ({ path: p, source: { bytes: Buffer.from('x') } })),
      mtime: MTIME,
    });
  await assert.rejects(pack('../etc/passwd'), /path traversal/);
  await assert.rejects(pack('/etc/passwd'), /absolute path/);
  await assert.rejects(pack('a//b'), /empty segment/);
  await assert.rejects(pack('SHA256SUMS'), /the packer writes it/);
  await assert.rejects(pack('bundle.yaml'), /the packer writes it/);
  await assert.rejects(pack('a/b', ['a/b']), /twice/);
  await assert.rejects(pack('a/b', ['a']), /'a' is a file, not a directory/);
  await assert.rejects(stat(join(dir, 'x.tar')), { code: 'ENOENT' });
});

test('a file the caller has just verified is not read for hashing again: the same bundle, on its word', async (t) => {
  const dir = await tempDir(t);
  const { entries, manifest } = await fixture(dir);
  const vouched = entries.map((e) => (e.path === FROM_DISK ? { ...e, verified: true } : e));
  const output = join(dir, 'out.tar');
  await packBundle({ output, entries: vouched, manifest, mtime: MTIME });
  const plain = join(dir, 'plain.tar');
  await packBundle({ output: plain, entries, manifest, mtime: MTIME });
  assert.deepEqual(await readFile(output), await readFile(plain), 'the same bundle either way');

  // the word is taken: a wrong digest vouched for is not caught here (bundle verify would catch it), where an
  // unverified one is (next test); this is what saves the second pass over a fresh build's downloads
  const wrong = vouched.map((e) => (e.path === FROM_DISK ? { ...e, sha256: '0'.repeat(64) } : e));
  const mismatched = { ...manifest, components: { ...manifest.components, files: manifest.components.files.map((f) => (f.path === FROM_DISK ? { ...f, sha256: '0'.repeat(64) } : f)) } };
  await packBundle({ output: join(dir, 'trusted.tar'), entries: wrong, manifest: mismatched, mtime: MTIME });
});

test('files still on their way are packed as they arrive, in any order, into the same bundle', async (t) => {
  const dir = await tempDir(t);
  const plain = await packFixture(dir, key, 'plain.tar');
  const { entries, manifest } = await fixture(dir);
  const arrivals: (() => Promise<void>)[] = [];
  const late = entries.map((entry, i): PackEntry => {
    if (!('bytes' in entry.source)) return entry;
    const bytes = entry.source.bytes;
    const file = join(dir, `late-${i}`);
    let arrive!: () => void;
    // some say their fetch verified them (not hashed again), some not (hashed while copied)
    const ready = new Promise<boolean>((resolve) => (arrive = () => resolve(i % 2 === 0)));
    arrivals.push(async () => {
      await writeFile(file, bytes);
      arrive();
    });
    return { ...entry, source: { file }, sha256: sha256(Buffer.from(bytes)), size: bytes.length, ready };
  });
  const output = join(dir, 'late.tar');
  const packing = packBundle({ output, entries: late, manifest, mtime: MTIME, signingKey: key.secret });
  for (const arrival of arrivals.reverse()) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    await arrival();
  }
  const result = await packing;
  assert.ok((await readFile(output)).equals(await readFile(plain)));
  assert.equal(result.size, (await stat(plain)).size);
});

test('a download under way is written to its place as it arrives; only what was not seen is read from the file', async (t) => {
  const dir = await tempDir(t);
  const plain = await packFixture(dir, key, 'plain.tar');
  const { entries, manifest } = await fixture(dir);
  const disk = entries.find((e) => e.path === FROM_DISK) as PackEntry & { source: { file: string } };
  const good = await readFile(disk.source.file);

  /** Pack with FROM_DISK still downloading; `deliver` plays the download's pieces once the packer watches. */
  async function packFollowing(name: string, deliver: (watcher: (chunk: Buffer, at: number) => void) => void): Promise<Buffer> {
    let watcher: ((chunk: Buffer, at: number) => void) | undefined;
    let arrive!: (verified: boolean) => void;
    const ready = new Promise<boolean>((resolve) => (arrive = resolve));
    const follow = (w: (chunk: Buffer, at: number) => void) => {
      watcher = w;
      return () => (watcher = undefined);
    };
    const following = entries.map((e) => (e.path === FROM_DISK ? { ...e, size: good.length, ready, follow } : e));
    const output = join(dir, name);
    const packing = packBundle({ output, entries: following, manifest, mtime: MTIME, signingKey: key.secret });
    for (let i = 0; i < 100 && !watcher; i++) await new Promise((resolve) => setTimeout(resolve, 1));
    assert.ok(watcher, 'the packer watches the download');
    deliver(watcher);
    arrive(true);
    await packing;
    return readFile(output);
  }

  // a first attempt that sent wrong bytes, then a restart from 0 with the right ones, in pieces
  const restarted = await packFollowing('restarted.tar', (watch) => {
    watch(Buffer.alloc(1000, 0x58), 0);
    for (let at = 0; at < good.length; at += 700) watch(good.subarray(at, at + 700), at);
  });
  assert.ok(restarted.equals(await readFile(plain)));

  // watched from byte 1200 on: the rest of the file is not read, so what the disk has there does not matter
  await writeFile(disk.source.file, Buffer.concat([good.subarray(0, 1200), Buffer.alloc(good.length - 1200, 0x21)]));
  const midway = await packFollowing('midway.tar', (watch) => watch(good.subarray(1200), 1200));
  assert.ok(midway.equals(await readFile(plain)), 'the first 1200 bytes from the file, the rest as the download brought it');
});

test('a download that outruns the disk is not held in memory: the packer stops following it and copies the file', async (t) => {
  const dir = await tempDir(t);
  const { manifest } = await fixture(dir);
  const empty = { ...manifest, components: { packages: [], images: [], files: [] } };
  const big = randomBytes(40 << 20);
  const file = join(dir, 'big.bin');
  await writeFile(file, big);
  const entry = { path: 'images/blobs/sha256/big', source: { file }, sha256: sha256(big), size: big.length };
  const plain = join(dir, 'plain.tar');
  await packBundle({ output: plain, entries: [entry], manifest: empty, mtime: MTIME });

  let watcher: ((chunk: Buffer, at: number) => void) | undefined;
  let arrive!: (verified: boolean) => void;
  const ready = new Promise<boolean>((resolve) => (arrive = resolve));
  const output = join(dir, 'fast.tar');
  const packing = packBundle({
    output,
    entries: [{ ...entry, ready, follow: (w) => ((watcher = w), () => (watcher = undefined)) }],
    manifest: empty,
    mtime: MTIME,
  });
  for (let i = 0; i < 100 && !watcher; i++) await new Promise((resolve) => setTimeout(resolve, 1));
  // 40 MiB in one go, faster than any disk: were they all kept and written, the bundle would hold these X's
  const wrong = Buffer.alloc(64 << 10, 0x58);
  for (let at = 0; at < big.length && watcher; at += wrong.length) watcher(wrong, at);
  arrive(true);
  await packing;
  assert.ok((await readFile(output)).equals(await readFile(plain)), 'the file was copied whole from the cache');
});

test('a file whose fetch fails fails the packing with that error, and leaves no output or partial file', async (t) => {
  const dir = await tempDir(t);
  const { entries, manifest } = await fixture(dir);
  const failing = entries.map((e) => (e.path === FROM_DISK ? { ...e, size: 3000, ready: Promise.reject(new UserError('download of kubeadm from https://example.test/kubeadm failed after 4 attempt(s)')) } : e));
  const output = join(dir, 'out.tar');
  await assert.rejects(packBundle({ output, entries: failing, manifest, mtime: MTIME }), /download of kubeadm from https:\/\/example\.test\/kubeadm failed/);
  assert.deepEqual(await readdir(dir).then((n) => n.filter((f) => f.startsWith('out.tar'))), []);

  const wrong = entries.map((e) => (e.path === FROM_DISK ? { ...e, sha256: '0'.repeat(64), size: 3000, ready: Promise.resolve(false) } : e));
  await assert.rejects(packBundle({ output, entries: wrong, manifest, mtime: MTIME }), /kubeadm\.bin \(for installer\/from-disk\.sh in the bundle\) changed while packing or does not match/);
  assert.deepEqual(await readdir(dir).then((n) => n.filter((f) => f.startsWith('out.tar'))), []);
});

test('a known sha256 that does not match the file fails and leaves no output or partial file', async (t) => {
  const dir = await tempDir(t);
  const { entries, manifest } = await fixture(dir);
  const wrong = entries.map((e) => (e.path === FROM_DISK ? { ...e, sha256: '0'.repeat(64) } : e));
  const output = join(dir, 'out.tar');
  await assert.rejects(packBundle({ output, entries: wrong, manifest, mtime: MTIME }), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /kubeadm\.bin \(for installer\/from-disk\.sh in the bundle\) changed while packing or does not match/);
    return true;
  });
  assert.deepEqual(await readdir(dir).then((n) => n.filter((f) => f.startsWith('out.tar'))), []);
});

test('a manifest that disagrees with the packed files is refused', async (t) => {
  const dir = await tempDir(t);
  const { entries, manifest } = await fixture(dir);
  const pkg = { ...manifest.components.packages[0]!, sha256: 'f'.repeat(64) };
  const bad = { ...manifest, components: { ...manifest.components, packages: [pkg] } };
  await assert.rejects(packBundle({ output: join(dir, 'o.tar'), entries, manifest: bad, mtime: MTIME }), new RegExp(`${DEB.replace(/\./g, '\\.')}: package kubeadm .* SHA256SUMS says`));
  const noFile = { ...manifest, components: { ...manifest.components, packages: [] } };
  await assert.rejects(
    packBundle({ output: join(dir, 'o.tar'), entries: entries.filter((e) => e.path !== FLANNEL), manifest: noFile, mtime: MTIME }),
    /manifests\/kube-flannel\.yml: file from .* not in SHA256SUMS/,
  );
});
