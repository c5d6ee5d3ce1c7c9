/**
 * Resuming after the CLI died mid-step (a laptop that sleeps, a VPN that drops, SIGKILL).
 *
 * A command sent over SSH exec (no pty) gets no SIGHUP when the client goes away: it keeps running on the host.
 * What would stop it is its next write to the dead session's pipes (SIGPIPE, half-way through). So every long
 * effectful host command runs through `hostLocked`: its output goes to files on the host and is shown once the
 * command has ended, so it runs to its end on its own; and it holds one host-wide lock, so a re-run's step waits
 * for a step still running from a killed CLI instead of racing it, and then finds its effect.
 *
 * kubeadm init and join are not idempotent (their preflight refuses what an earlier run left), so those steps
 * first look at what is on the host (`kubeadmStateProbe`, under the same lock) and decide with `initDecision` /
 * `joinDecision`: completed (repair the journal, do not run again), cut half-way (kubeadm reset -f, then again),
 * or nothing there.
 */
import { shQuote } from '../ssh/command.js';
import { CLUSTER_SETTINGS, REMOTE_ROOT } from './host-paths.js';

/** the host-wide lock every long effectful install step holds (flock(1), util-linux) */
export const HOST_LOCK = `${REMOTE_ROOT}/host.lock`;
/** how long a step waits for the lock: long enough for a kubeadm init or a package install left running */
export const HOST_LOCK_WAIT_SECONDS = 30 * 60;
/** flock's exit status when the wait ran out (-E), told apart from the command's own failures */
export const HOST_LOCK_BUSY_EXIT = 75;
/** where a locked command's output waits on the host until the command has ended */
const STEP_OUTPUT_DIR = `${REMOTE_ROOT}/steps`;

/**
 * COMMAND as run on the host under the host-wide lock, with its stdin from /dev/null and its output kept in files
 * (named by the shell's pid) until it has ended, then printed: stdout to stdout, stderr to stderr, and its exit
 * status kept. A session that dies meanwhile no longer matters to the command.
 */
export function hostLocked(command: string): string {
  const out = `${STEP_OUTPUT_DIR}/$$`;
  return (
    `mkdir -p ${STEP_OUTPUT_DIR} && ` +
    `{ flock -w ${HOST_LOCK_WAIT_SECONDS} -E ${HOST_LOCK_BUSY_EXIT} ${HOST_LOCK} sh -c ${shQuote(command)} </dev/null >${out}.out 2>${out}.err; s=$?; ` +
    `cat ${out}.out; cat ${out}.err >&2; rm -f ${out}.out ${out}.err; ` +
    `if [ $s = ${HOST_LOCK_BUSY_EXIT} ]; then echo "another kube-bundle step held ${HOST_LOCK} for ${HOST_LOCK_WAIT_SECONDS / 60} minutes" >&2; fi; ` +
    'exit $s; }'
  );
}

/** A time limit for a locked command: its own, plus the longest wait for the lock. */
export function lockedTimeoutMs(ownMs: number): number {
  return ownMs + HOST_LOCK_WAIT_SECONDS * 1000;
}

const K = '/etc/kubernetes';
export const ADMIN_CONF = `${K}/admin.conf`;
export const KUBELET_CONF = `${K}/kubelet.conf`;
export const CLUSTER_CA = `${K}/pki/ca.crt`;
export const ETCD_DATA_DIR = '/var/lib/etcd';
const MANIFESTS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd'].map((c) => `${K}/manifests/${c}.yaml`);
/** what kubeadm init/join leave and their preflight refuses (etcd's data dir counts when not empty) */
export const KUBEADM_LEFTOVERS = [ADMIN_CONF, KUBELET_CONF, `${K}/bootstrap-kubelet.conf`, CLUSTER_CA, ...MANIFESTS, ETCD_DATA_DIR];

/** What the probe found on a host. */
export interface KubeadmState {
  /** the KUBEADM_LEFTOVERS present, and CLUSTER_SETTINGS when there */
  present: Set<string>;
  /** `kubectl get nodes` through this host's admin.conf answered */
  apiAnswers: boolean;
}

