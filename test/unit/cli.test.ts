/**
 * The CLI as users run it: a child process, checked by exit code and output.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { packBundle } from '../../src/core/bundle/pack.js';
import { readSecretKey } from '../../src/core/pgp.js';
import { fixture, FLANNEL, MTIME, tempDir } from './bundle-fixture.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const HELP: Record<string, string[]> = {
  build: ['--target', '--arch', '--runtime', '--output', '--key', '--unsigned', '--mirror', '--trust-key', '--trust-archive-key', '--lock', '--dry-run', '--json'],
  verify: ['<file>', '--pubkey', '--allow-unsigned', '--json'],
  inspect: ['<file>', '--json'],
  keygen: ['--out', '--name', 'KUBE_BUNDLE_PASSPHRASE'],
  install: ['--hosts', '--bundle', '--pubkey', '--allow-unsigned', '--identity', '--dry-run'],
  upgrade: ['--hosts', '--bundle', '--pubkey', '--max-unavailable', '--concurrency', '--dry-run', '--json', 'Examples:', '--since'],
  reset: ['--hosts', '--yes', '--purge', '--dry-run'],
};

test('--help of the program and of every command exits 0 and shows its flags', async () => {
  const root = await run(['--help']);
  assert.equal(root.code, 0, root.stderr);
  for (const command of Object.keys(HELP)) assert.match(root.stdout, new RegExp(`^ +${command}\\b`, 'm'));
  const results = await Promise.all(Object.keys(HELP).map((command) => run([command, '--help'])));
  Object.entries(HELP).forEach(([command, flags], i) => {
    const r = results[i]!;
    assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: bundle ${command}`, 'm'));
    for (const flag of flags) assert.ok(r.stdout.includes(flag), `${command} --help lacks ${flag}:\n${r.stdout}`);
  });
});

test('a missing hosts file or one with errors is reported by name and line, before any connection', async (t) => {
  const dir = await tempDir(t);
  const hosts = join(dir, 'hosts.txt');
  await writeFile(hosts, '10.0.0.1 master\n10.0.0.2 worker\n');
  for (const [command, flag] of [['install', '--allow-unsigned'], ['reset', '--yes']] as const) {
    const missing = await run([command, '--hosts', join(dir, 'nope.txt'), flag]);
    assert.equal(missing.code, 2, command);
    assert.match(missing.stderr, /nope\.txt/);
    const bad = await run([command, '--hosts', hosts, flag]);
    assert.equal(bad.code, 2, command);
    assert.match(bad.stderr, /hosts\.txt:1: unknown role 'master'/);
  }
});

test('usage errors exit 2 and say what is wrong', async () => {
  const cases: [string[], RegExp][] = [
    [['verify'], /missing required argument 'file'/],
    [['verify', 'x.tar', '--bogus'], /unknown option '--bogus'/],
    [['keygen'], /required option '--out <dir>' not specified/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['build', 'v1.32.3', '--target', 'windows'], /argument 'windows' is invalid/],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  cases.forEach(([args, pattern], i) => {
    assert.equal(results[i]!.code, 2, args.join(' '));
    assert.match(results[i]!.stderr, pattern, args.join(' '));
  });
});

test('keygen, then verify and inspect a bundle signed with that key', async (t) => {
  const dir = await tempDir(t);
  const keys = join(dir, 'keys');
  const made = await run(['keygen', '--out', keys, '--name', 'cli test']);
  assert.equal(made.code, 0, made.stderr);
  const fingerprint = /fingerprint: ([0-9A-F]{40})/.exec(made.stdout)?.[1];
  assert.ok(fingerprint, made.stdout);
  assert.equal((await stat(join(keys, 'signer.asc'))).mode & 0o777, 0o600);

  const again = await run(['keygen', '--out', keys]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /signer\.asc already exists; refusing to overwrite/);

  const { entries, manifest } = await fixture(dir);
  const signingKey = await readSecretKey(await readFile(join(keys, 'signer.asc'), 'utf8'), 'signer.asc');
  const bundle = join(dir, 'b.tar');
  await packBundle({ output: bundle, entries, manifest, mtime: MTIME, signingKey });
  const pub = join(keys, 'signer.pub.asc');

  const [ok, okJson, inspect, inspectJson, noKey] = await Promise.all([
    run(['verify', bundle, '--pubkey', pub]),
    run(['verify', bundle, '--pubkey', pub, '--json']),
    run(['inspect', bundle]),
    run(['inspect', bundle, '--json']),
    run(['verify', bundle]),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const fileSha256 = createHash('sha256').update(await readFile(bundle)).digest('hex');
  assert.equal(ok.stdout, `${bundle}: OK, 10 files intact, signed by ${fingerprint}; sha256 of the file ${fileSha256}\n`);
  assert.equal(okJson.code, 0, okJson.stderr);
  assert.deepEqual({ ...JSON.parse(okJson.stdout), manifest: undefined }, { ok: true, signer: fingerprint, files: 10, problems: [], manifest: undefined, sha256: fileSha256 });
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, new RegExp(`^Signer +${fingerprint}`, 'm'));
  assert.match(inspect.stdout, /^ +kubeadm +1\.32\.3-1\.1 +amd64 +1\.5 KiB$/m);
  assert.equal(inspectJson.code, 0, inspectJson.stderr);
  const summary = JSON.parse(inspectJson.stdout);
  assert.equal(summary.signed, true);
  assert.equal(summary.manifest.signer, fingerprint);
  assert.equal(summary.totals.packages, 1500);
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /no public key .*\nhint: pass --pubkey/);

  // Change one byte of one member's content: verify fails, names it, and --json still reports.
  const bytes = await readFile(bundle);
  const at = bytes.indexOf('name: kube-flannel');
  bytes[at] = 'N'.charCodeAt(0);
  await writeFile(bundle, bytes);
  const [bad, badJson] = await Promise.all([run(['verify', bundle, '--pubkey', pub]), run(['verify', bundle, '--pubkey', pub, '--json'])]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, new RegExp(`failed verification \\(1 problem\\):\\n +changed +${FLANNEL}: sha256 differs`));
  assert.equal(badJson.code, 2);
  const report = JSON.parse(badJson.stdout);
  assert.equal(report.ok, false);
  assert.deepEqual(report.problems.map((p: { kind: string; path: string }) => `${p.kind} ${p.path}`), [`changed ${FLANNEL}`]);
});

test('a bad --pod-cidr exits 2 with one line naming the value and the rule, before the hosts file or any host is read', async () => {
  const r = await run(['install', '--hosts', '/nonexistent/hosts.txt', '--allow-unsigned', '--pod-cidr', '10.244.0.0/25']);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    "error: --pod-cidr '10.244.0.0/25': an IPv4 pod network's prefix must be /8 to /24 (kubeadm: every node gets a /24 of it, and the two masks may differ by at most 16)\n",
  );
  const quoted = await run(['install', '--hosts', '/nonexistent/hosts.txt', '--allow-unsigned', '--control-plane-endpoint', 'api.lan"\nkind: Evil']);
  assert.equal(quoted.code, 2, quoted.stderr);
  assert.equal(quoted.stderr.trimEnd().split('\n').length, 1, quoted.stderr);
  assert.match(quoted.stderr, /^error: --control-plane-endpoint "api\.lan\\"\\nkind: Evil": not host\[:port\]/);
});
