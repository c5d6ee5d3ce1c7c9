/**
 * The bundle on the hosts. It crosses the operator's link once, to the registry host (uploaded, resumable, its
 * sha256 checked on the host); every other host fetches its own part from there inside the site (distribute.ts,
 * payload.ts), or gets it uploaded when it cannot. Every host unpacks without the archive's owners and modes and
 * checks its tree against the verified SHA256SUMS before anything in it runs, on every run.
 */
import { formatBytes } from '../../../util/progress.js';
import { UserError } from '../../../util/errors.js';
import { SIGNATURE_FILE, SUMS_FILE } from '../../bundle/paths.js';
import { checkScript, finishScript, unpackScript, type BundleOnHost } from '../bundle-on-host.js';
import type { InstallContext, InstallHost } from '../context.js';
import {
  authorizedKeyLine,
  authorizedKeysScript,
  knownHostsFor,
  makeDistributionKey,
  pullScript,
  serveScript,
  SERVE_SCRIPT,
  type DistributionKey,
  type PullSource,
} from '../distribute.js';
import { REMOTE_ROOT, SIGNER_KEY } from '../host-paths.js';
import { hostPayload } from '../payload.js';
import { countBytes } from '../phase-report.js';
import { hostPackages } from './host.js';
import { bundleDir, bundleTar, file, journaled, type InstallPhase, type Step } from './steps.js';
import { uploadSmallFile } from '../../ssh/upload.js';

/** a phase that only reads: it runs on every install and does not count as a change */
export const CHECK_BUNDLE_PHASE = 'Check the bundle on the hosts';

const LONG = 30 * 60_000;

/** The paths a host stores: the whole bundle on the registry host, its role's part elsewhere. */
const payloads = new WeakMap<InstallHost, string[]>();
export function payloadOf(ctx: InstallContext, host: InstallHost): string[] {
  let paths = payloads.get(host);
  if (!paths) {
    paths = host === ctx.registryHost ? hostPayload(ctx.tree, { whole: true }) : hostPayload(ctx.tree, { packages: hostPackages(ctx, host), arch: host.facts.arch });
    payloads.set(host, paths);
  }
  return paths;
}

function onHost(ctx: InstallContext, host: InstallHost): BundleOnHost {
  const b = { tar: bundleTar(ctx), dir: bundleDir(ctx), sumsSha256: ctx.sumsSha256, signed: ctx.manifest.signer !== null };
  return host === ctx.registryHost ? b : { ...b, only: payloadOf(ctx, host) };
}

const signerKeyStep = (ctx: InstallContext): Step[] => (ctx.signerKey ? [file(SIGNER_KEY, ctx.signerKey)] : []);
const linkCurrent = (ctx: InstallContext): string => `ln -sfn ${bundleDir(ctx)} ${REMOTE_ROOT}/current`;

/** Upload the bundle file (skipped when the host has it, resumed when cut) and say how it went. */
async function sendBundle(h: InstallHost, ctx: InstallContext): Promise<number> {
  await h.conn.run(`mkdir -p ${REMOTE_ROOT}/bundles`);
  const started = Date.now();
  const sent = await h.conn.upload(ctx.bundleFile, bundleTar(ctx), { sha256: ctx.bundleSha256, onProgress: countBytes(ctx.progress, h) });
  const seconds = (Date.now() - started) / 1000;
  ctx.progress.note(
    h,
    sent.skipped
      ? 'the bundle is already there'
      : `sent ${formatBytes(sent.bytesSent)} in ${seconds.toFixed(1)}s (${formatBytes(sent.bytesSent / Math.max(seconds, 0.001))}/s)${sent.resumedFrom ? `, resumed at ${formatBytes(sent.resumedFrom)}` : ''}`,
  );
  return sent.bytesSent;
}

/** `journalId`: what the host's journal records when it is done (an upgrade names its own, per version). */
export function uploadPhase(journalId = 'upload'): InstallPhase {
  return journaled(journalId, {
    title: 'Upload the bundle to the registry host',
    hosts: (_all, ctx) => [ctx.registryHost],
    steps: (host, ctx) => [
      {
        describe: `upload ${ctx.bundleFile} → ${bundleTar(ctx)} (skipped when the host has it; resumed when cut; sha256 checked on the host)`,
        run: (h) => sendBundle(h, ctx),
      },
      {
        describe: `unpack into ${bundleDir(ctx)} (owners and modes not taken from the archive) and check the tree against SHA256SUMS (sha256 ${ctx.sumsSha256.slice(0, 16)}…, from verify): every file as listed, nothing else`,
        run: async (h) => {
          await h.conn.run(`${unpackScript(onHost(ctx, host))}\n${linkCurrent(ctx)}`, { timeoutMs: LONG });
          ctx.bundleChecked.add(h);
        },
      },
      ...signerKeyStep(ctx),
    ],
  });
}

/** The registry host serving the bundle to the others for this phase: its key, forced command and host keys. */
interface Source {
  key: DistributionKey;
  pull: PullSource;
}
const sources = new WeakMap<InstallContext, Promise<Source>>();

function sourceFor(ctx: InstallContext): Promise<Source> {
  let source = sources.get(ctx);
  if (!source) {
    source = openSource(ctx);
    sources.set(ctx, source);
  }
  return source;
}

