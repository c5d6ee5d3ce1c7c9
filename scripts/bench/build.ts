/**
 * `npm run bench -- build`: speed, size and memory of `bundle build` (and `bundle verify`) against their targets, run
 * through the compiled CLI (`npm run build` first) as child processes against the simulated upstream plus this
 * machine's Debian archive.
 *
 *   1. cold build (empty cache) vs warm rebuild (same cache): wall time, content bytes the warm one fetched
 *   2. cold build vs `curl --parallel` over the same URLs with the same parallelism
 *   3. bundle size vs the sum of what it carries (unique image blobs + debs + files)
 *   4. a 1 GiB incompressible layer: the build's peak RSS, and `bundle verify` vs `sha256sum` of that bundle
 *
 * in two scenarios: as this machine reaches its upstreams (the simulated ones in this process, the Debian archive
 * through a fast local proxy: curl gets everything in a fraction of a second, which no real site does), and with
 * 1, 2 and 4 repeated through one shared link of LINK_RATE (lib/throttle.ts) for the build and curl
 * alike, closer to a build machine on a real internet connection. A third scenario repeats 1 and 2 through that
 * link against a second simulated upstream whose images have roughly the real images' sizes
 * (lib/realistic-images.ts), as the ~1 MB stand-ins leave fixed costs dominating.
 *
 * Timed figures are medians of ROUNDS runs (a shared 2-core machine is noisy); every sample goes to the JSON file.
 * Prints a table and writes .work/bench-build.json. Needs 10 GiB free under /var/tmp (it writes a few GiB there)
 * and removes everything afterwards; takes a few minutes. `npm run bench` runs the `bundle install` benchmark
 * (install.ts) after it; see main.ts.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { BuildResult } from '../../src/core/builder/build.js';
import { readLock } from '../../src/core/builder/lockfile.js';
import { parseMirrors } from '../../src/core/mirror.js';
import { DEFAULT_WORK_DIR } from '../../test/upstream/index.js';
import { pushBigImage } from './lib/big-image.js';
import { pushRealisticImages, REALISTIC_IMAGES } from './lib/realistic-images.js';
import { curlParallel, type CurlRun } from './lib/curl.js';
import { buildDownloads, type BuildDownloads } from './lib/download-list.js';
import { listImageContent } from './lib/registry-walk.js';
import { assertGnuTime, compileCli, REPO_ROOT, runBundle, runMeasured, type Measured } from './lib/measure.js';
import { formatTable, mb, median, mib, samples, secs, times, type Row } from './lib/report.js';
import { startThrottledLink, type ThrottledLink } from './lib/throttle.js';
import { startBenchUpstream, type BenchUpstream } from './lib/upstream.js';
import { assertFreeSpace, createWorkspace, GIB, type Workspace } from './lib/workspace.js';

const ROUNDS = 3;
const CONCURRENCY = 8;
const WORK_PARENT = '/var/tmp';
const MIN_FREE = 10 * GIB;
const BIG_IMAGE = { repository: 'docker.io/library/big', tag: '1g', payloadBytes: GIB };
const RESULT_FILE = join(REPO_ROOT, '.work/bench-build.json');
/** The shared link of the second scenario, bytes per second. */
const LINK_RATE = 50e6;

interface Context {
  dir: string;
  upstream: BenchUpstream;
  keyFile: string;
  pubkeyFile: string;
}

/** How the builds and curl reach the upstreams: directly, or through the throttled link. */
interface Scenario {
  /** prefixes run names and table rows */
  name: string;
  mirrors: string[];
}

interface BuildRun {
  wallSeconds: number;
  peakRssBytes: number;
  result: BuildResult;
}

const log = (text: string): void => console.error(`[bench] ${text}`);

