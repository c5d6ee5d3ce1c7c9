/**
 * What an install reports: as it goes, a line per host per phase, or a count line per phase with many hosts
 * (phase-report.ts); at the end the summary (printed, or as JSON with --json): the outcome, every failure by host and
 * hosts-file line, the nodes, where the kubeconfig is, and the time per phase; --json adds per host and phase its
 * status, time, error, bytes moved and notes.
 */
import { formatBytes } from '../../util/progress.js';
import type { InstallContext, InstallHost, InstallOptions } from './context.js';
import { errorMessage, MANY_HOSTS, PhaseReporter, type HostDetail } from './phase-report.js';
import type { RunResult } from './phase-runner.js';
import { READ_ONLY_PHASES } from './phases/index.js';

export interface InstallSummary {
  ok: boolean;
  dryRun: boolean;
  changed: boolean;
  cancelled: boolean;
  /** the hosts file the `line`s below are of */
  hostsFile?: string;
  nodes: { name: string; address: string; role: string }[];
  kubeconfig: string;
  phases: {
    title: string;
    status: string;
    seconds: number;
    /** when the phase failed before its hosts (its preparation) */
    error?: string;
    /** moved by all its hosts, when the phase reports bytes */
    bytes?: number;
    hosts: {
      host: string;
      /** the host's line in the hosts file */
      line?: number;
      status: string;
      seconds?: number;
      error?: string;
      bytes?: number;
      notes?: string[];
      plan?: string[];
    }[];
  }[];
  /** hosts that could not fetch their part of the bundle inside the site and got it uploaded from the operator's machine */
  uploadedDirectly: { host: string; line: number; reason: string }[];
  seconds: number;
}

/** The install's lines as the phases run: "• phase", then per host "✓ label (2.1s)", or the count with many hosts. */
export function installReporter(options: Pick<InstallOptions, 'log' | 'hostsFile' | 'live'>): PhaseReporter<InstallHost> {
  return new PhaseReporter<InstallHost>({
    log: options.log,
    hostsFile: options.hostsFile,
    ref: (h) => ({ label: h.label, line: h.spec.line }),
    heading: (title) => `• ${title}`,
    indent: '  ',
    hostLine: (r) => (r.status === 'ok' ? `  ✓ ${r.host.label} (${(r.durationMs / 1000).toFixed(1)}s)` : `  – ${r.host.label}: already done`),
    ...(options.live ? { live: options.live } : {}),
  });
}

export function summarize(
  ctx: InstallContext,
  result: RunResult<InstallHost>,
  started: number,
  report?: { detail(title: string, host: InstallHost): HostDetail | undefined },
): InstallSummary {
  const redact = (error: unknown): string => ctx.secrets.redact(errorMessage(error));
  const changed = result.phases.some((p) => p.hosts.some((h) => h.status === 'ok' && !READ_ONLY_PHASES.has(p.title)));
  return {
    ok: result.ok,
    dryRun: ctx.options.dryRun,
    changed: changed && !ctx.options.dryRun,
    cancelled: result.cancelled,
    hostsFile: ctx.options.hostsFile,
    nodes: ctx.hosts.map((n) => ({ name: n.name, address: n.spec.address, role: n.spec.role })),
    kubeconfig: `${ctx.firstControlPlane.label}:/etc/kubernetes/admin.conf (also /root/.kube/config there)`,
    phases: result.phases.map((p) => {
      const details = p.hosts.map((h) => report?.detail(p.title, h.host));
      const bytes = details.reduce((sum, d) => sum + (d?.bytes ?? 0), 0);
      return {
        title: p.title,
        status: p.status,
        seconds: p.durationMs / 1000,
        ...(p.error !== undefined ? { error: redact(p.error) } : {}),
        ...(bytes > 0 ? { bytes } : {}),
        hosts: p.hosts.map((h, i) => ({
          host: h.host.label,
          line: h.host.spec.line,
          status: h.status,
          seconds: h.durationMs / 1000,
          ...(h.error ? { error: redact(h.error) } : {}),
          ...(details[i]?.bytes ? { bytes: details[i].bytes } : {}),
          ...(details[i]?.notes.length ? { notes: details[i].notes.map((n) => ctx.secrets.redact(n)) } : {}),
          ...(h.plan ? { plan: h.plan } : {}),
        })),
      };
    }),
    uploadedDirectly: [...ctx.fallbacks].map(([h, reason]) => ({ host: h.label, line: h.spec.line, reason: ctx.secrets.redact(reason) })),
    seconds: (Date.now() - started) / 1000,
  };
}

