/**
 * What differs between the distributions install supports, behind one interface: Ubuntu is Debian with a
 * firewall front end (ufw) that is on by default on some images. Everything else (apt, dpkg, systemd, package
 * names) is shared.
 */
import { CRI_DOCKERD_PACKAGE, type Runtime, type TargetDef } from '../definitions.js';
import type { HostRole } from './hosts.js';

export interface HostOS {
  /** the Kubernetes packages (bundles/components.yaml): installed on every node, and held */
  readonly kubePackages: readonly string[];
  /** the packages a host of this role installs from the bundle (their dependencies come along) */
  packages(role: HostRole, runtime: Runtime, options: { registryHere: boolean; ha: boolean }): string[];
  /** shell run before the packages: anything the distribution does that would block the cluster's ports */
  preparePorts(): string;
}

/**
 * Each role's packages come from the definitions only: the Kubernetes ones from bundles/components.yaml, the
 * distribution's (runtime, registry, HA, what install uses on a host) from the target's file.
 */
class DebianOS implements HostOS {
  constructor(
    protected readonly target: TargetDef,
    readonly kubePackages: readonly string[],
  ) {}

  packages(role: HostRole, runtime: Runtime, options: { registryHere: boolean; ha: boolean }): string[] {
    const p = this.target.packages;
    const node = role === 'control-plane' || role === 'worker';
    return [
      ...p.host,
      ...(node ? [...this.kubePackages, ...p.containerd, ...(runtime === 'docker' ? [...p.docker, CRI_DOCKERD_PACKAGE] : [])] : []),
      ...(options.registryHere ? p.registry : []),
      ...(options.ha && (role === 'lb' || role === 'control-plane') ? p.ha : []),
    ];
  }

  preparePorts(): string {
    return 'true';
  }
}

class UbuntuOS extends DebianOS {
  /**
   * ufw, when enabled, drops the API server's and kubelet's ports; the sites we replace turn it off. Its status is
   * read in the C locale: ufw translates "Status: active", and a host's locale comes from /etc/default/locale.
   */
  override preparePorts(): string {
    return 'if command -v ufw >/dev/null && LC_ALL=C ufw status | grep -q "^Status: active"; then ufw disable; fi';
  }
}

export function osFor(target: TargetDef, kubePackages: readonly string[]): HostOS {
  return target.os === 'ubuntu' ? new UbuntuOS(target, kubePackages) : new DebianOS(target, kubePackages);
}
