/**
 * Attacks on a signed bundle by someone who holds the file (issue #9): header forms that a reader may take
 * differently from GNU tar, modes and directories the signature does not cover. For each: GNU tar on a host
 * would unpack something other than the signed tree (asserted, so the attack is real), and verify refuses the
 * bundle, naming the entry and the rule.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { verifyBundle, type VerifyReport } from '../../src/core/bundle/verify.js';
import { FROM_DISK, INSTALL_SH, makeKey, packFixture, tempDir } from './bundle-fixture.js';
import { block, canonicalFile, fileMember, gnuLongName, paxHeader } from './helpers/tar-craft.js';
import { gnuUnpack, segments, treeDifferences, type Segment } from './helpers/tree.js';

const key = await makeKey();
const signed = { publicKeys: [key.public], allowUnsigned: false };

interface Case {
  name: string;
  /** the members, changed */
  craft(members: Segment[]): Buffer[];
  /** what verify must say */
  refused: RegExp;
}

const bodyOf = (members: Segment[], path: string): Buffer => members.find((m) => m.path === path)!.body;
const replace = (members: Segment[], path: string, bytes: Buffer): Buffer[] => members.map((m) => (m.path === path ? bytes : m.bytes));

const cases: Case[] = [
  {
    // A reader that lets the GNU long name win sees each script under its own name; GNU tar lets the pax path
    // win, and so swaps the two scripts' contents under their signed names.
    name: 'a pax path followed by a GNU long name, swapping two scripts',
    craft: (members) =>
      members.map((m) => {
        if (m.path === INSTALL_SH) return Buffer.concat([paxHeader({ path: FROM_DISK }), gnuLongName(INSTALL_SH), fileMember('x', m.body, 0o755)]);
        if (m.path === FROM_DISK) return Buffer.concat([paxHeader({ path: INSTALL_SH }), gnuLongName(FROM_DISK), fileMember('y', m.body, 0o755)]);
        return m.bytes;
      }),
    refused: /a pax header followed by another extension header \(tar type 'L'\)/,
  },
  {
    // tar@7 merges a second pax header into the first; GNU tar drops the first and takes the ustar name
    name: 'two pax headers in a row, swapping two scripts',
    craft: (members) =>
      members.map((m) => {
        if (m.path === INSTALL_SH) return Buffer.concat([paxHeader({ path: INSTALL_SH }), paxHeader({ comment: 'x' }), fileMember(FROM_DISK, m.body)]);
        if (m.path === FROM_DISK) return Buffer.concat([paxHeader({ path: FROM_DISK }), paxHeader({ comment: 'x' }), fileMember(INSTALL_SH, m.body)]);
        return m.bytes;
      }),
    refused: /kube-bundle writes at most one pax header per entry/,
  },
  {
    // GNU tar takes the body as the data of a sparse file: the script it writes starts with 4096 zero bytes
    name: 'GNU sparse records in a pax header',
    craft: (members) => {
      const body = bodyOf(members, INSTALL_SH);
      const sparse = paxHeader({ path: INSTALL_SH, 'GNU.sparse.size': String(body.length + 4096), 'GNU.sparse.numblocks': '1', 'GNU.sparse.offset': '4096', 'GNU.sparse.numbytes': String(body.length) });
      return replace(members, INSTALL_SH, Buffer.concat([sparse, fileMember('x', body, 0o755)]));
    },
    refused: /pax header \(records: path, GNU\.sparse\.size, GNU\.sparse\.numblocks, GNU\.sparse\.offset, GNU\.sparse\.numbytes\)/,
  },
  {
    name: 'a setuid, world-writable installer script',
    craft: (members) => replace(members, INSTALL_SH, fileMember(INSTALL_SH, bodyOf(members, INSTALL_SH), 0o4777)),
    refused: /mode 4777; kube-bundle packs this file as 0755/,
  },
  {
    name: 'a sticky, world-writable installer/ directory',
    craft: (members) => replace(members, 'installer', block({ path: 'installer/', type: 'Directory', size: 0, mode: 0o1777 })),
    refused: /mode 1777; kube-bundle packs this directory as 0755/,
  },
  {
    name: 'an extra directory no listed file is in',
    craft: (members) => [...members.map((m) => m.bytes), block({ path: 'etc/cron.d/', type: 'Directory', size: 0, mode: 0o755 })],
    refused: /a directory that holds no file listed in SHA256SUMS/,
  },
  {
    name: 'a GNU long name alone',
    craft: (members) => replace(members, INSTALL_SH, Buffer.concat([gnuLongName(INSTALL_SH), fileMember('installer/other.sh', bodyOf(members, FROM_DISK))])),
    refused: /tar type 'L' \(a GNU long name\) is not a form kube-bundle writes/,
  },
  {
    name: 'a pax global header setting the path for what follows',
    craft: (members) => replace(members, INSTALL_SH, Buffer.concat([paxHeader({ path: INSTALL_SH }, 'GlobalExtendedHeader'), canonicalFile(INSTALL_SH, bodyOf(members, FROM_DISK))])),
    refused: /tar type 'g' \(a pax global header\)/,
  },
];

for (const c of cases) {
  test(`attack refused: ${c.name}`, async (t) => {
    const dir = await tempDir(t);
    const bundle = await packFixture(dir, key);
    const expected = await gnuUnpack(bundle);
    assert.ok(expected, 'GNU tar unpacks the intact bundle');
    const { members, trailer } = await segments(bundle);
    const crafted = join(dir, 'crafted.tar');
    await writeFile(crafted, Buffer.concat([...c.craft(members), trailer]));

    // The attack is real: GNU tar, as a host's root runs it, unpacks something other than the signed tree.
    const unpacked = await gnuUnpack(crafted);
    assert.ok(unpacked, 'GNU tar accepts the crafted bundle');
    assert.notDeepEqual(treeDifferences(expected, unpacked), [], 'GNU tar unpacks the same tree: not an attack');

    const report: VerifyReport = await verifyBundle(crafted, signed);
    assert.equal(report.ok, false, 'verify accepted it');
    assert.match(report.problems.map((p) => `${p.path}: ${p.detail}`).join('\n'), c.refused);
  });
}
