import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { PackageIndex, SourceScan, type ScannedRecord } from '../../src/core/apt/index.js';
import { StreamingScan } from '../../src/core/apt/stream-scan.js';
import type { IndexCompression } from '../../src/core/apt/release.js';

const dir = mkdtempSync(join(tmpdir(), 'kb-stream-scan-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SHA = (i: number) => i.toString(16).padStart(64, '0');
/** Enough stanzas (with Description text like Debian's) for several 1 MiB pieces once unpacked. */
const PACKAGES =
  Array.from({ length: 3000 }, (_, i) =>
    [
      `Package: pkg${i}`,
      `Version: 1.${i}-1`,
      `Architecture: ${i % 3 === 0 ? 'all' : i % 3 === 1 ? 'amd64' : 'arm64'}`,
      ...(i % 50 === 0 ? [`Provides: virtual${i % 7}`] : []),
      `Description: package number ${i}`,
      ...Array.from({ length: 8 }, () => ' ' + 'words of a long description '.repeat(3)),
      `Filename: pool/main/p/pkg${i}/pkg${i}_1.${i}-1_amd64.deb`,
      `Size: ${1000 + i}`,
      `SHA256: ${SHA(i)}`,
    ].join('\n'),
  ).join('\n\n') + '\n';
const COMPRESSED: Record<IndexCompression, Buffer> = {
  none: Buffer.from(PACKAGES),
  gzip: gzipSync(PACKAGES),
  xz: execFileSync('xz', ['-c'], { input: PACKAGES, maxBuffer: 64 << 20 }),
};

let files = 0;
function setUp(compression: IndexCompression): { scan: SourceScan; stream: StreamingScan; seen: ScannedRecord[]; plainFile: string } {
  const n = files++;
  const plainFile = join(dir, compression === 'none' ? `download-${n}` : `plain-${n}`);
  // an uncompressed index is read from the download itself, which the caller (the cache) writes
  if (compression === 'none') writeFileSync(plainFile, COMPRESSED.none);
  const scan = new SourceScan({ label: 'main', baseUrl: 'https://example.test/debian', packages: { file: plainFile }, packagesUrl: 'https://example.test/Packages' }, 'amd64');
  const seen: ScannedRecord[] = [];
  const stream = new StreamingScan(scan, compression, join(dir, `plain-${n}`), (s) => seen.push(s));
  return { scan, stream, seen, plainFile };
}

/** Deliver `bytes` as a download does, in chunks of `size`, letting the event loop run in between. */
async function deliver(stream: StreamingScan, bytes: Buffer, size: number, from = 0): Promise<void> {
  for (let at = from; at < bytes.length; at += size) {
    stream.data(bytes.subarray(at, at + size), at);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const expected = PackageIndex.build([{ label: 'main', baseUrl: 'https://example.test/debian', packages: PACKAGES, packagesUrl: 'u' }], 'amd64');
const expectedNames = [...expected.packageNames()].sort();

describe('StreamingScan', () => {
  for (const compression of ['gzip', 'xz', 'none'] as const) {
    it(`scans a ${compression} index as it arrives: the same records as the whole file, stanzas readable after`, async () => {
      const { scan, stream, seen, plainFile } = setUp(compression);
      await deliver(stream, COMPRESSED[compression], 64 * 1024);
      assert.equal(await stream.complete(COMPRESSED[compression].length), true);
      const index = PackageIndex.fromScans([scan], 'amd64');
      assert.deepEqual([...index.packageNames()].sort(), expectedNames);
      assert.equal(index.providersOf('virtual0').length, expected.providersOf('virtual0').length);
      assert.equal(readFileSync(plainFile, 'utf8'), PACKAGES, 'the plain text is where the records read their stanzas');
      const pkg1 = index.candidate('pkg1');
      assert.equal(pkg1?.filename, 'pool/main/p/pkg1/pkg1_1.1-1_amd64.deb');
      assert.match(pkg1?.stanza ?? '', /^Package: pkg1\nVersion: 1\.1-1\n/);
      // every record was handed out as scanned, with its download taken from its own paragraph
      assert.equal(seen.length, scan.records.length);
      const early = seen.find((s) => s.record.name === 'pkg4');
      assert.deepEqual(early && { filename: early.filename, size: early.size, sha256: early.sha256 }, { filename: 'pool/main/p/pkg4/pkg4_1.4-1_amd64.deb', size: 1004, sha256: SHA(4) });
    });
  }

  it('hands out records before the download is complete', async () => {
    const { stream, seen } = setUp('gzip');
    const bytes = COMPRESSED.gzip;
    await deliver(stream, bytes.subarray(0, Math.floor(bytes.length * 0.8)), 16 * 1024);
    // the decompressor runs on another thread: give it a moment
    for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(seen.length > 0, 'records of the first part are out');
    stream.abandon();
  });

  it('gives up on a gap (a resumed download) and on a restart, so the caller reads the file', async () => {
    const gap = setUp('gzip');
    await deliver(gap.stream, COMPRESSED.gzip, 64 * 1024, 64 * 1024);
    assert.equal(await gap.stream.complete(COMPRESSED.gzip.length), false);

    const restart = setUp('xz');
    await deliver(restart.stream, COMPRESSED.xz.subarray(0, 100_000), 32 * 1024);
    await deliver(restart.stream, COMPRESSED.xz, 32 * 1024);
    assert.equal(await restart.stream.complete(COMPRESSED.xz.length), false);

    const short = setUp('none');
    await deliver(short.stream, COMPRESSED.none.subarray(0, 1000), 500);
    assert.equal(await short.stream.complete(COMPRESSED.none.length), false, 'not every byte came through');
  });

  it('reports verified bytes that do not decompress, or a malformed stanza, naming the index', async () => {
    const notGzip = setUp('gzip');
    await deliver(notGzip.stream, COMPRESSED.none, 64 * 1024);
    await assert.rejects(notGzip.stream.complete(COMPRESSED.none.length), /https:\/\/example\.test\/Packages: cannot decompress/);

    const bad = setUp('gzip');
    const text = PACKAGES.replace('Size: 1007', 'Size: 7k');
    const gz = gzipSync(text);
    await deliver(bad.stream, gz, 64 * 1024);
    await assert.rejects(bad.stream.complete(gz.length), /https:\/\/example\.test\/Packages:\d+: pkg7 1\.7-1: invalid Size '7k'/);
  });
});
