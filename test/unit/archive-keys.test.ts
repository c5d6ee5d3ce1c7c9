/**
 * The keys `bundle build` trusts for a target distribution's archive: its keyring (narrowed to the target's
 * keyFingerprints), plus --trust-archive-key keys, which alone suffice when the keyring is not on the machine.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as openpgp from 'openpgp';
import { distributionKeys } from '../../src/core/builder/packages.js';
import { loadTarget, type TargetDef } from '../../src/core/definitions.js';
import { fingerprintOf, generateKeyPair, readPublicKey } from '../../src/core/pgp.js';
import { UserError } from '../../src/util/errors.js';

let dir: string;
let archive: openpgp.PublicKey;
let other: openpgp.PublicKey;
let mirror: openpgp.PublicKey;
let keyring: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kb-archive-keys-'));
  const publicKey = async (name: string) => readPublicKey((await generateKeyPair(name)).publicKey, name);
  [archive, other, mirror] = await Promise.all([publicKey('archive'), publicKey('other'), publicKey('mirror')]);
  // a binary keyring as /usr/share/keyrings holds them: the keys' packets one after the other
  keyring = join(dir, 'archive-keyring.gpg');
  writeFileSync(keyring, Buffer.concat([archive.write(), other.write()]));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** ubuntu-24.04 as defined, with the keyring and fingerprints of a test. */
function ubuntu(over: Partial<TargetDef>): TargetDef {
  return { ...loadTarget('ubuntu-24.04'), ...over };
}

const fingerprints = (keys: openpgp.PublicKey[]) => keys.map(fingerprintOf);

test('the keyring\'s keys are trusted, only those the target lists when it lists any', async () => {
  assert.deepEqual(fingerprints(await distributionKeys(ubuntu({ keyring, keyFingerprints: undefined }))), fingerprints([archive, other]));
  // listed with spaces and in lower case, as a fingerprint is often copied
  const spaced = fingerprintOf(archive).toLowerCase().replace(/(.{4})/g, '$1 ');
  assert.deepEqual(fingerprints(await distributionKeys(ubuntu({ keyring, keyFingerprints: [spaced] }))), fingerprints([archive]));
});

test('--trust-archive-key keys are trusted besides the keyring\'s', async () => {
  const keys = await distributionKeys(ubuntu({ keyring, keyFingerprints: [fingerprintOf(archive)] }), [mirror]);
  assert.deepEqual(fingerprints(keys), fingerprints([archive, mirror]));
});

test('without the keyring on the machine, a trusted archive key is enough; without either, the error names the keyring and both ways out', async () => {
  const missing = join(dir, 'ubuntu-archive-keyring.gpg');
  assert.deepEqual(fingerprints(await distributionKeys(ubuntu({ keyring: missing }), [mirror])), fingerprints([mirror]));
  await assert.rejects(distributionKeys(ubuntu({ keyring: missing })), (e: unknown) =>
    e instanceof UserError &&
    e.message === `the archive keyring for ubuntu-24.04 is missing: ${missing}` &&
    /install the ubuntu-keyring package/.test(e.hint ?? '') &&
    /--trust-archive-key/.test(e.hint ?? ''));
});

test('a keyring holding none of the listed keys is refused, naming it, unless an archive key is trusted', async () => {
  const target = ubuntu({ keyring, keyFingerprints: [fingerprintOf(mirror)] });
  await assert.rejects(distributionKeys(target), (e: unknown) =>
    e instanceof UserError && e.message === `${keyring} holds none of the ubuntu-24.04 archive keys (${fingerprintOf(mirror)})`);
  assert.deepEqual(fingerprints(await distributionKeys(target, [mirror])), fingerprints([mirror]));
});

test('a file that is not a keyring is refused, naming it', async () => {
  const armored = join(dir, 'armored.asc');
  writeFileSync(armored, 'not a keyring\n');
  await assert.rejects(distributionKeys(ubuntu({ keyring: armored })), (e: unknown) =>
    e instanceof UserError && e.message.startsWith(`${armored} is not a binary OpenPGP keyring`));
});
