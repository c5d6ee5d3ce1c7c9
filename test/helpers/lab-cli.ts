/** Running `bundle` against lab hosts the way an operator on the site's admin host would. */
import { writeFileSync } from 'node:fs';
import type { Lab, RunResult } from '../lab/lab.js';
import { CLI_MAIN } from './cli.js';

/** The CLI inside the lab's network namespace, with the lab's SSH key and known_hosts (unless another is given). */
export function labCli(lab: Lab, args: string[], opts: { knownHosts?: string } = {}): Promise<RunResult> {
  return lab.inNetns(
    [process.execPath, '--import', 'tsx', CLI_MAIN, ...args, '-i', lab.keyFile, '--known-hosts', opts.knownHosts ?? lab.knownHostsFile],
    { check: false, timeoutMs: 15 * 60_000 },
  );
}

/** A hosts file with one line per role, given to the lab hosts in order (h1, h2, ...). */
export function writeLabHostsFile(lab: Lab, file: string, roles: string[]): string {
  writeFileSync(file, roles.map((role, i) => `${lab.hosts[i]!.ip} ${role}`).join('\n') + '\n');
  return file;
}
