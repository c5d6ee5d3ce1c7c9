/**
 * Install at scale (issue 13): what `bundle install` costs the operator's link and each host as the number of
 * hosts grows, and how its time grows when that link is the limit.
 *
 *   npm run bench -- install-scale      (root; runs `npm run build` first)
 *
 * Builds one bundle (v1.32.3, debian-12, --runtime containerd, plus one image with a ~200 MiB incompressible layer
 * that no node pulls, so that images are most of the bundle as in a real one; the download cache is kept, see
 * install/bundles.ts) and stops the simulated upstream: the installs run without it. Then for each link mode (full
 * speed, then the operator's egress throttled to 20 MB/s) and each N (1, 4, 8: one control plane + N−1 workers),
 * on a fresh N-host lab: `bundle install --json` (the compiled CLI, inside the lab's netns, as an operator's admin
 * host), counting the bytes on the operator's interface around it (install/operator-link.ts), then on every host
 * the bytes install stored and the memory in use (install/stored.ts). The lab is torn down after every run.
 *
 * Per N it reports bytes the operator sent and received, what each role stored, wall time and time per phase (from
 * the --json summary), and checks the targets: operator egress ≤ 1.1 × bundle + 5 MB × N; a worker stores
 * ≤ its packages + the installer (bounded from above by everything in the bundle but images/); throttled,
 * time(8) ≤ 1.5 × time(1). Prints a table and writes .work/bench-install-scale.json.
 *
 * Environment:
 *   BENCH_SCALE_HOSTS=1,4,8,16   host counts (default 1,4,8). Memory allows 16 (a host holds ~160 MB resident after
 *                                the install; see HOST_MEMORY_BUDGET), but on a 2-core machine the packages phase
 *                                is CPU-bound and grows linearly with N: 16 adds about 20 minutes (both link modes).
 *   BENCH_SCALE_LINKS=throttled  one link mode only (full or throttled)
 *   BENCH_SCALE_BUNDLE=standard  the bundle without the big image (42 MB, images 1 MB): quicker, but then the
 *                                bound on what a worker stores is almost the whole bundle
 *   Quick mode: BENCH_SCALE_HOSTS=1,8 BENCH_SCALE_LINKS=throttled.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { readTar } from '../../src/core/bundle/tar.js';
import { IMAGES_DIR } from '../../src/core/bundle/paths.js';
import { startLab } from '../../test/lab/lab.js';
import { BIG_IMAGE_REF, buildBundle, compileCli, type BenchBundle, type BundleKind } from './install/bundles.js';
import { LOCK_WAIT_MS, timeInstall, type InstallRun } from './install/lab.js';
import { checkOperatorCounter, counterDelta, operatorCounters, OPERATOR_INTERFACE, throttleOperatorLink, type CounterCheck, type LinkCounters } from './install/operator-link.js';
import { log, REPO_ROOT, secondsSince } from './install/run.js';
import { storedOn, type Stored } from './install/stored.js';
import { formatTable, mb, times, type Row } from './lib/report.js';

const WORK_PARENT = '/var/tmp';
const RESULT_FILE = join(REPO_ROOT, '.work/bench-install-scale.json');
const HOST_COUNTS = [1, 4, 8];
const LINK_MODES = ['full', 'throttled'] as const;
type LinkMode = (typeof LINK_MODES)[number];
/** the throttled operator link: 20 MB/s */
const THROTTLE_BYTES_PER_SECOND = 20e6;
/**
 * Memory one lab host needs, with room to spare: after an install (1 or 4 hosts, measured by this benchmark), the
 * processes of a host summed to at most ~160 MB resident (shared pages counted in each); its page cache (the
 * bundle it unpacked, the packages it installed) comes on top and can be reclaimed.
 */
const HOST_MEMORY_BUDGET = 512 * 2 ** 20;
const INSTALL_TIMEOUT_MS = 20 * 60_000;
// the targets
const EGRESS_PER_BUNDLE = 1.1;
const EGRESS_PER_HOST = 5e6;
const THROTTLED_TIME_RATIO = 1.5;
const TIME_RATIO_HOSTS = 8;

interface ScaleRun {
  hosts: number;
  link: LinkMode;
  labStartSeconds: number;
  install: InstallRun;
  operator: LinkCounters;
  stored: Stored[];
}

interface BundleParts {
  bytes: number;
  /** sum of the sizes of every file in the bundle but images/: a bound on what a worker needs */
  withoutImagesBytes: number;
  imagesBytes: number;
}

