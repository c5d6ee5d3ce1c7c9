import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PackageIndex, type PackageSource } from '../../src/core/apt/index.js';

const SHA = (c: string) => c.repeat(64);

/** A Packages stanza with the fields the index requires filled in. */
function stanza(fields: Record<string, string>): string {
  const name = fields.Package ?? 'x';
  const version = fields.Version ?? '1.0';
  const all: Record<string, string> = {
    Package: name,
    Version: version,
    Architecture: 'amd64',
    Filename: `pool/main/${name[0]}/${name}/${name}_${version}_amd64.deb`,
    Size: '1000',
    SHA256: SHA('a'),
    ...fields,
  };
  return Object.entries(all)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
}

function source(label: string, stanzas: string[]): PackageSource {
  return { label, baseUrl: `https://example.test/${label}`, packages: stanzas.join('\n\n') + '\n', packagesUrl: `https://example.test/${label}/Packages` };
}

const main = source('bookworm', [
  stanza({ Package: 'containerd', Version: '1.6.20~ds1-1', Depends: 'runc (>= 0.1.0~), libc6 (>= 2.34)', Priority: 'optional' }),
  stanza({ Package: 'runc', Version: '1.1.5+ds1-1', Depends: 'libc6 (>= 2.34), libseccomp2 (>= 2.5.0)', 'Multi-Arch': 'foreign' }),
  stanza({ Package: 'libc6', Version: '2.36-9', Priority: 'required', Provides: 'libc6-abi (= 2.36)' }),
  stanza({ Package: 'exim4-daemon-light', Version: '4.96-15', Provides: 'mail-transport-agent' }),
  stanza({ Package: 'postfix', Version: '3.7.6-0+deb12u2', Provides: 'mail-transport-agent' }),
  stanza({ Package: 'tzdata', Version: '2024a-0+deb12u1', Architecture: 'all' }),
  stanza({ Package: 'armonly', Version: '1.0', Architecture: 'arm64' }),
  stanza({ Package: 'bash', Version: '5.2.15-2+b2', Essential: 'yes', Priority: 'required' }),
]);
const security = source('bookworm-security', [
  stanza({ Package: 'containerd', Version: '1.6.20~ds1-1+deb12u3', Depends: 'runc (>= 0.1.0~), libc6 (>= 2.34)', SHA256: SHA('b') }),
  stanza({ Package: 'runc', Version: '1.1.5+ds1-1', SHA256: SHA('c') }),
]);

