/**
 * `bundle upgrade`, phase by phase, first to last, in kubeadm's documented order
 * (https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/): the content first — the new
 * bundle on the hosts, its repository beside the old ones, its images added to the registry while it serves — then
 * the first control plane (`kubeadm upgrade apply`), the other control planes (`kubeadm upgrade node`), then node by
 * node, control planes first and workers --max-unavailable at a time: drain, (workers: `kubeadm upgrade node`),
 * kubelet and kubectl (and the runtime when the bundle carries a newer one), kubelet restarted, Ready, uncordon.
 *
 * Every phase records itself in the hosts' journals under this upgrade's name (`upgrade-v1.32.4-…`), so a re-run
 * resumes where a failure or a kill stopped it, and a node that fails stops the rollout: no further node is drained.
 */
import { shQuote } from '../ssh/command.js';
import type { InstallContext, InstallHost, UpgradePlan } from '../install/context.js';
import { CLUSTER_SETTINGS, REMOTE_ROOT, SIGNER_KEY } from '../install/host-paths.js';
import { checkBundlePhase, distributePhase, uploadPhase } from '../install/phases/bundle.js';
import { networkPhase } from '../install/phases/kubeadm.js';
import { bundleDir, command, hostScript, isControlPlane, isNode, journaled, locked, type InstallPhase, type Step } from '../install/phases/steps.js';
import { clusterSettings } from '../install/settings.js';

const KUBECTL = 'kubectl --kubeconfig /etc/kubernetes/admin.conf';
const plan = (ctx: InstallContext): UpgradePlan => ctx.upgrade as UpgradePlan;
const id = (ctx: InstallContext, step: string): string => `${plan(ctx).journalPrefix}-${step}`;

/** A journaled phase whose journal name carries the upgrade's version (known once the context is). */
function upgradeJournaled(step: string, def: Parameters<typeof journaled>[1]): InstallPhase {
  return byVersion((ctx) => journaled(id(ctx, step), def));
}

/** `name=version` of the Kubernetes packages asked for, at the bundle's exact versions. */
function pinned(ctx: InstallContext, names: readonly string[]): string {
  return names.map((n) => `${n}=${plan(ctx).packageVersions.get(n) ?? ''}`).join(' ');
}

/**
 * install-packages.sh with the new bundle's repository and every older one on the host (a differential bundle's
 * packages find their dependencies there; the old versions stay, for a rollback).
 */
function packages(ctx: InstallContext, what: string): Step {
  const dirs = `"$(ls -d ${bundleDir(ctx)} ${REMOTE_ROOT}/*/packages 2>/dev/null | sed 's#/packages$##' | awk '!seen[$0]++' | paste -sd, -)"`;
  return locked(`${hostScript(ctx, 'install-packages.sh')} ${dirs} ${ctx.signerKey ? SIGNER_KEY : 'unsigned'} ${ctx.os.kubePackages.join(',')} ${what}`, { timeoutMs: 30 * 60_000 });
}

/** The runtime's packages at the newest version the repositories hold, restarted only when that changed them. */
function runtimePackages(ctx: InstallContext): Step {
  const t = ctx.os.packages('worker', ctx.options.runtime, { registryHere: false, ha: false }).filter((p) => !ctx.os.kubePackages.includes(p));
  const runtime = t.filter((p) => /containerd|runc|docker|cri-dockerd/.test(p));
  const services = ctx.options.runtime === 'docker' ? 'docker cri-docker' : 'containerd';
  const versions = `dpkg-query -W -f '\${Package} \${Version}\\n' ${runtime.join(' ')} 2>/dev/null`;
  const step = packages(ctx, runtime.join(' '));
  return {
    describe: `${step.describe}   (the runtime: ${runtime.join(', ')}; ${services} restarted only when a newer version was installed)`,
    run: async (host) => {
      const before = (await host.conn.exec(versions)).stdout;
      await step.run(host);
      if ((await host.conn.exec(versions)).stdout !== before) await host.conn.run(`systemctl restart ${services}`);
    },
  };
}

/** Until the node reports Ready with the target's kubelet. */
function nodeReady(ctx: InstallContext, node: InstallHost): Step {
  const target = plan(ctx).target.tag;
  return {
    describe: `${KUBECTL} get node ${node.name} -o json   (until Ready with kubelet ${target}, 5 minutes at most)`,
    run: async () => {
      const deadline = Date.now() + 5 * 60_000;
      for (let last = ''; ; ) {
        const r = await ctx.firstControlPlane.conn.exec(`${KUBECTL} get node ${shQuote(node.name)} -o json`);
        if (r.code === 0) {
          const n = JSON.parse(r.stdout) as { status?: { nodeInfo?: { kubeletVersion?: string }; conditions?: { type: string; status: string }[] } };
          const ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
          const version = n.status?.nodeInfo?.kubeletVersion ?? '?';
          if (ready && version === target) return;
          last = `Ready=${ready}, kubelet ${version}`;
        } else last = r.stderr.trim();
        if (Date.now() > deadline) throw new Error(`${node.label}: not Ready with kubelet ${target} after 5 minutes (${last})`);
        await new Promise((r) => setTimeout(r, 2000));
      }
    },
  };
}

