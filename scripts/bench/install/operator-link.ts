/**
 * The operator's link in the lab: the CLI runs inside the netns hl-lab, whose only way to the hosts is the bridge
 * br0 (the address the hosts see as $NET.1). So what the operator sends and receives is what the hl-lab stack
 * sends and receives on br0, and the kernel counts exactly that in br0's own statistics:
 *
 *   - br0's tx_bytes/rx_bytes count frames the local stack transmits through the bridge device (br_dev_xmit) and
 *     frames the bridge passes up to the local stack (br_pass_frame_up). Frames the bridge forwards from one port
 *     (a host's veth) to another never touch br0's counters, so host-to-host traffic inside the "site" is not
 *     counted. Checked in this lab by checkOperatorCounter below, which the benchmark runs on its first multi-host
 *     lab: 64 MiB (67,108,864 bytes) piped over ssh from h1 to h2 moved br0's tx_bytes by 5,458 and rx_bytes by
 *     4,749 (the ssh session to h1 that started it) while h1's bridge port received 67,326,316; the same 64 MiB
 *     piped over ssh from hl-lab to h2 moved br0's tx_bytes by 67,324,134.
 *   - The counts are link-layer bytes: the bundle's bytes plus SSH framing, TCP/IP and Ethernet headers (a few %).
 *
 * The throttle is a token bucket filter on br0's egress (sch_tbf, built into this kernel: it has no loadable
 * modules). It sits on the bridge device's own transmit queue, which only the local stack's frames pass through,
 * so it limits what the operator sends and nothing the bridge forwards between hosts; what the operator receives
 * is not limited (an install sends far more than it receives).
 */
import type { Lab } from '../../../test/lab/lab.js';

export const OPERATOR_INTERFACE = 'br0';

export interface LinkCounters {
  txBytes: number;
  rxBytes: number;
}

export async function operatorCounters(lab: Lab): Promise<LinkCounters> {
  const stat = `/sys/class/net/${OPERATOR_INTERFACE}/statistics`;
  const r = await lab.inNetns(['cat', `${stat}/tx_bytes`, `${stat}/rx_bytes`]);
  const [tx, rx] = r.stdout.trim().split('\n').map(Number);
  if (!Number.isSafeInteger(tx) || !Number.isSafeInteger(rx)) throw new Error(`${stat}: unexpected counters ${JSON.stringify(r.stdout)}`);
  return { txBytes: tx!, rxBytes: rx! };
}

export function counterDelta(before: LinkCounters, after: LinkCounters): LinkCounters {
  return { txBytes: after.txBytes - before.txBytes, rxBytes: after.rxBytes - before.rxBytes };
}

/** Limit the operator's egress to `bytesPerSecond`; checks that the qdisc is in place. */
export async function throttleOperatorLink(lab: Lab, bytesPerSecond: number): Promise<void> {
  const rate = `${Math.round((bytesPerSecond * 8) / 1e3)}kbit`;
  await lab.inNetns(['tc', 'qdisc', 'replace', 'dev', OPERATOR_INTERFACE, 'root', 'tbf', 'rate', rate, 'burst', '256k', 'latency', '50ms']);
  const shown = await lab.inNetns(['tc', 'qdisc', 'show', 'dev', OPERATOR_INTERFACE]);
  if (!/\btbf\b/.test(shown.stdout)) throw new Error(`tc: no tbf qdisc on ${OPERATOR_INTERFACE} in ${lab.netns}: ${shown.stdout.trim()}`);
}

export interface CounterCheck {
  /** bytes sent in each transfer */
  bytes: number;
  /** host 1 to host 2: br0's tx and rx moved by this much (should be ~0) */
  hostToHost: LinkCounters;
  /** ... while host 1's bridge port received this much (the bytes did cross the bridge) */
  hostToHostOnPort: number;
  /** hl-lab to host 2: br0's tx moved by this much (should be ≥ bytes) */
  operatorToHost: LinkCounters;
  /** the claim holds: host-to-host traffic < 1 % of it counted, operator traffic fully counted */
  holds: boolean;
}

const CHECK_MIB = 64;
const HOST_KEY = '/root/.ssh/kb-bench-check';

/**
 * The experiment behind the claim above, on hosts 1 and 2 of a lab: ssh from host 1 to host 2 (with the lab key,
 * copied to host 1 for the time of the check and removed after) and from hl-lab to host 2, counting br0 and host 1's
 * bridge port around each.
 */
export async function checkOperatorCounter(lab: Lab): Promise<CounterCheck> {
  const [h1, h2] = lab.hosts;
  if (!h1 || !h2) throw new Error('the operator counter check needs two lab hosts');
  const bytes = CHECK_MIB * 2 ** 20;
  const send = (key: string, knownHosts: string): string =>
    `dd if=/dev/zero bs=1M count=${CHECK_MIB} status=none | ssh -i ${key} -o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=no -o BatchMode=yes -o LogLevel=ERROR root@${h2.ip} 'cat > /dev/null'`;
  await lab.copyTo(h1.index, lab.keyFile, HOST_KEY);
  try {
    const portRx = async (): Promise<number> => Number((await lab.inNetns(['cat', `/sys/class/net/${h1.name}/statistics/rx_bytes`])).stdout.trim());
    let before = await operatorCounters(lab);
    const portBefore = await portRx();
    await lab.ssh(h1.index, send(HOST_KEY, '/dev/null'));
    const hostToHost = counterDelta(before, await operatorCounters(lab));
    const hostToHostOnPort = (await portRx()) - portBefore;
    before = await operatorCounters(lab);
    await lab.inNetns(['bash', '-c', send(lab.keyFile, lab.knownHostsFile)]);
    const operatorToHost = counterDelta(before, await operatorCounters(lab));
    const holds = hostToHost.txBytes < bytes / 100 && hostToHostOnPort >= bytes && operatorToHost.txBytes >= bytes;
    return { bytes, hostToHost, hostToHostOnPort, operatorToHost, holds };
  } finally {
    await lab.ssh(h1.index, `rm -f ${HOST_KEY}`);
  }
}
