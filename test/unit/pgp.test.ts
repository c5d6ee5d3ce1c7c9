import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { generateKeyPair, readPublicKey, readSecretKey, signCleartext, signDetached, verifyCleartext, verifyDetached } from '../../src/core/pgp.js';
import { UserError } from '../../src/util/errors.js';

const DEBIAN_KEYRING = new URL('../../bundles/keyrings/debian-archive-keyring.gpg', import.meta.url);

test('signatures are deterministic for a fixed date and verify with gpgv', async () => {
  const pair = await generateKeyPair('test signer', 'pw');
  const key = await readSecretKey(pair.secretKey, 'signer.asc', 'pw');
  const date = new Date(0); // moved up to the key's creation, so still fixed
  const a = await signCleartext('Origin: test\nSuite: /\n', key, date);
  assert.equal(a, await signCleartext('Origin: test\nSuite: /\n', key, date));
  const detached = await signDetached('hello\n', key, date);
  assert.equal(detached, await signDetached('hello\n', key, date));

  const dir = mkdtempSync(join(tmpdir(), 'pgp-'));
  writeFileSync(join(dir, 'pub.gpg'), execFileSync('gpg', ['--dearmor'], { input: pair.publicKey }));
  writeFileSync(join(dir, 'InRelease'), a);
  writeFileSync(join(dir, 'data'), 'hello\n');
  writeFileSync(join(dir, 'data.asc'), detached);
  execFileSync('gpgv', ['--keyring', join(dir, 'pub.gpg'), join(dir, 'InRelease')], { stdio: 'pipe' });
  execFileSync('gpgv', ['--keyring', join(dir, 'pub.gpg'), join(dir, 'data.asc'), join(dir, 'data')], { stdio: 'pipe' });

  const pub = await readPublicKey(pair.publicKey, 'signer.pub.asc');
  assert.equal((await verifyCleartext(a, [pub], 'InRelease')).text, 'Origin: test\nSuite: /\n');
  assert.equal((await verifyDetached('hello\n', detached, [pub], 'data')).fingerprint, pair.fingerprint);
  await assert.rejects(verifyDetached('hellO\n', detached, [pub], 'data'), (e: unknown) => e instanceof UserError && /data: bad or untrusted signature/.test(e.message));
});

test('a signature older than its key is dated at the key\'s creation instead of failing', async () => {
  const pair = await generateKeyPair('test signer');
  const key = await readSecretKey(pair.secretKey, 'signer.asc');
  const sig = await signDetached('x', key, new Date(0));
  const parsed = await openpgp.readSignature({ armoredSignature: sig });
  assert.equal(parsed.packets[0]?.created?.getTime(), key.getCreationTime().getTime());
});

test('wrong passphrase and unprotected key without one are user errors', async () => {
  const pair = await generateKeyPair('test signer', 'right');
  await assert.rejects(readSecretKey(pair.secretKey, 'signer.asc', 'wrong'), /wrong passphrase for signer\.asc/);
  await assert.rejects(readSecretKey(pair.secretKey, 'signer.asc'), /signer\.asc is protected by a passphrase/);
  await assert.rejects(readSecretKey('garbage', 'k.asc'), /k\.asc is not an armored OpenPGP secret key/);
});

test('Debian\'s InRelease (signed by archive subkeys) verifies against the keyring in bundles/', async (t) => {
  const lists = '/var/lib/apt/lists';
  const file = readdirSync(lists).find((f) => f.endsWith('_dists_bookworm_InRelease'));
  assert.ok(file, 'apt-get update has run on this machine (scripts/test.sh makes sure)');
  const keys = (await openpgp.readKeys({ binaryKeys: readFileSync(DEBIAN_KEYRING) })).map((k) => k.toPublic());
  const { text, fingerprint } = await verifyCleartext(readFileSync(join(lists, file), 'utf8'), keys, file);
  assert.match(text, /^Origin: Debian/m);
  assert.match(fingerprint, /^[0-9A-F]{40}$/);
  t.diagnostic(`signed by ${fingerprint}`);
});
