import { UserError } from '../util/errors.js';

/** A Kubernetes release version, e.g. v1.32.3. */
export interface KubeVersion {
  major: number;
  minor: number;
  patch: number;
  /** "v1.32.3" */
  tag: string;
  /** "1.32.3": how apt package versions start */
  plain: string;
  /** "v1.32": names the pkgs.k8s.io repository */
  minorTag: string;
}

const VERSION = /^v?(\d+)\.(\d+)\.(\d+)$/;

/** Accepts `v1.32.3` or `1.32.3`; anything else (pre-releases, `1.32`, `latest`) is refused with the reason. */
export function parseKubeVersion(text: string): KubeVersion {
  const m = VERSION.exec(text.trim());
  if (!m) {
    throw new UserError(
      `'${text}' is not a Kubernetes release version`,
      'give the exact release, e.g. v1.32.3 or 1.32.3 (pre-releases and bare minors are not supported)',
    );
  }
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major !== 1 || minor < 28) {
    throw new UserError(`Kubernetes ${text} is not supported`, 'kube-bundle builds Kubernetes v1.28 and later');
  }
  const plain = `${major}.${minor}.${patch}`;
  return { major, minor, patch, plain, tag: `v${plain}`, minorTag: `v${major}.${minor}` };
}

/** Negative when a is older than b, 0 when equal, positive when newer. */
export function compareKubeVersions(a: KubeVersion, b: KubeVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}
