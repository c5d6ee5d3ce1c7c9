/**
 * Differential fuzzing of verify against GNU tar (issue #9): thousands of mutants of a real signed bundle —
 * random byte flips anywhere, the header tricks readers disagree on, mode, type and size changes, members
 * dropped, doubled or added, and these combined. Whenever verify accepts a mutant, GNU tar (run as root, as on a
 * host) must unpack exactly the signed tree with the packed modes. Some mutations are harmless by design (a
 * header re-encoded with another time), so the accepting path is exercised too.
 *
 * FUZZ_SEED and FUZZ_COUNT override the seed and the number of mutants (e.g. for a longer run by hand).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { memberMode } from '../../src/core/bundle/paths.js';
import { encodeHeader, paddingFor } from '../../src/core/bundle/tar.js';
import { verifyBundle } from '../../src/core/bundle/verify.js';
import { makeKey, MTIME, packFixture, tempDir } from './bundle-fixture.js';
import { block, fileMember, gnuLongName, paxHeader } from './helpers/tar-craft.js';
import { gnuUnpack, segments, treeDifferences, type Segment } from './helpers/tree.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261206);
const COUNT = Number(process.env.FUZZ_COUNT ?? 3000);

/** mulberry32: a small seeded generator, so a failure can be replayed from its seed. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = { int(n: number): number; pick<T>(items: readonly T[]): T };

function random(seed: number): Random {
  const next = generator(seed);
  return { int: (n) => Math.floor(next() * n), pick: (items) => items[Math.floor(next() * items.length)]! };
}

/** One change to the member list; some touch one member, some the list. */
type Mutation = (members: Buffer[], segs: Segment[], r: Random) => Buffer[];

const withMember = (fn: (s: Segment, r: Random) => Buffer): Mutation => (members, segs, r) => {
  const i = r.int(segs.length);
  return members.map((m, j) => (j === i ? fn(segs[i]!, r) : m));
};
const otherName = (segs: Segment[], r: Random) => r.pick(segs.filter((s) => s.type === 'file')).path;

const MUTATIONS: Record<string, Mutation> = {
  paxThenLongName: (m, segs, r) => withMember((s) => Buffer.concat([paxHeader({ path: otherName(segs, r) }), gnuLongName(s.path), fileMember('x', s.body, memberMode(s.path, 'file'))]))(m, segs, r),
  twoPaxHeaders: (m, segs, r) => withMember((s) => Buffer.concat([paxHeader({ path: s.path }), paxHeader({ comment: 'x' }), fileMember(otherName(segs, r), s.body)]))(m, segs, r),
  longNameOnly: withMember((s) => Buffer.concat([gnuLongName(s.path), fileMember('x', s.body)])),
  globalHeader: withMember((s) => Buffer.concat([paxHeader({ path: s.path }, 'GlobalExtendedHeader'), s.bytes])),
  sparse: withMember((s) =>
    Buffer.concat([paxHeader({ path: s.path, 'GNU.sparse.size': String(s.body.length + 512), 'GNU.sparse.numblocks': '1', 'GNU.sparse.offset': '512', 'GNU.sparse.numbytes': String(s.body.length) }), fileMember('x', s.body)]),
  ),
  extraPaxRecord: withMember((s) => Buffer.concat([paxHeader({ path: s.path, mtime: '1.5' }), encodeMember(s, { mode: memberMode(s.path, s.type === 'directory' ? 'directory' : 'file') })])),
  mode: withMember((s, r) => encodeMember(s, { mode: r.pick([0o4755, 0o2755, 0o1777, 0o777, 0o755, 0o644, 0o600, 0o6755]) })),
  typeflag: withMember((s, r) => {
    const b = Buffer.from(s.bytes);
    const at = s.bytes.length - Math.ceil(s.body.length / 512) * 512 - 512;
    b[at + 156] = r.pick(['1', '2', '3', '4', '6', '7', '\0', 'S', 'D', 'L', 'x', 'g', 'K', 'V', 'M']).charCodeAt(0);
    return fixChecksum(b, at);
  }),
  directorySize: withMember((s, r) => (s.type === 'directory' ? Buffer.concat([block({ path: `${s.path}/`, type: 'Directory', size: 512, mode: 0o755 }), Buffer.alloc(512)]) : encodeMember(s, { size: s.body.length + 1 + r.int(600) }))),
  drop: (m, _s, r) => {
    const i = r.int(m.length);
    return m.filter((_, j) => j !== i);
  },
  duplicate: (m, _s, r) => {
    const i = r.int(m.length);
    return [...m.slice(0, i + 1), m[r.int(m.length)]!, ...m.slice(i + 1)];
  },
  swapOrder: (m, _s, r) => {
    const out = [...m];
    const i = r.int(out.length);
    const j = r.int(out.length);
    [out[i], out[j]] = [out[j]!, out[i]!];
    return out;
  },
  extraDirectory: (m, _s, r) => [...m, block({ path: r.pick(['etc/', 'installer/sub/', 'images/x/', 'tmp/']), type: 'Directory', size: 0, mode: 0o755 })],
  extraFile: (m, segs, r) => [...m, fileMember(r.pick(['installer/evil.sh', 'etc/cron.d/x', otherName(segs, r)]), Buffer.from('#!/bin/sh\nid\n'))],
  renamed: withMember((s, r) => encodeMember(s, { path: r.pick([`./${s.path}`, `/${s.path}`, `${s.path}/`, `x/../${s.path}`, s.path.toUpperCase()]) })),
  // harmless by design: the packer's own form, another time; GNU tar unpacks the same tree
  otherTime: withMember((s, r) => encodeMember(s, { mtime: new Date(MTIME.getTime() + (1 + r.int(1e6)) * 1000) })),
};

