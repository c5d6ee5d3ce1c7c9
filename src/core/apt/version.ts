/**
 * Debian package versions, ordered exactly as dpkg orders them (deb-version(7), dpkg's verrevcmp).
 *
 * A version is `[epoch:]upstream[-revision]`: the epoch ends at the first colon, the revision starts after the last
 * hyphen. Upstream and revision are compared by the same routine: alternating runs of non-digits (compared character
 * by character, `~` lowest, then end-of-string, then letters, then everything else) and runs of digits (compared as
 * numbers). A missing revision compares like "0", because both are an empty run followed by the number zero.
 */

export interface DebVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

const EPOCH = /^[0-9]+$/;
// Characters policy allows. dpkg merely warns about others (and about an upstream part not starting with a digit,
// which we accept), but a stray space, comma or parenthesis here means a field was split wrongly: refuse it.
const UPSTREAM_CHARS = /^[A-Za-z0-9.+~:-]+$/;
const REVISION_CHARS = /^[A-Za-z0-9.+~]+$/;

/** Split a version into its parts; `null` when it is not a valid Debian version. */
export function parseVersion(text: string): DebVersion | null {
  let rest = text;
  let epoch = 0;
  const colon = rest.indexOf(':');
  if (colon >= 0) {
    const epochText = rest.slice(0, colon);
    if (!EPOCH.test(epochText)) return null;
    epoch = Number(epochText);
    rest = rest.slice(colon + 1);
  }
  let revision = '';
  const hyphen = rest.lastIndexOf('-');
  if (hyphen >= 0) {
    revision = rest.slice(hyphen + 1);
    rest = rest.slice(0, hyphen);
    if (!REVISION_CHARS.test(revision)) return null;
  }
  if (!UPSTREAM_CHARS.test(rest)) return null;
  return { epoch, upstream: rest, revision };
}

export function isValidVersion(text: string): boolean {
  return parseVersion(text) !== null;
}

/** dpkg's weight of one character in a non-digit run; end of string weighs 0. */
function charOrder(code: number): number {
  if (code === 0x7e /* ~ */) return -1;
  if (isDigit(code)) return 0;
  if ((code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) return code;
  return code + 256;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** dpkg's verrevcmp: compare one upstream or revision part. */
function comparePart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // Non-digit run: compare character by character until both sides reach a digit.
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = i < a.length ? charOrder(a.charCodeAt(i)) : 0;
      const bc = j < b.length ? charOrder(b.charCodeAt(j)) : 0;
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    // Digit run: skip leading zeros, then the longer run is larger, else the first differing digit decides.
    while (a.charCodeAt(i) === 0x30) i++;
    while (b.charCodeAt(j) === 0x30) j++;
    let firstDiff = 0;
    while (i < a.length && isDigit(a.charCodeAt(i)) && j < b.length && isDigit(b.charCodeAt(j))) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a.charCodeAt(i))) return 1;
    if (j < b.length && isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/**
 * Compare two version strings: negative when a < b, 0 when equal, positive when a > b.
 * Throws on an invalid version so that a typo never silently sorts somewhere.
 */
export function compareVersions(a: string, b: string): number {
  if (a === b) return 0;
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (!va) throw new Error(`invalid Debian version '${a}'`);
  if (!vb) throw new Error(`invalid Debian version '${b}'`);
  return compareParsed(va, vb);
}

function compareParsed(a: DebVersion, b: DebVersion): number {
  if (a.epoch !== b.epoch) return a.epoch - b.epoch;
  return comparePart(a.upstream, b.upstream) || comparePart(a.revision, b.revision);
}
