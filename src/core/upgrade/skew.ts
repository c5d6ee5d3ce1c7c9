/**
 * Whether a cluster may go to a version, by kubeadm's upgrade policy and Kubernetes' version skew policy, checked
 * before any host changes and reported all at once:
 * - never a downgrade, and only within the same major;
 * - one minor at a time: kubeadm upgrades the control plane from 1.N to 1.N or 1.N+1 only
 *   (cmd/kubeadm/app/phases/upgrade/policy.go, "can upgrade only 1 minor version at a time");
 * - a kubelet is never newer than the API server, and at most three minors older than it (the skew policy since
 *   1.28: kubelets may be up to three minors behind kube-apiserver), so kubelets left at 1.N-3 or older would be
 *   out of skew once the control plane is at the target.
 * A cluster part-way through an earlier upgrade to the same version (the control plane at the target, some kubelets
 * not yet) is allowed: the upgrade continues from there.
 */
import { parseKubeVersion, type KubeVersion } from '../kube-version.js';

export interface NodeVersion {
  /** how messages name the node: "w1 (10.0.0.21)" */
  label: string;
  /** the kubelet's version on the node, e.g. v1.32.3 (asked of the node) */
  kubelet: string;
}

export interface ClusterVersions {
  /** the API server's version (asked of the cluster) */
  apiServer: string;
  nodes: NodeVersion[];
}

const newer = (a: KubeVersion, b: KubeVersion): boolean => a.minor !== b.minor ? a.minor > b.minor : a.patch > b.patch;

/** Every reason the cluster cannot go to `target`; empty when it can. */
export function upgradeProblems(cluster: ClusterVersions, target: string): string[] {
  const to = parseKubeVersion(target);
  const api = parseKubeVersion(cluster.apiServer);
  const problems: string[] = [];
  if (newer(api, to)) problems.push(`the control plane runs ${api.tag}, newer than the bundle's ${to.tag}: kube-bundle does not downgrade`);
  else if (to.minor > api.minor + 1) {
    problems.push(`the control plane runs ${api.tag}; ${to.tag} skips a minor release: upgrade one minor at a time (${api.tag} → v1.${api.minor + 1}.x → ${to.tag})`);
  }
  for (const n of cluster.nodes) {
    const k = parseKubeVersion(n.kubelet);
    if (newer(k, to)) problems.push(`${n.label}: its kubelet runs ${k.tag}, newer than the bundle's ${to.tag}`);
    else if (newer(k, api)) problems.push(`${n.label}: its kubelet runs ${k.tag}, newer than the API server's ${api.tag} (out of the skew policy)`);
    else if (to.minor - k.minor > 3) problems.push(`${n.label}: its kubelet runs ${k.tag}, more than three minors older than ${to.tag}: upgrade it first`);
  }
  return problems;
}

/** The cluster runs `target` everywhere already: nothing to do. */
export function atVersion(cluster: ClusterVersions, target: string): boolean {
  const to = parseKubeVersion(target).tag;
  return parseKubeVersion(cluster.apiServer).tag === to && cluster.nodes.every((n) => parseKubeVersion(n.kubelet).tag === to);
}

/** `Kubernetes v1.32.3` (kubelet --version) or `v1.32.3` → `v1.32.3`; null when neither. */
export function versionIn(text: string): string | null {
  return /\bv(\d+\.\d+\.\d+)\b/.exec(text)?.[0] ?? null;
}
