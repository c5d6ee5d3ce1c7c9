/**
 * The Docker runtime (`bundle install --runtime docker`): Docker engine + cri-dockerd instead of containerd's CRI.
 *
 * Why image names change on this path: containerd is told per upstream registry (certs.d/<upstream>/hosts.toml)
 * to fetch from the seeded registry, so kubeadm, the kubelet and flannel keep the upstream names. Docker has no
 * per-registry mirrors (registry-mirrors covers docker.io only), so here every image is named by the seeded
 * registry itself: kubeadm's imageRepository is the registry, the pause image cri-dockerd uses is the registry's,
 * and flannel's manifest is rewritten to it. The seed plan (builder/seed-plan.ts) serves kubeadm's flat CoreDNS path.
 */
import { parseReference } from '../../oci/reference.js';
import type { InstallContext, InstallHost } from '../context.js';
import { ETC } from '../host-paths.js';
import { file, hostScript, locked, type Step } from '../phases/steps.js';
import { renderTemplate } from '../render.js';
import { kubeadmResetCommand } from '../resume.js';
import type { ContainerRuntime, RuntimeInputs } from './types.js';

const CRI_DOCKERD_SOCKET = 'unix:///var/run/cri-dockerd.sock';

const DOCKER_DAEMON_JSON = '/etc/docker/daemon.json';
/** daemon.json as install computed it, handed to setup-docker.sh, which installs it (see that script) */
const DOCKER_DAEMON_JSON_NEW = `${ETC}/docker/daemon.json.new`;
const CRI_DOCKER_DROP_IN = '/etc/systemd/system/cri-docker.service.d/kube-bundle.conf';
/** the host script (in the bundle's installer/) that installs daemon.json and starts Docker and cri-dockerd */
const SETUP_DOCKER_SCRIPT = 'setup-docker.sh';

/** Where Docker looks for the CA of a registry it pulls from over TLS. */
function dockerCertsDir(registry: string): string {
  return `/etc/docker/certs.d/${registry}`;
}

/** The same image, in the seeded registry: ghcr.io/flannel-io/flannel:v0.26.5 → <registry>/flannel-io/flannel:v0.26.5. */
function registryImage(ref: string, registry: string): string {
  const r = parseReference(ref);
  return `${registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/**
 * The daemon.json install writes: the host's own settings (`existing`, from `source`) kept, with Docker's cgroup
 * driver set to systemd, as the kubelet's is (kubeadm's default; the two must agree).
 */
function dockerDaemonJson(existing: string | undefined, source: string): string {
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
function criDockerDropIn(pauseImage: string): string {
  return renderTemplate('docker/cri-docker.conf', { pauseImage });
}

async function mergedDaemonJson(host: InstallHost): Promise<string> {
  const current = await host.conn.exec(`cat ${DOCKER_DAEMON_JSON}`);
  return dockerDaemonJson(current.code === 0 ? current.stdout : undefined, `${host.label}:${DOCKER_DAEMON_JSON}`);
}

/** setup-docker.sh waits for this (after `docker info`) before it reports cri-dockerd ready. */
const READY_PROBE = `crictl --runtime-endpoint ${CRI_DOCKERD_SOCKET} version`;

export const docker: ContainerRuntime = {
  name: 'docker',
  criSocket: CRI_DOCKERD_SOCKET,
  readyProbe: READY_PROBE,
  imageRepository: (registry) => registry,
  imageFor: (ref, registry) => registryImage(ref, registry),
  /** The files (dockerd reads the registry's CA from certs.d per pull), then setup-docker.sh (re)starts dockerd and cri-dockerd and waits for them. */
  configure(host: InstallHost, ctx: InstallContext, inputs: RuntimeInputs): Step[] {
    return [
      file(`${dockerCertsDir(ctx.registry)}/ca.crt`, inputs.registryCa, 0o644, `the registry's CA, from ${ctx.registryHost.label}`),
      file(DOCKER_DAEMON_JSON_NEW, () => mergedDaemonJson(host), 0o644, `the host's ${DOCKER_DAEMON_JSON} with the systemd cgroup driver`),
      file(CRI_DOCKER_DROP_IN, criDockerDropIn(registryImage(inputs.pauseImage(), ctx.registry))),
      file('/etc/crictl.yaml', renderTemplate('crictl/crictl.yaml', { criSocket: CRI_DOCKERD_SOCKET })),
      locked(`${hostScript(ctx, SETUP_DOCKER_SCRIPT)} ${DOCKER_DAEMON_JSON_NEW}`, { timeoutMs: 5 * 60_000 }),
    ];
  },
  kubeadmReset: () => kubeadmResetCommand(CRI_DOCKERD_SOCKET),
};
