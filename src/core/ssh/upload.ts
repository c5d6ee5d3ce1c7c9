/**
 * Uploads over an exec channel: the bytes are piped into a small shell script on the host instead of SFTP. That
 * works through `sudo` unchanged (SFTP would write as the login user), needs no request/acknowledge round trips,
 * and lets the host hash the data as it lands (tee | sha256), so verifying costs no second read of the file.
 *
 * Layout on the host: `<path>.partial` while in flight, renamed to `<path>` only after the host computed the
 * expected sha256. An interrupted upload leaves the partial, and the next one continues from its size.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, pipeline } from 'node:stream';
import { SHA256_HEX, sha256File } from '../../util/digest.js';
import { UserError } from '../../util/errors.js';
import { shQuote, type ExecOptions, type RemoteShell } from './command.js';

export interface UploadOptions {
  /** expected sha256 (hex) of the file; computed from the local file when absent */
  sha256?: string;
  /** file mode on the host (default 0o644) */
  mode?: number;
  /** bytes on the host so far (counting a resumed prefix) out of the total */
  onProgress?(done: number, total: number): void;
}

export interface UploadResult {
  /** the host already had the file with this sha256; nothing was sent */
  skipped: boolean;
  /** bytes that were already on the host in a partial upload */
  resumedFrom: number;
  bytesSent: number;
}

/** Runs one of the scripts below; a failure is described by what it was for, not by the script's text. */
async function runScript(conn: RemoteShell, what: string, script: string, opts?: ExecOptions): Promise<{ answer: string; stderr: string }> {
  const result = await conn.exec(script, opts);
  const stderr = result.stderr.trim();
  if (result.code !== 0) throw new UserError(`${conn.label}: ${what} failed${stderr ? `: ${stderr.split('\n').slice(-5).join('\n  ')}` : ''}`);
  return { answer: result.stdout.trim(), stderr };
}

/** Local reads this large keep the channel's send buffer full without many small writes. */
const READ_CHUNK = 1 << 20;


/**
 * A shell function printing the sha256 of stdin: OpenSSL's (SHA-NI/AVX2 code, several times faster than
 * coreutils' sha256sum as Debian builds it) when installed, which it is wherever ca-certificates is.
 */
export const SHA256_SHELL_FUNCTION = 'sha256() { if command -v openssl >/dev/null; then openssl dgst -sha256 -r; else sha256sum; fi | cut -c1-64; }';

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Prints `same` (and fixes the mode) when the target already has the content, else the size of the partial
 * (0 when none). The target is only hashed when its size is right, which is cheap to check.
 */
function probeScript(path: string, size: number, sha256: string, mode: number): string {
  const f = shQuote(path);
  const p = shQuote(`${path}.partial`);
  return [
    SHA256_SHELL_FUNCTION,
    `if [ -f ${f} ] && [ "$(stat -c %s ${f})" = ${size} ] && [ "$(sha256 < ${f})" = ${sha256} ]; then chmod ${octal(mode)} ${f}; echo same; exit 0; fi`,
    `if [ -f ${p} ]; then stat -c %s ${p}; else echo 0; fi`,
  ].join('\n');
}

/**
 * Appends stdin to the partial (truncated first when starting over) while hashing partial + stdin, then:
 * `ok` after the atomic rename; `short N` when stdin ended early (the partial is kept for resuming);
 * `mismatch HASH` when complete but wrong (the partial is removed, it cannot be resumed).
 */
function transferScript(path: string, offset: number, size: number, sha256: string, mode: number): string {
  const f = shQuote(path);
  const p = shQuote(`${path}.partial`);
  return [
    'set -e',
    SHA256_SHELL_FUNCTION,
    `mkdir -p "$(dirname ${f})"`,
    'umask 077', // the partial is private until complete: it may be a secret, and it is not yet valid
    // resuming: the partial must still be the size the probe saw (no other upload of it running meanwhile)
    offset === 0 ? `: > ${p}` : `[ "$(stat -c %s ${p})" = ${offset} ] || { echo "${path}.partial changed since it was measured" >&2; exit 1; }`,
    // a failed write (disk full) shows on stderr and as a short size below
    `h=$({ cat ${p}; tee -a ${p}; } | sha256)`,
    `s=$(stat -c %s ${p})`,
    `if [ "$s" -lt ${size} ]; then echo "short $s"; exit 0; fi`,
    `if [ "$s" != ${size} ] || [ "$h" != ${sha256} ]; then rm -f ${p}; echo "mismatch $h"; exit 0; fi`,
    `chmod ${octal(mode)} ${p}`,
    `mv -f ${p} ${f}`,
    'echo ok',
  ].join('\n');
}

