/**
 * Debian packages the simulated upstreams need (the registry binary, a static busybox), fetched with
 * `apt-get download` and unpacked with `dpkg -x` into a cache directory. Nothing is installed on this machine.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Shared by every test run; override with KUBE_BUNDLE_TEST_CACHE (e.g. on a machine without /var write access). */
export const TEST_CACHE_DIR = process.env['KUBE_BUNDLE_TEST_CACHE'] ?? '/var/cache/kube-bundle-test';

/** Directory holding the unpacked files of Debian package `name` (download and unpack on first use). */
export async function unpackedDebianPackage(name: string, cacheDir: string = TEST_CACHE_DIR): Promise<string> {
  const root = join(cacheDir, 'debs', name);
  if (existsSync(root)) return root;
  await mkdir(join(cacheDir, 'debs'), { recursive: true });
  const scratch = await mkdtemp(join(cacheDir, 'debs', `.${name}-`));
  try {
    const deb = await downloadDeb(name, scratch);
    const staging = join(scratch, 'root');
    await run('dpkg', ['-x', deb, staging]);
    await publish(staging, root);
    return root;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** `apt-get download` into `dir`; refreshes the package lists once when apt does not know the package yet. */
async function downloadDeb(name: string, dir: string): Promise<string> {
  try {
    await aptGetDownload(name, dir);
  } catch (firstError) {
    try {
      await run('apt-get', ['update', '-q']);
      await aptGetDownload(name, dir);
    } catch (secondError) {
      throw new Error(`apt-get download ${name} failed (also after apt-get update): ${describe(secondError)}`, {
        cause: firstError,
      });
    }
  }
  const deb = (await readdir(dir)).find((file) => file.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${name} succeeded but left no .deb in ${dir}`);
  return join(dir, deb);
}

async function aptGetDownload(name: string, dir: string): Promise<void> {
  // Running as root, apt would otherwise drop to the _apt user, which cannot write into our cache directory.
  await run('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', name], { cwd: dir });
}

/** Move the unpacked tree into place; a concurrent test process that got there first wins, which is fine. */
async function publish(staging: string, root: string): Promise<void> {
  try {
    await rename(staging, root);
  } catch (err) {
    if (!existsSync(root)) throw err;
  }
}

function describe(err: unknown): string {
  const stderr = (err as { stderr?: unknown }).stderr;
  if (typeof stderr === 'string' && stderr.trim()) return stderr.trim();
  return err instanceof Error ? err.message : String(err);
}