/**
 * Shell that prints `present <path>` for each leftover (and the settings file) and `api answers` when the API
 * answers through this host's admin.conf. Reads only; meant to run under hostLocked so that it waits for an
 * init or join still running.
 */
export function kubeadmStateProbe(): string {
  const files = [...KUBEADM_LEFTOVERS.filter((p) => p !== ETCD_DATA_DIR), CLUSTER_SETTINGS];
  return [
    `for f in ${files.join(' ')}; do if [ -e "$f" ]; then echo "present $f"; fi; done`,
    `if [ -n "$(ls -A ${ETCD_DATA_DIR} 2>/dev/null)" ]; then echo "present ${ETCD_DATA_DIR}"; fi`,
    `if [ -e ${ADMIN_CONF} ] && kubectl --kubeconfig ${ADMIN_CONF} --request-timeout=10s get nodes >/dev/null 2>&1; then echo "api answers"; fi`,
    'true',
  ].join('; ');
}

export function parseKubeadmState(stdout: string): KubeadmState {
  const present = new Set<string>();
  let apiAnswers = false;
  for (const line of stdout.split('\n').map((l) => l.trim())) {
    if (line.startsWith('present ')) present.add(line.slice('present '.length));
    else if (line === 'api answers') apiAnswers = true;
  }
  return { present, apiAnswers };
}

export type Decision =
  | { kind: 'fresh' }
  | { kind: 'done'; why: string }
  | { kind: 'redo'; why: string }
  | { kind: 'foreign'; why: string };

const leftovers = (s: KubeadmState) => KUBEADM_LEFTOVERS.filter((p) => s.present.has(p));

/**
 * The first control plane before `kubeadm init`: done when the CA, admin.conf and the settings this install
 * wrote before init are there and the API answers; cut half-way when kubeadm left anything without that; never
 * ours when kubeadm's files are there but not the settings file (this install writes it before it runs init).
 */
export function initDecision(s: KubeadmState): Decision {
  const left = leftovers(s);
  if (left.length === 0) return { kind: 'fresh' };
  if (!s.present.has(CLUSTER_SETTINGS)) {
    return { kind: 'foreign', why: `has ${left.join(', ')} but no ${CLUSTER_SETTINGS}: a cluster this install did not make` };
  }
  if (s.present.has(ADMIN_CONF) && s.present.has(CLUSTER_CA) && s.apiAnswers) {
    return { kind: 'done', why: `kubeadm init had completed (${ADMIN_CONF}, ${CLUSTER_CA}, ${CLUSTER_SETTINGS}; the API answers)` };
  }
  return { kind: 'redo', why: `kubeadm init had stopped half-way (${left.join(', ')}; ${s.apiAnswers ? 'no CA' : 'the API does not answer'})` };
}

/**
 * A node before `kubeadm join`: done when its kubelet.conf is there and the cluster has the node (a control plane
 * also needs its admin.conf and static Pod manifests, written after kubelet.conf); cut half-way when kubeadm left
 * anything without that.
 */
export function joinDecision(s: KubeadmState, registered: boolean, controlPlane: boolean): Decision {
  const left = leftovers(s);
  if (left.length === 0) return { kind: 'fresh' };
  const needed = [KUBELET_CONF, ...(controlPlane ? [ADMIN_CONF, ...MANIFESTS] : [])];
  const missing = needed.filter((p) => !s.present.has(p));
  if (missing.length === 0 && registered) return { kind: 'done', why: `kubeadm join had completed (${KUBELET_CONF}; the cluster has the node)` };
  const why = missing.length ? `no ${missing.join(', ')}` : 'the cluster does not have the node';
  return { kind: 'redo', why: `kubeadm join had stopped half-way (${left.join(', ')}; ${why})` };
}

/** `kubeadm reset -f` for the runtime's CRI socket (kubeadm would otherwise guess it, and fails on a host with two). */
export function kubeadmResetCommand(criSocket: string): string {
  return `kubeadm reset -f --cri-socket ${shQuote(criSocket)}`;
}
