/**
 * Reading signed apt repositories: InRelease (verified against the keys we trust), then the Packages index it
 * lists (verified against the Release hashes, fetched through the content-addressed cache so a warm build
 * transfers only the small InRelease files).
 */
import { readFile } from 'node:fs/promises';
import type * as openpgp from 'openpgp';
import { UserError } from '../../util/errors.js';
import { decodeIndexFile, packagesIndexPath, parseRelease, pickIndexFile, assertReleaseCurrent, type Release } from '../apt/release.js';
import type { PackageSource } from '../apt/index.js';
import { discard, isTransientStatus, TransientError, type Fetcher } from '../fetch.js';
import { resolveUrl, type Mirrors } from '../mirror.js';
import { fingerprintOf, readPublicKey, verifyCleartext } from '../pgp.js';

const MAX_SMALL = 16 * 1024 * 1024;

export interface RepoRef {
  /** short name for reports, e.g. `bookworm-security` or `pkgs.k8s.io v1.32` */
  label: string;
  /** upstream URL of the directory holding InRelease, ending in / */
  releaseDir: string;
  /** upstream URL the Packages `Filename` fields are relative to */
  baseUrl: string;
  /** e.g. main; undefined for a flat repository */
  component: string | undefined;
}

export interface LoadedSource extends PackageSource {
  release: Release;
  signer: string;
}

/** GET a small document through the mirrors; a 404 is reported with `notFound` when given. */
export async function getSmall(fetcher: Fetcher, mirrors: Mirrors, upstreamUrl: string, what: string, notFound?: () => UserError): Promise<Buffer> {
  const url = resolveUrl(mirrors, upstreamUrl);
  return fetcher.withRetries(`${what} from ${url}`, async () => {
    const res = await fetcher.open(url);
    if (res.status === 404 && notFound) {
      discard(res);
      throw notFound();
    }
    if (res.status !== 200) {
      discard(res);
      if (isTransientStatus(res.status)) throw new TransientError(`HTTP ${res.status} from ${url}`);
      throw new UserError(`${what}: HTTP ${res.status} from ${url}`, res.status === 401 || res.status === 403 ? 'the server wants credentials; kube-bundle fetches anonymously' : undefined);
    }
    return fetcher.readMetadata(res, MAX_SMALL);
  });
}

/**
 * The keys trusted for pkgs.k8s.io: the repository's own Release.key when its fingerprint is pinned in
 * bundles/components.yaml, plus any key given with --trust-key.
 */
export async function kubernetesRepoKeys(fetcher: Fetcher, mirrors: Mirrors, releaseDir: string, pinned: string[], extra: openpgp.PublicKey[]): Promise<openpgp.PublicKey[]> {
  const url = releaseDir + 'Release.key';
  let served: openpgp.PublicKey | undefined;
  try {
    served = await readPublicKey((await getSmall(fetcher, mirrors, url, 'Kubernetes repository key')).toString('utf8'), url);
  } catch (err) {
    if (extra.length === 0) throw err;
  }
  const keys = [...extra];
  if (served && pinned.map((f) => f.toUpperCase()).includes(fingerprintOf(served))) keys.push(served);
  if (keys.length === 0) {
    throw new UserError(
      `${resolveUrl(mirrors, url)} serves key ${served ? fingerprintOf(served) : '(none)'}, which is not the pinned Kubernetes signing key (${pinned.join(', ')})`,
      'if you trust it (e.g. a mirror that re-signs), pass it with --trust-key <file>',
    );
  }
  return keys;
}

/** Verify a repository's InRelease and load its Packages index for one architecture. */
export async function loadSource(fetcher: Fetcher, mirrors: Mirrors, repo: RepoRef, arch: string, keys: openpgp.PublicKey[], now: Date): Promise<LoadedSource> {
  const inReleaseUrl = repo.releaseDir + 'InRelease';
  const text = (
    await getSmall(fetcher, mirrors, inReleaseUrl, `${repo.label} InRelease`, () =>
      new UserError(`${repo.label}: no InRelease at ${resolveUrl(mirrors, inReleaseUrl)} (HTTP 404)`),
    )
  ).toString('utf8');
  const verified = await verifyCleartext(text, keys, resolveUrl(mirrors, inReleaseUrl));
  const release = parseRelease(verified.text, inReleaseUrl);
  assertReleaseCurrent(release, now);
  const choice = pickIndexFile(release, packagesIndexPath(repo.component, arch), repo.releaseDir);
  const fetched = await fetcher.fetchToCache({
    url: resolveUrl(mirrors, choice.url),
    expected: { sha256: choice.expected.sha256, size: choice.expected.size },
    label: `${repo.label} ${choice.path}`,
  });
  const packagesText = decodeIndexFile(choice, await readFile(fetched.path));
  return { label: repo.label, baseUrl: repo.baseUrl, packagesText, packagesUrl: choice.url, release, signer: verified.fingerprint };
}
