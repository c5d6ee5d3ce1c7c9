/** Human-readable build summaries; `--json` prints the BuildResult itself. */
import { formatBytes } from '../../util/progress.js';
import type { BuildResult } from './build.js';

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col] ?? 0))).join('  ')).join('\n') + '\n';
}

export function formatBuildResult(r: BuildResult): string {
  const debBytes = r.packages.reduce((s, p) => s + p.size, 0);
  const imageBytes = r.images.reduce((s, i) => s + i.size, 0);
  const fileBytes = r.files.reduce((s, f) => s + f.size, 0);
  const head = `Kubernetes ${r.kubernetesVersion} for ${r.target} (${r.arches.join(', ')}), runtimes: ${r.runtimes.join(', ')}\n` + differentialLine(r);
  if (r.dryRun) {
    return [
      head,
      `Packages (${r.packages.length}, ${formatBytes(debBytes)}):\n`,
      table([['NAME', 'VERSION', 'ARCH', 'SIZE', 'FROM'], ...r.packages.map((p) => [p.name, p.version, p.arch, formatBytes(p.size), p.source])]),
      `\nImages (${r.images.length}, ${formatBytes(imageBytes)} before sharing layers):\n`,
      table([['REFERENCE', 'PLATFORMS', 'SIZE', 'DIGEST'], ...r.images.map((i) => [i.ref, i.platforms.join(','), r.differential && i.size === 0 ? 'in base' : formatBytes(i.size), i.digest])]),
      `\nFiles (${r.files.length}, ${formatBytes(fileBytes)}):\n`,
      table([['PATH', 'SIZE', 'URL'], ...r.files.map((f) => [f.path, formatBytes(f.size), f.url])]),
      `\nDry run: nothing was downloaded but package indexes, image manifests and release files (${formatBytes(r.fetch.bytesFetched + r.fetch.metadataBytesFetched)}).\n`,
    ].join('');
  }
  return [
    head,
    `Wrote ${r.output} (${formatBytes(r.size ?? 0)})\n`,
    `  ${r.packages.length} packages, ${r.images.length} images, ${r.files.length} files; ${r.signer ? `signed by ${r.signer}` : 'UNSIGNED'}\n`,
    `  lock file: ${r.lockFile}\n`,
    `  downloaded ${formatBytes(r.fetch.bytesFetched)} (+ ${formatBytes(r.fetch.metadataBytesFetched)} of signed indexes), from cache ${formatBytes(r.fetch.bytesFromCache)}, in ${r.seconds.toFixed(1)}s\n`,
  ].join('');
}

/** What a differential build carries and what it leaves to its base; empty for a full build. */
function differentialLine(r: BuildResult): string {
  const d = r.differential;
  if (!d) return '';
  return `Differential since ${d.base.kubernetesVersion} (${d.base.file}, lock sha256 ${d.base.lockSha256}): ` +
    `carries ${d.carried.debs} packages, ${d.carried.blobs} image blobs, ${d.carried.files} files (${formatBytes(d.carried.bytes)}); ` +
    `the base has ${d.fromBase.debs} packages, ${d.fromBase.blobs} image blobs, ${d.fromBase.files} files of this build\n`;
}
