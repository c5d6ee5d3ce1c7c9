/** Typed stand-ins for what install works on: a host's facts, and a host with a connection that must not be used. */
import type { HostConnection, InstallHost } from '../../../src/core/install/context.js';
import type { Facts } from '../../../src/core/install/facts.js';
import type { HostSpec } from '../../../src/core/install/hosts.js';
import type { InterfaceAddress } from '../../../src/core/install/validate.js';

/** A Debian 12 amd64 host with room to spare and nothing installed; `over` changes what a test is about. */
export function testFacts(over: Partial<Facts> = {}): Facts {
  return {
    osId: 'debian',
    osIdLike: [],
    osVersion: '12',
    arch: 'amd64',
    hostname: 'host',
    machineId: '0'.repeat(32),
    clockSkewSeconds: 0,
    cpus: 4,
    memoryMiB: 8192,
    freeMiB: 50_000,
    listening: [],
    kubeletInstalled: false,
    clusterConfigured: false,
    containerdVersion: undefined,
    dockerRunning: false,
    journal: [],
    addresses: [],
    listeners: [],
    clusterSettings: false,
    ours: { registryConfigured: false, registryActive: false, haproxyConfigured: false, keepalivedConfigured: false },
    ...over,
  };
}

/** A connection for tests that never reach a host: every command fails, naming the host. */
function noConnection(label: string): HostConnection {
  const refuse = (): Promise<never> => Promise.reject(new Error(`${label}: no connection in this test`));
  return { label, exec: refuse, run: refuse, upload: refuse, uploadBytes: refuse, close: () => Promise.resolve() };
}

export function testHost(spec: HostSpec, name: string, facts: Partial<Facts> = {}): InstallHost {
  const label = `${name} (${spec.address})`;
  return { spec, label, name, ip: spec.address, conn: noConnection(label), facts: testFacts(facts) };
}

/** A host's addresses from `ip -o -4 addr show` output, one line per address: `2: eth0    inet 10.0.0.11/24 brd ...`. */
export function parseLinks(output: string): InterfaceAddress[] {
  const links: InterfaceAddress[] = [];
  for (const line of output.split('\n')) {
    const m = /^\d+:\s+([^\s@]+)\S*\s+inet\s+(\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(line);
    if (m) links.push({ iface: m[1]!, address: m[2]!, prefix: Number(m[3]) });
  }
  return links;
}
