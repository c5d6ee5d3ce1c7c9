/**
 * The install, phase by phase, first to last. The runner (phase-runner.ts) runs them in this order, each host of
 * a phase in parallel; a phase starts only when every host of the one before succeeded.
 *
 * Each phase that changes a host records itself in that host's journal (/var/lib/kube-bundle/journal) when it
 * finishes there, and is skipped on hosts whose journal has it: that is what makes a re-run resume after a failure
 * and change nothing after a success. Host-side work lives in scripts carried in the bundle's installer/
 * (scripts/host/ in this repository); the phases hold the decisions, the generated files and the exact commands,
 * which --dry-run prints.
 */
import { haApiPhase, haPhase } from '../ha.js';
import { checkBundlePhase, CHECK_BUNDLE_PHASE, distributePhase, uploadPhase } from './bundle.js';
import { packagesPhase, preparePhase, registryPhase, runtimePhase } from './host.js';
import { CHECK_CLUSTER_PHASE, checkClusterPhase, initPhase, joinControlPlanesPhase, joinWorkersPhase, networkPhase } from './kubeadm.js';
import type { InstallPhase } from './steps.js';

export function installPhases(): InstallPhase[] {
  return [
    uploadPhase(), //             the registry host: upload the bundle, unpack it, check the tree (bundle.ts)
    distributePhase(), //         every other host: fetch its part from the registry host (or get it uploaded), check it
    checkBundlePhase(), //        every host, every run: the unpacked tree is still the verified one
    preparePhase(), //            every host: hostname, /etc/hosts, swap, kernel modules and sysctls (host.ts)
    packagesPhase(), //           every host: its role's packages from the bundle's signed repository
    registryPhase(), //           the registry host: TLS, storage seeded from the bundle, started
    runtimePhase(), //            every node: trust the registry's CA, configure containerd or Docker (runtime/)
    haPhase(), //                 with --vip, the address holders: haproxy + keepalived (ha.ts)
    initPhase(), //               the first control plane: kubeadm init (kubeadm.ts)
    haApiPhase(), //              with --vip: until the API server answers through the address
    networkPhase(), //            the first control plane: flannel
    joinControlPlanesPhase(), //  the other control planes: kubeadm join --control-plane
    joinWorkersPhase(), //        the workers: kubeadm join
    checkClusterPhase(), //       every node registered; join secrets removed; journals say installed
  ];
}

/** Phases that only look: they run every time and do not count as a change. */
export const READ_ONLY_PHASES = new Set([CHECK_CLUSTER_PHASE, CHECK_BUNDLE_PHASE]);
