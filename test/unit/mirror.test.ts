import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMirrors, resolveUrl } from '../../src/core/mirror.js';
import { UserError } from '../../src/util/errors.js';

test('URL mirrors replace the longest prefix at a path boundary', () => {
  const m = parseMirrors(['https://pkgs.k8s.io=http://127.0.0.1:8081', 'https://pkgs.k8s.io/core:/stable:/v1.31=http://10.0.0.5/old/']);
  assert.equal(resolveUrl(m, 'https://pkgs.k8s.io/core:/stable:/v1.32/deb/InRelease'), 'http://127.0.0.1:8081/core:/stable:/v1.32/deb/InRelease');
  assert.equal(resolveUrl(m, 'https://pkgs.k8s.io/core:/stable:/v1.31/deb/InRelease'), 'http://10.0.0.5/old/deb/InRelease');
  // no match inside a path segment
  assert.equal(resolveUrl(m, 'https://pkgs.k8s.io.evil/x'), 'https://pkgs.k8s.io.evil/x');
  assert.equal(resolveUrl(m, 'https://github.com/x'), 'https://github.com/x');
});

test('registry mirrors map a host to an endpoint base URL', () => {
  const m = parseMirrors(['registry.k8s.io=http://127.0.0.1:5001', 'ghcr.io=https://mirror.local:8443/']);
  assert.deepEqual(Object.fromEntries(m.registries), { 'registry.k8s.io': 'http://127.0.0.1:5001', 'ghcr.io': 'https://mirror.local:8443' });
});

test('bad --mirror values are user errors that quote the flag', () => {
  for (const bad of ['registry.k8s.io', '=http://x', 'registry.k8s.io=', 'ftp://a=http://b', 'registry.k8s.io=ftp://b', 'a b=http://x', 'registry.k8s.io=http://x/path', 'https://a=notaurl']) {
    assert.throws(() => parseMirrors([bad]), (err: unknown) => err instanceof UserError && err.message.includes('--mirror'), bad);
  }
  assert.throws(() => parseMirrors(['docker.io=http://a', 'docker.io=http://b']), /mirrored twice/);
});

test('a mirror URL\'s password is used for fetching but never shown: errors and shownUrl redact it', async () => {
  const { shownUrl } = await import('../../src/core/mirror.js');
  const m = parseMirrors(['https://pkgs.k8s.io=https://me:s3cret@mirror.example/k8s']);
  assert.equal(resolveUrl(m, 'https://pkgs.k8s.io/core:/stable:/v1.32/deb/InRelease'), 'https://me:s3cret@mirror.example/k8s/core:/stable:/v1.32/deb/InRelease');
  assert.equal(shownUrl(m, 'https://pkgs.k8s.io/core:/stable:/v1.32/deb/InRelease'), 'https://***@mirror.example/k8s/core:/stable:/v1.32/deb/InRelease');
  for (const bad of ['registry.k8s.io=http://me:s3cret@x/path', 'https://a=ftp://me:s3cret@b', 'https://me:s3cret@a']) {
    assert.throws(() => parseMirrors([bad]), (err: unknown) => err instanceof UserError && !`${err.message} ${err.hint}`.includes('s3cret'), bad);
  }
});

test('a registry mirror cannot carry credentials (they would be silently ignored)', () => {
  assert.throws(() => parseMirrors(['registry.k8s.io=https://me:s3cret@harbor.example']), (err: unknown) => err instanceof UserError && /cannot carry a user name or password/.test(err.message) && !err.message.includes('s3cret'));
});
