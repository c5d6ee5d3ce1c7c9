/**
 * An in-memory view of several apt sources (Packages files) for one architecture: every version of every package
 * with the source it came from, plus the virtual packages their Provides fields declare.
 *
 * Without pinning, apt gives every origin the same priority, so the candidate of a package is simply its highest
 * version across all sources; the same version listed by two sources is one version, taken from the earlier source.
 *
 * Sized for Debian's main index (~60k stanzas, ~50 MB): the index keeps, per stanza, only what the solver reads
 * of every package (name, version, priority, Provides...) and where the stanza lies in its Packages file. The
 * rest (Depends, Filename, the stanza text...) is read back from the file for the few hundred packages a closure
 * touches.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { requireField, scanDeb822, scanDeb822Pieces, type ByteSource, type Deb822Options, type Deb822Span } from './deb822.js';
import { parseProvides, parseRelationGroups, type Relation, type RelationGroup } from './relations.js';
import { compareVersions, isValidVersion } from './version.js';
import { SHA256_HEX } from '../../util/digest.js';

export type MultiArch = 'no' | 'same' | 'foreign' | 'allowed';

export interface PackageSource {
  /** Short name shown in reports and errors, e.g. `bookworm-security` or `k8s-v1.32`. */
  label: string;
  /** URL that the Filename fields are relative to (the archive root, or a flat repo's directory). */
  baseUrl: string;
  /**
   * The uncompressed Packages file: the path of a file, which is read in pieces and never held in memory as a
   * whole (a Debian index is ~50 MB), or its bytes (or, for small made-up sources, its text).
   */
  packages: { file: string } | Uint8Array | string;
  /** Names the Packages file in errors (its URL or path). */
  packagesUrl: string;
}

/**
 * One version of one package. Treat as read-only: the index shares records between lookups. The index's records
 * compute most fields on first read (getters), so copy one field by field, not with `{...record}`.
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

/** What every stanza is checked for while indexing, and what the solver reads of every package. */
const INDEXED_FIELDS = new Set(['package', 'version', 'architecture', 'filename', 'size', 'sha256', 'priority', 'essential', 'multi-arch', 'provides']);
/** Read back from a stanza's bytes when a package is looked at more closely. */
const DETAIL_FIELDS = new Set(['filename', 'size', 'sha256', 'depends', 'pre-depends', 'breaks', 'conflicts']);

