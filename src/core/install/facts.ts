/**
 * What install learns about each host before it changes anything, and the preflight checks over it. Gathering is
 * one read-only command per host; the checks are plain functions, so every problem of every host is reported
 * together.
 */
import type { Connection } from '../ssh/connection.js';
import { CLUSTER_SETTINGS, JOURNAL, REGISTRY_CONFIG, REGISTRY_UNIT, REGISTRY_UNIT_FILE } from './host-paths.js';
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
  /** who listens on each TCP port, as far as the host can tell (empty when `ss` is missing) */
  listeners: Listener[];
  /** the cluster settings this install records on the first control plane are there */
  clusterSettings: boolean;
  /** which of kube-bundle's services run here, and which of its configs are in place (see OurServices) */
  ours: OurServices;
}

/** A listening TCP socket and the process holding it. */
export interface Listener {
  port: number;
  /** the process name (/proc/<pid>/comm), when `ss -p` could tell */
  process?: string;
  pid?: number;
  /** the systemd unit whose cgroup holds the process, e.g. kube-bundle-registry.service */
  unit?: string;
}

/** kube-bundle's own services on a host, each recognized by its unit and the config install wrote. */
export interface OurServices {
  /** /etc/systemd/system/kube-bundle-registry.service and its config under /etc/kube-bundle/registry exist */
  registryConfigured: boolean;
  /** kube-bundle-registry.service is active */
  registryActive: boolean;
  /** /etc/haproxy/haproxy.cfg carries the "Written by kube-bundle" line */
  haproxyConfigured: boolean;
  /** /etc/keepalived/keepalived.conf carries it */
  keepalivedConfigured: boolean;
}


export const HAPROXY_CONFIG = '/etc/haproxy/haproxy.cfg';
export const KEEPALIVED_CONFIG = '/etc/keepalived/keepalived.conf';
/** the first line of every config install writes: reset and the preflight recognize them by it */
export const MARKER = 'Written by kube-bundle';

/**
 * `ss -Hltnp`, one word per listener: `port,process,pid,unit`. The unit is the last element of the process's
 * systemd cgroup (cgroup v2's `0::` line, or v1's `name=systemd` one), which tells kube-bundle's registry from
 * Debian's docker-registry.service running the same binary. Names are squeezed to one word.
 */
const LISTENERS_SCRIPT = [
  'printf "listeners="',
  'ss -Hltnp 2>/dev/null | while read -r _ _ _ local _ users; do',
  `  name=\${users#*'(("'}; name=\${name%%'"'*}; pid=\${users#*pid=}; pid=\${pid%%[!0-9]*}`,
  `  unit=""; [ -n "$pid" ] && unit=$(sed -n 's#^0::.*/##p; s#^[0-9]*:name=systemd:.*/##p' "/proc/$pid/cgroup" 2>/dev/null | grep -m 1 .)`,
  `  printf '%s,%s,%s,%s\\n' "\${local##*:}" "$name" "$pid" "$unit" | tr -c '0-9A-Za-z,._@:\\n-' _ | tr '\\n' ' '`,
  'done; echo',
].join('\n');

// Plain POSIX tools only (a minimal Debian has mawk, not gawk): listening ports are read from /proc/net/tcp*.
export const FACTS_SCRIPT = [
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
  LISTENERS_SCRIPT,
  `echo "settings=$([ -e ${CLUSTER_SETTINGS} ] && echo 1 || echo 0)"`,
  `echo "registry=$([ -e ${REGISTRY_UNIT_FILE} ] && [ -e ${REGISTRY_CONFIG} ] && echo 1 || echo 0)$(systemctl is-active --quiet ${REGISTRY_UNIT} 2>/dev/null && echo 1 || echo 0)"`,
  `echo "haconfigs=$(grep -l '${MARKER}' ${HAPROXY_CONFIG} ${KEEPALIVED_CONFIG} 2>/dev/null | tr '\\n' ' ')"`,
].join('\n');

