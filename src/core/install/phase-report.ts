/**
 * What install and reset print while their phases run, for a few hosts and for hundreds.
 *
 * A phase of up to MANY_HOSTS hosts prints a line per host, as it always did. A phase of more prints a count line
 * instead (ok, already done, failed, running, waiting, elapsed, and the bytes moved with their aggregate rate):
 * redrawn in place on a terminal, else printed at most every `intervalMs` and once when the phase ends. A failure is
 * printed when it happens, whatever the number of hosts, naming the host and its line in the hosts file.
 *
 * Phases report what they move and what they have to say per host through `ctx.progress` (PhaseProgress): kept per
 * phase and host for the summary and --json, and counted into the phase's throughput.
 */
import { formatBytes, formatDuration, type LiveLine } from '../../util/progress.js';
import type { PhaseProgress } from './context.js';
import type { HostResult, PhaseEvent, PhaseResult } from './phase-runner.js';

/** More hosts than this in a phase: count lines instead of a line per host. */
export const MANY_HOSTS = 8;

/** How output names a host: its label, and its line in the hosts file. */
export interface HostRef {
  label: string;
  line: number;
}

/** What a phase reported about one host (PhaseProgress), for the summary and --json. */
export interface HostDetail {
  bytes: number;
  notes: string[];
}

/** Where the hosts of a running phase are. */
export interface PhaseTally {
  total: number;
  running: number;
  ok: number;
  /** nothing to do there (install: already done) */
  skipped: number;
  failed: number;
  notRun: number;
  bytes: number;
}

export function newTally(total: number): PhaseTally {
  return { total, running: 0, ok: 0, skipped: 0, failed: 0, notRun: 0, bytes: 0 };
}

/** The tally after one of the runner's events of its phase. */
export function tallyEvent<H>(t: PhaseTally, e: PhaseEvent<H>): PhaseTally {
  if (e.type === 'host-start') return { ...t, running: t.running + 1 };
  if (e.type !== 'host-end') return t;
  const status = e.result.status;
  // a host cancelled before it started has no host-start
  const running = status === 'not-run' ? t.running : t.running - 1;
  const key = status === 'not-run' ? 'notRun' : status;
  return { ...t, running, [key]: t[key] + 1 };
}

/** "42/120 hosts: 37 ok, 3 already done, 2 failed, 8 running, 70 waiting; 1m05s, 2.4 GiB at 37.5 MiB/s" */
export function formatTally(t: PhaseTally, elapsedMs: number): string {
  const ended = t.ok + t.skipped + t.failed + t.notRun;
  const waiting = t.total - ended - t.running;
  const counts = [`${t.ok} ok`];
  for (const [n, what] of [[t.skipped, 'already done'], [t.failed, 'failed'], [t.running, 'running'], [waiting, 'waiting'], [t.notRun, 'not run']] as const) {
    if (n > 0) counts.push(`${n} ${what}`);
  }
  const seconds = elapsedMs / 1000;
  const moved = t.bytes > 0 ? `, ${formatBytes(t.bytes)} at ${formatBytes(t.bytes / Math.max(seconds, 0.001))}/s` : '';
  return `${ended}/${t.total} hosts: ${counts.join(', ')}; ${formatDuration(seconds)}${moved}`;
}

