import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostsFileError, isValidNodeName, parseHosts, readHostsFile } from '../../src/core/install/hosts.js';
import { UserError } from '../../src/util/errors.js';

/** The problems parseHosts reports for `text`, or fails the test when it accepts it. */
function problemsOf(text: string): string[] {
  try {
    parseHosts(text, 'hosts.txt');
  } catch (err) {
    assert.ok(err instanceof HostsFileError && err instanceof UserError, String(err));
    return err.problems;
  }
  assert.fail(`accepted:\n${text}`);
}

test('a full hosts file: roles, options, comments, blank lines, IPv6 and DNS names', () => {
  const text = [
    '# site A',
    '',
    '10.0.0.10   control-plane  name=cp1   # first control plane',
    '  10.0.0.11 control-plane name=cp2 user=admin port=2222 identity=/keys/site',
    'FD00::20 worker',
    '[fd00::21] worker name=w-2.rack1',
    'Reg.Example.LAN registry',
    'lb1.example.lan lb\t# haproxy',
    '\t',
  ].join('\n');
  assert.deepEqual(parseHosts(text, 'hosts.txt'), [
    { address: '10.0.0.10', role: 'control-plane', name: 'cp1', line: 3 },
    { address: '10.0.0.11', role: 'control-plane', name: 'cp2', user: 'admin', port: 2222, identity: '/keys/site', line: 4 },
    { address: 'fd00::20', role: 'worker', line: 5 },
    { address: 'fd00::21', role: 'worker', name: 'w-2.rack1', line: 6 },
    { address: 'reg.example.lan', role: 'registry', line: 7 },
    { address: 'lb1.example.lan', role: 'lb', line: 8 },
  ]);
});

test('CRLF line endings count lines like LF', () => {
  assert.deepEqual(parseHosts('# x\r\n10.0.0.1 control-plane\r\n', 'h'), [{ address: '10.0.0.1', role: 'control-plane', line: 2 }]);
});

test('an unknown role is reported with file, line and the valid roles', () => {
  assert.throws(
    () => parseHosts('10.0.0.1 control-plane\n\n# c\n10.0.0.2 master\n', 'hosts.txt'),
    (e: unknown) => e instanceof UserError && e.message === "hosts.txt:4: unknown role 'master' (use control-plane, worker, registry, lb)",
  );
});

test('every problem of the file is reported together, in line order', () => {
  const text = [
    '10.0.0.1 worker name=a', //                      1
    '10.0.0.2 master', //                             2 unknown role
    '10.0.0.3 worker colour=blue', //                 3 unknown key
    '10.0.0.4 worker port=70000', //                  4 bad port
    '10.0.0.5 worker port=22x', //                    5 bad port
    '10.0.0.6 worker name=Node_1', //                 6 bad name
    '10.0.0.1 worker', //                             7 duplicate address
    '10.0.0.8 worker name=a', //                      8 duplicate name
    '10.0.0.256 worker', //                           9 bad address
    'host-9', //                                     10 missing role
    '10.0.0.11 worker name', //                      11 key without value
    '10.0.0.12 worker port=22 port=23', //           12 key twice
    `10.0.0.13 worker name=${'a'.repeat(64)}`, //    13 label > 63
    '10.0.0.14 registry', //                         14
    '10.0.0.15 registry', //                         15 second registry
  ].join('\n');
  const problems = problemsOf(text);
  assert.deepEqual(problems, [
    "hosts.txt:2: unknown role 'master' (use control-plane, worker, registry, lb)",
    "hosts.txt:3: unknown key 'colour' (use name, user, port, identity)",
    "hosts.txt:4: bad port '70000' (use 1-65535)",
    "hosts.txt:5: bad port '22x' (use 1-65535)",
    "hosts.txt:6: name 'Node_1' is not a valid Kubernetes node name (a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.'; labels of 1 to 63 that start and end with a letter or digit; at most 253 in all)",
    "hosts.txt:7: duplicate address '10.0.0.1' (also on line 1)",
    "hosts.txt:8: duplicate name 'a' (also on line 1)",
    "hosts.txt:9: '10.0.0.256' is not an IPv4/IPv6 address or DNS name",
    "hosts.txt:10: missing role after 'host-9' (use control-plane, worker, registry, lb)",
    "hosts.txt:11: 'name' needs a value: name=...",
    "hosts.txt:12: 'port' given twice",
    `hosts.txt:13: name '${'a'.repeat(64)}' is not a valid Kubernetes node name (a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.'; labels of 1 to 63 that start and end with a letter or digit; at most 253 in all)`,
    'hosts.txt:15: a second registry host (the first is on line 14); only one is supported',
    'hosts.txt: no control-plane host: at least one line needs the role control-plane',
  ]);
});

