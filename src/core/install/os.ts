/**
 * What differs between the distributions install supports, behind one interface: Ubuntu is Debian with a
 * firewall front end (ufw) that is on by default on some images. Everything else (apt, dpkg, systemd, package
 * names) is shared.
 */
import type { Runtime, TargetDef } from '../definitions.js';
import type { HostRole } from './hosts.js';

export interface HostOS {
  /** the packages a host of this role installs from the bundle (their dependencies come along) */
  packages(role: HostRole, runtime: Runtime, options: { registryHere: boolean; ha: boolean }): string[];
  /** shell run before the packages: anything the distribution does that would block the cluster's ports */
  preparePorts(): string;
}

class DebianOS implements HostOS {
  constructor(protected readonly target: TargetDef) {}

  packages(role: HostRole, runtime: Runtime, options: { registryHere: boolean; ha: boolean }): string[] {
    const p = this.target.packages;
    const node = role === 'control-plane' || role === 'worker';
    return [
      ...p.host,
      ...(node ? ['kubeadm', 'kubelet', 'kubectl', ...p.containerd, ...(runtime === 'docker' ? [...p.docker, 'cri-dockerd'] : [])] : []),
      ...(options.registryHere ? p.registry : []),
      ...(options.ha && (role === 'lb' || role === 'control-plane') ? p.ha : []),
    ];
  }

  preparePorts(): string {
    return 'true';
  }
}

class UbuntuOS extends DebianOS {
  /** ufw, when enabled, drops the API server's and kubelet's ports; the sites we replace turn it off. */
  override preparePorts(): string {
    return 'if command -v ufw >/dev/null && ufw status | grep -q "Status: active"; then ufw disable; fi';
  }
}

export function osFor(target: TargetDef): HostOS {
  return target.os === 'ubuntu' ? new UbuntuOS(target) : new DebianOS(target);
}
