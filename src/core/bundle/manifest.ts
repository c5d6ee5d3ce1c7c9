/**
 * bundle.yaml: what a bundle carries and where each piece came from.
 *
 * Written once by pack.ts (which stamps `created` and `signer`), read by verify, inspect and install.
 * Reading validates every field, so the rest of the code can trust the type.
 */
import YAML from 'yaml';
import { UserError } from '../../util/errors.js';
import { imageBlobFile, unsafePathReason } from './paths.js';
import { SHA256_DIGEST, SHA256_HEX } from '../../util/digest.js';

export const MANIFEST_API_VERSION = 'kube-bundle.dev/v1alpha1';
export const MANIFEST_KIND = 'Bundle';

export interface PackageComponent {
  name: string;
  version: string;
  arch: string;
  /** path in the bundle, e.g. packages/kubeadm_1.32.3-1.1_amd64.deb */
  filename: string;
  size: number;
  sha256: string;
  /** where it was downloaded from */
  url: string;
}

export interface ImageComponent {
  /** upstream reference, e.g. registry.k8s.io/kube-apiserver:v1.32.3 */
  ref: string;
  /** digest of the index or manifest stored in images/ */
  digest: string;
  mediaType: string;
  /** e.g. linux/amd64 */
  platforms: string[];
  /** sum of the sizes of the image's unique blobs (in a differential bundle: of those it carries) */
  size: number;
  /**
   * Differential bundles only: the image's top-level document (and so every blob of it) is not in this bundle but
   * in its base's. Absent otherwise.
   */
  fromBase?: true;
}

export type FileKind = 'manifest' | 'release-file' | 'installer';
export const FILE_KINDS: readonly FileKind[] = ['manifest', 'release-file', 'installer'];

export interface FileComponent {
  /** path in the bundle */
  path: string;
  url: string;
  sha256: string;
  size: number;
  kind: FileKind;
}

/**
 * What a differential bundle is built against (`bundle build --since <lock>`): the base bundle's Kubernetes version
 * and the sha256 of its lock file's bytes. A bundle without it is a full bundle.
 */
export interface ManifestBase {
  kubernetesVersion: string;
  lockSha256: string;
}

export interface BundleManifest {
  apiVersion: typeof MANIFEST_API_VERSION;
  kind: typeof MANIFEST_KIND;
  kubernetesVersion: string;
  target: string;
  arches: string[];
  runtimes: string[];
  /** ISO 8601 time from SOURCE_DATE_EPOCH */
  created: string;
  /** fingerprint of the signing key; null for an unsigned bundle */
  signer: string | null;
  /** present on a differential bundle only */
  base?: ManifestBase;
  components: {
    packages: PackageComponent[];
    images: ImageComponent[];
    files: FileComponent[];
  };
}

/** What a builder knows; pack.ts adds the rest (created, signer) so they cannot disagree with the tar. */
export type ManifestContent = Omit<BundleManifest, 'apiVersion' | 'kind' | 'created' | 'signer'>;

export function completeManifest(content: ManifestContent, created: Date, signer: string | null): BundleManifest {
  return { apiVersion: MANIFEST_API_VERSION, kind: MANIFEST_KIND, ...content, created: created.toISOString(), signer };
}

/** Serialise with a fixed key order, so the same manifest always gives the same bytes. */
export function manifestToYaml(m: BundleManifest): string {
  const ordered = {
    apiVersion: m.apiVersion,
    kind: m.kind,
    kubernetesVersion: m.kubernetesVersion,
    target: m.target,
    arches: m.arches,
    runtimes: m.runtimes,
    created: m.created,
    signer: m.signer,
    ...(m.base ? { base: { kubernetesVersion: m.base.kubernetesVersion, lockSha256: m.base.lockSha256 } } : {}),
    components: {
      packages: m.components.packages.map((p) => ({
        name: p.name, version: p.version, arch: p.arch, filename: p.filename, size: p.size, sha256: p.sha256, url: p.url,
      })),
      images: m.components.images.map((i) => ({
        ref: i.ref, digest: i.digest, mediaType: i.mediaType, platforms: i.platforms, size: i.size, ...(i.fromBase ? { fromBase: true } : {}),
      })),
      files: m.components.files.map((f) => ({ path: f.path, url: f.url, sha256: f.sha256, size: f.size, kind: f.kind })),
    },
  };
  return YAML.stringify(ordered, { lineWidth: 0 });
}

