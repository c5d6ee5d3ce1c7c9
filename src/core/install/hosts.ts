/**
 * The hosts file of `bundle install --hosts`: one host per line, `ADDRESS ROLE [key=value ...]`, `#` comments.
 *
 *   10.0.0.10  control-plane  name=cp1
 *   10.0.0.20  worker         name=w1 user=admin port=2222 identity=~/.ssh/site
 *   reg.lan    registry       # the air-gapped image registry
 *
 * Parsing is a pure function over the text; every problem in the file is collected so the operator fixes them in
 * one go instead of one per run.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isIPv4, isIPv6 } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { UserError } from '../../util/errors.js';
import { isDnsName, isValidNodeName, NODE_NAME_RULE, shown } from './validate.js';

export const HOST_ROLES = ['control-plane', 'worker', 'registry', 'lb'] as const;
export type HostRole = (typeof HOST_ROLES)[number];
const HOST_KEYS = ['name', 'user', 'port', 'identity'] as const;
type HostKey = (typeof HOST_KEYS)[number];

export interface HostSpec {
  /** IPv4, IPv6 (without brackets) or DNS name, as written (DNS names lowercased) */
  address: string;
  role: HostRole;
  /** Kubernetes node name; when absent the node keeps its own hostname */
  name?: string;
  user?: string;
  port?: number;
  identity?: string;
  /** 1-based line in the hosts file, for later messages about this host */
  line: number;
}

/** All the problems of one hosts file; `problems` are the individual `file:line: ...` lines. */
export class HostsFileError extends UserError {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(
      problems.length === 1 ? problems[0]! : `${problems.length} problems in ${file}:\n  ${problems.join('\n  ')}`,
      'each line is "ADDRESS ROLE [name=NODE] [user=USER] [port=PORT] [identity=KEYFILE]"',
    );
    this.name = 'HostsFileError';
  }
}

// the rules for names and addresses live with the other value rules
export { isValidNodeName };

/** The address in canonical form, or undefined when it is neither an IP address nor a DNS name. */
function normalizeAddress(raw: string): string | undefined {
  const unbracketed = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
  if (isIPv6(unbracketed)) return unbracketed.toLowerCase();
  if (unbracketed !== raw) return undefined;
  if (isIPv4(raw)) return raw;
  return isDnsName(raw) ? raw.toLowerCase() : undefined;
}

function stripComment(line: string): string {
  const hash = line.indexOf('#');
  return hash === -1 ? line : line.slice(0, hash);
}

function parseRole(raw: string | undefined, address: string, problems: string[]): HostRole | undefined {
  if (raw === undefined) problems.push(`missing role after '${address}' (use ${HOST_ROLES.join(', ')})`);
  else if ((HOST_ROLES as readonly string[]).includes(raw)) return raw as HostRole;
  else problems.push(`unknown role '${raw}' (use ${HOST_ROLES.join(', ')})`);
  return undefined;
}

function parsePairs(pairs: string[], problems: string[]): Map<HostKey, string> {
  const values = new Map<HostKey, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    if (!(HOST_KEYS as readonly string[]).includes(key)) problems.push(`unknown key '${key}' (use ${HOST_KEYS.join(', ')})`);
    else if (value === '') problems.push(`'${key}' needs a value: ${key}=...`);
    else if (values.has(key as HostKey)) problems.push(`'${key}' given twice`);
    else values.set(key as HostKey, value);
  }
  return values;
}

/** The optional fields of a line, each checked. */
function parseOptions(values: Map<HostKey, string>, problems: string[]): Pick<HostSpec, 'name' | 'user' | 'port' | 'identity'> {
  const options: Pick<HostSpec, 'name' | 'user' | 'port' | 'identity'> = {};
  const name = values.get('name');
  if (name !== undefined) {
    if (isValidNodeName(name)) options.name = name;
    else problems.push(`name ${shown(name)} is not a valid Kubernetes node name (${NODE_NAME_RULE})`);
  }
  const port = values.get('port');
  if (port !== undefined) {
    const n = /^[0-9]{1,5}$/.test(port) ? Number(port) : NaN;
    if (n >= 1 && n <= 65535) options.port = n;
    else problems.push(`bad port '${port}' (use 1-65535)`);
  }
  const user = values.get('user');
  if (user !== undefined) options.user = user;
  const identity = values.get('identity');
  if (identity !== undefined) options.identity = identity;
  return options;
}

