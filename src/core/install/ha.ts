/**
 * A highly available control-plane address, `bundle install --vip`: keepalived holds a virtual IPv4 address with
 * VRRP, haproxy beside it forwards TCP to every API server, and the cluster uses <vip>:<port> as its
 * control-plane endpoint (kubeadm's controlPlaneEndpoint, the joins' apiServerEndpoint, a certSAN).
 *
 * The holders are the hosts file's `lb` hosts when it lists any (haproxy on 6443), else the control planes
 * themselves (haproxy on 8443, beside the API server's 6443). A single holder is allowed: the address then gives
 * no failover yet, but it is the stable endpoint that control planes added later join through, and kubeadm
 * cannot change a cluster's endpoint after init.
 */
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { UserError } from '../../util/errors.js';
import type { BundleManifest } from '../bundle/manifest.js';
import { foreignPortsProblem, HAPROXY_CONFIG, KEEPALIVED_CONFIG } from './facts.js';
import { ETC } from './host-paths.js';
import type { HostSpec } from './hosts.js';
import type { HaPlan, InstallContext, InstallHost } from './context.js';
import type { Phase } from './phase-runner.js';
import { hostScript } from './phases/steps.js';
import { renderTemplate } from './render.js';
import { isValidNodeName, NODE_NAME_RULE, shown, type InterfaceAddress } from './validate.js';

/** haproxy's port on dedicated lb hosts: the API server's own */
const LB_HOST_PORT = 6443;
/** haproxy's port when it shares the control planes with the API servers, which hold 6443 */
const CONTROL_PLANE_HOST_PORT = 8443;
/** where every control plane's API server listens */
const API_SERVER_PORT = 6443;
/** where install puts both configs before setup-lb.sh checks them and moves them into place */
const STAGING_DIR = `${ETC}/ha`;
/**
 * setup-lb.sh writes the sha256 of both configs here (`sha256sum` output) once both services were reloaded with
 * them: a config in place that a cut run never reloaded is not mistaken for a running one.
 */
const APPLIED_SUMS = `${STAGING_DIR}/applied.sha256`;
/** the first holder's VRRP priority; each next one in the hosts file gets one less */
const TOP_PRIORITY = 150;
const VIP_WAIT_SECONDS = 60;

export interface HaCheckInput {
  vip: string | undefined;
  specs: HostSpec[];
  hostsFile: string;
  controlPlaneEndpoint: string | undefined;
  bundleFile: string;
  manifest: BundleManifest;
  /** the target's `packages.ha` (haproxy, keepalived) */
  haPackages: string[];
}

/** What can be checked before any host is contacted: the address, the other options, the hosts file, the bundle. */
export function checkHaOptions(input: HaCheckInput): void {
  const { vip, specs, hostsFile } = input;
  if (vip === undefined) {
    const lb = specs.find((s) => s.role === 'lb');
    if (lb) throw new UserError(`${hostsFile}:${lb.line}: an lb host, but no --vip for it to hold`, 'add --vip <address>, or remove the lb hosts');
    return;
  }
  if (!isIPv4(vip)) {
    throw new UserError(`--vip ${vip}: not an IPv4 address`, 'the virtual address is an unused IPv4 address on the hosts\' network, e.g. --vip 10.0.0.10 (IPv6 is not supported)');
  }
  if (input.controlPlaneEndpoint !== undefined) {
    throw new UserError('--vip and --control-plane-endpoint both name the control-plane endpoint', `drop --control-plane-endpoint: with --vip the endpoint is ${vip}:<haproxy port>`);
  }
  const taken = specs.find((s) => s.address === vip);
  if (taken) throw new UserError(`--vip ${vip} is the address of a host (${hostsFile}:${taken.line})`, 'the virtual address must be one no host has');
  const carried = new Set(input.manifest.components.packages.map((p) => p.name));
  const missing = input.haPackages.filter((p) => !carried.has(p));
  if (missing.length) {
    throw new UserError(`--vip needs ${input.haPackages.join(' and ')}, and ${input.bundleFile} carries no ${missing.join(', ')} (see its bundle.yaml)`, 'build the bundle with `bundle build ... --ha`');
  }
}