/** "cp1 (10.0.0.11) [hosts.txt:3]": how a failure names its host, wherever it is printed. */
export function whereIs(ref: HostRef, hostsFile: string): string {
  return `${ref.label} [${hostsFile}:${ref.line}]`;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export interface ReporterOptions<H> {
  /** where every line goes */
  log(line: string): void;
  hostsFile: string;
  ref(host: H): HostRef;
  /** the line that opens each phase (install: "• title"); none when absent */
  heading?(title: string): string;
  /** before each line about a phase's hosts (install indents them under the heading) */
  indent: string;
  /** with few hosts, the line for a host that ended ok or skipped */
  hostLine(result: HostResult<H>): string;
  /** more hosts than this in a phase: count lines (default MANY_HOSTS) */
  manyHosts?: number;
  /** a terminal line to redraw the count on; without one, count lines are printed */
  live?: LiveLine;
  /** without a live line, a count line at most this often (default 5000) */
  intervalMs?: number;
  /** with nothing changing, a count line anyway this often, to show time passing (default 30000) */
  heartbeatMs?: number;
  now?(): number;
}

interface Running<H> {
  title: string;
  many: boolean;
  tally: PhaseTally;
  started: number;
  details: Map<H, HostDetail>;
  timer?: NodeJS.Timeout;
  /** the tally last printed, and when */
  printed: string;
  printedAt: number;
}

/**
 * Takes the phase runner's events (onEvent) and the phases' reports (it is their ctx.progress) and prints as the
 * header says. close() when the run is over, whatever its outcome.
 */
export class PhaseReporter<H> implements PhaseProgress<H> {
  private current: Running<H> | undefined;
  private readonly done = new Map<string, Map<H, HostDetail>>();
  private readonly now: () => number;

  constructor(private readonly opts: ReporterOptions<H>) {
    this.now = opts.now ?? Date.now;
  }

  readonly onEvent = (e: PhaseEvent<H>): void => {
    if (e.type === 'phase-start') return this.start(e.title, e.hosts.length);
    const phase = this.current;
    if (!phase) return;
    if (e.type === 'phase-end') return this.end(phase, e.result);
    phase.tally = tallyEvent(phase.tally, e);
    if (e.type === 'host-end') this.hostEnded(phase, e.result);
    if (phase.many) this.show(phase);
  };

  bytes(host: H, n: number): void {
    const phase = this.current;
    if (!phase || !(n > 0)) return;
    this.detailOf(phase, host).bytes += n;
    phase.tally = { ...phase.tally, bytes: phase.tally.bytes + n };
  }

  note(host: H, text: string): void {
    const phase = this.current;
    if (!phase) return this.print(`${this.opts.indent}  ${this.opts.ref(host).label}: ${text}`);
    this.detailOf(phase, host).notes.push(text);
    if (!phase.many) this.print(`${this.opts.indent}  ${this.opts.ref(host).label}: ${text}`);
  }

  /** A line from elsewhere (the install's own log): printed above the live line, which stays. */
  readonly print = (line: string): void => {
    const live = this.current?.many ? this.opts.live : undefined;
    live?.clear();
    this.opts.log(line);
    if (live && this.current) live.update(this.liveText(this.current));
  };

  /** What a phase reported about a host, once the phase has run. */
  detail(title: string, host: H): HostDetail | undefined {
    return this.done.get(title)?.get(host);
  }

  /** Redraws or prints the count when it is time; the timer calls it, tests may too. */
  tick(): void {
    if (this.current?.many) this.show(this.current);
  }

  close(): void {
    if (this.current?.timer) clearInterval(this.current.timer);
    if (this.current?.many) this.opts.live?.stop();
    this.current = undefined;
  }

  private start(title: string, hosts: number): void {
    this.close();
    const now = this.now();
    const many = hosts > (this.opts.manyHosts ?? MANY_HOSTS);
    const phase: Running<H> = { title, many, tally: newTally(hosts), started: now, details: new Map(), printed: '', printedAt: now };
    this.done.set(title, phase.details);
    const heading = this.opts.heading?.(title);
    if (heading !== undefined) this.opts.log(heading);
    this.current = phase;
    if (!many) return;
    phase.timer = setInterval(() => this.tick(), this.opts.live ? 1000 : Math.min(this.opts.intervalMs ?? 5000, 1000));
    phase.timer.unref();
    this.opts.live?.update(this.liveText(phase));
  }

  private hostEnded(phase: Running<H>, r: HostResult<H>): void {
    const { indent } = this.opts;
    const label = this.opts.ref(r.host).label;
    if (r.status === 'failed') this.print(`${indent}✗ ${whereIs(this.opts.ref(r.host), this.opts.hostsFile)}: ${errorMessage(r.error)}`);
    else if (!phase.many && (r.status === 'ok' || r.status === 'skipped')) this.print(this.opts.hostLine(r));
    for (const line of r.plan ?? []) this.print(`${indent}  ${label}$ ${line}`);
  }

  private end(phase: Running<H>, result: PhaseResult<H>): void {
    if (phase.many) {
      // from the result: hosts a cancellation kept from starting, or a failed preparation, send no events
      const t = { ...newTally(result.hosts.length), bytes: phase.tally.bytes };
      for (const r of result.hosts) t[r.status === 'not-run' ? 'notRun' : r.status]++;
      this.close();
      const whole = result.status === 'ok' && t.notRun === 0;
      this.opts.log(`${this.opts.indent}${whole ? '✓' : '✗'} ${formatTally(t, this.now() - phase.started)}`);
      if (result.error !== undefined) this.opts.log(`${this.opts.indent}✗ ${phase.title}: ${errorMessage(result.error)}`);
    } else {
      this.close();
    }
  }

  /** The count on the live line, or as a printed line when it changed and the interval passed (or at a heartbeat). */
  private show(phase: Running<H>): void {
    const live = this.opts.live;
    if (live) return live.update(this.liveText(phase));
    const now = this.now();
    const since = now - phase.printedAt;
    const changed = JSON.stringify(phase.tally) !== phase.printed;
    if (!(changed && since >= (this.opts.intervalMs ?? 5000)) && since < (this.opts.heartbeatMs ?? 30_000)) return;
    phase.printed = JSON.stringify(phase.tally);
    phase.printedAt = now;
    this.opts.log(`${this.opts.indent}… ${formatTally(phase.tally, now - phase.started)}`);
  }

  private liveText(phase: Running<H>): string {
    return `${phase.title}: ${formatTally(phase.tally, this.now() - phase.started)}`;
  }

  private detailOf(phase: Running<H>, host: H): HostDetail {
    let d = phase.details.get(host);
    if (!d) phase.details.set(host, (d = { bytes: 0, notes: [] }));
    return d;
  }
}

/**
 * For a callback that reports a running total (an upload's onProgress(done, total)): the bytes() calls it amounts
 * to. The first total is where the transfer starts (a resumed prefix moved nothing now); a smaller one starts anew.
 */
export function countBytes<H>(progress: PhaseProgress<H>, host: H): (done: number) => void {
  let last: number | undefined;
  return (done) => {
    if (last !== undefined && done > last) progress.bytes(host, done - last);
    last = done;
  };
}
