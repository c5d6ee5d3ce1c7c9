/**
 * The cluster made with kubeadm: init on the first control plane (through the control-plane address with --vip),
 * flannel, the joins of the other control planes and the workers, and the check that every node registered.
 * kubeadm's configs hold the join secrets and travel over stdin into 0600 files, never on a command line; the
 * gate before init and join recognizes what a killed run left (resume.ts).
 */
import { shQuote } from '../../ssh/command.js';
import { uploadSmallFile } from '../../ssh/upload.js';
import type { ClusterSecrets, InstallContext, InstallHost } from '../context.js';
import {
  CLUSTER_ENV, CLUSTER_SETTINGS, ETC, JOIN_SECRET_FILES, JOURNAL, KUBEADM_INIT_CONFIG, KUBEADM_JOIN_CONFIG, KUBEADM_UPLOAD_CERTS_CONFIG,
} from '../host-paths.js';
import { formatClusterEnv, parseCertificateKey, parseClusterEnv, parseCreatedToken, planJoinSecrets, tokenId, tokenListed } from '../join-secrets.js';
import { caCertHash, kubeadmInitConfig, kubeadmJoinConfig, newBootstrapToken, newCertificateKey, renderFlannel } from '../render.js';
import { hostLocked, initDecision, joinDecision, kubeadmStateProbe, lockedTimeoutMs, parseKubeadmState, type Decision } from '../resume.js';
import { runtimeFor } from '../runtime/index.js';
import { clusterSettings } from '../settings.js';
import { command, file, isControlPlane, isNode, journaled, journalLine, locked, type InstallPhase, type Step } from './steps.js';

/** a phase that only reads: it runs on every install and does not count as a change */
export const CHECK_CLUSTER_PHASE = 'Check the cluster';

export function initPhase(): InstallPhase {
  return journaled('init', {
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
  });
}

export function networkPhase(journalId = 'network', title = 'Apply flannel'): InstallPhase {
  return journaled(journalId, {
    title,
    hosts: (_all, ctx) => [ctx.firstControlPlane],
    steps: (_host, ctx) => [
      file(`${ETC}/kube-flannel.yml`, renderFlannel(ctx.flannelManifest, ctx.options.podCidr, (ref) => runtimeFor(ctx.options.runtime).imageFor(ref, ctx.registry))),
      locked(`kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f ${ETC}/kube-flannel.yml`, { timeoutMs: 10 * 60_000 }),
    ],
  });
}

export function joinControlPlanesPhase(): InstallPhase {
  return joinPhase('join-control-plane', 'Join the other control planes', (n, ctx) => isControlPlane(n) && n !== ctx.firstControlPlane, true);
}

export function joinWorkersPhase(): InstallPhase {
  return joinPhase('join-worker', 'Join the workers', (n) => n.spec.role === 'worker', false);
}

/** Until every node is registered; then the join secrets go, and every host's journal says the install finished. */
export function checkClusterPhase(): InstallPhase {
  return {
    title: CHECK_CLUSTER_PHASE,
    hosts: (_all, ctx) => [ctx.firstControlPlane],
    async run(host, ctx) {
      const names = ctx.hosts.filter(isNode).map((n) => n.name);
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
      for (const n of ctx.hosts) if (n !== host) await n.conn.run(`grep -q '^installed ' ${JOURNAL} 2>/dev/null || ${journalLine('installed', ctx)}`);
    },
    dryRun: () => [
      'kubectl get nodes -o name   (until every node is registered)',
      'kubeadm token delete <token id>   (the join token, when one is left)',
      `rm -f ${JOIN_SECRET_FILES.join(' ')}   (on every node)`,
    ],
  };
}

function joinPhase(id: string, title: string, which: (n: InstallHost, ctx: InstallContext) => boolean, controlPlane: boolean): InstallPhase {
  return journaled(id, {
    title,
    hosts: (all, ctx) => all.filter((n) => which(n, ctx)),
    async prepare(ctx) {
      if (ctx.options.dryRun || !ctx.hosts.some((n) => which(n, ctx) && !n.facts.journal.includes(id))) return;
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
        criSocket: runtimeFor(ctx.options.runtime).criSocket,
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
async function probeKubeadm(host: InstallHost) {
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
function kubeadmGate(what: 'init' | 'join', ctx: InstallContext, decide: (host: InstallHost) => Promise<Decision>): { check: Step; unlessDone(steps: Step[]): Step[] } {
  const reset = locked(runtimeFor(ctx.options.runtime).kubeadmReset(), { timeoutMs: 5 * 60_000 });
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
function initConfig(host: InstallHost, ctx: InstallContext, cluster: ClusterSecrets): string {
  return kubeadmInitConfig({
    version: ctx.version,
    token: cluster.token,
    certificateKey: cluster.certificateKey,
    advertiseAddress: host.ip,
    nodeIp: host.ip,
    nodeName: host.name,
    criSocket: runtimeFor(ctx.options.runtime).criSocket,
    controlPlaneEndpoint: ctx.endpoint,
    imageRepository: runtimeFor(ctx.options.runtime).imageRepository(ctx.registry),
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
async function removeJoinSecrets(cp: InstallHost, ctx: InstallContext): Promise<void> {
  const token = ctx.cluster?.token ?? parseClusterEnv((await cp.conn.run(`cat ${CLUSTER_ENV} 2>/dev/null || true`)).stdout).token;
  if (token) {
    ctx.secrets.add(token);
    if (tokenListed((await cp.conn.run('kubeadm token list')).stdout, token)) await cp.conn.run(`kubeadm token delete ${tokenId(token)}`);
  }
  // the first control plane last: its cluster.env is how a re-run finds a token whose deletion did not finish
  for (const n of [...ctx.hosts.filter((n) => isNode(n) && n !== cp), cp]) await n.conn.run(`rm -f ${JOIN_SECRET_FILES.join(' ')}`);
}