export async function runBuildBench(): Promise<void> {
  assertGnuTime();
  log('compiling the CLI (npm run build)');
  await compileCli();
  await mkdir(DEFAULT_WORK_DIR, { recursive: true });
  await assertFreeSpace([WORK_PARENT, DEFAULT_WORK_DIR], MIN_FREE);
  const workspace = await createWorkspace(WORK_PARENT);
  try {
    log(`scratch directory ${workspace.dir}; starting the simulated upstream`);
    const upstream = await startBenchUpstream();
    workspace.onCleanup(upstream.stop);
    const link = startThrottledLink(LINK_RATE);
    workspace.onCleanup(link.stop);
    const ctx = { dir: workspace.dir, upstream, ...(await keygen(workspace.dir)) };
    const local: Scenario = { name: 'local', mirrors: upstream.mirrors };
    const linked: Scenario = { name: 'link', mirrors: await Promise.all(upstream.mirrors.map((m) => throughLink(m, link.via))) };

    const startup = await cliStartup(ctx);
    const coldAndCurl = await coldBuildsAndCurl(ctx, local);
    const warm = await warmRebuilds(ctx, local, coldAndCurl.cache);
    const big = await bigLayer(ctx, local, coldAndCurl.cache);
    const linkColdAndCurl = await coldBuildsAndCurl(ctx, linked);
    const linkWarm = await warmRebuilds(ctx, linked, linkColdAndCurl.cache);
    const linkBig = await bigLayerBuild(ctx, linked, linkColdAndCurl.cache);
    const realistic = await realisticImages(ctx, workspace, link);

    const rows = [
      ...startupRows(startup),
      ...speedRows(coldAndCurl, warm),
      ...sizeRows(coldAndCurl),
      ...bigRows(big),
      { measure: `Through one shared ${mb(LINK_RATE)}/s link (build and curl alike):`, value: '', target: '' },
      ...speedRows(linkColdAndCurl, linkWarm),
      ...bigBuildRows(linkBig),
      ...realisticRows(realistic),
    ];
    console.log(`\nbundle build v1.32.3 -t debian-12 (amd64, containerd+docker, --concurrency ${CONCURRENCY}); compiled CLI; medians of ${ROUNDS} runs\n`);
    console.log(formatTable(rows));
    console.log(notes(coldAndCurl));
    console.log(realisticNote());
    await writeResults({
      rows,
      startup,
      local: { coldAndCurl, warm, big },
      link: { coldAndCurl: linkColdAndCurl, warm: linkWarm, big: linkBig },
      realistic,
    });
  } finally {
    log('cleaning up');
    await workspace.cleanup();
  }
}

/** A `--mirror from=to` flag whose target goes through the link. */
async function throughLink(flag: string, via: (url: string) => Promise<string>): Promise<string> {
  const eq = flag.indexOf('=');
  return `${flag.slice(0, eq)}=${await via(flag.slice(eq + 1))}`;
}

async function keygen(dir: string): Promise<{ keyFile: string; pubkeyFile: string }> {
  const keys = join(dir, 'keys');
  await runBundle(['keygen', '--out', keys], dir);
  return { keyFile: join(keys, 'signer.asc'), pubkeyFile: join(keys, 'signer.pub.asc') };
}

interface Startup {
  /** `bundle --version` of the compiled CLI, as every benchmarked run starts */
  cli: Measured[];
  /** `node -e 0`: the share of that which is node itself */
  node: Measured[];
}

/** What every CLI run pays before any work: node, the tsx loader, module loading. */
async function cliStartup(ctx: Context): Promise<Startup> {
  const startup: Startup = { cli: [], node: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    startup.cli.push(await runBundle(['--version'], ctx.dir));
    startup.node.push(await runMeasured(process.execPath, ['-e', '0'], ctx.dir));
  }
  return startup;
}

function startupRows({ cli, node }: Startup): Row[] {
  const rss = (runs: Measured[]) => mb(median(runs.map((r) => r.peakRssBytes)));
  return [
    { measure: 'CLI startup (`bundle --version`, compiled), wall', value: `${samples(cli.map((r) => r.seconds))}, peak RSS ${rss(cli)}`, target: '' },
    { measure: '  of which plain node (`node -e 0`)', value: `${secs(median(node.map((r) => r.seconds)))}, peak RSS ${rss(node)}`, target: '' },
  ];
}

