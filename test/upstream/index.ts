/**
 * The whole simulated upstream in one call: pkgs.k8s.io, registry.k8s.io / ghcr.io / docker.io, GitHub releases,
 * and with `ubuntu: true` Ubuntu's archive (ubuntu.ts), for the Ubuntu targets.
 * `mirrorFlags` are the `--mirror` flags that point `bundle build` at it; the bundle keeps upstream names.
 * `pinFlags` are the `--pin` values for its GitHub release files, whose bytes are not the real ones pinned in
 * bundles/components.yaml (as `k8sKeyFile` is the `--trust-key` for its pkgs.k8s.io).
 */
import { mkdirSync } from 'node:fs';
import { startK8sApt } from './apt.js';
import { startGithub } from './github.js';
import { startRegistries } from './registry.js';
import { startUbuntuArchive } from './ubuntu.js';

export interface Upstream {
  pkgs: string;
  github: string;
  registries: Record<'registry.k8s.io' | 'ghcr.io' | 'docker.io', string>;
  /** armored public key of the test key that signs the simulated pkgs.k8s.io */
  k8sKeyFile: string;
  /** with `ubuntu: true`: the armored public test key that signs the simulated Ubuntu archive (`--trust-archive-key`) */
  ubuntuKeyFile?: string;
  mirrorFlags: string[];
  /** `--pin` values: the sha256 of every release file the simulated GitHub serves, by its upstream URL */
  pinFlags: string[];
  stop(): Promise<void>;
}

export const DEFAULT_WORK_DIR = '/var/tmp/kube-bundle-upstream';

/**
 * `upgrades`: also serve the releases a v1.32.3 cluster upgrades to (v1.32.4, and v1.33.1 in a v1.33 repository),
 * v1.34.1 in a v1.34 repository (which skips a minor from v1.32), and their images; without it, the upstream offers exactly what the v1.32.3 tests expect of it. `ubuntu`: also
 * the simulated Ubuntu archive (ubuntu.ts).
 */
export async function startUpstream(opts: { host?: string; workDir?: string; upgrades?: boolean; ubuntu?: boolean } = {}): Promise<Upstream> {
  const host = opts.host ?? '127.0.0.1';
  const workDir = opts.workDir ?? DEFAULT_WORK_DIR;
  mkdirSync(workDir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  try {
    const upgrades = opts.upgrades ?? false;
    const apt = await startK8sApt({ host, workDir, upgrades });
    stops.push(apt.stop);
    const github = await startGithub({ host, workDir });
    stops.push(github.stop);
    const reg = await startRegistries({ host, workDir, upgrades });
    stops.push(reg.stop);
    const ubuntu = opts.ubuntu ? await startUbuntuArchive({ host, workDir }) : undefined;
    if (ubuntu) stops.push(ubuntu.stop);
    return {
      pkgs: apt.url,
      github: github.url,
      registries: reg.registries,
      k8sKeyFile: apt.keyFile,
      ...(ubuntu ? { ubuntuKeyFile: ubuntu.keyFile } : {}),
      mirrorFlags: [
        `https://pkgs.k8s.io=${apt.url}`,
        `https://github.com=${github.url}`,
        ...Object.entries(reg.registries).map(([name, url]) => `${name}=${url}`),
        ...(ubuntu?.mirrorFlags ?? []),
      ],
      pinFlags: github.pins,
      stop: () => stopAll(stops),
    };
  } catch (err) {
    await stopAll(stops);
    throw err;
  }
}

async function stopAll(stops: (() => Promise<void>)[]): Promise<void> {
  await Promise.allSettled(stops.reverse().map((s) => s()));
}
