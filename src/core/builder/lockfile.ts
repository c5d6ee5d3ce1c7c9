/**
 * The lock file every build writes next to its output: every artifact with name, version, upstream URL and digest.
 * `bundle build --lock <file>` rebuilds exactly that set, or fails naming each difference.
 */
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { UserError } from '../../util/errors.js';

export type ArtifactKind = 'deb' | 'image' | 'file';

export interface LockedArtifact {
  kind: ArtifactKind;
  /** package name, full image reference, or file name */
  name: string;
  version: string;
  /** amd64/arm64 for debs; 'all' where not per-architecture */
  arch: string;
  url: string;
  digest: string;
  /** images: the digest of every blob the bundle carries of it (top-level document, platform manifests, configs,
   * layers), sorted; what `--since` compares by. Absent in locks written before differential bundles. */
  blobs?: string[];
}

export interface LockFile {
  apiVersion: 'kube-bundle.dev/v1alpha1';
  kind: 'Lock';
  kubernetesVersion: string;
  target: string;
  arches: string[];
  runtimes: string[];
  artifacts: LockedArtifact[];
}

const keyOf = (a: LockedArtifact) => `${a.kind} ${a.name} ${a.arch}`;

function sortArtifacts(artifacts: LockedArtifact[]): LockedArtifact[] {
  return [...artifacts].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
}

export function renderLock(lock: LockFile): string {
  return stringify({ ...lock, artifacts: sortArtifacts(lock.artifacts) }, { lineWidth: 0 });
}

export function readLock(file: string): LockFile {
  let doc: LockFile;
  try {
    doc = parse(readFileSync(file, 'utf8')) as LockFile;
  } catch (err) {
    throw new UserError(`cannot read lock file ${file}: ${(err as Error).message}`);
  }
  if (doc?.kind !== 'Lock' || !Array.isArray(doc.artifacts)) {
    throw new UserError(`${file} is not a kube-bundle lock file (kind: Lock with an artifacts list)`);
  }
  return doc;
}

/** Human-readable differences between what a lock file names and what this build resolved; empty when equal. */
export function diffLock(locked: LockFile, resolved: LockFile): string[] {
  const diffs: string[] = [];
  for (const field of ['kubernetesVersion', 'target'] as const) {
    if (locked[field] !== resolved[field]) diffs.push(`${field}: lock has ${locked[field]}, this build ${resolved[field]}`);
  }
  for (const field of ['arches', 'runtimes'] as const) {
    if (locked[field].join(',') !== resolved[field].join(',')) {
      diffs.push(`${field}: lock has ${locked[field].join(',')}, this build ${resolved[field].join(',')}`);
    }
  }
  const want = new Map(locked.artifacts.map((a) => [keyOf(a), a]));
  const got = new Map(resolved.artifacts.map((a) => [keyOf(a), a]));
  for (const [key, a] of want) {
    const b = got.get(key);
    if (!b) diffs.push(`${key}: locked at ${a.version} (${a.digest}) but not part of this build`);
    else if (a.version !== b.version) diffs.push(`${key}: locked at ${a.version}, resolved ${b.version}`);
    else if (a.digest !== b.digest) diffs.push(`${key} ${a.version}: locked digest ${a.digest}, upstream now ${b.digest} (${b.url})`);
  }
  for (const [key, b] of got) {
    if (!want.has(key)) diffs.push(`${key}: ${b.version} is not in the lock file`);
  }
  return diffs.sort();
}

export function assertMatchesLock(file: string, locked: LockFile, resolved: LockFile): void {
  const diffs = diffLock(locked, resolved);
  if (diffs.length > 0) {
    throw new UserError(
      `this build differs from lock file ${file} in ${diffs.length} place(s):\n  ${diffs.join('\n  ')}`,
      'rebuild without --lock to take the new versions, or restore the upstream content the lock names',
    );
  }
}
