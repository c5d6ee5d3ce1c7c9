/**
 * Differential bundles end to end (`bundle build --since`), against the simulated upstream with its upgrade
 * releases (v1.32.4, v1.33.1): full bundles of v1.32.3 and v1.32.4, then v1.33.1 since the v1.32.4 lock. The
 * builds share one download cache, so each Debian package comes over the network once.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { sha256Of } from '../../src/util/digest.js';
import { runCli } from '../helpers/cli.js';
import { debianMirrorFlags } from '../helpers/debian.js';
import { startUpstream, type Upstream } from '../upstream/index.js';

const EPOCH = '1741737600';

interface Lock {
  kubernetesVersion: string;
  artifacts: { kind: string; name: string; version: string; digest: string; blobs?: string[] }[];
}
interface Built {
  output: string;
  lockFile: string;
  size: number;
  packages: { name: string; version: string }[];
  differential?: { base: { kubernetesVersion: string; lockSha256: string }; carried: { debs: number; blobs: number; files: number; bytes: number } };
}

/** The bundle's members, each with the sha256 its SHA256SUMS gives. */
function members(bundle: string): Map<string, string> {
  const sums = execFileSync('tar', ['-xOf', bundle, 'SHA256SUMS']).toString();
  return new Map(sums.trim().split('\n').map((line) => {
    const [hex, path] = line.split(/\s+\*?/) as [string, string];
    return [path, hex];
  }));
}

