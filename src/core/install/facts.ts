/**
 * What install learns about each host before it changes anything, and the preflight checks over it. Gathering is
 * one read-only command per host; the checks are plain functions, so every problem of every host is reported
 * together.
 */
import type { Connection } from '../ssh/connection.js';
import { JOURNAL } from './host-paths.js';
import { hostnameProblem, hostNetworkProblems, type InterfaceAddress } from './validate.js';

export interface Facts {
  /** os-release ID and ID_LIKE, e.g. debian / ubuntu */
  osId: string;
  osIdLike: string[];
  osVersion: string;
  /** dpkg architecture, e.g. amd64 */
  arch: string;
  hostname: string;
  machineId: string;
  /** host clock, seconds since the epoch, and how far it is from ours */
  clockSkewSeconds: number;
  cpus: number;
  memoryMiB: number;
  /** free space under /var/lib, MiB */
  freeMiB: number;
  /** TCP ports something listens on */
  listening: number[];
  /** what is already there: kube packages, a runtime, a cluster */
  kubeletInstalled: boolean;
  clusterConfigured: boolean;
  containerdVersion: string | undefined;
  /** a Docker engine is running (a stopped one, e.g. left by `bundle reset`, is not in the way) */
  dockerRunning: boolean;
  /** phases this host's journal records as done */
  journal: string[];
  /** the addresses on its interfaces (empty when `ip` is missing) */
  addresses: InterfaceAddress[];
}


// Plain POSIX tools only (a minimal Debian has mawk, not gawk): listening ports are read from /proc/net/tcp*.
const FACTS_SCRIPT = [
  '. /etc/os-release',
  'echo "os=$ID"; echo "like=${ID_LIKE:-}"; echo "version=${VERSION_ID:-}"',
  'echo "arch=$(dpkg --print-architecture 2>/dev/null || uname -m)"',
  'echo "hostname=$(hostname)"',
  'echo "machineid=$(cat /etc/machine-id 2>/dev/null)"',
  'echo "clock=$(date +%s)"',
  'echo "cpus=$(nproc)"',
  `echo "mem=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)"`,
  `echo "free=$(df -Pm /var/lib | awk 'NR==2 {print $4}')"`,
  'printf "listen="; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | while read -r _ l _ st _; do [ "$st" = 0A ] && printf "%d " "0x${l##*:}"; done; echo',
  `echo "kubelet=$(dpkg-query -W -f='\${Status}' kubelet 2>/dev/null | grep -c 'ok installed')"`,
  'echo "cluster=$([ -e /etc/kubernetes/kubelet.conf ] || [ -e /etc/kubernetes/admin.conf ] && echo 1 || echo 0)"',
  `echo "containerd=$(containerd --version 2>/dev/null | awk '{print $3}')"`,
  'echo "docker=$(systemctl is-active --quiet docker.service 2>/dev/null && echo 1 || echo 0)"',
  `echo "journal=$(cut -d' ' -f1 ${JOURNAL} 2>/dev/null | tr '\\n' ' ')"`,
  // `ip -o addr show`: "2: eth0    inet 10.0.0.11/24 brd ..." → "eth0=10.0.0.11/24"
  'printf "addrs="; ip -o addr show 2>/dev/null | while read -r _ dev _ addr _; do printf "%s=%s " "$dev" "$addr"; done; echo',
].join('\n');

/** `iface=address/prefix` words, as FACTS_SCRIPT prints them. */
export function parseAddresses(words: string[]): InterfaceAddress[] {
  return words.flatMap((word) => {
    const m = /^([^=@]+)(?:@[^=]*)?=([^/]+)\/(\d+)$/.exec(word);
    return m ? [{ iface: m[1]!, address: m[2]!, prefix: Number(m[3]) }] : [];
  });
}

export async function gatherFacts(conn: Connection): Promise<Facts> {
  const started = Date.now();
  const { stdout } = await conn.run(FACTS_SCRIPT);
  const now = (started + Date.now()) / 2000;
  const kv = new Map(stdout.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()] as const));
  const num = (k: string) => Number(kv.get(k) ?? 'NaN');
  const words = (k: string) => (kv.get(k) ?? '').split(/\s+/).filter(Boolean);
  return {
    osId: kv.get('os') ?? '',
    osIdLike: words('like'),
    osVersion: (kv.get('version') ?? '').replace(/"/g, ''),
    arch: kv.get('arch') ?? '',
    hostname: kv.get('hostname') ?? '',
    machineId: kv.get('machineid') ?? '',
    clockSkewSeconds: Math.round(num('clock') - now),
    cpus: num('cpus'),
    memoryMiB: num('mem'),
    freeMiB: num('free'),
    listening: words('listen').map(Number),
    kubeletInstalled: kv.get('kubelet') === '1',
    clusterConfigured: kv.get('cluster') === '1',
    containerdVersion: kv.get('containerd') || undefined,
    dockerRunning: kv.get('docker') === '1',
    journal: words('journal'),
    addresses: parseAddresses(words('addrs')),
  };
}

