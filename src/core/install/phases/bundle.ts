/**
 * The bundle on the hosts: uploaded (resumable, its sha256 checked on the host), unpacked without the archive's
 * owners and modes, and checked against the verified SHA256SUMS before anything in it runs, on every run.
 */
import { formatBytes } from '../../../util/progress.js';
import { checkScript, unpackScript, type BundleOnHost } from '../bundle-on-host.js';
import type { InstallContext } from '../context.js';
import { REMOTE_ROOT, SIGNER_KEY } from '../host-paths.js';
import { bundleDir, bundleTar, file, journaled, type InstallPhase } from './steps.js';

/** a phase that only reads: it runs on every install and does not count as a change */
export const CHECK_BUNDLE_PHASE = 'Check the bundle on the hosts';

const onHost = (ctx: InstallContext): BundleOnHost => ({ tar: bundleTar(ctx), dir: bundleDir(ctx), sumsSha256: ctx.sumsSha256, signed: ctx.manifest.signer !== null });

export function uploadPhase(): InstallPhase {
  return journaled('upload', {
    title: 'Upload the bundle',
    steps: (_host, ctx) => [
      {
        describe: `upload ${ctx.bundleFile} → ${bundleTar(ctx)} (skipped when the host has it; resumed when cut; sha256 checked on the host)`,
        run: async (h) => {
          await h.conn.run(`mkdir -p ${REMOTE_ROOT}/bundles`);
          const started = Date.now();
          const sent = await h.conn.upload(ctx.bundleFile, bundleTar(ctx), { sha256: ctx.bundleSha256 });
          const seconds = (Date.now() - started) / 1000;
          ctx.options.log(
            sent.skipped
              ? `    ${h.label}: the bundle is already there`
              : `    ${h.label}: sent ${formatBytes(sent.bytesSent)} in ${seconds.toFixed(1)}s (${formatBytes(sent.bytesSent / Math.max(seconds, 0.001))}/s)${sent.resumedFrom ? `, resumed at ${formatBytes(sent.resumedFrom)}` : ''}`,
          );
        },
      },
      {
        describe: `unpack into ${bundleDir(ctx)} (owners and modes not taken from the archive) and check the tree against SHA256SUMS (sha256 ${ctx.sumsSha256.slice(0, 16)}…, from verify): every file as listed, nothing else`,
        run: async (h) => {
          await h.conn.run(`${unpackScript(onHost(ctx))}\nln -sfn ${bundleDir(ctx)} ${REMOTE_ROOT}/current`, { timeoutMs: 30 * 60_000 });
          ctx.bundleChecked.add(h);
        },
      },
      ...(ctx.signerKey ? [file(SIGNER_KEY, ctx.signerKey)] : []),
    ],
  });
}

/** Every run, before anything from the tree runs: a file changed on the host since the upload is refused here. */
export function checkBundlePhase(): InstallPhase {
  return {
    title: CHECK_BUNDLE_PHASE,
    shouldRun: (host, ctx) => !ctx.bundleChecked.has(host),
    async run(host, ctx) {
      await host.conn.run(checkScript(onHost(ctx)), { timeoutMs: 10 * 60_000 });
    },
    dryRun: (_host, ctx) => [`check ${bundleDir(ctx)} against SHA256SUMS (sha256 ${ctx.sumsSha256.slice(0, 16)}…): every file as listed, nothing else, modes as packed`],
  };
}
