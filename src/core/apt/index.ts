/**
 * An in-memory view of several apt sources (Packages files) for one architecture: every version of every package
 * with the source it came from, plus the virtual packages their Provides fields declare.
 *
 * Without pinning, apt gives every origin the same priority, so the candidate of a package is simply its highest
 * version across all sources; the same version listed by two sources is one version, taken from the earlier source.
 */
import { UserError } from '../../util/errors.js';
import { parseDeb822, requireField, type Deb822Paragraph } from './deb822.js';
import { parseProvides, parseRelationGroups, type Relation, type RelationGroup } from './relations.js';
import { compareVersions, isValidVersion } from './version.js';

export type MultiArch = 'no' | 'same' | 'foreign' | 'allowed';

export interface PackageSource {
  /** Short name shown in reports and errors, e.g. `bookworm-security` or `k8s-v1.32`. */
  label: string;
  /** URL that the Filename fields are relative to (the archive root, or a flat repo's directory). */
  baseUrl: string;
  /** The uncompressed Packages file. */
  packagesText: string;
  /** Names the Packages file in errors (its URL or path). */
  packagesUrl: string;
}

/**
 * One version of one package. Treat as read-only: the index shares records between lookups. The index's records
 * compute their relation fields on first read (getters), so copy one field by field, not with `{...record}`.
 */
export interface PackageRecord {
  name: string;
  version: string;
  architecture: string;
  /** Label of the source this record comes from. */
  source: string;
  baseUrl: string;
  /** Path of the .deb, relative to baseUrl. */
  filename: string;
  size: number;
  sha256: string;
  priority: string | undefined;
  essential: boolean;
  multiArch: MultiArch;
  depends: RelationGroup[];
  preDepends: RelationGroup[];
  provides: Relation[];
  breaks: RelationGroup[];
  conflicts: RelationGroup[];
  /** The stanza exactly as the source's Packages file has it. */
  stanza: string;
}

/** A package that provides a virtual name, and the version it provides it at (when its Provides says `(= v)`). */
export interface Provider {
  record: PackageRecord;
  providedVersion?: string;
}

const WANTED_FIELDS = new Set([
  'package',
  'version',
  'architecture',
  'filename',
  'size',
  'sha256',
  'priority',
  'essential',
  'multi-arch',
  'depends',
  'pre-depends',
  'provides',
  'breaks',
  'conflicts',
]);

const MULTI_ARCH_VALUES: ReadonlySet<string> = new Set(['no', 'same', 'foreign', 'allowed']);

export class PackageIndex {
  private readonly byName = new Map<string, PackageRecord[]>();
  private readonly providersByName = new Map<string, Provider[]>();

  private constructor(
    readonly architecture: string,
    readonly sourceLabels: readonly string[],
  ) {}

  /**
   * Index the packages of `architecture` and `all` from `sources`, in the order given (earlier sources win ties).
   * Throws a UserError naming the Packages file and line for a malformed stanza.
   */
  static build(sources: readonly PackageSource[], architecture: string): PackageIndex {
    const index = new PackageIndex(
      architecture,
      sources.map((s) => s.label),
    );
    for (const source of sources) {
      const paragraphs = parseDeb822(source.packagesText, { source: source.packagesUrl, onlyFields: WANTED_FIELDS });
      for (const paragraph of paragraphs) {
        const arch = requireField(paragraph, 'Architecture', source.packagesUrl);
        if (arch === architecture || arch === 'all') index.add(toRecord(paragraph, source, arch));
      }
    }
    index.sortVersions();
    return index;
  }

  /** Every version of a real package, highest first; empty when no source has it. */
  versionsOf(name: string): readonly PackageRecord[] {
    return this.byName.get(name) ?? [];
  }

  /** The version apt would install without pinning: the highest. */
  candidate(name: string): PackageRecord | undefined {
    return this.byName.get(name)?.[0];
  }

  /** Packages (any version) whose Provides names `name`, ordered by package name, then highest version first. */
  providersOf(name: string): readonly Provider[] {
    return this.providersByName.get(name) ?? [];
  }

  /** Names of all real packages, in no particular order. */
  packageNames(): IterableIterator<string> {
    return this.byName.keys();
  }

  private add(record: PackageRecord): void {
    const versions = this.byName.get(record.name);
    if (!versions) {
      this.byName.set(record.name, [record]);
    } else if (versions.some((v) => v.version === record.version && v.architecture === record.architecture)) {
      return; // already listed by an earlier source
    } else {
      versions.push(record);
    }
    for (const provided of record.provides) {
      const provider: Provider = { record };
      if (provided.constraint) provider.providedVersion = provided.constraint.version;
      const list = this.providersByName.get(provided.name);
      if (list) list.push(provider);
      else this.providersByName.set(provided.name, [provider]);
    }
  }

