import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseKubeVersion } from '../../src/core/kube-version.js';
import { controlPlaneImagesFromTable, loadComponents, loadTarget, parseArch, parseRuntimes, targetNames } from '../../src/core/definitions.js';
import { UserError } from '../../src/util/errors.js';

test('Kubernetes versions: v-prefixed or plain, exact releases only', () => {
  assert.deepEqual(parseKubeVersion('v1.32.3'), { major: 1, minor: 32, patch: 3, plain: '1.32.3', tag: 'v1.32.3', minorTag: 'v1.32' });
  assert.equal(parseKubeVersion('1.31.7').tag, 'v1.31.7');
  for (const bad of ['1.32', 'v1.32.3-rc.1', 'latest', 'v1.32.x', '']) {
    assert.throws(() => parseKubeVersion(bad), (e: unknown) => e instanceof UserError && /not a Kubernetes release version/.test(e.message), bad);
  }
  assert.throws(() => parseKubeVersion('v1.20.0'), /not supported/);
});

test('the image table gives kubeadm\'s list for v1.32.3 in kubeadm\'s order', () => {
  assert.deepEqual(controlPlaneImagesFromTable(parseKubeVersion('v1.32.3')), [
    'registry.k8s.io/kube-apiserver:v1.32.3',
    'registry.k8s.io/kube-controller-manager:v1.32.3',
    'registry.k8s.io/kube-scheduler:v1.32.3',
    'registry.k8s.io/kube-proxy:v1.32.3',
    'registry.k8s.io/coredns/coredns:v1.11.3',
    'registry.k8s.io/pause:3.10',
    'registry.k8s.io/etcd:3.5.16-0',
  ]);
  assert.equal(controlPlaneImagesFromTable(parseKubeVersion('v1.32.11'))?.at(-1), 'registry.k8s.io/etcd:3.5.24-0');
  assert.equal(controlPlaneImagesFromTable(parseKubeVersion('v1.34.0'))?.[5], 'registry.k8s.io/pause:3.10.1');
  assert.equal(controlPlaneImagesFromTable(parseKubeVersion('v1.32.99')), undefined);
});

test('targets, arches and runtimes', () => {
  assert.deepEqual(targetNames(), ['debian-12', 'debian-13', 'ubuntu-22.04', 'ubuntu-24.04']);
  const debian = loadTarget('debian-12');
  assert.equal(debian.codename, 'bookworm');
  assert.ok(existsSync(debian.keyring), debian.keyring);
  assert.throws(() => loadTarget('centos-7'), (e: unknown) => e instanceof UserError && /unknown target 'centos-7'/.test(e.message) && /debian-12/.test(e.hint ?? ''));
  assert.equal(parseArch('arm64'), 'arm64');
  assert.throws(() => parseArch('x86_64'), /unknown architecture 'x86_64'/);
  assert.deepEqual(parseRuntimes('docker,containerd'), ['containerd', 'docker']);
  assert.throws(() => parseRuntimes('crio'), /unknown runtime 'crio'/);
  assert.equal(loadComponents().flannel.version, 'v0.26.5');
});

test('debian-13: trixie\'s suites, checked with a keyring that holds the trixie archive, security and release keys', () => {
  const trixie = loadTarget('debian-13');
  assert.equal(trixie.codename, 'trixie');
  assert.deepEqual(trixie.sources.flatMap((s) => s.suites), ['trixie', 'trixie-updates', 'trixie-security']);
  const listed = execFileSync('gpg', ['--show-keys', '--with-colons', trixie.keyring], { encoding: 'utf8' });
  for (const fingerprint of [
    '04B54C3CDCA79751B16BC6B5225629DF75B188BD', // Debian Archive Automatic Signing Key (13/trixie)
    '5E04A1E3223A19A20706E20F9904613D4CCE68C6', // Debian Security Archive Automatic Signing Key (13/trixie)
    '41587F7DB8C774BCCF131416762F67A0B2C39DE4', // Debian Stable Release Key (13/trixie)
  ]) {
    assert.match(listed, new RegExp(`^fpr:+${fingerprint}:`, 'm'), fingerprint);
  }
});

test('the Ubuntu targets: main and universe of the three pockets, amd64 from the archive and arm64 from ports, the archive key pinned', () => {
  for (const [name, codename, minimalHost] of [['ubuntu-22.04', 'jammy', undefined], ['ubuntu-24.04', 'noble', ['usr-is-merged']]] as const) {
    const t = loadTarget(name);
    assert.equal(t.os, 'ubuntu', name);
    assert.equal(t.codename, codename);
    assert.deepEqual(
      t.sources.map((s) => [s.url, s.arches, s.suites, s.components]),
      [
        ['http://archive.ubuntu.com/ubuntu', ['amd64'], [codename, `${codename}-updates`, `${codename}-security`], ['main', 'universe']],
        ['http://ports.ubuntu.com/ubuntu-ports', ['arm64'], [codename, `${codename}-updates`, `${codename}-security`], ['main', 'universe']],
      ],
      name,
    );
    // read from the build machine (ubuntu-keyring), narrowed to the archive signing key
    assert.equal(t.keyring, '/usr/share/keyrings/ubuntu-archive-keyring.gpg');
    assert.deepEqual(t.keyFingerprints, ['F6ECB3762474EDA9D21B7022871920D1991BC93C']);
    // cri-dockerd 0.3.16 publishes an Ubuntu jammy build only; noble takes it too
    assert.equal(t.criDockerdAsset, 'ubuntu-jammy');
    assert.deepEqual(t.minimalHost, minimalHost);
    assert.deepEqual(t.packages.docker, ['docker.io']);
  }
});
