/**
 * `bundle install`: from a verified bundle to a running cluster, over SSH, with nothing from the internet.
 *
 * Before anything changes: the bundle is verified here, every host is connected to and examined, and every
 * problem of every host is reported together. Then an ordered list of phases (see phases.ts) runs, each host of
 * a phase in parallel. Each host keeps a journal of the phases done on it, so a re-run resumes where a failure
 * stopped, changes nothing after a success, and joins a host newly added to the hosts file without touching
 * the rest.
 */
import { stat } from 'node:fs/promises';
import { UserError } from '../../util/errors.js';
import type { BundleManifest } from '../bundle/manifest.js';
import { manifestFile } from '../bundle/paths.js';
import { assertBundleVerified } from '../bundle/verify.js';
import { loadTarget, type Runtime } from '../definitions.js';
import { parseKubeVersion, type KubeVersion } from '../kube-version.js';
import { connect, type Connection } from '../ssh/connection.js';
import { Secrets, shQuote } from '../ssh/command.js';
import { gatherFacts, preflightProblems, type Facts } from './facts.js';
import { checkHaOptions, describeHa, haEndpoint, haPreflight, planHa, type HaPlan } from './ha.js';
import { isValidNodeName, readHostsFile, type HostSpec } from './hosts.js';
import { checkNetworkFlags, formatEndpoint, nodeAddressProblems, parseEndpoint, parseIp } from './validate.js';
import { osFor, type HostOS } from './os.js';
import { CHECK_BUNDLE_PHASE, installPhases } from './phases-install.js';
import { checkClusterSettings } from './settings.js';
import { runPhases, type PhaseEvent, type RunResult } from './phases.js';

export interface InstallOptions {
  hostsFile: string;
  bundle?: string;
  pubkey?: string;
  allowUnsigned: boolean;
  identity?: string;
  user: string;
  knownHosts: string;
  acceptNewHostKeys: boolean;
  runtime: Runtime;
  podCidr: string;
  serviceCidr: string;
  controlPlaneEndpoint?: string;
  /** a virtual address for the control-plane endpoint, held by keepalived, served by haproxy (ha.ts) */
  vip?: string;
  registryPort: number;
  concurrency: number;
  dryRun: boolean;
  signal?: AbortSignal;
  /** one line per host per phase, and what the install says along the way */
  log(line: string): void;
}

/** One host of the install. */
export interface Node {
  spec: HostSpec;
  /** "h1 (10.77.0.11)": how every message names the host */
  label: string;
  conn: Connection;
  facts: Facts;
  /** the Kubernetes node name: name= from the hosts file, else the host's own name */
  name: string;
  /**
   * the node's IPv4 address: the hosts-file address, or what its DNS name resolves to on the host itself (empty
   * when it does not: refused in preflight). kubeadm's advertiseAddress, the kubelet's --node-ip, /etc/hosts.
   */
  ip: string;
}

export interface ClusterSecrets {
  token: string;
  certificateKey: string;
}

/** Everything the phases share. */
export interface InstallContext {
  options: InstallOptions;
  bundleFile: string;
  /** of the whole file, from the verify pass: each host checks its upload against it */
  bundleSha256: string;
  /** of SHA256SUMS, from the verify pass: each host checks its unpacked tree against it (bundle-on-host.ts) */
  sumsSha256: string;
  /** hosts whose unpacked bundle was checked in this run already */
  bundleChecked: Set<Node>;
  manifest: BundleManifest;
  version: KubeVersion;
  flannelManifest: string;
  /** the signer's armored public key, installed as the apt keyring of the bundle's repository; undefined when unsigned */
  signerKey: string | undefined;
  os: HostOS;
  nodes: Node[];
  controlPlanes: Node[];
  workers: Node[];
  firstControlPlane: Node;
  registryNode: Node;
  /** host:port of the seeded registry, as every node reaches it */
  registry: string;
  /** host:port of the API server for joins */
  endpoint: string;
  /** the virtual control-plane address, with --vip */
  ha?: HaPlan;
  secrets: Secrets;
  /** set by the init phase, or read back from the first control plane on a re-run */
  cluster?: ClusterSecrets;
  caCertHash?: string;
}

