/**
 * The two kinds of failure the CLI knows.
 *
 * A UserError is something the operator can fix (a bad flag, a missing file, an upstream that said 404):
 * it prints one line with the cause and, when we know one, a hint, and exits 2.
 * Anything else is a bug or an unexpected fault: it exits 1 and shows its stack only under --debug.
 */
import { tooManyOpenFiles } from './open-files.js';

export class UserError extends Error {
  readonly exitCode: number = 2;
  constructor(
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UserError';
  }
}

function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/** Exit code and text for any thrown value; pure, so the entry point stays a thin shell. */
export function describeFailure(err: unknown, debug: boolean): { exitCode: number; text: string } {
  if (isUserError(err)) {
    const lines = [`error: ${err.message}`];
    if (err.hint) lines.push(`hint: ${err.hint}`);
    if (debug && err.stack) lines.push(err.stack);
    return { exitCode: err.exitCode, text: lines.join('\n') };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  // running out of file descriptors is the operator's to fix, wherever it struck: named, not reported as a bug
  const fds = tooManyOpenFiles((err as NodeJS.ErrnoException | undefined)?.code);
  if (fds) return { exitCode: 2, text: `error: ${e.message}: ${fds}${debug && e.stack ? `\n${e.stack}` : ''}` };
  const text = debug
    ? `internal error: ${e.stack ?? e.message}`
    : `internal error: ${e.message}\n(run again with --debug for the stack trace; please report it)`;
  return { exitCode: 1, text };
}

/**
 * A full disk (or quota) while writing `path` for `what` becomes an operator error naming both; anything else
 * is returned unchanged for the caller to rethrow.
 */
export function diskFullError(err: unknown, path: string, what: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new UserError(`no space left writing ${path} (${what})`, 'free space there, or point --cache / --output at a disk with room; the work done so far is kept and resumes', { cause: err });
  }
  return err;
}
