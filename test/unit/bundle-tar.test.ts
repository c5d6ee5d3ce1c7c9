import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeHeader, endOfArchive, paddingFor, readTar, type TarItem } from '../../src/core/bundle/tar.js';
import { tempDir } from './bundle-fixture.js';

const mtime = new Date('2025-03-01T12:00:00Z');

async function collect(file: string): Promise<TarItem[]> {
  const items: TarItem[] = [];
  for await (const item of readTar(file, { chunkSize: 1024 })) items.push(item);
  return items;
}

test('long and non-ASCII paths go into pax records that GNU tar and our reader agree on', async (t) => {
  const dir = await tempDir(t);
  // Lengths around the points where a pax record's own length gains a digit (the record counts itself).
  const paths = [90, 91, 92, 99, 100, 101, 988, 989, 990, 991, 992].map((n) => `d/${'x'.repeat(n - 2)}`);
  paths.push('d/ünïcödé.yaml', `d/${'é'.repeat(60)}`);
  const parts: Buffer[] = [encodeHeader({ path: 'd', type: 'directory', size: 0, mode: 0o755, mtime })];
  for (const path of paths) {
    const body = Buffer.from(path);
    parts.push(encodeHeader({ path, type: 'file', size: body.length, mode: 0o644, mtime }), body, Buffer.alloc(paddingFor(body.length)));
  }
  parts.push(endOfArchive());
  const file = join(dir, 'paths.tar');
  await writeFile(file, Buffer.concat(parts));

  const gnu = execFileSync('tar', ['tf', file], { encoding: 'utf8' }).split('\n').filter(Boolean);
  assert.deepEqual(gnu, ['d/', ...paths]);
  const ours: string[] = [];
  for await (const item of readTar(file, { chunkSize: 1024 })) {
    assert.equal(item.kind, 'entry', JSON.stringify(item));
    if (item.kind !== 'entry') continue;
    ours.push(item.entry.path);
    if (item.entry.type === 'file') assert.equal((await item.entry.readAll(4096)).toString(), item.entry.path);
  }
  assert.deepEqual(ours, ['d', ...paths]);
});

test('sizes beyond the 8 GiB ustar limit are carried in a pax record', async (t) => {
  const dir = await tempDir(t);
  const size = 9 * 1024 ** 3 + 5;
  const file = join(dir, 'big.tar');
  await writeFile(file, encodeHeader({ path: 'big.bin', type: 'file', size, mode: 0o644, mtime }));
  const items = await collect(file);
  const first = items[0];
  assert.ok(first?.kind === 'entry');
  assert.equal(first.entry.size, size);
  assert.equal(first.entry.offset, 0);
  assert.deepEqual(items.slice(1).map((i) => i.kind === 'defect' && i.defect.fatal), [true], 'the missing body is a fatal defect');
});

test('a header checksum is accepted only in the form the packer writes ("%06o SP NUL"), and is named when it is not', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'a.tar');
  const header = encodeHeader({ path: 'a', type: 'file', size: 0, mode: 0o644, mtime });
  assert.equal(header.subarray(154, 156).toString('latin1'), ' \0');
  const withChecksumEnd = async (end: string): Promise<TarItem[]> => {
    const copy = Buffer.from(header);
    copy.write(end, 154, 'latin1');
    await writeFile(file, Buffer.concat([copy, endOfArchive()]));
    return collect(file);
  };
  assert.deepEqual((await withChecksumEnd(' \0')).map((i) => i.kind === 'entry' && i.entry.path), ['a']);
  // GNU tar's own form ("%06o NUL SP") is a valid checksum, but not the packer's: refused by the canonical form
  const [gnu] = await withChecksumEnd('\0 ');
  assert.ok(gnu?.kind === 'defect');
  assert.match(gnu.defect.detail, /the header's checksum field is not as kube-bundle writes it/);
  assert.equal(gnu.defect.fatal, true);
  // The value is unchanged for a reader that stops at the first non-octal byte.
  const [item] = await withChecksumEnd('  ');
  assert.ok(item?.kind === 'defect');
  assert.match(item.defect.detail, /header checksum mismatch .*the header names "a"/);
  assert.equal(item.defect.fatal, true);
});
