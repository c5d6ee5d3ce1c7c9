/**
 * What a build downloads for its images, listed independently of the build's own registry client: for each
 * locked image (reference + index digest) the top-level document, the child manifest of the wanted platform, its
 * config and layers, as URLs on the registry endpoints the build used, with one anonymous pull token per registry.
 * Content is listed once per digest, as the build's content-addressed cache fetches it once.
 */
import { MANIFEST_ACCEPT, type Descriptor } from '../../../src/core/oci/media-types.js';
import { parseReference } from '../../../src/core/oci/reference.js';
import type { Mirrors } from '../../../src/core/mirror.js';
import { defaultEndpoint } from '../../../src/core/oci/registry.js';

export interface LockedImage {
  reference: string;
  digest: string;
}

export interface RegistryContent {
  registry: string;
  /** headers every request to this registry needs: Accept for manifests, the bearer token if any */
  headers: Record<string, string>;
  items: { url: string; digest: string; size: number }[];
}

interface Manifest {
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
}

export async function listImageContent(images: LockedImage[], mirrors: Mirrors, arch: string): Promise<RegistryContent[]> {
  const seen = new Set<string>();
  const byRegistry = groupBy(images, (i) => parseReference(i.reference).registry);
  const result: RegistryContent[] = [];
  for (const [registry, group] of byRegistry) {
    const endpoint = mirrors.registries.get(registry) ?? defaultEndpoint(registry);
    const repositories = [...new Set(group.map((i) => parseReference(i.reference).repository))];
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT, ...(await anonymousAuth(endpoint, repositories)) };
    const items: RegistryContent['items'] = [];
    for (const image of group) {
      for (const item of await imageItems(endpoint, parseReference(image.reference).repository, image.digest, headers, arch)) {
        if (!seen.has(item.digest)) items.push(item);
        seen.add(item.digest);
      }
    }
    result.push({ registry, headers, items });
  }
  return result;
}

/** Top-level document, the `arch` child manifest (for an index), config, layers. */
async function imageItems(endpoint: string, repository: string, digest: string, headers: Record<string, string>, arch: string): Promise<RegistryContent['items']> {
  const base = `${endpoint}/v2/${repository}`;
  const top = await getManifest(`${base}/manifests/${digest}`, headers);
  const items = [{ url: `${base}/manifests/${digest}`, digest, size: top.size }];
  let manifest = top.doc;
  if (top.doc.manifests) {
    const child = top.doc.manifests.find((d) => d.platform?.os === 'linux' && d.platform.architecture === arch);
    if (!child) throw new Error(`${base}/manifests/${digest} lists no linux/${arch} manifest`);
    const url = `${base}/manifests/${child.digest}`;
    manifest = (await getManifest(url, headers)).doc;
    items.push({ url, digest: child.digest, size: child.size });
  }
  if (!manifest.config || !manifest.layers) throw new Error(`${base}: manifest without config or layers under ${digest}`);
  for (const blob of [manifest.config, ...manifest.layers]) items.push({ url: `${base}/blobs/${blob.digest}`, digest: blob.digest, size: blob.size });
  return items;
}

async function getManifest(url: string, headers: Record<string, string>): Promise<{ doc: Manifest; size: number }> {
  const res = await fetch(url, { headers });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { doc: JSON.parse(bytes.toString('utf8')) as Manifest, size: bytes.length };
}

/** Ping /v2/; on a Bearer challenge, ask its realm for one token that may pull every repository listed. */
async function anonymousAuth(endpoint: string, repositories: string[]): Promise<Record<string, string>> {
  const ping = await fetch(`${endpoint}/v2/`);
  await ping.body?.cancel();
  if (ping.status === 200) return {};
  const challenge = ping.headers.get('www-authenticate') ?? '';
  const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
  if (ping.status !== 401 || !params.realm) throw new Error(`${endpoint}/v2/: HTTP ${ping.status} without a Bearer challenge ('${challenge}')`);
  const url = new URL(params.realm);
  if (params.service) url.searchParams.set('service', params.service);
  for (const repository of repositories) url.searchParams.append('scope', `repository:${repository}:pull`);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`token from ${url.origin}${url.pathname}: HTTP ${res.status}`);
  const body = (await res.json()) as { token?: string; access_token?: string };
  const token = body.token ?? body.access_token;
  if (!token) throw new Error(`token from ${url.origin}${url.pathname}: no token in the answer`);
  return { authorization: `Bearer ${token}` };
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}
