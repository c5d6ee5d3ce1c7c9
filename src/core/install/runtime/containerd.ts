/**
 * containerd's own CRI (the default runtime). The cluster keeps upstream image names: containerd is told per
 * upstream registry (certs.d/<upstream>/hosts.toml) to fetch from the seeded registry instead, so kubeadm, the
 * kubelet and flannel need no rewriting.
 */
import { parseReference } from '../../oci/reference.js';
import type { InstallContext, InstallHost } from '../context.js';
import { CA_FILE } from '../host-paths.js';
import { command, file, type Step } from '../phases/steps.js';
import { renderTemplate } from '../render.js';
import { kubeadmResetCommand } from '../resume.js';
import type { ContainerRuntime, RuntimeInputs } from './types.js';

const CONTAINERD_SOCKET = 'unix:///run/containerd/containerd.sock';
const CERTS_D = '/etc/containerd/certs.d';

/** containerd 1.x reads config version 2; 2.x reads version 3 (and still 2, but 3 is its own). */
export function containerdConfig(containerdMajor: number, sandboxImage: string): string {
  return renderTemplate(containerdMajor >= 2 ? 'containerd/config-v3.toml' : 'containerd/config-v2.toml', { sandboxImage });
}

/** Where containerd fetches images of `upstream` from: the seeded registry, trusted through `caFile`. */
export function hostsToml(upstream: string, registry: string, caFile: string): string {
  return renderTemplate('containerd/hosts.toml', { upstream, registry, caFile });
}

/** The upstream registries whose images the bundle carries (registry.k8s.io, ghcr.io, docker.io, ...). */
function upstreamRegistries(ctx: InstallContext): string[] {
  return [...new Set(ctx.manifest.components.images.map((i) => parseReference(i.ref).registry))].sort();
}

/** containerd's major version, as installed from the bundle (it decides the config version). */
async function containerdMajor(host: InstallHost): Promise<number> {
  const version = (await host.conn.run("containerd --version | awk '{print $3}'")).stdout.trim();
  const major = Number(version.replace(/^v/, '').split('.')[0]);
  if (!Number.isInteger(major)) throw new Error(`${host.label}: cannot tell containerd's version from '${version}'`);
  return major;
}

const READY_PROBE = 'ctr version';

export const containerd: ContainerRuntime = {
  name: 'containerd',
  criSocket: CONTAINERD_SOCKET,
  readyProbe: READY_PROBE,
  imageRepository: () => 'registry.k8s.io',
  imageFor: (ref) => ref,
  configure(host: InstallHost, ctx: InstallContext, inputs: RuntimeInputs): Step[] {
    return [
      ...upstreamRegistries(ctx).map((upstream) => file(`${CERTS_D}/${upstream}/hosts.toml`, hostsToml(upstream, ctx.registry, CA_FILE))),
      file('/etc/containerd/config.toml', async () => containerdConfig(await containerdMajor(host), inputs.pauseImage()), 0o644, 'config version 2 for containerd 1.x, 3 for 2.x'),
      file('/etc/crictl.yaml', renderTemplate('crictl/crictl.yaml', { criSocket: CONTAINERD_SOCKET })),
      command(`systemctl enable --quiet containerd && systemctl restart containerd && timeout 60 sh -c "until ${READY_PROBE} >/dev/null 2>&1; do sleep 0.2; done"`),
    ];
  },
  kubeadmReset: () => kubeadmResetCommand(CONTAINERD_SOCKET),
};
