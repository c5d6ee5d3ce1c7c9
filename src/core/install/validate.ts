/**
 * The rules for every value install writes into a host's files that did not come from the bundle: node names,
 * the pod and service networks, the control-plane endpoint and the virtual address. Each rule is a plain function
 * that returns one line naming the value and the rule (or nothing), so that callers report every bad value at once.
 *
 * Where they are checked:
 * - the flags (`--pod-cidr`, `--service-cidr`, `--control-plane-endpoint`, `--vip`): checkNetworkFlags, from the
 *   CLI before the bundle is read or any host contacted;
 * - the hosts file's `name=`: hosts.ts, while parsing the file;
 * - a host's own hostname (when the hosts file gives no `name=`) and the hosts' addresses against the networks:
 *   the preflight (facts.ts), once facts are gathered and before anything changes.
 *
 * The CIDR rules are kubeadm's own (cmd/kubeadm/app/apis/kubeadm/validation/validation.go: ValidateIPNetFromString,
 * ValidateServiceSubnetSize, ValidatePodSubnetNodeMask; constants in cmd/kubeadm/app/constants/constants.go), so a
 * value kubeadm init would refuse after the hosts are prepared is refused here before anything starts.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { UserError } from '../../util/errors.js';

// --- node names --------------------------------------------------------------------------------------------------

/** What a Kubernetes node name must be, for messages. */
export const NODE_NAME_RULE = "a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.'; labels of 1 to 63 that start and end with a letter or digit; at most 253 in all";

const LOWERCASE_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** RFC 1123 subdomain in lowercase, as Kubernetes requires of node names. */
export function isValidNodeName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => LOWERCASE_LABEL.test(label));
}

/** A DNS name (RFC 1123 host name, any case), not an IP address. */
export function isDnsName(text: string): boolean {
  if (text.length === 0 || text.length > 253) return false;
  const labels = text.split('.');
  // an all-numeric last label is a mistyped IPv4 address (10.0.0.256), not a name
  if (/^[0-9]+$/.test(labels.at(-1) ?? '')) return false;
  return labels.every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(label));
}

/** A value as messages show it: quoted, with control characters escaped so one bad value stays on one line. */
export function shown(value: string): string {
  return /[\u0000-\u001f\u007f'\\]/.test(value) ? JSON.stringify(value) : `'${value}'`;
}

/**
 * One preflight line when the node name a host would get is not valid. A name= from the hosts file is checked with
 * the file, so a bad name here is the host's own hostname, lowercased as the kubelet does.
 */
export function hostnameProblem(nodeName: string, reportedHostname: string): string | undefined {
  if (isValidNodeName(nodeName)) return undefined;
  return `reports hostname ${shown(reportedHostname)}, which is not a valid Kubernetes node name (${NODE_NAME_RULE}): set name= for this host in the hosts file`;
}

// --- IP addresses and CIDRs ---------------------------------------------------------------------------------------

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  value: bigint;
}

