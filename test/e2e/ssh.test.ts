/**
 * The SSH layer against real sshd on lab hosts. The hosts are reachable only inside the netns hl-lab, so each
 * scenario runs in a child process there: this same file, started with SSH_E2E_SCENARIO set, runs that one
 * scenario and prints its findings as JSON; the tests below assert on them.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type Connection, type SshOptions } from '../../src/core/ssh/connection.js';
import { Secrets, shQuote } from '../../src/core/ssh/command.js';
import { useLab, type Lab } from '../lab/lab.js';
import { writeRandomFile } from '../helpers/files.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const REPO = join(THIS_FILE, '../../..');

/** What a scenario gets from the test: lab facts and files the test prepared. */
interface Params {
  ip1: string;
  ip2: string;
  keyFile: string;
  knownHosts: string;
  workDir: string;
  bigFile?: string;
  bigSha?: string;
}

interface Caught {
  name: string;
  message: string;
  hint?: string;
}

async function caught(work: Promise<unknown>): Promise<Caught | undefined> {
  try {
    await work;
    return undefined;
  } catch (err) {
    const e = err as Error & { hint?: string };
    return { name: e.name, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
  }
}

function sshOptions(p: Params, extra: Partial<SshOptions> = {}): SshOptions {
  return { knownHostsFile: p.knownHosts, agentSocket: false, ...extra };
}

function h1(p: Params, extra: Partial<SshOptions> = {}): Promise<Connection> {
  return connect({ host: p.ip1, identityFile: p.keyFile, label: 'h1' }, sshOptions(p, extra));
}

/** Runs a local tool (ssh-keygen, stat) in the child; its stdout. */
function local(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The scenarios, run inside hl-lab. Each returns plain JSON data. */
const scenarios: Record<string, (p: Params) => Promise<unknown>> = {
  async exec(p) {
    const logs: string[] = [];
    const secrets = new Secrets();
    secrets.add('s3cr3t-t0ken');
    const conn = await h1(p, { secrets, log: (l) => logs.push(l) });
    const status = await conn.exec('echo out; echo err >&2; exit 3');
    const piped = await conn.exec('read -r t; echo "got ${#t} chars"; echo "$GREETING"', { stdin: 's3cr3t-t0ken\n', env: { GREETING: "it's me" } });
    const runFailure = await caught(conn.run('echo "bad token s3cr3t-t0ken" >&2; printf "l%s\\n" 1 2 3 4 5 6 7 8 9 10 11 12 13 14 >&2; exit 7'));
    const started = Date.now();
    const timeout = await caught(conn.exec('sleep 30', { timeoutMs: 500 }));
    const timeoutElapsed = Date.now() - started;
    const stillUsable = await conn.run('echo alive; pgrep -x sleep || true');
    await conn.close();
    return { status, piped, runFailure, timeout, timeoutElapsed, stillUsable: stillUsable.stdout, logs };
  },

  async hostKeys(p) {
    const empty = join(p.workDir, 'kh-new');
    writeFileSync(empty, '# nothing yet');
    const unknown = await caught(h1({ ...p, knownHosts: empty }));
    const accepted = await caught(h1({ ...p, knownHosts: empty }, { acceptNewHostKeys: true }).then((c) => c.close()));
    const recorded = readFileSync(empty, 'utf8');
    const afterRecording = await caught(h1({ ...p, knownHosts: empty }).then((c) => c.close()));

    // h1's address with h2's key: what a man in the middle (or a reinstall) looks like
    const lines = readFileSync(p.knownHosts, 'utf8').split('\n');
    const h2key = lines.find((l) => l.startsWith(`${p.ip2} `))!.split(' ').slice(1).join(' ');
    const changedFile = join(p.workDir, 'kh-changed');
    writeFileSync(changedFile, `# site hosts\n${p.ip1} ${h2key}\n`);
    const changed = await caught(h1({ ...p, knownHosts: changedFile }, { acceptNewHostKeys: true }));
    const changedAfter = readFileSync(changedFile, 'utf8');

    // the same two cases with hashed host names (ssh-keygen -H, as HashKnownHosts=yes writes them)
    const hashedGood = join(p.workDir, 'kh-hashed');
    copyFileSync(p.knownHosts, hashedGood);
    local(['ssh-keygen', '-q', '-H', '-f', hashedGood]);
    const hashedText = readFileSync(hashedGood, 'utf8');
    const hashedOk = await caught(h1({ ...p, knownHosts: hashedGood }).then((c) => c.close()));
    local(['ssh-keygen', '-q', '-H', '-f', changedFile]);
    const hashedChanged = await caught(h1({ ...p, knownHosts: changedFile }));
    return { unknown, accepted, recorded, afterRecording, changed, changedAfter, hashedText, hashedOk, hashedChanged };
  },

  async unreachable(p) {
    const timed = async (host: string, port?: number): Promise<{ error?: Caught; ms: number }> => {
      const started = Date.now();
      const error = await caught(connect({ host, ...(port ? { port } : {}), identityFile: p.keyFile, label: `lab-${host}` }, sshOptions(p)));
      return { ...(error ? { error } : {}), ms: Date.now() - started };
    };
    // .99 is on the lab bridge but no host has it; h1 has nothing listening on 2222
    return { down: await timed(p.ip1.replace(/\.\d+$/, '.99')), refused: await timed(p.ip1, 2222) };
  },

  async upload(p) {
    const file = p.bigFile!;
    const sha256 = p.bigSha!;
    const size = Number(local(['stat', '-c', '%s', file]).trim());
    const target = '/var/tmp/kb-e2e/sub dir/big.bin';
    const q = shQuote(target);
    const conn = await h1(p);
    await conn.run(`rm -rf /var/tmp/kb-e2e`);
    const remoteState = async (path: string, c = conn): Promise<string> =>
      (await c.run(`for f in ${shQuote(path)} ${shQuote(`${path}.partial`)}; do [ -e "$f" ] && echo "$(stat -c '%a %s' "$f") $(sha256sum < "$f" | cut -c1-64)" || echo none; done`)).stdout.trim();

    const progress: number[] = [];
    let started = Date.now();
    const fresh = await conn.upload(file, target, { sha256, onProgress: (done) => progress.push(done) });
    const freshMs = Date.now() - started;
    const afterFresh = await remoteState(target);
    const progressMonotonic = progress.every((v, i) => i === 0 || v >= progress[i - 1]!);

    started = Date.now();
    const again = await conn.upload(file, target, { sha256 });
    const againMs = Date.now() - started;

    // a partial holding the first 50 MB of the right content: only the rest is sent
    await conn.run(`head -c 50000000 ${q} > ${shQuote(`${target}.partial`)} && rm ${q}`);
    const resumed = await conn.upload(file, target, { sha256 });
    const afterResume = await remoteState(target);

    // a partial from some other file: detected by the hash on the host, removed, sent again whole
    await conn.run(`head -c 1000 /dev/urandom > ${shQuote(`${target}.partial`)} && rm ${q}`);
    const stale = await conn.upload(file, target, { sha256 });
    const afterStale = await remoteState(target);

    // the local file is not what its checksum says: refused on the host, nothing left behind
    const wrongTarget = '/var/tmp/kb-e2e/wrong.bin';
    const wrong = await caught(conn.upload(file, wrongTarget, { sha256: 'ab'.repeat(32) }));
    const afterWrong = await remoteState(wrongTarget);

    // connection dropped mid-transfer: the partial stays, a new connection continues it
    const cutTarget = '/var/tmp/kb-e2e/cut.bin';
    let closing: Promise<void> | undefined;
    const cut = await caught(
      conn.upload(file, cutTarget, {
        sha256,
        mode: 0o600,
        onProgress: (done) => {
          if (done > size / 3 && !closing) closing = conn.close();
        },
      }),
    );
    await closing;
    const conn2 = await h1(p);
    // the host's side of the cut upload ends on its own once it sees EOF; wait for that before resuming
    for (let i = 0; (await conn2.exec('pgrep -x tee')).code === 0; i++) if (i > 300) throw new Error('tee still running');
    const beforeResumeCut = await remoteState(cutTarget, conn2);
    const resumedCut = await conn2.upload(file, cutTarget, { sha256, mode: 0o600 });
    const afterCut = await remoteState(cutTarget, conn2);

    await conn2.uploadBytes('password=s3cr3t\n', '/var/tmp/kb-e2e/new/dir/secret.conf', 0o600);
    const small = (await conn2.run(`stat -c '%a %s' /var/tmp/kb-e2e/new/dir/secret.conf; cat /var/tmp/kb-e2e/new/dir/secret.conf; ls /var/tmp/kb-e2e/new/dir`)).stdout;
    await conn2.run('rm -rf /var/tmp/kb-e2e');
    await conn2.close();
    return {
      size,
      fresh,
      freshMs,
      afterFresh,
      progressFirst: progress[0],
      progressLast: progress.at(-1),
      progressCount: progress.length,
      progressMonotonic,
      again,
      againMs,
      resumed,
      afterResume,
      stale,
      afterStale,
      wrong,
      afterWrong,
      cut,
      beforeResumeCut,
      resumedCut,
      afterCut,
      small,
    };
  },
};

scenarios.auth = async (p) => {
  const withIdentity = (identityFile: string | undefined, agentSocket: string | false) =>
    caught(connect({ host: p.ip1, label: 'h1', ...(identityFile ? { identityFile } : {}) }, sshOptions(p, { agentSocket })).then((c) => c.close()));
  const stranger = join(p.workDir, 'stranger');
  local(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
  const locked = join(p.workDir, 'locked');
  local(['ssh-keygen', '-q', '-t', 'ed25519', '-N', 'a passphrase', '-f', locked]);
  const socket = join(p.workDir, 'agent.sock');
  const agentPid = /SSH_AGENT_PID=(\d+)/.exec(local(['ssh-agent', '-s', '-a', socket]))![1]!;
  try {
    spawnSync('ssh-add', ['-q', p.keyFile], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
    return {
      agentOnly: await withIdentity(undefined, socket),
      strangerKey: await withIdentity(stranger, false),
      lockedNoAgent: await withIdentity(locked, false),
      lockedWithAgent: await withIdentity(locked, socket),
      missingKey: await withIdentity(join(p.workDir, 'nope'), false),
      nothing: await withIdentity(undefined, false),
      socket,
      stranger,
      locked,
    };
  } finally {
    process.kill(Number(agentPid));
  }
};

/** Users `deploy` (passwordless sudo) and `guest` (no sudo rights) on h2. */
scenarios.sudo = async (p) => {
  const as = (user: string): Promise<Connection> => connect({ host: p.ip2, user, identityFile: p.keyFile, label: 'h2' }, sshOptions(p));
  const deploy = await as('deploy');
  const identity = (await deploy.run('id -un; echo "$X"', { env: { X: 'via env' } })).stdout;
  await deploy.upload(p.bigFile!, '/root/kb-sudo/file.bin', { sha256: p.bigSha! });
  await deploy.uploadBytes('k=v\n', '/etc/kb-sudo.conf', 0o600);
  const files = (await deploy.run(`stat -c '%U %a %s' /root/kb-sudo/file.bin /etc/kb-sudo.conf; sha256sum < /root/kb-sudo/file.bin | cut -c1-64`)).stdout;
  await deploy.run('rm -rf /root/kb-sudo /etc/kb-sudo.conf');
  await deploy.close();
  const guest = await as('guest');
  const refused = await caught(guest.run('true'));
  await guest.close();
  return { isRoot: deploy.isRoot, identity, files, refused };
};

async function childMain(name: string): Promise<void> {
  const scenario = scenarios[name];
  if (!scenario) throw new Error(`no scenario '${name}'`);
  const result = await scenario(JSON.parse(process.env.SSH_E2E_PARAMS ?? '{}') as Params);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Runs one scenario in hl-lab and returns what it printed. */
async function runScenario<T>(lab: Lab, name: string, params: Params): Promise<T> {
  const r = await lab.inNetns(['node', '--import', 'tsx', THIS_FILE], {
    cwd: REPO,
    env: { SSH_E2E_SCENARIO: name, SSH_E2E_PARAMS: JSON.stringify(params) },
    check: false,
    timeoutMs: 5 * 60_000,
  });
  assert.equal(r.code, 0, `scenario ${name} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T;
}

function registerTests(): void {
  describe('against sshd on lab hosts', () => {
    const lab = useLab(2);
    let workDir = '';
    const params = (): Params => {
      workDir ||= mkdtempSync(join(tmpdir(), 'kb-ssh-e2e-'));
      const [a, b] = lab().hosts;
      return { ip1: a!.ip, ip2: b!.ip, keyFile: lab().keyFile, knownHosts: lab().knownHostsFile, workDir };
    };

    test('exec: status and output, stdin and env, run errors with stderr tail and secrets redacted, timeout', async () => {
      const r = await runScenario<{
        status: { code: number; stdout: string; stderr: string };
        piped: { code: number; stdout: string };
        runFailure: Caught;
        timeout: Caught;
        timeoutElapsed: number;
        stillUsable: string;
        logs: string[];
      }>(lab(), 'exec', params());
      assert.deepEqual(r.status, { code: 3, stdout: 'out\n', stderr: 'err\n' });
      assert.deepEqual(r.piped, { code: 0, stdout: "got 12 chars\nit's me\n", stderr: '' });
      assert.equal(r.runFailure.name, 'RemoteCommandError');
      assert.match(r.runFailure.message, /^h1: `echo "bad token \*\*\*" >&2; .*` exited with 7:\n/);
      assert.match(r.runFailure.message, /l3\n {2}l4\n[\s\S]*l14$/, 'the last 12 stderr lines');
      assert.doesNotMatch(r.runFailure.message, /s3cr3t|l2\n/);
      assert.match(r.timeout.message, /h1: `sleep 30` did not finish within 0.5s/);
      assert.ok(r.timeoutElapsed < 5000, `timeout took ${r.timeoutElapsed} ms`);
      assert.equal(r.stillUsable, 'alive\n', 'the connection works after a timeout and the command was killed');
      assert.ok(r.logs.includes('h1$ echo out; echo err >&2; exit 3'));
      assert.ok(r.logs.every((l) => !l.includes('s3cr3t')), r.logs.join('\n'));
    });

    test('host keys: unknown refused with its fingerprint, accepted and recorded with the flag; changed always refused; hashed entries', async () => {
      const p = params();
      const fp = (await lab().ssh(1, 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub')).stdout.split(' ')[1]!;
      const r = await runScenario<Record<string, Caught | string | undefined>>(lab(), 'hostKeys', p);
      const unknown = r.unknown as Caught;
      assert.equal(unknown.message, `host key of h1 is unknown: it offered ssh-ed25519 key ${fp}, which is not in ${join(p.workDir, 'kh-new')}`);
      assert.match(unknown.hint!, /--accept-new-host-keys/);
      assert.equal(r.accepted, undefined);
      const labKeys = readFileSync(p.knownHosts, 'utf8').split('\n');
      const keyOf = (ip: string): string => labKeys.find((l) => l.startsWith(`${ip} `))!.split(' ').slice(1).join(' ');
      assert.equal(r.recorded, `# nothing yet\n${p.ip1} ${keyOf(p.ip1)}\n`);
      assert.equal(r.afterRecording, undefined);
      const changed = r.changed as Caught;
      assert.match(changed.message, new RegExp(`^HOST KEY OF h1 HAS CHANGED: it offered ssh-ed25519 key ${fp.replace(/[+/]/g, '\\$&')}, but ${join(p.workDir, 'kh-changed')}:2 records a different key`));
      assert.match(changed.hint!, /ssh-keygen -f .*kh-changed -R '10\.77\.0\.11'/);
      assert.equal(r.changedAfter, `# site hosts\n${p.ip1} ${keyOf(p.ip2)}\n`, 'nothing was appended');
      assert.match(r.hashedText as string, /^\|1\|/m);
      assert.doesNotMatch(r.hashedText as string, /10\.77\./);
      assert.equal(r.hashedOk, undefined);
      assert.match((r.hashedChanged as Caught).message, /HOST KEY OF h1 HAS CHANGED: .*kh-changed:2 records a different key/);
    });

    test('authentication: agent only, a key the host does not accept, passphrase-protected keys, no key at all', async () => {
      const p = params();
      const r = await runScenario<Record<string, Caught | undefined> & { socket: string; stranger: string; locked: string }>(lab(), 'auth', p);
      assert.equal(r.agentOnly, undefined, 'the agent holds the lab key');
      assert.equal(r.strangerKey?.message, `root@h1: SSH authentication failed (tried identity ${r.stranger})`);
      assert.match(r.strangerKey?.hint ?? '', /authorized_keys on 10\.77\.0\.11/);
      assert.equal(r.lockedNoAgent?.message, `SSH identity file ${r.locked} is protected by a passphrase`);
      assert.equal(r.lockedNoAgent?.hint, `load it into ssh-agent first: ssh-add ${r.locked}`);
      assert.equal(r.lockedWithAgent, undefined, 'a locked key file is left to the agent');
      assert.match(r.missingKey?.message ?? '', /^cannot read SSH identity file .*\/nope: ENOENT/);
      assert.equal(r.nothing?.message, 'no way to log in to h1: no identity file given and no ssh-agent running');
    });

    test('a host that is down or refuses is reported by name within seconds', async () => {
      const r = await runScenario<{ down: { error: Caught; ms: number }; refused: { error: Caught; ms: number } }>(lab(), 'unreachable', params());
      assert.match(r.down.error.message, /^cannot connect to lab-10\.77\.0\.99 port 22: (host unreachable|no SSH answer within 6s)/);
      assert.ok(r.down.ms < 7000, `down host took ${r.down.ms} ms`);
      assert.match(r.refused.error.message, /^cannot connect to lab-10\.77\.0\.11 port 2222: connection refused/);
      assert.ok(r.refused.ms < 2000, `refused took ${r.refused.ms} ms`);
    });

    test('a non-root user: commands and uploads run as root through sudo -n; missing sudo rights are explained', async () => {
      const p = params();
      // sudo is not in the lab's base system; the same Debian release's package is fetched with apt like any fixture
      const fetched = spawnSync('apt-get', ['download', '-q', 'sudo'], { cwd: p.workDir, encoding: 'utf8' });
      assert.equal(fetched.status, 0, `apt-get download sudo: ${fetched.stderr}`);
      const deb = readdirSync(p.workDir).find((f) => /^sudo_.*\.deb$/.test(f))!;
      await lab().copyTo(2, join(p.workDir, deb), '/tmp/sudo.deb');
      await lab().ssh(
        2,
        'dpkg -i /tmp/sudo.deb >/dev/null && for u in deploy guest; do useradd -m -s /bin/sh $u && ' +
          'install -d -m700 -o $u -g $u /home/$u/.ssh && install -m600 -o $u -g $u /root/.ssh/authorized_keys /home/$u/.ssh/; done && ' +
          "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy",
      );
      const smallFile = join(p.workDir, 'small.bin');
      const smallSha = writeRandomFile(smallFile, 3);
      const r = await runScenario<{ isRoot: boolean; identity: string; files: string; refused: Caught }>(lab(), 'sudo', { ...p, bigFile: smallFile, bigSha: smallSha });
      assert.equal(r.isRoot, false);
      assert.equal(r.identity, 'root\nvia env\n');
      assert.equal(r.files, `root 644 ${3 << 20}\nroot 600 4\n${smallSha}\n`);
      assert.equal(r.refused.name, 'RemoteCommandError');
      assert.match(r.refused.message, /^h2: `true` exited with 1:\n {2}sudo: a password is required$/);
      assert.equal(r.refused.hint, 'guest needs passwordless sudo on h2');
    });

    test('upload of 200 MiB: verified on the host, skipped when there, resumed from a partial, stale partial and bad hash handled', async (t) => {
      const p = params();
      const bigFile = join(p.workDir, 'big.bin');
      const bigSha = writeRandomFile(bigFile, 200);
      type Up = { skipped: boolean; resumedFrom: number; bytesSent: number };
      const r = await runScenario<Record<string, unknown> & { size: number }>(lab(), 'upload', { ...p, bigFile, bigSha });
      const size = r.size;
      assert.equal(size, 200 << 20);
      t.diagnostic(`200 MiB upload: ${r.freshMs} ms (${((size / (r.freshMs as number)) * 1000 / 2 ** 20).toFixed(0)} MiB/s); skip check: ${r.againMs} ms`);
      assert.deepEqual(r.fresh as Up, { skipped: false, resumedFrom: 0, bytesSent: size });
      assert.equal(r.afterFresh, `644 ${size} ${bigSha}\nnone`, 'in place with its mode, no partial left');
      assert.equal(r.progressFirst, 0);
      assert.equal(r.progressLast, size);
      assert.ok((r.progressCount as number) > 10 && r.progressMonotonic === true);
      assert.deepEqual(r.again as Up, { skipped: true, resumedFrom: 0, bytesSent: 0 });
      assert.deepEqual(r.resumed as Up, { skipped: false, resumedFrom: 50_000_000, bytesSent: size - 50_000_000 });
      assert.equal(r.afterResume, `644 ${size} ${bigSha}\nnone`);
      assert.deepEqual(r.stale as Up, { skipped: false, resumedFrom: 1000, bytesSent: size - 1000 + size });
      assert.equal(r.afterStale, `644 ${size} ${bigSha}\nnone`);
      const wrong = r.wrong as Caught;
      assert.equal(
        wrong.message,
        `h1:/var/tmp/kb-e2e/wrong.bin does not have the expected content after upload: sha256 on the host is ${bigSha}, expected ${'ab'.repeat(32)} (from ${bigFile})`,
      );
      assert.equal(r.afterWrong, 'none\nnone', 'neither the file nor a partial is left');
      assert.match((r.cut as Caught).message, /^h1: connection lost while running/);
      const [, partialLine] = (r.beforeResumeCut as string).split('\n');
      const partialSize = Number(partialLine!.split(' ')[1]);
      assert.ok(partialLine!.startsWith('600 ') && partialSize > 0 && partialSize < size, `partial after the cut: ${partialLine}`);
      assert.deepEqual(r.resumedCut as Up, { skipped: false, resumedFrom: partialSize, bytesSent: size - partialSize });
      assert.equal(r.afterCut, `600 ${size} ${bigSha}\nnone`);
      assert.equal(r.small, '600 16\npassword=s3cr3t\nsecret.conf\n', 'mode, content, no temp file left');
      rmSync(bigFile);
    });
  });
}

const scenario = process.env.SSH_E2E_SCENARIO;
if (scenario) await childMain(scenario);
else registerTests();
