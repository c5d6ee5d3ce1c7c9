/**
 * Host key checking against an OpenSSH known_hosts file, as `ssh -o StrictHostKeyChecking=yes|accept-new` does:
 * plain and hashed (`|1|salt|hmac`) host fields, comma-separated patterns with `*`, `?` and `!`, `[host]:port`
 * for ports other than 22, and the `@revoked` marker (`@cert-authority` lines are ignored: we do not use certs).
 */
import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname } from 'node:path';
import { UserError } from '../../util/errors.js';

export interface KnownHostsEntry {
  line: number;
  /** the first field: patterns, or one hashed name */
  hosts: string;
  marker?: 'revoked' | 'cert-authority';
  keyType: string;
  key: Buffer;
}

export type HostKeyVerdict =
  | { kind: 'known'; line: number }
  | { kind: 'unknown' }
  /** the host has other keys on record (`line` is the first); refuse */
  | { kind: 'changed'; line: number }
  | { kind: 'revoked'; line: number };

/** `~/x` → home/x; known_hosts paths are usually given that way. */
export function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;
}

/** The key type written inside an SSH public key blob (its first string). */
export function keyTypeOf(blob: Buffer): string {
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : 0;
  if (len === 0 || 4 + len > blob.length) throw new Error('malformed SSH public key blob');
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** `SHA256:...` exactly as `ssh` and `ssh-keygen -l` print it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** How OpenSSH names a host in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  text.split('\n').forEach((raw, index) => {
    const fields = raw.trim().split(/\s+/);
    if (fields[0] === '' || fields[0]?.startsWith('#')) return;
    let marker: KnownHostsEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift()!.slice(1) as KnownHostsEntry['marker'];
    const [hosts, keyType, key64] = fields;
    // like ssh, a line it cannot read is passed over, not fatal
    if (!hosts || !keyType || !key64) return;
    const key = Buffer.from(key64, 'base64');
    if (key.length === 0) return;
    entries.push({ line: index + 1, hosts, ...(marker ? { marker } : {}), keyType, key });
  });
  return entries;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const pattern of field.split(',')) {
    const negated = pattern.startsWith('!');
    if (!globToRegExp(negated ? pattern.slice(1) : pattern).test(name)) continue;
    if (negated) return false; // a matching negation wins over any positive match
    matched = true;
  }
  return matched;
}

/** What known_hosts says about `key` offered by host:port. */
export function checkHostKey(entries: KnownHostsEntry[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const forHost = entries.filter((e) => e.marker !== 'cert-authority' && hostFieldMatches(e.hosts, name));
  const revoked = forHost.find((e) => e.marker === 'revoked' && e.key.equals(key));
  if (revoked) return { kind: 'revoked', line: revoked.line };
  const plain = forHost.filter((e) => e.marker === undefined);
  const known = plain.find((e) => e.key.equals(key));
  if (known) return { kind: 'known', line: known.line };
  // Any other recorded key, even of another type, means "changed": connect() asks for the recorded types first,
  // so a genuine host presents one of those; an impostor must not get in by offering a new type.
  const first = plain[0];
  return first ? { kind: 'changed', line: first.line } : { kind: 'unknown' };
}

/** Key types recorded for host:port, in file order; used to ask the server for these first. */
export function knownKeyTypes(entries: KnownHostsEntry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const types = entries.filter((e) => e.marker === undefined && hostFieldMatches(e.hosts, name)).map((e) => e.keyType);
  return [...new Set(types)];
}

export function readKnownHosts(file: string): KnownHostsEntry[] {
  if (!existsSync(file)) return [];
  try {
    return parseKnownHosts(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UserError(`cannot read known_hosts file ${file}: ${(err as Error).message}`, undefined, { cause: err });
  }
}

/** Appends `name type base64` (not hashed: the operator can read what was accepted). */
export function appendKnownHost(file: string, host: string, port: number, key: Buffer): void {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    appendFileSync(file, `${sep}${knownHostsName(host, port)} ${keyTypeOf(key)} ${key.toString('base64')}\n`, { mode: 0o644 });
  } catch (err) {
    throw new UserError(`cannot record the host key of ${host} in ${file}: ${(err as Error).message}`, undefined, { cause: err });
  }
}

/**
 * The whole check for one connection: returns when the key is known (or newly accepted and recorded), throws a
 * UserError naming host, file and line otherwise. `label` names the host in messages.
 */
export function verifyHostKey(opts: { file: string; host: string; port: number; label: string; key: Buffer; acceptNew: boolean }): void {
  const { file, host, port, label, key } = opts;
  const verdict = checkHostKey(readKnownHosts(file), host, port, key);
  const offered = `${keyTypeOf(key)} key ${fingerprint(key)}`;
  const removeHint = `ssh-keygen -f ${file} -R '${knownHostsName(host, port)}'`;
  switch (verdict.kind) {
    case 'known':
      return;
    case 'unknown':
      if (opts.acceptNew) return appendKnownHost(file, host, port, key);
      throw new UserError(
        `host key of ${label} is unknown: it offered ${offered}, which is not in ${file}`,
        'compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the host, then run again with --accept-new-host-keys to record it',
      );
    case 'changed':
      throw new UserError(
        `HOST KEY OF ${label} HAS CHANGED: it offered ${offered}, but ${file}:${verdict.line} records a different key. Someone could be intercepting the connection`,
        `if the host was reinstalled and the new fingerprint is right, remove the old key with: ${removeHint}`,
      );
    case 'revoked':
      throw new UserError(`host key of ${label} (${offered}) is marked @revoked in ${file}:${verdict.line}`, `a revoked key is never accepted; give the host a new key`);
  }
}