async function build(ctx: Context, scenario: Scenario, round: string, cache: string, extra: string[] = []): Promise<BuildRun> {
  const name = `${scenario.name}-${round}`;
  const args = [
    'build', 'v1.32.3', '-t', 'debian-12', '--key', ctx.keyFile, '-o', join(ctx.dir, `${name}.tar`), '--json',
    '--cache', cache, '--concurrency', String(CONCURRENCY), '--trust-key', ctx.upstream.k8sKeyFile, ...ctx.upstream.pins.flatMap((p) => ['--pin', p]),
    ...scenario.mirrors.flatMap((m) => ['--mirror', m]),
    ...extra,
  ];
  const run = await runBundle(args, ctx.dir);
  const result = JSON.parse(run.stdout) as BuildResult;
  log(`${name}: ${secs(run.seconds)}, fetched ${mib(result.fetch.bytesFetched)} + ${mib(result.fetch.metadataBytesFetched)} signed indexes, peak RSS ${mb(run.peakRssBytes)}`);
  return { wallSeconds: run.seconds, peakRssBytes: run.peakRssBytes, result };
}

// ---------------------------------------------------------------------------------------------------------------
// 1 + 2 + 3: cold builds, curl over the same URLs, warm rebuilds

interface ColdAndCurl {
  scenario: Scenario;
  cold: BuildRun[];
  curl: CurlRun[];
  downloads: BuildDownloads;
  /** the first cold build's cache, kept for the warm rebuilds and the 1 GiB build */
  cache: string;
}

/**
 * The first cold build's lock file gives the URL list; afterwards build and curl alternate in who goes first,
 * so neither always meets a cache in the Debian archive's proxy that the other has just filled.
 */
async function coldBuildsAndCurl(ctx: Context, scenario: Scenario): Promise<ColdAndCurl> {
  const cache = join(ctx.dir, `${scenario.name}-cache`);
  const first = await build(ctx, scenario, 'cold-1', cache);
  const downloads = await buildDownloads(first.result.lockFile as string, scenario.mirrors);
  const cold = [first];
  const curl: CurlRun[] = [];
  const curlOnce = async (round: number): Promise<void> => {
    const out = join(ctx.dir, `${scenario.name}-curl-${round}`);
    const run = await curlParallel(downloads.groups, out, CONCURRENCY, ctx.dir);
    log(`${scenario.name}-curl-${round}: ${secs(run.seconds)}, ${mib(totalBytes(run))} in ${run.transfers.length} transfers`);
    curl.push(run);
    await rm(out, { recursive: true, force: true });
  };
  const coldOnce = async (round: number): Promise<void> => {
    const roundCache = join(ctx.dir, `${scenario.name}-cache-${round}`);
    cold.push(await build(ctx, scenario, `cold-${round}`, roundCache));
    await rm(roundCache, { recursive: true, force: true });
    await rm(join(ctx.dir, `${scenario.name}-cold-${round}.tar`), { force: true });
  };
  await curlOnce(1);
  for (let round = 2; round <= ROUNDS; round++) {
    if (round % 2 === 0) {
      await curlOnce(round);
      await coldOnce(round);
    } else {
      await coldOnce(round);
      await curlOnce(round);
    }
  }
  return { scenario, cold, curl, downloads, cache };
}

/** Warm rebuilds, and the floor under them: warm `--dry-run`s, which do only what every build must before it can
 * know it has nothing to fetch (start, check the signed indexes, ask each tag's digest) and pack nothing. */
interface Warm {
  runs: BuildRun[];
  floor: BuildRun[];
}

async function warmRebuilds(ctx: Context, scenario: Scenario, cache: string): Promise<Warm> {
  const warm: Warm = { runs: [], floor: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    warm.runs.push(await build(ctx, scenario, `warm-${round}`, cache));
    warm.floor.push(await build(ctx, scenario, `dry-${round}`, cache, ['--dry-run']));
  }
  return warm;
}