/**
 * Parses one non-empty line; problems are pushed without the `file:line: ` prefix. The spec is returned whenever
 * address and role are valid, even if an option is broken, so that the cross-line checks still see the host.
 */
function parseLine(tokens: string[], line: number, problems: string[]): HostSpec | undefined {
  const [rawAddress, rawRole, ...pairs] = tokens as [string, ...string[]];
  const address = normalizeAddress(rawAddress);
  if (address === undefined) problems.push(`'${rawAddress}' is not an IPv4/IPv6 address or DNS name`);
  const role = parseRole(rawRole, rawAddress, problems);
  const options = parseOptions(parsePairs(pairs, problems), problems);
  return address !== undefined && role !== undefined ? { address, role, ...options, line } : undefined;
}

/** Problems that involve several lines: duplicates and the cluster's shape. */
function crossCheck(hosts: HostSpec[]): { line?: number; text: string }[] {
  const problems: { line?: number; text: string }[] = [];
  const byAddress = new Map<string, number>();
  const byName = new Map<string, number>();
  let registryLine: number | undefined;
  for (const h of hosts) {
    const addressLine = byAddress.get(h.address);
    if (addressLine !== undefined) problems.push({ line: h.line, text: `duplicate address '${h.address}' (also on line ${addressLine})` });
    else byAddress.set(h.address, h.line);
    if (h.name !== undefined) {
      const nameLine = byName.get(h.name);
      if (nameLine !== undefined) problems.push({ line: h.line, text: `duplicate name '${h.name}' (also on line ${nameLine})` });
      else byName.set(h.name, h.line);
    }
    if (h.role === 'registry') {
      if (registryLine !== undefined) problems.push({ line: h.line, text: `a second registry host (the first is on line ${registryLine}); only one is supported` });
      else registryLine = h.line;
    }
  }
  if (!hosts.some((h) => h.role === 'control-plane')) problems.push({ text: 'no control-plane host: at least one line needs the role control-plane' });
  return problems;
}

/**
 * Parses a hosts file's text. `file` is only used in messages (`hosts.txt:4: ...`).
 * Throws one HostsFileError listing every problem, in line order.
 */
export function parseHosts(text: string, file: string): HostSpec[] {
  const hosts: HostSpec[] = [];
  const problems: { line?: number; text: string }[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const tokens = stripComment(raw).trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0) return;
    const lineProblems: string[] = [];
    const spec = parseLine(tokens, index + 1, lineProblems);
    for (const p of lineProblems) problems.push({ line: index + 1, text: p });
    if (spec) hosts.push(spec);
  });
  // lines with a bad address or role are already reported and left out of the cross-line checks
  problems.push(...crossCheck(hosts));
  if (problems.length > 0) {
    const ordered = problems.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    throw new HostsFileError(file, ordered.map((p) => (p.line === undefined ? `${file}: ${p.text}` : `${file}:${p.line}: ${p.text}`)));
  }
  return hosts;
}

function resolveIdentity(identity: string, hostsFile: string): string {
  if (identity === '~' || identity.startsWith('~/')) return homedir() + identity.slice(1);
  return isAbsolute(identity) ? identity : resolve(dirname(hostsFile), identity);
}

/**
 * Reads and parses a hosts file. `identity=` paths are made absolute: `~/` is the home directory and a relative
 * path is relative to the hosts file, so the file means the same from any working directory.
 */
export function readHostsFile(path: string): HostSpec[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read hosts file ${path}: ${(err as Error).message}`, undefined, { cause: err });
  }
  return parseHosts(text, path).map((h) => (h.identity === undefined ? h : { ...h, identity: resolveIdentity(h.identity, path) }));
}
