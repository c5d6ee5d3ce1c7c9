/**
 * A small (few KB) but complete bundle for the bundle-* tests: a package, an OCI blob, a manifest, an
 * executable installer script, a file (another installer script) packed from disk with a known hash, and a path long enough to need pax.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as openpgp from 'openpgp';
import { generateKeyPair, readPublicKey, readSecretKey } from '../../src/core/pgp.js';
import YAML from 'yaml';
import { manifestToYaml, type BundleManifest, type ManifestContent } from '../../src/core/bundle/manifest.js';
import { packBundle, type PackEntry } from '../../src/core/bundle/pack.js';
import { imageBlobFile, installerFile, manifestFile, memberMode, OCI_INDEX_FILE, OCI_LAYOUT_FILE, packageFile } from '../../src/core/bundle/paths.js';
import { encodeHeader, endOfArchive, paddingFor } from '../../src/core/bundle/tar.js';

export const MTIME = new Date('2025-03-01T12:00:00Z');

export interface TestKey {
  secret: openpgp.PrivateKey;
  public: openpgp.PublicKey;
  publicArmored: string;
  fingerprint: string;
}

export async function makeKey(name = 'bundle test'): Promise<TestKey> {
  // Dated before MTIME so signatures carry MTIME itself.
  const pair = await generateKeyPair(name, undefined, new Date('2025-01-01T00:00:00Z'));
  return {
    secret: await readSecretKey(pair.secretKey, 'test key'),
    public: await readPublicKey(pair.publicKey, 'test key'),
    publicArmored: pair.publicKey,
    fingerprint: pair.fingerprint,
  };
}

export async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-bundle-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const sha256 = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/** Deterministic filler bytes, different per seed. */
function filler(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 32) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, i);
  return out;
}

export const DEB = packageFile('kubeadm_1.32.3-1.1_amd64.deb');
export const FLANNEL = manifestFile('kube-flannel.yml');
export const INSTALL_SH = installerFile('install.sh');
export const LONG_PATH = manifestFile(`${'a-rather-long-name-'.repeat(6)}.yaml`);
export const FROM_DISK = installerFile('from-disk.sh');

export interface Fixture {
  entries: PackEntry[];
  manifest: ManifestContent;
}

/** Entries and manifest; `dir` receives the one entry that is packed from a file on disk. */
export async function fixture(dir: string): Promise<Fixture> {
  const deb = filler('deb', 1500);
  const blob = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}');
  const digest = `sha256:${sha256(blob)}`;
  const flannel = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-flannel\n';
  const script = '#!/bin/sh\necho installing\n';
  const diskFile = join(dir, 'kubeadm.bin');
  const diskBytes = filler('kubeadm', 3000);
  await writeFile(diskFile, diskBytes);
  const text = (s: string): { bytes: Uint8Array } => ({ bytes: Buffer.from(s) });

  const entries: PackEntry[] = [
    { path: DEB, source: { bytes: deb } },
    { path: packageFile('Packages'), source: text('Package: kubeadm\nVersion: 1.32.3-1.1\n') },
    { path: OCI_LAYOUT_FILE, source: text('{"imageLayoutVersion":"1.0.0"}') },
    { path: OCI_INDEX_FILE, source: text(JSON.stringify({ schemaVersion: 2, manifests: [{ digest }] })) },
    { path: imageBlobFile(digest), source: { bytes: blob } },
    { path: FLANNEL, source: text(flannel) },
    { path: LONG_PATH, source: text('long: true\n') },
    { path: INSTALL_SH, source: text(script) },
    { path: FROM_DISK, source: { file: diskFile }, sha256: sha256(diskBytes) },
  ];
  const manifest: ManifestContent = {
    kubernetesVersion: 'v1.32.3',
    target: 'ubuntu-24.04',
    arches: ['amd64'],
    runtimes: ['containerd'],
    components: {
      packages: [{ name: 'kubeadm', version: '1.32.3-1.1', arch: 'amd64', filename: DEB, size: deb.length, sha256: sha256(deb), url: 'https://pkgs.k8s.io/core:/stable:/v1.32/deb/amd64/kubeadm_1.32.3-1.1_amd64.deb' }],
      images: [{ ref: 'registry.k8s.io/pause:3.10', digest, mediaType: 'application/vnd.oci.image.index.v1+json', platforms: ['linux/amd64'], size: blob.length }],
      files: [
        { path: FLANNEL, url: 'https://github.com/flannel-io/flannel/releases/download/v0.26.4/kube-flannel.yml', sha256: sha256(flannel), size: flannel.length, kind: 'manifest' },
        { path: INSTALL_SH, url: 'https://example.invalid/install.sh', sha256: sha256(script), size: script.length, kind: 'installer' },
      ],
    },
  };
  return { entries, manifest };
}

/** Pack the fixture into `dir/name`; unsigned when `key` is null. */
export async function packFixture(dir: string, key: TestKey | null, name = 'bundle.tar'): Promise<string> {
  const { entries, manifest } = await fixture(dir);
  const output = join(dir, name);
  await packBundle({ output, entries, manifest, mtime: MTIME, ...(key ? { signingKey: key.secret } : {}) });
  return output;
}

export interface TarMember {
  path: string;
  type?: 'file' | 'directory';
  body?: Buffer;
  /** default: the mode the packer gives this path */
  mode?: number;
}

/** The tar bytes of `members` in the packer's own header form: a crafted archive only the rules can refuse. */
export function canonicalTar(members: readonly TarMember[], end = true): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const type = m.type ?? 'file';
    const body = m.body ?? Buffer.alloc(0);
    parts.push(encodeHeader({ path: m.path, type, size: body.length, mode: m.mode ?? memberMode(m.path, type), mtime: MTIME }), body, Buffer.alloc(paddingFor(body.length)));
  }
  if (end) parts.push(endOfArchive());
  return Buffer.concat(parts);
}

/** Append members in the packer's header form (in place of the end-of-archive blocks, as `tar rf` would). */
export async function appendCanonical(bundle: string, members: readonly TarMember[]): Promise<void> {
  const bytes = await readFile(bundle);
  await writeFile(bundle, Buffer.concat([bytes.subarray(0, bytes.length - 1024), canonicalTar(members)]));
}

/** Pack the files of an extracted bundle again, in the given order and in the packer's header form. */
export async function repackCanonical(dir: string, output: string, members: readonly string[]): Promise<void> {
  const out: TarMember[] = [];
  for (const m of members) {
    if (m.endsWith('/')) out.push({ path: m.slice(0, -1), type: 'directory' });
    else out.push({ path: m, body: await readFile(join(dir, m)) });
  }
  await writeFile(output, canonicalTar(out));
}

/** bundle.yaml text of `m` with one edit made to its parsed document: for tests of what reading refuses. */
export function editedManifestText(m: BundleManifest, edit: (doc: any) => void): string {
  const doc = YAML.parse(manifestToYaml(m));
  edit(doc);
  return YAML.stringify(doc);
}
