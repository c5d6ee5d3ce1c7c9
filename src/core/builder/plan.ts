/**
 * What `bundle build` resolved before anything is packed: the packages (per architecture), the images and the
 * release files, each with its upstream URL and digest, and what resolving needs to know. The lock file and
 * the build's report are both views of it.
 */
import { basename } from 'node:path';
import type * as openpgp from 'openpgp';
import type { Progress } from '../../util/progress.js';
import type { Arch, Runtime, TargetDef } from '../definitions.js';
import type { Fetcher } from '../fetch.js';
import type { KubeVersion } from '../kube-version.js';
import type { Mirrors } from '../mirror.js';
import type { PulledImage, RegistryClient } from '../oci/registry.js';
import { parseReference } from '../oci/reference.js';
import type { ResolvedPackage } from './apt-sources.js';
import type { LockedArtifact, LockFile } from './lockfile.js';
import type { PinSources } from './release-files.js';

export interface Deb {
  record: ResolvedPackage;
  arch: Arch;
  /** path in the bundle's flat repository (relative to packages/) */
  bundleName: string;
  upstreamUrl: string;
}

export interface Plan {
  version: KubeVersion;
  target: TargetDef;
  arches: Arch[];
  runtimes: Runtime[];
  debs: Deb[];
  images: PulledImage[];
  files: { path: string; url: string; cachePath: string; sha256: string; size: number }[];
  releaseDate: Date | undefined;
}

/** Everything resolving the plan reads: the request, and the clients to ask upstream with. */
export interface ResolveContext {
  version: KubeVersion;
  target: TargetDef;
  arches: Arch[];
  runtimes: Runtime[];
  mirrors: Mirrors;
  fetcher: Fetcher;
  client: RegistryClient;
  /** keys trusted for pkgs.k8s.io besides the pinned one (--trust-key) */
  trusted: openpgp.PublicKey[];
  /** keys trusted for the target distribution's archive besides its keyring (--trust-archive-key) */
  archiveTrusted: openpgp.PublicKey[];
  extraImages: string[];
  ha: boolean;
  pins: PinSources;
  dryRun: boolean;
  progress: Progress;
  /** a differential build's base has this blob: it is not downloaded ahead (differential.ts) */
  heldBlob?: (digest: string) => boolean;
}

/** The lock file of the plan: every artifact with its upstream URL and digest. */
export function lockOf(plan: Plan): LockFile {
  const artifacts: LockedArtifact[] = [
    ...plan.debs.map((d) => ({ kind: 'deb' as const, name: d.record.name, version: d.record.version, arch: d.record.architecture === 'all' ? 'all' : d.arch, url: d.upstreamUrl, digest: `sha256:${d.record.sha256}` })),
    ...plan.images.map((i) => ({ kind: 'image' as const, name: i.reference, version: tagOf(i.reference), arch: 'all', url: `docker://${i.reference}`, digest: i.descriptor.digest, blobs: [...new Set(i.blobs.map((b) => b.digest))].sort() })),
    ...plan.files.map((f) => ({ kind: 'file' as const, name: basename(f.path), version: '-', arch: 'all', url: f.url, digest: `sha256:${f.sha256}` })),
  ];
  return { apiVersion: 'kube-bundle.dev/v1alpha1', kind: 'Lock', kubernetesVersion: plan.version.tag, target: plan.target.name, arches: plan.arches, runtimes: plan.runtimes, artifacts };
}

function tagOf(reference: string): string {
  const ref = parseReference(reference);
  return ref.tag ?? ref.digest ?? '';
}

/** `linux/arm64/v8`, as the report and bundle.yaml list platforms. */
export function platformText(d: { platform?: { os: string; architecture: string; variant?: string } }): string {
  const p = d.platform;
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : 'unknown';
}

/** Bytes of every blob of an image, before layers shared with other images are counted once. */
export function imageSize(image: PulledImage): number {
  return image.blobs.reduce((sum, b) => sum + b.size, 0);
}
