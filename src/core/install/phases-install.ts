/**
 * The phases of an install, in order. Each phase that changes a host records itself in that host's journal
 * (/var/lib/kube-bundle/journal) when it finishes there, and is skipped on hosts whose journal has it: that is
 * what makes a re-run resume after a failure and change nothing after a success.
 *
 * Host-side work lives in scripts carried in the bundle's installer/ (scripts/host/ in this repository); here
 * are the decisions, the generated files and the exact commands, which --dry-run prints.
 */
import { formatBytes } from '../../util/progress.js';
import { parseReference } from '../oci/reference.js';
import { shQuote } from '../ssh/command.js';
import { uploadSmallFile } from '../ssh/upload.js';
import { checkScript, unpackScript, type BundleOnHost } from './bundle-on-host.js';
import {
  CA_FILE, CLUSTER_ENV, CLUSTER_SETTINGS, ETC, JOIN_SECRET_FILES, JOURNAL, KUBEADM_INIT_CONFIG, KUBEADM_JOIN_CONFIG, KUBEADM_UPLOAD_CERTS_CONFIG, PKI,
  REGISTRY_STORAGE, REMOTE_ROOT, SIGNER_KEY,
} from './host-paths.js';
import { formatClusterEnv, parseCertificateKey, parseClusterEnv, parseCreatedToken, planJoinSecrets, tokenId, tokenListed } from './join-secrets.js';
import type { ClusterSecrets, InstallContext, Node } from './install.js';
import { clusterSettings } from './settings.js';
import { haApiPhase, haPhase, isHaHolder } from './ha.js';
import { hostLocked, initDecision, joinDecision, kubeadmResetCommand, kubeadmStateProbe, lockedTimeoutMs, parseKubeadmState, type Decision } from './resume.js';
import type { Phase } from './phases.js';
import {
  CERTS_D, CONTAINERD_SOCKET, caCertHash, containerdConfig, hostsToml, kubeadmInitConfig, kubeadmJoinConfig, newBootstrapToken, newCertificateKey,
  renderFlannel, renderTemplate,
} from './render.js';
import { DOCKER_DAEMON_JSON_NEW, SETUP_DOCKER_SCRIPT, dockerFiles, registryImage, runtimeNaming } from './runtime-docker.js';

type InstallPhase = Phase<Node, InstallContext>;

const bundleDir = (ctx: InstallContext) => `${REMOTE_ROOT}/${ctx.bundleSha256.slice(0, 16)}`;
const bundleTar = (ctx: InstallContext) => `${REMOTE_ROOT}/bundles/${ctx.bundleSha256}.tar`;
const onHost = (ctx: InstallContext): BundleOnHost => ({ tar: bundleTar(ctx), dir: bundleDir(ctx), sumsSha256: ctx.sumsSha256, signed: ctx.manifest.signer !== null });
/** a phase that only reads: it runs on every install and does not count as a change */
export const CHECK_BUNDLE_PHASE = 'Check the bundle on the hosts';
const keyring = (ctx: InstallContext) => (ctx.signerKey ? SIGNER_KEY : 'unsigned');
const installer = (ctx: InstallContext, script: string) => `${bundleDir(ctx)}/installer/${script}`;
const isControlPlane = (n: Node) => n.spec.role === 'control-plane';
const isNode = (n: Node) => n.spec.role === 'control-plane' || n.spec.role === 'worker';

/** Record a finished phase on a host. */
function journalLine(id: string, ctx: InstallContext): string {
  return `mkdir -p ${REMOTE_ROOT} && echo "${id} ${ctx.bundleSha256.slice(0, 16)} $(date -u +%FT%TZ)" >> ${JOURNAL}`;
}

/** A phase that runs the same steps on each of its hosts, skipping hosts whose journal already has it. */
function journaled(id: string, def: Omit<InstallPhase, 'shouldRun' | 'run' | 'dryRun'> & {
  steps(host: Node, ctx: InstallContext): Promise<Step[]> | Step[];
}): InstallPhase {
  return {
    ...def,
    shouldRun: (host) => !host.facts.journal.includes(id),
    async run(host, ctx, signal) {
      for (const step of await def.steps(host, ctx)) {
        if (signal.aborted) throw new Error('interrupted');
        await step.run(host);
      }
      await host.conn.run(journalLine(id, ctx));
      host.facts.journal.push(id);
    },
    async dryRun(host, ctx) {
      if (host.facts.journal.includes(id)) return ['(already done)'];
      return (await def.steps(host, ctx)).map((s) => s.describe);
    },
  };
}

