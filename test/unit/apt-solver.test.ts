import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PackageIndex } from '../../src/core/apt/index.js';
import { baseSystem, resolveClosure, type Closure, type RootRequest } from '../../src/core/apt/solver.js';
import { UserError } from '../../src/util/errors.js';

/** `name version [Field: value]...` shorthand for a Packages stanza with placeholder Filename/Size/SHA256. */
function pkg(name: string, version: string, fields: Record<string, string> = {}): string {
  const all: Record<string, string> = {
    Package: name,
    Version: version,
    Architecture: 'amd64',
    Filename: `pool/${name}_${version}_amd64.deb`,
    Size: '100',
    SHA256: '0'.repeat(64),
    ...fields,
  };
  return Object.entries(all)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
}

function indexOf(...stanzas: string[]): PackageIndex {
  return PackageIndex.build([{ label: 'test', baseUrl: 'https://example.test/', packages: stanzas.join('\n\n'), packagesUrl: 'test/Packages' }], 'amd64');
}

function names(closure: Closure): string[] {
  return closure.packages.map((p) => `${p.name}=${p.version}`);
}

function roots(...specs: string[]): RootRequest[] {
  return specs.map((s) => {
    const [name, version] = s.split('=');
    return version === undefined ? { name: name as string } : { name: name as string, version };
  });
}

const exclude = { excludePriorityRequired: true };

function throwsUserError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

describe('resolveClosure: the basic walk', () => {
  const index = indexOf(
    pkg('containerd', '1.6.20~ds1-1+deb12u3', { Depends: 'runc (>= 0.1.0~), libc6 (>= 2.34)' }),
    pkg('runc', '1.1.5+ds1-1+deb12u1', { Depends: 'libc6 (>= 2.34), libseccomp2 (>= 2.5.0)' }),
    pkg('libseccomp2', '2.5.4-1+deb12u1', { Depends: 'libc6 (>= 2.34)', 'Pre-Depends': 'libc6' }),
    pkg('docker-registry', '2.8.2+ds1-1', { Depends: 'adduser', 'Pre-Depends': 'init-system-helpers (>= 1.54~)', Recommends: 'apache2-utils', Suggests: 'docs' }),
    pkg('adduser', '3.134', { Architecture: 'all', Priority: 'important', Depends: 'passwd' }),
    pkg('passwd', '1:4.13+dfsg1-1', { Priority: 'required', Depends: 'libpam0g' }),
    pkg('libpam0g', '1.5.2-6', { Priority: 'optional' }),
    pkg('init-system-helpers', '1.65.2', { Architecture: 'all', Essential: 'yes', Priority: 'optional', Depends: 'perl-base' }),
    pkg('perl-base', '5.36.0-7', { Essential: 'yes', Priority: 'required' }),
    pkg('libc6', '2.36-9+deb12u10', { Priority: 'required', Depends: 'libgcc-s1' }),
    pkg('libgcc-s1', '12.2.0-14'),
    pkg('apache2-utils', '2.4.62-1'),
  );

  it('follows Depends and Pre-Depends, skipping required and essential packages with their dependencies', () => {
    const closure = resolveClosure(index, roots('containerd', 'docker-registry'), exclude);
    assert.deepEqual(names(closure), ['adduser=3.134', 'containerd=1.6.20~ds1-1+deb12u3', 'docker-registry=2.8.2+ds1-1', 'libseccomp2=2.5.4-1+deb12u1', 'runc=1.1.5+ds1-1+deb12u1']);
    assert.deepEqual(closure.excluded, [
      { name: 'init-system-helpers', reason: 'Essential: yes', neededBy: 'docker-registry 2.8.2+ds1-1' },
      { name: 'libc6', reason: 'Priority: required', neededBy: 'containerd 1.6.20~ds1-1+deb12u3' },
      { name: 'passwd', reason: 'Priority: required', neededBy: 'docker-registry 2.8.2+ds1-1 -> adduser 3.134' },
    ]);
  });

  it('takes required and essential packages too when told not to exclude them', () => {
    const closure = resolveClosure(index, roots('containerd', 'docker-registry'), { excludePriorityRequired: false });
    assert.deepEqual(
      closure.packages.map((p) => p.name),
      ['adduser', 'containerd', 'docker-registry', 'init-system-helpers', 'libc6', 'libgcc-s1', 'libpam0g', 'libseccomp2', 'passwd', 'perl-base', 'runc'],
    );
    assert.deepEqual(closure.excluded, []);
  });

  it('never follows Recommends or Suggests', () => {
    const closure = resolveClosure(index, roots('docker-registry'), exclude);
    assert.ok(!closure.packages.some((p) => p.name === 'apache2-utils' || p.name === 'docs'));
  });

  it('traces why each package is in the closure when asked', () => {
    const closure = resolveClosure(index, roots('containerd'), { ...exclude, trace: true });
    assert.deepEqual(closure.trace, [
      { name: 'containerd', version: '1.6.20~ds1-1+deb12u3', relation: 'requested', neededBy: '' },
      { name: 'libseccomp2', version: '2.5.4-1+deb12u1', relation: 'libseccomp2 (>= 2.5.0)', neededBy: 'containerd 1.6.20~ds1-1+deb12u3 -> runc 1.1.5+ds1-1+deb12u1' },
      { name: 'runc', version: '1.1.5+ds1-1+deb12u1', relation: 'runc (>= 0.1.0~)', neededBy: 'containerd 1.6.20~ds1-1+deb12u3' },
    ]);
    assert.equal(resolveClosure(index, roots('containerd'), exclude).trace, undefined);
  });
});

