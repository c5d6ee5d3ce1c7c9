/**
 * What each host stores of the bundle: the registry host the whole of it (it seeds the registry from the image
 * blobs and hands the others their part), every other host only what its role uses — the installer, the
 * manifests and release files (small), the repository's index files and the .debs of its role's packages with
 * their dependencies. No host but the registry host stores an image: the nodes pull them from the registry.
 *
 * The .debs a role needs are a closure over the bundle's own Packages index, taken generously so that whatever
 * apt picks on the host is there: every alternative of a dependency group and every provider of a virtual
 * package that the repository carries, for the host's architecture (or `all`). A dependency the repository does
 * not carry is the host's base system's (the builder left it out for that reason) and is not followed.
 */
import { parseDeb822 } from '../apt/deb822.js';
import { parseProvides, parseRelationGroups, relationAppliesToArch } from '../apt/relations.js';
import { comparePaths, IMAGES_DIR, MANIFEST_FILE, PACKAGES_DIR, SIGNATURE_FILE, SUMS_FILE } from '../bundle/paths.js';

/** The bundle as the operator's verify read it. */
export interface VerifiedTree {
  /** SHA256SUMS: path → sha256 */
  sums: ReadonlyMap<string, string>;
  /** the text of packages/Packages */
  packagesIndex: string;
  signed: boolean;
}

interface IndexEntry {
  file: string;
  depends: string[];
}

/** Every path of the bundle a host of this kind stores, sorted as SHA256SUMS is; `whole` for the registry host. */
export function hostPayload(tree: VerifiedTree, want: { whole: true } | { packages: readonly string[]; arch: string }): string[] {
  const paths = [SUMS_FILE, ...(tree.signed ? [SIGNATURE_FILE] : [])];
  if ('whole' in want) return [...paths, ...tree.sums.keys()].sort(comparePaths);
  const debs = new Set(debClosure(tree.packagesIndex, want.packages, want.arch));
  for (const path of tree.sums.keys()) {
    if (path.startsWith(`${IMAGES_DIR}/`)) continue;
    if (path.startsWith(`${PACKAGES_DIR}/`) && path.endsWith('.deb') && !debs.has(path)) continue;
    paths.push(path);
  }
  if (!paths.includes(MANIFEST_FILE)) throw new Error(`the bundle's ${SUMS_FILE} lists no ${MANIFEST_FILE}`);
  return paths.sort(comparePaths);
}

/** The bundle paths of the .debs `roots` need from the repository, with every alternative it carries. */
export function debClosure(packagesIndex: string, roots: readonly string[], arch: string): string[] {
  const byName = new Map<string, IndexEntry[]>();
  const add = (name: string, entry: IndexEntry): void => {
    const list = byName.get(name) ?? [];
    list.push(entry);
    byName.set(name, list);
  };
  for (const p of parseDeb822(packagesIndex, { source: `${PACKAGES_DIR}/Packages` })) {
    const f = p.fields;
    const name = f.get('package');
    const file = f.get('filename');
    const entryArch = f.get('architecture');
    if (!name || !file || (entryArch !== arch && entryArch !== 'all')) continue;
    const where = { where: `${PACKAGES_DIR}/Packages line ${p.line} (${name})` };
    const groups = [...parseRelationGroups(f.get('pre-depends'), where), ...parseRelationGroups(f.get('depends'), where)];
    const entry: IndexEntry = {
      file: `${PACKAGES_DIR}/${file.replace(/^\.\//, '')}`,
      depends: groups.flatMap((g) => g.filter((r) => relationAppliesToArch(r, arch)).map((r) => r.name)),
    };
    add(name, entry);
    for (const provided of parseProvides(f.get('provides'), where)) add(provided.name, entry);
  }
  const files = new Set<string>();
  const seen = new Set<string>();
  const queue = [...roots];
  for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
    if (seen.has(name)) continue;
    seen.add(name);
    for (const entry of byName.get(name) ?? []) {
      if (files.has(entry.file)) continue;
      files.add(entry.file);
      queue.push(...entry.depends);
    }
  }
  return [...files].sort(comparePaths);
}
