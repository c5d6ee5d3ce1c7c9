/**
 * The one entry point of the benchmarks: `npm run bench [-- <benchmark> [args...]]`.
 *
 *   build               speed, size and memory of `bundle build` against curl (build.ts)
 *   install             `bundle install` in the lab: wall time, upload vs scp, seeding vs skopeo (install.ts; root)
 *   install-scale       `bundle install` on 1, 4, 8 (16) lab hosts: operator bytes, bytes stored per role, time per
 *                       phase, at full speed and with the operator's link throttled (install-scale.ts; root)
 *   upgrade             differential bundle size against the content new to it; `bundle upgrade` of a 3-host lab
 *                       cluster: wall time per step (upgrade.ts; root for the lab part)
 *   upload [MiB] [n]    src/core/ssh's upload against scp to one lab host (upload.ts; root)
 *   verify [MiB]        `bundle verify` against sha256sum of a packed 1 GiB bundle, and the on-host check (verify.ts)
 *
 * Without a name it runs build, then install, as the project's benchmark figures are taken (BENCH_SKIP_INSTALL=1
 * leaves install out). Each benchmark is loaded only when asked for: upload's child runs in the lab's netns
 * through this file too, and should not load the rest. As root it first installs the tools the benchmarks run
 * (skopeo, curl, GNU time, the lab's) with scripts/dev-tools.sh, as the test command does.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHMARKS: Record<string, (args: readonly string[]) => Promise<void>> = {
  build: async () => (await import('./build.js')).runBuildBench(),
  install: async () => (await import('./install.js')).runInstallBench(),
  'install-scale': async () => (await import('./install-scale.js')).runInstallScaleBench(),
  upgrade: async () => (await import('./upgrade.js')).runUpgradeBench(),
  upload: async (args) => (await import('./upload.js')).runUploadBench(args),
  verify: async (args) => (await import('./verify.js')).runVerifyBench(args),
};

const [name, ...args] = process.argv.slice(2);
if (name !== undefined && !Object.hasOwn(BENCHMARKS, name)) {
  console.error(`usage: npm run bench [-- ${Object.keys(BENCHMARKS).join('|')} [args...]]`);
  process.exit(2);
}
// not in upload's child (`upload --child`, in the lab's netns): its parent did it
if (process.getuid?.() === 0 && !args.includes('--child')) {
  const tools = spawnSync('bash', [fileURLToPath(new URL('../dev-tools.sh', import.meta.url))], { stdio: 'inherit' });
  if (tools.status !== 0) process.exit(tools.status ?? 1);
}
if (name === undefined) {
  await BENCHMARKS.build!([]);
  if (process.env.BENCH_SKIP_INSTALL === '1') console.error('[bench] BENCH_SKIP_INSTALL=1: skipping the `bundle install` benchmark');
  else await BENCHMARKS.install!([]);
} else {
  await BENCHMARKS[name]!(args);
}
