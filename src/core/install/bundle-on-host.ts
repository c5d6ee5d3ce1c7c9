/**
 * The bundle on a host: unpacked from the uploaded tar and checked against SHA256SUMS before anything in it runs.
 *
 * The operator's `verify` accepted the tar file, and the upload checked that the host got exactly that file. The
 * host still checks what tar actually unpacked, because that is what it runs: the unpacked tree must be SHA256SUMS
 * (whose own sha256 is the one verify accepted), every file it lists with that content, nothing else, and every
 * mode the one the packer gives its path. Owners and modes are not taken from the archive: tar runs with
 * --no-same-owner --no-same-permissions and the modes are set afterwards, from the paths. The same check runs
 * again on every later install run, before any phase uses the tree, so a file changed on the host after the
 * upload is refused there.
 *
 * These scripts are sent from the operator's machine, never taken from the bundle: the bundle's own scripts are
 * what they check.
 */
import { shQuote } from '../ssh/command.js';
import { SHA256_SHELL_FUNCTION } from '../ssh/upload.js';
import { INSTALLER_DIR, SIGNATURE_FILE, SUMS_FILE } from '../bundle/paths.js';

export interface BundleOnHost {
  /** the uploaded tar */
  tar: string;
  /** where it is unpacked */
  dir: string;
  /** sha256 of SHA256SUMS, from the operator's verify pass */
  sumsSha256: string;
  /** the bundle has SHA256SUMS.asc (the one file besides SHA256SUMS that SHA256SUMS does not list) */
  signed: boolean;
  /**
   * the paths this host stores (payload.ts), SHA256SUMS and its signature among them; absent: the whole bundle.
   * The check then wants exactly these files, each with its SHA256SUMS sha256.
   */
  only?: readonly string[];
}

/**
 * Unpack into `<dir>.partial` (only the host's own paths, when it stores a part), set the modes, check; only a
 * tree that checks out is moved to `dir`. `dropTar`: the uploaded file goes once unpacked (a host storing a part).
 */
export function unpackScript(b: BundleOnHost, opts: { dropTar?: boolean } = {}): string {
  const partial = shQuote(`${b.dir}.partial`);
  return [
    'set -eu',
    'umask 022',
    `rm -rf ${partial}`,
    `mkdir -p ${partial}`,
    ...(b.only
      ? [...listFile('members', b.only), `tar -xf ${shQuote(b.tar)} -C ${partial} --no-same-owner --no-same-permissions --verbatim-files-from -T "$tmp/members"`]
      : [`tar -xf ${shQuote(b.tar)} -C ${partial} --no-same-owner --no-same-permissions`]),
    finishScript(b),
    ...(opts.dropTar ? [`rm -f ${shQuote(b.tar)}`] : []),
  ].join('\n');
}

/** Set the modes of the tree in `<dir>.partial`, check it, and move it to `dir`. */
export function finishScript(b: BundleOnHost): string {
  const partial = shQuote(`${b.dir}.partial`);
  return [
    'set -eu',
    `cd ${partial}`,
    // the modes follow from the paths (paths.ts memberMode), not from the archive
    'find . -type d -exec chmod 0755 {} +',
    'find . -type f -exec chmod 0644 {} +',
    `find ./${INSTALLER_DIR} -mindepth 1 -maxdepth 1 -type f -name '*.sh' -exec chmod 0755 {} + 2>/dev/null || true`,
    checkLines({ ...b, dir: `${b.dir}.partial` }),
    'cd /',
    `rm -rf ${shQuote(b.dir)}`,
    `mv ${partial} ${shQuote(b.dir)}`,
  ].join('\n');
}

/** Check an unpacked tree as it is now; prints nothing and exits 0 when it is intact. */
export function checkScript(b: BundleOnHost): string {
  return ['set -eu', `cd ${shQuote(b.dir)}`, checkLines(b)].join('\n');
}

/**
 * The checks, run in the tree's directory. Names the first few offending paths, relative to `dir`, on stderr.
 * One hashing pass: the sorted `<sha256>  <path>` lines of every file but SHA256SUMS(.asc) must be SHA256SUMS
 * sorted, which covers content, missing files and extra files at once.
 */
/**
 * Reads SHA256SUMS, then the `<sha256>  <path>` lines of the files found, then the directories found; prints
 * one line per path that is missing, changed or not listed, and per directory that holds no listed file.
 */