function speedRows({ cold, curl, scenario }: ColdAndCurl, { runs: warm, floor }: Warm): Row[] {
  const coldWall = median(cold.map((r) => r.wallSeconds));
  const warmWall = median(warm.map((r) => r.wallSeconds));
  const floorWall = median(floor.map((r) => r.wallSeconds));
  const curlWall = median(curl.map((r) => r.seconds));
  const warmContent = Math.max(...warm.map((r) => r.result.fetch.bytesFetched));
  const coldFetched = cold[0] ? cold[0].result.fetch.bytesFetched + cold[0].result.fetch.metadataBytesFetched : 0;
  const curlBytes = curl[0] ? totalBytes(curl[0]) : 0;
  const rows: Row[] = [
    { measure: 'cold build, wall (empty cache)', value: samples(cold.map((r) => r.wallSeconds)), target: '' },
    { measure: '  fetched (content + signed indexes)', value: `${mib(coldFetched)}`, target: '' },
    { measure: '  peak RSS', value: mb(median(cold.map((r) => r.peakRssBytes))), target: '' },
    { measure: 'warm rebuild, wall (same cache)', value: samples(warm.map((r) => r.wallSeconds)), target: '' },
    { measure: '  warm / cold wall', value: times(warmWall / coldWall), target: '≤ 0.100×', met: warmWall <= 0.1 * coldWall },
    { measure: '  content bytes fetched', value: `${warmContent} B`, target: '0 B', met: warmContent === 0 },
    { measure: '  signed-index bytes fetched (InRelease, Release.key)', value: mib(warm[0]?.result.fetch.metadataBytesFetched ?? 0), target: '' },
    { measure: '  floor: warm --dry-run (start, signed indexes, tag digests)', value: samples(floor.map((r) => r.wallSeconds)), target: '' },
    { measure: '  best warm / cold possible (floor / curl wall)', value: times(floorWall / median(curl.map((r) => r.seconds))), target: '' },
    { measure: `curl --parallel-max ${CONCURRENCY}, same URLs, wall`, value: samples(curl.map((r) => r.seconds)), target: '' },
    { measure: '  curl bytes / build bytes fetched', value: `${mib(curlBytes)} / ${mib(coldFetched)}`, target: '' },
    { measure: '  of which from the Debian archive', value: mib(debianBytes(curl[0], scenario)), target: '' },
    { measure: '  cold build / curl wall', value: times(coldWall / curlWall), target: '≤ 1.300×', met: coldWall <= 1.3 * curlWall },
  ];
  return scenario.name === 'local' ? rows : rows.map((r) => ({ ...r, measure: `  ${r.measure}` }));
}

function sizeRows({ cold, downloads }: ColdAndCurl): Row[] {
  const result = cold[0]?.result;
  if (!result?.size) throw new Error('the first cold build reported no bundle size');
  const content = contentBytes(result, downloads.imageBytes);
  return [
    { measure: 'bundle size', value: `${mib(result.size)} (${result.size} B)`, target: '' },
    { measure: '  unique blobs + debs + files', value: `${mib(content)} (${content} B)`, target: '' },
    { measure: '  bundle / content', value: times(result.size / content), target: '≤ 1.010×', met: result.size <= 1.01 * content },
  ];
}

function contentBytes(result: BuildResult, imageBytes: number): number {
  const debs = result.packages.reduce((sum, p) => sum + p.size, 0);
  const files = result.files.reduce((sum, f) => sum + f.size, 0);
  return imageBytes + debs + files;
}

function totalBytes(run: CurlRun): number {
  return run.transfers.reduce((sum, t) => sum + t.bytes, 0);
}

