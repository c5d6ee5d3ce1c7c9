/**
 * The Docker runtime (`bundle install --runtime docker`): Docker engine + cri-dockerd instead of containerd's CRI.
 *
 * Why image names change on this path: containerd is told per upstream registry (certs.d/<upstream>/hosts.toml)
 * to fetch from the seeded registry, so kubeadm, the kubelet and flannel keep the upstream names. Docker has no
 * per-registry mirrors (registry-mirrors covers docker.io only), so here every image is named by the seeded
 * registry itself: kubeadm's imageRepository is the registry, the pause image cri-dockerd uses is the registry's,
 * and flannel's manifest is rewritten to it. The seed plan (build/seed-plan.ts) serves kubeadm's flat CoreDNS path.
 */
import type { Runtime } from '../definitions.js';
import { parseReference } from '../oci/reference.js';
import { ETC } from './host-paths.js';
import type { Node } from './install.js';
import { CONTAINERD_SOCKET, CRI_DOCKERD_SOCKET, renderTemplate } from './render.js';

export const DOCKER_DAEMON_JSON = '/etc/docker/daemon.json';
/** daemon.json as install computed it, handed to setup-docker.sh, which installs it (see that script) */
export const DOCKER_DAEMON_JSON_NEW = `${ETC}/docker/daemon.json.new`;
export const CRI_DOCKER_DROP_IN = '/etc/systemd/system/cri-docker.service.d/kube-bundle.conf';
/** the host script (in the bundle's installer/) that installs daemon.json and starts Docker and cri-dockerd */
export const SETUP_DOCKER_SCRIPT = 'setup-docker.sh';

/** Where Docker looks for the CA of a registry it pulls from over TLS. */
export function dockerCertsDir(registry: string): string {
  return `/etc/docker/certs.d/${registry}`;
}

/** How kubeadm reaches the runtime and how the cluster names its images, per runtime. */
export interface RuntimeNaming {
  criSocket: string;
  /** kubeadm's imageRepository */
  imageRepository: string;
  /** an upstream image reference as the nodes pull it (flannel's manifest) */
  imageFor(ref: string): string;
}

export function runtimeNaming(runtime: Runtime, registry: string): RuntimeNaming {
  if (runtime === 'docker') {
    return { criSocket: CRI_DOCKERD_SOCKET, imageRepository: registry, imageFor: (ref) => registryImage(ref, registry) };
  }
  return { criSocket: CONTAINERD_SOCKET, imageRepository: 'registry.k8s.io', imageFor: (ref) => ref };
}

/** The same image, in the seeded registry: ghcr.io/flannel-io/flannel:v0.26.5 → <registry>/flannel-io/flannel:v0.26.5. */
export function registryImage(ref: string, registry: string): string {
  const r = parseReference(ref);
  return `${registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/**
 * The daemon.json install writes: the host's own settings (`existing`, from `source`) kept, with Docker's cgroup
 * driver set to systemd, as the kubelet's is (kubeadm's default; the two must agree).
 */
export function dockerDaemonJson(existing: string | undefined, source: string): string {
  let config: Record<string, unknown> = {};
  if (existing?.trim()) {
    try {
      config = JSON.parse(existing) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${source} is not valid JSON (${(err as Error).message}); install adds its settings to it: fix it or remove it`);
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error(`${source} is not a JSON object; fix it or remove it`);
  }
  const execOpts = config['exec-opts'] ?? [];
  if (!Array.isArray(execOpts)) throw new Error(`${source}: "exec-opts" is not a list; fix it or remove it`);
  const kept = execOpts.filter((o) => !(typeof o === 'string' && o.startsWith('native.cgroupdriver=')));
  return JSON.stringify({ ...config, 'exec-opts': [...kept, 'native.cgroupdriver=systemd'] }, null, 2) + '\n';
}

/** cri-dockerd's unit with the bundled pause image: its built-in default is an older one, from the internet. */
export function criDockerDropIn(pauseImage: string): string {
  return renderTemplate('docker/cri-docker.conf', { pauseImage });
}

export interface HostFile {
  path: string;
  /** computed when the step runs (a dry run never computes it) when a function */
  content: string | (() => Promise<string>);
  mode: number;
  what?: string;
}

/** The files a Docker node gets before setup-docker.sh runs (dockerd reads the CA from certs.d per pull). */
export function dockerFiles(host: Node, o: { registry: string; registryCa: () => Promise<string>; caFrom: string; pauseImage: string }): HostFile[] {
  return [
    { path: `${dockerCertsDir(o.registry)}/ca.crt`, content: o.registryCa, mode: 0o644, what: `the registry's CA, from ${o.caFrom}` },
    { path: DOCKER_DAEMON_JSON_NEW, content: () => mergedDaemonJson(host), mode: 0o644, what: `the host's ${DOCKER_DAEMON_JSON} with the systemd cgroup driver` },
    { path: CRI_DOCKER_DROP_IN, content: criDockerDropIn(o.pauseImage), mode: 0o644 },
    { path: '/etc/crictl.yaml', content: renderTemplate('crictl/crictl.yaml', { criSocket: CRI_DOCKERD_SOCKET }), mode: 0o644 },
  ];
}

async function mergedDaemonJson(host: Node): Promise<string> {
  const current = await host.conn.exec(`cat ${DOCKER_DAEMON_JSON}`);
  return dockerDaemonJson(current.code === 0 ? current.stdout : undefined, `${host.label}:${DOCKER_DAEMON_JSON}`);
}
