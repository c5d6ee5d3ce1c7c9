/**
 * `bundle reset`: undo an install on every host of a hosts file, in parallel, so they can be installed again.
 * The host-side script travels on stdin: it needs nothing from the bundle, which may be gone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../util/errors.js';
import { packageRoot } from '../../util/package-root.js';
import { connect } from '../ssh/connection.js';
import { Secrets } from '../ssh/command.js';
import { readHostsFile } from './hosts.js';

export interface ResetOptions {
  hostsFile: string;
  identity?: string;
  user: string;
  knownHosts: string;
  purge: boolean;
  dryRun: boolean;
  /** the operator said yes (--yes, or answered the prompt) */
  confirmed: boolean;
  log(line: string): void;
}

export interface ResetResult {
  ok: boolean;
  hosts: { host: string; ok: boolean; output: string }[];
}

export function resetScript(): string {
  return readFileSync(join(packageRoot(), 'scripts', 'host', 'reset-host.sh'), 'utf8');
}

/**
 * The command each host runs, the script arriving on its stdin. The script is resumable (a reset cut by a lost
 * connection is completed by the next one) and exits non-zero naming every step that failed.
 */
export function resetCommand(purge: boolean): string {
  return purge ? 'bash -s -- --purge' : 'bash -s --';
}

export async function reset(options: ResetOptions): Promise<ResetResult> {
  const specs = readHostsFile(options.hostsFile);
  const command = resetCommand(options.purge);
  if (options.dryRun) {
    for (const s of specs) options.log(`${s.address}$ ${command}   (scripts/host/reset-host.sh on stdin)`);
    return { ok: true, hosts: specs.map((s) => ({ host: s.address, ok: true, output: 'dry run' })) };
  }
  if (!options.confirmed) {
    throw new UserError(`reset removes Kubernetes from ${specs.length} host(s) in ${options.hostsFile}`, 'add --yes to go ahead (or --dry-run to see what it runs)');
  }
  const script = resetScript();
  const secrets = new Secrets();
  const results = await Promise.all(
    specs.map(async (spec) => {
      const label = spec.name ? `${spec.name} (${spec.address})` : spec.address;
      try {
        const conn = await connect(
          { host: spec.address, port: spec.port ?? 22, user: spec.user ?? options.user, label, ...((spec.identity ?? options.identity) ? { identityFile: spec.identity ?? options.identity } : {}) },
          { knownHostsFile: options.knownHosts, secrets },
        );
        try {
          const r = await conn.run(command, { stdin: script, timeoutMs: 10 * 60_000 });
          options.log(`✓ ${label}`);
          return { host: label, ok: true, output: r.stdout.trim() };
        } finally {
          await conn.close();
        }
      } catch (err) {
        options.log(`✗ ${label}: ${(err as Error).message}`);
        return { host: label, ok: false, output: (err as Error).message };
      }
    }),
  );
  return { ok: results.every((r) => r.ok), hosts: results };
}
