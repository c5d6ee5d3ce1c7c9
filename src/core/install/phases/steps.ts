/**
 * What the install's phases are made of: steps (a command, a file written, a long command under the host lock),
 * each with the line --dry-run prints for it, and the journaled phase that runs a list of steps on each of its
 * hosts and records itself in the host's journal when they are done.
 */
import { shQuote, type ExecOptions } from '../../ssh/command.js';
import { uploadSmallFile } from '../../ssh/upload.js';
import type { InstallContext, InstallHost } from '../context.js';
import { hostScriptEnv, JOURNAL, REMOTE_ROOT } from '../host-paths.js';
import type { Phase } from '../phase-runner.js';
import { hostLocked, lockedTimeoutMs } from '../resume.js';

export type InstallPhase = Phase<InstallHost, InstallContext>;

export interface Step {
  /** what --dry-run prints for it */
  describe: string;
  run(host: InstallHost): Promise<unknown>;
}

/** The bundle unpacked on a host: one directory per bundle, named by its sha256, so that two bundles never mix. */
export const bundleDir = (ctx: InstallContext): string => `${REMOTE_ROOT}/${ctx.bundleSha256.slice(0, 16)}`;
/** The uploaded bundle file on a host. */
export const bundleTar = (ctx: InstallContext): string => `${REMOTE_ROOT}/bundles/${ctx.bundleSha256}.tar`;
/** A host script from the bundle's installer/ (scripts/host/ in this repository). */
/** The command that runs one of the bundle's host scripts (installer/), with the KB_* paths it reads (host-paths.ts). */
export const hostScript = (ctx: InstallContext, script: string): string => `${hostScriptEnv()} ${bundleDir(ctx)}/installer/${script}`;

export const command = (cmd: string, opts: Pick<ExecOptions, 'timeoutMs' | 'name'> = {}): Step => ({
  describe: cmd,
  run: (host) => host.conn.run(cmd, opts),
});

/**
 * A long effectful host command, run under the host-wide lock with its output held on the host (resume.ts): a
 * re-run waits for the same step left running by a killed CLI, which runs to its end. The time limit covers the wait.
 */
export const locked = (cmd: string, opts: { timeoutMs?: number } = {}): Step =>
  // a failure names the step's own command, not the lock and output plumbing around it
  command(hostLocked(cmd), { name: cmd, ...(opts.timeoutMs === undefined ? {} : { timeoutMs: lockedTimeoutMs(opts.timeoutMs) }) });

/** Write a file on the host; content may be computed when the step runs (a dry run never computes it). */
export const file = (path: string, content: string | (() => Promise<string>), mode = 0o644, what = ''): Step => ({
  describe: `write ${path}${what ? ` (${what})` : typeof content === 'string' ? ` (${content.length} bytes)` : ''}, mode ${mode.toString(8)}`,
  run: async (host) => {
    await host.conn.run(`mkdir -p ${shQuote(path.replace(/\/[^/]+$/, ''))}`);
    await uploadSmallFile(host.conn, typeof content === 'string' ? content : await content(), path, mode);
  },
});

/** The shell line that records a finished phase on a host. */
export function journalLine(id: string, ctx: InstallContext): string {
  return `mkdir -p ${REMOTE_ROOT} && echo "${id} ${ctx.bundleSha256.slice(0, 16)} $(date -u +%FT%TZ)" >> ${JOURNAL}`;
}

/** A phase that runs the same steps on each of its hosts, skipping hosts whose journal already has it. */
export function journaled(id: string, def: Omit<InstallPhase, 'shouldRun' | 'run' | 'dryRun'> & {
  steps(host: InstallHost, ctx: InstallContext): Promise<Step[]> | Step[];
}): InstallPhase {
  return {
    ...def,
    shouldRun: (host) => !host.facts.journal.includes(id),
    async run(host, ctx, signal) {
      for (const step of await def.steps(host, ctx)) {
        if (signal.aborted) throw new Error('interrupted');
        await step.run(host);
      }
      await host.conn.run(journalLine(id, ctx));
      host.facts.journal.push(id);
    },
    async dryRun(host, ctx) {
      if (host.facts.journal.includes(id)) return ['(already done)'];
      return (await def.steps(host, ctx)).map((s) => s.describe);
    },
  };
}

export const isControlPlane = (h: InstallHost): boolean => h.spec.role === 'control-plane';
/** a Kubernetes node (runs the kubelet and a container runtime), not only the registry or an lb host */
export const isNode = (h: InstallHost): boolean => h.spec.role === 'control-plane' || h.spec.role === 'worker';