/** Bytes curl got from the Debian archive: the URLs under a `--mirror` target of the archive's upstream names. */
function debianBytes(run: CurlRun | undefined, scenario: Scenario): number {
  const archives = scenario.mirrors.filter((m) => /debian/.test(m.slice(0, m.indexOf('=')))).map((m) => m.slice(m.indexOf('=') + 1));
  return (run?.transfers ?? []).filter((t) => archives.some((a) => t.url.startsWith(a))).reduce((sum, t) => sum + t.bytes, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// 4: a 1 GiB layer

/** A build that downloads the 1 GiB layer, and curl fetching the same image over the same way. */
interface BigBuild {
  build: BuildRun;
  /** the image's manifest, config and layer fetched with curl from the same place: what the network part costs */
  curl: CurlRun;
}

interface BigLayer extends BigBuild {
  pushSeconds: number;
  verify: { seconds: number[]; peakRssBytes: number };
  sha256sum: { seconds: number[] };
}

const BIG_REFERENCE = `${BIG_IMAGE.repository}:${BIG_IMAGE.tag}`;

/** Push the image, build with it (on the warm cache of part 1) and check `bundle verify` on that bundle. */
async function bigLayer(ctx: Context, scenario: Scenario, cache: string): Promise<BigLayer> {
  log(`pushing ${BIG_REFERENCE} (one ${mib(BIG_IMAGE.payloadBytes)} layer of random bytes) into the simulated docker.io`);
  const pushStart = process.hrtime.bigint();
  await pushBigImage(ctx.upstream.backendUrl, BIG_IMAGE.repository, BIG_IMAGE.tag, BIG_IMAGE.payloadBytes);
  const pushSeconds = Number(process.hrtime.bigint() - pushStart) / 1e9;

  const big = await bigLayerBuild(ctx, scenario, cache);
  const bundle = big.build.result.output as string;
  await runMeasured('sha256sum', [bundle], ctx.dir); // both contenders then read from a warm page cache
  const verify: number[] = [];
  const sha256sum: number[] = [];
  let verifyRss = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const v = await runBundle(['verify', bundle, '--pubkey', ctx.pubkeyFile], ctx.dir);
    verify.push(v.seconds);
    verifyRss = Math.max(verifyRss, v.peakRssBytes);
    sha256sum.push((await runMeasured('sha256sum', [bundle], ctx.dir)).seconds);
  }
  log(`verify ${verify.map(secs).join(', ')}; sha256sum ${sha256sum.map(secs).join(', ')}`);
  await rm(bundle, { force: true });
  return { pushSeconds, ...big, verify: { seconds: verify, peakRssBytes: verifyRss }, sha256sum: { seconds: sha256sum } };
}

/** On a warm cache, so that the 1 GiB layer is the only content downloaded. */
async function bigLayerBuild(ctx: Context, scenario: Scenario, cache: string): Promise<BigBuild> {
  const run = await build(ctx, scenario, 'big', cache, ['--image', BIG_REFERENCE]);
  const curl = await curlImage(ctx, scenario, run.result.lockFile as string);
  if (scenario.name !== 'local') await rm(run.result.output as string, { force: true });
  return { build: run, curl };
}

async function curlImage(ctx: Context, scenario: Scenario, lockFile: string): Promise<CurlRun> {
  const locked = readLock(lockFile).artifacts.find((a) => a.kind === 'image' && a.name === BIG_REFERENCE);
  if (!locked) throw new Error(`${lockFile} does not list ${BIG_REFERENCE}`);
  const [content] = await listImageContent([{ reference: BIG_REFERENCE, digest: locked.digest }], parseMirrors(scenario.mirrors), 'amd64');
  if (!content) throw new Error(`no registry content listed for ${BIG_REFERENCE}`);
  const out = join(ctx.dir, `${scenario.name}-curl-big`);
  const run = await curlParallel([{ label: BIG_REFERENCE, headers: content.headers, urls: content.items.map((i) => i.url) }], out, CONCURRENCY, ctx.dir);
  log(`${scenario.name}: curl of ${BIG_REFERENCE}: ${secs(run.seconds)}, ${mib(totalBytes(run))}`);
  await rm(out, { recursive: true, force: true });
  return run;
}

function bigBuildRows(big: BigBuild): Row[] {
  const { result } = big.build;
  return [
    { measure: `build with a 1 GiB layer (--image ${BIG_REFERENCE}), wall`, value: secs(big.build.wallSeconds), target: '' },
    { measure: '  content bytes fetched', value: mib(result.fetch.bytesFetched), target: '' },
    { measure: '  curl of the same image the same way', value: `${secs(big.curl.seconds)}, ${mib(totalBytes(big.curl))}`, target: '' },
    { measure: '  build / curl wall', value: times(big.build.wallSeconds / big.curl.seconds), target: '' },
    { measure: '  peak RSS of the build process', value: mb(big.build.peakRssBytes), target: '< 250 MB', met: big.build.peakRssBytes < 250e6 },
  ];
}

function bigRows(big: BigLayer): Row[] {
  const verify = median(big.verify.seconds);
  const sha = median(big.sha256sum.seconds);
  return [
    ...bigBuildRows(big),
    { measure: `bundle verify of that bundle (${mib(big.build.result.size ?? 0)})`, value: samples(big.verify.seconds), target: '' },
    { measure: '  sha256sum of the same file', value: samples(big.sha256sum.seconds), target: '' },
    { measure: '  verify / sha256sum', value: times(verify / sha), target: '≤ 1.300×', met: verify <= 1.3 * sha },
    { measure: '  peak RSS of verify', value: mb(big.verify.peakRssBytes), target: '' },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// 1 + 2 with images of roughly the real sizes, through the link

interface Realistic {
  pushSeconds: number;
  /** layer bytes of the pushed images, all incompressible */
  imageBytes: number;
  coldAndCurl: ColdAndCurl;
  warm: Warm;
}

/**
 * A second simulated upstream, used only here, whose registries serve REALISTIC_IMAGES under the real v1.32.3
 * references (pushed over the stand-ins), reached through the same link as the second scenario.
 */
async function realisticImages(ctx: Context, workspace: Workspace, link: ThrottledLink): Promise<Realistic> {
  log('starting a second simulated upstream for images of realistic sizes');
  const upstream = await startBenchUpstream();
  workspace.onCleanup(upstream.stop);
  const pushStart = process.hrtime.bigint();
  const imageBytes = await pushRealisticImages(upstream.backendUrl);
  const pushSeconds = Number(process.hrtime.bigint() - pushStart) / 1e9;
  log(`pushed ${REALISTIC_IMAGES.length} images of realistic sizes (${mib(imageBytes)}) in ${secs(pushSeconds)}`);
  const scenario: Scenario = { name: 'real', mirrors: await Promise.all(upstream.mirrors.map((m) => throughLink(m, link.via))) };
  const realCtx = { ...ctx, upstream };
  const coldAndCurl = await coldBuildsAndCurl(realCtx, scenario);
  const warm = await warmRebuilds(realCtx, scenario, coldAndCurl.cache);
  return { pushSeconds, imageBytes, coldAndCurl, warm };
}

function realisticRows({ coldAndCurl, warm, imageBytes }: Realistic): Row[] {
  return [
    { measure: `Through the same link, images of approximate real sizes (${mib(imageBytes)} of layers, see notes):`, value: '', target: '' },
    ...speedRows(coldAndCurl, warm),
  ];
}

/** The sizes used, which the table's third part depends on: they are approximations, not measurements. */
function realisticNote(): string {
  const sizes = REALISTIC_IMAGES.map((i) => `${i.repository.slice(i.repository.lastIndexOf('/') + 1)}:${i.tag} ${(i.payloadBytes / 1e6).toFixed(1)} MB`);
  return `Image sizes of the third part (approximate public compressed linux/amd64 sizes, one incompressible layer each):\n  ${sizes.join(', ')}`;
}

// ---------------------------------------------------------------------------------------------------------------

function notes({ curl, scenario }: ColdAndCurl): string {
  const debian = debianBytes(curl[0], scenario);
  const all = curl[0] ? totalBytes(curl[0]) : 0;
  return [
    '',
    `Notes: ${mib(debian)} of the ${mib(all)} a cold build downloads are Debian packages and indexes from this machine's`,
    `apt archive (a fast local proxy); curl gets all ${mib(all)} in ${secs(median(curl.map((c) => c.seconds)))} that way, so a cold build's time beyond`,
    'that is spent on this machine. Everything else is served by the simulated upstream in the benchmark process,',
    'which shares the 2 cores with the contender. curl fetches the same URLs: the lock file\'s debs, files and image',
    'manifests + blobs, plus the Release.key, InRelease and Packages index files the build reads; the build\'s time',
    `also covers starting node, resolving, packing and signing. The second part sends every upstream byte of both`,
    `contenders through one ${mb(LINK_RATE)}/s link (lib/throttle.ts), as on a real internet connection; the`,
    'third does the same against a second simulated upstream serving the same references with images of roughly the',
    'real ones\' public compressed amd64 sizes (scripts/bench/realistic-images.ts; approximate, not measured here).',
    'The "floor" rows are warm --dry-runs: what every rebuild does before it can know there is nothing to fetch. Where',
    'that floor over curl\'s time exceeds 0.1, no build could meet warm <= 0.1 x cold there, however fast its cold run.',
    `Results: ${RESULT_FILE}`,
  ].join('\n');
}

interface ScenarioResults {
  coldAndCurl: ColdAndCurl;
  warm: Warm;
  big?: BigBuild | BigLayer;
}

async function writeResults(data: { rows: Row[]; startup: Startup; local: ScenarioResults; link: ScenarioResults; realistic: Realistic }): Promise<void> {
  const doc = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, node: process.version },
    settings: { rounds: ROUNDS, concurrency: CONCURRENCY, linkBytesPerSecond: LINK_RATE },
    rows: data.rows,
    startup: {
      cli: data.startup.cli.map((r) => ({ seconds: r.seconds, peakRssBytes: r.peakRssBytes })),
      node: data.startup.node.map((r) => ({ seconds: r.seconds, peakRssBytes: r.peakRssBytes })),
    },
    local: scenarioResults(data.local),
    link: scenarioResults(data.link),
    realistic: {
      images: REALISTIC_IMAGES,
      imageBytes: data.realistic.imageBytes,
      pushSeconds: data.realistic.pushSeconds,
      ...scenarioResults(data.realistic),
    },
  };
  await mkdir(join(REPO_ROOT, '.work'), { recursive: true });
  await writeFile(RESULT_FILE, JSON.stringify(doc, null, 2) + '\n');
}

function scenarioResults({ coldAndCurl, warm, big }: ScenarioResults): object {
  const summary = (r: BuildRun) => ({ wallSeconds: r.wallSeconds, buildSeconds: r.result.seconds, peakRssBytes: r.peakRssBytes, fetch: r.result.fetch, size: r.result.size });
  const { cold, curl, downloads } = coldAndCurl;
  return {
    cold: cold.map(summary),
    warm: { runs: warm.runs.map(summary), floor: warm.floor.map(summary) },
    curl: curl.map((c) => ({ seconds: c.seconds, peakRssBytes: c.peakRssBytes, bytes: totalBytes(c), transfers: c.transfers.length })),
    content: { imageBytes: downloads.imageBytes, bytes: cold[0] ? contentBytes(cold[0].result, downloads.imageBytes) : 0 },
    ...(big ? { big: bigResults(big, summary) } : {}),
  };
}

function bigResults(big: BigBuild | BigLayer, summary: (r: BuildRun) => object): object {
  const { build: bigBuild, curl: bigCurl, ...bigRest } = big;
  return { ...bigRest, build: summary(bigBuild), curl: { seconds: bigCurl.seconds, bytes: totalBytes(bigCurl) } };
}

