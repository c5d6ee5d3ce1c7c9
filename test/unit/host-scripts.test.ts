/**
 * The host-side scripts spell none of install's paths: they read the roots from the KB_* variables install puts in
 * front of them (host-paths.ts hostScriptEnv), so a path changes in host-paths.ts alone.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ETC, hostScriptEnv, REGISTRY_UNIT, REMOTE_ROOT } from '../../src/core/install/host-paths.js';
import { packageRoot } from '../../src/util/package-root.js';

const dir = join(packageRoot(), 'scripts', 'host');

test('no host script spells a path of install\'s; every variable they need is in hostScriptEnv()', () => {
  const env = hostScriptEnv();
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.sh'))) {
    const code = readFileSync(join(dir, name), 'utf8').split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
    for (const path of [REMOTE_ROOT, ETC, REGISTRY_UNIT]) assert.ok(!code.includes(path), `${name} spells ${path}`);
    for (const [, variable] of code.matchAll(/\$\{?(KB_[A-Z_]+)/g)) assert.ok(env.includes(`${variable}=`), `${name} reads ${variable}, which install does not set`);
  }
  assert.equal(env, `KB_ROOT=${REMOTE_ROOT} KB_ETC=${ETC} KB_REGISTRY_UNIT=${REGISTRY_UNIT}`);
});
