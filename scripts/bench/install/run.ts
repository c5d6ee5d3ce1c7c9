/** Child processes for the install benchmark: run to completion, collect the output, time from spawn to exit. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '../../..');
/** The compiled CLI (`npm run build`), as an operator runs the installed package. */
export const DIST_CLI = join(REPO_ROOT, 'dist/src/cli/main.js');

export interface Ran {
  stdout: string;
  stderr: string;
  seconds: number;
}

export const log = (text: string): void => console.error(`[bench-install] ${text}`);

export function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/**
 * Runs `command args` in the repository root. Async on purpose: the simulated upstream serves from this process,
 * so a blocking spawnSync would starve it. Throws on a non-zero exit, naming the command and the tail of its output.
 */
export function run(command: string, args: string[], opts: { cwd?: string } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { cwd: opts.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (err) => reject(new Error(`cannot start ${command}: ${err.message}`)));
    child.on('close', (code, signal) => {
      const seconds = secondsSince(started);
      if (code === 0) return resolve({ stdout, stderr, seconds });
      const tail = `${stdout.trim()}\n${stderr.trim()}`.trim().slice(-4000); // tsc, for one, reports on stdout
      reject(new Error(`\`${command} ${args.join(' ')}\` failed (${signal ?? `exit code ${code}`}):\n${tail}`));
    });
  });
}

/** The compiled `bundle` CLI. */
export function runBundle(args: string[]): Promise<Ran> {
  return run(process.execPath, [DIST_CLI, ...args]);
}
