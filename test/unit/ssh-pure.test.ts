/**
 * The pure parts of src/core/ssh: command-line quoting and wrapping, secret redaction, known_hosts parsing and
 * matching. No host needed (the SSH tests against real sshd are in test/e2e/ssh.test.ts).
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { Secrets, shQuote, wrapCommand } from '../../src/core/ssh/command.js';
import { RemoteCommandError } from '../../src/core/ssh/connection.js';
import { checkHostKey, fingerprint, knownHostsName, parseKnownHosts } from '../../src/core/ssh/known-hosts.js';

describe('command lines and known_hosts, no hosts needed', () => {
  test('commands are quoted, wrapped in sudo -n for non-root users, env set with env', () => {
    assert.equal(shQuote("it's"), `'it'\\''s'`);
    assert.equal(shQuote('/etc/kube-bundle/a.conf'), '/etc/kube-bundle/a.conf');
    assert.equal(wrapCommand('apt-get update', { sudo: false }), 'apt-get update');
    assert.equal(wrapCommand('a && b', { sudo: true }), `sudo -n sh -c 'a && b'`);
    assert.equal(wrapCommand('echo "$X"', { sudo: true, env: { X: 'a b' } }), `sudo -n env 'X=a b' sh -c 'echo "$X"'`);
    assert.equal(wrapCommand('true', { sudo: false, env: { X: '1' } }), `env X=1 sh -c true`);
    assert.equal(wrapCommand('make all', { sudo: true, timeoutSeconds: 1.5 }), `sudo -n timeout -k 5 1.5 sh -c 'make all'`);
    assert.throws(() => wrapCommand('true', { sudo: false, env: { 'X;rm': '1' } }), /invalid environment variable name/);
    const secrets = new Secrets();
    secrets.add('tok.en', '');
    assert.equal(secrets.redact('kubeadm join --token tok.en x tok.en'), 'kubeadm join --token *** x ***');
  });

  test('a failed command names host and command and ends with its output: stderr, led by stdout\'s end when stderr is short', () => {
    // apt-get: dpkg's reason on stdout, one line on stderr
    const apt = new RemoteCommandError('h2 (10.0.0.12)', 'install-packages.sh /b kubelet', {
      code: 100,
      stdout: 'Reading package lists...\nSetting up kubelet (1.32.4-1.1) ...\nFailed to enable unit: Unit file /etc/systemd/system/kubelet.service is masked.\n',
      stderr: 'E: Sub-process /usr/bin/dpkg returned an error code (1)\n',
    });
    assert.equal(apt.message, [
      'h2 (10.0.0.12): `install-packages.sh /b kubelet` exited with 100:',
      '  Reading package lists...',
      '  Setting up kubelet (1.32.4-1.1) ...',
      '  Failed to enable unit: Unit file /etc/systemd/system/kubelet.service is masked.',
      '  E: Sub-process /usr/bin/dpkg returned an error code (1)',
    ].join('\n'));
    // twelve lines at most, stderr's first
    const many = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`).join('\n');
    const long = new RemoteCommandError('h', 'x', { code: 1, stdout: many('out', 20), stderr: many('err', 10) });
    assert.deepEqual(long.message.split('\n').slice(1).map((l) => l.trim()), ['out18', 'out19', ...many('err', 10).split('\n')]);
    const only = new RemoteCommandError('h', 'x', { code: 1, stdout: many('out', 3), stderr: many('err', 15) });
    assert.deepEqual(only.message.split('\n').slice(1).map((l) => l.trim()), many('err', 15).split('\n').slice(3));
    assert.equal(new RemoteCommandError('h', 'x', { code: 3, stdout: '', stderr: '' }).message, 'h: `x` exited with 3');
    // output through a terminal: CRLF line ends, a progress line redrawn with CRs keeps its last text
    const tty = new RemoteCommandError('h', 'x', { code: 1, stdout: 'Setting up kubelet ...\r\nFailed to enable unit: masked.\r\r\nProgress: 10%\rProgress: 90%\r\n', stderr: 'E: failed\r\n' });
    assert.equal(tty.message, 'h: `x` exited with 1:\n  Setting up kubelet ...\n  Failed to enable unit: masked.\n  Progress: 90%\n  E: failed');
  });

  test('known_hosts: plain, patterns, negation, [host]:port, hashed, revoked, other key types', () => {
    const key = (n: number) => Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 1, n])]);
    const b64 = (n: number) => key(n).toString('base64');
    // |1|salt|hmac-sha1(salt, name) for "[10.0.0.9]:2222", as ssh-keygen -H writes it
    const salt = Buffer.alloc(20, 7);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.9]:2222').digest('base64')}`;
    const entries = parseKnownHosts(
      [
        '# comment',
        `10.0.0.1,cp1.lan ssh-ed25519 ${b64(1)}`,
        `*.rack1.lan,!bad.rack1.lan ssh-ed25519 ${b64(2)}`,
        `[10.0.0.1]:2222 ssh-ed25519 ${b64(3)}`,
        `${hashed} ssh-ed25519 ${b64(4)}`,
        `@revoked * ssh-ed25519 ${b64(5)}`,
        `@cert-authority * ssh-ed25519 ${b64(6)}`,
        'garbage line',
      ].join('\n'),
    );
    assert.deepEqual(checkHostKey(entries, '10.0.0.1', 22, key(1)), { kind: 'known', line: 2 });
    assert.deepEqual(checkHostKey(entries, 'CP1.lan', 22, key(1)), { kind: 'known', line: 2 });
    assert.deepEqual(checkHostKey(entries, '10.0.0.1', 22, key(3)), { kind: 'changed', line: 2 });
    assert.deepEqual(checkHostKey(entries, '10.0.0.1', 2222, key(3)), { kind: 'known', line: 4 });
    assert.deepEqual(checkHostKey(entries, 'w1.rack1.lan', 22, key(2)), { kind: 'known', line: 3 });
    assert.deepEqual(checkHostKey(entries, 'bad.rack1.lan', 22, key(2)), { kind: 'unknown' });
    assert.deepEqual(checkHostKey(entries, '10.0.0.9', 2222, key(4)), { kind: 'known', line: 5 });
    assert.deepEqual(checkHostKey(entries, '10.0.0.9', 22, key(4)), { kind: 'unknown' });
    assert.deepEqual(checkHostKey(entries, 'anything', 22, key(5)), { kind: 'revoked', line: 6 });
    assert.deepEqual(checkHostKey(entries, 'anything', 22, key(6)), { kind: 'unknown' });
    assert.equal(knownHostsName('FD00::1', 2222), '[fd00::1]:2222');
    assert.match(fingerprint(key(1)), /^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
