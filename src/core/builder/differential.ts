/**
 * Differential bundles (`bundle build <version> --since <base lock file>`): a bundle that carries only what a site
 * holding the base bundle lacks. What is carried is decided here, from the base's lock file and this build's own
 * lock, by content: a package, release file or image blob is left out exactly when the base lock names the same
 * digest (a deb of the same name and version rebuilt with other bytes is carried; the same bytes under another
 * name are not).
 *
 * - Packages and release files: by their sha256.
 * - Images: by blob. A lock lists each image's blobs (`blobs`: top-level document, platform manifests, configs,
 *   layers); an image whose top-level digest equals one in the base has all its blobs there (content addressing),
 *   which also covers a base lock written before locks listed blobs.
 *
 * The differential bundle's own lock file still lists everything the build resolved, so that the next `--since`
 * can name it as its base.
 */
import { compareKubeVersions, parseKubeVersion, type KubeVersion } from '../kube-version.js';
import { UserError } from '../../util/errors.js';
import type { LockFile } from './lockfile.js';
import type { Plan } from './plan.js';

/** What bundle.yaml records of the base: its Kubernetes version and the sha256 of its lock file's bytes. */
export interface BaseRef {
  kubernetesVersion: string;
  lockSha256: string;
}

/** The base a differential build is made against, as read from `--since`. */
export interface SinceBase extends BaseRef {
  file: string;
  lock: LockFile;
}

/** What a differential bundle carries of a build's lock, by digest (`sha256:<hex>`), and what it leaves to the base. */
export interface DifferentialContent {
  carried: { debs: Set<string>; files: Set<string>; blobs: Set<string> };
  /** how many of each this build needs that the base already has */
  fromBase: { debs: number; files: number; blobs: number };
}

/**
 * Split a build's content into what the base lock already has and what the differential bundle must carry.
 * Pure: both inputs are lock files (`next` with `blobs` on its images, as lockOf writes).
 */
export function differentialContent(base: LockFile, next: LockFile): DifferentialContent {
  const baseDigests = (kind: 'deb' | 'file') => new Set(base.artifacts.filter((a) => a.kind === kind).map((a) => a.digest));
  const baseBlobs = baseBlobDigests(base);
  const baseTops = new Set(base.artifacts.filter((a) => a.kind === 'image').map((a) => a.digest));
  const content: DifferentialContent = {
    carried: { debs: new Set(), files: new Set(), blobs: new Set() },
    fromBase: { debs: 0, files: 0, blobs: 0 },
  };
  const split = (kind: 'debs' | 'files' | 'blobs', digest: string, inBase: boolean): void => {
    if (inBase) content.fromBase[kind]++;
    else content.carried[kind].add(digest);
  };
  const debs = baseDigests('deb');
  const files = baseDigests('file');
  const seenBlobs = new Set<string>();
  for (const a of next.artifacts) {
    if (a.kind === 'deb') split('debs', a.digest, debs.has(a.digest));
    else if (a.kind === 'file') split('files', a.digest, files.has(a.digest));
    else {
      const whole = baseTops.has(a.digest);
      for (const blob of new Set([a.digest, ...(a.blobs ?? [])])) {
        if (seenBlobs.has(blob)) continue; // a blob two images share counts once
        seenBlobs.add(blob);
        split('blobs', blob, whole || baseBlobs.has(blob));
      }
    }
  }
  return content;
}

/**
 * Why a base lock cannot be the base of this build (empty when it can): another target or architecture set (the
 * site's hosts could not use this bundle's content with the base's), or a base newer than the build.
 */
export function sinceMismatches(base: LockFile, build: { kubernetesVersion: string; target: string; arches: string[] }): string[] {
  const out: string[] = [];
  if (base.target !== build.target) out.push(`target: the base is for ${base.target}, this build for ${build.target}`);
  const arches = (list: string[]) => [...list].sort().join(',');
  if (arches(base.arches) !== arches(build.arches)) out.push(`architectures: the base carries ${arches(base.arches)}, this build ${arches(build.arches)}`);
  let baseVersion: KubeVersion | undefined;
  try {
    baseVersion = parseKubeVersion(base.kubernetesVersion);
  } catch {
    out.push(`kubernetesVersion: the base names '${String(base.kubernetesVersion)}', not a Kubernetes version`);
  }
  if (baseVersion && compareKubeVersions(baseVersion, parseKubeVersion(build.kubernetesVersion)) > 0) {
    out.push(`kubernetesVersion: the base is ${baseVersion.tag}, newer than this build's ${build.kubernetesVersion} (a site does not go back)`);
  }
  return out;
}

export function assertSinceMatches(file: string, base: LockFile, build: { kubernetesVersion: string; target: string; arches: string[] }): void {
  const problems = sinceMismatches(base, build);
  if (problems.length > 0) {
    throw new UserError(
      `--since ${file} cannot be the base of this build:\n  ${problems.join('\n  ')}`,
      `name the lock file of the bundle the site holds for ${build.target} (${build.arches.join(', ')}), written beside it by \`bundle build\``,
    );
  }
}

/**
 * The part of a plan a differential bundle carries: its packages and release files not in the base, and every
 * image with only the blobs the base lacks (an image the base has whole keeps no blob at all).
 */
export function carriedPlan(plan: Plan, content: DifferentialContent): Plan {
  const { debs, files, blobs } = content.carried;
  return {
    ...plan,
    debs: plan.debs.filter((d) => debs.has(`sha256:${d.record.sha256}`)),
    images: plan.images.map((i) => ({ ...i, blobs: i.blobs.filter((b) => blobs.has(b.digest)) })),
    files: plan.files.filter((f) => files.has(`sha256:${f.sha256}`)),
  };
}

/** Every blob digest a base lock names: what a differential build need not download. */
export function baseBlobDigests(base: LockFile): Set<string> {
  return new Set(base.artifacts.filter((a) => a.kind === 'image').flatMap((a) => [a.digest, ...(a.blobs ?? [])]));
}
