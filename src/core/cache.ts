/**
 * The content-addressed download cache.
 *
 *   <root>/blobs/sha256/<hex>   finished, verified content; the name IS the sha256 of the bytes
 *   <root>/tmp/<id>.partial     a download in progress (or cut short); never read as content
 *   <root>/urls/<sha256(url)>   the digest a versioned release asset had when first fetched (see assetDigest)
 *
 * Only `commit` moves a file into blobs/, by an atomic rename after the caller verified it, so a killed
 * process leaves at most a partial behind and never a corrupt cache entry.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

const SHA256_HEX = /^[a-f0-9]{64}$/;

export class BlobCache {
  readonly blobsDir: string;
  readonly tmpDir: string;

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.tmpDir = path.join(root, 'tmp');
  }

  /** Where the blob with this sha256 lives (whether or not it is there yet). */
  blobPath(sha256Hex: string): string {
    return path.join(this.blobsDir, checkHex(sha256Hex));
  }

  /** Size of the cached blob, or undefined when it is not cached. */
  async sizeOf(sha256Hex: string): Promise<number | undefined> {
    try {
      const info = await stat(this.blobPath(sha256Hex));
      return info.isFile() ? info.size : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * The partial file for a download. A known sha256 gives a stable name, so a later run finds and resumes
   * it; without one the name is random, since unverifiable bytes must never be resumed.
   */
  async partialPath(sha256Hex?: string): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    const id = sha256Hex === undefined ? `anon-${randomUUID()}` : checkHex(sha256Hex);
    return path.join(this.tmpDir, `${id}.partial`);
  }

  /** Move a verified file into place. fsync first: a crash right after the rename must not leave a torn blob. */
  async commit(verifiedFile: string, sha256Hex: string): Promise<string> {
    const handle = await open(verifiedFile, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    const target = this.blobPath(sha256Hex);
    await mkdir(this.blobsDir, { recursive: true });
    await rename(verifiedFile, target);
    return target;
  }

  /** Store small content held in memory (manifests, indexes); returns its sha256 hex. */
  async putBytes(bytes: Uint8Array): Promise<string> {
    const hex = createHash('sha256').update(bytes).digest('hex');
    if ((await this.sizeOf(hex)) === bytes.length) return hex;
    const tmp = await this.partialPath();
    try {
      await writeFile(tmp, bytes);
      await this.commit(tmp, hex);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return hex;
  }

  /**
   * The digest recorded for a release asset URL (a versioned GitHub download such as kube-flannel.yml of
   * v0.26.5, whose content is fixed once released), if it is still in the cache. Lets a warm build skip it.
   */
  async assetDigest(url: string): Promise<string | undefined> {
    let hex: string;
    try {
      hex = (await readFile(this.urlEntry(url), 'utf8')).trim();
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return SHA256_HEX.test(hex) && (await this.sizeOf(hex)) !== undefined ? hex : undefined;
  }

  async recordAssetDigest(url: string, sha256Hex: string): Promise<void> {
    await mkdir(path.dirname(this.urlEntry(url)), { recursive: true });
    const tmp = await this.partialPath();
    await writeFile(tmp, checkHex(sha256Hex) + '\n');
    await rename(tmp, this.urlEntry(url));
  }

  private urlEntry(url: string): string {
    return path.join(this.root, 'urls', createHash('sha256').update(url).digest('hex'));
  }

  /** Drop a blob whose size proved wrong, so it is fetched again. */
  async evict(sha256Hex: string): Promise<void> {
    await rm(this.blobPath(sha256Hex), { force: true });
  }
}

function checkHex(hex: string): string {
  if (!SHA256_HEX.test(hex)) throw new Error(`not a lowercase sha256 hex digest: '${hex}'`);
  return hex;
}

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
