import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatGroup,
  formatRelation,
  parseProvides,
  parseRelation,
  parseRelationGroups,
  relationAppliesToArch,
  satisfiesConstraint,
} from '../../src/core/apt/relations.js';

const ctx = { where: 'Packages:12: docker.io 20.10.24 Depends' };

describe('parseRelationGroups', () => {
  it('parses a real Depends field: groups, alternatives, constraints', () => {
    const groups = parseRelationGroups(
      'libc6 (>= 2.34), libdevmapper1.02.1 (>= 2:1.02.97), containerd (>= 1.4~) | containerd.io, runc (>= 1.0.0~rc8~), tini',
      ctx,
    );
    assert.equal(groups.length, 5);
    assert.deepEqual(groups[0], [{ name: 'libc6', constraint: { op: '>=', version: '2.34' } }]);
    assert.deepEqual(groups[1], [{ name: 'libdevmapper1.02.1', constraint: { op: '>=', version: '2:1.02.97' } }]);
    assert.deepEqual(groups[2], [{ name: 'containerd', constraint: { op: '>=', version: '1.4~' } }, { name: 'containerd.io' }]);
    assert.deepEqual(groups[4], [{ name: 'tini' }]);
  });

  it('accepts every operator, with or without spaces, and maps the obsolete < and > to <= and >=', () => {
    const ops = parseRelationGroups('a (<< 1), b (<=1), c (= 1), d(>= 1), e (>> 1), f (< 1), g (> 1)', ctx).map((g) => g[0]?.constraint?.op);
    assert.deepEqual(ops, ['<<', '<=', '=', '>=', '>>', '<=', '>=']);
  });

  it('parses arch qualifiers, [arch] restrictions and drops <profile> restrictions', () => {
    assert.deepEqual(parseRelation('python3:any (>= 3.11~)', ctx), { name: 'python3', archQualifier: 'any', constraint: { op: '>=', version: '3.11~' } });
    assert.deepEqual(parseRelation('libc6:native', ctx), { name: 'libc6', archQualifier: 'native' });
    assert.deepEqual(parseRelation('libseccomp2 (>= 2.5) [amd64 arm64] <!nocheck> <stage1 cross>', ctx), {
      name: 'libseccomp2',
      constraint: { op: '>=', version: '2.5' },
      archRestriction: { negated: false, arches: ['amd64', 'arm64'] },
    });
    assert.deepEqual(parseRelation('foo [!i386 !armel]', ctx).archRestriction, { negated: true, arches: ['i386', 'armel'] });
  });

  it('tolerates folded lines, trailing commas and an empty field', () => {
    assert.deepEqual(parseRelationGroups('a,\n b |\n  c (>= 1),', ctx).map(formatGroup), ['a', 'b | c (>= 1)']);
    assert.deepEqual(parseRelationGroups('', ctx), []);
    assert.deepEqual(parseRelationGroups(undefined, ctx), []);
  });

  it('names the field and the bad text in errors', () => {
    assert.throws(() => parseRelationGroups('libc6 (>= 2.34', ctx), /Packages:12: docker.io 20.10.24 Depends: cannot parse relation 'libc6 \(>= 2.34'/);
    assert.throws(() => parseRelationGroups('libc6 (=> 2.34)', ctx), /unknown version operator '=>' in 'libc6 \(=> 2.34\)'/);
    assert.throws(() => parseRelationGroups('libc6 (>= 2.34-)', ctx), /invalid version '2.34-'/);
    assert.throws(() => parseRelationGroups('Libc6', ctx), /cannot parse relation 'Libc6'/);
    assert.throws(() => parseRelationGroups('a | , b', ctx), /cannot parse relation ''/);
    assert.throws(() => parseRelationGroups('a [amd64 !i386]', ctx), /bad architecture list/);
  });
});

describe('parseProvides', () => {
  it('parses versioned and unversioned provides', () => {
    assert.deepEqual(parseProvides('mail-transport-agent, libfoo-abi-2 (= 2.1-1)', ctx), [
      { name: 'mail-transport-agent' },
      { name: 'libfoo-abi-2', constraint: { op: '=', version: '2.1-1' } },
    ]);
  });

  it('refuses alternatives and operators other than =', () => {
    assert.throws(() => parseProvides('a | b', ctx), /may not contain alternatives/);
    assert.throws(() => parseProvides('a (>= 1)', ctx), /Provides 'a \(>= 1\)' may only use '='/);
  });
});

describe('satisfiesConstraint', () => {
  const cases: [string, string, string, boolean][] = [
    ['1.32.3-1.1', '>=', '1.30.0', true],
    ['1.29.9-1.1', '>=', '1.30.0', false],
    ['1.0.3-4', '>=', '1.0.3-4~', true],
    ['1.0.3-4~bpo', '>=', '1.0.3-4~', true],
    ['1.0.3-3', '>=', '1.0.3-4~', false],
    ['2.0', '<<', '2.0', false],
    ['2.0~rc1', '<<', '2.0', true],
    ['2.0', '<=', '2.0', true],
    ['2.0', '=', '2.0-0', true],
    ['2.0', '>>', '2.0', false],
    ['2.0.1', '>>', '2.0', true],
  ];
  for (const [version, op, bound, expected] of cases) {
    it(`${version} ${op} ${bound} is ${expected}`, () => {
      assert.equal(satisfiesConstraint(version, { op: op as '>=', version: bound }), expected);
    });
  }
  it('is always satisfied without a constraint', () => assert.equal(satisfiesConstraint('0.1', undefined), true));
});

describe('relationAppliesToArch', () => {
  it('applies without restriction, to listed arches, to wildcards, and not to negated ones', () => {
    const rel = (text: string) => parseRelation(text, ctx);
    assert.equal(relationAppliesToArch(rel('a'), 'arm64'), true);
    assert.equal(relationAppliesToArch(rel('a [amd64]'), 'amd64'), true);
    assert.equal(relationAppliesToArch(rel('a [amd64]'), 'arm64'), false);
    assert.equal(relationAppliesToArch(rel('a [!amd64]'), 'amd64'), false);
    assert.equal(relationAppliesToArch(rel('a [!amd64]'), 'arm64'), true);
    assert.equal(relationAppliesToArch(rel('a [linux-any]'), 'arm64'), true);
    assert.equal(relationAppliesToArch(rel('a [any-arm64]'), 'arm64'), true);
    assert.equal(relationAppliesToArch(rel('a [any-arm64]'), 'amd64'), false);
  });
});

describe('formatRelation', () => {
  it('writes the canonical form back', () => {
    assert.equal(formatRelation(parseRelation('python3:any  ( >=3.11~ ) [ amd64 ]', ctx)), 'python3:any (>= 3.11~) [amd64]');
    assert.equal(formatRelation(parseRelation('a [!i386]', ctx)), 'a [!i386]');
  });
});
