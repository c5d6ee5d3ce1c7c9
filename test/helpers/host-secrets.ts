/**
 * What the lab hosts show of an install's join secrets: the kubeadm configs the stub was given (its log keeps a
 * copy of each, since install deletes the originals once no join needs them), and checks that a secret is in no
 * process argument, journal or file on a host.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { Lab } from '../lab/lab.js';

export const STUB_LOG = '/var/log/kube-stub.log';

/** The last `kubeadm init|join --config F` on host i: the copy of F the stub saved, and F's mode then. */
export async function stubKubeadmConfig(lab: Lab, i: number, verb: 'init' | 'join'): Promise<{ text: string; mode: string }> {
  const line = (await lab.ssh(i, `grep -E '^\\S+ kubeadm ${verb} --config ' ${STUB_LOG} | tail -n 1`)).stdout;
  const m = / \(mode (\d+)\) saved as (\S+)/.exec(line);
  assert.ok(m, `h${i}: kubeadm ${verb} logged its config: ${line}`);
  return { mode: m[1]!, text: (await lab.ssh(i, `cat ${m[2]}`)).stdout };
}

/** The value of `key: "value"` in a kubeadm config (the first one; also as the first key of a list item). */
export function configValue(config: string, key: string): string {
  const m = new RegExp(`^\\s*(?:-\\s+)?${key}: "?([^"\\s]+)"?$`, 'm').exec(config);
  assert.ok(m, `${key} in\n${config}`);
  return m[1]!;
}

/** sudo from this machine's apt (the lab's base system has none) and a passwordless-sudo SSH user on the hosts. */
export async function addSudoUser(lab: Lab, hosts: number[], user: string, workDir: string): Promise<void> {
  const fetched = spawnSync('apt-get', ['download', '-q', 'sudo'], { cwd: workDir, encoding: 'utf8' });
  assert.equal(fetched.status, 0, `apt-get download sudo: ${fetched.stderr}`);
  const deb = readdirSync(workDir).find((f) => /^sudo_.*\.deb$/.test(f))!;
  for (const i of hosts) {
    await lab.copyTo(i, `${workDir}/${deb}`, '/tmp/sudo.deb');
    await lab.ssh(
      i,
      `dpkg -i /tmp/sudo.deb >/dev/null && rm /tmp/sudo.deb && (id ${user} >/dev/null 2>&1 || useradd -m -s /bin/sh ${user}) && ` +
        `install -d -m700 -o ${user} -g ${user} /home/${user}/.ssh && install -m600 -o ${user} -g ${user} /root/.ssh/authorized_keys /home/${user}/.ssh/ && ` +
        `echo '${user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/${user}`,
    );
  }
}

/**
 * No secret on host i: not in any stub's logged argv, not in the journal (where sudo logs each command a
 * non-root SSH user runs: the whole command text sent), not in any file. The stub's copies of the kubeadm configs
 * (/var/log/kube-stub/) are the test's own record and are left out; the journal is searched with journalctl.
 * The secrets go to the host's grep on stdin, never as arguments.
 */
export async function assertNoSecretOnHost(lab: Lab, i: number, secrets: string[]): Promise<void> {
  // sudo splits long log lines: one half of a secret is whole on some line wherever the split falls
  const pieces = secrets.flatMap((s) => [s, s.slice(0, Math.ceil(s.length / 2)), s.slice(Math.ceil(s.length / 2))]);
  const argvLog = (await lab.ssh(i, `cat ${STUB_LOG} 2>/dev/null || true`)).stdout;
  const journal = (await lab.ssh(i, 'journalctl --no-pager -q -o cat')).stdout;
  for (const piece of pieces) {
    assert.ok(!argvLog.includes(piece), `h${i}: a secret was in a stub's arguments`);
    assert.ok(!journal.includes(piece), `h${i}: a secret is in the journal`);
  }
  const files = await lab.ssh(
    i,
    'p=$(cat); { printf "%s\\n" "$p" | grep -rlsF -f - /etc /root /home /tmp /var/lib; ' +
      'printf "%s\\n" "$p" | grep -rlsF -f - --exclude-dir=kube-stub --exclude-dir=journal /var/log; } || true',
    { input: secrets.join('\n') + '\n' },
  );
  assert.equal(files.stdout, '', `h${i}: files that hold a secret`);
}

/** The sudo lines of host i's journal: proof that the journal check above saw the commands install ran. */
export async function sudoJournal(lab: Lab, i: number): Promise<string> {
  return (await lab.ssh(i, 'journalctl --no-pager -q -o cat _COMM=sudo')).stdout;
}