export interface InstallSummary {
  ok: boolean;
  dryRun: boolean;
  changed: boolean;
  cancelled: boolean;
  nodes: { name: string; address: string; role: string }[];
  kubeconfig: string;
  phases: { title: string; status: string; seconds: number; hosts: { host: string; status: string; error?: string; plan?: string[] }[] }[];
  seconds: number;
}


export async function install(given: InstallOptions): Promise<InstallSummary> {
  const started = Date.now();
  // values that end up in the hosts' files are checked where they enter: before the bundle is read or a host contacted
  const options: InstallOptions = { ...given, ...checkNetworkFlags(given) };
  const specs = readHostsFile(options.hostsFile);
  const bundleFile = options.bundle ?? (await findBundle());
  if (!options.pubkey && !options.allowUnsigned) {
    throw new UserError('no --pubkey: install checks the bundle\'s signature against the signer you trust', 'pass --pubkey signer.pub.asc (or --allow-unsigned for a bundle built with --unsigned)');
  }

  options.log(`Verifying ${bundleFile}`);
  // One pass: the file's sha256 (which every host checks its upload against), bundle.yaml and flannel's manifest
  // all come from the reading that was verified, never from a second read of a file that may have changed since.
  const flannelPath = manifestFile('kube-flannel.yml');
  const report = await assertBundleVerified({ file: bundleFile, ...(options.pubkey ? { pubkeyFile: options.pubkey } : {}), allowUnsigned: options.allowUnsigned, keep: [flannelPath] });
  const { manifest, sha256: bundleSha256, sumsSha256 } = report;
  const flannel = report.kept.get(flannelPath);
  if (!manifest || !bundleSha256 || !sumsSha256 || !flannel) throw new UserError(`${bundleFile} has no ${flannelPath}: is it a kube-bundle bundle of this release?`);
  options.log(`  OK: Kubernetes ${manifest.kubernetesVersion} for ${manifest.target}, ${report.signer ? `signed by ${report.signer}` : 'UNSIGNED'}`);
  if (!manifest.runtimes.includes(options.runtime)) {
    throw new UserError(`the bundle carries the ${manifest.runtimes.join(', ')} runtime, not ${options.runtime}`, `rebuild with --runtime ${options.runtime} or install with --runtime ${manifest.runtimes[0]}`);
  }
  const target = loadTarget(manifest.target);
  const os = osFor(target);
  checkHaOptions({ vip: options.vip, specs, hostsFile: options.hostsFile, controlPlaneEndpoint: options.controlPlaneEndpoint, bundleFile, manifest, haPackages: target.packages.ha });

  const secrets = new Secrets();
  options.log(`Connecting to ${specs.length} host(s)`);
  const nodes = await connectAll(specs, options, secrets);
  const ctx = buildContext(options, nodes, { bundleFile, bundleSha256, sumsSha256, manifest, flannelManifest: flannel.toString('utf8'), os, secrets, signerKey: report.publicKeyArmored ?? undefined });
  if (ctx.ha) options.log(describeHa(ctx.ha));

  try {
    const problems = preflightProblems(
      nodes.map((n) => ({ label: n.label, role: n.spec.role, facts: n.facts, nodeName: n.name, address: n.spec.address })),
      {
        targetOs: target.os,
        targetVersion: target.version,
        arches: manifest.arches,
        bundleMiB: Math.ceil((await stat(bundleFile)).size / 2 ** 20),
        registryPort: options.registryPort,
        registryLabel: ctx.registryNode.label,
        podCidr: options.podCidr,
        serviceCidr: options.serviceCidr,
      },
    );
    for (const n of nodes) problems.push(...nodeAddressProblems({ label: n.label, address: n.spec.address, ip: n.ip, interfaces: n.facts.addresses }));
    problems.push(...(await haPreflight(ctx)));
    await checkClusterSettings(ctx);
    if (problems.length) {
      throw new UserError(`preflight found ${problems.length} problem(s); nothing was changed:\n  ${problems.join('\n  ')}`);
    }
    const result = await runPhases(installPhases(), nodes, {
      ctx,
      concurrency: options.concurrency,
      dryRun: options.dryRun,
      ...(options.signal ? { signal: options.signal } : {}),
      onEvent: (e) => logEvent(e, options.log),
    });
    return summarize(ctx, result, started);
  } finally {
    await Promise.allSettled(nodes.map((n) => n.conn.close()));
  }
}