describe('resolveClosure: the base system', () => {
  // As in bookworm: libc6 and libgcc-s1 are Priority: optional, on every host only because required packages need them.
  const index = indexOf(
    pkg('dpkg', '1.21.23', { Priority: 'required', 'Pre-Depends': 'libc6 (>= 2.34), tar (>= 1.28-1)', Depends: 'missing-on-purpose' }),
    pkg('tar', '1.34', { Priority: 'required', Essential: 'yes', 'Pre-Depends': 'libc6 (>= 2.34)' }),
    pkg('libc6', '2.36-9', { Priority: 'optional', Depends: 'libgcc-s1' }),
    pkg('libgcc-s1', '12.2.0-14', { Priority: 'optional' }),
    pkg('libfoo', '1', { Priority: 'optional', Depends: 'libc6' }),
    pkg('app', '1', { Depends: 'libc6 (>= 2.34), libgcc-s1, libfoo, tar' }),
  );

  it('is every required or essential package with its dependencies, each with the reason', () => {
    assert.deepEqual([...baseSystem(index)].sort(), [
      ['dpkg', 'Priority: required'],
      ['libc6', 'dependency of required package dpkg'],
      ['libgcc-s1', 'dependency of required package dpkg'],
      ['tar', 'Essential: yes'],
    ]);
  });

  it('leaves the whole base system out of a closure', () => {
    const closure = resolveClosure(index, roots('app'), exclude);
    assert.deepEqual(names(closure), ['app=1', 'libfoo=1']);
    assert.deepEqual(closure.excluded, [
      { name: 'libc6', reason: 'dependency of required package dpkg', neededBy: 'app 1' },
      { name: 'libgcc-s1', reason: 'dependency of required package dpkg', neededBy: 'app 1' },
      { name: 'tar', reason: 'Essential: yes', neededBy: 'app 1' },
    ]);
  });
});

describe('resolveClosure: alternatives', () => {
  it('takes the first alternative that can be satisfied', () => {
    const index = indexOf(
      pkg('app', '1', { Depends: 'missing | old (>= 2) | good | other' }),
      pkg('old', '1'),
      pkg('good', '1'),
      pkg('other', '1'),
    );
    assert.deepEqual(names(resolveClosure(index, roots('app'), exclude)), ['app=1', 'good=1']);
  });

  it('prefers an alternative already in the closure, whatever its position', () => {
    const index = indexOf(pkg('app', '1', { Depends: 'first | second' }), pkg('first', '1'), pkg('second', '1'));
    assert.deepEqual(names(resolveClosure(index, roots('second', 'app'), exclude)), ['app=1', 'second=1']);
    assert.deepEqual(names(resolveClosure(index, roots('app'), exclude)), ['app=1', 'first=1']);
  });

  it('counts an alternative the host has (required) as satisfied, wherever it stands in the group', () => {
    const index = indexOf(pkg('app', '1', { Depends: 'fancy-awk | mawk' }), pkg('fancy-awk', '1'), pkg('mawk', '1.3.4', { Priority: 'required' }));
    const closure = resolveClosure(index, roots('app'), exclude);
    assert.deepEqual(names(closure), ['app=1']);
    assert.deepEqual(closure.excluded, [{ name: 'mawk', reason: 'Priority: required', neededBy: 'app 1' }]);
  });

  it('ignores alternatives restricted to other architectures', () => {
    const index = indexOf(pkg('app', '1', { Depends: 'armhelper [arm64], amdhelper [!arm64]' }), pkg('amdhelper', '1'));
    assert.deepEqual(names(resolveClosure(index, roots('app'), exclude)), ['amdhelper=1', 'app=1']);
  });
});