/** Who holds the address and on which port: lb hosts when there are any, else the control planes. */
export function planHa(vip: string, nodes: InstallHost[]): HaPlan {
  const lbs = nodes.filter((n) => n.spec.role === 'lb');
  return {
    vip,
    port: lbs.length ? LB_HOST_PORT : CONTROL_PLANE_HOST_PORT,
    holders: lbs.length ? lbs : nodes.filter((n) => n.spec.role === 'control-plane'),
    links: new Map(),
  };
}

export function haEndpoint(plan: HaPlan): string {
  return `${plan.vip}:${plan.port}`;
}

/** One line for the install log. */
export function describeHa(plan: HaPlan): string {
  const where = plan.holders[0]?.spec.role === 'lb' ? 'the lb hosts' : 'the control planes';
  const single = plan.holders.length === 1 ? '; one holder: no failover until more are added' : '';
  return `Control-plane address ${haEndpoint(plan)}: haproxy + keepalived on ${where} (${plan.holders.map((h) => h.name).join(', ')})${single}`;
}

/** Does this host run haproxy and keepalived? */
export function isHaHolder(ctx: InstallContext, host: InstallHost): boolean {
  return ctx.ha?.holders.includes(host) ?? false;
}

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function networkOf(address: string, prefix: number): number {
  const size = 2 ** (32 - prefix);
  return Math.floor(ipv4ToInt(address) / size) * size;
}

function cidr(link: InterfaceAddress): string {
  const n = networkOf(link.address, link.prefix);
  return `${[24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.')}/${link.prefix}`;
}

function inSubnet(address: string, link: InterfaceAddress): boolean {
  return networkOf(address, link.prefix) === networkOf(link.address, link.prefix);
}

/**
 * The holder's link on the address's network: the interface holding the host's own address (as the hosts file
 * names it); for a host named by DNS, the interface whose subnet has the virtual address.
 */
function holderLink(links: InterfaceAddress[], hostAddress: string, vip: string): InterfaceAddress | undefined {
  const own = links.filter((l) => l.address !== vip && l.iface !== 'lo');
  return isIPv4(hostAddress) ? own.find((l) => l.address === hostAddress) : own.find((l) => inSubnet(vip, l));
}

/** Problems with the virtual address on one holder; empty when it can hold it. */
export function linkProblems(links: InterfaceAddress[], hostAddress: string, vip: string, ours: boolean): string[] {
  const link = holderLink(links, hostAddress, vip);
  if (!link) {
    return [isIPv4(hostAddress) ? `no interface has the address ${hostAddress} (ip -o -4 addr show)` : `no interface is on the network of --vip ${vip}`];
  }
  const problems: string[] = [];
  if (!inSubnet(vip, link)) {
    problems.push(`--vip ${vip} is not in ${link.iface}'s subnet ${cidr(link)}: the virtual address must be on the holders' network`);
  } else if (link.prefix < 31) {
    const size = 2 ** (32 - link.prefix);
    const offset = ipv4ToInt(vip) - networkOf(vip, link.prefix);
    if (offset === 0 || offset === size - 1) problems.push(`--vip ${vip} is the ${offset === 0 ? 'network' : 'broadcast'} address of ${cidr(link)}`);
  }
  const held = links.find((l) => l.address === vip);
  if (held && !ours) problems.push(`already has ${vip} on ${held.iface}, not from kube-bundle's keepalived: is the address in use?`);
  return problems;
}

/**
 * Looks at every holder, from its facts: its link to the address's network (kept in the plan for the configs), the
 * address not already taken (unless by kube-bundle's keepalived), haproxy's port free (unless kube-bundle's haproxy
 * holds it). Returns the problems, one line each naming the host.
 */
