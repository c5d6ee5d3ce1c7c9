import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resetCommand, resetScript } from '../../src/core/install/reset.js';
import { packageRoot } from '../../src/util/package-root.js';

test('reset runs the host script from stdin, with --purge only when asked', () => {
  // the script spells no path of kube-bundle's: it gets the roots in front of the command
  assert.equal(resetCommand(false), 'KB_ROOT=/var/lib/kube-bundle KB_ETC=/etc/kube-bundle KB_REGISTRY_UNIT=kube-bundle-registry.service bash -s --');
  assert.equal(resetCommand(true), 'KB_ROOT=/var/lib/kube-bundle KB_ETC=/etc/kube-bundle KB_REGISTRY_UNIT=kube-bundle-registry.service bash -s -- --purge');
});

test('reset-host.sh: every step runs through `step`, so that a failure is named and the exit is non-zero', () => {
  const script = resetScript();
  execFileSync('bash', ['-n'], { input: script });
  const steps = [...script.matchAll(/^(?:\[ .* \] && )?step "([^"]+)" (\w+)$/gm)].map((m) => ({ name: m[1]!, fn: m[2]! }));
  assert.ok(steps.length >= 9, `found the steps: ${steps.map((s) => s.name).join(', ')}`);
  for (const { fn } of steps) assert.match(script, new RegExp(`^${fn}\\(\\) \\{`, 'm'), `${fn} is defined`);
  assert.equal(new Set(steps.map((s) => s.name)).size, steps.length, 'step names are unique');
  // install's own files, which the steps recognise what to undo by, go last and only when every step succeeded
  const end = script.slice(script.lastIndexOf('if [ ${#failed[@]} -gt 0 ]'));
  assert.match(end, /exit 1\n\s*fi\nrm -rf "\$etc" "\$state"/);
  assert.doesNotMatch(script.slice(0, script.lastIndexOf('if [ ${#failed[@]} -gt 0 ]')), /rm -rf "\$etc"|rm -rf "\$state"/);
});

test('reset-host.sh: `step` runs a function under -e, counts its failure and goes on', () => {
  const script = resetScript();
  const stepFn = /^step\(\) \{[\s\S]*?^\}$/m.exec(script)![0];
  const probe = [
    'failed=()',
    stepFn,
    'ok() { true; }',
    'bad() { false; echo "not reached: -e holds inside a step"; }',
    'step "first" bad',
    'step "second" ok',
    'echo "failed: ${failed[*]}"',
  ].join('\n');
  const r = spawnSync('bash', ['-c', probe], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, 'failed: first\n', 'the failing step stopped at its first error; the next one ran');
  assert.equal(r.stderr, 'reset: FAILED: first (exit 1)\n');
});

test('the host scripts of the registry and HA steps parse, and take a lock against a cut run still going', () => {
  for (const name of ['setup-registry.sh', 'seed-registry.sh', 'setup-lb.sh', 'reset-host.sh']) {
    const text = readFileSync(join(packageRoot(), 'scripts', 'host', name), 'utf8');
    execFileSync('bash', ['-n'], { input: text });
    if (name !== 'seed-registry.sh') assert.match(text, /flock -w \d+ 9/, `${name} waits for a cut run still going`);
  }
});