  private sortVersions(): void {
    for (const versions of this.byName.values()) {
      if (versions.length > 1) versions.sort((a, b) => compareVersions(b.version, a.version));
    }
    for (const providers of this.providersByName.values()) {
      providers.sort((a, b) => compareNames(a.record.name, b.record.name) || compareVersions(b.record.version, a.record.version));
    }
  }
}

/** Plain code-unit order, so that results never depend on the locale. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function toRecord(paragraph: Deb822Paragraph, source: PackageSource, architecture: string): PackageRecord {
  const file = source.packagesUrl;
  const fields = paragraph.fields;
  const name = requireField(paragraph, 'Package', file);
  const version = requireField(paragraph, 'Version', file);
  if (!isValidVersion(version)) throw new UserError(`${file}:${paragraph.line}: ${name} has an invalid Version '${version}'`);
  const where = `${file}:${paragraph.line}: ${name} ${version}`;
  return new IndexedPackage(
    {
      name,
      version,
      architecture,
      source: source.label,
      baseUrl: source.baseUrl,
      filename: requireField(paragraph, 'Filename', file),
      size: parseSize(requireField(paragraph, 'Size', file), where),
      sha256: parseSha256(requireField(paragraph, 'SHA256', file), where),
      priority: fields.get('priority'),
      essential: fields.get('essential') === 'yes',
      multiArch: parseMultiArch(fields.get('multi-arch'), where),
      provides: parseProvides(fields.get('provides'), { where: `${where} Provides` }),
      stanza: paragraph.text,
    },
    where,
    fields,
  );
}

type PlainFields = Omit<PackageRecord, 'depends' | 'preDepends' | 'breaks' | 'conflicts'>;

/**
 * A record whose Depends, Pre-Depends, Breaks and Conflicts are parsed on first use: a closure touches a few
 * hundred of the ~60k packages of a Debian release, and parsing them all would double the time to build the index.
 * Provides is parsed up front because the index of virtual packages needs it.
 */
class IndexedPackage implements PackageRecord {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  readonly source: string;
  readonly baseUrl: string;
  readonly filename: string;
  readonly size: number;
  readonly sha256: string;
  readonly priority: string | undefined;
  readonly essential: boolean;
  readonly multiArch: MultiArch;
  readonly provides: Relation[];
  readonly stanza: string;
  private parsed: Map<string, RelationGroup[]> | undefined;

  constructor(
    plain: PlainFields,
    private readonly where: string,
    private readonly fields: ReadonlyMap<string, string>,
  ) {
    this.name = plain.name;
    this.version = plain.version;
    this.architecture = plain.architecture;
    this.source = plain.source;
    this.baseUrl = plain.baseUrl;
    this.filename = plain.filename;
    this.size = plain.size;
    this.sha256 = plain.sha256;
    this.priority = plain.priority;
    this.essential = plain.essential;
    this.multiArch = plain.multiArch;
    this.provides = plain.provides;
    this.stanza = plain.stanza;
  }

  get depends(): RelationGroup[] {
    return this.relations('Depends');
  }

  get preDepends(): RelationGroup[] {
    return this.relations('Pre-Depends');
  }

  get breaks(): RelationGroup[] {
    return this.relations('Breaks');
  }

  get conflicts(): RelationGroup[] {
    return this.relations('Conflicts');
  }

  private relations(field: string): RelationGroup[] {
    this.parsed ??= new Map();
    let groups = this.parsed.get(field);
    if (!groups) {
      groups = parseRelationGroups(this.fields.get(field.toLowerCase()), { where: `${this.where} ${field}` });
      this.parsed.set(field, groups);
    }
    return groups;
  }
}

function parseSize(text: string, where: string): number {
  if (!/^[0-9]+$/.test(text)) throw new UserError(`${where}: invalid Size '${text}'`);
  return Number(text);
}

function parseSha256(text: string, where: string): string {
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new UserError(`${where}: invalid SHA256 '${text}'`);
  return text.toLowerCase();
}

function parseMultiArch(text: string | undefined, where: string): MultiArch {
  if (text === undefined) return 'no';
  if (!MULTI_ARCH_VALUES.has(text)) throw new UserError(`${where}: unknown Multi-Arch value '${text}'`);
  return text as MultiArch;
}
