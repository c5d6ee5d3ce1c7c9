/**
 * Progress on long work: an ora spinner with bytes, rate and ETA on a terminal; plain lines otherwise (CI logs,
 * pipes); nothing at all under --json, whose output must stay machine-readable.
 */
import type { Ora } from 'ora';

export interface Progress {
  /** start a named step (the previous one is finished) */
  step(text: string): void;
  /** bytes of the current step so far, out of `total` when known */
  bytes(done: number, total?: number): void;
  /** a line worth keeping in the log */
  info(text: string): void;
  /** finish the current step successfully */
  succeed(text?: string): void;
  /** finish the current step as failed */
  fail(text?: string): void;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.round(seconds)}s`;
  const m = Math.floor(seconds / 60);
  return `${m}m${String(Math.round(seconds - m * 60)).padStart(2, '0')}s`;
}

/** "12.0 MiB / 48.0 MiB, 6.0 MiB/s, ETA 6s" — pure, for both renderers and the tests. */
export function describeTransfer(done: number, total: number | undefined, elapsedSeconds: number): string {
  const rate = elapsedSeconds > 0 ? done / elapsedSeconds : 0;
  let text = total ? `${formatBytes(done)} / ${formatBytes(total)}` : formatBytes(done);
  if (rate > 0) text += `, ${formatBytes(rate)}/s`;
  if (total && rate > 0 && done < total) text += `, ETA ${formatDuration((total - done) / rate)}`;
  return text;
}

const silentProgress: Progress = { step() {}, bytes() {}, info() {}, succeed() {}, fail() {} };

/** ora (and what it loads) only for a terminal: logs and pipes, the way CI and scripts run it, start faster. */
export async function createProgress(opts: { json?: boolean; stream?: NodeJS.WriteStream } = {}): Promise<Progress> {
  const stream = opts.stream ?? process.stderr;
  if (opts.json) return silentProgress;
  // a terminal that reports no width (a pty nobody sized, e.g. `script` or a bare `docker exec -t`) would make ora
  // count its lines as text length / 0 and clear forever: plain lines there too
  if (!stream.isTTY || !stream.columns) return new LineProgress(stream);
  const { default: ora } = await import('ora');
  return new SpinnerProgress(ora({ stream, discardStdin: false }));
}

/** One line redrawn in place at the bottom of a terminal, for a state that changes often (a count of hosts). */
export interface LiveLine {
  /** show `text` as the line, now */
  update(text: string): void;
  /** take the line off the screen until the next update (to print a line above it) */
  clear(): void;
  /** take the line off for good */
  stop(): void;
}

/** A LiveLine on a terminal with a width (ora's spinner), or undefined: the caller then prints lines instead. */
export async function createLiveLine(stream: NodeJS.WriteStream = process.stderr): Promise<LiveLine | undefined> {
  if (!stream.isTTY || !stream.columns) return undefined;
  const { default: ora } = await import('ora');
  const spinner = ora({ stream, discardStdin: false });
  return {
    update(text) {
      spinner.text = text;
      if (spinner.isSpinning) spinner.render();
      else spinner.start();
    },
    clear: () => void spinner.clear(),
    stop: () => void spinner.stop(),
  };
}

class SpinnerProgress implements Progress {
  private text = '';
  private started = Date.now();
  constructor(private readonly spinner: Ora) {}
  step(text: string) {
    if (this.spinner.isSpinning) this.spinner.succeed();
    this.text = text;
    this.started = Date.now();
    this.spinner.start(text);
  }
  bytes(done: number, total?: number) {
    this.spinner.text = `${this.text} — ${describeTransfer(done, total, (Date.now() - this.started) / 1000)}`;
  }
  info(text: string) {
    this.spinner.info(text);
    if (this.text) this.spinner.start(this.text);
  }
  succeed(text?: string) {
    this.spinner.succeed(text ?? this.text);
  }
  fail(text?: string) {
    this.spinner.fail(text ?? this.text);
  }
}

/** One line per step, and for a transfer a line every few seconds at most, so a CI log stays readable. */
class LineProgress implements Progress {
  private text = '';
  private started = Date.now();
  private lastLine = 0;
  private last: { done: number; total?: number } | undefined;
  constructor(
    private stream: NodeJS.WriteStream,
    private intervalMs = 5000,
  ) {}
  private line(s: string) {
    this.stream.write(s + '\n');
  }
  step(text: string) {
    this.text = text;
    this.started = this.lastLine = Date.now();
    this.last = undefined;
    this.line(`• ${text}`);
  }
  bytes(done: number, total?: number) {
    this.last = { done, total };
    if (Date.now() - this.lastLine < this.intervalMs) return;
    this.lastLine = Date.now();
    this.line(`  ${describeTransfer(done, total, (Date.now() - this.started) / 1000)}`);
  }
  info(text: string) {
    this.line(`  ${text}`);
  }
  succeed(text?: string) {
    const seconds = (Date.now() - this.started) / 1000;
    const moved = this.last ? `, ${describeTransfer(this.last.done, undefined, seconds)}` : '';
    this.line(`✓ ${text ?? this.text} (${formatDuration(seconds)}${moved})`);
    this.last = undefined;
  }
  fail(text?: string) {
    this.line(`✗ ${text ?? this.text}`);
  }
}
