import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { PrivateKey } from 'openpgp';
import { parseControlStanza, readDebControl } from '../../src/core/apt/debfile.js';
import { FLAT_REPO_INDEX_FILES, type FlatRepoOptions, writeFlatRepo, writeFlatRepoFromDebs } from '../../src/core/apt/flatrepo.js';
import { generateKeyPair, readSecretKey } from '../../src/core/pgp.js';
import { UserError } from '../../src/util/errors.js';

const run = promisify(execFile);
const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');
const DATE = new Date('2025-03-12T00:00:00Z');

let tmp: string;
let key: PrivateKey;
let keyring: string;

/** A minimal real deb, built with dpkg-deb like any other. */
async function makeDeb(dir: string, name: string, version: string, arch: string, extra: string): Promise<string> {
  const root = await mkdtemp(path.join(tmp, 'debroot-'));
  await mkdir(path.join(root, 'DEBIAN'));
  await mkdir(path.join(root, 'usr/bin'), { recursive: true });
  await writeFile(path.join(root, 'usr/bin', name), '#!/bin/sh\n');
  await chmod(path.join(root, 'usr/bin', name), 0o755);
  await writeFile(
    path.join(root, 'DEBIAN/control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: ${arch}\nMaintainer: Test <t@example.org>\n${extra}Description: ${name} for tests\n second line\n .\n last\n`,
  );
  const out = path.join(dir, arch, `${name}_${version}_${arch}.deb`);
  await mkdir(path.dirname(out), { recursive: true });
  await run('dpkg-deb', ['--root-owner-group', '--build', root, out], { env: { ...process.env, SOURCE_DATE_EPOCH: '1741651200' } });
  return out;
}

function options(): FlatRepoOptions {
  return { origin: 'test', label: 'test repo', suite: '/', date: DATE, signingKey: key };
}

function stanzas(packages: string): string[][] {
  return packages.trim().split('\n\n').map((s) => s.split('\n'));
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'flatrepo-test-'));
  const pair = await generateKeyPair('flatrepo test', undefined, new Date('2025-01-01T00:00:00Z'));
  key = await readSecretKey(pair.secretKey, 'test key');
  await writeFile(path.join(tmp, 'key.asc'), pair.publicKey);
  keyring = path.join(tmp, 'key.gpg');
  await mkdir(path.join(tmp, 'gnupg'), { mode: 0o700 });
  await run('gpg', ['--batch', '--yes', '--dearmor', '--output', keyring, path.join(tmp, 'key.asc')], { env: { ...process.env, GNUPGHOME: path.join(tmp, 'gnupg') } });
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('writeFlatRepoFromDebs', () => {
  let repo: string;
  let kubeletDeb: string;

  before(async () => {
    repo = path.join(tmp, 'repo');
    kubeletDeb = await makeDeb(repo, 'kubelet', '1.32.3-1.1', 'amd64', 'Installed-Size: 1\nDepends: iptables (>= 1.4.21),mount\nSection: admin\nPriority: optional\nHomepage: https://kubernetes.io\n');
    await makeDeb(repo, 'kubelet', '1.32.3-1.1', 'arm64', 'Section: admin\n');
    await makeDeb(repo, 'cri-tools', '1.32.0-1.1', 'amd64', '');
    await writeFlatRepoFromDebs(repo, options());
  });

  it('lists every deb, sorted, with Filename, Size and SHA256 in dpkg-scanpackages field order', async () => {
    const packages = await readFile(path.join(repo, 'Packages'), 'utf8');
    const list = stanzas(packages);
    assert.deepEqual(list.map((s) => [s[0], s.find((l) => l.startsWith('Architecture: '))]), [
      ['Package: cri-tools', 'Architecture: amd64'],
      ['Package: kubelet', 'Architecture: amd64'],
      ['Package: kubelet', 'Architecture: arm64'],
    ]);
    const kubelet = list[1] ?? [];
    const deb = await readFile(kubeletDeb);
    assert.deepEqual(kubelet, [
      'Package: kubelet',
      'Version: 1.32.3-1.1',
      'Architecture: amd64',
      'Maintainer: Test <t@example.org>',
      'Installed-Size: 1',
      'Depends: iptables (>= 1.4.21),mount',
      'Filename: amd64/kubelet_1.32.3-1.1_amd64.deb',
      `Size: ${deb.length}`,
      `SHA256: ${sha256(deb)}`,
      'Section: admin',
      'Priority: optional',
      'Homepage: https://kubernetes.io',
      'Description: kubelet for tests',
      ' second line',
      ' .',
      ' last',
    ]);
  });

  it('writes a Release whose hashes and sizes match Packages and Packages.gz', async () => {
    const release = await readFile(path.join(repo, 'Release'), 'utf8');
    assert.match(release, /^Origin: test\nLabel: test repo\nSuite: \/\nArchitectures: amd64 arm64\nDate: Wed, 12 Mar 2025 00:00:00 UTC\nSHA256:\n/);
    for (const name of ['Packages', 'Packages.gz']) {
      const bytes = await readFile(path.join(repo, name));
      const line = new RegExp(`^ ${sha256(bytes)} +${bytes.length} ${name.replace('.', '\\.')}$`, 'm');
      assert.match(release, line, `Release lists ${name}`);
    }
    const gz = await readFile(path.join(repo, 'Packages.gz'));
    assert.equal(gunzipSync(gz).toString('utf8'), await readFile(path.join(repo, 'Packages'), 'utf8'));
    assert.equal(gz.readUInt32LE(4), 0, 'gzip header mtime is zero');
    assert.equal(gz[3]! & 0x08, 0, 'gzip header has no file name');
  });

  it('signs InRelease and Release.gpg so that gpgv accepts them, and gpgv rejects a changed Release', async () => {
    await run('gpgv', ['--keyring', keyring, path.join(repo, 'InRelease')]);
    await run('gpgv', ['--keyring', keyring, path.join(repo, 'Release.gpg'), path.join(repo, 'Release')]);
    const inRelease = await readFile(path.join(repo, 'InRelease'), 'utf8');
    assert.ok(inRelease.includes(await readFile(path.join(repo, 'Release'), 'utf8')), 'InRelease carries the Release text');
    const forged = path.join(tmp, 'Release.forged');
    await writeFile(forged, (await readFile(path.join(repo, 'Release'), 'utf8')).replace('Label: test repo', 'Label: evil'));
    await assert.rejects(run('gpgv', ['--keyring', keyring, path.join(repo, 'Release.gpg'), forged]), /BAD signature/);
  });

  it('writes byte-identical files for the same debs and date', async () => {
    const copy = path.join(tmp, 'repo-copy');
    await mkdir(copy);
    await run('cp', ['-a', `${repo}/amd64`, `${repo}/arm64`, copy]);
    await writeFlatRepoFromDebs(copy, options());
    for (const name of FLAT_REPO_INDEX_FILES) {
      assert.deepEqual(await readFile(path.join(copy, name)), await readFile(path.join(repo, name)), name);
    }
  });
});

