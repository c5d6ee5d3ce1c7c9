/**
 * The install runner, in the style of k0sctl: an install is a list of phases run in order; within a phase the
 * hosts are worked on in parallel (up to a limit). A host that fails does not stop the other hosts of its phase,
 * but the phases after it do not start, so the cluster is never built on top of a broken step.
 *
 * Pure control flow: phases and hosts are whatever the caller says; nothing here knows about SSH.
 */
import { performance } from 'node:perf_hooks';
import { Limiter } from '../../util/limiter.js';
import { DEFAULT_CONCURRENCY } from './limits.js';

export interface Phase<H, C> {
  title: string;
  /** the hosts this phase works on, out of all of them; all hosts when absent */
  hosts?(all: readonly H[], ctx: C): readonly H[];
  /** once, before any host of the phase (also in dry-run): gather what the per-host steps need */
  prepare?(ctx: C): Promise<void> | void;
  /** false: nothing to do on this host (already done); the host is reported as skipped */
  shouldRun?(host: H, ctx: C): Promise<boolean> | boolean;
  /** do the work; `signal` fires on cancellation, long steps should give up when it does */
  run(host: H, ctx: C, signal: AbortSignal): Promise<void>;
  /** what `run` would do on this host, one line per action, changing nothing */
  dryRun(host: H, ctx: C): Promise<string[]> | string[];
  /**
   * once, after every host of the phase, whatever their outcome (not in dry-run): undo what prepare or the hosts
   * set up for the phase alone. Throwing fails the phase.
   */
  finish?(ctx: C): Promise<void> | void;
  /** hosts of this phase worked on at once, when it must be fewer than the run's (a rolling upgrade: 1, or --max-unavailable) */
  concurrency?(ctx: C): number;
  /** a failed host stops the phase from starting any other host (they are 'not-run'): a rollout stops at the first broken node */
  stopOnFailure?: boolean;
}

export type HostStatus = 'ok' | 'skipped' | 'failed' | 'not-run';

export interface HostResult<H> {
  host: H;
  status: HostStatus;
  /** set when status is 'failed' */
  error?: unknown;
  /** dry-run only: what would be done on this host */
  plan?: string[];
  durationMs: number;
}

export interface PhaseResult<H> {
  title: string;
  /** 'failed' when a host failed or prepare threw; 'not-run' when the phase never started */
  status: 'ok' | 'failed' | 'not-run';
  /** set when prepare threw (its hosts are then 'not-run') or finish did (its hosts keep their results) */
  error?: unknown;
  hosts: HostResult<H>[];
  durationMs: number;
}

export interface RunResult<H> {
  ok: boolean;
  /** the signal fired during the run (work after it is 'not-run'; ok is then false) */
  cancelled: boolean;
  phases: PhaseResult<H>[];
  durationMs: number;
}

export type PhaseEvent<H> =
  | { type: 'phase-start'; title: string; hosts: readonly H[] }
  | { type: 'host-start'; title: string; host: H }
  | { type: 'host-end'; title: string; result: HostResult<H> }
  | { type: 'phase-end'; result: PhaseResult<H> };

export interface RunOptions<H, C> {
  ctx: C;
  /** hosts worked on at once within a phase (default DEFAULT_CONCURRENCY, limits.ts) */
  concurrency?: number;
  /** call dryRun instead of run */
  dryRun?: boolean;
  /** stops starting new work; running steps get it too and finish or give up */
  signal?: AbortSignal;
  onEvent?(event: PhaseEvent<H>): void;
}

