/**
 * A real bundle for tests that need one (lab installs): built through the CLI from the simulated upstream and the
 * machine's Debian archive, with a download cache kept between runs so only the first run pays for the debs.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startUpstream } from '../upstream/index.js';
import { runCli } from './cli.js';
import { debianMirrorFlags } from './debian.js';

export const TEST_BUILD_CACHE = '/var/tmp/kube-bundle-test-cache/build';

export interface TestBundle {
  file: string;
  pubkey: string;
  lockFile: string;
}

export interface TestBundleOptions {
  /** the build target (default debian-12); only Debian targets, whose archive this machine's apt has */
  target?: string;
}

export async function buildTestBundle(dir: string, extra: string[] = [], opts: TestBundleOptions = {}): Promise<TestBundle> {
  const [bundle] = await buildTestBundles(dir, [{ version: 'v1.32.3', extra }], opts);
  return bundle!;
}

export interface TestBuild {
  version: string;
  extra?: string[];
  /** build differentially, since the lock file of the build at this index of the list */
  sinceIndex?: number;
}

/**
 * Several bundles signed by one key, from one simulated upstream (with its upgrade releases when a version other
 * than v1.32.3 is asked for), in order: a build may be differential since an earlier one's lock file.
 */
export async function buildTestBundles(dir: string, builds: TestBuild[], opts: TestBundleOptions = {}): Promise<TestBundle[]> {
  const target = opts.target ?? 'debian-12';
  const upstream = await startUpstream({ upgrades: builds.some((b) => b.version !== 'v1.32.3') });
  try {
    const keys = join(dir, 'keys');
    if (!existsSync(join(keys, 'signer.asc'))) {
      const keygen = await runCli(['keygen', '--out', keys]);
      assert.equal(keygen.code, 0, keygen.stderr);
    }
    const out: TestBundle[] = [];
    for (const b of builds) {
      const since = b.sinceIndex === undefined ? [] : ['--since', out[b.sinceIndex]!.lockFile];
      const file = join(dir, `kube-bundle-${b.version}-${target}-amd64${since.length ? `-since-${builds[b.sinceIndex!]!.version}` : ''}.tar`);
      const r = await runCli([
        'build', b.version, '-t', target, '--key', join(keys, 'signer.asc'), '-o', file, '--json',
        ...upstream.mirrorFlags.flatMap((m) => ['--mirror', m]),
        ...debianMirrorFlags(target),
        '--trust-key', upstream.k8sKeyFile,
        ...upstream.pinFlags.flatMap((p) => ['--pin', p]),
        '--cache', TEST_BUILD_CACHE,
        ...since,
        ...(b.extra ?? []),
      ]);
      assert.equal(r.code, 0, `bundle build ${b.version} failed:\n${r.stderr}`);
      out.push({ file, pubkey: join(keys, 'signer.pub.asc'), lockFile: JSON.parse(r.stdout).lockFile });
    }
    return out;
  } finally {
    await upstream.stop();
  }
}