describe('writeFlatRepo from a list', () => {
  it('keeps unknown fields after the known ones and refuses paths that leave the repository', async () => {
    const dir = await mkdtemp(path.join(tmp, 'list-'));
    const control = parseControlStanza('X-Custom: yes\nDescription: d\nPackage: p\nVersion: 1\nArchitecture: all\n', 'test');
    await writeFlatRepo(dir, [{ filename: 'pool/p_1_all.deb', control, size: 3, sha256: 'ab'.repeat(32) }], options());
    assert.equal(
      await readFile(path.join(dir, 'Packages'), 'utf8'),
      `Package: p\nVersion: 1\nArchitecture: all\nFilename: pool/p_1_all.deb\nSize: 3\nSHA256: ${'ab'.repeat(32)}\nDescription: d\nX-Custom: yes\n`,
    );
    assert.match(await readFile(path.join(dir, 'Release'), 'utf8'), /^Architectures: $/m);
    await assert.rejects(
      writeFlatRepo(dir, [{ filename: '../p_1_all.deb', control, size: 3, sha256: 'ab'.repeat(32) }], options()),
      (err: unknown) => err instanceof UserError && err.message.includes("'../p_1_all.deb'"),
    );
    await assert.rejects(
      writeFlatRepo(dir, [{ filename: 'p.deb', control: [...control, ['SHA256', 'x']], size: 3, sha256: 'ab'.repeat(32) }], options()),
      (err: unknown) => err instanceof UserError && /already has a SHA256 field/.test(err.message),
    );
  });
});

describe('readDebControl', () => {
  it('reads the control stanza of a deb, multi-line Description included', async () => {
    const deb = await makeDeb(path.join(tmp, 'single'), 'cri-dockerd', '0.3.16~3-0~debian-bookworm', 'amd64', 'Depends: a | b (>= 1), c\n');
    const control = await readDebControl(deb);
    assert.deepEqual(control.map(([name]) => name), ['Package', 'Version', 'Architecture', 'Maintainer', 'Depends', 'Description']);
    assert.deepEqual(control[1], ['Version', '0.3.16~3-0~debian-bookworm']);
    assert.deepEqual(control[4], ['Depends', 'a | b (>= 1), c']);
    assert.deepEqual(control[5], ['Description', 'cri-dockerd for tests\n second line\n .\n last']);
  });

  it('names the file when it is not a deb', async () => {
    const notDeb = path.join(tmp, 'not-a.deb');
    await writeFile(notDeb, 'hello\n');
    await assert.rejects(readDebControl(notDeb), (err: unknown) => err instanceof UserError && err.message.startsWith(`${notDeb} is not a readable Debian package`));
  });

  it('says so when dpkg-deb is missing', async () => {
    const savedPath = process.env.PATH;
    process.env.PATH = path.join(tmp, 'no-such-bin');
    try {
      await assert.rejects(readDebControl('/x/y.deb'), (err: unknown) => err instanceof UserError && err.message === 'cannot read /x/y.deb: dpkg-deb is not installed');
    } finally {
      process.env.PATH = savedPath;
    }
  });
});
