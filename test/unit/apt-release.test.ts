import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  assertReleaseCurrent,
  decompressIndexFile,
  packagesIndexPath,
  parseRelease,
  pickIndexFile,
  verifyIndexFile,
} from '../../src/core/apt/release.js';

const PACKAGES = 'Package: conntrack\nVersion: 1:1.4.7-1+b2\n';
const PACKAGES_GZ = gzipSync(Buffer.from(PACKAGES));
const sha = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');
const line = (data: string | Uint8Array, path: string) => ` ${sha(data)} ${String(Buffer.byteLength(data)).padStart(8)} ${path}`;

const scratch = mkdtempSync(join(tmpdir(), 'apt-release-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Write `data` to a file, decompress it as `choice` says, and return the result as text. */
async function decompressed(choice: Parameters<typeof decompressIndexFile>[0], data: Uint8Array, name: string): Promise<string> {
  const input = join(scratch, `${name}.in`);
  const output = join(scratch, `${name}.out`);
  writeFileSync(input, data);
  await decompressIndexFile(choice, input, output);
  return readFileSync(output, 'utf8');
}

const ARCHIVE = [
  'Origin: Debian',
  'Label: Debian',
  'Suite: oldstable-updates',
  'Codename: bookworm-updates',
  'Date: Fri, 20 Nov 2026 02:11:10 UTC',
  'Valid-Until: Fri, 27 Nov 2026 02:11:10 UTC',
  'Architectures: all amd64 arm64',
  'Components: main contrib',
  'MD5Sum:',
  ' 0123456789abcdef0123456789abcdef 1 main/binary-amd64/Packages',
  'SHA256:',
  line(PACKAGES, 'main/binary-amd64/Packages'),
  line(PACKAGES_GZ, 'main/binary-amd64/Packages.gz'),
  ` ${'e'.repeat(64)}      99 main/binary-amd64/Packages.xz`,
  ` ${'f'.repeat(64)}      50 main/binary-arm64/Packages.xz`,
  '',
].join('\n');

// A flat repository such as pkgs.k8s.io: the index files sit next to the Release file.
const FLAT = ['Origin: obs://build.opensuse.org/isv:kubernetes:core:stable:v1.32/deb', 'Suite: /', 'Date: Tue, 18 Mar 2025 10:43:09 +0100', 'SHA256:', line(PACKAGES, 'Packages'), ''].join('\n');

describe('parseRelease', () => {
  const release = parseRelease(ARCHIVE, 'http://mirror.test/debian/dists/bookworm-updates/InRelease');

  it('reads the header fields', () => {
    assert.equal(release.suite, 'oldstable-updates');
    assert.equal(release.codename, 'bookworm-updates');
    assert.equal(release.origin, 'Debian');
    assert.deepEqual(release.architectures, ['all', 'amd64', 'arm64']);
    assert.deepEqual(release.components, ['main', 'contrib']);
    assert.equal(release.date?.toISOString(), '2026-11-20T02:11:10.000Z');
    assert.equal(release.validUntil?.toISOString(), '2026-11-27T02:11:10.000Z');
  });

  it('reads the SHA256 list, not the MD5 one', () => {
    assert.equal(release.files.size, 4);
    assert.deepEqual(release.files.get('main/binary-amd64/Packages'), { path: 'main/binary-amd64/Packages', size: Buffer.byteLength(PACKAGES), sha256: sha(PACKAGES) });
  });

  it('reads a flat repository and numeric time zones', () => {
    const flat = parseRelease(FLAT, 'https://pkgs.test/v1.32/deb/Release');
    assert.equal(flat.suite, '/');
    assert.deepEqual(flat.architectures, []);
    assert.deepEqual([...flat.files.keys()], ['Packages']);
    assert.equal(flat.date?.toISOString(), '2025-03-18T09:43:09.000Z');
  });

  it('names the source in errors', () => {
    assert.throws(() => parseRelease('Suite: x\nMD5Sum:\n 00 1 Packages\n', 'R'), /R: no SHA256 file list/);
    assert.throws(() => parseRelease('SHA256:\n abc 1 Packages\n', 'R'), /R: bad SHA256 line 'abc 1 Packages'/);
    assert.throws(() => parseRelease('Date: yesterday\nSHA256:\n', 'R'), /R: cannot parse Date 'yesterday'/);
    assert.throws(() => parseRelease('-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: x\n', 'R'), /R: Release text is still OpenPGP-armored/);
  });
});

describe('assertReleaseCurrent', () => {
  const release = parseRelease(ARCHIVE, 'http://mirror.test/InRelease');
  it('accepts a Release before its Valid-Until and refuses one after it', () => {
    assertReleaseCurrent(release, new Date('2026-11-26T00:00:00Z'));
    assert.throws(() => assertReleaseCurrent(release, new Date('2026-11-28T00:00:00Z')), /http:\/\/mirror.test\/InRelease expired on 2026-11-27T02:11:10.000Z \(Valid-Until\)/);
  });
  it('accepts a Release without Valid-Until at any time', () => {
    assertReleaseCurrent(parseRelease(FLAT, 'x'), new Date('2100-01-01T00:00:00Z'));
  });
});

describe('pickIndexFile', () => {
  const release = parseRelease(ARCHIVE, 'http://mirror.test/debian/dists/bookworm-updates/InRelease');
  const dir = 'http://mirror.test/debian/dists/bookworm-updates';

  it('builds the index path for archives and flat repositories', () => {
    assert.equal(packagesIndexPath('main', 'amd64'), 'main/binary-amd64/Packages');
    assert.equal(packagesIndexPath(undefined, 'amd64'), 'Packages');
  });

  it('prefers the .gz file', () => {
    const choice = pickIndexFile(release, 'main/binary-amd64/Packages', dir);
    assert.equal(choice.url, 'http://mirror.test/debian/dists/bookworm-updates/main/binary-amd64/Packages.gz');
    assert.equal(choice.compression, 'gzip');
    assert.equal(choice.expected.size, PACKAGES_GZ.byteLength);
  });

  it('falls back to the uncompressed file, as in a flat repository', () => {
    const flat = parseRelease(FLAT, 'https://pkgs.test/core:/stable:/v1.32/deb/Release');
    const choice = pickIndexFile(flat, packagesIndexPath(undefined, 'amd64'), 'https://pkgs.test/core:/stable:/v1.32/deb/');
    assert.equal(choice.url, 'https://pkgs.test/core:/stable:/v1.32/deb/Packages');
    assert.equal(choice.compression, 'none');
  });

  it('takes the .xz when no .gz is offered, as in Debian\'s security archive, and decodes it with xz', async () => {
    const choice = pickIndexFile(release, 'main/binary-arm64/Packages', dir);
    assert.equal(choice.url, 'http://mirror.test/debian/dists/bookworm-updates/main/binary-arm64/Packages.xz');
    assert.equal(choice.compression, 'xz');
    const text = 'Package: a\nVersion: 1\n';
    const packed = execFileSync('xz', ['-c'], { input: text });
    assert.equal(await decompressed(choice, packed, 'xz'), text);
  });

  it('refuses an index offered only in a compression it cannot decode, naming the URL', () => {
    const bz2Only = parseRelease(ARCHIVE.replace(/Packages\.xz/g, 'Packages.bz2'), 'http://mirror.test/InRelease');
    assert.throws(
      () => pickIndexFile(bz2Only, 'main/binary-arm64/Packages', dir),
      /http:\/\/mirror.test\/debian\/dists\/bookworm-updates\/main\/binary-arm64\/Packages: the repository offers only .bz2, which this tool cannot decompress/,
    );
  });

  it('says what the Release offers when the index is not listed', () => {
    assert.throws(
      () => pickIndexFile(release, 'non-free/binary-amd64/Packages', dir),
      /InRelease lists no non-free\/binary-amd64\/Packages \(architectures: all amd64 arm64; components: main contrib\)/,
    );
  });
});

describe('verifyIndexFile and decompressIndexFile', () => {
  const release = parseRelease(ARCHIVE, 'http://mirror.test/InRelease');
  const choice = pickIndexFile(release, 'main/binary-amd64/Packages', 'http://mirror.test/dists/x/');

  it('accepts the right bytes and decompresses them', async () => {
    verifyIndexFile(choice, PACKAGES_GZ);
    assert.equal(await decompressed(choice, PACKAGES_GZ, 'gz'), PACKAGES);
    const plain = pickIndexFile(parseRelease(FLAT, 'x'), 'Packages', 'https://pkgs.test/deb');
    verifyIndexFile(plain, Buffer.from(PACKAGES));
  });

  it('refuses a wrong size or hash, naming the URL', () => {
    assert.throws(() => verifyIndexFile(choice, PACKAGES_GZ.subarray(1)), /http:\/\/mirror.test\/dists\/x\/main\/binary-amd64\/Packages.gz: got \d+ bytes, the Release file says \d+/);
    const tampered = Buffer.from(PACKAGES_GZ);
    const last = tampered.length - 1;
    tampered.writeUInt8(tampered.readUInt8(last) ^ 1, last);
    assert.throws(() => verifyIndexFile(choice, tampered), /Packages.gz: SHA-256 is [0-9a-f]{64}, the Release file says [0-9a-f]{64}/);
  });

  it('names the URL of a file that is not gzip', async () => {
    await assert.rejects(decompressed(choice, Buffer.from('not gzip'), 'bad'), /http:\/\/mirror.test\/dists\/x\/main\/binary-amd64\/Packages.gz: cannot decompress/);
  });
});
