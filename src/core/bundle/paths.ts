/**
 * Every path inside a bundle, named in one place. Code that writes or reads a bundle member asks this module
 * for its name instead of spelling it, so the layout can only change here.
 *
 *   SHA256SUMS          sha256sum -c list of every other file (not itself, not SHA256SUMS.asc)
 *   SHA256SUMS.asc      detached armored OpenPGP signature over SHA256SUMS (absent in unsigned bundles)
 *   bundle.yaml         the manifest (see manifest.ts)
 *   packages/           flat apt repository: the .debs plus Packages, Packages.gz, Release, InRelease
 *   images/             OCI image layout: oci-layout, index.json, blobs/sha256/<hex>
 *   manifests/          Kubernetes manifests (flannel, registry, ...)
 *   installer/          host-side scripts and binaries the installer uploads
 *
 * Paths are relative, '/'-separated, with no '.', '..' or empty segments: what `tar xf` and `sha256sum -c`
 * handle without surprises on any host.
 */
import { SHA256_DIGEST } from '../../util/digest.js';

export const SUMS_FILE = 'SHA256SUMS';
export const SIGNATURE_FILE = 'SHA256SUMS.asc';
export const MANIFEST_FILE = 'bundle.yaml';

/** The members that lead the tar, in this order, so that verify can check the signature before hashing the rest. */
export const LEADING_FILES = [SUMS_FILE, SIGNATURE_FILE, MANIFEST_FILE] as const;

export const PACKAGES_DIR = 'packages';
export const IMAGES_DIR = 'images';
export const MANIFESTS_DIR = 'manifests';
export const INSTALLER_DIR = 'installer';

/** OCI image layout files. */
export const OCI_LAYOUT_FILE = `${IMAGES_DIR}/oci-layout`;
export const OCI_INDEX_FILE = `${IMAGES_DIR}/index.json`;

/** A .deb in the flat repository. */
export function packageFile(filename: string): string {
  return join(PACKAGES_DIR, filename);
}

/** A blob of the OCI layout, by digest (`sha256:<hex>`). */
export function imageBlobFile(digest: string): string {
  const match = SHA256_DIGEST.exec(digest);
  if (!match) throw new Error(`not a sha256 digest: '${digest}'`);
  return `${IMAGES_DIR}/blobs/sha256/${match[1]}`;
}

export function manifestFile(name: string): string {
  return join(MANIFESTS_DIR, name);
}

export function installerFile(name: string): string {
  return join(INSTALLER_DIR, name);
}

function join(dir: string, name: string): string {
  const path = `${dir}/${name}`;
  const reason = unsafePathReason(path);
  if (reason) throw new Error(`bad bundle path '${path}': ${reason}`);
  return path;
}

/**
 * Why `path` may not be a bundle member, or null when it may. Besides traversal ('..', absolute) this refuses
 * what `sha256sum` would escape (backslash, newline) and what tar would normalise ('.', empty segments), so a
 * path means the same thing to every tool.
 */
export function unsafePathReason(path: string): string | null {
  if (path === '') return 'empty path';
  if (path.startsWith('/')) return 'absolute path';
  if (/[\\\n\r\0]/.test(path)) return 'backslash, newline or NUL in path';
  for (const segment of path.split('/')) {
    if (segment === '..') return "'..' segment (path traversal)";
    if (segment === '.' || segment === '') return "'.' or empty segment";
  }
  return null;
}

/**
 * The one mode a member may have, decided by its path alone, so the signature over the paths covers the modes
 * too: the installer's shell scripts are 0755, every other file 0644, every directory 0755. The packer writes
 * these, verify accepts nothing else, and the hosts set them after unpacking instead of taking the archive's.
 */
export function memberMode(path: string, type: 'file' | 'directory'): number {
  if (type === 'directory') return 0o755;
  return isExecutableMember(path) ? 0o755 : 0o644;
}

/** Executable members: `installer/<name>.sh`, directly in installer/ (the hosts run them by path). */
function isExecutableMember(path: string): boolean {
  return path.startsWith(`${INSTALLER_DIR}/`) && path.endsWith('.sh') && !path.slice(INSTALLER_DIR.length + 1).includes('/');
}

/** The parent directories of `path`, outermost first: 'a/b/c' → ['a', 'a/b']. */
export function parentDirs(path: string): string[] {
  const segments = path.split('/');
  return segments.slice(0, -1).map((_, i) => segments.slice(0, i + 1).join('/'));
}

/** The one order of paths in a bundle (SHA256SUMS lines and tar entries): by UTF-16 code unit, locale-free. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
