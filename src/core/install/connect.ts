/**
 * The one way install and reset open an SSH connection to a host of the hosts file: the line's own user, port and
 * identity when it gives them, else the command's.
 */
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
