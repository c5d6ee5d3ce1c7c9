/**
 * The in-site hand-out of the bundle, run here with the local shell and GNU tar (as root, like on a host): the
 * pulling host's script against the registry host's forced command, with `ssh` replaced by a stand-in that runs
 * the forced command locally (and records what was asked for). What arrives is checked against SHA256SUMS; a cut
 * transfer resumes file by file; what the host no longer needs goes; a source that serves other bytes, or asks
 * outside the bundle, is refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { finishScript } from '../../src/core/install/bundle-on-host.js';
import { authorizedKeyLine, knownHostsFor, makeDistributionKey, pullScript, serveScript, KEY_COMMENT, SERVE_SCRIPT } from '../../src/core/install/distribute.js';
import { tempDir } from './bundle-fixture.js';

const run = promisify(execFile);
const sha256 = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

const FILES: Record<string, string> = {
  'bundle.yaml': 'kind: Bundle\n',
  'installer/install-packages.sh': '#!/bin/sh\necho packages\n',
  'manifests/kube-flannel.yml': 'kind: Namespace\n',
  'packages/Packages': 'Package: kubelet\n',
  'packages/kubelet_1.0_amd64.deb': 'K'.repeat(5000),
  'packages/haproxy_1.0_amd64.deb': 'H'.repeat(3000),
  ['images/blobs/sha256/' + 'b'.repeat(64)]: 'layer bytes',
};
/** a worker's part: everything but haproxy and the image */
const PART = ['SHA256SUMS', 'bundle.yaml', 'installer/install-packages.sh', 'manifests/kube-flannel.yml', 'packages/Packages', 'packages/kubelet_1.0_amd64.deb'];

interface Site {
  source: string;
  dir: string;
  sumsSha256: string;
  sums: Map<string, string>;
  serve: string;
  bin: string;
  /** what the stand-in ssh was asked for, per call */
  asked: string;
}

/** A registry host's checked tree, its forced command, and an `ssh` that runs it (or fails like an unreachable host). */
async function site(t: { after(fn: () => Promise<void>): void }): Promise<Site> {
  const root = await tempDir(t);
  const source = join(root, 'registry-host/tree');
  const sums = new Map<string, string>();
  for (const [path, content] of Object.entries(FILES)) {
    await mkdir(dirname(join(source, path)), { recursive: true });
    await writeFile(join(source, path), content);
    sums.set(path, sha256(content));
  }
  const sumsText = [...sums].sort(([a], [b]) => (a < b ? -1 : 1)).map(([p, h]) => `${h}  ${p}\n`).join('');
  await writeFile(join(source, 'SHA256SUMS'), sumsText);
  const serve = join(root, 'serve-bundle');
  await writeFile(serve, serveScript(), { mode: 0o755 });
  const bin = join(root, 'bin');
  await mkdir(bin);
  const asked = join(root, 'asked');
  await writeFile(
    join(bin, 'ssh'),
    `#!/bin/sh\nif [ -n "\${FAKE_UNREACHABLE:-}" ]; then echo "ssh: connect to host 10.0.0.2 port 22: Connection timed out" >&2; exit 255; fi\n` +
      `tee -a ${asked} | ${serve} ${source}\n`,
    { mode: 0o755 },
  );
  return { source, dir: join(root, 'host/tree'), sumsSha256: sha256(sumsText), sums, serve, bin, asked };
}

function script(s: Site): string {
  const want = PART.filter((p) => p !== 'SHA256SUMS').map((p) => `${s.sums.get(p)}  ${p}\n`).join('');
  const b = { tar: '/nonexistent', dir: s.dir, sumsSha256: s.sumsSha256, signed: false, only: PART };
  return `${pullScript(s.dir, want, { address: '10.0.0.2', port: 22, user: 'root', knownHosts: '' }, false)}\n${finishScript(b)}`;
}