describe('resolveClosure: virtual packages', () => {
  const index = indexOf(
    pkg('app', '1', { Depends: 'mail-transport-agent' }),
    pkg('postfix', '3.7', { Provides: 'mail-transport-agent' }),
    pkg('exim4-daemon-light', '4.96', { Provides: 'mail-transport-agent', Depends: 'exim4-base' }),
    pkg('exim4-base', '4.96'),
    pkg('needs-abi', '1', { Depends: 'libfoo-abi (>= 2)' }),
    pkg('libfoo1', '1.0', { Provides: 'libfoo-abi (= 1)' }),
    pkg('libfoo2', '2.0', { Provides: 'libfoo-abi (= 2)' }),
    pkg('libfoo-unversioned', '9', { Provides: 'libfoo-abi' }),
    pkg('needs-awk', '1', { Depends: 'awk' }),
    pkg('mawk', '1.3.4', { Priority: 'required', Provides: 'awk' }),
    pkg('gawk', '5.2', { Provides: 'awk' }),
    pkg('needs-editor', '1', { Depends: 'editor' }),
    pkg('editor', '1.0'),
    pkg('vim', '9.0', { Provides: 'editor' }),
  );

  it('picks the first provider by name and follows its dependencies', () => {
    assert.deepEqual(names(resolveClosure(index, roots('app'), exclude)), ['app=1', 'exim4-base=4.96', 'exim4-daemon-light=4.96']);
  });

  it('prefers a provider already in the closure', () => {
    assert.deepEqual(names(resolveClosure(index, roots('postfix', 'app'), exclude)), ['app=1', 'postfix=3.7']);
  });

  it('prefers the real package of that name to providers', () => {
    assert.deepEqual(names(resolveClosure(index, roots('needs-editor'), exclude)), ['editor=1.0', 'needs-editor=1']);
  });

  it('meets a versioned dependency only through a versioned Provides that satisfies it', () => {
    assert.deepEqual(names(resolveClosure(index, roots('needs-abi'), exclude)), ['libfoo2=2.0', 'needs-abi=1']);
    const noGood = indexOf(pkg('needs-abi', '1', { Depends: 'libfoo-abi (>= 2)' }), pkg('libfoo1', '1.0', { Provides: 'libfoo-abi (= 1)' }), pkg('libfoo-unversioned', '9', { Provides: 'libfoo-abi' }));
    throwsUserError(
      () => resolveClosure(noGood, roots('needs-abi'), exclude),
      "needs-abi 1 depends on libfoo-abi (>= 2), which cannot be satisfied: no provider of libfoo-abi (libfoo-unversioned, libfoo1) meets 'libfoo-abi (>= 2)' (requested)",
    );
  });

  it('leaves out a virtual package the host provides through a required package', () => {
    const closure = resolveClosure(index, roots('needs-awk'), exclude);
    assert.deepEqual(names(closure), ['needs-awk=1']);
    assert.deepEqual(closure.excluded, [{ name: 'mawk', reason: 'Priority: required', neededBy: 'needs-awk 1' }]);
  });

  it('refuses a virtual package as a root, naming its providers', () => {
    throwsUserError(() => resolveClosure(index, roots('awk'), exclude), 'requested package awk is in none of the sources (it is a virtual package; request one of: gawk, mawk)');
  });
});

