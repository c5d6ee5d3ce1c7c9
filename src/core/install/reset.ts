/**
 * `bundle reset`: undo an install on every host of a hosts file, so they can be installed again. One phase of the
 * install's runner (phase-runner.ts): the hosts in parallel up to --concurrency, a host that cannot be reached
 * or fails a step reported alone while the others go on. The host-side script travels on stdin: it needs nothing from the bundle, which may be gone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../util/errors.js';
import type { LiveLine } from '../../util/progress.js';
import { packageRoot } from '../../util/package-root.js';
import { Secrets } from '../ssh/command.js';
import { connectToHost, specLabel } from './connect.js';
import { readHostsFile, type HostSpec } from './hosts.js';
import { DEFAULT_CONCURRENCY } from './limits.js';
import { errorMessage, PhaseReporter } from './phase-report.js';
import { runPhases, type Phase } from './phase-runner.js';
import { hostScriptEnv } from './host-paths.js';

export interface ResetOptions {
  hostsFile: string;
  identity?: string;
  user: string;
  knownHosts: string;
  purge: boolean;
  dryRun: boolean;
  /** the operator said yes (--yes, or answered the prompt) */
  confirmed: boolean;
  /** hosts reset at once (default DEFAULT_CONCURRENCY, as install) */
  concurrency?: number;
  log(line: string): void;
  /** a terminal line to redraw the count on, with many hosts */
  live?: LiveLine;
}

export interface ResetResult {
  ok: boolean;
  hosts: { host: string; ok: boolean; output: string }[];
}

export function resetScript(): string {
  return readFileSync(join(packageRoot(), 'scripts', 'host', 'reset-host.sh'), 'utf8');
}

/**
 * The command each host runs, the script arriving on its stdin. The script is resumable (a reset cut by a lost
 * connection is completed by the next one) and exits non-zero naming every step that failed.
 */
export function resetCommand(purge: boolean): string {
  return `${hostScriptEnv()} bash -s --${purge ? ' --purge' : ''}`;
}

interface ResetContext {
  options: ResetOptions;
  script: string;
  secrets: Secrets;
  /** what reset-host.sh printed, per host that finished */
  output: Map<HostSpec, string>;
}

/** Connects, runs reset-host.sh, disconnects: a host that cannot be reached fails alone, as one that fails a step. */
const resetPhase: Phase<HostSpec, ResetContext> = {
  title: 'Reset the hosts',
  async run(spec, ctx) {
    const conn = await connectToHost(spec, { ...ctx.options, secrets: ctx.secrets });
    try {
      const r = await conn.run(resetCommand(ctx.options.purge), { stdin: ctx.script, timeoutMs: 10 * 60_000 });
      ctx.output.set(spec, r.stdout.trim());
    } finally {
      await conn.close();
    }
  },
  dryRun: () => [],
};

export async function reset(options: ResetOptions): Promise<ResetResult> {
  const specs = readHostsFile(options.hostsFile);
  const command = resetCommand(options.purge);
  if (options.dryRun) {
    for (const s of specs) options.log(`${s.address}$ ${command}   (scripts/host/reset-host.sh on stdin)`);
    return { ok: true, hosts: specs.map((s) => ({ host: s.address, ok: true, output: 'dry run' })) };
  }
  if (!options.confirmed) {
    throw new UserError(`reset removes Kubernetes from ${specs.length} host(s) in ${options.hostsFile}`, 'add --yes to go ahead (or --dry-run to see what it runs)');
  }
  const ctx: ResetContext = { options, script: resetScript(), secrets: new Secrets(), output: new Map() };
  // a line per host, or with many hosts a count and the failures (phase-report.ts)
  const reporter = new PhaseReporter<HostSpec>({
    log: options.log,
    hostsFile: options.hostsFile,
    ref: (spec) => ({ label: specLabel(spec), line: spec.line }),
    indent: '',
    hostLine: (r) => `✓ ${specLabel(r.host)}`,
    ...(options.live ? { live: options.live } : {}),
  });
  const result = await runPhases([resetPhase], specs, { ctx, concurrency: options.concurrency ?? DEFAULT_CONCURRENCY, onEvent: reporter.onEvent }).finally(() => reporter.close());
  const hosts = result.phases[0]!.hosts.map((h) => {
    const ok = h.status === 'ok';
    return { host: specLabel(h.host), ok, output: ok ? (ctx.output.get(h.host) ?? '') : errorMessage(h.error) };
  });
  return { ok: hosts.every((h) => h.ok), hosts };
}
