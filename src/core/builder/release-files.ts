/**
 * Files taken from a project's release downloads (flannel's kube-flannel.yml, cri-dockerd's .debs). Unlike a
 * package, such a file has no signed index that gives its digest, so its sha256 must be pinned before the build
 * uses it: in bundles/components.yaml (`releaseDigests`), for one build with `--pin <url>=sha256:<hex>`, or by the
 * lock file given with `--lock`. A download that does not match fails naming both digests; a file that is not
 * pinned at all fails too, naming the digest it downloaded so the operator can check it upstream and pin it.
 * Nothing is trusted because it was the first thing downloaded.
 */
import { UserError } from '../../util/errors.js';
import { redactUrls } from '../../util/redact.js';
import { componentsFile, sha256Of } from '../definitions.js';
import { DigestMismatchError, type Fetcher, type FetchResult } from '../fetch.js';
import { resolveUrl, shownUrl, type Mirrors } from '../mirror.js';
import type { LockFile } from './lockfile.js';

export interface Pin {
  /** bare lowercase hex */
  sha256: string;
  /** where the pin comes from, for errors: the components file, --pin, or the lock file */
  from: string;
}

export interface PinSources {
  /** bundles/components.yaml's releaseDigests: URL → hex */
  components: Record<string, string>;
  /** --pin flags: URL → hex */
  flags: Map<string, string>;
  lock?: { file: string; content: LockFile };
}

/** `--pin <url>=sha256:<hex>` (repeatable) → URL → hex. A URL pinned twice to different digests is an error. */
export function parsePinFlags(flags: readonly string[] = []): Map<string, string> {
  const pins = new Map<string, string>();
  for (const flag of flags) {
    const eq = flag.lastIndexOf('='); // a URL may hold '=', a digest never does
    const url = flag.slice(0, eq).trim();
    const hex = sha256Of(flag.slice(eq + 1));
    if (eq <= 0 || hex === undefined || !/^https?:\/\/\S+$/.test(url)) {
      throw new UserError(`--pin '${redactUrls(flag)}' is not <url>=sha256:<64 hex digits>`, 'e.g. --pin https://github.com/flannel-io/flannel/releases/download/v0.26.5/kube-flannel.yml=sha256:<hex>');
    }
    const before = pins.get(url);
    if (before !== undefined && before !== hex) throw new UserError(`--pin ${redactUrls(url)} is given twice with different digests`);
    pins.set(url, hex);
  }
  return pins;
}

/**
 * The pin for an upstream URL: --pin first (the operator's word for this build), then bundles/components.yaml,
 * then the lock file. A lock that disagrees with a pin is reported by the lock check, naming both.
 */
export function pinFor(url: string, sources: PinSources): Pin | undefined {
  const flag = sources.flags.get(url);
  if (flag !== undefined) return { sha256: flag, from: '--pin' };
  const listed = sources.components[url];
  if (listed !== undefined) return { sha256: listed, from: componentsFile() };
  const locked = sources.lock?.content.artifacts.find((a) => a.url === url);
  const hex = locked ? sha256Of(locked.digest) : undefined;
  if (hex !== undefined && sources.lock) return { sha256: hex, from: `lock file ${sources.lock.file}` };
  return undefined;
}

/** Fetch a release file (through the mirrors) into the cache, refusing any content but the pinned one. */
export async function fetchReleaseFile(fetcher: Fetcher, mirrors: Mirrors, url: string, what: string, pin: Pin | undefined): Promise<FetchResult> {
  const request = { url: resolveUrl(mirrors, url), label: `${what} (${url})` };
  if (!pin) {
    // downloaded only to tell the operator what to check; it stays an anonymous blob in the cache, never used
    const fetched = await fetcher.fetchToCache({ ...request, expected: {} });
    throw unpinned(url, fetched.sha256, mirrors);
  }
  try {
    return await fetcher.fetchToCache({ ...request, expected: { sha256: pin.sha256 } });
  } catch (err) {
    if (!(err instanceof DigestMismatchError)) throw err;
    throw new UserError(
      `${what}: ${url}${via(mirrors, url)} has sha256 ${err.actual}, expected ${pin.sha256} (pinned in ${pin.from})`,
      'the release file is not the one that was pinned: do not build with it; find out whether upstream replaced it or the mirror serves other bytes',
      { cause: err },
    );
  }
}

function unpinned(url: string, sha256: string, mirrors: Mirrors): UserError {
  return new UserError(
    `${url}${via(mirrors, url)} has no pinned sha256; the download has sha256:${sha256}`,
    `check that digest against the upstream release, then add it under releaseDigests in ${componentsFile()} (or pass --pin ${url}=sha256:<hex> for one build)`,
  );
}

/** " (via <mirror URL>)" when the file came from a mirror, so the operator knows which bytes were looked at. */
function via(mirrors: Mirrors, url: string): string {
  const fetched = shownUrl(mirrors, url);
  return fetched === url ? '' : ` (via ${fetched})`;
}
