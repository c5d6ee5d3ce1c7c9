/**
 * The dependency closure of a set of root packages: every package apt would have to install on a minimal host, so
 * that the bundle can carry them all.
 *
 * Follows Depends and Pre-Depends (not Recommends/Suggests, which apt on the hosts is told to skip). Choices are
 * deterministic, breadth-first from the roots in the order given:
 * - of a group `a | b`, an alternative already in the closure wins, else the first one that can be satisfied;
 * - a name is satisfied by the real package of that name when it can be, else by its providers (Provides), the one
 *   already chosen or else the first by name;
 * - of a package's versions, the highest one that meets every version constraint seen so far.
 * When a constraint seen later rules out a version already chosen, the constraint is remembered and the walk starts
 * over, so that nothing the discarded version pulled in stays behind. Each restart adds a constraint not remembered
 * before, so there are finitely many. A remembered constraint holds until the end even if whatever placed it drops
 * out of the closure; at worst that reports a conflict apt could have avoided, it never yields a wrong closure.
 *
 * Packages with `Priority: required` or `Essential: yes` are on every Debian host, and so is everything they depend
 * on (since bookworm even libc6 is `Priority: optional`, present only as a dependency of required packages): with
 * `excludePriorityRequired` this whole base system is left out by name, whatever version is asked for.
 */
import { UserError } from '../../util/errors.js';
import { compareNames, type PackageIndex, type PackageRecord, type Provider } from './index.js';
import {
  formatConstraint,
  formatGroup,
  formatRelation,
  relationAppliesToArch,
  satisfiesConstraint,
  type Relation,
  type RelationGroup,
  type VersionConstraint,
} from './relations.js';

export interface RootRequest {
  name: string;
  /** An exact version; the candidate (highest satisfying) when absent. */
  version?: string;
}

export interface ResolveOptions {
  excludePriorityRequired: boolean;
  /**
   * Packages a minimal host of the target has beyond its required ones, because its installer picks them
   * (debootstrap installs usr-is-merged, not its alternative usrmerge and the perl that needs): they seed the base
   * system, so alternatives that name them resolve to them.
   */
  minimalHost?: readonly string[];
  /** Also return why each package is in the closure. */
  trace?: boolean;
}

export interface ExcludedPackage {
  name: string;
  /** `Priority: required`, `Essential: yes` or `dependency of required package <name>`. */
  reason: string;
  /** The chain that first asked for it, e.g. `kubeadm 1.32.3-1.1 -> kubelet 1.32.3-1.1`. */
  neededBy: string;
}

export interface TraceEntry {
  name: string;
  version: string;
  /** The relation that pulled it in, e.g. `runc (>= 1.0.0~rc8~)`, or `requested`. */
  relation: string;
  /** The chain from a root to the package that asked for it; empty for a root. */
  neededBy: string;
}

export interface Closure {
  /** Sorted by name; one version per name. */
  packages: PackageRecord[];
  /** Sorted by name. */
  excluded: ExcludedPackage[];
  trace?: TraceEntry[];
}

/** A package in the closure and the first package (with its own chain) that needed it. */
interface Node {
  record: PackageRecord;
  parent: Node | undefined;
  relation: string;
}

/** A version constraint on a real package and who placed it, for conflict messages. */
interface Imposed {
  constraint: VersionConstraint;
  by: string;
}

/** Thrown inside a pass when a chosen version must be replaced: the pass starts over with `imposed` remembered. */
class Restart {
  constructor(
    readonly name: string,
    readonly imposed: Imposed,
  ) {}
}

// A guard against a bug looping forever; real closures restart a handful of times at most.
const MAX_PASSES = 500;

/** How a walk treats the host and failures. */
interface WalkSettings {
  /** Names of the packages every host has, with the reason. */
  host: ReadonlyMap<string, string>;
  /** Skip a dependency that cannot be met instead of failing (for the base system, which the host has anyway). */
  lenient: boolean;
  trace: boolean;
}

export function resolveClosure(index: PackageIndex, roots: readonly RootRequest[], options: ResolveOptions): Closure {
  const host = options.excludePriorityRequired ? baseSystem(index, options.minimalHost) : new Map<string, string>();
  return walkWithRestarts(index, roots, { host, lenient: false, trace: options.trace === true });
}

/**
 * The packages of a minimal host (what `debootstrap --variant=minbase` installs): every package whose candidate
 * is `Priority: required` or `Essential: yes`, and their dependency closure. Maps each name to why it is there.
 */
