import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { keygen, PUBLIC_KEY_FILE, SECRET_KEY_FILE } from '../../src/core/keygen.js';
import { fingerprintOf, readPublicKey, readSecretKey, signDetached, verifyDetached } from '../../src/core/pgp.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from './bundle-fixture.js';

test('keygen writes a 0600 secret key and a public key with the printed fingerprint', async (t) => {
  const out = join(await tempDir(t), 'keys', 'nested');
  const r = await keygen({ outDir: out, name: 'ops signer' });
  assert.equal(r.secretKeyFile, join(out, SECRET_KEY_FILE));
  assert.equal(r.publicKeyFile, join(out, PUBLIC_KEY_FILE));
  assert.equal((await stat(r.secretKeyFile)).mode & 0o777, 0o600);
  assert.equal((await stat(r.publicKeyFile)).mode & 0o777, 0o644);
  assert.match(r.fingerprint, /^[0-9A-F]{40}$/);

  const secret = await readSecretKey(await readFile(r.secretKeyFile, 'utf8'), r.secretKeyFile);
  const pub = await readPublicKey(await readFile(r.publicKeyFile, 'utf8'), r.publicKeyFile);
  assert.equal(fingerprintOf(secret), r.fingerprint);
  assert.equal(fingerprintOf(pub), r.fingerprint);
  assert.equal(pub.getUserIDs()[0], 'ops signer');
  assert.ok(!(await readFile(r.publicKeyFile, 'utf8')).includes('PRIVATE KEY'));
  const signature = await signDetached('data', secret);
  assert.equal((await verifyDetached('data', signature, [pub], 'test')).fingerprint, r.fingerprint);
});

test('with a passphrase the secret key is protected by it', async (t) => {
  const r = await keygen({ outDir: await tempDir(t), name: 'x', passphrase: 'correct horse' });
  assert.equal(r.passphraseProtected, true);
  const armored = await readFile(r.secretKeyFile, 'utf8');
  await assert.rejects(readSecretKey(armored, 'signer.asc'), /protected by a passphrase/);
  await assert.rejects(readSecretKey(armored, 'signer.asc', 'wrong'), /wrong passphrase/);
  assert.equal(fingerprintOf(await readSecretKey(armored, 'signer.asc', 'correct horse')), r.fingerprint);
});

test('keygen refuses to overwrite either file and leaves them untouched', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, PUBLIC_KEY_FILE), 'old public key');
  await assert.rejects(keygen({ outDir: dir, name: 'x' }), (err: unknown) => err instanceof UserError && err.message.includes(`${join(dir, PUBLIC_KEY_FILE)} already exists`));
  assert.equal(await readFile(join(dir, PUBLIC_KEY_FILE), 'utf8'), 'old public key');
  await assert.rejects(stat(join(dir, SECRET_KEY_FILE)), { code: 'ENOENT' });

  const again = await tempDir(t);
  const first = await keygen({ outDir: again, name: 'x' });
  const before = await readFile(first.secretKeyFile, 'utf8');
  await assert.rejects(keygen({ outDir: again, name: 'x' }), /signer\.asc already exists/);
  assert.equal(await readFile(first.secretKeyFile, 'utf8'), before);
});