interface Step {
  describe: string;
  run(host: Node): Promise<unknown>;
}

const command = (cmd: string, opts: { timeoutMs?: number } = {}): Step => ({
  describe: cmd,
  run: (host) => host.conn.run(cmd, opts),
});

/**
 * A long effectful host command, run under the host-wide lock with its output held on the host (resume.ts): a
 * re-run waits for the same step left running by a killed CLI, which runs to its end. The time limit covers the wait.
 */
const locked = (cmd: string, opts: { timeoutMs?: number } = {}): Step =>
  command(hostLocked(cmd), opts.timeoutMs === undefined ? {} : { timeoutMs: lockedTimeoutMs(opts.timeoutMs) });

/** Write a file on the host; content may be computed when the step runs (a dry run never computes it). */
const file = (path: string, content: string | (() => Promise<string>), mode = 0o644, what = ''): Step => ({
  describe: `write ${path}${what ? ` (${what})` : typeof content === 'string' ? ` (${content.length} bytes)` : ''}, mode ${mode.toString(8)}`,
  run: async (host) => {
    await host.conn.run(`mkdir -p ${shQuote(path.replace(/\/[^/]+$/, ''))}`);
    await uploadSmallFile(host.conn, typeof content === 'string' ? content : await content(), path, mode);
  },
});

/** The node names and addresses every host's /etc/hosts gets. */
function hostsBlock(ctx: InstallContext): string {
  return ctx.nodes.map((n) => `${n.ip} ${n.name}`).join('\n') + '\n';
}

/** The upstream registries whose images the bundle carries (registry.k8s.io, ghcr.io, docker.io, ...). */
function upstreamRegistries(ctx: InstallContext): string[] {
  return [...new Set(ctx.manifest.components.images.map((i) => parseReference(i.ref).registry))].sort();
}

function sandboxImage(ctx: InstallContext): string {
  const pause = ctx.manifest.components.images.find((i) => /^registry\.k8s\.io\/pause:/.test(i.ref));
  if (!pause) throw new Error('the bundle carries no registry.k8s.io/pause image');
  return pause.ref;
}