export async function runInstallScaleBench(): Promise<void> {
  const counts = hostCounts();
  const links = linkModes();
  await compileCli();
  const dir = await mkdtemp(join(WORK_PARENT, 'kb-bench-scale-'));
  try {
    const kind = bundleKind();
    const { bundle, pubkeyFile } = await buildBundle(dir, kind);
    const parts = await bundleParts(bundle);
    const runs: ScaleRun[] = [];
    let counterCheck: CounterCheck | undefined;
    for (const link of links) {
      for (const hosts of counts) {
        runs.push(
          await scaleRun(hosts, link, { install: bundle, pubkeyFile, dir }, async (lab) => {
            if (!counterCheck && lab.hosts.length >= 2) counterCheck = await checkOperatorCounter(lab);
          }),
        );
      }
    }
    const rows = [...bundleRows(parts), ...counterRows(counterCheck), ...links.flatMap((link) => linkRows(link, runs.filter((r) => r.link === link), parts))];
    const extra = kind === 'big' ? ` --image ${BIG_IMAGE_REF}` : '';
    console.log(`\nbundle install v1.32.3 -t debian-12 --runtime containerd${extra} at N hosts (1 control plane + N−1 workers, fresh lab each), compiled CLI, upstream stopped\n`);
    console.log(formatTable(rows));
    console.log(notes(counts));
    await writeResults(rows, runs, parts, kind, counterCheck);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function hostCounts(): number[] {
  const asked = process.env.BENCH_SCALE_HOSTS?.split(',').map(Number);
  if (asked && !asked.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`BENCH_SCALE_HOSTS must list host counts like 1,4,8, got '${process.env.BENCH_SCALE_HOSTS}'`);
  const available = memAvailableBytes();
  return (asked ?? HOST_COUNTS).filter((n) => {
    if (n * HOST_MEMORY_BUDGET <= available) return true;
    log(`skipping N = ${n}: ${n} hosts × ${mb(HOST_MEMORY_BUDGET)} exceeds the ${mb(available)} of memory available`);
    return false;
  });
}

function bundleKind(): BundleKind {
  const asked = process.env.BENCH_SCALE_BUNDLE ?? 'big';
  if (asked !== 'big' && asked !== 'standard') throw new Error(`BENCH_SCALE_BUNDLE must be big or standard, got '${asked}'`);
  return asked;
}

function linkModes(): readonly LinkMode[] {
  const asked = process.env.BENCH_SCALE_LINKS?.split(',');
  if (!asked) return LINK_MODES;
  const bad = asked.filter((l) => !(LINK_MODES as readonly string[]).includes(l));
  if (bad.length) throw new Error(`BENCH_SCALE_LINKS: unknown link mode(s) ${bad.join(', ')}; use ${LINK_MODES.join(',')}`);
  return LINK_MODES.filter((l) => asked.includes(l));
}

/** MemAvailable: os.freemem() leaves out the page cache the kernel would give up */
function memAvailableBytes(): number {
  const kib = Number(/^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);
  if (!Number.isFinite(kib)) throw new Error('/proc/meminfo has no MemAvailable');
  return kib * 1024;
}

/** One fresh N-host lab: install, count, measure, tear down; `after` runs on the lab once the figures are taken. */
async function scaleRun(
  hosts: number,
  link: LinkMode,
  inputs: Parameters<typeof timeInstall>[1],
  after: (lab: Awaited<ReturnType<typeof startLab>>) => Promise<void>,
): Promise<ScaleRun> {
  log(`N = ${hosts}, ${link} link: starting a ${hosts}-host lab`);
  const started = process.hrtime.bigint();
  const lab = await startLab(hosts, { lockWaitMs: LOCK_WAIT_MS });
  try {
    const labStartSeconds = secondsSince(started);
    if (link === 'throttled') await throttleOperatorLink(lab, THROTTLE_BYTES_PER_SECOND);
    const roles = lab.hosts.map((_, k) => (k === 0 ? 'control-plane' : 'worker'));
    const before = await operatorCounters(lab);
    const install = await timeInstall(lab, inputs, lab.hosts.map((h) => h.index), roles, INSTALL_TIMEOUT_MS);
    const operator = counterDelta(before, await operatorCounters(lab));
    const stored = await Promise.all(lab.hosts.map((h) => storedOn(lab, h.index)));
    await after(lab);
    return { hosts, link, labStartSeconds, install, operator, stored };
  } finally {
    await lab.down();
  }
}

async function bundleParts(bundle: BenchBundle): Promise<BundleParts> {
  let withoutImagesBytes = 0;
  let imagesBytes = 0;
  for await (const item of readTar(bundle.file)) {
    if (item.kind === 'defect') throw new Error(`${bundle.file}: ${item.defect.detail}`);
    if (item.entry.type !== 'file') continue;
    if (item.entry.path.startsWith(`${IMAGES_DIR}/`)) imagesBytes += item.entry.size;
    else withoutImagesBytes += item.entry.size;
  }
  return { bytes: bundle.bytes, withoutImagesBytes, imagesBytes };
}

// ---------------------------------------------------------------------------------------------------------------
// rows

/** The registry host: the `registry` host, else the first control plane (roles in hosts-file order). */
function registryHostIndex(roles: string[]): number {
  const registry = roles.indexOf('registry');
  return registry >= 0 ? registry : roles.indexOf('control-plane');
}

const workerStored = (run: ScaleRun): Stored[] => run.stored.filter((_, k) => run.install.roles[k] === 'worker');
const maxOf = (values: number[]): number => (values.length ? Math.max(...values) : NaN);
const egressBound = (parts: BundleParts, hosts: number): number => EGRESS_PER_BUNDLE * parts.bytes + EGRESS_PER_HOST * hosts;

function bundleRows(parts: BundleParts): Row[] {
  return [
    { measure: 'bundle file', value: mb(parts.bytes), target: '' },
    { measure: '  everything but images/ (bound on what a worker needs)', value: mb(parts.withoutImagesBytes), target: '' },
    { measure: '  images/', value: mb(parts.imagesBytes), target: '' },
  ];
}

function counterRows(check: CounterCheck | undefined): Row[] {
  if (!check) return [{ measure: `${OPERATOR_INTERFACE} counts only the operator's traffic: not checked (no lab with 2 hosts)`, value: '', target: '' }];
  return [
    {
      measure: `${OPERATOR_INTERFACE} counts only the operator's traffic: ${mb(check.bytes)} h1→h2 / hl-lab→h2`,
      value: `tx ${mb(check.hostToHost.txBytes)} (h1's port: ${mb(check.hostToHostOnPort)}) / tx ${mb(check.operatorToHost.txBytes)}`,
      target: `< 1 % / ≥ ${mb(check.bytes)}`,
      met: check.holds,
    },
  ];
}

function linkRows(link: LinkMode, runs: ScaleRun[], parts: BundleParts): Row[] {
  if (runs.length === 0) return [];
  const each = (f: (run: ScaleRun) => string): string => runs.map(f).join(' / ');
  const titles = [...new Set(runs.flatMap((r) => r.install.summary.phases.filter((p) => p.hosts.length > 0).map((p) => p.title)))];
  const phase = (run: ScaleRun, title: string): string => {
    const p = run.install.summary.phases.find((x) => x.title === title);
    if (!p || p.hosts.length === 0) return '–';
    return p.status === 'ok' ? p.seconds.toFixed(1) : `${p.seconds.toFixed(1)} (${p.status})`;
  };
  const registryHost = (run: ScaleRun): Stored => run.stored[registryHostIndex(run.install.roles)]!;
  const controlPlanes = (run: ScaleRun): Stored[] => run.stored.filter((_, k) => run.install.roles[k] === 'control-plane');
  const heading = link === 'full' ? 'full-speed operator link' : `operator link throttled to ${mb(THROTTLE_BYTES_PER_SECOND)}/s (tbf on ${OPERATOR_INTERFACE})`;
  const rows: Row[] = [
    { measure: '', value: '', target: '' },
    { measure: `${heading}: N =`, value: each((r) => String(r.hosts)), target: '' },
    { measure: `  operator sent (${OPERATOR_INTERFACE} tx_bytes)`, value: each((r) => mb(r.operator.txBytes)), target: '' },
    { measure: '    per host / per bundle', value: each((r) => `${mb(r.operator.txBytes / r.hosts)} ${times(r.operator.txBytes / parts.bytes)}`), target: '' },
    { measure: `  operator received (${OPERATOR_INTERFACE} rx_bytes)`, value: each((r) => mb(r.operator.rxBytes)), target: '' },
    { measure: '  wall time of the CLI, s', value: each((r) => r.install.wallSeconds.toFixed(1)), target: '' },
    { measure: '    total in the --json summary, s', value: each((r) => r.install.summary.seconds.toFixed(1)), target: '' },
    ...titles.map((title) => ({ measure: `    ${title}, s`, value: each((r) => phase(r, title)), target: '' })),
    { measure: '  control plane stores (/var/lib/kube-bundle w/o registry/, max)', value: each((r) => mb(maxOf(controlPlanes(r).map((s) => s.bundleBytes)))), target: '' },
    { measure: '  registry host: registry storage (hard links into the bundle)', value: each((r) => mb(registryHost(r).registryBytes)), target: '' },
    { measure: '  registry host: all of /var/lib/kube-bundle, links counted once', value: each((r) => mb(registryHost(r).distinctBytes)), target: '' },
    { measure: '  worker stores (/var/lib/kube-bundle, max)', value: each((r) => (workerStored(r).length ? mb(maxOf(workerStored(r).map((s) => s.bundleBytes))) : '–')), target: '' },
    { measure: '  apt cache (/var/cache/apt/archives, max of any host)', value: each((r) => mb(maxOf(r.stored.map((s) => s.aptCacheBytes)))), target: '' },
    { measure: '  memory: sum of process RSS on a host (max)', value: each((r) => mb(maxOf(r.stored.map((s) => s.rssBytes)))), target: '' },
    { measure: '  lab start, s', value: each((r) => r.labStartSeconds.toFixed(1)), target: '' },
  ];
  for (const r of runs) {
    const bound = egressBound(parts, r.hosts);
    rows.push({ measure: `  N = ${r.hosts}: operator egress ≤ ${EGRESS_PER_BUNDLE} × bundle + ${mb(EGRESS_PER_HOST)} × N`, value: mb(r.operator.txBytes), target: `≤ ${mb(bound)}`, met: r.operator.txBytes <= bound });
  }
  for (const r of runs.filter((x) => workerStored(x).length > 0)) {
    const most = maxOf(workerStored(r).map((s) => s.bundleBytes));
    rows.push({
      measure: `  N = ${r.hosts}: a worker stores ≤ its packages + installer (bound: all but images/)`,
      value: `${mb(most)} (${times(most / parts.withoutImagesBytes)} bound, ${times(most / parts.bytes)} bundle)`,
      target: `≤ ${mb(parts.withoutImagesBytes)}`,
      met: most <= parts.withoutImagesBytes,
    });
  }
  const one = runs.find((r) => r.hosts === 1);
  if (one) {
    for (const r of runs.filter((x) => x.hosts > 1)) {
      const ratio = r.install.wallSeconds / one.install.wallSeconds;
      const targeted = link === 'throttled' && r.hosts === TIME_RATIO_HOSTS;
      rows.push({ measure: `  time(${r.hosts}) / time(1), wall`, value: times(ratio), target: targeted ? `≤ ${times(THROTTLED_TIME_RATIO)}` : '', ...(targeted ? { met: ratio <= THROTTLED_TIME_RATIO } : {}) });
      const way = transferSeconds(r) / transferSeconds(one);
      rows.push({ measure: `  time(${r.hosts}) / time(1), the bundle's way to the hosts (upload + hand-out phases)`, value: times(way), target: '' });
    }
  }
  return rows;
}

/** The phases that move the bundle: the upload over the operator's link and the hand-out inside the site. */
const TRANSFER_PHASE = /^(Upload the bundle|Hand out the bundle)/;
function transferSeconds(r: ScaleRun): number {
  return r.install.summary.phases.filter((p) => TRANSFER_PHASE.test(p.title)).reduce((sum, p) => sum + p.seconds, 0);
}

function notes(counts: number[]): string {
  return [
    '',
    `Notes: operator bytes are ${OPERATOR_INTERFACE}'s own counters in the lab netns, where the CLI runs, read just before and after it:`,
    'link-layer bytes (SSH, TCP/IP and Ethernet framing included), only what the operator\'s stack sent or received',
    '(traffic the bridge forwards between hosts is not counted, see the check row). Stored bytes are `du -sb` on each',
    'host after the install. Wall time is the CLI process from start to exit; phase times are from its --json summary.',
    `All hosts share this machine's ${cpus().length} cores: their own work (dpkg above all) grows with N whatever the link,`,
    'so time(N) / time(1) is not the link alone; the per-phase rows show which part grew, and the transfer row the',
    'part the operator\'s link limits.',
    `Host counts: ${counts.join(', ')}. Bundle "MB" are 10^6 bytes. Results: ${RESULT_FILE}`,
  ].join('\n');
}

async function writeResults(rows: Row[], runs: ScaleRun[], parts: BundleParts, kind: BundleKind, counterCheck: CounterCheck | undefined): Promise<void> {
  const doc = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version, memAvailableBytes: memAvailableBytes() },
    settings: { throttleBytesPerSecond: THROTTLE_BYTES_PER_SECOND, operatorInterface: OPERATOR_INTERFACE },
    bundle: { kind, ...parts },
    counterCheck,
    rows,
    runs: runs.map((r) => ({
      hosts: r.hosts,
      link: r.link,
      roles: r.install.roles,
      labStartSeconds: r.labStartSeconds,
      wallSeconds: r.install.wallSeconds,
      summarySeconds: r.install.summary.seconds,
      operator: r.operator,
      egressBound: egressBound(parts, r.hosts),
      phases: r.install.summary.phases.map((p) => ({ title: p.title, status: p.status, seconds: p.seconds, hosts: p.hosts.length })),
      stored: r.stored.map((s, k) => ({ ...s, role: r.install.roles[k] })),
    })),
  };
  await mkdir(join(REPO_ROOT, '.work'), { recursive: true });
  await writeFile(RESULT_FILE, JSON.stringify(doc, null, 2) + '\n');
}
