/**
 * What install does per distribution (src/core/install/os.ts): each role's packages from the target's definition,
 * and on Ubuntu, ufw turned off before the packages when it is active. The port command is run by sh with a PATH
 * holding only grep and, where a test wants one, a fake `ufw` that answers `status` and logs every call.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadComponents, loadTarget } from '../../src/core/definitions.js';
import { osFor } from '../../src/core/install/os.js';
import { runToEnd } from './helpers/process.js';

const KUBE = loadComponents().kubernetes.packages;
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'kb-host-os-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A bin directory for one host: grep, and with `status` a ufw that prints it for `ufw status` — `translated` unless
 * LC_ALL=C, as ufw's gettext catalogs do under a host's own locale — and logs its arguments to `log`.
 */
function fakeBin(name: string, status?: { english: string; translated: string }): { bin: string; log: string } {
  const bin = join(dir, name);
  const log = join(dir, `${name}.log`);
  mkdirSync(bin);
  writeFileSync(log, '');
  const grep = ['/usr/bin/grep', '/bin/grep'].find((g) => existsSync(g));
  assert.ok(grep, 'grep is installed');
  symlinkSync(grep, join(bin, 'grep'));
  if (status) {
    const ufw = join(bin, 'ufw');
    writeFileSync(ufw, [
      '#!/bin/sh',
      `echo "$*" >> '${log}'`,
      'if [ "$1" = status ]; then',
      `  if [ "$LC_ALL" = C ]; then echo '${status.english}'; else echo '${status.translated}'; fi`,
      'fi',
      '',
    ].join('\n'));
    chmodSync(ufw, 0o755);
  }
  return { bin, log };
}

async function preparePorts(target: string, bin: string) {
  const command = osFor(loadTarget(target), KUBE).preparePorts();
  return runToEnd('/bin/sh', ['-c', command], { env: { PATH: bin, LANG: 'de_DE.UTF-8' } });
}

const ACTIVE = { english: 'Status: active', translated: 'Status: aktiv' };
const INACTIVE = { english: 'Status: inactive', translated: 'Status: inaktiv' };

for (const target of ['ubuntu-22.04', 'ubuntu-24.04']) {
  test(`${target}: an active ufw is disabled before the packages, whatever the host's locale`, async () => {
    const { bin, log } = fakeBin(`${target}-active`, ACTIVE);
    const r = await preparePorts(target, bin);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['status', 'disable']);
  });
}

test('ubuntu: an inactive ufw is left alone, and a host without ufw passes', async () => {
  const inactive = fakeBin('inactive', INACTIVE);
  const r = await preparePorts('ubuntu-24.04', inactive.bin);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readFileSync(inactive.log, 'utf8').trim().split('\n'), ['status']);

  const none = fakeBin('no-ufw');
  const bare = await preparePorts('ubuntu-22.04', none.bin);
  assert.equal(bare.code, 0, bare.stderr);
});

test('debian: ufw is not touched, even when active', async () => {
  for (const target of ['debian-12', 'debian-13']) {
    const { bin, log } = fakeBin(`${target}-active`, ACTIVE);
    const r = await preparePorts(target, bin);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(log, 'utf8'), '', target);
  }
});

test('each role\'s packages come from the Ubuntu target\'s definition', () => {
  const target = loadTarget('ubuntu-24.04');
  const os = osFor(target, KUBE);
  const p = target.packages;
  assert.deepEqual(os.packages('worker', 'containerd', { registryHere: false, ha: false }), [...p.host, ...KUBE, ...p.containerd]);
  assert.deepEqual(
    os.packages('control-plane', 'docker', { registryHere: true, ha: true }),
    [...p.host, ...KUBE, ...p.containerd, ...p.docker, 'cri-dockerd', ...p.registry, ...p.ha],
  );
  assert.deepEqual(os.packages('lb', 'containerd', { registryHere: false, ha: true }), [...p.host, ...p.ha]);
  assert.deepEqual(os.packages('registry', 'docker', { registryHere: true, ha: true }), [...p.host, ...p.registry]);
});
