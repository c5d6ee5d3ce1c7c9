/**
 * Simulated pkgs.k8s.io: one signed flat apt repository per Kubernetes minor (`/core:/stable:/v1.32/deb/`,
 * `/core:/stable:/v1.31/deb/`) holding the stub debs for amd64 and arm64, plus `Release.key` as upstream serves it.
 * Started with `upgrades`, it also serves the releases an upgrade goes to (debs.ts UPGRADE_RELEASES): v1.32.4 in
 * the v1.32 repository, a v1.33 and a v1.34 repository (v1.34: the upgrade that skips a minor, refused).
 * Like the real service, directory URLs are 403 and every .deb is a 302 to a second "CDN" server
 * (prod-cdn.packages.k8s.io, under `/repositories/isv:/kubernetes:`) that serves the bytes with Range support.
 *
 * The signing key is a test key (test-key.ts), generated once and kept in `workDir`; the repository files are written fresh
 * into a private directory under `workDir` on each start, so concurrent instances never see each other's writes.
 */
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PrivateKey } from 'openpgp';
import { writeFlatRepoFromDebs } from '../../src/core/apt/flatrepo.js';
import { buildStubDebs, k8sRepoDir, type K8sMinor } from './debs.js';
import { type RequestRecord, type StaticServer, startStaticServer, stopServing } from './http.js';
import { testSigningKey } from './test-key.js';

export interface K8sApt {
  /** base URL, e.g. `http://127.0.0.1:41234`; a repo is at `${url}/core:/stable:/v1.32/deb/` */
  url: string;
  /** base URL of the CDN the .deb requests are redirected to */
  cdnUrl: string;
  /** armored public key file, the same bytes each repo serves as Release.key */
  keyFile: string;
  /** armored public key */
  publicKey: string;
  /** requests the pkgs.k8s.io server and the CDN answered, in order */
  requests: RequestRecord[];
  cdnRequests: RequestRecord[];
  stop(): Promise<void>;
}

export const K8S_MINORS: readonly K8sMinor[] = ['v1.34', 'v1.33', 'v1.32', 'v1.31'];

/** URL path of the repo for one minor, as on pkgs.k8s.io. */
export const k8sRepoPath = (minor: K8sMinor): string => `/core:/stable:/${minor}/deb/`;

/** Where pkgs.k8s.io sends .deb requests: its CDN keeps the OBS project path. */
const CDN_MOUNT = '/repositories/isv:/kubernetes:';

/** The key's creation date and the repos' Release date (v1.32.3 was released 2025-03-11): fixed, so reruns agree. */
const KEY_DATE = new Date('2025-01-01T00:00:00Z');
const RELEASE_DATE = new Date('2025-03-12T00:00:00Z');

export async function startK8sApt({ host, workDir, upgrades = false }: { host: string; workDir: string; upgrades?: boolean }): Promise<K8sApt> {
  await mkdir(workDir, { recursive: true });
  const key = await testSigningKey(workDir, {
    secretFile: 'pkgs.k8s.io-signing-key.asc',
    publicKeyFile: 'pkgs.k8s.io-Release.key',
    userId: 'isv:kubernetes OBS Project (kube-bundle test key)',
    created: KEY_DATE,
  });
  const root = await mkdtemp(path.join(workDir, 'pkgs.k8s.io-'));
  const servers: StaticServer[] = [];
  try {
    await writeRepos(root, key.secretKey, key.publicKey, upgrades);
    const cdn = await startStaticServer({ root, host, mount: CDN_MOUNT });
    servers.push(cdn);
    const pkgs = await startStaticServer({
      root,
      host,
      redirect: (urlPath) => (urlPath.endsWith('.deb') ? `${cdn.url}${encodeURI(CDN_MOUNT + urlPath)}` : undefined),
    });
    servers.push(pkgs);
    return {
      url: pkgs.url,
      cdnUrl: cdn.url,
      keyFile: key.publicKeyFile,
      publicKey: key.publicKey,
      requests: pkgs.requests,
      cdnRequests: cdn.requests,
      stop: () => stopServing(servers, root),
    };
  } catch (err) {
    await stopServing(servers, root);
    throw err;
  }
}

async function writeRepos(root: string, signingKey: PrivateKey, publicKey: string, upgrades: boolean): Promise<void> {
  const debs = await buildStubDebs();
  for (const minor of K8S_MINORS) {
    const repo = path.join(root, k8sRepoPath(minor));
    const served = debs.debs.filter((d) => d.spec.outPath.startsWith(`${k8sRepoDir(minor)}/`) && (upgrades || !d.spec.upgrade));
    if (served.length === 0) continue; // a repository of upgrade releases only, without `upgrades`
    for (const deb of served) {
      const target = path.join(repo, path.relative(path.join(debs.dir, k8sRepoDir(minor)), deb.path));
      await mkdir(path.dirname(target), { recursive: true });
      await copyFile(deb.path, target);
    }
    await writeFlatRepoFromDebs(repo, {
      origin: `obs://build.opensuse.org/isv:kubernetes:core:stable:${minor}/deb`,
      label: `isv:kubernetes:core:stable:${minor}`,
      suite: '/',
      date: RELEASE_DATE,
      signingKey,
    });
    await writeFile(path.join(repo, 'Release.key'), publicKey);
  }
}
