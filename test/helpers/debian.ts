/**
 * The Debian archive this machine's apt uses, read at run time (never written into the repo): tests pass it as
 * `--mirror` for the upstream archive names the target definitions use.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

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

/** `--mirror` flags mapping the debian-12 target's archive URLs onto this machine's apt archive. */
export function debianMirrorFlags(): string[] {
  const uris = aptUris();
  const security = uris.find((u) => u.endsWith('/debian-security'));
  const main = uris.find((u) => u.endsWith('/debian'));
  if (!main || !security) throw new Error(`this machine's apt sources name no Debian archive and security archive (found: ${uris.join(', ') || 'none'})`);
  return [`http://ftp.debian.org/debian=${main}`, `http://security.debian.org/debian-security=${security}`].flatMap((m) => ['--mirror', m]);
}
