/**
 * The simulated upstream for the benchmark: the same services as test/upstream/index.ts `startUpstream()`, started
 * piece by piece because the benchmark also needs the registries' writable backend (to push the 1 GiB image),
 * which `startUpstream()` does not expose.
 */
import { startK8sApt } from '../../../test/upstream/apt.js';
import { startGithub } from '../../../test/upstream/github.js';
import { DEFAULT_WORK_DIR } from '../../../test/upstream/index.js';
import { startRegistries } from '../../../test/upstream/registry.js';
import { debianMirrorFlags } from '../../../test/helpers/debian.js';

export interface BenchUpstream {
  /** every `--mirror` value a build needs: the simulated services and this machine's Debian archive */
  mirrors: string[];
  /** armored public key that signs the simulated pkgs.k8s.io (for `--trust-key`) */
  k8sKeyFile: string;
  /** `--pin` values for the simulated GitHub's release files (their bytes are not the real, pinned ones) */
  pins: string[];
  /** writable distribution registry behind the proxies; repositories are `<upstream>/<repository>` */
  backendUrl: string;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

/** `upgrades`: also the releases an upgrade goes to (v1.32.4, v1.33.1), as test/upstream's `startUpstream` serves them. */
export async function startBenchUpstream({ upgrades = false }: { upgrades?: boolean } = {}): Promise<BenchUpstream> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    await Promise.allSettled(stops.reverse().map((s) => s()));
  };
  try {
    const apt = await startK8sApt({ host: HOST, workDir: DEFAULT_WORK_DIR, upgrades });
    stops.push(apt.stop);
    const github = await startGithub({ host: HOST, workDir: DEFAULT_WORK_DIR });
    stops.push(github.stop);
    const reg = await startRegistries({ host: HOST, workDir: DEFAULT_WORK_DIR, upgrades });
    stops.push(reg.stop);
    const debianFlags = debianMirrorFlags().filter((f) => f !== '--mirror');
    return {
      mirrors: [
        `https://pkgs.k8s.io=${apt.url}`,
        `https://github.com=${github.url}`,
        ...Object.entries(reg.registries).map(([name, url]) => `${name}=${url}`),
        ...debianFlags,
      ],
      k8sKeyFile: apt.keyFile,
      pins: github.pins,
      backendUrl: reg.backendUrl,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
