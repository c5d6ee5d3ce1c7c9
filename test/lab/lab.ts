/**
 * Test-host lab for e2e tests: N booted Debian 12 (or 13, `suite: 'trixie'`) hosts (systemd-nspawn) made by
 * ./hostlab.sh, reachable only from inside the netns `hl-lab`. The test runner stays in the root netns; everything that talks to the hosts (ssh, scp,
 * the `bundle install` CLI, simulated upstream servers on the bridge address) runs through `hostlab.sh exec`, which
 * enters hl-lab and puts the process into the lab cgroup so that `hostlab.sh down` ends it even after a crash.
 *
 * One lab per machine (the netns names are fixed): the lab holds a flock on LOCK_FILE from startLab until down, and
 * hands the same locked file to the hostlab.sh verbs it runs as fd 9. A second user fails at once, naming the holder.
 * The kernel drops the lock when this process dies however it dies; the next `up` then clears the leftovers.
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

export const HOSTLAB_SCRIPT = fileURLToPath(new URL('./hostlab.sh', import.meta.url));
export const DEFAULT_LAB_DIR = '/var/tmp/kube-bundle-lab';
/** The Debian suites the lab boots; hostlab.sh's SUITE. */
export type LabSuite = 'bookworm' | 'trixie';

/** Each suite has its own LAB dir, since the cached base rootfs lives there: bookworm keeps the historical one. */
export function defaultLabDir(suite: LabSuite = 'bookworm'): string {
  return suite === 'bookworm' ? DEFAULT_LAB_DIR : `${DEFAULT_LAB_DIR}-${suite}`;
}
/** Must match LOCK in hostlab.sh. */
export const LOCK_FILE = '/run/lock/hostlab.lock';
export const LAB_NETNS = 'hl-lab';

