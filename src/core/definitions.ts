/**
 * The checked-in definitions under bundles/: pinned component versions, target distributions and the
 * control-plane image table. Loaded and checked once; everything else works on these typed values.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { UserError } from '../util/errors.js';
import { packageRoot } from '../util/package-root.js';
import type { KubeVersion } from './kube-version.js';

export const ARCHES = ['amd64', 'arm64'] as const;
export type Arch = (typeof ARCHES)[number];
export const RUNTIMES = ['containerd', 'docker'] as const;
export type Runtime = (typeof RUNTIMES)[number];

export interface AptSourceDef {
  url: string;
  suites: string[];
  components: string[];
  /** the architectures this archive serves; all when absent */
  arches?: Arch[];
}

export interface TargetDef {
  name: string;
  os: 'debian' | 'ubuntu';
  version: string;
  codename: string;
  /** absolute path of a binary OpenPGP keyring for the distribution's archive */
  keyring: string;
  /** when set, the keyring must contain these keys and only they are trusted */
  keyFingerprints?: string[];
  sources: AptSourceDef[];
  criDockerdAsset: string;
  /** packages a minimal install of the target has beyond Priority: required (its installer's choices) */
  minimalHost?: string[];
  packages: { containerd: string[]; docker: string[]; registry: string[]; ha: string[]; host: string[] };
}

/** cri-dockerd's package name, and its section in bundles/components.yaml: its deb comes from its GitHub release. */
export const CRI_DOCKERD_PACKAGE = 'cri-dockerd';

export interface ComponentsDef {
  kubernetes: { aptRepository: string; signingKeys: string[]; packages: string[]; companions: string[] };
  flannel: { version: string; manifest: string; images: string[] };
  'cri-dockerd': { version: string; deb: string; arches: Arch[] };
  /** upstream URL of a release file → its sha256 (bare hex), checked and known-good */
  releaseDigests: Record<string, string>;
}

interface ImageRow {
  patches: string;
  coredns: string;
  etcd: string;
  pause: string;
}
interface ImageTable {
  registry: string;
  minors: Record<string, ImageRow[]>;
}

export function bundlesDir(): string {
  return join(packageRoot(), 'bundles');
}

function loadYaml<T>(file: string): T {
  try {
    return parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
}

export function componentsFile(): string {
  return join(bundlesDir(), 'components.yaml');
}

export function loadComponents(): ComponentsDef {
  const file = componentsFile();
  const def = loadYaml<ComponentsDef & { releaseDigests?: unknown }>(file);
  return { ...def, releaseDigests: parseReleaseDigests(def.releaseDigests, file) };
}

/** `sha256:<hex>` → bare lowercase hex, or undefined for anything else. */
export function sha256Of(text: unknown): string | undefined {
  const m = typeof text === 'string' ? /^sha256:([0-9a-fA-F]{64})$/.exec(text.trim()) : null;
  return m?.[1]?.toLowerCase();
}

/** The releaseDigests table: https URLs to `sha256:<hex>`; a malformed entry names itself, so a typo cannot unpin a file. */
export function parseReleaseDigests(table: unknown, file: string): Record<string, string> {
  if (table === undefined || table === null) return {};
  if (typeof table !== 'object' || Array.isArray(table)) throw new UserError(`${file}: releaseDigests must map URLs to sha256:<hex>`);
  const digests: Record<string, string> = {};
  for (const [url, value] of Object.entries(table)) {
    const hex = sha256Of(value);
    if (!/^https:\/\/[^\s]+$/.test(url) || hex === undefined) {
      throw new UserError(`${file}: releaseDigests entry '${url}: ${String(value)}' is not <https URL>: sha256:<64 hex digits>`);
    }
    digests[url] = hex;
  }
  return digests;
}

export function targetNames(): string[] {
  return readdirSync(join(bundlesDir(), 'targets'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

export function loadTarget(name: string): TargetDef {
  const names = targetNames();
  if (!names.includes(name)) {
    throw new UserError(`unknown target '${name}'`, `choose one of: ${names.join(', ')}`);
  }
  const def = loadYaml<TargetDef>(join(bundlesDir(), 'targets', `${name}.yaml`));
  return { ...def, keyring: isAbsolute(def.keyring) ? def.keyring : join(bundlesDir(), def.keyring) };
}

export function parseArch(text: string): Arch {
  if ((ARCHES as readonly string[]).includes(text)) return text as Arch;
  throw new UserError(`unknown architecture '${text}'`, `choose ${ARCHES.join(' or ')}`);
}

export function parseRuntimes(text: string): Runtime[] {
  const list = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new UserError('--runtime is empty', `give ${RUNTIMES.join(', ')} or both`);
  for (const r of list) {
    if (!(RUNTIMES as readonly string[]).includes(r)) throw new UserError(`unknown runtime '${r}'`, `choose from ${RUNTIMES.join(', ')}`);
  }
  return RUNTIMES.filter((r) => list.includes(r));
}

function inRange(range: string, patch: number): boolean {
  const [lo, hi] = range.split('-').map(Number);
  return lo !== undefined && patch >= lo && patch <= (hi ?? lo);
}

export function controlPlaneImagesFile(): string {
  return join(bundlesDir(), 'control-plane-images.yaml');
}

/**
 * The control-plane images kubeadm pulls for a version, in kubeadm's own order, or undefined when the
 * table has no row for it.
 */
export function controlPlaneImagesFromTable(version: KubeVersion): string[] | undefined {
  const table = loadYaml<ImageTable>(controlPlaneImagesFile());
  const row = table.minors[`${version.major}.${version.minor}`]?.find((r) => inRange(r.patches, version.patch));
  if (!row) return undefined;
  const r = table.registry;
  return [
    ...['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy'].map((n) => `${r}/${n}:${version.tag}`),
    `${r}/coredns/coredns:${row.coredns}`,
    `${r}/pause:${row.pause}`,
    `${r}/etcd:${row.etcd}`,
  ];
}