export function baseSystem(index: PackageIndex, minimalHost: readonly string[] = []): Map<string, string> {
  const seeds: RootRequest[] = [];
  const extra = new Set(minimalHost.filter((name) => index.candidate(name)));
  for (const name of index.packageNames()) {
    const candidate = index.candidate(name);
    if (candidate && (candidate.priority === 'required' || candidate.essential || extra.has(name))) seeds.push({ name });
  }
  seeds.sort((a, b) => compareNames(a.name, b.name));
  const closure = walkWithRestarts(index, seeds, { host: new Map(), lenient: true, trace: true });
  const chains = new Map((closure.trace ?? []).map((t) => [t.name, t.neededBy]));
  const reasons = new Map<string, string>();
  for (const record of closure.packages) {
    // A chain reads `seed version -> ... -> parent version`: its first word names the required package.
    const seed = chains.get(record.name)?.split(' ')[0];
    if (record.essential) reasons.set(record.name, 'Essential: yes');
    else if (record.priority === 'required') reasons.set(record.name, 'Priority: required');
    else if (extra.has(record.name)) reasons.set(record.name, 'installed on every minimal host of the target');
    else reasons.set(record.name, `dependency of required package ${seed}`);
  }
  return reasons;
}

function walkWithRestarts(index: PackageIndex, roots: readonly RootRequest[], settings: WalkSettings): Closure {
  const learned = new Map<string, Imposed[]>();
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    try {
      return new ClosureWalk(index, settings, learned).run(roots);
    } catch (err) {
      if (!(err instanceof Restart)) throw err;
      appendTo(learned, err.name, err.imposed);
    }
  }
  throw new Error(`dependency resolution did not settle after ${MAX_PASSES} restarts`);
}

class ClosureWalk {
  private readonly selected = new Map<string, Node>();
  private readonly excluded = new Map<string, ExcludedPackage>();
  /** Virtual names provided by excluded (host) packages. */
  private readonly hostProvides = new Set<string>();
  private readonly constraints: Map<string, Imposed[]>;
  private readonly queue: Node[] = [];

  constructor(
    private readonly index: PackageIndex,
    private readonly settings: WalkSettings,
    learned: ReadonlyMap<string, Imposed[]>,
  ) {
    this.constraints = new Map([...learned].map(([name, list]) => [name, [...list]]));
  }

  run(roots: readonly RootRequest[]): Closure {
    for (const root of roots) this.requestRoot(root);
    // The queue grows while it is walked: breadth-first, so that chains in messages are the shortest ones.
    for (let i = 0; i < this.queue.length; i++) {
      const node = this.queue[i] as Node;
      for (const group of node.record.preDepends) this.resolveGroup(node, group, 'Pre-Depends');
      for (const group of node.record.depends) this.resolveGroup(node, group, 'Depends');
    }
    return this.result();
  }

  private requestRoot(root: RootRequest): void {
    const versions = this.index.versionsOf(root.name);
    if (versions.length === 0) {
      const providers = uniqueNames(this.index.providersOf(root.name).map((p) => p.record.name));
      const virtual = providers.length > 0 ? ` (it is a virtual package; request one of: ${providers.join(', ')})` : '';
      throw new UserError(`requested package ${root.name} is in none of the sources${virtual}`, this.searchedHint());
    }
    if (root.version !== undefined && !versions.some((v) => v.version === root.version)) {
      throw new UserError(
        `requested package ${root.name} ${root.version} is in none of the sources (they have: ${versions.map((v) => v.version).join(', ')})`,
        this.searchedHint(),
      );
    }
    const relation: Relation = { name: root.name };
    if (root.version !== undefined) relation.constraint = { op: '=', version: root.version };
    this.resolveGroup(undefined, [relation], 'requested');
  }

  /** Satisfy one comma-separated item of `node`'s field (or a root request when node is undefined). */
  private resolveGroup(node: Node | undefined, group: RelationGroup, field: string): void {
    const alternatives = group.filter((rel) => relationAppliesToArch(rel, this.index.architecture));
    if (alternatives.length === 0) return;
    for (const alt of alternatives) {
      const by = this.satisfiedBy(alt);
      if (by === 'real package') this.noteConstraint(alt, node);
      if (by) return;
    }
    // A host package meets its alternative as surely as one already chosen: the host has it installed.
    for (const alt of alternatives) {
      const host = this.hostPackageFor(alt);
      if (host) {
        this.exclude(host, node);
        return;
      }
    }
    const failures: string[] = [];
    for (const alt of alternatives) {
      const failure = this.satisfy(alt, node);
      if (failure === undefined) return;
      failures.push(failure);
    }
    if (!this.settings.lenient) throw this.unsatisfiable(node, group, field, failures);
  }

  /** What already meets `rel`: the real package in the closure, a provider in it, or the host. */
  private satisfiedBy(rel: Relation): 'real package' | 'provider' | 'host' | undefined {
    if (this.excluded.has(rel.name) || this.hostProvides.has(rel.name)) return 'host';
    const real = this.selected.get(rel.name);
    if (real && this.fitsRelation(real.record, rel)) return 'real package';
    const provided = this.index.providersOf(rel.name).some((p) => this.selected.get(p.record.name)?.record === p.record && this.provides(p, rel));
    return provided ? 'provider' : undefined;
  }