export interface LabHost {
  /** h1, h2, ... (also its hostname and its name in every host's /etc/hosts) */
  name: string;
  ip: string;
  /** the address on the second NIC, with the net2 option */
  ip2?: string;
  /** 1-based, as in the name and in `hostlab.sh ssh I`; the `i` that ssh()/copyTo() take */
  index: number;
  /** systemd units that failed during boot (the host came up "degraded"); empty when it came up "running" */
  failedUnits: string[];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** throw when the exit code is not 0 (default true) */
  check?: boolean;
  input?: string | Buffer;
  /** the whole process group is killed after this (default 5 min) */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export type ReadyWhen =
  /** a line of the server's stdout or stderr matches */
  | { line: string | RegExp }
  /** an HTTP(S) request to this URL, made from inside hl-lab, gets any response */
  | { url: string };

export interface SpawnOptions {
  ready: ReadyWhen;
  /** give up (and kill the server) when it is not ready by then (default 30 s) */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface LabServer {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved */
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited */
  stop(): Promise<void>;
}

export interface SystemState {
  /** what `systemctl is-system-running` prints: running, degraded, starting, ... */
  state: string;
  failedUnits: string[];
}

export interface Lab {
  hosts: LabHost[];
  /** the LAB state dir of hostlab.sh */
  dir: string;
  keyFile: string;
  knownHostsFile: string;
  /** one host IP per line, for `bundle install --hosts` */
  hostsFile: string;
  /** the bridge address in hl-lab, the only lab address that is not a host: bind simulated upstreams here */
  bridgeIp: string;
  netns: string;
  /** `command` runs through the remote shell as root on host `i` (1-based) */
  ssh(i: number, command: string, opts?: RunOptions): Promise<RunResult>;
  /** run argv inside hl-lab */
  inNetns(argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** start a long-running process inside hl-lab; resolves once `ready` holds. down() stops it. */
  spawnInNetns(argv: string[], opts: SpawnOptions): Promise<LabServer>;
  /** systemd's state on host `i` (1-based) and its failed units; `wait` waits for boot to finish */
  systemState(i: number, opts?: { wait?: boolean; timeoutMs?: number }): Promise<SystemState>;
  /** scp a file or directory (recursively, modes kept) to host `i` */
  copyTo(i: number, localPath: string, remotePath: string): Promise<void>;
  /** stop servers, `hostlab.sh down`, release the lock; idempotent */
  down(): Promise<void>;
}

export interface StartLabOptions {
  /** the hosts' Debian suite: bookworm (12, default) or trixie (13) */
  suite?: LabSuite;
  /** LAB for hostlab.sh (default defaultLabDir(suite); the cached base rootfs lives there) */
  labDir?: string;
  /** NET for hostlab.sh: the first three octets (default 10.77.0) */
  net?: string;
  /** NET2 for hostlab.sh: a second NIC on every host (eth1, NET2.(10+i), bridge br1), as a cluster network */
  net2?: string;
  /** false: the hosts get no default route at all (an air-gapped site's usual shape) */
  defaultRoute?: boolean;
  /** deps + base build + up; the base build (debootstrap) on a fresh machine takes minutes (default 15 min) */
  upTimeoutMs?: number;
  /** per host, for systemd to finish booting (default 60 s) */
  bootTimeoutMs?: number;
  /** wait this long for another process's lab to go away (default 0: fail at once, naming the holder) */
  lockWaitMs?: number;
  /** where warnings go (default stderr) */
  warn?: (message: string) => void;
}

const DEFAULT_RUN_TIMEOUT_MS = 5 * 60_000;
const TAIL_CHARS = 2000;

/** A command failed (exit code, signal or timeout); `result` has what it printed. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly result: RunResult,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

function tail(text: string): string {
  const t = text.trimEnd();
  return t.length > TAIL_CHARS ? `...${t.slice(-TAIL_CHARS)}` : t;
}

function describeArgv(argv: string[]): string {
  const text = argv.join(' ');
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/**
 * Each child gets its own process group (detached): a Ctrl-C on the terminal then reaches only this process, whose
 * handler tears the lab down in order, and a timeout can kill a command together with its children.
 */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

interface ProcessSpec extends RunOptions {
  argv: string[];
  /** names the command in errors (default: argv) */
  label?: string;
  /** passed to the child as fd 9 (hostlab.sh's lock fd) */
  lockFd?: number;
}

function startProcess(spec: ProcessSpec): ChildProcess {
  const [command, ...args] = spec.argv;
  if (command === undefined) throw new Error('empty argv');
  const stdio: StdioOptions = ['pipe', 'pipe', 'pipe'];
  if (spec.lockFd !== undefined) stdio.push(...Array<'ignore'>(6).fill('ignore'), spec.lockFd);
  const child = spawn(command, args, { stdio, detached: true, env: spec.env ?? process.env, cwd: spec.cwd });
  // A command that exits without reading its stdin makes our write fail with EPIPE; its exit code tells the story.
  child.stdin?.on('error', () => {});
  child.stdin?.end(spec.input);
  return child;
}

function runProcess(spec: ProcessSpec, onStart?: (child: ChildProcess) => void): Promise<RunResult> {
  const timeoutMs = spec.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = startProcess(spec);
    onStart?.(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${describeArgv(spec.argv)}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        code: code ?? 128,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      const what = spec.label ?? describeArgv(spec.argv);
      if (timedOut) reject(new CommandError(`${what}: timed out after ${timeoutMs} ms\n${tail(result.stderr)}`, result));
      else if (signal) reject(new CommandError(`${what}: killed by ${signal}\n${tail(result.stderr)}`, result));
      else if (result.code !== 0 && spec.check !== false)
        reject(new CommandError(`${what}: exit code ${result.code}\n${tail(result.stderr)}`, result));
      else resolve(result);
    });
  });
}

/** Holds LOCK_FILE with flock(1) on a descriptor of ours: the lock lives as long as that descriptor (or we) do. */
async function acquireLock(waitMs: number): Promise<number> {
  const fd = openSync(LOCK_FILE, 'a');
  const wait = waitMs > 0 ? ['-w', String(waitMs / 1000)] : ['-n'];
  const r = await runProcess({ argv: ['flock', ...wait, '9'], lockFd: fd, check: false, timeoutMs: waitMs + 10_000 }).catch(
    (err: unknown) => {
      closeSync(fd);
      throw err;
    },
  );
  if (r.code !== 0) {
    closeSync(fd);
    throw new Error(
      `another test-host lab is in use on this machine: ${LOCK_FILE} is held by ${readHolder()}; ` +
        'only one lab can exist at a time (fixed netns names) - wait for that run or stop it',
    );
  }
  writeFileSync(LOCK_FILE, `pid ${process.pid} (node ${process.argv.slice(1).join(' ')})\n`);
  return fd;
}