const COMPARE_AWK = [
  'FILENAME == ARGV[1] { p = substr($0, 67); want[p] = substr($0, 1, 64); n = split(p, part, "/"); d = ""; for (i = 1; i < n; i++) { d = d (i > 1 ? "/" : "") part[i]; dir[d] = 1 } next }',
  'FILENAME == ARGV[2] { p = substr($0, 67); have[p] = substr($0, 1, 64); next }',
  '{ if (!($0 in dir)) print "  a directory holding no listed file: " $0 }',
  'END { for (p in want) if (!(p in have)) print "  missing: " p; else if (have[p] != want[p]) print "  changed: " p; for (p in have) if (!(p in want)) print "  not listed: " p }',
].join('\n');

/** `<sha256>  path` for every NUL-separated `./path` on stdin; OpenSSL's sha256 where present (faster than sha256sum). */
export const HASH_FILES = `{ if command -v openssl >/dev/null; then xargs -0 -r openssl dgst -sha256 -r | sed 's/ \\*\\.\\//  /'; else xargs -0 -r sha256sum | sed 's/  \\.\\//  /'; fi; }`;

/** Shell that writes `lines` to "$tmp/<name>" (making $tmp, removed on exit, when the script has none yet). */
function listFile(name: string, lines: readonly string[]): string[] {
  return [
    '[ -n "${tmp:-}" ] || { tmp=$(mktemp -d); trap \'rm -rf "$tmp"\' EXIT; }',
    `cat > "$tmp/${name}" <<'KUBE_BUNDLE_LIST'\n${lines.map((l) => `${l}\n`).join('')}KUBE_BUNDLE_LIST`,
  ];
}

function checkLines(b: BundleOnHost): string {
  const dir = shQuote(b.dir);
  const fail = (what: string) => `{ echo "${'$'}{d}: ${what}" >&2; exit 1; }`;
  return [
    `d=${dir}`,
    SHA256_SHELL_FUNCTION,
    `[ -f ${SUMS_FILE} ] && [ "$(sha256 < ${SUMS_FILE})" = ${b.sumsSha256} ] || ${fail(`${SUMS_FILE} is not the one the verified bundle has`)}`,
    `other=$(find . -mindepth 1 ! -type f ! -type d | head -n 5)`,
    `[ -z "$other" ] || ${fail('not a file or directory: $other')}`,
    b.signed ? `[ -f ${SIGNATURE_FILE} ] || ${fail(`${SIGNATURE_FILE} is missing`)}` : `[ ! -e ${SIGNATURE_FILE} ] || ${fail(`${SIGNATURE_FILE} is not in the verified bundle`)}`,
    `wrong=$(find . -mindepth 1 \\( -type d ! -perm 0755 \\) -o \\( -type f -path './${INSTALLER_DIR}/*' ! -path './${INSTALLER_DIR}/*/*' -name '*.sh' ! -perm 0755 \\) -o \\( -type f ! \\( -path './${INSTALLER_DIR}/*' ! -path './${INSTALLER_DIR}/*/*' -name '*.sh' \\) ! -perm 0644 \\) | head -n 5)`,
    `[ -z "$wrong" ] || ${fail('mode differs from the one kube-bundle packs: $wrong')}`,
    `wrong=$(find . -mindepth 1 ! -user 0 | head -n 5)`,
    `[ -z "$wrong" ] || ${fail('not owned by root: $wrong')}`,
    // every file hashed once; compared with SHA256SUMS by path, and every directory must hold a listed file
    ...(b.only ? listFile('only', b.only) : ['[ -n "${tmp:-}" ] || { tmp=$(mktemp -d); trap \'rm -rf "$tmp"\' EXIT; }']),
    // the files wanted: SHA256SUMS's lines, or those of the paths this host stores
    b.only ? `awk 'FILENAME == ARGV[1] { only[$0] = 1; next } substr($0, 67) in only' "$tmp/only" ${SUMS_FILE} > "$tmp/expected"` : `cp ${SUMS_FILE} "$tmp/expected"`,
    `find . -type f ! -path ./${SUMS_FILE} ! -path ./${SIGNATURE_FILE} -print0 | ${HASH_FILES} > "$tmp/actual"`,
    `find . -mindepth 1 -type d -printf '%P\\n' > "$tmp/dirs"`,
    `problems=$(awk '${COMPARE_AWK}' "$tmp/expected" "$tmp/actual" "$tmp/dirs" | LC_ALL=C sort | head -n 10)`,
    `[ -z "$problems" ] || { echo "${'$'}{d}: the unpacked bundle differs from its ${SUMS_FILE}:" >&2; echo "$problems" >&2; exit 1; }`,
  ].join('\n');
}
