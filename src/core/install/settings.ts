/**
 * The settings a cluster is made with, recorded on its first control plane at init. Phases already done are not
 * redone on a re-run, so a re-run with other settings would silently keep the old ones: it is refused instead,
 * naming each difference.
 */
import { UserError } from '../../util/errors.js';
import { CLUSTER_SETTINGS } from './host-paths.js';
import type { InstallContext } from './context.js';

export interface ClusterSettings {
  kubernetesVersion: string;
  runtime: string;
  podCidr: string;
  serviceCidr: string;
  endpoint: string;
  registry: string;
}

export function clusterSettings(ctx: InstallContext): ClusterSettings {
  return {
    kubernetesVersion: ctx.manifest.kubernetesVersion,
    runtime: ctx.options.runtime,
    podCidr: ctx.options.podCidr,
    serviceCidr: ctx.options.serviceCidr,
    endpoint: ctx.endpoint,
    registry: ctx.registry,
  };
}

/** Differences between what the cluster was made with and what this run asks for, as `name: was X, now Y`. */
export function settingsDifferences(recorded: Partial<ClusterSettings>, wanted: ClusterSettings): string[] {
  return (Object.keys(wanted) as (keyof ClusterSettings)[])
    .filter((k) => recorded[k] !== undefined && recorded[k] !== wanted[k])
    .map((k) => `${k}: the cluster has ${recorded[k]}, this run asks for ${wanted[k]}`);
}

/** On a re-run (init done on the first control plane), refuse settings that differ from the cluster's. */
export async function checkClusterSettings(ctx: InstallContext): Promise<void> {
  const cp = ctx.firstControlPlane;
  if (!cp.facts.journal.includes('init')) return;
  const read = await cp.conn.exec(`cat ${CLUSTER_SETTINGS}`);
  if (read.code !== 0) return; // a cluster made before settings were recorded
  let recorded: Partial<ClusterSettings>;
  try {
    recorded = JSON.parse(read.stdout) as Partial<ClusterSettings>;
  } catch {
    throw new UserError(`${cp.label}: ${CLUSTER_SETTINGS} is not JSON; was it edited?`);
  }
  const diffs = settingsDifferences(recorded, clusterSettings(ctx));
  if (diffs.length) {
    throw new UserError(
      `this cluster was installed with other settings; nothing was changed:\n  ${diffs.join('\n  ')}`,
      'run again with the cluster\'s settings, or `bundle reset` the hosts to install anew',
    );
  }
}