export function haPreflight(ctx: Pick<InstallContext, 'ha'>): string[] {
  const plan = ctx.ha;
  if (!plan) return [];
  return plan.holders.flatMap((host) => {
    const f = host.facts;
    const links = f.addresses.filter((a) => isIPv4(a.address));
    const problems = linkProblems(links, host.spec.address, plan.vip, f.ours.keepalivedConfigured);
    const link = holderLink(links, host.spec.address, plan.vip);
    if (link) plan.links.set(host, link);
    const busy = foreignPortsProblem([[plan.port, 'haproxy']], f, " (haproxy's, for the control-plane address)");
    if (busy) problems.push(busy);
    return problems.map((p) => `${host.label}: ${p}`);
  });
}

/** VRRP's virtual router id (1-255), from the address, so that every holder agrees on it. */
export function virtualRouterId(vip: string): number {
  return Number(vip.split('.')[3]) || 255;
}

export interface Backend {
  name: string;
  address: string;
}

/**
 * Node names go into haproxy.cfg and keepalived.conf as bare words: one that is not a valid node name (which the
 * hosts file and the preflight refuse) could add a directive, so rendering refuses it too.
 */
function checkedName(name: string): string {
  if (!isValidNodeName(name)) throw new Error(`node name ${shown(name)} reached the haproxy/keepalived configs unchecked: ${NODE_NAME_RULE}`);
  return name;
}

export function haproxyConfig(plan: HaPlan, backends: Backend[]): string {
  return renderTemplate('ha/haproxy.cfg', {
    endpoint: haEndpoint(plan),
    port: String(plan.port),
    servers: backends.map((b) => `    server ${checkedName(b.name)} ${b.address}:${API_SERVER_PORT}`).join('\n'),
  });
}

function linkOf(plan: HaPlan, holder: InstallHost): InterfaceAddress {
  const link = plan.links.get(holder);
  if (!link) throw new Error(`${holder.label}: its interface for ${plan.vip} is not known (the preflight did not run on it)`);
  return link;
}

export function keepalivedConfig(plan: HaPlan, holder: InstallHost): string {
  const link = linkOf(plan, holder);
  const peers = plan.holders.filter((h) => h !== holder).map((h) => linkOf(plan, h).address);
  // with no peer keepalived wants no unicast keywords (and would fall back to multicast with a warning)
  const unicast = peers.length
    ? [`    unicast_src_ip ${link.address}`, '    unicast_peer {', ...peers.map((p) => `        ${p}`), '    }'].join('\n')
    : '    # the only holder: no peer to advertise to';
  return renderTemplate('ha/keepalived.conf', {
    hostName: checkedName(holder.name),
    vip: plan.vip,
    routerId: String(virtualRouterId(plan.vip)),
    interface: link.iface,
    priority: String(priorityOf(plan, holder)),
    unicast,
  });
}

function priorityOf(plan: HaPlan, holder: InstallHost): number {
  return TOP_PRIORITY - plan.holders.indexOf(holder);
}

