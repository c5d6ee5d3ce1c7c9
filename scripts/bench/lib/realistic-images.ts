/**
 * The images `bundle build v1.32.3 -t debian-12` pulls, at roughly the sizes of the real ones, for the benchmark's
 * third scenario. The simulated upstream's images (test/upstream/images.ts) are ~1 MB stand-ins, so a cold build
 * there moves mostly Debian packages and fixed costs dominate; these replace them, under the same references, in a
 * separate simulated upstream used only by that scenario.
 *
 * Sizes are approximate public figures for the compressed linux/amd64 images (layers summed), in decimal MB; each
 * image here is an OCI index with one linux/amd64 child whose one layer is that many incompressible bytes.
 */
import { pushIndexedImage } from './big-image.js';

export interface RealisticImage {
  /** `<upstream>/<repository>`, as the simulated registries' backend names repositories */
  repository: string;
  tag: string;
  payloadBytes: number;
}

const MB = 1e6;

export const REALISTIC_IMAGES: readonly RealisticImage[] = [
  { repository: 'registry.k8s.io/kube-apiserver', tag: 'v1.32.3', payloadBytes: 28 * MB },
  { repository: 'registry.k8s.io/kube-controller-manager', tag: 'v1.32.3', payloadBytes: 26 * MB },
  { repository: 'registry.k8s.io/kube-scheduler', tag: 'v1.32.3', payloadBytes: 20 * MB },
  { repository: 'registry.k8s.io/kube-proxy', tag: 'v1.32.3', payloadBytes: 31 * MB },
  { repository: 'registry.k8s.io/etcd', tag: '3.5.16-0', payloadBytes: 57 * MB },
  { repository: 'registry.k8s.io/coredns/coredns', tag: 'v1.11.3', payloadBytes: 18 * MB },
  { repository: 'registry.k8s.io/pause', tag: '3.10', payloadBytes: 0.3 * MB },
  { repository: 'ghcr.io/flannel-io/flannel', tag: 'v0.26.5', payloadBytes: 32 * MB },
  { repository: 'ghcr.io/flannel-io/flannel-cni-plugin', tag: 'v1.6.2-flannel1', payloadBytes: 5 * MB },
];

/**
 * What v1.32.4 adds to them: the four control-plane images at the same sizes and with none of their bytes (a real
 * patch release shares a small base layer with the previous one; its binary layer, nearly all the bytes, is new).
 * kubeadm v1.32.4 lists the same etcd, coredns and pause as v1.32.3.
 */
export const REALISTIC_V1_32_4_IMAGES: readonly RealisticImage[] = REALISTIC_IMAGES
  .filter((image) => image.tag === 'v1.32.3')
  .map((image) => ({ ...image, tag: 'v1.32.4' }));

/**
 * Push every image of `images` (REALISTIC_IMAGES unless given) into `backendUrl` under its real tag, replacing the
 * stand-in there.
 * Two at a time: the pushes are CPU-bound (keystream + hashing) on a 2-core machine. Returns the layer bytes pushed.
 */
export async function pushRealisticImages(backendUrl: string, images: readonly RealisticImage[] = REALISTIC_IMAGES): Promise<number> {
  const queue = [...images];
  let bytes = 0;
  const worker = async (): Promise<void> => {
    for (let image = queue.shift(); image; image = queue.shift()) {
      const pushed = await pushIndexedImage(backendUrl, image.repository, image.tag, image.payloadBytes);
      bytes += pushed.layerBytes;
    }
  };
  await Promise.all([worker(), worker()]);
  return bytes;
}