/** One host of a phase: skipped, planned (dry run), run, or failed; never throws. */
async function runHost<H, C>(phase: Phase<H, C>, host: H, opts: RunOptions<H, C>, signal: AbortSignal): Promise<HostResult<H>> {
  if (signal.aborted) return { host, status: 'not-run', durationMs: 0 };
  opts.onEvent?.({ type: 'host-start', title: phase.title, host });
  const started = performance.now();
  const elapsed = (): number => performance.now() - started;
  let result: HostResult<H>;
  try {
    if (phase.shouldRun && !(await phase.shouldRun(host, opts.ctx))) {
      result = { host, status: 'skipped', durationMs: elapsed() };
    } else if (opts.dryRun) {
      result = { host, status: 'ok', plan: await phase.dryRun(host, opts.ctx), durationMs: elapsed() };
    } else {
      await phase.run(host, opts.ctx, signal);
      result = { host, status: 'ok', durationMs: elapsed() };
    }
  } catch (error) {
    result = { host, status: 'failed', error, durationMs: elapsed() };
  }
  opts.onEvent?.({ type: 'host-end', title: phase.title, result });
  return result;
}

/** null when `fn` returned, else what it threw */
async function settle(fn: () => unknown): Promise<{ error: unknown } | null> {
  try {
    await fn();
    return null;
  } catch (error) {
    return { error };
  }
}

function notRun<H>(title: string, hosts: readonly H[]): PhaseResult<H> {
  return { title, status: 'not-run', hosts: hosts.map((host) => ({ host, status: 'not-run', durationMs: 0 })), durationMs: 0 };
}

async function runPhase<H, C>(phase: Phase<H, C>, hosts: readonly H[], opts: RunOptions<H, C>, signal: AbortSignal): Promise<PhaseResult<H>> {
  const started = performance.now();
  opts.onEvent?.({ type: 'phase-start', title: phase.title, hosts });
  let result: PhaseResult<H>;
  try {
    await phase.prepare?.(opts.ctx);
    const byHost = new Map<H, HostResult<H>>();
    const limiter = new Limiter(Math.max(1, Math.min(opts.concurrency ?? DEFAULT_CONCURRENCY, phase.concurrency?.(opts.ctx) ?? Infinity)));
    let stopped = false;
    await Promise.all(
      hosts.map((host) =>
        limiter.run(async () => {
          if (stopped) return byHost.set(host, { host, status: 'not-run', durationMs: 0 });
          const r = await runHost(phase, host, opts, signal);
          if (r.status === 'failed' && phase.stopOnFailure) stopped = true;
          return byHost.set(host, r);
        }),
      ),
    );
    // results in the caller's host order, not completion order, so reports are stable
    const results = hosts.map((host) => byHost.get(host) as HostResult<H>);
    const finished = opts.dryRun ? null : await settle(() => phase.finish?.(opts.ctx));
    const failed = results.some((r) => r.status === 'failed') || finished !== null;
    result = { title: phase.title, status: failed ? 'failed' : 'ok', hosts: results, durationMs: performance.now() - started, ...(finished ? { error: finished.error } : {}) };
  } catch (error) {
    result = { ...notRun(phase.title, hosts), status: 'failed', error, durationMs: performance.now() - started };
  }
  opts.onEvent?.({ type: 'phase-end', result });
  return result;
}

/**
 * Runs the phases in order over `hosts`. Never throws for a failing step: every failure is in the result, per
 * phase and host, for the caller to report. A phase whose hosts() selects nobody is reported 'ok' with no hosts.
 */
export async function runPhases<H, C>(phases: readonly Phase<H, C>[], hosts: readonly H[], opts: RunOptions<H, C>): Promise<RunResult<H>> {
  const started = performance.now();
  const signal = opts.signal ?? new AbortController().signal;
  const results: PhaseResult<H>[] = [];
  let failed = false;
  for (const phase of phases) {
    const phaseHosts = phase.hosts ? phase.hosts(hosts, opts.ctx) : hosts;
    if (signal.aborted || failed) {
      results.push(notRun(phase.title, phaseHosts));
      continue;
    }
    const result = await runPhase(phase, phaseHosts, opts, signal);
    if (result.status === 'failed') failed = true;
    results.push(result);
  }
  // a step that gave up because of the signal may have ended 'ok' or 'failed'; either way the run was cut short
  const cancelled = signal.aborted;
  return { ok: !failed && !cancelled, cancelled, phases: results, durationMs: performance.now() - started };
}