function encodeMember(s: Segment, change: { mode?: number; size?: number; path?: string; mtime?: Date }): Buffer {
  const type = s.type === 'directory' ? 'directory' : 'file';
  const size = change.size ?? s.body.length;
  const body = Buffer.concat([s.body, Buffer.alloc(Math.max(0, size - s.body.length))]).subarray(0, size);
  const header = encodeHeader({ path: change.path ?? s.path, type, size, mode: change.mode ?? memberMode(s.path, type), mtime: change.mtime ?? MTIME });
  return Buffer.concat([header, body, Buffer.alloc(paddingFor(size))]);
}

function fixChecksum(bytes: Buffer, at: number): Buffer {
  const header = bytes.subarray(at, at + 512);
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return bytes;
}

function flipBytes(bytes: Buffer, r: Random): Buffer {
  const out = Buffer.from(bytes);
  const flips = 1 + r.int(4);
  for (let i = 0; i < flips; i++) {
    const at = r.int(out.length);
    out[at] = out[at]! ^ (1 + r.int(255));
  }
  return out;
}

test(`differential fuzz: every bundle verify accepts unpacks with GNU tar to exactly the signed tree (${COUNT} mutants, seed ${SEED})`, async (t) => {
  const dir = await tempDir(t);
  const key = await makeKey();
  const bundle = await packFixture(dir, key);
  const expected = await gnuUnpack(bundle);
  assert.ok(expected);
  const { members, trailer } = await segments(bundle);
  const original = members.map((m) => m.bytes);
  const names = Object.keys(MUTATIONS);
  const r = random(SEED);
  const tried = new Map<string, number>();
  const accepted = new Map<string, number>();

  /** The n-th mutant: one to three mutations, then (half the time) byte flips over the result. */
  const make = (): { label: string; bytes: Buffer } => {
    const applied: string[] = [];
    let parts = original;
    for (let k = 1 + r.int(3); k > 0; k--) {
      const name = r.pick(names);
      applied.push(name);
      parts = MUTATIONS[name]!(parts, members, r);
    }
    let bytes: Buffer = Buffer.concat([...parts, trailer]);
    if (r.int(2) === 0) {
      bytes = flipBytes(bytes, r);
      applied.push('flips');
    }
    for (const a of applied) tried.set(a, (tried.get(a) ?? 0) + 1);
    return { label: applied.join('+'), bytes };
  };
  const check = async (n: number, { label, bytes }: { label: string; bytes: Buffer }, file: string): Promise<void> => {
    await writeFile(file, bytes);
    const report = await verifyBundle(file, { publicKeys: [key.public], allowUnsigned: false });
    if (!report.ok) return;
    accepted.set(label, (accepted.get(label) ?? 0) + 1);
    const unpacked = await gnuUnpack(file);
    assert.ok(unpacked, `mutant ${n} (${label}) passed verify but GNU tar refused it`);
    assert.deepEqual(treeDifferences(expected, unpacked), [], `mutant ${n} (${label}) passed verify but GNU tar unpacks another tree`);
  };
  // a few at a time: verifying is mostly waiting on file reads and the signature check
  const PARALLEL = 4;
  for (let n = 0; n < COUNT; n += PARALLEL) {
    const batch = Array.from({ length: Math.min(PARALLEL, COUNT - n) }, () => make());
    await Promise.all(batch.map((m, i) => check(n + i, m, join(dir, `mutant-${i}.tar`))));
  }

  const total = [...accepted.values()].reduce((a, b) => a + b, 0);
  t.diagnostic(`${COUNT} mutants, ${total} accepted by verify (each unpacked by GNU tar to exactly the signed tree)`);
  t.diagnostic(`accepted: ${JSON.stringify(Object.fromEntries(accepted))}`);
  t.diagnostic(`mutations tried: ${JSON.stringify(Object.fromEntries(tried))}`);
  // the harmless mutation must get through: otherwise the accepting path was never exercised
  assert.ok([...accepted.keys()].some((k) => k.includes('otherTime')), 'no harmless mutant was accepted');
  assert.ok(total < COUNT / 4, `verify accepted ${total} of ${COUNT}: far more than the harmless mutations`);
});
