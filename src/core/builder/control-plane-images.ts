/**
 * Which control-plane images a Kubernetes version needs: the pinned table in bundles/control-plane-images.yaml,
 * and nothing else. The kubeadm that goes into the bundle is never executed to ask it (`kubeadm config images
 * list`): the build machine holds the signing key, and a downloaded binary does not run next to it. A version the
 * table does not cover fails, so a new patch release (which may change etcd's tag) is added to the table on purpose.
 */
import { UserError } from '../../util/errors.js';
import { controlPlaneImagesFile, controlPlaneImagesFromTable } from '../definitions.js';
import type { KubeVersion } from '../kube-version.js';

export function controlPlaneImages(version: KubeVersion): string[] {
  const images = controlPlaneImagesFromTable(version);
  if (images) return images;
  throw new UserError(
    `${controlPlaneImagesFile()} has no row for Kubernetes ${version.tag}, so its control-plane images are not known`,
    `add the row for ${version.minorTag} patch ${version.patch}: coredns, etcd and pause as that release's kubeadm lists them ` +
      `(its release notes, or \`kubeadm config images list --kubernetes-version ${version.tag}\` run on a machine without the signing key)`,
  );
}