describe('resolveClosure: versions', () => {
  const d = ['1.0', '1.5', '1.9', '2.0', '2.1'].map((v) => pkg('d', v, v === '2.1' ? { Depends: 'only-in-2.1' } : {}));

  it('picks the highest version meeting every constraint', () => {
    const index = indexOf(pkg('app', '1', { Depends: 'd (>= 1.2), d (<< 2.0)' }), ...d, pkg('only-in-2.1', '1'));
    assert.deepEqual(names(resolveClosure(index, roots('app'), exclude)), ['app=1', 'd=1.9']);
  });

  it('re-picks a version when a later constraint rules out the one chosen, dropping what it pulled in', () => {
    const index = indexOf(pkg('app', '1', { Depends: 'd, e' }), pkg('e', '1', { Depends: 'd (<< 2)' }), ...d, pkg('only-in-2.1', '1'));
    assert.deepEqual(names(resolveClosure(index, roots('app'), exclude)), ['app=1', 'd=1.9', 'e=1']);
  });

  it('re-picks across several restarts', () => {
    const index = indexOf(
      pkg('app', '1', { Depends: 'd, e, f' }),
      pkg('e', '1', { Depends: 'd (<< 2.1)' }),
      pkg('f', '1', { Depends: 'd (<= 1.5)' }),
      ...d,
      pkg('only-in-2.1', '1'),
    );
    assert.deepEqual(names(resolveClosure(index, roots('app'), exclude)), ['app=1', 'd=1.5', 'e=1', 'f=1']);
  });

  it('installs an exactly requested older version', () => {
    const index = indexOf(...d, pkg('only-in-2.1', '1'));
    assert.deepEqual(names(resolveClosure(index, roots('d=1.5'), exclude)), ['d=1.5']);
  });

  it('reports two constraints that exclude each other, naming both chains', () => {
    const index = indexOf(pkg('app', '1', { Depends: 'a, b' }), pkg('a', '1', { Depends: 'd (>= 2)' }), pkg('b', '1', { Depends: 'd (<< 1.9)' }), ...d, pkg('only-in-2.1', '1'));
    throwsUserError(
      () => resolveClosure(index, roots('app'), exclude),
      "b 1 depends on d (<< 1.9), which cannot be satisfied: 'd (<< 1.9)' conflicts with d (>= 2) required by app 1 -> a 1 (d (>= 2)) (needed by: app 1 -> b 1)",
    );
  });

  it('reports a requested version that a dependency rules out', () => {
    const index = indexOf(pkg('app', '1', { Depends: 'd (>= 2)' }), ...d, pkg('only-in-2.1', '1'));
    throwsUserError(() => resolveClosure(index, roots('d=1.5', 'app'), exclude), /app 1 depends on d \(>= 2\), which cannot be satisfied: 'd \(>= 2\)' conflicts with d \(= 1.5\) required by the request for d \(= 1.5\)/);
  });

  it('lists the versions there are when none meets a relation', () => {
    const index = indexOf(pkg('kubeadm', '1.32.3-1.1', { Depends: 'cri-tools (>= 1.30.0)' }), pkg('cri-tools', '1.29.0-1.1'), pkg('cri-tools', '1.28.0-1.1'));
    throwsUserError(
      () => resolveClosure(index, roots('kubeadm'), exclude),
      "kubeadm 1.32.3-1.1 depends on cri-tools (>= 1.30.0), which cannot be satisfied: 'cri-tools (>= 1.30.0)' matches none of the versions the sources have (1.29.0-1.1, 1.28.0-1.1) (requested)",
    );
  });

  it('refuses an unknown root or root version, listing what there is', () => {
    const index = indexOf(...d, pkg('only-in-2.1', '1'));
    throwsUserError(() => resolveClosure(index, roots('d=3.0'), exclude), 'requested package d 3.0 is in none of the sources (they have: 2.1, 2.0, 1.9, 1.5, 1.0)');
    throwsUserError(() => resolveClosure(index, roots('nope'), exclude), 'requested package nope is in none of the sources');
  });

  it('skips a required package by name even when the version asked for is not in the sources', () => {
    const index = indexOf(pkg('app', '1', { Depends: 'libc6 (>= 9.99)' }), pkg('libc6', '2.36-9', { Priority: 'required' }));
    const closure = resolveClosure(index, roots('app'), exclude);
    assert.deepEqual(names(closure), ['app=1']);
    assert.deepEqual(closure.excluded.map((e) => e.name), ['libc6']);
  });
});