export function installPhases(): InstallPhase[] {
  return [
    journaled('upload', {
      title: 'Upload the bundle',
      steps: (_host, ctx) => [
        {
          describe: `upload ${ctx.bundleFile} → ${bundleTar(ctx)} (skipped when the host has it; resumed when cut; sha256 checked on the host)`,
          run: async (h) => {
            await h.conn.run(`mkdir -p ${REMOTE_ROOT}/bundles`);
            const started = Date.now();
            const sent = await h.conn.upload(ctx.bundleFile, bundleTar(ctx), { sha256: ctx.bundleSha256 });
            const seconds = (Date.now() - started) / 1000;
            ctx.options.log(
              sent.skipped
                ? `    ${h.label}: the bundle is already there`
                : `    ${h.label}: sent ${formatBytes(sent.bytesSent)} in ${seconds.toFixed(1)}s (${formatBytes(sent.bytesSent / Math.max(seconds, 0.001))}/s)${sent.resumedFrom ? `, resumed at ${formatBytes(sent.resumedFrom)}` : ''}`,
            );
          },
        },
        {
          describe: `unpack into ${bundleDir(ctx)} (owners and modes not taken from the archive) and check the tree against SHA256SUMS (sha256 ${ctx.sumsSha256.slice(0, 16)}…, from verify): every file as listed, nothing else`,
          run: async (h) => {
            await h.conn.run(`${unpackScript(onHost(ctx))}\nln -sfn ${bundleDir(ctx)} ${REMOTE_ROOT}/current`, { timeoutMs: 30 * 60_000 });
            ctx.bundleChecked.add(h);
          },
        },
        ...(ctx.signerKey ? [file(SIGNER_KEY, ctx.signerKey)] : []),
      ],
    }),
    {
      // every run, before anything from the tree runs: a file changed on the host since the upload is refused here
      title: CHECK_BUNDLE_PHASE,
      shouldRun: (host, ctx) => !ctx.bundleChecked.has(host),
      async run(host, ctx) {
        await host.conn.run(checkScript(onHost(ctx)), { timeoutMs: 10 * 60_000 });
      },
      dryRun: (_host, ctx) => [`check ${bundleDir(ctx)} against SHA256SUMS (sha256 ${ctx.sumsSha256.slice(0, 16)}…): every file as listed, nothing else, modes as packed`],
    },
    journaled('prepare', {
      title: 'Prepare the hosts',
      steps: (host, ctx) => [
        file(`${ETC}/hosts`, hostsBlock(ctx)),
        command(`${installer(ctx, 'prepare-host.sh')} ${shQuote(host.name)} ${ETC}/hosts`),
      ],
    }),
    journaled('packages', {
      title: 'Install packages from the bundle',
      steps: (host, ctx) => {
        const packages = ctx.os.packages(host.spec.role, ctx.options.runtime, { registryHere: host === ctx.registryNode, ha: isHaHolder(ctx, host) });
        return [
          command(ctx.os.preparePorts()),
          locked(`${installer(ctx, 'install-packages.sh')} ${bundleDir(ctx)} ${keyring(ctx)} ${packages.join(' ')}`, { timeoutMs: 30 * 60_000 }),
        ];
      },
    }),
    journaled('registry', {
      title: 'Seed and start the registry',
      hosts: (_all, ctx) => [ctx.registryNode],
      steps: (host, ctx) => [
        file(`${ETC}/registry/config.yml`, renderTemplate('registry/config.yml', {
          storageDir: REGISTRY_STORAGE,
          port: String(ctx.options.registryPort),
          certFile: `${PKI}/registry.crt`,
          keyFile: `${PKI}/registry.key`,
        })),
        file('/etc/systemd/system/kube-bundle-registry.service', renderTemplate('registry/kube-bundle-registry.service', {
          configFile: `${ETC}/registry/config.yml`,
          storageDir: REGISTRY_STORAGE,
        })),
        locked(`${installer(ctx, 'setup-registry.sh')} ${bundleDir(ctx)} ${shQuote(host.spec.address)} ${shQuote(host.name)}`, { timeoutMs: 10 * 60_000 }),
      ],
    }),
    journaled('runtime', {
      title: 'Configure the container runtime',
      hosts: (all) => all.filter(isNode),
      steps: (host, ctx) => [
        file(CA_FILE, () => registryCa(ctx), 0o644, `the registry's CA, from ${ctx.registryNode.label}`),
        ...(ctx.options.runtime === 'docker' ? dockerSteps(host, ctx) : containerdSteps(host, ctx)),
      ],
    }),
    haPhase((ctx) => installer(ctx, 'setup-lb.sh')),
    journaled('init', {
      title: 'kubeadm init on the first control plane',
      hosts: (_all, ctx) => [ctx.firstControlPlane],
      steps: (host, ctx) => {
        // made here, not by kubeadm, so that they are known (and redacted) before anything can print them
        const cluster = (ctx.cluster ??= { token: newBootstrapToken(), certificateKey: newCertificateKey() });
        ctx.secrets.add(cluster.token, cluster.certificateKey);
        const gate = kubeadmGate('init', ctx, async (h) => {
          const decision = initDecision(await probeKubeadm(h));
          // the cluster runs with the token and key the killed run wrote to cluster.env: the joins read them there
          if (decision.kind === 'done') ctx.cluster = undefined;
          return decision;
        });
        return [
          gate.check,
          ...gate.unlessDone([
            // over stdin into 0600 files: kubeadm reads the secrets from its config, never from its arguments
            file(KUBEADM_INIT_CONFIG, initConfig(host, ctx, cluster), 0o600),
            file(CLUSTER_ENV, formatClusterEnv({ ...cluster, certsUploaded: Date.now() }), 0o600),
            file(CLUSTER_SETTINGS, JSON.stringify(clusterSettings(ctx), null, 2) + '\n'),
            locked(`kubeadm init --config ${KUBEADM_INIT_CONFIG} --upload-certs`, { timeoutMs: 15 * 60_000 }),
          ]),
          command('mkdir -p /root/.kube && install -m 600 /etc/kubernetes/admin.conf /root/.kube/config'),
        ];
      },
    }),
    haApiPhase(),
    journaled('network', {
      title: 'Apply flannel',
      hosts: (_all, ctx) => [ctx.firstControlPlane],
      steps: (_host, ctx) => [
        file(`${ETC}/kube-flannel.yml`, renderFlannel(ctx.flannelManifest, ctx.options.podCidr, runtimeNaming(ctx.options.runtime, ctx.registry).imageFor)),
        locked(`kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f ${ETC}/kube-flannel.yml`, { timeoutMs: 10 * 60_000 }),
      ],
    }),
    joinPhase('join-control-plane', 'Join the other control planes', (n, ctx) => isControlPlane(n) && n !== ctx.firstControlPlane, true),
    joinPhase('join-worker', 'Join the workers', (n) => n.spec.role === 'worker', false),
    {
      title: 'Check the cluster',
      hosts: (_all, ctx) => [ctx.firstControlPlane],
      async run(host, ctx) {
        const names = ctx.nodes.filter(isNode).map((n) => n.name);
        const deadline = Date.now() + 5 * 60_000;
        for (;;) {
          const out = await host.conn.exec('kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o name');
          const registered = new Set(out.stdout.split('\n').map((l) => l.trim().replace(/^node\//, '')).filter(Boolean));
          const missing = names.filter((n) => !registered.has(n));
          if (out.code === 0 && missing.length === 0) break;
          if (Date.now() > deadline) throw new Error(`nodes not registered after 5 minutes: ${missing.join(', ')}${out.code ? ` (kubectl: ${out.stderr.trim()})` : ''}`);
          await new Promise((r) => setTimeout(r, 2000));
        }
        await removeJoinSecrets(host, ctx);
        await host.conn.run(`grep -q '^installed ' ${JOURNAL} 2>/dev/null || ${journalLine('installed', ctx)}`);
        for (const n of ctx.nodes) if (n !== host) await n.conn.run(`grep -q '^installed ' ${JOURNAL} 2>/dev/null || ${journalLine('installed', ctx)}`);
      },
      dryRun: () => [
        'kubectl get nodes -o name   (until every node is registered)',
        'kubeadm token delete <token id>   (the join token, when one is left)',
        `rm -f ${JOIN_SECRET_FILES.join(' ')}   (on every node)`,
      ],
    },
  ];
}

function joinPhase(id: string, title: string, which: (n: Node, ctx: InstallContext) => boolean, controlPlane: boolean): InstallPhase {
  return journaled(id, {
    title,
    hosts: (all, ctx) => all.filter((n) => which(n, ctx)),
    async prepare(ctx) {
      if (ctx.options.dryRun || !ctx.nodes.some((n) => which(n, ctx) && !n.facts.journal.includes(id))) return;
      await readClusterSecrets(ctx, controlPlane);
      ctx.caCertHash ??= caCertHash((await ctx.firstControlPlane.conn.run('cat /etc/kubernetes/pki/ca.crt')).stdout);
    },
    steps: (host, ctx) => {
      const cluster: ClusterSecrets = ctx.cluster ?? { token: '<token from the first control plane>', certificateKey: '<certificate key>' };
      const config = kubeadmJoinConfig({
        version: ctx.version,
        apiServerEndpoint: ctx.endpoint,
        token: cluster.token,
        caCertHash: ctx.caCertHash ?? 'sha256:<hash of the cluster CA>',
        nodeName: host.name,
        nodeIp: host.ip,
        criSocket: runtimeNaming(ctx.options.runtime, ctx.registry).criSocket,
        ...(controlPlane ? { controlPlane: { advertiseAddress: host.ip, certificateKey: cluster.certificateKey } } : {}),
      });
      const gate = kubeadmGate('join', ctx, async (h) => joinDecision(await probeKubeadm(h), await nodeRegistered(ctx, h.name), controlPlane));
      return [
        gate.check,
        ...gate.unlessDone([
          file(KUBEADM_JOIN_CONFIG, config, 0o600),
          locked(`kubeadm join --config ${KUBEADM_JOIN_CONFIG}`, { timeoutMs: 15 * 60_000 }),
        ]),
        ...(controlPlane ? [command('mkdir -p /root/.kube && install -m 600 /etc/kubernetes/admin.conf /root/.kube/config')] : []),
      ];
    },
  });
}

/** What kubeadm left on the host; waits (under the host lock) for an init or join still running from a killed CLI. */
async function probeKubeadm(host: Node) {
  return parseKubeadmState((await host.conn.run(hostLocked(kubeadmStateProbe()), { timeoutMs: lockedTimeoutMs(60_000) })).stdout);
}

/** Whether the cluster has node NAME, asked on the first control plane. */
async function nodeRegistered(ctx: InstallContext, name: string): Promise<boolean> {
  const cp = ctx.firstControlPlane;
  return (await cp.conn.exec(`kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=10s get node ${shQuote(name)} -o name`)).code === 0;
}

/**
 * The check before kubeadm init or join, and the steps it guards. `decide` looks at the host: when the command
 * had completed in a run that died before its journal line, the guarded steps are skipped and the journal line
 * is written (journal repaired); when it stopped half-way, `kubeadm reset -f` runs before them; a cluster this
 * install did not make is refused. Every case is said in the output.
 */
function kubeadmGate(what: 'init' | 'join', ctx: InstallContext, decide: (host: Node) => Promise<Decision>): { check: Step; unlessDone(steps: Step[]): Step[] } {
  const criSocket = runtimeNaming(ctx.options.runtime, ctx.registry).criSocket;
  const reset = locked(kubeadmResetCommand(criSocket), { timeoutMs: 5 * 60_000 });
  let done = false;
  const check: Step = {
    describe: `${hostLocked(kubeadmStateProbe())}   (what an earlier kubeadm ${what} left: completed → journal repaired, not run again; half-done → ${reset.describe}, then ${what} again)`,
    run: async (host) => {
      const decision = await decide(host);
      if (decision.kind === 'foreign') throw new Error(`${host.label} ${decision.why}: run \`bundle reset\` on it or remove it from the hosts file`);
      if (decision.kind === 'done') {
        done = true;
        ctx.options.log(`    ${host.label}: ${decision.why}: journal repaired, not run again`);
      } else if (decision.kind === 'redo') {
        ctx.options.log(`    ${host.label}: ${decision.why}: kubeadm reset -f, then kubeadm ${what} again`);
        await reset.run(host);
      }
    },
  };
  return { check, unlessDone: (steps) => steps.map((s) => ({ describe: s.describe, run: (host) => (done ? Promise.resolve() : s.run(host)) })) };
}

/** The init configuration of the first control plane; also what `init phase upload-certs` reads a new key from. */
function initConfig(host: Node, ctx: InstallContext, cluster: ClusterSecrets): string {
  return kubeadmInitConfig({
    version: ctx.version,
    token: cluster.token,
    certificateKey: cluster.certificateKey,
    advertiseAddress: host.ip,
    nodeIp: host.ip,
    nodeName: host.name,
    criSocket: runtimeNaming(ctx.options.runtime, ctx.registry).criSocket,
    controlPlaneEndpoint: ctx.endpoint,
    imageRepository: runtimeNaming(ctx.options.runtime, ctx.registry).imageRepository,
    podSubnet: ctx.options.podCidr,
    serviceSubnet: ctx.options.serviceCidr,
    certSANs: [...new Set([host.ip, host.spec.address, host.name, ctx.endpoint.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')])],
  });
}

/**
 * The join token (and, for control planes, the certificate key) of this run's joins: made by this run's init;
 * else the ones in cluster.env when a run stopped before its joins were done and the token is still alive; else
 * new ones, made by kubeadm on the first control plane and read from its stdout (a finished install deletes
 * them). No secret is ever an argument of a command: the certificate key reaches kubeadm in a config file.
 */
async function readClusterSecrets(ctx: InstallContext, controlPlane: boolean): Promise<void> {
  if (ctx.cluster) return; // made by this run's init, or by the control-plane joins' prepare for the workers'
  const cp = ctx.firstControlPlane;
  const stored = parseClusterEnv((await cp.conn.run(`cat ${CLUSTER_ENV} 2>/dev/null || true`)).stdout);
  ctx.secrets.add(stored.token ?? '', stored.certificateKey ?? '');
  const tokenList = stored.token ? (await cp.conn.run('kubeadm token list')).stdout : '';
  const plan = planJoinSecrets(stored, tokenList, controlPlane, Date.now());
  const made = async (cmd: string, parse: (stdout: string) => string): Promise<string> => {
    const secret = parse((await cp.conn.run(cmd)).stdout);
    ctx.secrets.add(secret);
    return secret;
  };
  const token = plan.newToken ? await made("kubeadm token create --ttl 24h0m0s --description 'kube-bundle join'", parseCreatedToken) : stored.token!;
  const certificateKey = plan.newCertificateKey ? await made('kubeadm certs certificate-key', parseCertificateKey) : (stored.certificateKey ?? '');
  ctx.cluster = { token, certificateKey };
  // kept before the upload, so that a run that stops after this point reuses them and the cleanup finds the token
  const keep = (certsUploaded: number) => uploadSmallFile(cp.conn, formatClusterEnv({ token, certificateKey, certsUploaded }), CLUSTER_ENV, 0o600);
  if (plan.newToken || plan.newCertificateKey) await keep(plan.newCertificateKey ? 0 : stored.certsUploaded);
  if (plan.uploadCerts) {
    await uploadSmallFile(cp.conn, initConfig(cp, ctx, ctx.cluster), KUBEADM_UPLOAD_CERTS_CONFIG, 0o600);
    try {
      await cp.conn.run(`kubeadm init phase upload-certs --upload-certs --config ${KUBEADM_UPLOAD_CERTS_CONFIG}`);
    } finally {
      await cp.conn.run(`rm -f ${KUBEADM_UPLOAD_CERTS_CONFIG}`);
    }
    await keep(Date.now());
  }
}

/**
 * Once every node is in, no join needs the token and certificate key: the token is deleted from the cluster (by
 * its public ID), and every file that held either is removed from every node. A later run that has a host to
 * join makes new ones. Changes nothing when there is nothing left (a re-run after success).
 */
async function removeJoinSecrets(cp: Node, ctx: InstallContext): Promise<void> {
  const token = ctx.cluster?.token ?? parseClusterEnv((await cp.conn.run(`cat ${CLUSTER_ENV} 2>/dev/null || true`)).stdout).token;
  if (token) {
    ctx.secrets.add(token);
    if (tokenListed((await cp.conn.run('kubeadm token list')).stdout, token)) await cp.conn.run(`kubeadm token delete ${tokenId(token)}`);
  }
  // the first control plane last: its cluster.env is how a re-run finds a token whose deletion did not finish
  for (const n of [...ctx.nodes.filter((n) => isNode(n) && n !== cp), cp]) await n.conn.run(`rm -f ${JOIN_SECRET_FILES.join(' ')}`);
}

function containerdSteps(host: Node, ctx: InstallContext): Step[] {
  return [
    ...upstreamRegistries(ctx).map((upstream) => file(`${CERTS_D}/${upstream}/hosts.toml`, hostsToml(upstream, ctx.registry, CA_FILE))),
    file('/etc/containerd/config.toml', async () => containerdConfig(await containerdMajor(host), sandboxImage(ctx)), 0o644, 'config version 2 for containerd 1.x, 3 for 2.x'),
    file('/etc/crictl.yaml', renderTemplate('crictl/crictl.yaml', { criSocket: CONTAINERD_SOCKET })),
    command('systemctl enable --quiet containerd && systemctl restart containerd && timeout 60 sh -c "until ctr version >/dev/null 2>&1; do sleep 0.2; done"'),
  ];
}

/** Docker files (runtime-docker.ts), then setup-docker.sh (re)starts dockerd and cri-dockerd and waits for them. */
function dockerSteps(host: Node, ctx: InstallContext): Step[] {
  const files = dockerFiles(host, { registry: ctx.registry, registryCa: () => registryCa(ctx), caFrom: ctx.registryNode.label, pauseImage: registryImage(sandboxImage(ctx), ctx.registry) });
  return [
    ...files.map((f) => file(f.path, f.content, f.mode, f.what)),
    locked(`${installer(ctx, SETUP_DOCKER_SCRIPT)} ${DOCKER_DAEMON_JSON_NEW}`, { timeoutMs: 5 * 60_000 }),
  ];
}

const caCache = new WeakMap<InstallContext, Promise<string>>();

/** The registry's CA certificate, made on the registry host; every node trusts it for the seeded registry. */
function registryCa(ctx: InstallContext): Promise<string> {
  let ca = caCache.get(ctx);
  if (!ca) {
    ca = ctx.registryNode.conn.run(`cat ${CA_FILE}`).then((r) => r.stdout);
    caCache.set(ctx, ca);
  }
  return ca;
}

/** containerd's major version, as installed from the bundle (it decides the config version). */
async function containerdMajor(host: Node): Promise<number> {
  const version = (await host.conn.run("containerd --version | awk '{print $3}'")).stdout.trim();
  const major = Number(version.replace(/^v/, '').split('.')[0]);
  if (!Number.isInteger(major)) throw new Error(`${host.label}: cannot tell containerd's version from '${version}'`);
  return major;
}
