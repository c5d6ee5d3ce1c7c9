/**
 * `bundle upgrade`: a cluster kube-bundle installed, to the version of a newer bundle, over SSH.
 *
 * Checked first, before any host changes, every problem at once: the bundle's signature; the cluster was installed
 * by kube-bundle (its recorded settings on the first control plane, every host's journal); the bundle's target,
 * architecture and runtime match the hosts and the cluster; the versions the cluster runs — asked of the API server
 * and of each node's kubelet, never assumed — allow the bundle's version (skew.ts). Then the phases (phases.ts).
 */
import { UserError } from '../../util/errors.js';
import { loadComponents, loadTarget } from '../definitions.js';
import { parseKubeVersion } from '../kube-version.js';
import { Secrets } from '../ssh/command.js';
import type { InstallContext, InstallHost, InstallOptions } from '../install/context.js';
import { CLUSTER_SETTINGS, REGISTRY_STORAGE, REMOTE_ROOT } from '../install/host-paths.js';
import { readHostsFile } from '../install/hosts.js';
import { buildContext, connectAndExamine, runSitePhases, verifyForHosts } from '../install/install.js';
import { osFor } from '../install/os.js';
import { isNode } from '../install/phases/steps.js';
import type { ClusterSettings } from '../install/settings.js';
import { installReporter, type InstallSummary } from '../install/summary.js';
import { parseEndpoint } from '../install/validate.js';
import { upgradePhases } from './phases.js';
import { upgradeProblems, versionIn, type ClusterVersions } from './skew.js';

export interface UpgradeOptions extends Pick<InstallOptions, 'hostsFile' | 'pubkey' | 'allowUnsigned' | 'identity' | 'user' | 'knownHosts' | 'acceptNewHostKeys' | 'concurrency' | 'dryRun' | 'signal' | 'log' | 'live'> {
  bundle: string;
  /** workers upgraded at once */
  maxUnavailable: number;
}

const KUBECTL = 'kubectl --kubeconfig /etc/kubernetes/admin.conf';

export async function upgrade(given: UpgradeOptions): Promise<InstallSummary> {
  const started = Date.now();
  const reporter = installReporter(given);
  const log = reporter.print;
  const specs = readHostsFile(given.hostsFile);
  if (!given.pubkey && !given.allowUnsigned) {
    throw new UserError('no --pubkey: upgrade checks the bundle\'s signature against the signer you trust', 'pass --pubkey signer.pub.asc');
  }
  const { bundle, manifest } = await verifyForHosts(given.bundle, { ...given, log });
  const target = parseKubeVersion(manifest.kubernetesVersion);
  const def = loadTarget(manifest.target);
  const os = osFor(def, loadComponents().kubernetes.packages);

  const secrets = new Secrets();
  // the cluster's own settings are read below; until then, install's defaults only for connecting
  const connectOptions = { ...given, runtime: 'containerd', podCidr: '', serviceCidr: '', registryPort: 5000, log } as InstallOptions;
  log(`Connecting to ${specs.length} host(s)`);
  const nodes = await connectAndExamine(specs, connectOptions, secrets);
  try {
    const firstCp = nodes.find((n) => n.spec.role === 'control-plane');
    if (!firstCp) throw new UserError(`${given.hostsFile} lists no control-plane host`);
    const settings = await readSettings(firstCp);
    const endpoint = parseEndpoint(settings.endpoint);
    const registryPort = Number(/:(\d+)$/.exec(settings.registry)?.[1] ?? 5000);
    const options: InstallOptions = {
      ...connectOptions,
      runtime: settings.runtime === 'docker' ? 'docker' : 'containerd',
      podCidr: settings.podCidr,
      serviceCidr: settings.serviceCidr,
      ...('problem' in endpoint ? {} : { controlPlaneEndpoint: settings.endpoint }),
      registryPort,
    };
    const ctx: InstallContext = buildContext(options, nodes, { ...bundle, os, secrets, progress: reporter });
    ctx.upgrade = {
      target,
      packageVersions: new Map(manifest.components.packages.filter((p) => os.kubePackages.includes(p.name)).map((p) => [p.name, p.version])),
      maxUnavailable: given.maxUnavailable,
      journalPrefix: `upgrade-${target.tag}`,
    };

    const problems: string[] = [];
    if (!manifest.runtimes.includes(options.runtime)) problems.push(`the cluster runs ${options.runtime}; the bundle carries ${manifest.runtimes.join(', ')}`);
    for (const n of nodes) {
      if (n.facts.osId !== def.os || n.facts.osVersion !== def.version) problems.push(`${n.label}: runs ${n.facts.osId} ${n.facts.osVersion}; the bundle is for ${def.os} ${def.version}`);
      if (!manifest.arches.includes(n.facts.arch)) problems.push(`${n.label}: is ${n.facts.arch}; the bundle carries ${manifest.arches.join(', ')}`);
      if (!n.facts.journal.includes('installed')) problems.push(`${n.label}: kube-bundle's install has not finished there (${given.hostsFile}:${n.spec.line}): run \`bundle install\` first`);
    }
    if (manifest.base) problems.push(...(await baseProblems(ctx, manifest.base.kubernetesVersion)));
    const versions = await clusterVersions(ctx);
    problems.push(...upgradeProblems(versions, target.tag));
    if (problems.length) throw new UserError(`upgrade to ${target.tag} checked ${nodes.length} host(s) and found ${problems.length} problem(s); nothing was changed:\n  ${problems.join('\n  ')}`);
    log(`  The cluster runs ${versions.apiServer} (kubelets: ${[...new Set(versions.nodes.map((n) => n.kubelet))].join(', ')}); upgrading to ${target.tag}`);

    return await runSitePhases(upgradePhases(), ctx, reporter, started);
  } finally {
    reporter.close();
    await Promise.allSettled(nodes.map((n) => n.conn.close()));
  }
}