function readHolder(): string {
  try {
    return readFileSync(LOCK_FILE, 'utf8').trim().slice(0, 300) || 'an unknown process';
  } catch {
    return 'an unknown process';
  }
}

/** The one lab of this process: it owns the lock, the in-flight hostlab.sh verb and the servers to stop. */
class LabSession implements Lab {
  hosts: LabHost[] = [];
  readonly dir: string;
  readonly keyFile: string;
  readonly knownHostsFile: string;
  readonly hostsFile: string;
  readonly bridgeIp: string;
  readonly netns = LAB_NETNS;
  private readonly env: NodeJS.ProcessEnv;
  private readonly servers = new Set<LabServer>();
  /** the hostlab.sh verb running now, if any; teardown interrupts it */
  private verb: { child?: ChildProcess; done: Promise<unknown> } | undefined;
  private teardown: Promise<void> | undefined;
  private readonly onSignal = (signal: NodeJS.Signals) => this.exitOnSignal(signal);
  private readonly onExit = () => this.downSync();

  constructor(
    private lockFd: number | undefined,
    private readonly opts: StartLabOptions,
  ) {
    this.dir = opts.labDir ?? defaultLabDir(opts.suite);
    this.keyFile = join(this.dir, 'keys', 'id_ed25519');
    this.knownHostsFile = join(this.dir, 'known_hosts');
    this.hostsFile = join(this.dir, 'hosts.txt');
    const net = opts.net ?? '10.77.0';
    this.bridgeIp = `${net}.1`;
    this.env = { ...process.env, LAB: this.dir, NET: net, SUITE: opts.suite ?? 'bookworm', NET2: opts.net2 ?? '', DEFAULT_ROUTE: opts.defaultRoute === false ? '0' : '1' };
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('exit', this.onExit);
  }

