/**
 * The registry seed plan: what the bundled CNCF distribution registry's storage must hold so that it serves every
 * image of the bundle, written at build time as `installer/registry-seed.txt` and carried out on the registry host
 * by `installer/seed-registry.sh` with hard links from the bundle's OCI layout (no copy, no push: seconds, not
 * minutes). One operation per line:
 *
 *   blob <hex>                   blobs/sha256/<hex[0:2]>/<hex>/data
 *   layer <repo> <hex>           repositories/<repo>/_layers/sha256/<hex>/link           (layers and configs)
 *   manifest <repo> <hex>        repositories/<repo>/_manifests/revisions/sha256/<hex>/link
 *   tag <repo> <tag> <hex>       repositories/<repo>/_manifests/tags/<tag>/{current,index/sha256/<hex>}/link
 *
 * Repository names are the upstream paths without the registry host (registry.k8s.io/pause → pause,
 * ghcr.io/flannel-io/flannel → flannel-io/flannel): containerd asks a mirror for exactly that path, so one
 * registry can stand in for every upstream registry as long as no two upstream paths collide.
 *
 * The Docker runtime has no such mirrors: there kubeadm's imageRepository names the seeded registry itself, and
 * kubeadm then asks for CoreDNS without its upstream `coredns/` segment (`<repository>/coredns:<tag>`, see
 * KUBEADM_FLAT_PATHS). Every plan also links those images under the flat path: a few link files, no blob.
 */
import { UserError } from '../../util/errors.js';
import type { PulledImage } from '../oci/registry.js';
import { parseReference } from '../oci/reference.js';

const hexOf = (digest: string) => digest.replace(/^sha256:/, '');

/**
 * Upstream image paths kubeadm flattens when imageRepository is not registry.k8s.io: it appends `/coredns` to
 * the repository only for the default one (kubeadm's images.go), so a custom repository is asked for
 * `<repository>/coredns:<tag>`.
 */
const KUBEADM_FLAT_PATHS: Record<string, string> = { 'registry.k8s.io/coredns/coredns': 'coredns' };

/** The repository paths an image is linked under in the seeded registry: its upstream path, and any alias. */
export function seededRepositories(reference: string): string[] {
  const ref = parseReference(reference);
  const alias = KUBEADM_FLAT_PATHS[`${ref.registry}/${ref.repository}`];
  return alias ? [ref.repository, alias] : [ref.repository];
}

export function seedPlan(images: PulledImage[]): string {
  const lines = new Set<string>();
  /** seeded repository path → the image that holds it; two upstream repositories may not share one */
  const owners = new Map<string, string>();
  const upstreamRepo = (reference: string) => {
    const r = parseReference(reference);
    return `${r.registry}/${r.repository}`;
  };
  for (const image of [...images].sort((a, b) => (a.reference < b.reference ? -1 : 1))) {
    const ref = parseReference(image.reference);
    const manifests = new Set([image.descriptor.digest, ...image.manifests.map((m) => m.digest)]);
    for (const repo of seededRepositories(image.reference)) {
      const owner = owners.get(repo);
      if (owner && upstreamRepo(owner) !== upstreamRepo(image.reference)) {
        throw new UserError(`${image.reference} and ${owner} would both be served under the repository path '${repo}': one seeded registry cannot serve both`, 'drop one of the two images');
      }
      owners.set(repo, image.reference);
      for (const blob of image.blobs) {
        lines.add(`blob ${hexOf(blob.digest)}`);
        lines.add(`${manifests.has(blob.digest) ? 'manifest' : 'layer'} ${repo} ${hexOf(blob.digest)}`);
      }
      if (ref.tag) lines.add(`tag ${repo} ${ref.tag} ${hexOf(image.descriptor.digest)}`);
    }
  }
  // blobs first, then links, then tags: a registry that sees a tag can always serve what it points to
  const order = (l: string) => ['blob', 'layer', 'manifest', 'tag'].indexOf(l.split(' ')[0] ?? '');
  return [...lines].sort((a, b) => order(a) - order(b) || (a < b ? -1 : a > b ? 1 : 0)).join('\n') + '\n';
}