/** `port,process,pid,unit` words, as LISTENERS_SCRIPT prints them. */
export function parseListeners(words: string[]): Listener[] {
  return words.flatMap((word) => {
    const [port, process, pid, unit] = word.split(',');
    if (!port || !/^\d+$/.test(port)) return [];
    return [{ port: Number(port), ...(process ? { process } : {}), ...(pid && /^\d+$/.test(pid) ? { pid: Number(pid) } : {}), ...(unit ? { unit } : {}) }];
  });
}

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
    listeners: parseListeners(words('listeners')),
    clusterSettings: kv.get('settings') === '1',
    ours: {
      registryConfigured: kv.get('registry')?.[0] === '1',
      registryActive: kv.get('registry')?.[1] === '1',
      haproxyConfigured: words('haconfigs').includes(HAPROXY_CONFIG),
      keepalivedConfigured: words('haconfigs').includes(KEEPALIVED_CONFIG),
    },
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
    // /etc/kubernetes on a host this install has worked on is this install's (a run cut during init or a join):
    // the init and join phases recognize or clean it. Anywhere else it is someone else's cluster.
    if (f.clusterConfigured && !hasInstallRecord(f)) say('already has a Kubernetes node configured (/etc/kubernetes): run `bundle reset` on it or remove it from the hosts file');
    if (f.dockerRunning && !f.journal.length) say('already runs a Docker engine not installed by kube-bundle');
    const uses: [number, PortUse][] = [
      ...(h.role === 'control-plane' ? CONTROL_PLANE_PORTS : h.role === 'worker' ? WORKER_PORTS : []).map((p): [number, PortUse] => [p, 'kubernetes']),
      ...(h.label === req.registryLabel ? [[req.registryPort, 'registry'] as [number, PortUse]] : []),
    ];
    const busy = foreignPortsProblem(uses, f);
    if (busy) say(busy);
  }
  return problems;
}

const CONTROL_PLANE_PORTS = [6443, 2379, 2380, 10250, 10257, 10259];
const WORKER_PORTS = [10250];
/** the process names (comm: 15 characters at most) of what kubeadm starts on those ports */
const KUBERNETES_PROCESSES = ['kube-apiserver', 'etcd', 'kubelet', 'kube-controller', 'kube-scheduler'];
/** Debian's own service for the registry binary: the package starts it if nothing stops it, setup-registry.sh turns it off */
const PACKAGED_REGISTRY_UNIT = 'docker-registry.service';

/** What a port is expected to be used for, by this install. */
export type PortUse = 'registry' | 'haproxy' | 'kubernetes';

/** The host has this install's journal, or the cluster settings its init records. */
export function hasInstallRecord(f: Facts): boolean {
  return f.journal.length > 0 || f.clusterSettings;
}

/**
 * Is whoever listens on a port this install's own service, started by an earlier run that was cut before its
 * journal line? Each is recognized by its unit or process and the config install wrote; when the host cannot
 * name the listener (no `ss`), by the same config and our service being up.
 */
export function isOurListener(use: PortUse, l: Listener | undefined, f: Facts): boolean {
  const unnamed = l?.process === undefined;
  switch (use) {
    case 'registry':
      return l?.unit === REGISTRY_UNIT
        || (unnamed && f.ours.registryConfigured && f.ours.registryActive)
        // started by our own package install (a run cut before policy-rc.d held it back); setup-registry.sh stops it
        || (l?.unit === PACKAGED_REGISTRY_UNIT && f.journal.includes('packages'));
    case 'haproxy':
      return f.ours.haproxyConfigured && (unnamed || l?.process === 'haproxy' || l?.unit === 'haproxy.service');
    case 'kubernetes':
      // the stub control plane of the tests, like any socket-activated service, listens through systemd (pid 1)
      return hasInstallRecord(f) && (KUBERNETES_PROCESSES.includes(l?.process ?? '') || (f.clusterConfigured && (unnamed || l?.pid === 1)));
  }
}

/** `docker-registry (pid 812, docker-registry.service)`, or '' when the host could not tell. */
export function describeListener(l: Listener | undefined): string {
  if (!l?.process) return '';
  const more = [...(l.pid !== undefined ? [`pid ${l.pid}`] : []), ...(l.unit ? [l.unit] : [])];
  return `${l.process}${more.length ? ` (${more.join(', ')})` : ''}`;
}

/**
 * One line for the ports this install needs that something else holds, naming the holder when the host can
 * tell; undefined when none is. A port held by this install's own service is not in the way.
 */
export function foreignPortsProblem(uses: [number, PortUse][], f: Facts, what = ''): string | undefined {
  const busy = uses.flatMap(([port, use]) => {
    if (!f.listening.includes(port) && !f.listeners.some((l) => l.port === port)) return [];
    const l = f.listeners.find((x) => x.port === port);
    if (isOurListener(use, l, f)) return [];
    const who = describeListener(l);
    return [{ port, who }];
  });
  if (!busy.length) return undefined;
  if (busy.length === 1) return `port ${busy[0]!.port}${what} already in use${busy[0]!.who ? ` by ${busy[0]!.who}` : ''}`;
  const named = busy.filter((b) => b.who).map((b) => `${b.port} by ${b.who}`);
  return `ports ${busy.map((b) => b.port).join(', ')}${what} already in use${named.length ? `; ${named.join(', ')}` : ''}`;
}