  async start(n: number): Promise<void> {
    await this.hostlab('deps', [], 10 * 60_000);
    await this.hostlab('up', [String(n)], this.opts.upTimeoutMs ?? 15 * 60_000);
    this.hosts = readFileSync(this.hostsFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((ip, k) => ({ name: `h${k + 1}`, ip, index: k + 1, failedUnits: [], ...(this.opts.net2 ? { ip2: `${this.opts.net2}.${11 + k}` } : {}) }));
    if (this.hosts.length !== n) throw new Error(`${this.hostsFile}: ${this.hosts.length} hosts, expected ${n}`);
    await Promise.all(this.hosts.map((h) => this.waitBooted(h)));
  }

  private async waitBooted(host: LabHost): Promise<void> {
    const { state, failedUnits } = await this.systemState(host.index, { wait: true, timeoutMs: this.opts.bootTimeoutMs ?? 60_000 });
    host.failedUnits = failedUnits;
    const consoleLog = join(this.dir, 'hosts', host.name, 'console.log');
    if (state === 'running') return;
    if (state !== 'degraded') throw new Error(`${host.name} (${host.ip}): systemd is '${state}' after boot; see ${consoleLog}`);
    const warn = this.opts.warn ?? ((m: string) => process.stderr.write(`${m}\n`));
    warn(`lab: ${host.name} (${host.ip}) is degraded, failed units: ${failedUnits.join(', ')}; see ${consoleLog}`);
  }

  async systemState(i: number, opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<SystemState> {
    // --wait blocks until boot has finished, so there is nothing to poll
    const command = `systemctl is-system-running${opts.wait ? ' --wait' : ''}; systemctl --failed --plain --no-legend`;
    const r = await this.ssh(i, command, { check: false, timeoutMs: opts.timeoutMs });
    if (r.code === 255) throw new CommandError(`ssh ${this.host(i).name}: ${tail(r.stderr)}`, r);
    const [state = '', ...failed] = r.stdout.trim().split('\n');
    return { state, failedUnits: failed.map((line) => line.trim().split(/\s+/)[0] ?? '').filter(Boolean) };
  }

  host(i: number): LabHost {
    const host = this.hosts.find((h) => h.index === i);
    if (!host) throw new RangeError(`no lab host ${i}: hosts are numbered 1..${this.hosts.length}`);
    return host;
  }

  private sshOptions(): string[] {
    return ['-i', this.keyFile, '-o', `UserKnownHostsFile=${this.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR'];
  }

  async ssh(i: number, command: string, opts: RunOptions = {}): Promise<RunResult> {
    const host = this.host(i);
    const shown = command.length > 200 ? `${command.slice(0, 200)}...` : command;
    const argv = ['ssh', ...this.sshOptions(), `root@${host.ip}`, command];
    return this.runInNetns(argv, opts, `ssh ${host.name} (${host.ip}) ${JSON.stringify(shown)}`);
  }

  inNetns(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.runInNetns(argv, opts, `in ${LAB_NETNS}: ${describeArgv(argv)}`);
  }

  private runInNetns(argv: string[], opts: RunOptions, label: string): Promise<RunResult> {
    return runProcess({ ...opts, label, argv: ['bash', HOSTLAB_SCRIPT, 'exec', ...argv], env: { ...this.env, ...opts.env } });
  }

  async copyTo(i: number, localPath: string, remotePath: string): Promise<void> {
    const host = this.host(i);
    const argv = ['scp', '-q', '-p', '-r', ...this.sshOptions(), localPath, `root@${host.ip}:${remotePath}`];
    await this.runInNetns(argv, {}, `scp ${localPath} to ${host.name} (${host.ip}):${remotePath}`);
  }

  async spawnInNetns(argv: string[], opts: SpawnOptions): Promise<LabServer> {
    const child = startProcess({ argv: ['bash', HOSTLAB_SCRIPT, 'exec', ...argv], env: { ...this.env, ...opts.env }, cwd: opts.cwd });
    const server = newServer(child);
    this.servers.add(server);
    child.once('close', () => this.servers.delete(server));
    try {
      await waitReady(server, argv, opts, (url) => this.respondsInNetns(url));
      return server;
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  private async respondsInNetns(url: string): Promise<boolean> {
    const r = await this.inNetns(['curl', '-sk', '-o', '/dev/null', '--max-time', '2', url], { check: false });
    return r.code === 0;
  }

  down(): Promise<void> {
    this.teardown ??= this.tearDown();
    return this.teardown;
  }

  private async tearDown(): Promise<void> {
    try {
      await Promise.all([...this.servers].map((s) => s.stop()));
      const verb = this.verb; // an `up` still running (before() timed out, a signal came): stop it, `down` clears
      if (verb?.child) killGroup(verb.child, 'SIGTERM');
      await verb?.done.catch(() => {});
      await this.hostlab('down', [], 2 * 60_000);
    } finally {
      this.releaseLock();
    }
  }

  /** Last resort when the process exits with the lab still up (uncaught error, process.exit()): block on `down`. */
  private downSync(): void {
    if (this.lockFd === undefined) return;
    if (this.verb?.child) killGroup(this.verb.child, 'SIGKILL');
    const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', ...Array<'ignore'>(6).fill('ignore'), this.lockFd];
    spawnSync('bash', [HOSTLAB_SCRIPT, 'down'], { stdio, env: this.env, timeout: 2 * 60_000 });
    this.releaseLock();
  }

  private exitOnSignal(signal: NodeJS.Signals): void {
    process.stderr.write(`lab: ${signal}, tearing the lab down\n`);
    const code = 128 + (signal === 'SIGINT' ? 2 : 15);
    this.down().then(
      () => process.exit(code),
      (err: unknown) => {
        process.stderr.write(`lab: teardown failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(code);
      },
    );
  }

  private releaseLock(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('exit', this.onExit);
    if (this.lockFd !== undefined) closeSync(this.lockFd);
    this.lockFd = undefined;
    if (active === this) active = undefined;
  }

  /** One hostlab.sh verb at a time, with our locked fd as its fd 9; once teardown began, only its `down`. */
  private hostlab(name: string, args: string[], timeoutMs: number): Promise<RunResult> {
    if (this.lockFd === undefined || (this.teardown && name !== 'down'))
      return Promise.reject(new Error(`hostlab.sh ${name}: the lab is being torn down`));
    const verb: { child?: ChildProcess; done: Promise<unknown> } = { done: Promise.resolve() };
    const run = runProcess(
      { argv: ['bash', HOSTLAB_SCRIPT, name, ...args], env: this.env, timeoutMs, lockFd: this.lockFd },
      (child) => (verb.child = child),
    );
    verb.done = run;
    this.verb = verb;
    return run;
  }
}

function newServer(child: ChildProcess): LabServer {
  let output = '';
  const append = (b: Buffer) => {
    output = (output + b.toString('utf8')).slice(-64 * 1024); // servers can be chatty; keep the recent part
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  child.on('error', (e) => append(Buffer.from(`\nspawn error: ${e.message}\n`)));
  const closed = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('close', () => resolve());
  });
  return {
    child,
    output: () => output,
    async stop() {
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
      await closed;
      clearTimeout(timer);
    },
  };
}

