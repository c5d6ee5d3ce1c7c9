/**
 * Running a contender as a child process and measuring it: wall time from spawn to exit, and the peak resident
 * set size as the kernel accounts it (GNU time's %M, from wait4's rusage: exact, no polling; the largest of the
 * process itself and any child it waited for, such as xz or dpkg-deb).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
export const REPO_ROOT = join(import.meta.dirname, '../../..');
/** The compiled CLI, as users run it (`npm run build` makes it). */
export const COMPILED_CLI = join(REPO_ROOT, 'dist/src/cli/main.js');
const GNU_TIME = '/usr/bin/time';

export interface Measured {
  seconds: number;
  peakRssBytes: number;
  stdout: string;
  stderr: string;
}

export function assertGnuTime(): void {
  if (!existsSync(GNU_TIME)) throw new Error(`${GNU_TIME} is missing: install it with \`apt-get install time\``);
}

/** Run `command args` under GNU time in `scratchDir` (which receives its report); fails on a non-zero exit. */
export async function runMeasured(command: string, args: string[], scratchDir: string): Promise<Measured> {
  const rssFile = join(scratchDir, `rss-${process.pid}-${Date.now()}.txt`);
  const started = process.hrtime.bigint();
  const { code, stdout, stderr } = await spawnCollecting(GNU_TIME, ['-f', '%M', '-o', rssFile, command, ...args]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) {
    await rm(rssFile, { force: true });
    throw new Error(`\`${command} ${args.join(' ')}\` exited with ${code}:\n${stderr.slice(-4000)}`);
  }
  const kib = Number((await readFile(rssFile, 'utf8')).trim().split('\n').pop());
  await rm(rssFile, { force: true });
  if (!Number.isFinite(kib)) throw new Error(`${GNU_TIME} wrote no peak RSS to ${rssFile}`);
  return { seconds, peakRssBytes: kib * 1024, stdout, stderr };
}

/** The compiled `bundle` CLI, measured. */
export function runBundle(args: string[], scratchDir: string): Promise<Measured> {
  return runMeasured(process.execPath, [COMPILED_CLI, ...args], scratchDir);
}

/** `npm run build`, so that the benchmark measures the CLI of the sources it sits next to. */
export async function compileCli(): Promise<void> {
  const { code, stderr, stdout } = await spawnCollecting('npm', ['run', 'build']);
  if (code !== 0) throw new Error(`\`npm run build\` exited with ${code}:\n${(stdout + stderr).slice(-4000)}`);
}

function spawnCollecting(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (err) => reject(new Error(`cannot start ${command}: ${err.message}`)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