async function sendFrom(
  conn: RemoteShell,
  localFile: string,
  remotePath: string,
  offset: number,
  size: number,
  sha256: string,
  opts: UploadOptions,
): Promise<{ answer: string; stderr: string }> {
  let done = offset;
  opts.onProgress?.(done, size);
  // counts in transform(), not with a 'data' listener: that would start the flow before the channel is open
  const counter = new Transform({
    highWaterMark: READ_CHUNK,
    transform(chunk: Buffer, _encoding, callback) {
      done += chunk.length;
      opts.onProgress?.(done, size);
      callback(null, chunk);
    },
  });
  // a read error destroys `counter` with it, which fails the exec; closing the channel early destroys both
  pipeline(createReadStream(localFile, { start: offset, highWaterMark: READ_CHUNK }), counter, () => {});
  const script = transferScript(remotePath, offset, size, sha256, opts.mode ?? 0o644);
  return runScript(conn, `upload of ${localFile} to ${remotePath}`, script, { stdin: counter });
}

export async function uploadFile(conn: RemoteShell, localFile: string, remotePath: string, opts: UploadOptions): Promise<UploadResult> {
  let size: number;
  try {
    size = (await stat(localFile)).size;
  } catch (err) {
    throw new UserError(`cannot read ${localFile}: ${(err as Error).message}`, undefined, { cause: err });
  }
  const sha256 = (opts.sha256 ?? (await sha256File(localFile)).sha256).toLowerCase();
  if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256: '${sha256}'`);
  const mode = opts.mode ?? 0o644;

  const probe = (await runScript(conn, `checking ${remotePath}`, probeScript(remotePath, size, sha256, mode))).answer;
  if (probe === 'same') {
    opts.onProgress?.(size, size);
    return { skipped: true, resumedFrom: 0, bytesSent: 0 };
  }
  const partial = Number(probe);
  // a partial longer than the file cannot be a prefix of it: start over
  const resumedFrom = Number.isInteger(partial) && partial <= size ? partial : 0;

  let outcome = await sendFrom(conn, localFile, remotePath, resumedFrom, size, sha256, opts);
  let bytesSent = size - resumedFrom;
  if (outcome.answer.startsWith('mismatch') && resumedFrom > 0) {
    // the partial came from another version of the file; the host removed it, send everything once more
    outcome = await sendFrom(conn, localFile, remotePath, 0, size, sha256, opts);
    bytesSent += size;
  }
  const { answer, stderr } = outcome;
  if (answer === 'ok') return { skipped: false, resumedFrom, bytesSent };
  const where = `${conn.label}:${remotePath}`;
  if (answer.startsWith('short')) {
    const why = stderr ? ` (${stderr.split('\n').at(-1)})` : '';
    throw new UserError(`upload of ${localFile} to ${where} stopped at ${answer.slice(6)} of ${size} bytes${why}`, 'run again to continue where it stopped');
  }
  if (answer.startsWith('mismatch')) {
    throw new UserError(
      `${where} does not have the expected content after upload: sha256 on the host is ${answer.slice(9)}, expected ${sha256} (from ${localFile})`,
      'the local file differs from what its checksum says (corrupt or changed during the upload); check it and run again',
    );
  }
  throw new Error(`${where}: unexpected answer from the upload script: '${answer}'`);
}

export async function uploadSmallFile(conn: RemoteShell, bytes: string | Buffer, remotePath: string, mode: number): Promise<void> {
  const f = shQuote(remotePath);
  const t = shQuote(`${remotePath}.tmp`);
  const script = ['set -e', `mkdir -p "$(dirname ${f})"`, 'umask 077', `cat > ${t}`, `chmod ${octal(mode)} ${t}`, `mv -f ${t} ${f}`].join('\n');
  await runScript(conn, `writing ${remotePath}`, script, { stdin: bytes });
}
