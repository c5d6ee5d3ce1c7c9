import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseWwwAuthenticate } from '../../src/core/oci/auth.js';
import { formatReference, manifestReference, parseReference } from '../../src/core/oci/reference.js';
import { UserError } from '../../src/util/errors.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('parseReference', () => {
  const cases: Array<[string, string, { registry: string; repository: string; tag?: string; digest?: string }]> = [
    ['busybox', 'docker.io/library/busybox:latest', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['flannel/flannel:v0.26.5', 'docker.io/flannel/flannel:v0.26.5', { registry: 'docker.io', repository: 'flannel/flannel', tag: 'v0.26.5' }],
    ['index.docker.io/library/nginx:1.27', 'docker.io/library/nginx:1.27', { registry: 'docker.io', repository: 'library/nginx', tag: '1.27' }],
    ['ghcr.io/flannel-io/flannel:v0.26.5', 'ghcr.io/flannel-io/flannel:v0.26.5', { registry: 'ghcr.io', repository: 'flannel-io/flannel', tag: 'v0.26.5' }],
    ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10', { registry: 'registry.k8s.io', repository: 'pause', tag: '3.10' }],
    ['registry.k8s.io/coredns/coredns:v1.11.3', 'registry.k8s.io/coredns/coredns:v1.11.3', { registry: 'registry.k8s.io', repository: 'coredns/coredns', tag: 'v1.11.3' }],
    [`localhost:5000/pause@${DIGEST}`, `localhost:5000/pause@${DIGEST}`, { registry: 'localhost:5000', repository: 'pause', digest: DIGEST }],
    [`10.0.0.5:5000/etcd:3.5.16-0@${DIGEST}`, `10.0.0.5:5000/etcd:3.5.16-0@${DIGEST}`, { registry: '10.0.0.5:5000', repository: 'etcd', tag: '3.5.16-0', digest: DIGEST }],
    ['localhost/app', 'localhost/app:latest', { registry: 'localhost', repository: 'app', tag: 'latest' }],
  ];
  for (const [input, formatted, parsed] of cases) {
    test(`${input} → ${formatted}`, () => {
      const ref = parseReference(input);
      assert.deepEqual(ref, parsed);
      assert.equal(formatReference(ref), formatted);
    });
  }

  test('a digest wins over a tag when asking the registry', () => {
    assert.equal(manifestReference(parseReference(`registry.k8s.io/pause:3.10@${DIGEST}`)), DIGEST);
    assert.equal(manifestReference(parseReference('registry.k8s.io/pause:3.10')), '3.10');
  });

  for (const bad of ['', 'Busybox', 'registry.k8s.io/pause:', 'pause@sha256:1234', 'a@b@c', 'registry.k8s.io//pause', 'bad host!/x:1']) {
    test(`rejects '${bad}' with a UserError quoting it`, () => {
      assert.throws(() => parseReference(bad), (err: unknown) => err instanceof UserError && err.message.includes(`'${bad}'`));
    });
  }
});

describe('parseWwwAuthenticate', () => {
  test('reads a Bearer challenge with quoted values containing commas and colons', () => {
    const header = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"';
    assert.deepEqual(parseWwwAuthenticate(header), [
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull,push' } },
    ]);
  });

  test('reads several challenges and unquoted values', () => {
    assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm", Bearer realm=https://ghcr.io/token,service=ghcr.io'), [
      { scheme: 'basic', params: { realm: 'Registry Realm' } },
      { scheme: 'bearer', params: { realm: 'https://ghcr.io/token', service: 'ghcr.io' } },
    ]);
  });

  test('a bare scheme has no parameters', () => {
    assert.deepEqual(parseWwwAuthenticate('Basic'), [{ scheme: 'basic', params: {} }]);
  });
});