async function openSource(ctx: InstallContext): Promise<Source> {
  const reg = ctx.registryHost;
  const user = reg.spec.user ?? ctx.options.user;
  const key = makeDistributionKey();
  // the other hosts' own addresses: the key is refused from anywhere else
  const from = [...new Set(ctx.hosts.filter((h) => h !== reg).flatMap((h) => h.facts.addresses.map((a) => a.address)))];
  await uploadSmallFile(reg.conn, serveScript(), SERVE_SCRIPT, 0o755);
  await reg.conn.run(authorizedKeysScript(user, authorizedKeyLine(key, bundleDir(ctx), from)));
  const hostKeys = (await reg.conn.run('cat /etc/ssh/ssh_host_*_key.pub 2>/dev/null || true')).stdout;
  const port = reg.spec.port ?? 22;
  return { key, pull: { address: reg.spec.address, port, user, knownHosts: knownHostsFor(reg.spec.address, port, hostKeys) } };
}

/**
 * After the phase, whatever happened, on every run: the key's line and the forced command leave the registry host
 * (also those of an earlier run killed before it could remove them).
 */
async function closeSource(ctx: InstallContext): Promise<void> {
  sources.delete(ctx);
  const user = ctx.registryHost.spec.user ?? ctx.options.user;
  await ctx.registryHost.conn.run(`${authorizedKeysScript(user, null)}\nrm -f ${SERVE_SCRIPT}`);
}

/** `<sha256>  <path>` of the files a host fetches (SHA256SUMS and its signature are always fetched anew). */
function wantLines(ctx: InstallContext, paths: readonly string[]): string {
  return paths.filter((p) => p !== SUMS_FILE && p !== SIGNATURE_FILE).map((p) => `${ctx.tree.sums.get(p)}  ${p}\n`).join('');
}

/** Fetch from the registry host; on any failure, say why and upload from here instead. */
async function fetchOrUpload(h: InstallHost, ctx: InstallContext): Promise<void> {
  const b = onHost(ctx, h);
  const only = b.only ?? [];
  let reason: string;
  try {
    const source = await sourceFor(ctx);
    const started = Date.now();
    const script = `${pullScript(b.dir, wantLines(ctx, only), source.pull, b.signed)}\n${finishScript(b)}\n${linkCurrent(ctx)}`;
    const r = await h.conn.exec(script, { stdin: source.key.private, timeoutMs: LONG });
    if (r.code === 0) {
      const bytes = Number(/fetched (\d+)/.exec(r.stdout)?.[1] ?? 0);
      const seconds = (Date.now() - started) / 1000;
      ctx.progress.bytes(h, bytes);
      ctx.progress.note(h, `fetched ${formatBytes(bytes)} from ${ctx.registryHost.label} in ${seconds.toFixed(1)}s (${only.length} files: its part of the bundle)`);
      return;
    }
    const said = r.stderr.trim().split('\n').slice(-3).join('; ');
    reason = r.code === 3 ? `cannot reach it over SSH: ${said || `exit ${r.code}`}` : `the fetch failed: ${said || `exit ${r.code}`}`;
  } catch (err) {
    if (err instanceof UserError && /interrupted|timed out/.test(err.message)) throw err;
    reason = (err as Error).message;
  }
  ctx.fallbacks.set(h, reason);
  ctx.options.log(`    ${h.label}: cannot fetch from ${ctx.registryHost.label} inside the site (${reason}); uploading its part from here`);
  await sendBundle(h, ctx);
  await h.conn.run(`${unpackScript(b, { dropTar: true })}\n${linkCurrent(ctx)}`, { timeoutMs: LONG });
}

export function distributePhase(journalId = 'distribute'): InstallPhase {
  const phase = journaled(journalId, {
    title: 'Hand out the bundle inside the site',
    hosts: (all, ctx) => all.filter((h) => h !== ctx.registryHost),
    steps: (host, ctx) => [
      {
        describe: `fetch its part of the bundle (${payloadOf(ctx, host).length} files: installer, manifests, its packages; no images) from ${ctx.registryHost.label} over SSH into ${bundleDir(ctx)}, with a one-time key that may only read the bundle there, only from the site's hosts, removed after this phase; check it against SHA256SUMS (sha256 ${ctx.sumsSha256.slice(0, 16)}…); when it cannot, upload it from here`,
        run: async (h) => {
          await fetchOrUpload(h, ctx);
          ctx.bundleChecked.add(h);
        },
      },
      ...signerKeyStep(ctx),
    ],
  });
  return { ...phase, finish: closeSource };
}

/** Every run, before anything from the tree runs: a file changed on the host since the upload is refused here. */
export function checkBundlePhase(): InstallPhase {
  return {
    title: CHECK_BUNDLE_PHASE,
    shouldRun: (host, ctx) => !ctx.bundleChecked.has(host),
    async run(host, ctx) {
      await host.conn.run(checkScript(onHost(ctx, host)), { timeoutMs: 10 * 60_000 });
    },
    dryRun: (host, ctx) => [`check ${bundleDir(ctx)} against SHA256SUMS (sha256 ${ctx.sumsSha256.slice(0, 16)}…): every file ${host === ctx.registryHost ? '' : 'of its part '}as listed, nothing else, modes as packed`],
  };
}
