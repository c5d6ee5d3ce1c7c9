/**
 * Every URL a cold build downloads, derived from its lock file (debs, release files, images) plus the apt
 * repository documents the build reads to resolve packages (Release.key, InRelease, the Packages index it
 * picks), each mapped to the URL actually fetched the way `--mirror` does it.
 */
import * as openpgp from 'openpgp';
import { packagesIndexPath, parseRelease, pickIndexFile } from '../../../src/core/apt/release.js';
import { readLock, type ArtifactKind, type LockFile } from '../../../src/core/builder/lockfile.js';
import { loadComponents, loadTarget, parseArch, type Arch } from '../../../src/core/definitions.js';
import { parseKubeVersion } from '../../../src/core/kube-version.js';
import { parseMirrors, resolveUrl, type Mirrors } from '../../../src/core/mirror.js';
import { listImageContent, type RegistryContent } from './registry-walk.js';

export interface DownloadGroup {
  label: string;
  headers: Record<string, string>;
  urls: string[];
}

export interface BuildDownloads {
  groups: DownloadGroup[];
  /** sizes of the image content, one entry per unique digest */
  imageBytes: number;
}

export async function buildDownloads(lockFile: string, mirrorFlags: string[]): Promise<BuildDownloads> {
  const lock = readLock(lockFile);
  if (lock.arches.length !== 1) throw new Error(`${lockFile}: the benchmark expects a one-architecture build, not ${lock.arches.join('+')}`);
  const arch = parseArch(lock.arches[0] ?? '');
  const mirrors = parseMirrors(mirrorFlags);
  const artifacts = (kind: ArtifactKind) => lock.artifacts.filter((a) => a.kind === kind);
  const images = await listImageContent(artifacts('image').map((a) => ({ reference: a.name, digest: a.digest })), mirrors, arch);
  return {
    groups: [
      { label: 'apt repository documents', headers: {}, urls: await aptDocumentUrls(lock, mirrors, arch) },
      { label: 'debs and release files', headers: {}, urls: [...artifacts('deb'), ...artifacts('file')].map((a) => resolveUrl(mirrors, a.url)) },
      ...images.map(registryGroup),
    ],
    imageBytes: images.flatMap((r) => r.items).reduce((sum, item) => sum + item.size, 0),
  };
}

function registryGroup(content: RegistryContent): DownloadGroup {
  return { label: `${content.registry} manifests and blobs`, headers: content.headers, urls: content.items.map((i) => i.url) };
}

/** pkgs.k8s.io's Release.key, then per repository its InRelease and the Packages index the build picks. */
async function aptDocumentUrls(lock: LockFile, mirrors: Mirrors, arch: Arch): Promise<string[]> {
  const components = loadComponents();
  const k8sDir = components.kubernetes.aptRepository.replace('{minor}', parseKubeVersion(lock.kubernetesVersion).minorTag);
  const repos = [
    { releaseDir: k8sDir, component: undefined as string | undefined },
    ...loadTarget(lock.target)
      .sources.filter((s) => !s.arches || s.arches.includes(arch))
      .flatMap((s) => s.suites.flatMap((suite) => s.components.map((component) => ({ releaseDir: `${s.url.replace(/\/$/, '')}/dists/${suite}/`, component })))),
  ];
  const urls = [resolveUrl(mirrors, `${k8sDir}Release.key`)];
  for (const repo of repos) {
    const inRelease = resolveUrl(mirrors, `${repo.releaseDir}InRelease`);
    const release = parseRelease(await signedText(inRelease), inRelease);
    urls.push(inRelease, resolveUrl(mirrors, pickIndexFile(release, packagesIndexPath(repo.component, arch), repo.releaseDir).url));
  }
  return urls;
}

/** The text of a clear-signed document; the build checks the signature, here only the URLs matter. */
async function signedText(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const message = await openpgp.readCleartextMessage({ cleartextMessage: await res.text() });
  return message.getText();
}
