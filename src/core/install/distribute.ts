/**
 * The bundle crosses the operator's link once: to the registry host. Every other host fetches its own part of it
 * (payload.ts) from there, inside the site, over SSH — the one service every host already runs — with a key
 * made for this install alone:
 *
 * - The operator makes an ed25519 key pair in memory. Its public half goes into the registry host's
 *   authorized_keys (of the user install logs in as) with `restrict`, a forced command and `from=` the other
 *   hosts' addresses: all it can do is have `serve-bundle` stream files the checked bundle tree lists. The line
 *   is removed when the phase ends, whatever the outcome (and any line an earlier, killed run left is replaced).
 * - Each host gets the private half on the pull script's stdin (never on disk but in a 0700 temporary directory
 *   removed when the script ends) and the registry host's host keys, read over the operator's verified
 *   connection, as its only known hosts: StrictHostKeyChecking stays on.
 * - The host asks only for the files it lacks or holds with another sha256 (a cut transfer resumes file by file),
 *   and checks the tree it got against the operator-verified SHA256SUMS before anything in it is used
 *   (bundle-on-host.ts), exactly as after a direct upload.
 *
 * A host that cannot fetch (its route to the registry host filtered, no ssh client, the key refused) falls back
 * to a direct upload from the operator; the summary names it and why. Nothing keeps running afterwards.
 */
import ssh2 from 'ssh2';
import { shQuote } from '../ssh/command.js';
import { SIGNATURE_FILE, SUMS_FILE } from '../bundle/paths.js';
import { HASH_FILES } from './bundle-on-host.js';
import { REMOTE_ROOT } from './host-paths.js';

/** The comment that marks the line in authorized_keys, so that it is found again and removed. */
export const KEY_COMMENT = 'kube-bundle-distribution';
/** The forced command on the registry host. */
export const SERVE_SCRIPT = `${REMOTE_ROOT}/serve-bundle`;

export interface DistributionKey {
  /** OpenSSH private key */
  private: string;
  /** `ssh-ed25519 AAAA…` */
  public: string;
}

export function makeDistributionKey(): DistributionKey {
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: KEY_COMMENT });
  return { private: pair.private, public: pair.public.trim().split(/\s+/).slice(0, 2).join(' ') };
}

/** The authorized_keys line: only the forced command, only from these addresses, nothing else (`restrict`). */
export function authorizedKeyLine(key: DistributionKey, bundleDir: string, from: readonly string[]): string {
  const options = ['restrict', `command="${SERVE_SCRIPT} ${bundleDir}"`, ...(from.length ? [`from="${from.join(',')}"`] : [])];
  return `${options.join(',')} ${key.public} ${KEY_COMMENT}`;
}

/**
 * The forced command: reads the wanted paths on stdin, one per line; refuses any SHA256SUMS does not list (it and
 * its signature excepted); streams the files as a tar. Sent from the operator's machine, not taken from the bundle.
 */
export function serveScript(): string {
  return [
    '#!/bin/sh',
    '# kube-bundle install: the forced command of the one-time distribution key (authorized_keys, comment',
    `# ${KEY_COMMENT}). Streams, as a tar, the files of the checked bundle tree "$1" that stdin asks for.`,
    'set -eu',
    'cd "$1"',
    'list=$(mktemp)',
    'trap \'rm -f "$list"\' EXIT',
    `awk 'FILENAME == ARGV[1] { ok[substr($0, 67)] = 1; next } ($0 in ok) || $0 == "${SUMS_FILE}" || $0 == "${SIGNATURE_FILE}" { print; next } { print "serve-bundle: not in the bundle: " $0 > "/dev/stderr"; exit 1 }' ${SUMS_FILE} - > "$list"`,
    'tar -cf - --no-recursion --verbatim-files-from -T "$list"',
  ].join('\n') + '\n';
}

/** Shell that adds (`line` given) or removes this key's line in `user`'s authorized_keys, keeping owner and mode. */
export function authorizedKeysScript(user: string, line: string | null): string {
  const u = shQuote(user);
  return [
    'set -eu',
    `home=$(getent passwd ${u} | cut -d: -f6)`,
    `[ -n "$home" ] || { echo "no user ${user.replace(/["$`\\]/g, '')} on this host" >&2; exit 1; }`,
    'f=$home/.ssh/authorized_keys',
    line === null ? '[ -f "$f" ] || exit 0' : `[ -f "$f" ] || { mkdir -p "$home/.ssh"; chmod 700 "$home/.ssh"; touch "$f"; chmod 600 "$f"; chown ${u}: "$home/.ssh" "$f"; }`,
    `{ grep -v ' ${KEY_COMMENT}$' "$f" || true; ${line === null ? '' : `echo ${shQuote(line)}; `}} > "$f.kube-bundle"`,
    'chown --reference="$f" "$f.kube-bundle"',
    'chmod --reference="$f" "$f.kube-bundle"',
    'mv -f "$f.kube-bundle" "$f"',
  ].join('\n');
}