export interface Cidr {
  family: Family;
  /** the network address (host bits zero) */
  network: bigint;
  prefix: number;
  /** canonical text, e.g. 10.244.0.0/16 or fd00::/108 */
  text: string;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** An IPv4 or IPv6 address (no zone id), or undefined. */
export function parseIp(text: string): Ip | undefined {
  if (isIPv4(text)) return { family: 4, value: text.split('.').reduce((n, octet) => (n << 8n) | BigInt(octet), 0n) };
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let s = text.toLowerCase();
  // an embedded IPv4 tail (::ffff:10.0.0.1) is the last two groups
  const tail4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (tail4) {
    const v4 = parseIp(tail4[1]!)!.value;
    s = `${s.slice(0, tail4.index)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = s.split('::');
  const headGroups = head ? head.split(':') : [];
  const restGroups = rest ? rest.split(':') : [];
  const groups = rest === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - restGroups.length).fill('0'), ...restGroups];
  return { family: 6, value: groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((ip.value >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: the longest run of two or more zero groups becomes '::'
  let best = { at: -1, length: 1 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.length).join(':')}`;
}

function hostMask(family: Family, prefix: number): bigint {
  return (1n << BigInt(BITS[family] - prefix)) - 1n;
}

function formatCidr(family: Family, network: bigint, prefix: number): string {
  return `${formatIp({ family, value: network })}/${prefix}`;
}

/** A network `address/prefix` with its host bits zero; otherwise the rule it breaks. */
export function parseCidr(text: string): Cidr | { problem: string } {
  if (text.includes(',')) return { problem: 'one CIDR only (dual-stack pod and service networks are not supported)' };
  const m = /^([^/]+)\/(0|[1-9][0-9]{0,2})$/.exec(text);
  const ip = m ? parseIp(m[1]!) : undefined;
  if (!m || !ip) return { problem: 'not a CIDR: an IPv4 or IPv6 network address, "/" and a prefix length, e.g. 10.244.0.0/16' };
  const prefix = Number(m[2]);
  const bits = BITS[ip.family];
  if (prefix > bits) return { problem: `the prefix /${prefix} is longer than an IPv${ip.family} address (${bits} bits)` };
  const network = ip.value & ~hostMask(ip.family, prefix);
  if (network !== ip.value) return { problem: `host bits are set: the network is ${formatCidr(ip.family, network, prefix)}` };
  return { family: ip.family, network, prefix, text: formatCidr(ip.family, network, prefix) };
}

export function cidrContains(cidr: Cidr, ip: Ip): boolean {
  return cidr.family === ip.family && (ip.value & ~hostMask(cidr.family, cidr.prefix)) === cidr.network;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const wider = a.prefix <= b.prefix ? a : b;
  const narrower = wider === a ? b : a;
  return cidrContains(wider, { family: narrower.family, value: narrower.network });
}

// kubeadm's constants (cmd/kubeadm/app/constants/constants.go) and defaults (validation.go, getClusterNodeMask)

/** the kube-controller-manager's default --node-cidr-mask-size-ipv4/-ipv6: each node's share of the pod network */
export const NODE_CIDR_MASK: Record<Family, number> = { 4: 24, 6: 64 };
/** PodSubnetNodeMaskMaxDiff: at most 2^16 node subnets in the pod network */
export const POD_SUBNET_NODE_MASK_MAX_DIFF = 16;
/** MaximumBitsForServiceSubnet: at most 2^20 service addresses (IPv4 /12, IPv6 /108) */
export const MAXIMUM_BITS_FOR_SERVICE_SUBNET = 20;
/** MinimumAddressesInServiceSubnet: the cluster DNS service is the 10th address */
export const MINIMUM_ADDRESSES_IN_SERVICE_SUBNET = 10;

/**
 * kubeadm's ValidatePodSubnetNodeMask with the default node masks: the pod network holds at least one node's
 * subnet, and at most 2^16 of them. (Its MinimumAddressesInPodSubnet, 14, is then always met.)
 */
export function podCidrRule(cidr: Cidr): string | undefined {
  const nodeMask = NODE_CIDR_MASK[cidr.family];
  const shortest = nodeMask - POD_SUBNET_NODE_MASK_MAX_DIFF;
  if (cidr.prefix <= nodeMask && cidr.prefix >= shortest) return undefined;
  return `an IPv${cidr.family} pod network's prefix must be /${shortest} to /${nodeMask} (kubeadm: every node gets a /${nodeMask} of it, and the two masks may differ by at most ${POD_SUBNET_NODE_MASK_MAX_DIFF})`;
}

/** kubeadm's ValidateServiceSubnetSize and ValidateIPNetFromString's minimum for the service network. */
export function serviceCidrRule(cidr: Cidr): string | undefined {
  const bits = BITS[cidr.family];
  let minHostBits = 0;
  while (2 ** minHostBits < MINIMUM_ADDRESSES_IN_SERVICE_SUBNET) minHostBits++;
  const hostBits = bits - cidr.prefix;
  if (hostBits <= MAXIMUM_BITS_FOR_SERVICE_SUBNET && hostBits >= minHostBits) return undefined;
  return `an IPv${cidr.family} service network's prefix must be /${bits - MAXIMUM_BITS_FOR_SERVICE_SUBNET} to /${bits - minHostBits} (kubeadm: at most 2^${MAXIMUM_BITS_FOR_SERVICE_SUBNET} service addresses, and at least ${MINIMUM_ADDRESSES_IN_SERVICE_SUBNET}: the cluster DNS service is the 10th)`;
}

// --- the control-plane endpoint -----------------------------------------------------------------------------------

/** where the API server listens when the endpoint names no port */
export const API_SERVER_PORT = 6443;

export interface Endpoint {
  /** as given, without brackets */
  host: string;
  port: number | undefined;
  /** set when the host is an IP address */
  ip: Ip | undefined;
}

export const ENDPOINT_RULE = 'host[:port]: a DNS name (RFC 1123), an IPv4 address or a bracketed IPv6 address ([fd00::1]), and optionally a port 1-65535';

/** `host[:port]`; otherwise the rule it breaks. */
export function parseEndpoint(text: string): Endpoint | { problem: string } {
  if (parseIp(text)?.family === 6) return { problem: `an IPv6 address needs brackets: [${text}] or [${text}]:${API_SERVER_PORT}` };
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  const plain = bracketed ? undefined : /^([^:[\]]*)(?::(.*))?$/.exec(text);
  const host = bracketed?.[1] ?? plain?.[1];
  const portText = bracketed ? bracketed[2] : plain?.[2];
  const ip = host === undefined ? undefined : parseIp(host);
  const hostOk = host !== undefined && (bracketed ? ip?.family === 6 : ip?.family === 4 || isDnsName(host));
  if (!hostOk || portText?.includes(':') || text.includes('/')) return { problem: `not ${ENDPOINT_RULE}` };
  if (portText === undefined) return { host, port: undefined, ip };
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) return { problem: `the port must be a number 1-65535, not ${shown(portText)}` };
  return { host, port, ip };
}

/** `host:port` as URLs and kubeadm write it: the default port added, an IPv6 address in brackets. */
export function formatEndpoint(e: Endpoint): string {
  return `${e.ip?.family === 6 ? `[${e.host}]` : e.host}:${e.port ?? API_SERVER_PORT}`;
}

// --- the install flags together -----------------------------------------------------------------------------------

export interface NetworkFlags {
  podCidr: string;
  serviceCidr: string;
  controlPlaneEndpoint?: string | undefined;
  vip?: string | undefined;
}

export interface CheckedNetwork {
  podCidr: Cidr;
  serviceCidr: Cidr;
  /** `host:port`, the port defaulted to 6443 */
  controlPlaneEndpoint: string | undefined;
  vip: Ip | undefined;
}

/** Every problem with the network flags, one line each naming the flag, the value and the rule. */
export function networkFlagProblems(flags: NetworkFlags): { problems: string[]; checked?: CheckedNetwork } {
  const problems: string[] = [];
  const say = (flag: string, value: string, rule: string) => problems.push(`${flag} ${shown(value)}: ${rule}`);

  const pod = parseCidr(flags.podCidr);
  if ('problem' in pod) say('--pod-cidr', flags.podCidr, pod.problem);
  else if (pod.family !== 4) say('--pod-cidr', flags.podCidr, "must be an IPv4 network: it becomes flannel's Network, which is IPv4");
  else {
    const rule = podCidrRule(pod);
    if (rule) say('--pod-cidr', flags.podCidr, rule);
  }
  const service = parseCidr(flags.serviceCidr);
  if ('problem' in service) say('--service-cidr', flags.serviceCidr, service.problem);
  else {
    const rule = serviceCidrRule(service);
    if (rule) say('--service-cidr', flags.serviceCidr, rule);
    else if (service.family !== 4) say('--service-cidr', flags.serviceCidr, 'must be an IPv4 network like --pod-cidr: the cluster is single-stack IPv4');
  }
  const cidrs = [...('problem' in pod ? [] : [{ flag: '--pod-cidr', cidr: pod }]), ...('problem' in service ? [] : [{ flag: '--service-cidr', cidr: service }])];
  if (!('problem' in pod) && !('problem' in service) && cidrsOverlap(pod, service)) {
    problems.push(`--pod-cidr ${shown(flags.podCidr)} and --service-cidr ${shown(flags.serviceCidr)} overlap: pod and service addresses must be distinct`);
  }

  /** an address of the cluster's own (endpoint, virtual address) must not be a pod's or a service's */
  const notInside = (flag: string, value: string, ip: Ip) => {
    for (const { flag: cidrFlag, cidr } of cidrs) {
      if (cidrContains(cidr, ip)) say(flag, value, `inside ${cidrFlag} ${cidr.text}: the cluster's own address must not be a pod's or a service's`);
    }
  };
  let endpoint: string | undefined;
  if (flags.controlPlaneEndpoint !== undefined) {
    const e = parseEndpoint(flags.controlPlaneEndpoint);
    if ('problem' in e) say('--control-plane-endpoint', flags.controlPlaneEndpoint, e.problem);
    else {
      endpoint = formatEndpoint(e);
      if (e.ip) notInside('--control-plane-endpoint', flags.controlPlaneEndpoint, e.ip);
    }
  }
  let vip: Ip | undefined;
  if (flags.vip !== undefined) {
    vip = parseIp(flags.vip);
    if (vip?.family !== 4) say('--vip', flags.vip, 'not an IPv4 address (the virtual address is an unused IPv4 address on the hosts\' network; IPv6 is not supported)');
    else notInside('--vip', flags.vip, vip);
  }
  if (problems.length || 'problem' in pod || 'problem' in service) return { problems };
  return { problems, checked: { podCidr: pod, serviceCidr: service, controlPlaneEndpoint: endpoint, vip } };
}

/**
 * The network flags checked and in canonical form (the endpoint as `host:port`); throws one UserError with a line
 * per bad value. Called where the flags enter, before anything is read or any host contacted.
 */
export function checkNetworkFlags(flags: NetworkFlags): { podCidr: string; serviceCidr: string; controlPlaneEndpoint: string | undefined; vip: string | undefined } {
  const { problems, checked } = networkFlagProblems(flags);
  if (!checked) throw new UserError(problems.length === 1 ? problems[0]! : `${problems.length} bad values:\n  ${problems.join('\n  ')}`);
  return { podCidr: checked.podCidr.text, serviceCidr: checked.serviceCidr.text, controlPlaneEndpoint: checked.controlPlaneEndpoint, vip: flags.vip };
}

// --- the hosts' addresses against the networks (preflight) --------------------------------------------------------

/** An address on one of a host's interfaces, from `ip -o addr show`. */
export interface InterfaceAddress {
  iface: string;
  address: string;
  prefix: number;
}

/**
 * Interfaces the cluster itself makes, whose addresses are in the pod or service network by design: on a re-run
 * (or a host added later) the nodes already have them.
 */
const CLUSTER_INTERFACES = /^(lo|cni0|flannel\..*|kube-ipvs0|nodelocaldns)$/;

/**
 * Preflight lines (without the host's label) when the host's address from the hosts file, or an address on one of
 * its interfaces, is inside the pod or service network: traffic to it would be routed to a pod or a service.
 */
export function hostNetworkProblems(address: string, interfaces: InterfaceAddress[], networks: { podCidr: string; serviceCidr: string }): string[] {
  const cidrs = [
    { flag: '--pod-cidr', parsed: parseCidr(networks.podCidr) },
    { flag: '--service-cidr', parsed: parseCidr(networks.serviceCidr) },
  ].flatMap(({ flag, parsed }) => ('problem' in parsed ? [] : [{ flag, cidr: parsed }]));
  const problems: string[] = [];
  const check = (ip: Ip | undefined, what: string) => {
    if (!ip) return;
    for (const { flag, cidr } of cidrs) {
      if (cidrContains(cidr, ip)) problems.push(`${what} is inside ${flag} ${cidr.text}: pod and service networks must not hold the hosts' addresses (choose another ${flag})`);
    }
  };
  check(parseIp(address), `its address ${address} (hosts file)`);
  for (const i of interfaces) {
    if (CLUSTER_INTERFACES.test(i.iface) || i.address === address) continue;
    check(parseIp(i.address), `${i.iface}'s address ${i.address}`);
  }
  return problems;
}

// --- the node's own address (preflight) ----------------------------------------------------------------------------

/**
 * Preflight lines (with the host's label) about the address a node is known by: kubeadm's advertiseAddress, the
 * kubelet's --node-ip and every /etc/hosts line need an IP, so a hosts-file DNS name must resolve on the host; and
 * that IP must be on one of the host's interfaces, or the node would advertise an address it does not have (on a
 * host with two NICs, the hosts-file address is the one on the cluster network). A host with no default route
 * gets no line: that is normal in an air gap.
 */
export function nodeAddressProblems(host: { label: string; address: string; ip: string | undefined; interfaces: InterfaceAddress[] }): string[] {
  if (!host.ip) {
    return [`${host.label}: ${shown(host.address)} (hosts file) does not resolve to an IPv4 address on the host (getent ahostsv4): list the host by its address, or add the name to the host's /etc/hosts`];
  }
  if (host.interfaces.length === 0 || host.interfaces.some((i) => i.address === host.ip)) return [];
  const on = host.interfaces.filter((i) => i.iface !== 'lo').map((i) => `${i.iface} ${i.address}/${i.prefix}`).join(', ');
  return [`${host.label}: its address ${host.ip} is on none of its interfaces (${on || 'none but lo'}): list the host by the address it has on the cluster network`];
}
