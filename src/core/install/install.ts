/**
 * `bundle install`: from a verified bundle to a running cluster, over SSH, with nothing from the internet.
 *
 * Before anything changes: the bundle is verified here, every host is connected to and examined, and every
 * problem of every host is reported together. Then the install's phases run, in the order phases/index.ts lists
 * them, each host of a phase in parallel. Each host keeps a journal of the phases done on it, so a re-run resumes where a failure
 * stopped, changes nothing after a success, and joins a host newly added to the hosts file without touching
 * the rest.
 */
import { stat } from 'node:fs/promises';
import { UserError } from '../../util/errors.js';
import { manifestFile, PACKAGES_DIR } from '../bundle/paths.js';
import { assertBundleVerified, type VerifyReport } from '../bundle/verify.js';
import type { BundleManifest } from '../bundle/manifest.js';
import { loadComponents, loadTarget } from '../definitions.js';
import { parseKubeVersion } from '../kube-version.js';
import type { Connection } from '../ssh/connection.js';
import { Secrets, shQuote } from '../ssh/command.js';
import { connectAll, connectToHost, specLabel } from './connect.js';
import type { InstallContext, InstallHost, InstallOptions } from './context.js';
import { gatherFacts, preflightProblems } from './facts.js';
import { checkOpenFiles } from './limits.js';
import { checkHaOptions, describeHa, haEndpoint, haPreflight, planHa } from './ha.js';
import { isValidNodeName, readHostsFile, type HostSpec } from './hosts.js';
import { checkNetworkFlags, formatEndpoint, nodeAddressProblems, parseEndpoint, parseIp } from './validate.js';
import { osFor } from './os.js';
import { runPhases } from './phase-runner.js';
import { installPhases } from './phases/index.js';
import type { InstallPhase } from './phases/steps.js';
import type { PhaseReporter } from './phase-report.js';
import { checkClusterSettings } from './settings.js';
import { installReporter, summarize, type InstallSummary } from './summary.js';

/** The repository's index: what each host stores of the bundle is its packages' closure over it (payload.ts). */
const PACKAGES_INDEX = `${PACKAGES_DIR}/Packages`;

export async function install(given: InstallOptions): Promise<InstallSummary> {
  const started = Date.now();
  // values that end up in the hosts' files are checked where they enter: before the bundle is read or a host contacted
  const options: InstallOptions = { ...given, ...checkNetworkFlags(given) };
  // every line goes through the reporter, which keeps a redrawn count line below them on a terminal
  const reporter = installReporter(given);
  options.log = reporter.print;
  const specs = readHostsFile(options.hostsFile);
  const bundleFile = options.bundle ?? (await findBundle());
  if (!options.pubkey && !options.allowUnsigned) {
    throw new UserError('no --pubkey: install checks the bundle\'s signature against the signer you trust', 'pass --pubkey signer.pub.asc (or --allow-unsigned for a bundle built with --unsigned)');
  }

  const { bundle, manifest } = await verifyForHosts(bundleFile, options);
  if (manifest.base) {
    throw new UserError(`${bundleFile} is a differential bundle (only what its base ${manifest.base.kubernetesVersion} lacks): it upgrades a cluster, it cannot install one`, 'install from a full bundle; `bundle upgrade` takes this one');
  }
  if (!manifest.runtimes.includes(options.runtime)) {
    throw new UserError(`the bundle carries the ${manifest.runtimes.join(', ')} runtime, not ${options.runtime}`, `rebuild with --runtime ${options.runtime} or install with --runtime ${manifest.runtimes[0]}`);
  }
  const target = loadTarget(manifest.target);
  const os = osFor(target, loadComponents().kubernetes.packages);
  checkHaOptions({ vip: options.vip, specs, hostsFile: options.hostsFile, controlPlaneEndpoint: options.controlPlaneEndpoint, bundleFile, manifest, haPackages: target.packages.ha });

  const secrets = new Secrets();
  checkOpenFiles(specs.length, options.concurrency);
  options.log(`Connecting to ${specs.length} host(s)`);
  const nodes = await connectAndExamine(specs, options, secrets);
  const ctx = buildContext(options, nodes, { ...bundle, os, secrets, progress: reporter });
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
        registryLabel: ctx.registryHost.label,
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
    return await runSitePhases(installPhases(), ctx, reporter, started);
  } finally {
    reporter.close();
    await Promise.allSettled(nodes.map((n) => n.conn.close()));
  }
}