/** The registry host's host keys as a known_hosts file for the other hosts (`[addr]:port` when not on 22). */
export function knownHostsFor(address: string, port: number, hostKeys: string): string {
  const pattern = port === 22 ? address : `[${address}]:${port}`;
  return hostKeys
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((w) => w.length >= 2 && /^(ssh-|ecdsa-|sk-)/.test(w[0]!))
    .map((w) => `${pattern} ${w[0]} ${w[1]}\n`)
    .join('');
}

export interface PullSource {
  address: string;
  port: number;
  user: string;
  knownHosts: string;
}

/**
 * On a host: fetch into `<dir>.partial` the files of `want` (`<sha256>  <path>` lines, from the verified
 * SHA256SUMS) it does not hold with that sha256, plus SHA256SUMS and its signature, from the registry host.
 * The private key comes on stdin. Prints `fetched <bytes>` on success; exit 3 and ssh's message when the registry
 * host could not be reached or refused the key. A tree moved into place by an earlier run is taken up again.
 */
export function pullScript(dir: string, want: string, source: PullSource, signed: boolean): string {
  const part = shQuote(`${dir}.partial`);
  const d = shQuote(dir);
  const ssh = [
    'ssh -T -F /dev/null -i "$tmp/key" -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes',
    '-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$tmp/known_hosts" -o GlobalKnownHostsFile=/dev/null',
    '-o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o LogLevel=ERROR',
    `-p ${source.port} -l ${shQuote(source.user)} ${shQuote(source.address)}`,
  ].join(' ');
  return [
    'set -eu',
    'umask 022',
    'command -v ssh >/dev/null || { echo "no ssh client on this host" >&2; exit 3; }',
    `[ -d ${part} ] || [ ! -d ${d} ] || mv ${d} ${part}`,
    `mkdir -p ${part}`,
    `cd ${part}`,
    'tmp=$(mktemp -d)',
    'trap \'rm -rf "$tmp"\' EXIT',
    '(umask 077; cat > "$tmp/key")',
    `printf '%s' ${shQuote(source.knownHosts)} > "$tmp/known_hosts"`,
    `cat > "$tmp/want" <<'KUBE_BUNDLE_WANT'\n${want}KUBE_BUNDLE_WANT`,
    // what is here already, right: one hashing pass over the partial tree
    `find . -type f ! -path ./${SUMS_FILE} ! -path ./${SIGNATURE_FILE} -print0 | ${HASH_FILES} > "$tmp/have"`,
    `{ echo ${SUMS_FILE}; ${signed ? `echo ${SIGNATURE_FILE}; ` : ''}awk 'FILENAME == ARGV[1] { have[$0] = 1; next } !($0 in have) { print substr($0, 67) }' "$tmp/have" "$tmp/want"; } > "$tmp/need"`,
    'while IFS= read -r p; do rm -f -- "$p"; done < "$tmp/need"',
    `{ ${ssh} < "$tmp/need" 2> "$tmp/ssh.err"; echo $? > "$tmp/ssh.rc"; } | tar -xf - --no-same-owner --no-same-permissions || true`,
    'rc=$(cat "$tmp/ssh.rc")',
    '[ "$rc" = 0 ] || { tail -n 3 "$tmp/ssh.err" >&2; [ "$rc" = 255 ] && exit 3; exit 1; }',
    // what the host stores and no longer needs (another role's part, a whole tree of an earlier install) goes
    `find . -type f ! -path ./${SUMS_FILE} ! -path ./${SIGNATURE_FILE} -printf '%P\\n' | awk 'FILENAME == ARGV[1] { w[substr($0, 67)] = 1; next } !($0 in w)' "$tmp/want" - | while IFS= read -r p; do rm -f -- "$p"; done`,
    'find . -mindepth 1 -type d -empty -delete',
    'bytes=0; while IFS= read -r p; do [ ! -f "$p" ] || bytes=$((bytes + $(stat -c %s -- "$p"))); done < "$tmp/need"',
    'echo "fetched $bytes"',
  ].join('\n');
}