  /**
   * The host package (required or essential) that meets `rel` by name: the real package, else the first provider.
   * Versions are not checked: a host whose base is too old for the closure is out of this tool's hands.
   */
  private hostPackageFor(rel: Relation): PackageRecord | undefined {
    const real = this.index.candidate(rel.name);
    if (real && this.isHostPackage(real)) return real;
    for (const provider of this.index.providersOf(rel.name)) {
      const candidate = this.index.candidate(provider.record.name);
      if (candidate && this.isHostPackage(candidate) && this.provides(provider, rel)) return candidate;
    }
    return undefined;
  }

  /** Pull in a package that meets `rel`; returns why it cannot, or undefined when done. May throw a Restart. */
  private satisfy(rel: Relation, node: Node | undefined): string | undefined {
    const versions = this.index.versionsOf(rel.name);
    const best = versions.find((r) => this.fitsRelation(r, rel) && this.fitsImposed(r));
    if (best) {
      const imposed = this.noteConstraint(rel, node);
      if (!this.selected.has(rel.name)) {
        this.select(best, node, rel);
        return undefined;
      }
      // The version chosen earlier does not meet rel, but another one meets everything: start over with rel known.
      if (imposed) throw new Restart(rel.name, imposed);
    }
    return this.satisfyByProvider(rel, node) ? undefined : this.explainFailure(rel, versions);
  }

  /** Pull in the first provider, by name, of the virtual package `rel` names. */
  private satisfyByProvider(rel: Relation, node: Node | undefined): boolean {
    const providers = this.index.providersOf(rel.name).filter((p) => this.provides(p, rel));
    for (const name of uniqueNames(providers.map((p) => p.record.name))) {
      if (this.selected.has(name)) continue; // chosen earlier at a version that does not provide rel
      const best = providers.find((p) => p.record.name === name && this.fitsImposed(p.record));
      if (best) {
        this.select(best.record, node, rel);
        return true;
      }
    }
    return false;
  }

  private fitsRelation(record: PackageRecord, rel: Relation): boolean {
    return this.fitsArchQualifier(record, rel) && satisfiesConstraint(record.version, rel.constraint);
  }

  private provides(provider: Provider, rel: Relation): boolean {
    if (!this.fitsArchQualifier(provider.record, rel)) return false;
    if (!rel.constraint) return true;
    // An unversioned Provides never satisfies a versioned dependency (policy §7.5).
    return provider.providedVersion !== undefined && satisfiesConstraint(provider.providedVersion, rel.constraint);
  }

  /**
   * `name:any` accepts only a `Multi-Arch: allowed` package; `name:<arch>` that architecture. The index holds one
   * architecture (plus `all`), so plain and `:native` relations are met by any of its packages.
   */
  private fitsArchQualifier(record: PackageRecord, rel: Relation): boolean {
    const qualifier = rel.archQualifier;
    if (qualifier === undefined || qualifier === 'native') return true;
    if (qualifier === 'any') return record.multiArch === 'allowed';
    return record.architecture === qualifier || (record.architecture === 'all' && qualifier === this.index.architecture);
  }

  private fitsImposed(record: PackageRecord): boolean {
    return (this.constraints.get(record.name) ?? []).every((i) => satisfiesConstraint(record.version, i.constraint));
  }

  private isHostPackage(record: PackageRecord): boolean {
    return this.settings.host.has(record.name);
  }

  /** Remember a versioned relation on a real package, so that a later conflicting one can name it. */
  private noteConstraint(rel: Relation, node: Node | undefined): Imposed | undefined {
    if (!rel.constraint || this.index.versionsOf(rel.name).length === 0) return undefined;
    const imposed: Imposed = { constraint: rel.constraint, by: node ? `${chainOf(node)} (${formatRelation(rel)})` : `the request for ${formatRelation(rel)}` };
    appendTo(this.constraints, rel.name, imposed);
    return imposed;
  }

  private select(record: PackageRecord, parent: Node | undefined, rel: Relation): void {
    const node: Node = { record, parent, relation: parent ? formatRelation(rel) : 'requested' };
    this.selected.set(record.name, node);
    this.queue.push(node);
  }

  private exclude(record: PackageRecord, node: Node | undefined): void {
    if (this.excluded.has(record.name)) return;
    const reason = this.settings.host.get(record.name) ?? 'part of the base system';
    this.excluded.set(record.name, { name: record.name, reason, neededBy: node ? chainOf(node) : 'requested' });
    for (const provided of record.provides) this.hostProvides.add(provided.name);
  }

