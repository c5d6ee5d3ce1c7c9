/**
 * Remote command lines: POSIX shell quoting, the sudo/env wrapper, and redaction of secrets from anything that
 * is logged or put into an error message; and what running one takes and gives, for the connection and for what
 * only needs to run commands (upload.ts).
 */
import type { Readable } from 'node:stream';

/** Quotes one word for a POSIX shell: 'it'\''s' */
export function shQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line actually sent: as root, the command itself; otherwise `sudo -n sh -c '...'` (-n: fail at
 * once instead of waiting for a password nobody can type). Environment variables are set with `env`, because
 * sshd drops the ones the client sends unless AcceptEnv lists them. Their values are visible in the host's
 * process list: secrets go on stdin, never here. A time limit is enforced on the host by coreutils `timeout`
 * (TERM, then KILL 5 s later, to the whole process group): closing the channel would not stop the command.
 */
export function wrapCommand(command: string, opts: { sudo: boolean; env?: Record<string, string>; timeoutSeconds?: number }): string {
  const assignments = Object.entries(opts.env ?? {}).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`invalid environment variable name '${k}'`);
    return shQuote(`${k}=${v}`);
  });
  const prefix = [
    ...(opts.sudo ? ['sudo', '-n'] : []),
    ...(assignments.length > 0 ? ['env', ...assignments] : []),
    ...(opts.timeoutSeconds !== undefined ? ['timeout', '-k', '5', String(opts.timeoutSeconds)] : []),
  ];
  return prefix.length === 0 ? command : `${prefix.join(' ')} sh -c ${shQuote(command)}`;
}

/** The exit status of `timeout` when the time limit was hit. */
export const TIMEOUT_EXIT_CODE = 124;

/**
 * The values that must never be shown: join tokens, certificate keys, registry passwords. One instance is shared
 * by all connections of a run, so a secret learned mid-install is hidden everywhere from then on.
 */
export class Secrets {
  private readonly values = new Set<string>();

  add(...secrets: string[]): void {
    for (const s of secrets) if (s !== '') this.values.add(s);
  }

  redact(text: string): string {
    let out = text;
    for (const s of this.values) out = out.split(s).join('***');
    return out;
  }
}

export interface ExecOptions {
  /** fed to the command's stdin, then EOF; the way to hand over secrets */
  stdin?: string | Buffer | Readable;
  /** environment for the command (visible in the host's process list: no secrets) */
  env?: Record<string, string>;
  /** stop the command on the host after this long and throw (its exit status 124 is taken as the timeout) */
  timeoutMs?: number;
  /** how a failure or timeout names the command, when `command` wraps it in plumbing the operator need not read */
  name?: string;
}

export interface ExecResult {
  /** exit status; null when the command was killed by a signal */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

/** What runs commands on a host: a Connection, or anything that stands in for one. */
export interface RemoteShell {
  /** how messages name the host */
  readonly label: string;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
}