/**
 * A differential bundle carries only what its base lacks: every host must hold a bundle of the base's version (its
 * repository is where the new packages' other dependencies are), and the registry every image the bundle marks as
 * the base's. Each missing piece is named.
 */
async function baseProblems(ctx: InstallContext, base: string): Promise<string[]> {
  const problems: string[] = [];
  await Promise.all(
    ctx.hosts.map(async (h) => {
      const r = await h.conn.exec(`grep -lx 'kubernetesVersion: ${base}' ${REMOTE_ROOT}/*/bundle.yaml 2>/dev/null | head -n 1`);
      if (!r.stdout.trim()) problems.push(`${h.label}: holds no ${base} bundle, which this differential bundle was made against: upgrade with the full ${base} bundle (or a full bundle of ${ctx.manifest.kubernetesVersion}) first`);
    }),
  );
  const store = `${REGISTRY_STORAGE}/docker/registry/v2/blobs/sha256`;
  const wanted = ctx.manifest.components.images.filter((i) => i.fromBase).map((i) => i.digest.replace(/^sha256:/, ''));
  const missing = wanted.length ? (await ctx.registryHost.conn.exec(wanted.map((hex) => `[ -f ${store}/${hex.slice(0, 2)}/${hex}/data ] || echo sha256:${hex}`).join('\n'))).stdout.trim() : '';
  for (const digest of missing ? missing.split('\n') : []) {
    const image = ctx.manifest.components.images.find((i) => i.digest === digest);
    problems.push(`${ctx.registryHost.label}: the registry lacks ${image?.ref ?? digest} (${digest}), which this differential bundle leaves to its base ${base}`);
  }
  return problems;
}

async function readSettings(cp: InstallHost): Promise<ClusterSettings> {
  const r = await cp.conn.exec(`cat ${CLUSTER_SETTINGS}`);
  if (r.code !== 0) throw new UserError(`${cp.label} has no ${CLUSTER_SETTINGS}: this cluster was not installed by kube-bundle (or not finished)`, 'upgrade works on clusters `bundle install` made');
  try {
    return JSON.parse(r.stdout) as ClusterSettings;
  } catch {
    throw new UserError(`${cp.label}: ${CLUSTER_SETTINGS} is not JSON; was it edited?`);
  }
}

/** The API server's version, asked of it, and each node's kubelet's, asked of the node. */
async function clusterVersions(ctx: InstallContext): Promise<ClusterVersions> {
  const api = await ctx.firstControlPlane.conn.exec(`${KUBECTL} version -o json`);
  const apiServer = api.code === 0 ? ((JSON.parse(api.stdout) as { serverVersion?: { gitVersion?: string } }).serverVersion?.gitVersion ?? null) : null;
  if (!apiServer) throw new UserError(`${ctx.firstControlPlane.label}: the API server did not say its version (kubectl version: ${api.stderr.trim() || api.stdout.trim()})`);
  const nodes = await Promise.all(
    ctx.hosts.filter(isNode).map(async (n) => {
      const r = await n.conn.exec('kubelet --version');
      const kubelet = versionIn(r.stdout);
      if (!kubelet) throw new UserError(`${n.label}: kubelet --version said ${JSON.stringify(r.stdout.trim() || r.stderr.trim())}`);
      return { label: n.label, kubelet };
    }),
  );
  return { apiServer: versionIn(apiServer) ?? apiServer, nodes };
}
