/**
 * The Debian archive this machine's apt uses, read at run time (never written into the repo): tests pass it as
 * `--mirror` for the upstream archive names the target definitions use.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadTarget } from '../../src/core/definitions.js';

function aptUris(): string[] {
  const dir = '/etc/apt/sources.list.d';
  const uris: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.sources'))) {
    for (const m of readFileSync(join(dir, file), 'utf8').matchAll(/^URIs:\s*(.+)$/gm)) uris.push(...(m[1] ?? '').trim().split(/\s+/));
  }
  try {
    for (const m of readFileSync('/etc/apt/sources.list', 'utf8').matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)) uris.push(m[1] ?? '');
  } catch {
    // no sources.list: deb822 sources only
  }
  return uris.filter(Boolean).map((u) => u.replace(/\/+$/, ''));
}

/** This machine's Debian archive (not its security archive), e.g. for debootstrap. */
export function debianArchiveUrl(): string {
  const main = aptUris().find((u) => u.endsWith('/debian'));
  if (!main) throw new Error("this machine's apt sources name no Debian archive");
  return main;
}

/**
 * `--mirror` flags mapping a Debian target's archive URLs onto this machine's apt archive. A mirror maps a URL
 * prefix, not a suite: one archive (and one security archive) serves bookworm and trixie alike, so the flags are the
 * same for every Debian target; the target's own sources name which prefixes need one.
 */
export function debianMirrorFlags(target = 'debian-12'): string[] {
  const uris = aptUris();
  const security = uris.find((u) => u.endsWith('/debian-security'));
  const main = uris.find((u) => u.endsWith('/debian'));
  if (!main || !security) throw new Error(`this machine's apt sources name no Debian archive and security archive (found: ${uris.join(', ') || 'none'})`);
  const def = loadTarget(target);
  if (def.os !== 'debian') throw new Error(`${target} is not a Debian target: this machine's Debian archive cannot stand in for it`);
  return def.sources
    .map((s) => s.url.replace(/\/+$/, ''))
    .map((url) => `${url}=${url.endsWith('/debian-security') ? security : main}`)
    .flatMap((m) => ['--mirror', m]);
}
