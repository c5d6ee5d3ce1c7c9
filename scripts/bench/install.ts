/**
 * Install benchmark: how long `bundle install` takes in the lab, how fast the bundle travels compared with scp,
 * and how much faster registry seeding is than pushing the same images with skopeo.
 *
 *   npm run bench -- install        (root; runs `npm run build` first)
 *
 *   1. `bundle install` (compiled CLI, bundle built with --runtime containerd) on fresh lab hosts: 1 control
 *      plane, then 1 control plane + 2 workers; wall time and the per-phase times of its --json summary
 *   2. upload of both bundle files to a lab host by src/core/ssh vs scp (upload.ts's rounds)
 *   3. on this machine, for both bundles: seed-registry.sh + registry start vs `skopeo copy` of every image into
 *      an empty running registry (install/seeding.ts)
 *
 * Prints a table and writes .work/bench-install.json. Uses the machine's one test-host lab (waits for it when
 * another run holds it) and about 1 GiB under /var/tmp, removed afterwards; the download cache under
 * /var/tmp/kube-bundle-bench-cache/install is kept so later runs fetch nothing.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { formatTable, median, mib, samples, secs, times, type Row } from './lib/report.js';
import { BIG_IMAGE_REF, buildBundles, compileCli, type BenchBundle } from './install/bundles.js';
import { benchInLab, type InstallRun, type LabResults, type UploadRun } from './install/lab.js';
import { log, REPO_ROOT } from './install/run.js';
import { compareSeeding, type SeedingResult } from './install/seeding.js';

const ROUNDS = 3;
/** uploads take a second or so each and vary more: more rounds for the median */
const UPLOAD_ROUNDS = 5;
const WORK_PARENT = '/var/tmp';
const RESULT_FILE = join(REPO_ROOT, '.work/bench-install.json');
const UPLOAD_TARGET = 0.8;
const SEEDING_TARGET = 10;

interface Seedings {
  standard: SeedingResult;
  big: SeedingResult;
}

