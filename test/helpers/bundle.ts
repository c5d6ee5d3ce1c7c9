/**
 * A real bundle for tests that need one (lab installs): built through the CLI from the simulated upstream and the
 * machine's Debian archive, with a download cache kept between runs so only the first run pays for the debs.
 */
import assert from 'node:assert/strict';
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
  const target = opts.target ?? 'debian-12';
  const upstream = await startUpstream();
  try {
    const keys = join(dir, 'keys');
    const keygen = await runCli(['keygen', '--out', keys]);
    assert.equal(keygen.code, 0, keygen.stderr);
    const file = join(dir, `kube-bundle-v1.32.3-${target}-amd64.tar`);
    const r = await runCli([
      'build', 'v1.32.3', '-t', target, '--key', join(keys, 'signer.asc'), '-o', file, '--json',
      ...upstream.mirrorFlags.flatMap((m) => ['--mirror', m]),
      ...debianMirrorFlags(target),
      '--trust-key', upstream.k8sKeyFile,
      ...upstream.pinFlags.flatMap((p) => ['--pin', p]),
      '--cache', TEST_BUILD_CACHE,
      ...extra,
    ]);
    assert.equal(r.code, 0, `bundle build failed:\n${r.stderr}`);
    return { file, pubkey: join(keys, 'signer.pub.asc'), lockFile: JSON.parse(r.stdout).lockFile };
  } finally {
    await upstream.stop();
  }
}