/** Maps each valid value to one shared string. */
const MULTI_ARCH_VALUES: ReadonlyMap<string, MultiArch> = new Map((['no', 'same', 'foreign', 'allowed'] as const).map((v) => [v, v]));
const PRIORITIES: ReadonlyMap<string, string> = new Map(['required', 'important', 'standard', 'optional', 'extra'].map((p) => [p, p]));
const NO_RELATIONS: Relation[] = [];

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
    return PackageIndex.fromScans(
      sources.map((source) => scanSource(source, architecture)),
      architecture,
    );
  }

  /** The index of sources scanned already (see SourceScan), in the order given: earlier sources win ties. */
  static fromScans(scans: readonly SourceScan[], architecture: string): PackageIndex {
    const index = new PackageIndex(
      architecture,
      scans.map((s) => s.file.label),
    );
    for (const scan of scans) {
      if (scan.architecture !== architecture) throw new Error(`${scan.file.label} was scanned for ${scan.architecture}, not ${architecture}`);
      for (const record of scan.records) index.add(record);
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

/**
 * The records of one source for one architecture (and `all`), gathered paragraph by paragraph: from the whole
 * file at once (PackageIndex.build), or while the file is still arriving (a download being decompressed), the
 * stanzas' byte ranges then pointing into the file as it will be once complete. Throws a UserError naming the
 * Packages file and line for a malformed stanza.
 */
export class SourceScan {
  readonly records: PackageRecord[] = [];
  /** @internal shared by this source's records */
  readonly file: IndexedFile;
  /** what `add` needs of each paragraph: give these to the deb822 scanner */
  readonly scanOptions: Deb822Options;

  constructor(
    source: PackageSource,
    readonly architecture: string,
  ) {
    this.file = new IndexedFile(source);
    this.scanOptions = { source: source.packagesUrl, onlyFields: INDEXED_FIELDS };
  }

  /** Add one paragraph; returns its record when it is of this scan's architecture or `all`, else undefined. */
  add(span: Deb822Span): ScannedRecord | undefined {
    const arch = requireField(span, 'Architecture', this.file.url);
    // the index's own strings rather than one decoded per stanza: ~60k records share two
    const scanned = arch === this.architecture ? toRecord(span, this.file, this.architecture) : arch === 'all' ? toRecord(span, this.file, 'all') : undefined;
    if (scanned) this.records.push(scanned.record);
    return scanned;
  }
}

/**
 * A record as its paragraph is scanned, with what it takes to download its package, taken from the paragraph
 * itself: while an index is still arriving, the record's own stanza getters cannot read the file yet.
 */
export interface ScannedRecord {
  /** only its eager fields (name, version, architecture, priority, essential, multiArch, provides, source, baseUrl) may be read while its file is incomplete */
  record: PackageRecord;
  filename: string;
  size: number;
  sha256: string;
}

/** Scan a whole source at once (its file must be complete); `onRecord` sees each record of the architecture. */
export function scanSource(source: PackageSource, architecture: string, onRecord?: (scanned: ScannedRecord) => void): SourceScan {
  const scan = new SourceScan(source, architecture);
  for (const span of scanDeb822Pieces(scan.file.bytes, scan.scanOptions)) {
    const scanned = scan.add(span);
    if (scanned && onRecord) onRecord(scanned);
  }
  return scan;
}

/** A source's Packages file and names, shared by all its records. */
class IndexedFile {
  readonly bytes: ByteSource;
  readonly label: string;
  readonly baseUrl: string;
  readonly url: string;

  constructor(source: PackageSource) {
    const { packages } = source;
    this.bytes = typeof packages === 'object' && 'file' in packages ? fileBytes(packages.file) : memoryBytes(packages);
    this.label = source.label;
    this.baseUrl = source.baseUrl;
    this.url = source.packagesUrl;
  }

  /** The bytes from start to end (a stanza, or a piece of the file). */
  slice(start: number, end: number): Buffer {
    return this.bytes.read(start, end - start);
  }
}

function memoryBytes(packages: Uint8Array | string): ByteSource {
  const bytes = typeof packages === 'string' ? Buffer.from(packages, 'utf8') : Buffer.from(packages.buffer, packages.byteOffset, packages.byteLength);
  return { read: (position, length) => bytes.subarray(position, position + length) };
}

/**
 * Reads open the file each time: a build reads it in a dozen pieces while indexing and a stanza at a time after,
 * and no descriptor is left for anyone to close.
 */
function fileBytes(path: string): ByteSource {
  return {
    read(position, length) {
      const fd = openSync(path, 'r');
      try {
        const buffer = Buffer.allocUnsafe(length);
        let done = 0;
        for (let n = -1; done < length && n !== 0; done += n) n = readSync(fd, buffer, done, length - done, position + done);
        return buffer.subarray(0, done);
      } finally {
        closeSync(fd);
      }
    },
  };
}

/** Check a stanza and keep of it what the solver reads of every package. */
function toRecord(span: Deb822Span, file: IndexedFile, architecture: string): ScannedRecord {
  const fields = span.fields;
  const name = requireField(span, 'Package', file.url);
  const version = requireField(span, 'Version', file.url);
  if (!isValidVersion(version)) throw new UserError(`${file.url}:${span.line}: ${name} has an invalid Version '${version}'`);
  const where = `${file.url}:${span.line}: ${name} ${version}`;
  // checked now so that a bad stanza fails the build, whether or not it is chosen; the record reads them back
  const filename = requireField(span, 'Filename', file.url);
  const size = parseSize(requireField(span, 'Size', file.url), where);
  const sha256 = parseSha256(requireField(span, 'SHA256', file.url), where);
  const provides = fields.get('provides');
  const record = new IndexedPackage(
    {
      name,
      version,
      architecture,
      priority: internPriority(fields.get('priority')),
      essential: fields.get('essential') === 'yes',
      multiArch: parseMultiArch(fields.get('multi-arch'), where),
      provides: provides === undefined ? NO_RELATIONS : parseProvides(provides, { where: `${where} Provides` }),
    },
    { file, start: span.start, end: span.end, line: span.line },
  );
  return { record, filename, size, sha256 };
}

type EagerFields = Pick<PackageRecord, 'name' | 'version' | 'architecture' | 'priority' | 'essential' | 'multiArch' | 'provides'>;

/** Where a record's stanza lies: a byte range of its Packages file, and its first line there. */
interface StanzaLocation {
  file: IndexedFile;
  start: number;
  end: number;
  line: number;
}

/** The fields read back from the stanza on first use. */
interface Details {
  filename: string;
  size: number;
  sha256: string;
  relations: ReadonlyMap<string, string>;
  parsed: Map<string, RelationGroup[]>;
}

/**
 * A record that reads Filename, Size, SHA256 and its relations back from its stanza on first use, and parses each
 * relation field when first asked for: a closure touches a few hundred of the ~60k packages of a Debian release.
 * Provides is parsed up front because the index of virtual packages needs it. The stanza text is read again on
 * each use: a build asks for it once per chosen package.
 */
class IndexedPackage implements PackageRecord {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  readonly priority: string | undefined;
  readonly essential: boolean;
  readonly multiArch: MultiArch;
  readonly provides: Relation[];
  private details: Details | undefined;

  constructor(
    eager: EagerFields,
    private readonly location: StanzaLocation,
  ) {
    this.name = eager.name;
    this.version = eager.version;
    this.architecture = eager.architecture;
    this.priority = eager.priority;
    this.essential = eager.essential;
    this.multiArch = eager.multiArch;
    this.provides = eager.provides;
  }

  get source(): string {
    return this.location.file.label;
  }

  get baseUrl(): string {
    return this.location.file.baseUrl;
  }

  get stanza(): string {
    const { file, start, end } = this.location;
    return file.slice(start, end).toString('utf8');
  }

  get filename(): string {
    return this.detail().filename;
  }

  get size(): number {
    return this.detail().size;
  }

  get sha256(): string {
    return this.detail().sha256;
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

  private where(): string {
    return `${this.location.file.url}:${this.location.line}: ${this.name} ${this.version}`;
  }

  private detail(): Details {
    if (!this.details) {
      const { file, start, end, line } = this.location;
      const [span] = scanDeb822(file.slice(start, end), { source: file.url, onlyFields: DETAIL_FIELDS, firstLine: line });
      const fields = span?.fields ?? new Map<string, string>();
      this.details = {
        filename: requireField({ fields, line }, 'Filename', file.url),
        size: parseSize(requireField({ fields, line }, 'Size', file.url), this.where()),
        sha256: parseSha256(requireField({ fields, line }, 'SHA256', file.url), this.where()),
        relations: fields,
        parsed: new Map(),
      };
    }
    return this.details;
  }

  private relations(field: string): RelationGroup[] {
    const { relations, parsed } = this.detail();
    let groups = parsed.get(field);
    if (!groups) {
      groups = parseRelationGroups(relations.get(field.toLowerCase()), { where: `${this.where()} ${field}` });
      parsed.set(field, groups);
    }
    return groups;
  }
}

/** The five standard priorities as one shared string each, instead of one per record. */
function internPriority(text: string | undefined): string | undefined {
  return text === undefined ? undefined : (PRIORITIES.get(text) ?? text);
}

function parseSize(text: string, where: string): number {
  if (!/^[0-9]+$/.test(text)) throw new UserError(`${where}: invalid Size '${text}'`);
  return Number(text);
}

function parseSha256(text: string, where: string): string {
  if (!SHA256_HEX.test(text.toLowerCase())) throw new UserError(`${where}: invalid SHA256 '${text}'`);
  return text.toLowerCase();
}

function parseMultiArch(text: string | undefined, where: string): MultiArch {
  if (text === undefined) return 'no';
  const value = MULTI_ARCH_VALUES.get(text);
  if (value === undefined) throw new UserError(`${where}: unknown Multi-Arch value '${text}'`);
  return value;
}
