/**
 * The lab half of the install benchmark, on one 4-host lab (one lab start, and every install still gets hosts
 * nobody has installed on):
 *
 *   h1              `bundle install` with 1 control plane
 *   h2, h3, h4      `bundle install` with 1 control plane + 2 workers
 *   h1 afterwards   upload vs scp of bundle files, by upload.ts in its `--child` mode (which
 *                   alternates scp and src/core/ssh's upload, from an empty remote directory each time)
 *
 * Everything that talks to the hosts runs inside the lab's network namespace, as an operator's admin host would.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InstallSummary } from '../../../src/core/install/summary.js';
import { sha256File } from '../../../src/util/digest.js';
import { startLab, type Lab } from '../../../test/lab/lab.js';
import { UPLOAD_CHILD } from '../upload.js';
import type { BenchBundle } from './bundles.js';
import { DIST_CLI, log, REPO_ROOT, secondsSince } from './run.js';

const LAB_HOSTS = 4;
/** another run may hold the one lab of this machine: wait for it rather than fail */
export const LOCK_WAIT_MS = 15 * 60_000;
const INSTALL_TIMEOUT_MS = 10 * 60_000;

export interface InstallRun {
  /** "role" per host, in hosts-file order */
  roles: string[];
  hosts: string[];
  /** the CLI process, start to exit (verification, connecting, phases, summary) */
  wallSeconds: number;
  summary: InstallSummary;
}

/** One round of upload.ts's child; the shape of the JSON it prints. */
export interface UploadRound {
  scpSeconds: number;
  /** connect + upload + sha256 check on the host + close */
  uploadSeconds: number;
  connectSeconds: number;
}

export interface UploadRun {
  file: string;
  bytes: number;
  host: string;
  rounds: UploadRound[];
}

export interface LabResults {
  /** from asking for the lab until every host has booted, including any wait for the lock */
  labStartSeconds: number;
  installs: InstallRun[];
  uploads: UploadRun[];
}

export interface LabInputs {
  install: BenchBundle;
  pubkeyFile: string;
  /** bundle files to upload, in order */
  uploads: BenchBundle[];
  uploadRounds: number;
  dir: string;
}

export async function benchInLab(inputs: LabInputs): Promise<LabResults> {
  log(`starting a ${LAB_HOSTS}-host lab (waiting up to ${LOCK_WAIT_MS / 60_000} min for another run's lab to go)`);
  const started = process.hrtime.bigint();
  const lab = await startLab(LAB_HOSTS, { lockWaitMs: LOCK_WAIT_MS });
  try {
    const labStartSeconds = secondsSince(started);
    log(`lab up in ${labStartSeconds.toFixed(1)} s`);
    const installs = [
      await timeInstall(lab, inputs, [1], ['control-plane']),
      await timeInstall(lab, inputs, [2, 3, 4], ['control-plane', 'worker', 'worker']),
    ];
    const uploads: UploadRun[] = [];
    for (const bundle of inputs.uploads) uploads.push(await compareUpload(lab, bundle, 1, inputs.uploadRounds));
    return { labStartSeconds, installs, uploads };
  } finally {
    log('tearing the lab down');
    await lab.down();
  }
}

/**
 * `bundle install --json` (the compiled CLI) inside the lab's netns on the hosts `indexes` (1-based) with these
 * roles, from a hosts file written to `inputs.dir`; fails unless it exits 0 with an ok summary.
 */
export async function timeInstall(
  lab: Lab,
  inputs: { install: Pick<BenchBundle, 'file'> } & Pick<LabInputs, 'pubkeyFile' | 'dir'>,
  indexes: number[],
  roles: string[],
  timeoutMs = INSTALL_TIMEOUT_MS,
): Promise<InstallRun> {
  const hosts = indexes.map((i) => lab.hosts[i - 1]!);
  const hostsFile = join(inputs.dir, `hosts-${indexes.join('')}.txt`);
  await writeFile(hostsFile, hosts.map((h, k) => `${h.ip} ${roles[k]}`).join('\n') + '\n');
  const names = hosts.map((h) => h.name).join(', ');
  log(`bundle install on ${names}`);
  const started = process.hrtime.bigint();
  const r = await lab.inNetns(
    [process.execPath, DIST_CLI, 'install', '--hosts', hostsFile, '--bundle', inputs.install.file, '--pubkey', inputs.pubkeyFile,
      '-i', lab.keyFile, '--known-hosts', lab.knownHostsFile, '--json'],
    { check: false, timeoutMs, cwd: REPO_ROOT },
  );
  const wallSeconds = secondsSince(started);
  const summary = parseSummary(r.stdout);
  if (r.code !== 0 || !summary?.ok) {
    throw new Error(`bundle install on ${names} failed (exit code ${r.code}):\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  }
  log(`installed on ${names} in ${wallSeconds.toFixed(1)} s`);
  return { roles, hosts: hosts.map((h) => h.name), wallSeconds, summary };
}

function parseSummary(stdout: string): InstallSummary | undefined {
  try {
    return JSON.parse(stdout) as InstallSummary;
  } catch {
    return undefined; // the caller reports the output
  }
}

async function compareUpload(lab: Lab, bundle: BenchBundle, index: number, rounds: number): Promise<UploadRun> {
  const host = lab.hosts[index - 1]!;
  log(`upload vs scp of ${bundle.file} to ${host.name}, ${rounds} rounds`);
  const params = { ip: host.ip, keyFile: lab.keyFile, knownHosts: lab.knownHostsFile, file: bundle.file, sha256: (await sha256File(bundle.file)).sha256, rounds };
  const r = await lab.inNetns(UPLOAD_CHILD, {
    cwd: REPO_ROOT,
    env: { BENCH_PARAMS: JSON.stringify(params) },
    timeoutMs: 10 * 60_000,
  });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  return { file: bundle.file, bytes: bundle.bytes, host: host.name, rounds: JSON.parse(last) as UploadRound[] };
}