/** Drain on the first control plane; the node's own steps; its kubelet restarted, Ready, uncordoned. */
function rollNode(ctx: InstallContext, node: InstallHost, ownSteps: Step[]): Step[] {
  const onCp = (cmd: string, timeoutMs = 10 * 60_000): Step => ({ describe: `(on ${ctx.firstControlPlane.label}) ${cmd}`, run: () => ctx.firstControlPlane.conn.run(cmd, { timeoutMs }) });
  return [
    onCp(`${KUBECTL} drain ${shQuote(node.name)} --ignore-daemonsets --delete-emptydir-data --timeout=5m`, 6 * 60_000),
    ...ownSteps,
    runtimePackages(ctx),
    packages(ctx, pinned(ctx, ['kubelet', 'kubectl'])),
    command('systemctl daemon-reload && systemctl restart kubelet'),
    nodeReady(ctx, node),
    onCp(`${KUBECTL} uncordon ${shQuote(node.name)}`),
  ];
}

export function upgradePhases(): InstallPhase[] {
  return [
    uploadPhaseFor(), //       the registry host: the new bundle, uploaded and checked
    distributePhaseFor(), //   every other host: its part, fetched from the registry host
    checkBundlePhase(), //     every host, every run: the unpacked tree is still the verified one
    upgradeJournaled('images', {
      // the registry keeps serving: new blobs and tags appear, none goes (seed-registry.sh)
      title: 'Add the new images to the registry (it keeps serving)',
      hosts: (_all, ctx) => [ctx.registryHost],
      steps: (_host, ctx) => [
        locked(`${hostScript(ctx, 'seed-registry.sh')} ${bundleDir(ctx)}/installer/registry-seed.txt ${bundleDir(ctx)}/images ${REMOTE_ROOT}/registry`, { timeoutMs: 10 * 60_000 }),
      ],
    }),
    upgradeJournaled('apply', {
      title: 'kubeadm upgrade apply on the first control plane',
      hosts: (_all, ctx) => [ctx.firstControlPlane],
      steps: (_host, ctx) => [
        packages(ctx, pinned(ctx, ['kubeadm'])),
        command(`kubeadm upgrade plan ${plan(ctx).target.tag}`, { timeoutMs: 5 * 60_000 }),
        locked(`kubeadm upgrade apply ${plan(ctx).target.tag} --yes`, { timeoutMs: 30 * 60_000 }),
      ],
    }),
    upgradeJournaled('control-plane', {
      title: 'kubeadm upgrade node on the other control planes',
      hosts: (all, ctx) => all.filter((h) => isControlPlane(h) && h !== ctx.firstControlPlane),
      concurrency: () => 1,
      stopOnFailure: true,
      steps: (_host, ctx) => [packages(ctx, pinned(ctx, ['kubeadm'])), locked('kubeadm upgrade node', { timeoutMs: 30 * 60_000 })],
    }),
    upgradeJournaled('kubelet-control-plane', {
      title: 'Upgrade the control planes\' kubelets, one node at a time',
      hosts: (all) => all.filter(isControlPlane),
      concurrency: () => 1,
      stopOnFailure: true,
      steps: (host, ctx) => rollNode(ctx, host, []),
    }),
    upgradeJournaled('worker', {
      title: 'Upgrade the workers, --max-unavailable at a time',
      hosts: (all) => all.filter((h) => isNode(h) && !isControlPlane(h)),
      concurrency: (ctx) => plan(ctx).maxUnavailable,
      stopOnFailure: true,
      steps: (host, ctx) => rollNode(ctx, host, [packages(ctx, pinned(ctx, ['kubeadm'])), locked('kubeadm upgrade node', { timeoutMs: 30 * 60_000 })]),
    }),
    flannelPhase(),
    upgradeJournaled('done', {
      title: 'Record the cluster\'s new version',
      hosts: (_all, ctx) => [ctx.firstControlPlane],
      steps: (_host, ctx) => [command(`printf '%s\\n' ${shQuote(JSON.stringify(clusterSettings(ctx), null, 2))} > ${CLUSTER_SETTINGS}`)],
    }),
  ];
}

function uploadPhaseFor(): InstallPhase {
  return byVersion((ctx) => uploadPhase(id(ctx, 'upload')));
}

function distributePhaseFor(): InstallPhase {
  return byVersion((ctx) => distributePhase(id(ctx, 'distribute')));
}

/** flannel's manifest applied again; a differential bundle without one left it to its base: unchanged, nothing to apply */
function flannelPhase(): InstallPhase {
  const phase = byVersion((ctx) => networkPhase(id(ctx, 'flannel'), 'Apply the bundle\'s flannel manifest again'));
  return { ...phase, hosts: (all, ctx) => (ctx.flannelManifest ? phase.hosts!(all, ctx) : []) };
}

/** A phase made once the context (and so the version) is known; title and hosts from a stand-in made the same way. */
function byVersion(make: (ctx: InstallContext) => InstallPhase): InstallPhase {
  const made = new WeakMap<InstallContext, InstallPhase>();
  const of = (ctx: InstallContext): InstallPhase => {
    if (!made.has(ctx)) made.set(ctx, make(ctx));
    return made.get(ctx)!;
  };
  const sample = make({ upgrade: { journalPrefix: 'upgrade' } } as InstallContext);
  return {
    title: sample.title,
    ...(sample.stopOnFailure ? { stopOnFailure: true } : {}),
    concurrency: (ctx) => of(ctx).concurrency?.(ctx) ?? Infinity,
    hosts: (all, ctx) => (of(ctx).hosts ? of(ctx).hosts!(all, ctx) : all),
    shouldRun: (host, ctx) => (of(ctx).shouldRun ? of(ctx).shouldRun!(host, ctx) : true),
    run: (host, ctx, signal) => of(ctx).run(host, ctx, signal),
    dryRun: (host, ctx) => of(ctx).dryRun(host, ctx),
    finish: (ctx) => of(ctx).finish?.(ctx),
  };
}