function backendsOf(ctx: InstallContext): Backend[] {
  return ctx.controlPlanes.map((n) => ({ name: n.name, address: n.spec.address }));
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Exit 0 when the host has exactly these configs, both services were reloaded with them, and both run. */
export function upToDateCommand(haproxy: string, keepalived: string): string {
  const sums = `${sha256(haproxy)}  ${HAPROXY_CONFIG}\\n${sha256(keepalived)}  ${KEEPALIVED_CONFIG}\\n`;
  // one unit per is-active: given several, it succeeds when any one is active
  return [
    `printf '${sums}' | sha256sum --check --status 2>/dev/null`,
    `printf '${sums}' | cmp -s - ${APPLIED_SUMS}`,
    'systemctl is-active --quiet haproxy.service',
    'systemctl is-active --quiet keepalived.service',
  ].join(' && ');
}

/** Until a TCP connect to the address succeeds: some holder has it and haproxy answers there. */
function waitForAddressCommand(plan: HaPlan): string {
  return `timeout ${VIP_WAIT_SECONDS} bash -c 'until (exec 3<>/dev/tcp/${plan.vip}/${plan.port}) 2>/dev/null; do sleep 0.5; done'`;
}

/**
 * Writes haproxy's and keepalived's configs on every holder and (re)starts both; then waits until the address
 * answers. Runs when a holder's configs differ from what this install renders (a control plane or holder was
 * added) or a service is not running, so a re-run converges and otherwise changes nothing. Before kubeadm init:
 * init and the joins already go through the address.
 */
export function haPhase(): Phase<InstallHost, InstallContext> {
  const setupScript = (ctx: InstallContext) => hostScript(ctx, 'setup-lb.sh');
  const configs = (host: InstallHost, ctx: InstallContext) => {
    const plan = ctx.ha!;
    return { plan, haproxy: haproxyConfig(plan, backendsOf(ctx)), keepalived: keepalivedConfig(plan, host) };
  };
  return {
    title: 'Set up the control-plane address (haproxy + keepalived)',
    hosts: (_all, ctx) => ctx.ha?.holders ?? [],
    async shouldRun(host, ctx) {
      const { haproxy, keepalived } = configs(host, ctx);
      return (await host.conn.exec(upToDateCommand(haproxy, keepalived))).code !== 0;
    },
    async run(host, ctx) {
      const { plan, haproxy, keepalived } = configs(host, ctx);
      await host.conn.uploadBytes(haproxy, `${STAGING_DIR}/haproxy.cfg`);
      await host.conn.uploadBytes(keepalived, `${STAGING_DIR}/keepalived.conf`);
      await host.conn.run(`${setupScript(ctx)} ${STAGING_DIR}`, { timeoutMs: 2 * 60_000 });
      const wait = await host.conn.exec(waitForAddressCommand(plan));
      if (wait.code !== 0) {
        const log = await host.conn.exec('journalctl -u keepalived.service -n 15 --no-pager -o cat');
        throw new Error(
          `${host.label}: ${haEndpoint(plan)} did not answer within ${VIP_WAIT_SECONDS}s: no holder took the address, or haproxy does not listen` +
            ` (VRRP, IP protocol 112, must pass between ${plan.holders.map((h) => h.spec.address).join(', ')}); keepalived here says:\n${log.stdout.trim()}`,
        );
      }
    },
    dryRun(host, ctx) {
      const { plan, haproxy, keepalived } = configs(host, ctx);
      const link = linkOf(plan, host);
      return [
        `write ${STAGING_DIR}/haproxy.cfg (${haproxy.length} bytes: :${plan.port} → ${backendsOf(ctx).map((b) => `${b.address}:${API_SERVER_PORT}`).join(', ')})`,
        `write ${STAGING_DIR}/keepalived.conf (${keepalived.length} bytes: ${plan.vip} on ${link.iface}, priority ${priorityOf(plan, host)})`,
        `${setupScript(ctx)} ${STAGING_DIR}`,
        waitForAddressCommand(plan),
      ];
    },
  };
}

/** Through admin.conf, whose server is the control-plane address. */
const API_PROBE = 'kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o name';
const API_WAIT_SECONDS = 120;

/**
 * After kubeadm init: until the API server answers through the address. haproxy marked every server down before
 * init (none listened yet) and takes a few seconds of checks to bring the first one back; whatever runs next
 * (flannel, the joins) goes through the address. Skipped, as unchanged, when it answers at once.
 */
export function haApiPhase(): Phase<InstallHost, InstallContext> {
  return {
    title: 'Wait for the API server through the control-plane address',
    hosts: (_all, ctx) => (ctx.ha ? [ctx.firstControlPlane] : []),
    async shouldRun(host) {
      return (await host.conn.exec(API_PROBE)).code !== 0;
    },
    async run(host, ctx) {
      const waited = await host.conn.exec(`timeout ${API_WAIT_SECONDS} sh -c 'until ${API_PROBE} >/dev/null 2>&1; do sleep 1; done'`);
      if (waited.code !== 0) {
        const last = await host.conn.exec(`${API_PROBE} 2>&1 >/dev/null`);
        throw new Error(`${host.label}: the API server did not answer through ${haEndpoint(ctx.ha!)} within ${API_WAIT_SECONDS}s: ${last.stdout.trim()}`);
      }
    },
    dryRun: (_host, ctx) => [`${API_PROBE}   (until the API server answers through ${haEndpoint(ctx.ha!)})`],
  };
}
