/**
 * Package relationship fields (Depends, Pre-Depends, Provides, Breaks, Conflicts), as deb-control(5) and Debian
 * policy §7.1 define them: a comma-separated list of groups of `|`-separated alternatives, each
 * `name[:archqual] [(op version)] [[arch ...]] [<profile ...> ...]`.
 *
 * Build profiles (`<!nocheck>`) only matter when building from source; binary packages never carry them, so they
 * are parsed and dropped rather than rejected.
 */
import { UserError } from '../../util/errors.js';
import { compareVersions, isValidVersion } from './version.js';

export type RelationOp = '<<' | '<=' | '=' | '>=' | '>>';

export interface VersionConstraint {
  op: RelationOp;
  version: string;
}

export interface ArchRestriction {
  /** true for `[!i386 !armel]`, false for `[amd64 arm64]` (policy forbids mixing the two). */
  negated: boolean;
  arches: string[];
}

export interface Relation {
  name: string;
  /** `any`, `native` or an architecture name, from `name:qualifier`. */
  archQualifier?: string;
  constraint?: VersionConstraint;
  archRestriction?: ArchRestriction;
}

/** One comma-separated item: any of its alternatives satisfies it. */
export type RelationGroup = Relation[];

// The obsolete `<` and `>` mean `<=` and `>=` (policy §7.1); dpkg still accepts them.
const OPERATORS: Record<string, RelationOp> = { '<<': '<<', '<=': '<=', '=': '=', '>=': '>=', '>>': '>>', '<': '<=', '>': '>=' };
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]*$/;
const RELATION = /^([^\s:([<]+)(?::([a-z0-9-]+))?\s*(?:\(\s*([<>=]+)\s*([^\s)]+)\s*\))?\s*(?:\[([^\]]*)\])?\s*((?:<[^>]*>\s*)*)$/;

/** Where a field came from, for error messages: e.g. `kubelet 1.32.3-1.1 Depends`. */
export interface FieldContext {
  where: string;
}

/** Parse Depends, Pre-Depends, Breaks, Conflicts and the like. An empty or absent field gives []. */
export function parseRelationGroups(field: string | undefined, context: FieldContext): RelationGroup[] {
  if (field === undefined) return [];
  const groups: RelationGroup[] = [];
  for (const item of field.split(',')) {
    const trimmed = item.trim();
    if (trimmed === '') continue; // a trailing comma is common and harmless
    groups.push(trimmed.split('|').map((alt) => parseRelation(alt, context)));
  }
  return groups;
}

/** Parse Provides: no alternatives, and only `=` may constrain a provided version (policy §7.5). */
export function parseProvides(field: string | undefined, context: FieldContext): Relation[] {
  return parseRelationGroups(field, context).map((group) => {
    const only = group[0];
    if (group.length !== 1 || !only) throw new UserError(`${context.where}: Provides may not contain alternatives ('|')`);
    if (only.constraint && only.constraint.op !== '=') {
      throw new UserError(`${context.where}: Provides '${formatRelation(only)}' may only use '='`);
    }
    return only;
  });
}

export function parseRelation(text: string, context: FieldContext): Relation {
  const trimmed = text.replace(/\s+/g, ' ').trim();
  const match = RELATION.exec(trimmed);
  const name = match?.[1];
  if (!match || !name || !PACKAGE_NAME.test(name)) {
    throw new UserError(`${context.where}: cannot parse relation '${trimmed}'`);
  }
  const relation: Relation = { name };
  if (match[2]) relation.archQualifier = match[2];
  if (match[3] !== undefined) relation.constraint = parseConstraint(match[3], match[4] ?? '', trimmed, context);
  if (match[5] !== undefined) relation.archRestriction = parseArchRestriction(match[5], trimmed, context);
  return relation;
}

function parseConstraint(opText: string, version: string, relation: string, context: FieldContext): VersionConstraint {
  const op = OPERATORS[opText];
  if (!op) throw new UserError(`${context.where}: unknown version operator '${opText}' in '${relation}'`);
  if (!isValidVersion(version)) throw new UserError(`${context.where}: invalid version '${version}' in '${relation}'`);
  return { op, version };
}

function parseArchRestriction(text: string, relation: string, context: FieldContext): ArchRestriction {
  const words = text.trim().split(/\s+/).filter((w) => w !== '');
  const negated = words.map((w) => w.startsWith('!'));
  if (words.length === 0 || negated.some((n) => n !== negated[0])) {
    throw new UserError(`${context.where}: bad architecture list '[${text}]' in '${relation}'`);
  }
  return { negated: negated[0] === true, arches: words.map((w) => w.replace(/^!/, '')) };
}

/** Does `version` satisfy the constraint? No constraint is satisfied by any version. */
export function satisfiesConstraint(version: string, constraint: VersionConstraint | undefined): boolean {
  if (!constraint) return true;
  const cmp = compareVersions(version, constraint.version);
  switch (constraint.op) {
    case '<<':
      return cmp < 0;
    case '<=':
      return cmp <= 0;
    case '=':
      return cmp === 0;
    case '>=':
      return cmp >= 0;
    case '>>':
      return cmp > 0;
  }
}

/**
 * Does a relation apply when installing on `arch` (Debian architecture name, e.g. amd64)? Only relations with an
 * `[arch ...]` list can fail to. Wildcards: `any`, `linux-any` (all Debian architectures here are Linux) and
 * `any-<cpu>`, where a Debian architecture name is its own CPU name, close enough for the wildcards seen in practice.
 */
export function relationAppliesToArch(relation: Relation, arch: string): boolean {
  const restriction = relation.archRestriction;
  if (!restriction) return true;
  const listed = restriction.arches.some((pattern) => archMatches(pattern, arch));
  return restriction.negated ? !listed : listed;
}

function archMatches(pattern: string, arch: string): boolean {
  return pattern === arch || pattern === 'any' || pattern === 'linux-any' || pattern === `linux-${arch}` || pattern === `any-${arch}`;
}

export function formatConstraint(constraint: VersionConstraint): string {
  return `(${constraint.op} ${constraint.version})`;
}

/** Canonical text of a relation, e.g. `libc6 (>= 2.34)`, `python3:any`. */
export function formatRelation(relation: Relation): string {
  const qualified = relation.archQualifier ? `${relation.name}:${relation.archQualifier}` : relation.name;
  const parts = [qualified];
  if (relation.constraint) parts.push(formatConstraint(relation.constraint));
  if (relation.archRestriction) {
    const bang = relation.archRestriction.negated ? '!' : '';
    parts.push(`[${relation.archRestriction.arches.map((a) => bang + a).join(' ')}]`);
  }
  return parts.join(' ');
}

export function formatGroup(group: RelationGroup): string {
  return group.map(formatRelation).join(' | ');
}