export async function runInstallBench(): Promise<void> {
  await compileCli();
  const dir = await mkdtemp(join(WORK_PARENT, 'kb-bench-install-'));
  try {
    const bundles = await buildBundles(dir);
    const seeding: Seedings = {
      standard: await seedingOf('standard', bundles.standard, dir),
      big: await seedingOf(`with ${BIG_IMAGE_REF}`, bundles.big, dir),
    };
    const lab = await benchInLab({ install: bundles.standard, pubkeyFile: bundles.pubkeyFile, uploads: [bundles.standard, bundles.big], uploadRounds: UPLOAD_ROUNDS, dir });

    const rows = [...installRows(lab), ...lab.uploads.flatMap(uploadRows), ...seedingRows('standard bundle', seeding.standard), ...seedingRows(`bundle with ${BIG_IMAGE_REF}`, seeding.big)];
    console.log(`\nbundle install v1.32.3 -t debian-12 --runtime containerd; compiled CLI; medians of ${ROUNDS} rounds (uploads: ${UPLOAD_ROUNDS}) where shown\n`);
    console.log(formatTable(rows));
    console.log(notes(lab));
    await writeResults(rows, lab, seeding, bundles);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function seedingOf(label: string, bundle: BenchBundle, dir: string): Promise<SeedingResult> {
  log(`seeding vs skopeo, ${label} bundle, ${ROUNDS} rounds`);
  const work = join(dir, 'seeding');
  await mkdir(work, { recursive: true });
  return compareSeeding(bundle, work, ROUNDS);
}

// ---------------------------------------------------------------------------------------------------------------
// rows

function installRows({ installs }: LabResults): Row[] {
  const [one, three] = installs;
  if (!one || !three) throw new Error('expected a 1-host and a 3-host install');
  const both = (f: (run: InstallRun) => string): string => `${f(one)} / ${f(three)}`;
  const titles = [...new Set([...three.summary.phases, ...one.summary.phases].map((p) => p.title))];
  const phase = (run: InstallRun, title: string): string => {
    const p = run.summary.phases.find((x) => x.title === title);
    if (!p) return '–';
    return p.status === 'ok' ? secs(p.seconds) : `${secs(p.seconds)} (${p.status})`;
  };
  return [
    { measure: `install on fresh hosts: 1 (${one.hosts.join(',')}) / 3 (${three.hosts.join(',')}), wall`, value: both((r) => secs(r.wallSeconds)), target: '' },
    { measure: '  total in the install summary', value: both((r) => secs(r.summary.seconds)), target: '' },
    ...titles.map((title) => ({ measure: `  ${title}`, value: both((r) => phase(r, title)), target: '' })),
  ];
}

const mbPerSecond = (bytes: number, seconds: number): string => `${(bytes / 1e6 / seconds).toFixed(0)} MB/s`;

function uploadRows(run: UploadRun): Row[] {
  const ours = median(run.rounds.map((r) => r.uploadSeconds));
  const scp = median(run.rounds.map((r) => r.scpSeconds));
  const ratio = scp / ours;
  const name = run.file.split('/').at(-1);
  return [
    { measure: `upload ${name} (${mib(run.bytes)}) to ${run.host}: src/core/ssh`, value: `${samples(run.rounds.map((r) => r.uploadSeconds))}, ${mbPerSecond(run.bytes, ours)}`, target: '' },
    { measure: '  of which connecting', value: secs(median(run.rounds.map((r) => r.connectSeconds))), target: '' },
    { measure: '  scp of the same file', value: `${samples(run.rounds.map((r) => r.scpSeconds))}, ${mbPerSecond(run.bytes, scp)}`, target: '' },
    { measure: '  our throughput / scp throughput', value: times(ratio), target: `≥ ${times(UPLOAD_TARGET)}`, met: ratio >= UPLOAD_TARGET },
  ];
}

function seedingRows(label: string, s: SeedingResult): Row[] {
  const seed = median(s.rounds.map((r) => r.seedSeconds));
  const skopeo = median(s.rounds.map((r) => r.skopeoSeconds));
  const ratio = skopeo / seed;
  return [
    { measure: `registry seeding, ${label} (${s.images} images, ${mib(s.blobBytes)} of blobs): seed + start`, value: samples(s.rounds.map((r) => r.seedSeconds)), target: '' },
    { measure: `  of which seed-registry.sh${s.hardLinked ? '' : ' (COPIED, not hard-linked)'}`, value: samples(s.rounds.map((r) => r.seedScriptSeconds)), target: '' },
    { measure: `  skopeo copy, ${s.copies} copies into a running empty registry`, value: samples(s.rounds.map((r) => r.skopeoSeconds)), target: '' },
    { measure: '  skopeo time / seeding time', value: times(ratio), target: `≥ ${times(SEEDING_TARGET)}`, met: ratio >= SEEDING_TARGET },
  ];
}

function notes(lab: LabResults): string {
  return [
    '',
    'Notes: install wall time is the CLI process inside the lab netns, from start to exit: verifying the bundle,',
    'connecting, every phase, the summary. The 1-host and 3-host installs ran one after the other on one lab, each',
    'on hosts nothing had been installed on. Upload times include connecting and the sha256 check on the host;',
    'scp does neither check. Seeding runs on this machine: the seed script (hard links) into an empty storage',
    'directory plus starting the registry until GET /v2/ answers, against skopeo copies (one per image, platform and',
    'repository path the seeded registry serves) into a registry already running; both registries are then asked',
    `for every image. Lab start (including any wait for the lab lock): ${secs(lab.labStartSeconds)}.`,
    `Results: ${RESULT_FILE}`,
  ].join('\n');
}

async function writeResults(rows: Row[], lab: LabResults, seeding: Seedings, bundles: { standard: BenchBundle; big: BenchBundle }): Promise<void> {
  const bundleInfo = (b: BenchBundle) => ({ bytes: b.bytes, images: b.images.map((i) => ({ ref: i.ref, size: i.size, platforms: i.platforms })) });
  const doc = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version },
    settings: { rounds: ROUNDS, uploadRounds: UPLOAD_ROUNDS },
    rows,
    bundles: { standard: bundleInfo(bundles.standard), big: bundleInfo(bundles.big) },
    labStartSeconds: lab.labStartSeconds,
    installs: lab.installs.map((r) => ({
      hosts: r.hosts,
      roles: r.roles,
      wallSeconds: r.wallSeconds,
      summarySeconds: r.summary.seconds,
      phases: r.summary.phases.map((p) => ({ title: p.title, status: p.status, seconds: p.seconds })),
    })),
    uploads: lab.uploads.map((u) => ({ ...u, file: u.file.split('/').at(-1) })),
    seeding,
  };
  await mkdir(join(REPO_ROOT, '.work'), { recursive: true });
  await writeFile(RESULT_FILE, JSON.stringify(doc, null, 2) + '\n');
}

