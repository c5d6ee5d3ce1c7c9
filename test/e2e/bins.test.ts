/**
 * The package as users install it: both bins, `bundle` and `kube-bundle`, from the compiled dist/ (`npm test`
 * compiles first), linked the way npm links them.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '../..');

test('npm installs both bins; --help works from them and a closed pipe is no error', (t) => {
  const prefix = mkdtempSync(join(tmpdir(), 'kb-bins-'));
  t.after(() => rmSync(prefix, { recursive: true, force: true }));
  execFileSync('npm', ['install', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', ROOT], { stdio: 'pipe' });
  for (const bin of ['bundle', 'kube-bundle']) {
    const help = spawnSync(join(prefix, 'node_modules/.bin', bin), ['--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: bundle \[options\] \[command\]/);
    for (const command of ['build', 'verify', 'inspect', 'keygen', 'install', 'reset']) assert.match(help.stdout, new RegExp(`\\n  ${command} `));
    const build = spawnSync(join(prefix, 'node_modules/.bin', bin), ['build', '--help'], { encoding: 'utf8' });
    assert.equal(build.status, 0, build.stderr);
    assert.match(build.stdout, /--target <os>[\s\S]*--mirror <from=to>[\s\S]*--lock <file>/);
  }
  const piped = spawnSync('bash', ['-c', `${join(prefix, 'node_modules/.bin/bundle')} build --help | head -1`], { encoding: 'utf8' });
  assert.equal(piped.stdout.trim(), 'Usage: bundle build [options] <version>');
  assert.doesNotMatch(piped.stderr, /EPIPE/);
});
