/**
 * Simulated GitHub release downloads: `/<owner>/<repo>/releases/download/<tag>/<asset>` answers 302 to a second
 * server standing in for GitHub's asset CDN, which serves the bytes (with Range) under an opaque
 * `/github-production-release-asset/<id>` path and names the file only through the signed URL's
 * `response-content-disposition` parameter, as the real one does. Anything else is 404.
 *
 * Its files are not the real releases' bytes, so the digests pinned in bundles/components.yaml do not match them:
 * it computes the sha256 of what it serves and gives them as `--pin` values (`pins`) for builds against it.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256File } from '../../src/util/digest.js';
import { buildStubDebs, CRI_DOCKERD_DIR } from './debs.js';
import { type RequestRecord, type StaticServer, startStaticServer, stopServing } from './http.js';

export const FLANNEL_VERSION = 'v0.26.5';
export const FLANNEL_CNI_PLUGIN_VERSION = 'v1.6.2-flannel1';
export const FLANNEL_MANIFEST_PATH = `/flannel-io/flannel/releases/download/${FLANNEL_VERSION}/kube-flannel.yml`;
export const CRI_DOCKERD_RELEASE_PATH = '/Mirantis/cri-dockerd/releases/download/v0.3.16';

export interface Github {
  /** base URL standing in for https://github.com */
  url: string;
  /** base URL of the asset CDN the downloads are redirected to */
  cdnUrl: string;
  requests: RequestRecord[];
  cdnRequests: RequestRecord[];
  /** `bundle build --pin` values for every file served: `https://github.com/<path>=sha256:<hex>` */
  pins: string[];
  stop(): Promise<void>;
}

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const ASSET_PREFIX = '/github-production-release-asset';

export async function startGithub({ host, workDir }: { host: string; workDir: string }): Promise<Github> {
  await mkdir(workDir, { recursive: true });
  const root = await mkdtemp(path.join(workDir, 'github-'));
  const releases = path.join(root, 'releases');
  const objects = path.join(root, 'objects');
  const servers: StaticServer[] = [];
  try {
    const pins: string[] = [];
    for (const asset of await releaseAssets()) {
      await place(path.join(releases, asset.urlPath), asset);
      await place(path.join(objects, ASSET_PREFIX, assetId(asset.urlPath)), asset);
      pins.push(`https://github.com${asset.urlPath}=sha256:${(await sha256File(path.join(releases, asset.urlPath))).sha256}`);
    }
    const cdn = await startStaticServer({ root: objects, host, contentType: 'application/octet-stream' });
    servers.push(cdn);
    const github = await startStaticServer({
      root: releases,
      host,
      directoryStatus: 404,
      redirect: (urlPath) => `${cdn.url}${ASSET_PREFIX}/${assetId(urlPath)}?${signedQuery(path.posix.basename(urlPath))}`,
    });
    servers.push(github);
    return {
      url: github.url,
      cdnUrl: cdn.url,
      requests: github.requests,
      cdnRequests: cdn.requests,
      pins,
      stop: () => stopServing(servers, root),
    };
  } catch (err) {
    await stopServing(servers, root);
    throw err;
  }
}

interface Asset {
  /** URL path on github.com */
  urlPath: string;
  /** bytes to serve, or a file to copy them from */
  content: string | { file: string };
}

async function releaseAssets(): Promise<Asset[]> {
  const template = await readFile(path.join(FIXTURES, 'kube-flannel.yml'), 'utf8');
  const flannel = template.replaceAll('@FLANNEL_VERSION@', FLANNEL_VERSION).replaceAll('@CNI_PLUGIN_VERSION@', FLANNEL_CNI_PLUGIN_VERSION);
  const debs = (await buildStubDebs()).debs.filter((deb) => deb.spec.outPath.startsWith(`${CRI_DOCKERD_DIR}/`));
  return [
    { urlPath: FLANNEL_MANIFEST_PATH, content: flannel },
    ...debs.map((deb) => ({ urlPath: `${CRI_DOCKERD_RELEASE_PATH}/${path.basename(deb.path)}`, content: { file: deb.path } })),
  ];
}

async function place(target: string, asset: Asset): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  if (typeof asset.content === 'string') await writeFile(target, asset.content);
  else await copyFile(asset.content.file, target);
}


/** Stable opaque id per asset, so the CDN URL says nothing about the file name. */
function assetId(urlPath: string): string {
  return createHash('sha256').update(urlPath).digest('hex').slice(0, 32);
}

function signedQuery(fileName: string): string {
  return new URLSearchParams({
    'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
    'X-Amz-Expires': '300',
    'response-content-disposition': `attachment; filename=${fileName}`,
    'response-content-type': 'application/octet-stream',
  }).toString();
}