/** Resolves when `ready` holds; rejects when the server exits first or the deadline passes. */
function waitReady(
  server: LabServer,
  argv: string[],
  opts: SpawnOptions,
  responds: (url: string) => Promise<boolean>,
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const what = describeArgv(argv);
  const { child } = server;
  const { ready } = opts;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const onData = () => {
      if ('line' in ready && server.output().split('\n').some((l) => matches(l, ready.line))) finish();
    };
    const onClose = (code: number | null, signal: string | null) =>
      finish(new Error(`${what}: exited (${signal ?? `code ${code}`}) before it was ready; output:\n${tail(server.output())}`));
    const timer = setTimeout(
      () => finish(new Error(`${what}: not ready after ${timeoutMs} ms; output:\n${tail(server.output())}`)),
      timeoutMs,
    );
    function finish(err?: Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('close', onClose);
      if (err) reject(err);
      else resolve();
    }
    child.on('close', onClose);
    if ('line' in ready) {
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
    } else {
      pollUrl(ready.url, responds, () => settled).then(() => finish(), finish);
    }
  });
}

function matches(line: string, pattern: string | RegExp): boolean {
  return typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line);
}

/** Polls every 100 ms (each probe is a curl inside hl-lab) until the URL answers or `stopped()` says to give up. */
async function pollUrl(url: string, responds: (url: string) => Promise<boolean>, stopped: () => boolean): Promise<void> {
  while (!stopped()) {
    if (await responds(url)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

let active: LabSession | undefined;

/**
 * Starts an n-host lab (builds the cached base rootfs if missing, clears a crashed run's leftovers) and resolves once
 * every host answers SSH and systemd has finished booting. On failure the lab is torn down before the error is thrown.
 */
export async function startLab(n: number, opts: StartLabOptions = {}): Promise<Lab> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`startLab: host count must be a positive integer, got ${n}`);
  if (active) throw new Error('startLab: this process already has a lab up; call lab.down() first');
  const session = new LabSession(await acquireLock(opts.lockWaitMs ?? 0), opts);
  active = session;
  try {
    await session.start(n);
    return session;
  } catch (err) {
    await session.down().catch((downErr: unknown) => {
      process.stderr.write(`lab: teardown after a failed start failed too: ${String(downErr)}\n`);
    });
    throw err;
  }
}

/**
 * node:test glue: starts the lab in `before`, tears it down in `after` (also when `before` failed or timed out, and
 * on SIGINT/SIGTERM through the handlers startLab installs). Returns an accessor for use inside tests.
 */
export function useLab(n: number, opts: StartLabOptions = {}): () => Lab {
  let lab: Lab | undefined;
  before(async () => {
    lab = await startLab(n, opts);
  });
  after(async () => {
    // `active` also covers a start still in flight when a `before` timeout gave up on it
    await (lab ?? active)?.down();
  });
  return () => {
    if (!lab) throw new Error('the lab is not up (useLab starts it in before(); did that fail?)');
    return lab;
  };
}