async function pull(s: Site, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  await writeFile(s.asked, '');
  try {
    // the private key comes on stdin, as from install
    const r = await run('sh', ['-c', 'printf "not a real key\\n" | sh -c "$1"', 'sh', script(s)], { env: { ...process.env, PATH: `${s.bin}:${process.env.PATH}`, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function tree(dir: string): Promise<string[]> {
  const { stdout } = await run('find', ['.', '-type', 'f', '-printf', '%P\n'], { cwd: dir });
  return stdout.trim().split('\n').sort();
}

test('a host fetches exactly its part, checked, with the packed modes; the forced command gets only what it lacks', async (t) => {
  const s = await site(t);
  const r = await pull(s);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await tree(s.dir), [...PART].sort());
  const bytes = PART.filter((p) => p !== 'SHA256SUMS').reduce((n, p) => n + FILES[p]!.length, 0) + (await stat(join(s.source, 'SHA256SUMS'))).size;
  assert.match(r.stdout, new RegExp(`fetched ${bytes}\\b`));
  assert.equal(((await stat(join(s.dir, 'installer/install-packages.sh'))).mode & 0o7777).toString(8), '755');
  await assert.rejects(stat(`${s.dir}.partial`));

  // a second run asks for SHA256SUMS only (its signature would come along in a signed bundle)
  const again = await pull(s);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(await readFile(s.asked, 'utf8'), 'SHA256SUMS\n');
});

test('a cut transfer resumes: a file that arrived whole is kept, a torn one fetched again', async (t) => {
  const s = await site(t);
  assert.equal((await pull(s)).code, 0);
  // as a transfer cut in the middle leaves it: the tree not yet moved into place, one file torn
  await run('mv', [s.dir, `${s.dir}.partial`]);
  await writeFile(join(`${s.dir}.partial`, 'packages/kubelet_1.0_amd64.deb'), 'K'.repeat(1234));
  await rm(join(`${s.dir}.partial`, 'bundle.yaml'));
  const r = await pull(s);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await readFile(s.asked, 'utf8')).split('\n').sort(), ['', 'SHA256SUMS', 'bundle.yaml', 'packages/kubelet_1.0_amd64.deb']);
  assert.deepEqual(await tree(s.dir), [...PART].sort());
});

test('what the host no longer needs goes: a whole tree of an earlier install keeps only this part', async (t) => {
  const s = await site(t);
  await mkdir(dirname(s.dir), { recursive: true });
  await run('cp', ['-a', s.source, s.dir]);
  const r = await pull(s);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await tree(s.dir), [...PART].sort());
  await assert.rejects(stat(join(s.dir, 'images')), 'the emptied images/ directory went too');
});

test('bytes the registry host serves that differ from SHA256SUMS are refused, naming the file', async (t) => {
  const s = await site(t);
  await writeFile(join(s.source, 'packages/kubelet_1.0_amd64.deb'), 'tampered on the registry host');
  const r = await pull(s);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /changed: packages\/kubelet_1\.0_amd64\.deb/);
  await assert.rejects(stat(s.dir), 'nothing under the final name');
});

test('an unreachable registry host exits 3 with ssh\'s own words, so that install falls back to an upload', async (t) => {
  const s = await site(t);
  const r = await pull(s, { FAKE_UNREACHABLE: '1' });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /Connection timed out/);
});

test('the forced command serves nothing SHA256SUMS does not list: no path outside the tree, no other file', async (t) => {
  const s = await site(t);
  await writeFile('/tmp/kube-bundle-test-secret', 'secret');
  t.after(() => rm('/tmp/kube-bundle-test-secret', { force: true }));
  for (const asked of ['../../../../../../tmp/kube-bundle-test-secret', '/tmp/kube-bundle-test-secret', 'packages', 'SHA256SUMS.partial']) {
    const r = await run('sh', ['-c', `printf '%s\\n' "$1" | ${s.serve} ${s.source} | tar -tf -`, 'sh', asked]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.notEqual(r.code, 0, `served ${asked}`);
    assert.match(r.stderr, new RegExp(`serve-bundle: not in the bundle: ${asked.replace(/[.]/g, '\\.')}`));
  }
});

test('the one-time key: an ed25519 pair, authorized for the forced command only, from the site\'s hosts only', async () => {
  const key = makeDistributionKey();
  assert.match(key.private, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  assert.match(key.public, /^ssh-ed25519 [A-Za-z0-9+/=]+$/);
  assert.notEqual(makeDistributionKey().public, key.public, 'a new key every install');
  const line = authorizedKeyLine(key, '/var/lib/kube-bundle/0123456789abcdef', ['10.0.0.3', '10.0.0.4']);
  assert.equal(line, `restrict,command="${SERVE_SCRIPT} /var/lib/kube-bundle/0123456789abcdef",from="10.0.0.3,10.0.0.4" ${key.public} ${KEY_COMMENT}`);
  assert.equal(knownHostsFor('10.0.0.2', 22, 'ssh-ed25519 AAAAC3 root@reg\necdsa-sha2-nistp256 AAAAE2 root@reg\n'), '10.0.0.2 ssh-ed25519 AAAAC3\n10.0.0.2 ecdsa-sha2-nistp256 AAAAE2\n');
  assert.equal(knownHostsFor('10.0.0.2', 2222, 'ssh-ed25519 AAAAC3\nnot a key\n'), '[10.0.0.2]:2222 ssh-ed25519 AAAAC3\n');
});
