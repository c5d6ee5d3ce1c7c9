/**
 * The open files limit of this process, and the sentence that names it when it is reached: "EMFILE" alone (as in
 * `connect EMFILE 10.0.0.5:22`) tells an operator nothing.
 */
import { readFileSync } from 'node:fs';

/** The soft limit of open files of this process from /proc/self/limits ("unlimited" is Infinity); undefined off Linux. */
export function openFilesLimit(limits = readProcLimits()): number | undefined {
  const soft = limits?.match(/^Max open files\s+(\S+)/m)?.[1];
  if (soft === undefined) return undefined;
  return soft === 'unlimited' ? Infinity : Number(soft);
}

function readProcLimits(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
}

/** For an error code of too many open files, in this process (EMFILE) or the whole system (ENFILE), the cause in words. */
export function tooManyOpenFiles(code: unknown): string | undefined {
  if (code === 'EMFILE') {
    return `too many open files in this process (EMFILE; its limit is ${openFilesLimit() ?? 'unknown'}): an install holds one SSH connection per host; raise the hard limit (ulimit -Hn) or put fewer hosts in one run`;
  }
  if (code === 'ENFILE') return 'too many open files on this machine (ENFILE: the system-wide limit, fs.file-max, is reached)';
  return undefined;
}