/** Parse and validate bundle.yaml; `source` names it in errors (e.g. "bundle.yaml in x.tar"). */
export function parseManifest(text: string, source: string): BundleManifest {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new UserError(`${source} is not valid YAML: ${(err as Error).message}`);
  }
  return new Checker(source).manifest(doc);
}

/**
 * Which manifest entries disagree with the bundle's SHA256SUMS (path → sha256): a package or file that is not
 * in the bundle or has another hash, an image whose index/manifest blob is missing. Empty when consistent.
 * The one absence allowed: in a differential bundle, an image marked `fromBase` has its blob in the base, not
 * here (and it must not be here either: the mark would be false).
 */
export function manifestMismatches(m: BundleManifest, sums: ReadonlyMap<string, string>): { path: string; detail: string }[] {
  const out: { path: string; detail: string }[] = [];
  const expectFile = (path: string, sha256: string, what: string): void => {
    const actual = sums.get(path);
    if (actual === undefined) out.push({ path, detail: `${what} is listed in bundle.yaml but not in SHA256SUMS` });
    else if (actual !== sha256) out.push({ path, detail: `${what}: bundle.yaml says sha256 ${sha256}, SHA256SUMS says ${actual}` });
  };
  for (const p of m.components.packages) expectFile(p.filename, p.sha256, `package ${p.name} ${p.version} ${p.arch}`);
  for (const f of m.components.files) expectFile(f.path, f.sha256, `file from ${f.url}`);
  for (const i of m.components.images) {
    const blob = imageBlobFile(i.digest);
    if (i.fromBase) {
      if (sums.has(blob)) out.push({ path: blob, detail: `image ${i.ref}@${i.digest} is marked fromBase in bundle.yaml but its blob is in SHA256SUMS` });
    } else if (!sums.has(blob)) out.push({ path: blob, detail: `image ${i.ref}@${i.digest} is listed in bundle.yaml but its blob is not in SHA256SUMS` });
  }
  return out;
}

type Obj = Record<string, unknown>;

/** Field-by-field validation that names the offending field, e.g. "components.packages[3].sha256". */
class Checker {
  constructor(private readonly source: string) {}

  manifest(doc: unknown): BundleManifest {
    const o = this.object(doc, '(top level)');
    if (o.apiVersion !== MANIFEST_API_VERSION) this.fail('apiVersion', `must be ${MANIFEST_API_VERSION}, got ${JSON.stringify(o.apiVersion)}`);
    if (o.kind !== MANIFEST_KIND) this.fail('kind', `must be ${MANIFEST_KIND}, got ${JSON.stringify(o.kind)}`);
    const components = this.object(o.components, 'components');
    const base = o.base === undefined ? undefined : this.base(o.base, 'base');
    const images = this.array(components.images, 'components.images').map((p, i) => this.image(p, `components.images[${i}]`));
    images.forEach((image, i) => {
      if (image.fromBase && !base) this.fail(`components.images[${i}].fromBase`, 'is allowed in a differential bundle only (one with a base)');
    });
    return {
      apiVersion: MANIFEST_API_VERSION,
      kind: MANIFEST_KIND,
      kubernetesVersion: this.string(o.kubernetesVersion, 'kubernetesVersion'),
      target: this.string(o.target, 'target'),
      arches: this.strings(o.arches, 'arches'),
      runtimes: this.strings(o.runtimes, 'runtimes'),
      created: this.isoDate(o.created, 'created'),
      signer: o.signer === null ? null : this.fingerprint(o.signer, 'signer'),
      ...(base ? { base } : {}),
      components: {
        packages: this.array(components.packages, 'components.packages').map((p, i) => this.pkg(p, `components.packages[${i}]`)),
        images,
        files: this.array(components.files, 'components.files').map((p, i) => this.file(p, `components.files[${i}]`)),
      },
    };
  }