/** How the summary names what ran: install, or upgrade. */
export interface SummaryVerb {
  name: string;
  done: string;
}
export const INSTALL_VERB: SummaryVerb = { name: 'Install', done: 'installed' };

export function formatSummary(s: InstallSummary, verb: SummaryVerb = INSTALL_VERB): string {
  const lines: string[] = [];
  if (s.dryRun) {
    lines.push('Dry run: nothing was changed.');
    return lines.join('\n') + '\n';
  }
  const failed = s.phases.flatMap((p) => p.hosts.filter((h) => h.status === 'failed').map((h) => ({ phase: p.title, ...h })));
  if (s.ok) lines.push(s.changed ? `Cluster ${verb.done}.` : `Nothing to do: every host is already as ${verb.done}.`);
  else if (s.cancelled) lines.push(`${verb.name} stopped (interrupted); run it again to resume.`);
  else lines.push(`${verb.name} failed on ${failed.length} host(s); run it again to resume after fixing:`);
  const where = (f: { host: string; line?: number }): string => (f.line !== undefined && s.hostsFile ? `${f.host} [${s.hostsFile}:${f.line}]` : f.host);
  for (const f of failed) lines.push(`  ${where(f)} — ${f.phase}:\n    ${(f.error ?? '').split('\n').join('\n    ')}`);
  for (const p of s.phases.filter((p) => p.error !== undefined)) lines.push(`  ${p.title}: ${p.error}`);
  if (s.uploadedDirectly.length) {
    lines.push('', `Uploaded from here (could not fetch their part inside the site): ${s.uploadedDirectly.length} host(s)`);
    for (const u of s.uploadedDirectly) lines.push(`  ${where(u)}: ${u.reason}`);
  }
  if (s.nodes.length > MANY_HOSTS) {
    // hundreds of lines would push the outcome off the screen: the count per role here, every node in --json
    const roles = [...new Set(s.nodes.map((n) => n.role))].map((role) => `${s.nodes.filter((n) => n.role === role).length} ${role}`);
    lines.push('', `Nodes: ${s.nodes.length} (${roles.join(', ')}; each one with --json)`);
  } else {
    lines.push('', 'Nodes:');
    for (const n of s.nodes) lines.push(`  ${n.name.padEnd(20)} ${n.address.padEnd(16)} ${n.role}`);
  }
  lines.push('', `kubeconfig: ${s.kubeconfig}`, '', 'Time per phase:');
  // phases with no host in this layout (no HA, one control plane) are left out
  const phases = s.phases.filter((p) => p.hosts.length > 0 || p.status !== 'ok');
  const width = Math.max(...phases.map((p) => p.title.length), 5);
  const status = (p: InstallSummary['phases'][number]) => (p.status === 'ok' && p.hosts.every((h) => h.status === 'skipped') ? 'done before' : p.status);
  const moved = (p: InstallSummary['phases'][number]) => (p.bytes ? `  ${formatBytes(p.bytes)} at ${formatBytes(p.bytes / Math.max(p.seconds, 0.001))}/s` : '');
  for (const p of phases) lines.push(`  ${p.title.padEnd(width)}  ${status(p).padEnd(11)} ${p.seconds.toFixed(1)}s${moved(p)}`);
  lines.push(`  ${'total'.padEnd(width + 13)} ${s.seconds.toFixed(1)}s`);
  return lines.join('\n') + '\n';
}