test('the error message lists all problems under a count', () => {
  try {
    parseHosts('10.0.0.1 worker port=0\n', 'site/hosts.txt');
    assert.fail('accepted');
  } catch (err) {
    assert.ok(err instanceof UserError);
    assert.equal(
      err.message,
      "2 problems in site/hosts.txt:\n  site/hosts.txt:1: bad port '0' (use 1-65535)\n  site/hosts.txt: no control-plane host: at least one line needs the role control-plane",
    );
    assert.match(err.hint ?? '', /ADDRESS ROLE/);
  }
});

test('an empty file or one with only comments has no control plane', () => {
  assert.deepEqual(problemsOf(''), ['hosts.txt: no control-plane host: at least one line needs the role control-plane']);
  assert.deepEqual(problemsOf('# nothing\n\n'), ['hosts.txt: no control-plane host: at least one line needs the role control-plane']);
});

test('a control plane line with a broken option still counts as the control plane', () => {
  assert.deepEqual(problemsOf('10.0.0.1 control-plane port=x'), ["hosts.txt:1: bad port 'x' (use 1-65535)"]);
});

test('duplicate addresses are found across spellings of the same address', () => {
  assert.deepEqual(problemsOf('10.0.0.1 control-plane\nfd00::1 worker\n[FD00::1] worker\nnode.lan worker\nNODE.lan worker'), [
    "hosts.txt:3: duplicate address 'fd00::1' (also on line 2)",
    "hosts.txt:5: duplicate address 'node.lan' (also on line 4)",
  ]);
});

test('Kubernetes node names: RFC 1123 subdomains', () => {
  for (const ok of ['a', 'node-1', 'n1.rack-2.dc', '0abc', 'a'.repeat(63), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`]) {
    assert.ok(isValidNodeName(ok), ok);
  }
  for (const bad of ['', 'Node', 'node_1', '-a', 'a-', 'a..b', '.a', 'a.', 'a'.repeat(64), `${'a'.repeat(63)}.`.repeat(4) + 'a']) {
    assert.ok(!isValidNodeName(bad), bad);
  }
});

test('readHostsFile names the file, resolves identity paths and reports a missing file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hosts-test-'));
  const file = join(dir, 'hosts.txt');
  writeFileSync(file, '10.0.0.1 control-plane identity=keys/id\n10.0.0.2 worker identity=~/.ssh/id\n10.0.0.3 worker identity=/abs/id\n');
  assert.deepEqual(
    readHostsFile(file).map((h) => h.identity),
    [join(dir, 'keys/id'), join(homedir(), '.ssh/id'), '/abs/id'],
  );
  writeFileSync(file, '10.0.0.1 control-plane\n10.0.0.2 boss\n');
  assert.throws(() => readHostsFile(file), (e: unknown) => e instanceof UserError && e.message.startsWith(`${file}:2: unknown role 'boss'`));
  assert.throws(() => readHostsFile(join(dir, 'nope.txt')), (e: unknown) => e instanceof UserError && e.message.includes(`cannot read hosts file ${join(dir, 'nope.txt')}`));
});