export interface PreflightHost {
  label: string;
  role: string;
  facts: Facts;
  /** node name the host will have */
  nodeName: string;
  /** the address the hosts file gives it */
  address?: string;
}

export interface PreflightRequirements {
  /** e.g. debian-12 → os debian, version 12 */
  targetOs: string;
  targetVersion: string;
  arches: string[];
  bundleMiB: number;
  registryPort: number;
  registryLabel: string;
  /** the pod and service networks (already checked by validate.ts), which must not hold the hosts' addresses */
  podCidr?: string;
  serviceCidr?: string;
}

const MAX_SKEW_SECONDS = 30;
const CONTROL_PLANE_CPUS = 2;
const CONTROL_PLANE_MEMORY_MIB = 1700;

/**
 * Every problem found, one line each, naming the host. A host whose journal says install already finished on it
 * is not checked for "Kubernetes already there" or for ports: those are its own.
 */
export function preflightProblems(hosts: PreflightHost[], req: PreflightRequirements): string[] {
  const problems: string[] = [];
  const seenNames = new Map<string, string>();
  const seenIds = new Map<string, string>();
  for (const h of hosts) {
    const f = h.facts;
    const say = (text: string) => problems.push(`${h.label}: ${text}`);
    const os = f.osId === req.targetOs || f.osIdLike.includes(req.targetOs);
    if (!os || f.osVersion !== req.targetVersion) say(`runs ${f.osId} ${f.osVersion}; the bundle is for ${req.targetOs} ${req.targetVersion}`);
    if (!req.arches.includes(f.arch)) say(`is ${f.arch}; the bundle carries ${req.arches.join(', ')}`);
    if (Math.abs(f.clockSkewSeconds) > MAX_SKEW_SECONDS) say(`its clock is ${f.clockSkewSeconds}s off this machine's (more than ${MAX_SKEW_SECONDS}s breaks certificates and tokens)`);
    if (h.role === 'control-plane') {
      if (f.cpus < CONTROL_PLANE_CPUS) say(`has ${f.cpus} CPU; a control plane needs ${CONTROL_PLANE_CPUS}`);
      if (f.memoryMiB < CONTROL_PLANE_MEMORY_MIB) say(`has ${f.memoryMiB} MiB of memory; a control plane needs ${CONTROL_PLANE_MEMORY_MIB}`);
    }
    if (f.freeMiB < req.bundleMiB * 2 + 512) say(`has ${f.freeMiB} MiB free under /var/lib; the bundle needs ${req.bundleMiB * 2 + 512} MiB (file + unpacked + room)`);
    const badHostname = hostnameProblem(h.nodeName, f.hostname);
    if (badHostname) say(badHostname);
    if (h.address !== undefined && req.podCidr !== undefined && req.serviceCidr !== undefined) {
      for (const p of hostNetworkProblems(h.address, f.addresses, { podCidr: req.podCidr, serviceCidr: req.serviceCidr })) say(p);
    }
    const other = seenNames.get(h.nodeName);
    if (other) say(`has node name '${h.nodeName}', like ${other}: node names must be unique (set name= in the hosts file)`);
    seenNames.set(h.nodeName, h.label);
    const twin = seenIds.get(f.machineId);
    if (f.machineId && twin) say(`has the same /etc/machine-id as ${twin} (a cloned image): regenerate it`);
    seenIds.set(f.machineId, h.label);
    if (f.journal.includes('installed')) continue;
    if (f.clusterConfigured) say('already has a Kubernetes node configured (/etc/kubernetes): run `bundle reset` on it or remove it from the hosts file');
    if (f.dockerRunning && !f.journal.length) say('already runs a Docker engine not installed by kube-bundle');
    const ports = [
      ...(h.role === 'control-plane' ? [6443, 2379, 2380, 10250, 10257, 10259] : h.role === 'worker' ? [10250] : []),
      ...(h.label === req.registryLabel ? [req.registryPort] : []),
    ];
    const busy = ports.filter((p) => f.listening.includes(p) && !(p === req.registryPort && f.journal.includes('registry')));
    if (busy.length) say(`port${busy.length > 1 ? 's' : ''} ${busy.join(', ')} already in use`);
  }
  return problems;
}