/** Run the phases over the context's hosts, as the options say (concurrency, dry run, Ctrl-C), into the summary. */
export async function runSitePhases(phases: InstallPhase[], ctx: InstallContext, reporter: PhaseReporter<InstallHost>, started: number): Promise<InstallSummary> {
  const { options } = ctx;
  const result = await runPhases(phases, ctx.hosts, {
    ctx,
    concurrency: options.concurrency,
    dryRun: options.dryRun,
    ...(options.signal ? { signal: options.signal } : {}),
    onEvent: reporter.onEvent,
  });
  return summarize(ctx, result, started, reporter);
}

/** What verify gives the phases of a bundle about to go to the hosts. */
export type VerifiedBundle = Pick<InstallContext, 'bundleFile' | 'bundleSha256' | 'sumsSha256' | 'tree' | 'manifest' | 'flannelManifest' | 'signerKey'>;

/**
 * One pass: the file's sha256 (which every host checks its upload against), SHA256SUMS, bundle.yaml, flannel's
 * manifest and the repository's index all come from the reading that was verified, never from a second read of a
 * file that may have changed since.
 */
export async function verifyForHosts(bundleFile: string, options: Pick<InstallOptions, 'pubkey' | 'allowUnsigned' | 'log'>): Promise<{ bundle: VerifiedBundle; manifest: BundleManifest; report: VerifyReport }> {
  options.log(`Verifying ${bundleFile}`);
  const flannelPath = manifestFile('kube-flannel.yml');
  const report = await assertBundleVerified({ file: bundleFile, ...(options.pubkey ? { pubkeyFile: options.pubkey } : {}), allowUnsigned: options.allowUnsigned, keep: [flannelPath, PACKAGES_INDEX] });
  const { manifest, sha256: bundleSha256, sumsSha256, sums } = report;
  const flannel = report.kept.get(flannelPath);
  const packagesIndex = report.kept.get(PACKAGES_INDEX);
  // a differential bundle leaves out what its base has: flannel's manifest too, when it did not change
  const flannelLeftToBase = manifest?.base !== undefined && !sums?.has(flannelPath);
  if (!manifest || !bundleSha256 || !sumsSha256 || !sums || !(flannel || flannelLeftToBase) || !packagesIndex) throw new UserError(`${bundleFile} has no ${packagesIndex ? flannelPath : PACKAGES_INDEX}: is it a kube-bundle bundle of this release?`);
  options.log(`  OK: Kubernetes ${manifest.kubernetesVersion} for ${manifest.target}, ${report.signer ? `signed by ${report.signer}` : 'UNSIGNED'}`);
  const tree = { sums, packagesIndex: packagesIndex.toString('utf8'), signed: manifest.signer !== null };
  return {
    bundle: { bundleFile, bundleSha256, sumsSha256, tree, manifest, flannelManifest: flannel?.toString('utf8') ?? '', signerKey: report.publicKeyArmored ?? undefined },
    manifest,
    report,
  };
}

/** Connects to every host (connect.ts bounds the handshakes in flight) and examines it. */
export function connectAndExamine(specs: HostSpec[], options: InstallOptions, secrets: Secrets): Promise<InstallHost[]> {
  return connectAll(specs, {
    hostsFile: options.hostsFile,
    concurrency: options.concurrency,
    connect: (spec) => connectToHost(spec, { ...options, secrets }),
    async examine(spec, conn): Promise<InstallHost> {
      const label = specLabel(spec);
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
    },
  });
}

export function buildContext(
  options: InstallOptions,
  nodes: InstallHost[],
  bundle: Pick<InstallContext, 'bundleFile' | 'bundleSha256' | 'sumsSha256' | 'tree' | 'manifest' | 'flannelManifest' | 'os' | 'secrets' | 'signerKey' | 'progress'>,
): InstallContext {
  const controlPlanes = nodes.filter((n) => n.spec.role === 'control-plane');
  const firstControlPlane = controlPlanes[0];
  if (!firstControlPlane) throw new UserError(`${options.hostsFile} lists no control-plane host`);
  const registryHost = nodes.find((n) => n.spec.role === 'registry') ?? firstControlPlane;
  const ha = options.vip ? planHa(options.vip, nodes) : undefined;
  const endpoint = ha ? haEndpoint(ha) : options.controlPlaneEndpoint ? withPort(options.controlPlaneEndpoint, 6443) : `${hostForUrl(firstControlPlane.spec.address)}:6443`;
  return {
    options,
    ...bundle,
    version: parseKubeVersion(bundle.manifest.kubernetesVersion),
    hosts: nodes,
    controlPlanes,
    workers: nodes.filter((n) => n.spec.role === 'worker'),
    firstControlPlane,
    registryHost,
    registry: `${hostForUrl(registryHost.spec.address)}:${options.registryPort}`,
    bundleChecked: new Set(),
    fallbacks: new Map(),
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