  private pkg(value: unknown, at: string): PackageComponent {
    const o = this.object(value, at);
    return {
      name: this.string(o.name, `${at}.name`),
      version: this.string(o.version, `${at}.version`),
      arch: this.string(o.arch, `${at}.arch`),
      filename: this.bundlePath(o.filename, `${at}.filename`),
      size: this.size(o.size, `${at}.size`),
      sha256: this.sha256(o.sha256, `${at}.sha256`),
      url: this.string(o.url, `${at}.url`),
    };
  }

  private image(value: unknown, at: string): ImageComponent {
    const o = this.object(value, at);
    const digest = this.string(o.digest, `${at}.digest`);
    if (!SHA256_DIGEST.test(digest)) this.fail(`${at}.digest`, `must be sha256:<64 hex digits>, got '${digest}'`);
    return {
      ref: this.string(o.ref, `${at}.ref`),
      digest,
      mediaType: this.string(o.mediaType, `${at}.mediaType`),
      platforms: this.strings(o.platforms, `${at}.platforms`),
      size: this.size(o.size, `${at}.size`),
      ...(this.flag(o.fromBase, `${at}.fromBase`) ? { fromBase: true as const } : {}),
    };
  }

  private base(value: unknown, at: string): ManifestBase {
    const o = this.object(value, at);
    const kubernetesVersion = this.string(o.kubernetesVersion, `${at}.kubernetesVersion`);
    if (!/^v\d+\.\d+\.\d+$/.test(kubernetesVersion)) this.fail(`${at}.kubernetesVersion`, `must be a release version like v1.32.3, got '${kubernetesVersion}'`);
    return { kubernetesVersion, lockSha256: this.sha256(o.lockSha256, `${at}.lockSha256`) };
  }

  /** An optional mark: absent, or `true` (never `false`: the serializer leaves it out). */
  private flag(value: unknown, at: string): boolean {
    if (value === undefined) return false;
    if (value !== true) this.fail(at, `must be true when present, got ${JSON.stringify(value)}`);
    return true;
  }

  private file(value: unknown, at: string): FileComponent {
    const o = this.object(value, at);
    const kind = this.string(o.kind, `${at}.kind`);
    if (!(FILE_KINDS as readonly string[]).includes(kind)) this.fail(`${at}.kind`, `must be one of ${FILE_KINDS.join(', ')}, got '${kind}'`);
    return {
      path: this.bundlePath(o.path, `${at}.path`),
      url: this.string(o.url, `${at}.url`),
      sha256: this.sha256(o.sha256, `${at}.sha256`),
      size: this.size(o.size, `${at}.size`),
      kind: kind as FileKind,
    };
  }

  private object(value: unknown, at: string): Obj {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(at, 'must be a mapping');
    return value as Obj;
  }

  private array(value: unknown, at: string): unknown[] {
    if (!Array.isArray(value)) this.fail(at, 'must be a list');
    return value as unknown[];
  }

  private string(value: unknown, at: string): string {
    if (typeof value !== 'string' || value === '') this.fail(at, 'must be a non-empty string');
    return value as string;
  }

  private strings(value: unknown, at: string): string[] {
    return this.array(value, at).map((v, i) => this.string(v, `${at}[${i}]`));
  }

  private size(value: unknown, at: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) this.fail(at, 'must be a whole number of bytes');
    return value as number;
  }

  private sha256(value: unknown, at: string): string {
    const s = this.string(value, at);
    if (!SHA256_HEX.test(s)) this.fail(at, `must be 64 lowercase hex digits, got '${s}'`);
    return s;
  }

  private fingerprint(value: unknown, at: string): string {
    const s = this.string(value, at);
    if (!/^[0-9A-F]{40}([0-9A-F]{24})?$/.test(s)) this.fail(at, `must be null or an OpenPGP fingerprint, got '${s}'`);
    return s;
  }

  private isoDate(value: unknown, at: string): string {
    const s = this.string(value, at);
    if (Number.isNaN(Date.parse(s))) this.fail(at, `must be an ISO 8601 time, got '${s}'`);
    return s;
  }

  private bundlePath(value: unknown, at: string): string {
    const s = this.string(value, at);
    const reason = unsafePathReason(s);
    if (reason) this.fail(at, `'${s}': ${reason}`);
    return s;
  }

  private fail(at: string, problem: string): never {
    throw new UserError(`${this.source}: ${at} ${problem}`);
  }
}
