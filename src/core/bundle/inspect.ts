/**
 * Show what a bundle carries without reading it all: bundle.yaml is the third tar member, so inspect stops
 * there. Nothing is verified here (that is `bundle verify`), which the human output says.
 */
import { stat } from 'node:fs/promises';
import { UserError } from '../../util/errors.js';
import { formatBytes } from '../../util/progress.js';
import { parseManifest, type BundleManifest } from './manifest.js';
import { MANIFEST_FILE, SIGNATURE_FILE } from './paths.js';
import { readTar } from './tar.js';

export interface BundleSummary {
  file: string;
  /** size of the bundle file */
  size: number;
  /** whether SHA256SUMS.asc is present (not whether it verifies) */
  signed: boolean;
  manifest: BundleManifest;
  /** bytes per component kind, as listed in bundle.yaml */
  totals: { packages: number; images: number; files: number };
}

const MAX_MANIFEST_SIZE = 64 << 20;
/** small reads: only the first few members are wanted */
const READ_SIZE = 256 << 10;

export async function inspectBundle(file: string): Promise<BundleSummary> {
  const { size } = await stat(file).catch((err: Error) => {
    throw new UserError(`cannot read bundle ${file}: ${err.message}`);
  });
  let signed = false;
  for await (const item of readTar(file, { chunkSize: READ_SIZE })) {
    if (item.kind === 'defect') {
      throw new UserError(`${file}: ${item.defect.detail} (tar header at byte ${item.defect.offset}) before ${MANIFEST_FILE} was found`, `run \`bundle verify ${file}\``);
    }
    const { entry } = item;
    if (entry.path === SIGNATURE_FILE) signed = true;
    if (entry.path !== MANIFEST_FILE || entry.type !== 'file') continue;
    const text = (await entry.readAll(MAX_MANIFEST_SIZE)).toString('utf8');
    const manifest = parseManifest(text, `${MANIFEST_FILE} in ${file}`);
    return { file, size, signed, manifest, totals: totalsOf(manifest) };
  }
  throw new UserError(`${file} has no ${MANIFEST_FILE}; is it a kube-bundle?`);
}

function totalsOf(m: BundleManifest): BundleSummary['totals'] {
  const sum = (items: { size: number }[]): number => items.reduce((total, item) => total + item.size, 0);
  return { packages: sum(m.components.packages), images: sum(m.components.images), files: sum(m.components.files) };
}

/** Human-readable report: a header block, then one table per component kind. */
export function formatInspect(s: BundleSummary): string {
  const m = s.manifest;
  const { packages, images, files } = m.components;
  const header = table([
    ['Bundle', `${s.file} (${formatBytes(s.size)})`],
    ['Kubernetes', m.kubernetesVersion],
    ['Content', m.base ? `differential, base ${m.base.kubernetesVersion} (lock sha256 ${m.base.lockSha256}): only what the base lacks` : 'full'],
    ['Target', `${m.target} (${m.arches.join(', ')})`],
    ['Runtimes', m.runtimes.join(', ')],
    ['Created', m.created],
    ['Signer', signerLine(s)],
  ]);
  const sections = [
    section(`Packages (${packages.length}, ${formatBytes(s.totals.packages)})`, ['NAME', 'VERSION', 'ARCH', 'SIZE'],
      packages.map((p) => [p.name, p.version, p.arch, formatBytes(p.size)])),
    section(`Images (${images.length}, ${formatBytes(s.totals.images)})`, ['REF', 'DIGEST', 'PLATFORMS', 'SIZE'],
      images.map((i) => [i.ref, shortDigest(i.digest), i.platforms.join(','), i.fromBase ? 'in base' : formatBytes(i.size)])),
    section(`Files (${files.length}, ${formatBytes(s.totals.files)})`, ['PATH', 'KIND', 'SIZE'],
      files.map((f) => [f.path, f.kind, formatBytes(f.size)])),
  ];
  return [header, ...sections].join('\n\n');
}

function signerLine(s: BundleSummary): string {
  const signer = s.manifest.signer;
  if (signer && s.signed) return `${signer} (not checked here: run \`bundle verify --pubkey <key>\`)`;
  if (signer) return `${signer}, but ${SIGNATURE_FILE} is missing: the bundle will not verify`;
  return s.signed ? `none in ${MANIFEST_FILE}, yet ${SIGNATURE_FILE} is present` : 'none (unsigned bundle)';
}

function section(title: string, columns: string[], rows: string[][]): string {
  return rows.length === 0 ? title : `${title}\n${indent(table([columns, ...rows]))}`;
}

/** Columns padded to their widest cell; the last column is not padded. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length)));
  return rows.map((r) => r.map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col]!))).join('  ')).join('\n');
}

function indent(text: string): string {
  return text.split('\n').map((line) => `  ${line}`).join('\n');
}

function shortDigest(digest: string): string {
  return digest.slice(0, 'sha256:'.length + 12);
}
