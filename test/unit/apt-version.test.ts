import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareVersions, isValidVersion, parseVersion } from '../../src/core/apt/version.js';

// Every expected order below was checked with `dpkg --compare-versions` on Debian 12.
const ORDERED: [string, '<' | '=' | '>', string][] = [
  ['1:1.4.7-1+b2', '>', '1:1.4.7-1'],
  ['1:1.4.7-1+b2', '>', '1.4.8-1'],
  ['1.6.20~ds1-1+deb12u3', '>', '1.6.20~ds1-1+deb12u2'],
  ['1.6.20~ds1-1+deb12u3', '<', '1.6.20-1'],
  ['1.6.20~ds1-1+deb12u3', '>', '1.6.20~ds1-1'],
  ['0.3.16~3-0~debian-bookworm', '<', '0.3.16-0~debian-bookworm'],
  ['0.3.16~3-0~debian-bookworm', '>', '0.3.16~2-0~debian-bookworm'],
  ['0.3.16~3-0~debian-bookworm', '<', '0.3.16~3-0~ubuntu-jammy'],
  ['1.32.3-1.1', '<', '1.32.3-2.1'],
  ['1.32.3-1.1', '<', '1.32.10-1.1'],
  ['1.32.3-1.1', '=', '1.32.3-1.1'],
  ['2.8.2+ds1-1', '>', '2.8.2-1'],
  ['2.8.2+ds1-1', '>', '2.8.2~ds1-1'],
  ['20.10.24+dfsg1-1+deb12u1+b6', '>', '20.10.24+dfsg1-1+deb12u1'],
  ['1.0', '=', '1.0-0'],
  ['1.0', '<', '1.0-1'],
  ['1.0~rc1', '<', '1.0'],
  ['1.0~~', '<', '1.0~'],
  ['1.0~~a', '>', '1.0~~'],
  ['1.0a', '>', '1.0'],
  ['1.0a', '<', '1.0+'],
  ['1.0+', '<', '1.0.'],
  ['1.0', '=', '1.00'],
  ['1.01', '=', '1.1'],
  ['1.002', '=', '1.2'],
  ['1.10', '>', '1.9'],
  ['0:1.0', '=', '1.0'],
  ['2:0.1', '>', '1:99'],
  ['1:6.1-1', '>', '6.2-1'],
  ['1.0-1ubuntu1', '>', '1.0-1'],
  ['1.0-1~bpo12+1', '<', '1.0-1'],
  ['1.2.3-1.1', '>', '1.2.3-1'],
  ['7.88.1-10+deb12u12', '>', '7.88.1-10+deb12u8'],
  ['2.36-9+deb12u10', '>', '2.36-9+deb12u9'],
  ['1.1.5+ds1-1+deb12u1', '>', '1.1.5+ds1-1'],
  ['9.0.1', '<', '10'],
  ['1.0-a', '>', '1.0-1'],
  ['1.0-1-1', '>', '1.0-1'],
  ['1.0-1.1', '<', '1.0-1-1'],
  ['0.0~git20200117.1539353-1', '>', '0.0~git20190827-1'],
];

describe('compareVersions', () => {
  for (const [a, expected, b] of ORDERED) {
    it(`${a} ${expected} ${b}`, () => {
      const sign = Math.sign(compareVersions(a, b));
      assert.equal(sign, { '<': -1, '=': 0, '>': 1 }[expected]);
      assert.equal(Math.sign(compareVersions(b, a)) + sign, 0, 'the order must be antisymmetric');
    });
  }

  it('sorts a list the way dpkg does', () => {
    const versions = ['1.0', '1.0~rc1', '1:0.5', '1.0-1', '1.0+b1', '0.9', '1.0~~', '1.0a'];
    assert.deepEqual([...versions].sort(compareVersions), ['0.9', '1.0~~', '1.0~rc1', '1.0', '1.0-1', '1.0a', '1.0+b1', '1:0.5']);
  });

  it('throws on an invalid version instead of guessing an order', () => {
    assert.throws(() => compareVersions('1.0-', '1.0'), /invalid Debian version '1.0-'/);
    assert.throws(() => compareVersions('1.0', 'x:1'), /invalid Debian version 'x:1'/);
  });
});

describe('parseVersion', () => {
  it('takes the epoch up to the first colon and the revision after the last hyphen', () => {
    assert.deepEqual(parseVersion('1:1.4.7-1+b2'), { epoch: 1, upstream: '1.4.7', revision: '1+b2' });
    assert.deepEqual(parseVersion('0.3.16~3-0~debian-bookworm'), { epoch: 0, upstream: '0.3.16~3-0~debian', revision: 'bookworm' });
    assert.deepEqual(parseVersion('2:1:2'), { epoch: 2, upstream: '1:2', revision: '' });
    assert.deepEqual(parseVersion('1.32.3'), { epoch: 0, upstream: '1.32.3', revision: '' });
  });

  it('rejects what dpkg rejects', () => {
    for (const bad of ['', '1:', ':1', 'a:1', '1.0-', '1.0 1', '1.0,', '(1.0)', '1.0-1:2']) {
      assert.equal(isValidVersion(bad), false, `'${bad}' should be invalid`);
    }
  });
});
