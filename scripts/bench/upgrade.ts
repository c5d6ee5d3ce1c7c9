/**
 * `npm run bench -- upgrade`: what a differential bundle costs to carry across the air gap, and how long
 * `bundle upgrade` takes in the lab.
 *
 *   1. size: full bundles of v1.32.3 and v1.32.4 and a differential v1.32.4 `--since` the v1.32.3 lock, built by the
 *      compiled CLI against the simulated upstream with images of roughly the real sizes (lib/realistic-images.ts;
 *      the test images are ~1 MB stand-ins, beside which a bundle's fixed parts would dominate). The content new to
 *      v1.32.4 is counted from the two FULL bundles, not from what the differential build says it carried: every
 *      package, image blob and manifest file of the v1.32.4 bundle whose sha256 the v1.32.3 bundle lacks.
 *      Target: differential size ÷ that content ≤ 1.02. The same for the test images (v1.33.1 since v1.32.4),
 *      where the fixed part shows on its own.
 *   2. time (root; the machine's lab): 1 control plane + 2 workers installed at v1.32.3, then `bundle upgrade` to
 *      v1.32.4 (full bundle) and to v1.33.1 (differential): wall time and the time of each phase.
 *
 * Prints a table and writes .work/bench-upgrade.json. Needs about 2 GiB under /var/tmp, removed afterwards.
 * BENCH_UPGRADE_SKIP_LAB=1 runs part 1 only.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { InstallSummary } from '../../src/core/install/summary.js';
import { buildTestBundles, type TestBundle } from '../../test/helpers/bundle.js';
import { startLab, type Lab } from '../../test/lab/lab.js';
import { DEFAULT_WORK_DIR } from '../../test/upstream/index.js';
import { timeInstall } from './install/lab.js';
import { DIST_CLI, secondsSince } from './install/run.js';
import { compileCli, REPO_ROOT, runBundle } from './lib/measure.js';
import { pushRealisticImages, REALISTIC_IMAGES, REALISTIC_V1_32_4_IMAGES } from './lib/realistic-images.js';
import { formatTable, mb, secs, times, type Row } from './lib/report.js';
import { startBenchUpstream } from './lib/upstream.js';

const run = promisify(execFile);
const WORK_PARENT = '/var/tmp';
const RESULT_FILE = join(REPO_ROOT, '.work/bench-upgrade.json');
const RATIO_TARGET = 1.02;
const LAB_LOCK_WAIT_MS = 30 * 60_000;
const UPGRADE_TIMEOUT_MS = 15 * 60_000;
/** what a bundle carries for the cluster; the rest (signature, sums, bundle.yaml, installer, indexes) is its fixed part */
const CONTENT = /^(packages\/[^/]+\.deb|images\/blobs\/sha256\/[0-9a-f]{64}|manifests\/.+)$/;

const log = (text: string): void => console.error(`[bench-upgrade] ${text}`);

interface SizeResult {
  scenario: string;
  fullBytes: number;
  differentialBytes: number;
  newContentBytes: number;
  newContentMembers: number;
}

interface UpgradeRun {
  to: string;
  bundle: string;
  bundleBytes: number;
  wallSeconds: number;
  summary: InstallSummary;
}