describe('PackageIndex', () => {
  const index = PackageIndex.build([main, security], 'amd64');

  it('lists every version of a package, highest first, with its source', () => {
    const versions = index.versionsOf('containerd').map((r) => [r.version, r.source]);
    assert.deepEqual(versions, [
      ['1.6.20~ds1-1+deb12u3', 'bookworm-security'],
      ['1.6.20~ds1-1', 'bookworm'],
    ]);
    assert.equal(index.candidate('containerd')?.version, '1.6.20~ds1-1+deb12u3');
    assert.deepEqual(index.versionsOf('nope'), []);
    assert.equal(index.candidate('nope'), undefined);
  });

  it('keeps the first source of a version listed twice', () => {
    const runc = index.versionsOf('runc');
    assert.equal(runc.length, 1);
    assert.equal(runc[0]?.source, 'bookworm');
    assert.equal(runc[0]?.sha256, SHA('a'));
  });

  it('takes the index\'s architecture and all, and nothing else', () => {
    assert.equal(index.candidate('tzdata')?.architecture, 'all');
    assert.equal(index.candidate('armonly'), undefined);
    const arm = PackageIndex.build([main], 'arm64');
    assert.equal(arm.candidate('armonly')?.version, '1.0');
    assert.equal(arm.candidate('containerd'), undefined);
  });

  it('fills every record field and keeps the stanza text', () => {
    const runc = index.candidate('runc');
    assert.ok(runc);
    assert.equal(runc.filename, 'pool/main/r/runc/runc_1.1.5+ds1-1_amd64.deb');
    assert.equal(runc.baseUrl, 'https://example.test/bookworm');
    assert.equal(runc.size, 1000);
    assert.equal(runc.multiArch, 'foreign');
    assert.equal(runc.priority, undefined);
    assert.equal(runc.essential, false);
    assert.deepEqual(runc.depends, [[{ name: 'libc6', constraint: { op: '>=', version: '2.34' } }], [{ name: 'libseccomp2', constraint: { op: '>=', version: '2.5.0' } }]]);
    assert.deepEqual(runc.preDepends, []);
    assert.ok(runc.stanza.startsWith('Package: runc\nVersion: 1.1.5+ds1-1\n'));
    assert.ok(runc.stanza.endsWith('Multi-Arch: foreign'));
    const bash = index.candidate('bash');
    assert.equal(bash?.essential, true);
    assert.equal(bash?.priority, 'required');
  });

  it('finds providers of a virtual package by name, with their provided version', () => {
    assert.deepEqual(
      index.providersOf('mail-transport-agent').map((p) => p.record.name),
      ['exim4-daemon-light', 'postfix'],
    );
    const abi = index.providersOf('libc6-abi');
    assert.equal(abi[0]?.providedVersion, '2.36');
    assert.deepEqual(index.providersOf('nothing'), []);
  });

  it('names the Packages file, line and package of a bad stanza', () => {
    const bad = (s: string) => () => PackageIndex.build([source('k8s', [stanza({ Package: 'ok' }), s])], 'amd64');
    assert.throws(bad('Package: kubelet\nVersion: 1.32.3-1.1\nArchitecture: amd64'), /https:\/\/example.test\/k8s\/Packages:8: paragraph has no Filename field/);
    assert.throws(bad(stanza({ Package: 'kubelet', Version: '1.32.3-' })), /Packages:8: kubelet has an invalid Version '1.32.3-'/);
    assert.throws(bad(stanza({ Package: 'kubelet', Size: '12k' })), /Packages:8: kubelet 1.0: invalid Size '12k'/);
    assert.throws(bad(stanza({ Package: 'kubelet', SHA256: 'abc' })), /invalid SHA256 'abc'/);
    assert.throws(bad(stanza({ Package: 'kubelet', 'Multi-Arch': 'maybe' })), /unknown Multi-Arch value 'maybe'/);
  });

  it('reports a malformed Depends when it is first read, naming file, line, package and field', () => {
    const idx = PackageIndex.build([source('k8s', [stanza({ Package: 'kubelet', Version: '1.32.3-1.1', Depends: 'iptables (>= 1.4.21' })])], 'amd64');
    assert.throws(() => idx.candidate('kubelet')?.depends, /Packages:1: kubelet 1.32.3-1.1 Depends: cannot parse relation 'iptables \(>= 1.4.21'/);
  });
});

describe('PackageIndex over a Packages file on disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apt-index-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const withText = (label: string, text: string): PackageSource => {
    const file = join(dir, label);
    writeFileSync(file, text);
    return { label, baseUrl: `https://example.test/${label}`, packages: { file }, packagesUrl: file };
  };
  // many stanzas, so that the file is read in several pieces; one with UTF-8 beyond ASCII
  const stanzas = Array.from({ length: 3000 }, (_, i) => stanza({ Package: `pkg${i}`, Version: `1.${i}`, Depends: `pkg${i + 1}`, Description: `package ${i}\n ${'x'.repeat(2000)}` }));
  stanzas.push(stanza({ Package: 'tzdata', Version: '2024a', Description: 'Zürich — 東京' }));
  const text = stanzas.join('\n\n') + '\n';

  it('indexes the same records as the same bytes in memory, reading stanzas back from the file', () => {
    const fromFile = PackageIndex.build([withText('main', text)], 'amd64');
    const inMemory = PackageIndex.build([{ label: 'main', baseUrl: 'https://example.test/main', packages: Buffer.from(text), packagesUrl: 'm' }], 'amd64');
    for (const name of ['pkg0', 'pkg1234', 'pkg2999', 'tzdata']) {
      const a = fromFile.candidate(name);
      const b = inMemory.candidate(name);
      assert.ok(a && b, name);
      assert.equal(a.stanza, b.stanza);
      assert.deepEqual([a.version, a.filename, a.size, a.sha256, a.depends], [b.version, b.filename, b.size, b.sha256, b.depends]);
    }
    assert.ok(fromFile.candidate('tzdata')?.stanza.endsWith('Description: Zürich — 東京'));
    assert.equal([...fromFile.packageNames()].length, 3001);
  });

  it('names the line in the whole file of a bad stanza far into it', () => {
    const bad = withText('bad', text + '\n' + stanza({ Package: 'kubelet', Size: '12k' }) + '\n');
    const line = text.split('\n').length + 1;
    assert.throws(() => PackageIndex.build([bad], 'amd64'), new RegExp(`bad:${line}: kubelet 1.0: invalid Size '12k'`));
  });
});
