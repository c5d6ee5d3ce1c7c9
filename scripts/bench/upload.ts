/**
 * Upload throughput of src/core/ssh against OpenSSH's scp, to one lab host, same file, same disk:
 *
 *   npm run bench -- upload [MiB=512] [rounds=3]
 *
 * Starts a 1-host lab (root; waits for none: fails if another lab is up), writes a file of random bytes, then in
 * the lab's netns alternates `scp` and Connection.upload (whose time includes connecting and the sha256 check on
 * the host) and prints each round, the medians and ratio = scp time / our time (>= 0.8 is the goal).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/core/ssh/connection.js';
import { startLab } from '../../test/lab/lab.js';
import { writeRandomFile } from '../../test/helpers/files.js';
import { REPO_ROOT } from './lib/measure.js';
import { median } from './lib/report.js';

/** How the install benchmark (and this one) runs the timed part inside the lab's network namespace. */
export const UPLOAD_CHILD = [process.execPath, '--import', 'tsx', `${REPO_ROOT}/scripts/bench/main.ts`, 'upload', '--child'];

interface BenchParams {
  ip: string;
  keyFile: string;
  knownHosts: string;
  file: string;
  sha256: string;
  rounds: number;
}

interface Round {
  scpSeconds: number;
  /** connect + upload + close, comparable with a whole scp run */
  uploadSeconds: number;
  /** of which connecting (handshake, host key check, auth) */
  connectSeconds: number;
}

const REMOTE_DIR = '/var/tmp/kb-bench';

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

function timeScp(p: BenchParams): number {
  const started = process.hrtime.bigint();
  const args = ['-q', '-i', p.keyFile, '-o', `UserKnownHostsFile=${p.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes'];
  const r = spawnSync('scp', [...args, p.file, `root@${p.ip}:${REMOTE_DIR}/scp.bin`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scp failed: ${r.stderr}`);
  return seconds(started);
}

async function timeUpload(p: BenchParams): Promise<Omit<Round, 'scpSeconds'>> {
  const started = process.hrtime.bigint();
  const conn = await connect({ host: p.ip, identityFile: p.keyFile }, { knownHostsFile: p.knownHosts, agentSocket: false });
  const connectSeconds = seconds(started);
  const result = await conn.upload(p.file, `${REMOTE_DIR}/upload.bin`, { sha256: p.sha256 });
  await conn.close();
  if (result.skipped || result.resumedFrom !== 0) throw new Error('the upload did not start from scratch');
  return { uploadSeconds: seconds(started), connectSeconds };
}

/** In the lab netns: alternate the two, starting from an empty remote directory each time. */
async function child(p: BenchParams): Promise<Round[]> {
  const conn = await connect({ host: p.ip, identityFile: p.keyFile }, { knownHostsFile: p.knownHosts, agentSocket: false });
  const clean = (): Promise<unknown> => conn.run(`rm -rf ${REMOTE_DIR} && mkdir -p ${REMOTE_DIR} && sync`);
  const rounds: Round[] = [];
  for (let i = 0; i < p.rounds; i++) {
    // alternate who goes first so page-cache writeback of the previous file hurts both alike
    let scpSeconds = 0;
    let upload: Omit<Round, 'scpSeconds'> | undefined;
    for (const which of i % 2 === 0 ? ['scp', 'upload'] : ['upload', 'scp']) {
      await clean();
      if (which === 'scp') scpSeconds = timeScp(p);
      else upload = await timeUpload(p);
    }
    rounds.push({ scpSeconds, ...upload! });
  }
  await conn.run(`rm -rf ${REMOTE_DIR}`);
  await conn.close();
  return rounds;
}

async function main(args: readonly string[]): Promise<void> {
  const mib = Number(args[0] ?? 512);
  const rounds = Number(args[1] ?? 3);
  const dir = mkdtempSync('/var/tmp/kb-bench-');
  const file = join(dir, 'bench.bin');
  const sha256 = writeRandomFile(file, mib);
  const lab = await startLab(1);
  try {
    const host = lab.hosts[0]!;
    const params: BenchParams = { ip: host.ip, keyFile: lab.keyFile, knownHosts: lab.knownHostsFile, file, sha256, rounds };
    const r = await lab.inNetns(UPLOAD_CHILD, {
      cwd: REPO_ROOT,
      env: { BENCH_PARAMS: JSON.stringify(params) },
      timeoutMs: 30 * 60_000,
    });
    const results = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Round[];
    const rate = (s: number): string => `${(mib / s).toFixed(0)} MiB/s`;
    console.log(`${mib} MiB to ${host.name} (${host.ip}), ${rounds} rounds`);
    results.forEach((x, i) =>
      console.log(
        `  round ${i + 1}: scp ${x.scpSeconds.toFixed(2)} s (${rate(x.scpSeconds)}), upload ${x.uploadSeconds.toFixed(2)} s (${rate(x.uploadSeconds)}; connect ${x.connectSeconds.toFixed(2)} s)`,
      ),
    );
    const scp = median(results.map((x) => x.scpSeconds));
    const upload = median(results.map((x) => x.uploadSeconds));
    console.log(`median: scp ${scp.toFixed(2)} s (${rate(scp)}), upload ${upload.toFixed(2)} s (${rate(upload)}), ratio ${(scp / upload).toFixed(2)}x scp throughput`);
  } finally {
    await lab.down();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `upload [MiB] [rounds]`, or `upload --child` in the lab's netns (BENCH_PARAMS in the environment): prints the rounds as JSON. */
export async function runUploadBench(args: readonly string[]): Promise<void> {
  if (args[0] !== '--child') return main(args);
  const rounds = await child(JSON.parse(process.env.BENCH_PARAMS ?? '{}') as BenchParams);
  process.stdout.write(`${JSON.stringify(rounds)}\n`);
}