export async function runUpgradeBench(): Promise<void> {
  await compileCli();
  await mkdir(DEFAULT_WORK_DIR, { recursive: true });
  const dir = await mkdtemp(join(WORK_PARENT, 'kb-bench-upgrade-'));
  try {
    const sizes = [await realisticSizes(dir), await standInSizes(dir)];
    const upgrades = process.env.BENCH_UPGRADE_SKIP_LAB === '1' ? [] : await labUpgrades(dir);
    const rows = [...sizes.flatMap(sizeRows), ...upgradeRows(upgrades)];
    console.log('\nbundle build --since, and bundle upgrade of a 3-host lab cluster (compiled CLI)\n');
    console.log(formatTable(rows));
    console.log([
      '',
      'Notes: "new content" is counted from the two full bundles (packages, image blobs, manifest files whose sha256',
      'the older bundle lacks); the rest of a differential bundle is its fixed part: signature, SHA256SUMS,',
      'bundle.yaml, the installer scripts, the package index, images/index.json and 512-byte tar headers.',
      `Upgrade wall time is the CLI process inside the lab netns, from start to exit. Results: ${RESULT_FILE}`,
    ].join('\n'));
    await mkdir(join(REPO_ROOT, '.work'), { recursive: true });
    await writeFile(RESULT_FILE, JSON.stringify({
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, node: process.version },
      rows,
      sizes,
      upgrades: upgrades.map((u) => ({ ...u, summary: { seconds: u.summary.seconds, phases: u.summary.phases.map((p) => ({ title: p.title, status: p.status, seconds: p.seconds })) } })),
    }, null, 2) + '\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 1: sizes

/** v1.32.3 and v1.32.4 in full and v1.32.4 since v1.32.3, the images at real sizes. */
async function realisticSizes(dir: string): Promise<SizeResult> {
  const upstream = await startBenchUpstream({ upgrades: true });
  try {
    log('pushing images of real sizes for v1.32.3 and v1.32.4');
    await pushRealisticImages(upstream.backendUrl, [...REALISTIC_IMAGES, ...REALISTIC_V1_32_4_IMAGES]);
    const keys = join(dir, 'keys');
    await runBundle(['keygen', '--out', keys], dir);
    const common = [
      '-t', 'debian-12', '--key', join(keys, 'signer.asc'), '--json', '--cache', join(dir, 'cache'),
      '--trust-key', upstream.k8sKeyFile, ...upstream.pins.flatMap((p) => ['--pin', p]), ...upstream.mirrors.flatMap((m) => ['--mirror', m]),
    ];
    const build = async (version: string, out: string, extra: string[] = []): Promise<{ file: string; lockFile: string }> => {
      const file = join(dir, out);
      log(`bundle build ${version} ${extra.join(' ')}`);
      const r = await runBundle(['build', version, '-o', file, ...common, ...extra], dir);
      return { file, lockFile: (JSON.parse(r.stdout) as { lockFile: string }).lockFile };
    };
    const base = await build('v1.32.3', 'real-v1.32.3.tar');
    const full = await build('v1.32.4', 'real-v1.32.4.tar');
    const diff = await build('v1.32.4', 'real-v1.32.4-since-v1.32.3.tar', ['--since', base.lockFile]);
    return await measureSizes('images of real sizes: v1.32.4 since v1.32.3', base.file, full.file, diff.file);
  } finally {
    await upstream.stop();
  }
}

/** The test bundles (the same builds the upgrade e2e makes): v1.33.1 since v1.32.4, ~1 MB stand-in images. */
async function standInSizes(dir: string): Promise<SizeResult> {
  const [, base, full, diff] = await standInBundles(join(dir, 'stand-in'));
  return measureSizes('test images (~1 MB stand-ins): v1.33.1 since v1.32.4', base!.file, full!.file, diff!.file);
}

let standIn: Promise<TestBundle[]> | undefined;
/** v1.32.3, v1.32.4, v1.33.1 full, v1.33.1 since v1.32.4: built once, for the sizes and the lab. */
function standInBundles(dir: string): Promise<TestBundle[]> {
  standIn ??= mkdir(dir, { recursive: true }).then(() => {
    log('building the test bundles (v1.32.3, v1.32.4, v1.33.1, v1.33.1 since v1.32.4)');
    return buildTestBundles(dir, [{ version: 'v1.32.3' }, { version: 'v1.32.4' }, { version: 'v1.33.1' }, { version: 'v1.33.1', sinceIndex: 1 }]);
  });
  return standIn;
}

async function measureSizes(scenario: string, baseFile: string, fullFile: string, diffFile: string): Promise<SizeResult> {
  const baseHashes = new Set((await contentMembers(baseFile)).map((m) => m.sha256));
  const fresh = (await contentMembers(fullFile)).filter((m) => !baseHashes.has(m.sha256));
  const result: SizeResult = {
    scenario,
    fullBytes: (await stat(fullFile)).size,
    differentialBytes: (await stat(diffFile)).size,
    newContentBytes: fresh.reduce((sum, m) => sum + m.size, 0),
    newContentMembers: fresh.length,
  };
  log(`${scenario}: differential ${result.differentialBytes} B, new content ${result.newContentBytes} B in ${result.newContentMembers} files`);
  return result;
}

/** The content members of a bundle, with their sha256 (from its SHA256SUMS) and size (from the tar listing). */
async function contentMembers(bundle: string): Promise<{ path: string; sha256: string; size: number }[]> {
  const big = { maxBuffer: 64 << 20 };
  const sums = (await run('tar', ['-xOf', bundle, 'SHA256SUMS'], big)).stdout;
  const hashes = new Map(sums.trim().split('\n').map((line) => {
    const [hex, path] = line.split(/\s+\*?/) as [string, string];
    return [path, hex];
  }));
  // `tar -tv`: mode owner/group size date time path
  const listing = (await run('tar', ['--numeric-owner', '-tvf', bundle], big)).stdout;
  const members: { path: string; sha256: string; size: number }[] = [];
  for (const line of listing.trim().split('\n')) {
    const fields = line.split(/\s+/);
    const path = fields.slice(5).join(' ');
    if (!CONTENT.test(path)) continue;
    const sha256 = hashes.get(path);
    if (!sha256) throw new Error(`${bundle}: ${path} is not in its SHA256SUMS`);
    members.push({ path, sha256, size: Number(fields[2]) });
  }
  return members;
}

function sizeRows(s: SizeResult): Row[] {
  const ratio = s.differentialBytes / s.newContentBytes;
  return [
    { measure: s.scenario, value: '', target: '' },
    { measure: '  full bundle of the newer version', value: `${mb(s.fullBytes)} (${s.fullBytes} B)`, target: '' },
    { measure: `  content new to it (${s.newContentMembers} files)`, value: `${mb(s.newContentBytes)} (${s.newContentBytes} B)`, target: '' },
    { measure: '  differential bundle', value: `${mb(s.differentialBytes)} (${s.differentialBytes} B)`, target: '' },
    { measure: '  differential ÷ new content', value: times(ratio), target: `≤ ${times(RATIO_TARGET)}`, met: ratio <= RATIO_TARGET },
    { measure: '  fixed part (differential − new content)', value: `${((s.differentialBytes - s.newContentBytes) / 1e3).toFixed(1)} kB`, target: '' },
    { measure: '  differential ÷ full', value: times(s.differentialBytes / s.fullBytes), target: '' },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// 2: upgrade wall time in the lab

async function labUpgrades(dir: string): Promise<UpgradeRun[]> {
  const [v1323, v1324, , v1331diff] = await standInBundles(join(dir, 'stand-in'));
  log(`starting a 3-host lab (waiting up to ${LAB_LOCK_WAIT_MS / 60_000} min for another run's lab to go)`);
  const lab = await startLab(3, { lockWaitMs: LAB_LOCK_WAIT_MS });
  try {
    const install = await timeInstall(lab, { install: v1323!, pubkeyFile: v1323!.pubkey, dir }, [1, 2, 3], ['control-plane', 'worker', 'worker']);
    log(`installed v1.32.3 in ${install.wallSeconds.toFixed(1)} s`);
    const hostsFile = join(dir, 'hosts-123.txt'); // written by timeInstall
    return [
      await timeUpgrade(lab, hostsFile, 'v1.32.4', v1324!),
      await timeUpgrade(lab, hostsFile, 'v1.33.1', v1331diff!),
    ];
  } finally {
    log('tearing the lab down');
    await lab.down();
  }
}

async function timeUpgrade(lab: Lab, hostsFile: string, to: string, bundle: TestBundle): Promise<UpgradeRun> {
  log(`bundle upgrade to ${to} (${bundle.file.split('/').at(-1)})`);
  const started = process.hrtime.bigint();
  const r = await lab.inNetns(
    [process.execPath, DIST_CLI, 'upgrade', '--hosts', hostsFile, '--bundle', bundle.file, '--pubkey', bundle.pubkey,
      '-i', lab.keyFile, '--known-hosts', lab.knownHostsFile, '--json'],
    { check: false, timeoutMs: UPGRADE_TIMEOUT_MS, cwd: REPO_ROOT },
  );
  const wallSeconds = secondsSince(started);
  let summary: InstallSummary | undefined;
  try {
    summary = JSON.parse(r.stdout) as InstallSummary;
  } catch {
    // reported below
  }
  if (r.code !== 0 || !summary?.ok) throw new Error(`bundle upgrade to ${to} failed (exit code ${r.code}):\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  log(`upgraded to ${to} in ${wallSeconds.toFixed(1)} s`);
  return { to, bundle: bundle.file.split('/').at(-1)!, bundleBytes: (await stat(bundle.file)).size, wallSeconds, summary };
}

function upgradeRows(upgrades: UpgradeRun[]): Row[] {
  return upgrades.flatMap((u) => [
    { measure: `upgrade 1 control plane + 2 workers to ${u.to} (${u.bundle}, ${mb(u.bundleBytes)}), wall`, value: secs(u.wallSeconds), target: '' },
    ...u.summary.phases.map((p) => ({ measure: `  ${p.title}`, value: p.status === 'ok' ? secs(p.seconds) : `${secs(p.seconds)} (${p.status})`, target: '' })),
  ]);
}
