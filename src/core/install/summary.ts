/**
 * What an install reports: one line per host per phase as it goes, and at the end the summary (printed, or as
 * JSON with --json): the outcome, the nodes, where the kubeconfig is, and the time per phase.
 */
import type { InstallContext, InstallHost } from './context.js';
import type { PhaseEvent, RunResult } from './phase-runner.js';
import { READ_ONLY_PHASES } from './phases/index.js';

export interface InstallSummary {
  ok: boolean;
  dryRun: boolean;
  changed: boolean;
  cancelled: boolean;
  nodes: { name: string; address: string; role: string }[];
  kubeconfig: string;
  phases: { title: string; status: string; seconds: number; error?: string; hosts: { host: string; status: string; error?: string; plan?: string[] }[] }[];
  /** hosts that could not fetch their part of the bundle inside the site and got it uploaded from the operator's machine */
  uploadedDirectly: { host: string; line: number; reason: string }[];
  seconds: number;
}


export function logEvent(event: PhaseEvent<InstallHost>, log: (line: string) => void): void {
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

export function summarize(ctx: InstallContext, result: RunResult<InstallHost>, started: number): InstallSummary {
  const changed = result.phases.some((p) => p.hosts.some((h) => h.status === 'ok' && !READ_ONLY_PHASES.has(p.title)));
  return {
    ok: result.ok,
    dryRun: ctx.options.dryRun,
    changed: changed && !ctx.options.dryRun,
    cancelled: result.cancelled,
    nodes: ctx.hosts.map((n) => ({ name: n.name, address: n.spec.address, role: n.spec.role })),
    kubeconfig: `${ctx.firstControlPlane.label}:/etc/kubernetes/admin.conf (also /root/.kube/config there)`,
    phases: result.phases.map((p) => ({
      title: p.title,
      status: p.status,
      seconds: p.durationMs / 1000,
      ...(p.error ? { error: ctx.secrets.redact((p.error as Error).message ?? String(p.error)) } : {}),
      hosts: p.hosts.map((h) => ({
        host: h.host.label,
        status: h.status,
        ...(h.error ? { error: ctx.secrets.redact((h.error as Error).message ?? String(h.error)) } : {}),
        ...(h.plan ? { plan: h.plan } : {}),
      })),
    })),
    uploadedDirectly: [...ctx.fallbacks].map(([h, reason]) => ({ host: h.label, line: h.spec.line, reason: ctx.secrets.redact(reason) })),
    seconds: (Date.now() - started) / 1000,
  };
}

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
  for (const p of s.phases.filter((p) => p.error)) lines.push(`  ${p.title}: ${p.error}`);
  if (s.uploadedDirectly.length) {
    lines.push('', `Uploaded from here (could not fetch their part inside the site): ${s.uploadedDirectly.length} host(s)`);
    for (const u of s.uploadedDirectly) lines.push(`  ${u.host} (hosts file line ${u.line}): ${u.reason}`);
  }
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

