/** What the upgrade tests read off a lab host: a package's version and its services' state, the stubs' log. */
import assert from 'node:assert/strict';
import type { Lab } from '../lab/lab.js';

export interface RuntimeState {
  /** the package's version as dpkg records it */
  version: string;
  /** MainPID of each unit, in the order asked */
  pids: string[];
  /** when the first unit's main process started, ms since the epoch */
  started: number;
}

/** A package's recorded version and its units' main processes (e.g. `containerd`, or `docker.io` with docker, cri-docker). */
export async function runtimeState(l: Lab, host: number, pkg: string, units: string[]): Promise<RuntimeState> {
  // systemctl show puts an empty line between units; --timestamp=us+utc: "Sun 2026-12-06 18:00:00.123456 UTC"
  const script = `dpkg-query -W -f '\${Version}\\n' ${pkg}; systemctl show -P ExecMainStartTimestamp --timestamp=us+utc ${units[0]}; systemctl show -P MainPID ${units.join(' ')}`;
  const [version, started, ...pids] = (await l.ssh(host, script)).stdout.trim().split('\n').filter(Boolean);
  return { version: version!, pids, started: Date.parse(started!.replace(/^\w+ (\S+) (\S+) UTC$/, '$1T$2Z')) };
}

/**
 * Makes dpkg on the host record `pkg` as older than the version it has (`<version>~older`), as on a host installed
 * from a bundle built before the distribution's last update of the package. Returns the version it has.
 */
export async function recordOlder(l: Lab, host: number, pkg: string): Promise<string> {
  const { stdout } = await l.ssh(host, `dpkg-query -W -f '\${Version}' ${pkg}`);
  await l.ssh(host, `sed -i '/^Package: ${pkg}$/,/^$/ s/^Version: .*/Version: ${stdout}~older/' /var/lib/dpkg/status`);
  return stdout;
}

/** The stubs' log (/var/log/kube-stub.log), read for where and when a line first appears. */
export class StubLog {
  constructor(readonly text: string) {}

  static async of(l: Lab, host: number, from = 0): Promise<StubLog> {
    return new StubLog((await l.ssh(host, 'cat /var/log/kube-stub.log')).stdout.slice(from));
  }

  /** Offset of the first match; the line must be there. */
  at(re: RegExp): number {
    const i = this.text.search(re);
    assert.ok(i >= 0, `${re} in the stubs' log`);
    return i;
  }

  /** Time of the first matching line (its leading UTC time), ms since the epoch; the line must be there. */
  time(re: RegExp): number {
    const line = this.text.split('\n').find((l) => re.test(l));
    assert.ok(line, `${re} in the stubs' log`);
    return Date.parse(line.split(' ')[0]!);
  }
}
