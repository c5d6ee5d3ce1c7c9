/**
 * Which control-plane images a Kubernetes version needs. The authority is the kubeadm binary that goes into the
 * bundle (`kubeadm config images list`): patch releases change etcd's tag inside it. When this machine can run
 * that binary we ask it; the table in bundles/ covers the rest; when both answer they must agree.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../../util/errors.js';
import { controlPlaneImagesFromTable } from '../definitions.js';
import type { KubeVersion } from '../kube-version.js';

const run = promisify(execFile);

export interface ControlPlaneImages {
  images: string[];
  /** where the list came from, for the build log */
  source: 'kubeadm' | 'table' | 'kubeadm+table';
}

/** The Debian architecture this machine runs, or undefined for one we never carry. */
export function hostDebArch(): string | undefined {
  return ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch];
}

/** Ask a kubeadm .deb's binary; undefined when it cannot run here (other architecture, no dpkg-deb, not executable). */
export async function imagesFromKubeadmDeb(deb: string, version: KubeVersion): Promise<string[] | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'kube-bundle-kubeadm-'));
  try {
    await run('dpkg-deb', ['-x', deb, dir]);
    const { stdout } = await run(join(dir, 'usr/bin/kubeadm'), ['config', 'images', 'list', '--kubernetes-version', version.tag], {
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
    });
    const images = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    return images.length > 0 ? images : undefined;
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Combine both answers; refuse when they disagree, naming each image that differs. */
export function reconcileImageLists(version: KubeVersion, fromKubeadm: string[] | undefined, fromTable: string[] | undefined): ControlPlaneImages {
  if (fromKubeadm && fromTable) {
    const onlyKubeadm = fromKubeadm.filter((i) => !fromTable.includes(i));
    const onlyTable = fromTable.filter((i) => !fromKubeadm.includes(i));
    if (onlyKubeadm.length || onlyTable.length) {
      throw new UserError(
        `the control-plane images for ${version.tag} disagree: kubeadm lists ${onlyKubeadm.join(', ') || 'nothing else'}, ` +
          `bundles/control-plane-images.yaml lists ${onlyTable.join(', ') || 'nothing else'}`,
        'kubeadm is the authority: correct the table in bundles/control-plane-images.yaml',
      );
    }
    return { images: fromKubeadm, source: 'kubeadm+table' };
  }
  if (fromKubeadm) return { images: fromKubeadm, source: 'kubeadm' };
  if (fromTable) return { images: fromTable, source: 'table' };
  throw new UserError(
    `no control-plane image list for ${version.tag}: bundles/control-plane-images.yaml has no row for it and the bundled kubeadm cannot run on this machine`,
    'add the row (from `kubeadm config images list` of that release) or build on a machine of the bundle\'s architecture',
  );
}

export async function controlPlaneImages(version: KubeVersion, kubeadmDeb?: string): Promise<ControlPlaneImages> {
  const fromKubeadm = kubeadmDeb ? await imagesFromKubeadmDeb(kubeadmDeb, version) : undefined;
  return reconcileImageLists(version, fromKubeadm, controlPlaneImagesFromTable(version));
}