  /** Why no version of the real package `rel.name` (and no provider) will do. */
  private explainFailure(rel: Relation, versions: readonly PackageRecord[]): string {
    const text = formatRelation(rel);
    if (versions.length === 0) {
      const providers = uniqueNames(this.index.providersOf(rel.name).map((p) => p.record.name));
      if (providers.length === 0) return `no source provides ${rel.name}`;
      return `no provider of ${rel.name} (${providers.join(', ')}) meets '${text}'`;
    }
    const matching = versions.filter((r) => this.fitsRelation(r, rel));
    if (matching.length === 0) {
      const listed = versions.map((r) => `${r.version}${rel.archQualifier === 'any' ? ` (Multi-Arch: ${r.multiArch})` : ''}`);
      return `'${text}' matches none of the versions the sources have (${listed.join(', ')})`;
    }
    const blockers = (this.constraints.get(rel.name) ?? []).filter((i) => matching.some((r) => !satisfiesConstraint(r.version, i.constraint)));
    if (blockers.length > 0) {
      return `'${text}' conflicts with ${blockers.map((b) => `${rel.name} ${formatConstraint(b.constraint)} required by ${b.by}`).join(' and ')}`;
    }
    const chosen = this.selected.get(rel.name);
    return `'${text}' is not met by ${chosen ? label(chosen.record) : rel.name}, chosen earlier for ${chainOf(chosen?.parent) || 'the request'}`;
  }

  private unsatisfiable(node: Node | undefined, group: RelationGroup, field: string, failures: string[]): UserError {
    const groupText = formatGroup(group);
    const needed = node?.parent ? ` (needed by: ${chainOf(node)})` : node ? ' (requested)' : '';
    const subject = node ? `${label(node.record)} ${field === 'Depends' ? 'depends on' : 'pre-depends on'}` : 'the request for';
    const first = group[0];
    if (group.length === 1 && first && this.index.versionsOf(first.name).length === 0 && this.index.providersOf(first.name).length === 0) {
      return new UserError(`${subject} ${groupText}, which no source provides${needed}`, this.searchedHint());
    }
    return new UserError(`${subject} ${groupText}, which cannot be satisfied: ${failures.join('; ')}${needed}`, this.searchedHint());
  }

  private searchedHint(): string {
    return `sources searched for ${this.index.architecture}: ${this.index.sourceLabels.join(', ')}`;
  }

  private result(): Closure {
    const nodes = [...this.selected.values()].sort((a, b) => compareNames(a.record.name, b.record.name));
    const packages = nodes.map((n) => n.record);
    if (!this.settings.lenient) assertNoConflicts(packages);
    const closure: Closure = {
      packages,
      excluded: [...this.excluded.values()].sort((a, b) => compareNames(a.name, b.name)),
    };
    if (this.settings.trace) {
      closure.trace = nodes.map((n) => ({ name: n.record.name, version: n.record.version, relation: n.relation, neededBy: chainOf(n.parent) }));
    }
    return closure;
  }
}

/**
 * apt refuses to install a set where one package Breaks or Conflicts with another; say so at build time rather
 * than on the air-gapped host. A package's conflicts with itself (a common way to say "only one provider") don't
 * count.
 */
function assertNoConflicts(packages: readonly PackageRecord[]): void {
  const byName = new Map(packages.map((p) => [p.name, p]));
  const providers = new Map<string, { record: PackageRecord; version?: string }[]>();
  for (const p of packages) {
    for (const provided of p.provides) appendTo(providers, provided.name, { record: p, version: provided.constraint?.version });
  }
  for (const p of packages) {
    for (const [field, groups] of [['Breaks', p.breaks], ['Conflicts', p.conflicts]] as const) {
      for (const rel of groups.flat()) {
        const real = byName.get(rel.name);
        const hit =
          real && real !== p && satisfiesConstraint(real.version, rel.constraint)
            ? real
            : providers.get(rel.name)?.find((q) => q.record !== p && (!rel.constraint || (q.version !== undefined && satisfiesConstraint(q.version, rel.constraint))))?.record;
        if (hit) {
          throw new UserError(`${label(p)} ${field === 'Breaks' ? 'breaks' : 'conflicts with'} '${formatRelation(rel)}', but the closure also has ${label(hit)}`, 'pick other versions or drop one of the requested packages');
        }
      }
    }
  }
}

function label(record: PackageRecord): string {
  return `${record.name} ${record.version}`;
}

/** `root 1 -> a 2 -> b 3`, the chain from a requested package down to `node`; empty for undefined. */
function chainOf(node: Node | undefined): string {
  const labels: string[] = [];
  for (let n = node; n; n = n.parent) labels.push(label(n.record));
  return labels.reverse().join(' -> ');
}

function uniqueNames(names: readonly string[]): string[] {
  return [...new Set(names)].sort(compareNames);
}

function appendTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
