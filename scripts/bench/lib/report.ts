/** The benchmark's verdicts: each measured figure next to its target, printed as a table. */

export interface Row {
  measure: string;
  value: string;
  target: string;
  /** undefined: informational, no target */
  met?: boolean;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
export const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;
export const secs = (seconds: number): string => `${seconds.toFixed(2)} s`;
export const times = (ratio: number): string => `${ratio.toFixed(3)}×`;
/** "1.23 s (1.20 / 1.23 / 1.31)": the median first, then every sample in run order. */
export const samples = (values: number[]): string => `${secs(median(values))} (${values.map((v) => v.toFixed(2)).join(' / ')})`;

export function formatTable(rows: Row[]): string {
  const cells = [['MEASURE', 'VALUE', 'TARGET', 'RESULT'], ...rows.map((r) => [r.measure, r.value, r.target, verdict(r.met)])];
  const widths = [0, 1, 2].map((col) => Math.max(...cells.map((c) => (c[col] ?? '').length)));
  return cells.map((c) => c.map((cell, col) => (col < 3 ? cell.padEnd(widths[col] ?? 0) : cell)).join('  ')).join('\n');
}

function verdict(met: boolean | undefined): string {
  if (met === undefined) return '';
  return met ? 'ok' : 'MISSED';
}
