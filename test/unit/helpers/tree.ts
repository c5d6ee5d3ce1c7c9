/**
 * A bundle as the byte ranges of its members (to splice crafted members in), and a directory tree as GNU tar
 * left it (to compare what a host would unpack with what was signed).
 */
import { execFileSync } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTar } from '../../../src/core/bundle/tar.js';

export interface Segment {
  path: string;
  type: 'file' | 'directory' | 'other';
  /** the member's bytes: header block(s), body and padding */
  bytes: Buffer;
  body: Buffer;
}

/** The members of a (canonical) bundle in order, and the end-of-archive bytes after them. */
export async function segments(bundle: string): Promise<{ members: Segment[]; trailer: Buffer }> {
  const bytes = await readFile(bundle);
  const found: { path: string; type: Segment['type']; offset: number; size: number }[] = [];
  for await (const item of readTar(bundle)) {
    if (item.kind === 'defect') throw new Error(`not a clean bundle: ${item.defect.detail}`);
    found.push({ path: item.entry.path, type: item.entry.type, offset: item.entry.offset, size: item.entry.size });
  }
  const end = bytes.length - 1024;
  const members = found.map((f, i) => {
    const next = found[i + 1]?.offset ?? end;
    const segment = bytes.subarray(f.offset, next);
    const bodyStart = next - Math.ceil(f.size / 512) * 512;
    return { path: f.path, type: f.type, bytes: Buffer.from(segment), body: Buffer.from(bytes.subarray(bodyStart, bodyStart + f.size)) };
  });
  return { members, trailer: Buffer.from(bytes.subarray(end)) };
}

export interface TreeEntry {
  type: 'file' | 'directory' | 'other';
  mode: number;
  /** sha-free: the content itself, for files (bundles in these tests are small) */
  content?: string;
}

/** Every path under `dir` with its type, permission bits (including setuid/sticky) and file content. */
export async function readTree(dir: string): Promise<Map<string, TreeEntry>> {
  const tree = new Map<string, TreeEntry>();
  async function walk(rel: string): Promise<void> {
    for (const name of await readdir(join(dir, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const stats = await lstat(join(dir, path));
      const mode = stats.mode & 0o7777;
      if (stats.isDirectory()) {
        tree.set(path, { type: 'directory', mode });
        await walk(path);
      } else if (stats.isFile()) {
        tree.set(path, { type: 'file', mode, content: (await readFile(join(dir, path))).toString('latin1') });
      } else {
        tree.set(path, { type: 'other', mode });
      }
    }
  }
  await walk('');
  return tree;
}

/**
 * What GNU tar, run as this (root) test process, unpacks from `archive`: the tree, or null when tar itself
 * refuses the archive. Options as a host's root would run it by default (owners and modes from the archive).
 */
export async function gnuUnpack(archive: string): Promise<Map<string, TreeEntry> | null> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-bundle-unpack-'));
  try {
    try {
      execFileSync('tar', ['-xf', archive, '-C', dir], { stdio: 'ignore' });
    } catch {
      return null;
    }
    return await readTree(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The differences between two trees, one line each (empty when equal). */
export function treeDifferences(expected: Map<string, TreeEntry>, actual: Map<string, TreeEntry>): string[] {
  const out: string[] = [];
  for (const [path, e] of expected) {
    const a = actual.get(path);
    if (!a) out.push(`missing ${path}`);
    else if (a.type !== e.type) out.push(`${path}: ${a.type} instead of ${e.type}`);
    else if (a.mode !== e.mode) out.push(`${path}: mode ${a.mode.toString(8)} instead of ${e.mode.toString(8)}`);
    else if (a.content !== e.content) out.push(`${path}: other content`);
  }
  for (const path of actual.keys()) if (!expected.has(path)) out.push(`extra ${path}`);
  return out;
}