/** Connect to every host at once; every host that cannot be reached is reported, and nothing is changed. */
async function connectAll(specs: HostSpec[], options: InstallOptions, secrets: Secrets): Promise<Node[]> {
  const results = await Promise.allSettled(
    specs.map(async (spec): Promise<Node> => {
      const label = spec.name ? `${spec.name} (${spec.address})` : spec.address;
      const conn = await connect(
        { host: spec.address, port: spec.port ?? 22, user: spec.user ?? options.user, label, ...((spec.identity ?? options.identity) ? { identityFile: spec.identity ?? options.identity } : {}) },
        { knownHostsFile: options.knownHosts, acceptNewHostKeys: options.acceptNewHostKeys, secrets },
      );
      try {
        const facts = await gatherFacts(conn);
        const ip = await resolveOnHost(conn, spec.address);
        const name = spec.name ?? facts.hostname.toLowerCase();
        // a hostname that is no valid node name is refused by the preflight; until then the host goes by its address
        return { spec, label: spec.name || !isValidNodeName(name) ? label : `${name} (${spec.address})`, conn, facts, name, ip };
      } catch (err) {
        await conn.close();
        throw err;
      }
    }),
  );
  const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${specs[i]!.address} (${options.hostsFile}:${specs[i]!.line}): ${(r.reason as Error).message}`] : []));
  const nodes = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  if (failures.length) {
    await Promise.allSettled(nodes.map((n) => n.conn.close()));
    const hint = failures.some((f) => /host key/i.test(f)) ? 'check the host keys; --accept-new-host-keys records unknown ones (a changed key is always refused)' : undefined;
    throw new UserError(`cannot reach ${failures.length} of ${specs.length} host(s); nothing was changed:\n  ${failures.join('\n  ')}`, hint);
  }
  return nodes;
}

function buildContext(
  options: InstallOptions,
  nodes: Node[],
  bundle: Pick<InstallContext, 'bundleFile' | 'bundleSha256' | 'sumsSha256' | 'manifest' | 'flannelManifest' | 'os' | 'secrets' | 'signerKey'>,
): InstallContext {
  const controlPlanes = nodes.filter((n) => n.spec.role === 'control-plane');
  const firstControlPlane = controlPlanes[0];
  if (!firstControlPlane) throw new UserError(`${options.hostsFile} lists no control-plane host`);
  const registryNode = nodes.find((n) => n.spec.role === 'registry') ?? firstControlPlane;
  const ha = options.vip ? planHa(options.vip, nodes) : undefined;
  const endpoint = ha ? haEndpoint(ha) : options.controlPlaneEndpoint ? withPort(options.controlPlaneEndpoint, 6443) : `${hostForUrl(firstControlPlane.spec.address)}:6443`;
  return {
    options,
    ...bundle,
    version: parseKubeVersion(bundle.manifest.kubernetesVersion),
    nodes,
    controlPlanes,
    workers: nodes.filter((n) => n.spec.role === 'worker'),
    firstControlPlane,
    registryNode,
    registry: `${hostForUrl(registryNode.spec.address)}:${options.registryPort}`,
    bundleChecked: new Set(),
    endpoint,
    ...(ha ? { ha } : {}),
  };
}

function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

/** host[:port] as validate.ts reads it (a DNS name like `cafe:6443` is not an IPv6 address), with the port defaulted. */
function withPort(endpoint: string, port: number): string {
  const e = parseEndpoint(endpoint);
  return 'problem' in e ? endpoint : formatEndpoint({ ...e, port: e.port ?? port });
}

/** An IP address as it is; a DNS name as the host itself resolves it (its first IPv4 address), or '' when it does not. */
async function resolveOnHost(conn: Connection, address: string): Promise<string> {
  if (parseIp(address)) return address;
  const r = await conn.exec(`getent ahostsv4 -- ${shQuote(address)} | awk 'NR == 1 { print $1 }'`);
  return parseIp(r.stdout.trim())?.family === 4 ? r.stdout.trim() : '';
}

async function findBundle(): Promise<string> {
  const { readdir } = await import('node:fs/promises');
  const found = (await readdir('.')).filter((f) => /^kube-bundle-.*\.tar$/.test(f));
  if (found.length === 1) return found[0]!;
  throw new UserError(
    found.length === 0 ? 'no kube-bundle-*.tar in the working directory' : `several bundles in the working directory: ${found.join(', ')}`,
    'name the bundle with --bundle <file>',
  );
}

function logEvent(event: PhaseEvent<Node>, log: (line: string) => void): void {
  switch (event.type) {
    case 'phase-start':
      log(`• ${event.title}`);
      break;
    case 'host-end': {
      const r = event.result;
      const seconds = (r.durationMs / 1000).toFixed(1);
      if (r.status === 'ok') log(`  ✓ ${r.host.label} (${seconds}s)`);
      else if (r.status === 'skipped') log(`  – ${r.host.label}: already done`);
      else if (r.status === 'failed') log(`  ✗ ${r.host.label}: ${(r.error as Error)?.message ?? r.error}`);
      for (const line of r.plan ?? []) log(`    ${r.host.label}$ ${line}`);
      break;
    }
    default:
      break;
  }
}

function summarize(ctx: InstallContext, result: RunResult<Node>, started: number): InstallSummary {
  const changed = result.phases.some((p) => p.hosts.some((h) => h.status === 'ok' && !READ_ONLY_PHASES.has(p.title)));
  return {
    ok: result.ok,
    dryRun: ctx.options.dryRun,
    changed: changed && !ctx.options.dryRun,
    cancelled: result.cancelled,
    nodes: ctx.nodes.map((n) => ({ name: n.name, address: n.spec.address, role: n.spec.role })),
    kubeconfig: `${ctx.firstControlPlane.label}:/etc/kubernetes/admin.conf (also /root/.kube/config there)`,
    phases: result.phases.map((p) => ({
      title: p.title,
      status: p.status,
      seconds: p.durationMs / 1000,
      hosts: p.hosts.map((h) => ({
        host: h.host.label,
        status: h.status,
        ...(h.error ? { error: ctx.secrets.redact((h.error as Error).message ?? String(h.error)) } : {}),
        ...(h.plan ? { plan: h.plan } : {}),
      })),
    })),
    seconds: (Date.now() - started) / 1000,
  };
}

/** Phases that only look: they run every time and do not count as a change. */
export const READ_ONLY_PHASES = new Set(['Check the cluster', CHECK_BUNDLE_PHASE]);

export function formatSummary(s: InstallSummary): string {
  const lines: string[] = [];
  if (s.dryRun) {
    lines.push('Dry run: nothing was changed.');
    return lines.join('\n') + '\n';
  }
  const failed = s.phases.flatMap((p) => p.hosts.filter((h) => h.status === 'failed').map((h) => ({ phase: p.title, ...h })));
  if (s.ok) lines.push(s.changed ? 'Cluster installed.' : 'Nothing to do: every host is already as installed.');
  else if (s.cancelled) lines.push('Install stopped (interrupted); run it again to resume.');
  else lines.push(`Install failed on ${failed.length} host(s); run it again to resume after fixing:`);
  for (const f of failed) lines.push(`  ${f.host} — ${f.phase}:\n    ${(f.error ?? '').split('\n').join('\n    ')}`);
  lines.push('', 'Nodes:');
  for (const n of s.nodes) lines.push(`  ${n.name.padEnd(20)} ${n.address.padEnd(16)} ${n.role}`);
  lines.push('', `kubeconfig: ${s.kubeconfig}`, '', 'Time per phase:');
  // phases with no host in this layout (no HA, one control plane) are left out
  const phases = s.phases.filter((p) => p.hosts.length > 0 || p.status !== 'ok');
  const width = Math.max(...phases.map((p) => p.title.length), 5);
  const status = (p: InstallSummary['phases'][number]) => (p.status === 'ok' && p.hosts.every((h) => h.status === 'skipped') ? 'done before' : p.status);
  for (const p of phases) lines.push(`  ${p.title.padEnd(width)}  ${status(p).padEnd(11)} ${p.seconds.toFixed(1)}s`);
  lines.push(`  ${'total'.padEnd(width + 13)} ${s.seconds.toFixed(1)}s`);
  return lines.join('\n') + '\n';
}

