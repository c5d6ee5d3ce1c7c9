/**
 * The one way install and reset open an SSH connection to a host of the hosts file: the line's own user, port and
 * identity when it gives them, else the command's.
 */
import { UserError } from '../../util/errors.js';
import { Limiter } from '../../util/limiter.js';
import type { Secrets } from '../ssh/command.js';
import { connect, type Connection } from '../ssh/connection.js';
import type { HostSpec } from './hosts.js';

/** What the command line gives for every host. */
export interface ConnectDefaults {
  user: string;
  identity?: string;
  knownHosts: string;
  /** record unknown host keys (a changed key is refused regardless) */
  acceptNewHostKeys?: boolean;
  secrets: Secrets;
}

/** How messages name a host before it is connected: "cp1 (10.0.0.11)", or its address. */
export function specLabel(spec: HostSpec): string {
  return spec.name ? `${spec.name} (${spec.address})` : spec.address;
}

export function connectToHost(spec: HostSpec, defaults: ConnectDefaults): Promise<Connection> {
  const identityFile = spec.identity ?? defaults.identity;
  return connect(
    { host: spec.address, port: spec.port ?? 22, user: spec.user ?? defaults.user, label: specLabel(spec), ...(identityFile ? { identityFile } : {}) },
    { knownHostsFile: defaults.knownHosts, secrets: defaults.secrets, ...(defaults.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}) },
  );
}

export interface ConnectAllOptions<C, T> {
  hostsFile: string;
  /** SSH handshakes in flight at once (--concurrency; limits.ts says why) */
  concurrency: number;
  connect(spec: HostSpec): Promise<C>;
  /** what to learn over a new connection (facts); runs outside the handshake limit */
  examine(spec: HostSpec, conn: C): Promise<T>;
}

/**
 * Connects to every host and examines it, with at most `concurrency` handshakes in flight: hundreds of hosts are
 * not all asked at once to finish a handshake within the connect timeout, and a host that many connect into (a
 * jump host) sees no more than that many unauthenticated connections. Every host that cannot be reached is reported
 * together, naming its hosts-file line, every connection made is closed, and nothing is changed.
 */
export async function connectAll<C extends { close(): Promise<void> }, T>(specs: HostSpec[], opts: ConnectAllOptions<C, T>): Promise<T[]> {
  const handshakes = new Limiter(Math.max(1, opts.concurrency));
  const opened: C[] = [];
  const results = await Promise.allSettled(
    specs.map(async (spec) => {
      const conn = await handshakes.run(() => opts.connect(spec));
      opened.push(conn);
      return opts.examine(spec, conn);
    }),
  );
  const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${specs[i]!.address} (${opts.hostsFile}:${specs[i]!.line}): ${(r.reason as Error).message}`] : []));
  if (failures.length) {
    await Promise.allSettled(opened.map((c) => c.close()));
    const hint = failures.some((f) => /host key/i.test(f)) ? 'check the host keys; --accept-new-host-keys records unknown ones (a changed key is always refused)' : undefined;
    throw new UserError(`cannot reach ${failures.length} of ${specs.length} host(s); nothing was changed:\n  ${failures.join('\n  ')}`, hint);
  }
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