describe('differential bundles: v1.33.1 since v1.32.4', () => {
  let upstream: Upstream;
  let dir: string;
  let common: string[];
  const built: Record<string, Built> = {};

  const build = async (version: string, extra: string[]): Promise<Built> => {
    const r = await runCli(['build', version, ...common, ...extra, '--json'], { env: { SOURCE_DATE_EPOCH: EPOCH } });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Built;
  };
  const key = () => join(dir, 'keys/signer.asc');
  const lockOf = (b: Built) => parse(readFileSync(b.lockFile, 'utf8')) as Lock;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kb-diff-'));
    upstream = await startUpstream({ upgrades: true });
    const keygen = await runCli(['keygen', '--out', join(dir, 'keys')]);
    assert.equal(keygen.code, 0, keygen.stderr);
    common = [
      '-t', 'debian-12', '--runtime', 'containerd',
      ...upstream.mirrorFlags.flatMap((m) => ['--mirror', m]),
      ...debianMirrorFlags(),
      '--trust-key', upstream.k8sKeyFile,
      ...upstream.pinFlags.flatMap((p) => ['--pin', p]),
      '--cache', join(dir, 'cache'),
    ];
    for (const version of ['v1.32.3', 'v1.32.4']) built[version] = await build(version, ['--key', key(), '-o', join(dir, `${version}.tar`)]);
    built.diff = await build('v1.33.1', ['--key', key(), '--since', built['v1.32.4']!.lockFile, '-o', join(dir, 'v1.33.1-since-v1.32.4.tar')]);
  });

  after(async () => {
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the upgrade releases build in full: v1.32.4 from the v1.32 repository beside v1.32.3', () => {
    const versions = (b: Built) => new Map(b.packages.map((p) => [p.name, p.version]));
    assert.equal(versions(built['v1.32.3']!).get('kubeadm'), '1.32.3-1.1');
    assert.equal(versions(built['v1.32.4']!).get('kubeadm'), '1.32.4-1.1');
    const images = lockOf(built['v1.32.4']!).artifacts.filter((a) => a.kind === 'image').map((a) => a.name);
    assert.ok(images.includes('registry.k8s.io/kube-apiserver:v1.32.4') && images.includes('registry.k8s.io/etcd:3.5.16-0'), images.join(' '));
    assert.equal(built['v1.32.4']!.differential, undefined);
  });

  test('the differential bundle verifies on its own and says what it is', async () => {
    const bundle = built.diff!.output;
    assert.match(bundle, /v1\.33\.1-since-v1\.32\.4\.tar$/);
    const verify = await runCli(['verify', bundle, '--pubkey', join(dir, 'keys/signer.pub.asc')]);
    assert.equal(verify.code, 0, verify.stderr);
    const lockSha256 = sha256Of(readFileSync(built['v1.32.4']!.lockFile));
    assert.match(verify.stdout, new RegExp(`OK, \\d+ files intact, signed by [0-9A-F]{40}; differential, base v1\\.32\\.4 \\(lock sha256 ${lockSha256}\\)`));
    const inspect = await runCli(['inspect', bundle]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, new RegExp(`Content +differential, base v1\\.32\\.4 \\(lock sha256 ${lockSha256}\\)`));
    const manifest = parse(execFileSync('tar', ['-xOf', bundle, 'bundle.yaml']).toString());
    assert.deepEqual(manifest.base, { kubernetesVersion: 'v1.32.4', lockSha256 });
    const fromBase = manifest.components.images.filter((i: { fromBase?: boolean }) => i.fromBase).map((i: { ref: string }) => i.ref).sort();
    assert.deepEqual(fromBase, ['ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1', 'ghcr.io/flannel-io/flannel:v0.26.5', 'registry.k8s.io/pause:3.10'], 'images the base has whole');
    // the full v1.32.4 bundle reads as full
    const full = await runCli(['inspect', built['v1.32.4']!.output]);
    assert.match(full.stdout, /Content +full/);
  });

  test('it carries nothing the base bundle has, and every new package, image blob and file', () => {
    const base = members(built['v1.32.4']!.output);
    const baseContent = new Set([...base].filter(([path]) => /^(packages\/.*\.deb|images\/blobs\/|manifests\/)/.test(path)).map(([, hex]) => hex));
    const diff = members(built.diff!.output);
    const content = [...diff].filter(([path]) => /^(packages\/.*\.deb|images\/blobs\/|manifests\/)/.test(path));
    assert.deepEqual(content.filter(([, hex]) => baseContent.has(hex)).map(([path]) => path), [], 'no deb, blob or file of the base');

    // what it must carry: every artifact of its (full) lock whose digest the base lock lacks
    const baseLock = lockOf(built['v1.32.4']!);
    const lock = lockOf(built.diff!);
    const digests = (l: Lock, kind: string) => new Set(l.artifacts.filter((a) => a.kind === kind).flatMap((a) => [a.digest, ...(a.blobs ?? [])]));
    const carried = new Set(content.map(([, hex]) => `sha256:${hex}`));
    for (const kind of ['deb', 'image', 'file']) {
      const missing = [...digests(lock, kind)].filter((x) => !digests(baseLock, kind).has(x) && !carried.has(x));
      assert.deepEqual(missing, [], `every new ${kind} digest is carried`);
    }
    const debs = [...diff.keys()].filter((p) => p.endsWith('.deb')).map((p) => p.replace(/^packages\//, '')).sort();
    for (const name of ['kubeadm_1.33.1-1.1_amd64.deb', 'kubelet_1.33.1-1.1_amd64.deb', 'kubectl_1.33.1-1.1_amd64.deb', 'cri-tools_1.33.0-1.1_amd64.deb']) {
      assert.ok(debs.includes(name), `${name} in ${debs.join(' ')}`);
    }
    assert.ok(!debs.some((d) => d.startsWith('containerd_')), 'containerd is the base\'s');
    for (const ref of ['registry.k8s.io/kube-apiserver:v1.33.1', 'registry.k8s.io/coredns/coredns:v1.12.0', 'registry.k8s.io/etcd:3.5.21-0']) {
      const image = lock.artifacts.find((a) => a.name === ref);
      assert.ok(image && diff.has(`images/blobs/sha256/${image.digest.slice(7)}`), `${ref} is carried`);
    }
    // its apt index lists only what it carries
    const packagesIndex = execFileSync('tar', ['-xOf', built.diff!.output, 'packages/Packages']).toString();
    const listed = [...packagesIndex.matchAll(/^Filename: (?:\.\/)?(.+)$/gm)].map((m) => m[1]!.replace(/^packages\//, '')).sort();
    assert.deepEqual(listed, debs);
  });

  test('its lock describes the whole of v1.33.1, so the next --since can name it', () => {
    const lock = lockOf(built.diff!);
    assert.equal(lock.kubernetesVersion, 'v1.33.1');
    const names = new Set(lock.artifacts.map((a) => a.name));
    for (const name of ['kubeadm', 'containerd', 'runc', 'registry.k8s.io/pause:3.10', 'kube-flannel.yml']) assert.ok(names.has(name), name);
  });

  test('it is far smaller than a full bundle', () => {
    const full = statSync(built['v1.32.4']!.output).size;
    const diff = statSync(built.diff!.output).size;
    const d = built.diff!.differential!;
    console.log(`# sizes: full v1.32.4 ${full} bytes; v1.33.1 since v1.32.4 ${diff} bytes (content new to it: ${d.carried.bytes} bytes in ${d.carried.debs} debs, ${d.carried.blobs} blobs, ${d.carried.files} files)`);
    assert.ok(diff * 10 < full, `${diff} vs ${full}`);
    assert.ok(d.carried.bytes > 0 && d.carried.bytes < diff);
  });

  test('--dry-run --since lists what would be carried', async () => {
    const r = await runCli(['build', 'v1.32.4', ...common, '--unsigned', '--dry-run', '--since', built['v1.32.3']!.lockFile], { env: { SOURCE_DATE_EPOCH: EPOCH } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Differential since v1\.32\.3 \(.*v1\.32\.3\.lock\.yaml, lock sha256 [0-9a-f]{64}\): carries 3 packages, \d+ image blobs, 0 files/);
    assert.match(r.stdout, /registry\.k8s\.io\/pause:3\.10 +linux\/amd64 +in base/);
    assert.match(r.stdout, /Dry run: nothing was downloaded/);
    const packages = r.stdout.slice(r.stdout.indexOf('Packages ('), r.stdout.indexOf('Images ('));
    assert.deepEqual([...packages.matchAll(/^(kube\S+) +(\S+) +amd64/gm)].map((m) => `${m[1]} ${m[2]}`), ['kubeadm 1.32.4-1.1', 'kubectl 1.32.4-1.1', 'kubelet 1.32.4-1.1'], 'cri-tools and kubernetes-cni are the same debs');
    assert.doesNotMatch(packages, /containerd/, 'what the base has is not listed');
  });

  test('--since a lock of another architecture set or a newer version is refused, naming the difference', async () => {
    const arm = await runCli(['build', 'v1.33.1', ...common, '-a', 'arm64', '--unsigned', '--dry-run', '--since', built['v1.32.4']!.lockFile]);
    assert.equal(arm.code, 2);
    assert.match(arm.stderr, /--since .*v1\.32\.4\.lock\.yaml cannot be the base of this build:\n +architectures: the base carries amd64, this build arm64/);
    const back = await runCli(['build', 'v1.32.3', ...common, '--unsigned', '--dry-run', '--since', built['v1.32.4']!.lockFile]);
    assert.equal(back.code, 2);
    assert.match(back.stderr, /the base is v1\.32\.4, newer than this build's v1\.32\.3/);
  });
});