describe('resolveClosure: unsatisfiable dependencies', () => {
  const index = indexOf(
    pkg('kubeadm', '1.32.3-1.1', { Depends: 'kubelet (>= 1.19.0)' }),
    pkg('kubelet', '1.32.3-1.1', { Depends: 'iptables (>= 1.4.21), conntrack, ethtool' }),
    pkg('iptables', '1.8.9-2'),
  );

  it('names the package, the relation and the chain that needed it', () => {
    throwsUserError(
      () => resolveClosure(index, roots('kubeadm'), exclude),
      'kubelet 1.32.3-1.1 depends on conntrack, which no source provides (needed by: kubeadm 1.32.3-1.1 -> kubelet 1.32.3-1.1)',
    );
  });

  it('says which sources were searched', () => {
    assert.throws(() => resolveClosure(index, roots('kubelet'), exclude), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(err.message, 'kubelet 1.32.3-1.1 depends on conntrack, which no source provides (requested)');
      assert.equal(err.hint, 'sources searched for amd64: test');
      return true;
    });
  });

  it('explains each failed alternative of a group, and Pre-Depends by name', () => {
    const alt = indexOf(pkg('app', '1', { 'Pre-Depends': 'gone | old (>= 2)' }), pkg('old', '1'));
    throwsUserError(
      () => resolveClosure(alt, roots('app'), exclude),
      "app 1 pre-depends on gone | old (>= 2), which cannot be satisfied: no source provides gone; 'old (>= 2)' matches none of the versions the sources have (1) (requested)",
    );
  });
});

describe('resolveClosure: cycles, arch qualifiers, conflicts', () => {
  it('terminates on dependency cycles and includes every member', () => {
    const index = indexOf(pkg('a', '1', { Depends: 'b' }), pkg('b', '1', { Depends: 'c' }), pkg('c', '1', { 'Pre-Depends': 'a' }));
    assert.deepEqual(names(resolveClosure(index, roots('b'), exclude)), ['a=1', 'b=1', 'c=1']);
  });

  it('meets name:any only with a Multi-Arch: allowed package', () => {
    const ok = indexOf(pkg('tool', '1', { Depends: 'perl:any' }), pkg('perl', '5.36', { 'Multi-Arch': 'allowed' }));
    assert.deepEqual(names(resolveClosure(ok, roots('tool'), exclude)), ['perl=5.36', 'tool=1']);
    const bad = indexOf(pkg('tool', '1', { Depends: 'perl:any' }), pkg('perl', '5.36'));
    throwsUserError(() => resolveClosure(bad, roots('tool'), exclude), /tool 1 depends on perl:any, which cannot be satisfied: 'perl:any' matches none of the versions the sources have \(5.36 \(Multi-Arch: no\)\)/);
  });

  it('accepts name:native and Multi-Arch: foreign packages of architecture all', () => {
    const index = indexOf(pkg('tool', '1', { Depends: 'helper:native, data' }), pkg('helper', '1'), pkg('data', '1', { Architecture: 'all', 'Multi-Arch': 'foreign' }));
    assert.deepEqual(names(resolveClosure(index, roots('tool'), exclude)), ['data=1', 'helper=1', 'tool=1']);
  });

  it('refuses a closure in which one package Breaks or Conflicts with another', () => {
    const breaks = indexOf(pkg('a', '1', { Depends: 'b', Breaks: 'b (<< 2)' }), pkg('b', '1'));
    throwsUserError(() => resolveClosure(breaks, roots('a'), exclude), "a 1 breaks 'b (<< 2)', but the closure also has b 1");
    const virtual = indexOf(pkg('a', '1', { Depends: 'b', Conflicts: 'mta', Provides: 'mta' }), pkg('b', '1', { Provides: 'mta' }));
    throwsUserError(() => resolveClosure(virtual, roots('a'), exclude), "a 1 conflicts with 'mta', but the closure also has b 1");
    const self = indexOf(pkg('a', '1', { Conflicts: 'mta', Provides: 'mta' }));
    assert.deepEqual(names(resolveClosure(self, roots('a'), exclude)), ['a=1']);
  });
});

describe('resolveClosure: determinism', () => {
  it('gives the same closure whatever the order of the stanzas', () => {
    const stanzas = [
      pkg('app', '1', { Depends: 'mta, x | y, lib (>= 1)' }),
      pkg('zeta-mta', '1', { Provides: 'mta' }),
      pkg('alpha-mta', '1', { Provides: 'mta', Depends: 'lib' }),
      pkg('y', '1'),
      pkg('lib', '1.0'),
      pkg('lib', '1.2'),
      pkg('lib', '0.9'),
    ];
    const expected = ['alpha-mta=1', 'app=1', 'lib=1.2', 'y=1'];
    for (const order of [stanzas, [...stanzas].reverse(), [stanzas[3], stanzas[5], stanzas[0], stanzas[6], stanzas[2], stanzas[1], stanzas[4]] as string[]]) {
      const closure = resolveClosure(indexOf(...order), roots('app'), exclude);
      assert.deepEqual(names(closure), expected);
    }
  });
});
