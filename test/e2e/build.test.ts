/**
 * `bundle build` end to end: the simulated upstream (pkgs.k8s.io, registries, GitHub) plus the real Debian
 * archive this machine's apt uses, through the CLI as an operator runs it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, openSync, readSync, writeSync, closeSync, statSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { startUpstream, type Upstream } from '../upstream/index.js';
import { runCli } from '../helpers/cli.js';
import { debianMirrorFlags } from '../helpers/debian.js';

const EPOCH = '1741737600'; // 2025-03-12

describe('bundle build v1.32.3 for debian-12', () => {
  let upstream: Upstream;
  let dir: string;
  let common: string[];
  let bundle: string;
  let first: { fetch: { bytesFetched: number }; lockFile: string; packages: { name: string; version: string }[] };

  const build = (extra: string[], env: Record<string, string> = {}) =>
    runCli(['build', 'v1.32.3', ...common, ...extra], { env: { SOURCE_DATE_EPOCH: EPOCH, ...env } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-build-'));
    upstream = await startUpstream();
    const keygen = await runCli(['keygen', '--out', join(dir, 'keys')]);
    assert.equal(keygen.code, 0, keygen.stderr);
    common = [
      '-t', 'debian-12',
      ...upstream.mirrorFlags.flatMap((m) => ['--mirror', m]),
      ...debianMirrorFlags(),
      '--trust-key', upstream.k8sKeyFile,
      ...upstream.pinFlags.flatMap((p) => ['--pin', p]),
      '--cache', join(dir, 'cache'),
    ];
    bundle = join(dir, 'out', 'bundle.tar');
  });

  after(async () => {
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a cold build writes a signed bundle and its lock file', async () => {
    const r = await build(['--key', join(dir, 'keys/signer.asc'), '-o', bundle, '--json']);
    assert.equal(r.code, 0, r.stderr);
    first = JSON.parse(r.stdout);
    assert.ok(first.fetch.bytesFetched > 1_000_000, 'content came over the network');
    assert.equal((first as unknown as { reusedBundle: boolean }).reusedBundle, false);
    assert.ok(existsSync(bundle) && existsSync(first.lockFile));
    assert.ok(!existsSync(`${bundle}.partial`));
    const names = new Map(first.packages.map((p) => [p.name, p.version]));
    assert.equal(names.get('kubeadm'), '1.32.3-1.1');
    assert.equal(names.get('kubelet'), '1.32.3-1.1');
    assert.equal(names.get('kubernetes-cni'), '1.6.0-1.1');
    assert.equal(names.get('cri-tools'), '1.32.0-1.1');
    for (const dep of ['containerd', 'runc', 'docker-registry', 'docker.io', 'cri-dockerd', 'conntrack', 'iptables', 'ethtool']) {
      assert.ok(names.has(dep), `${dep} is in the closure`);
    }
    assert.ok(!names.has('libc6'), 'what every minimal host has is left out');

    // packages start downloading while Debian's index is still being read: none but those the bundle carries
    const lock = parse(readFileSync(first.lockFile, 'utf8')) as { artifacts: { kind: string; digest: string }[] };
    const locked = new Set(lock.artifacts.filter((a) => a.kind === 'deb').map((a) => a.digest.replace('sha256:', '')));
    const blobs = join(dir, 'cache', 'blobs', 'sha256');
    const debsInCache = readdirSync(blobs).filter((hex) => {
      const head = Buffer.alloc(8);
      const fd = openSync(join(blobs, hex), 'r');
      readSync(fd, head, 0, 8, 0);
      closeSync(fd);
      return head.toString('latin1') === '!<arch>\n';
    });
    assert.ok(debsInCache.length >= locked.size - 1, 'the cache holds the debs (cri-dockerd may come from elsewhere)');
    assert.deepEqual(debsInCache.filter((hex) => !locked.has(hex)), [], 'every deb fetched is in the bundle');
  });

  test('bundle verify passes with the signer\'s key and fails with another', async () => {
    const ok = await runCli(['verify', bundle, '--pubkey', join(dir, 'keys/signer.pub.asc')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /OK, \d+ files intact, signed by [0-9A-F]{40}/);
    await runCli(['keygen', '--out', join(dir, 'other')]);
    const bad = await runCli(['verify', bundle, '--pubkey', join(dir, 'other/signer.pub.asc')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /signature/i);
  });

  test('standard tools check and read it: gpgv, sha256sum -c, skopeo, apt\'s index', async () => {
    const x = join(dir, 'extract');
    execFileSync('mkdir', ['-p', x]);
    execFileSync('tar', ['xf', bundle, '-C', x]);
    writeFileSync(join(x, 'k.gpg'), execFileSync('gpg', ['--dearmor'], { input: readFileSync(join(dir, 'keys/signer.pub.asc')) }));
    execFileSync('gpgv', ['--keyring', join(x, 'k.gpg'), 'SHA256SUMS.asc', 'SHA256SUMS'], { cwd: x, stdio: 'pipe' });
    execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: x, stdio: 'pipe' });
    execFileSync('gpgv', ['--keyring', join(x, 'k.gpg'), 'packages/InRelease'], { cwd: x, stdio: 'pipe' });
    const manifest = parse(readFileSync(join(x, 'bundle.yaml'), 'utf8'));
    assert.equal(manifest.components.images.length, 9);
    for (const image of manifest.components.images as { ref: string; digest: string; mediaType: string }[]) {
      const raw = execFileSync('skopeo', ['inspect', '--raw', `oci:${join(x, 'images')}:${image.ref}`]).toString();
      assert.ok(JSON.parse(raw).schemaVersion === 2, image.ref);
      if (image.mediaType.includes('oci')) {
        const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${join(x, 'images')}:${image.ref}`]).toString());
        assert.equal(inspected.Digest, image.digest, image.ref);
      }
    }
    const index = JSON.parse(readFileSync(join(x, 'images/index.json'), 'utf8'));
    const names = index.manifests.map((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name']);
    assert.ok(names.includes('registry.k8s.io/pause:3.10'), 'full upstream reference, never rewritten');
    assert.ok(names.includes('ghcr.io/flannel-io/flannel:v0.26.5'));
    assert.match(readFileSync(join(x, 'manifests/kube-flannel.yml'), 'utf8'), /image: ghcr\.io\/flannel-io\/flannel:v0\.26\.5/);
  });

  test('a warm rebuild fetches no content and is byte-identical', async () => {
    const again = join(dir, 'out', 'again.tar');
    const r = await build(['--key', join(dir, 'keys/signer.asc'), '-o', again, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const second = JSON.parse(r.stdout);
    assert.equal(second.fetch.bytesFetched, 0);
    assert.equal(second.reusedBundle, true, 'the packed bundle is reused from the cache, not written again');
    assert.ok(readFileSync(again).equals(readFileSync(bundle)));
  });

  test('flipping any one byte makes verify fail, naming the file', async () => {
    const size = statSync(bundle).size;
    for (const offset of [Math.floor(size / 2), size - 2048, 700]) {
      const copy = join(dir, `flip-${offset}.tar`);
      copyFileSync(bundle, copy);
      const fd = openSync(copy, 'r+');
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, offset);
      b[0] = (b[0] ?? 0) ^ 0x01;
      writeSync(fd, b, 0, 1, offset);
      closeSync(fd);
      const r = await runCli(['verify', copy, '--pubkey', join(dir, 'keys/signer.pub.asc')]);
      assert.equal(r.code, 2, `offset ${offset}: ${r.stdout}`);
      assert.match(r.stderr, /(changed|signature|corrupt|header|SHA256SUMS)/i, r.stderr);
      rmSync(copy);
    }
  });

  test('--lock rebuilds the locked set and refuses a different one, naming it', async () => {
    const same = await build(['--key', join(dir, 'keys/signer.asc'), '-o', join(dir, 'out', 'locked.tar'), '--lock', first.lockFile]);
    assert.equal(same.code, 0, same.stderr);
    const lock = readFileSync(first.lockFile, 'utf8');
    const tampered = join(dir, 'tampered.lock.yaml');
    writeFileSync(tampered, lock.replace(/(name: kubeadm\n(?:.*\n)*?\s+digest: sha256:)[0-9a-f]{4}/, '$1' + 'dead'));
    const r = await build(['--unsigned', '-o', join(dir, 'out', 'x.tar'), '--lock', tampered]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /differs from lock file .*tampered\.lock\.yaml/);
    assert.match(r.stderr, /deb kubeadm amd64 1\.32\.3-1\.1: locked digest sha256:dead/);
    assert.ok(!existsSync(join(dir, 'out', 'x.tar')));
  });

  test('--dry-run lists versions and sizes and writes nothing', async () => {
    const out = join(dir, 'out', 'dry.tar');
    const r = await build(['--unsigned', '--dry-run', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kubeadm\s+1\.32\.3-1\.1\s+amd64\s+[\d.]+ KiB\s+pkgs\.k8s\.io v1\.32/);
    assert.match(r.stdout, /registry\.k8s\.io\/pause:3\.10\s+linux\/amd64/);
    assert.ok(!existsSync(out));
  });

  test('the older minor resolves from its own repository', async () => {
    const r = await runCli(['build', 'v1.31.7', ...common, '--unsigned', '--dry-run', '--runtime', 'containerd', '--json'], { env: { SOURCE_DATE_EPOCH: EPOCH } });
    // v1.31.7's images are not in the simulated registries: the dry run must fail on them, after the packages resolved.
    if (r.code === 0) {
      const result = JSON.parse(r.stdout);
      assert.equal(result.packages.find((p: { name: string }) => p.name === 'kubeadm').version, '1.31.7-1.1');
    } else {
      assert.equal(r.code, 2);
      // v1.31.7's images from the pinned table: v1.31.7 and etcd 3.5.15-0 are not in the registries
      assert.match(r.stderr, /registry\.k8s\.io\/[a-z/-]+:(v1\.31\.7|3\.5\.15-0): .* HTTP 404/, 'packages resolved; it stopped at the images');
    }
  });

  test('operator errors exit 2 with one line naming what is wrong', async () => {
    const cases: [string[], RegExp][] = [
      [['build', 'v1.99.0', ...common, '--unsigned'], /no package repository for v1\.99/],
      [['build', 'v1.32.99', ...common, '--unsigned'], /Kubernetes v1\.32\.99 is not in .*core:\/stable:\/v1\.32\/deb\/ \(kubeadm there: 1\.32\.3\)/],
      [['build', '1.32', ...common, '--unsigned'], /'1\.32' is not a Kubernetes release version/],
      [['build', 'v1.32.3', ...common, '--unsigned', '-t', 'centos-7'], /argument 'centos-7' is invalid/],
      [['build', 'v1.32.3', ...common, '--unsigned', '-a', 'riscv64'], /unknown architecture 'riscv64'/],
      [['build', 'v1.32.3', ...common, '--unsigned', '--mirror', 'nonsense'], /--mirror 'nonsense' is not <from>=<to>/],
      [['build', 'v1.32.3', ...common], /no signing key: pass --key/],
      [['build', 'v1.32.3', ...common, '--unsigned', '--dry-run', '--image', 'registry.k8s.io/does-not-exist:1.0'], /registry\.k8s\.io\/does-not-exist:1\.0.*(404|not found|MANIFEST_UNKNOWN|NAME_UNKNOWN)/i],
    ];
    for (const [args, expected] of cases) {
      const r = await runCli(args, { env: { SOURCE_DATE_EPOCH: EPOCH } });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, expected, args.join(' '));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for an operator error');
    }
  });

  test('release files are used only with a pinned sha256, and a mirror\'s password is never printed', async () => {
    // without the pins, and reaching the simulated GitHub through a mirror URL with credentials (it ignores them)
    const unpinned = [
      '-t', 'debian-12',
      ...upstream.mirrorFlags.filter((m) => !m.startsWith('https://github.com=')).flatMap((m) => ['--mirror', m]),
      ...debianMirrorFlags(),
      '--trust-key', upstream.k8sKeyFile,
      '--cache', join(dir, 'cache'),
    ];
    const manifestUrl = 'https://github.com/flannel-io/flannel/releases/download/v0.26.5/kube-flannel.yml';
    const served = upstream.pinFlags.find((p) => p.startsWith(`${manifestUrl}=`))?.split('=sha256:')[1];
    assert.ok(served, 'the simulated GitHub pins its flannel manifest');
    const secretMirror = ['--mirror', `https://github.com=${upstream.github.replace('http://', 'http://builder:s3cret@')}`];
    const base = ['build', 'v1.32.3', ...unpinned, ...secretMirror, '--runtime', 'containerd', '--unsigned', '--dry-run'];

    const none = await runCli(base, { env: { SOURCE_DATE_EPOCH: EPOCH } });
    assert.equal(none.code, 2, none.stderr);
    assert.ok(none.stderr.includes(`error: ${manifestUrl} (via http://***@`), none.stderr);
    assert.ok(none.stderr.includes(`has no pinned sha256; the download has sha256:${served}`), none.stderr);
    assert.match(none.stderr, /hint: check that digest against the upstream release, then add it under releaseDigests in .*bundles\/components\.yaml/);

    const wrong = await runCli([...base, '--pin', `${manifestUrl}=sha256:${'0'.repeat(64)}`], { env: { SOURCE_DATE_EPOCH: EPOCH } });
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.ok(wrong.stderr.includes(`has sha256 ${served}, expected ${'0'.repeat(64)} (pinned in --pin)`), wrong.stderr);

    const out = join(dir, 'out', 'through-secret-mirror.tar');
    const right = await runCli([...base.filter((a) => a !== '--dry-run'), '--pin', `${manifestUrl}=sha256:${served}`, '-o', out, '--json'], { env: { SOURCE_DATE_EPOCH: EPOCH } });
    assert.equal(right.code, 0, right.stderr);
    for (const r of [none, wrong, right]) assert.ok(!`${r.stdout}${r.stderr}`.includes('s3cret'), 'the password never shows');
    const lockText = readFileSync(JSON.parse(right.stdout).lockFile, 'utf8');
    const manifestText = execFileSync('tar', ['-xOf', out, 'bundle.yaml']).toString();
    for (const text of [lockText, manifestText]) {
      assert.ok(text.includes(manifestUrl), 'upstream names kept');
      assert.ok(!text.includes('s3cret') && !text.includes('builder'), 'no credentials in the lock file or bundle.yaml');
    }
  });

  test('a full disk is an operator error naming the file, for the cache and for the bundle, and leaves no partial bundle', async () => {
    const tiny = join(dir, 'tiny');
    execFileSync('mkdir', ['-p', tiny]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', tiny]);
    try {
      const cacheFull = await runCli(['build', 'v1.32.3', ...common.filter((a, i) => a !== '--cache' && common[i - 1] !== '--cache'), '--cache', join(tiny, 'cache'), '--unsigned', '-o', join(dir, 'out', 'never.tar')], { env: { SOURCE_DATE_EPOCH: EPOCH } });
      assert.equal(cacheFull.code, 2, cacheFull.stderr);
      assert.match(cacheFull.stderr, /no space left writing .*tiny\/cache/);
      const outputFull = await build(['--unsigned', '-o', join(tiny, 'bundle.tar')]);
      assert.equal(outputFull.code, 2, outputFull.stderr);
      assert.match(outputFull.stderr, /no space left writing .*tiny\/bundle\.tar \(the bundle/);
      assert.deepEqual(readdirSync(tiny).filter((f) => f.startsWith('bundle.tar')), []);
    } finally {
      execFileSync('umount', [tiny]);
    }
  });

  test('a protected key with the wrong passphrase fails before any download', async () => {
    const keys = join(dir, 'protected');
    const made = await runCli(['keygen', '--out', keys], { env: { KUBE_BUNDLE_PASSPHRASE: 'right' } });
    assert.equal(made.code, 0, made.stderr);
    const r = await build(['--key', join(keys, 'signer.asc'), '-o', join(dir, 'out', 'p.tar')], { KUBE_BUNDLE_PASSPHRASE: 'wrong' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /wrong passphrase for .*signer\.asc/);
  });
});
