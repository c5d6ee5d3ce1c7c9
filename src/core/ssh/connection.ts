/**
 * One SSH connection to one host, on ssh2: strict host key checking against known_hosts, key or agent auth,
 * commands run as root (through `sudo -n` for other users), and resumable, host-verified uploads.
 *
 *   const conn = await connect({ host: '10.0.0.5', user: 'admin' }, { knownHostsFile: '~/.ssh/known_hosts' });
 *   await conn.run('apt-get install -y ./x.deb');
 *   await conn.upload('bundle.tar', '/var/lib/kube-bundle/bundle.tar', { sha256 });
 *   await conn.close();
 */
import { readFileSync } from 'node:fs';
import ssh2, { Client, type ClientChannel, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';
import { UserError } from '../../util/errors.js';
import { tooManyOpenFiles } from '../../util/open-files.js';
import { Secrets, TIMEOUT_EXIT_CODE, wrapCommand, type ExecOptions, type ExecResult } from './command.js';
import { expandHome, knownKeyTypes, readKnownHosts, verifyHostKey } from './known-hosts.js';
import { uploadFile, uploadSmallFile, type UploadOptions, type UploadResult } from './upload.js';

export interface SshTarget {
  /** IP address or DNS name */
  host: string;
  port?: number;
  /** default root */
  user?: string;
  /** private key file; ssh-agent (SSH_AUTH_SOCK) is tried as well */
  identityFile?: string;
  /** how messages name the host, e.g. "cp1 (10.0.0.5)"; default the host */
  label?: string;
}

export interface SshOptions {
  /** OpenSSH known_hosts file; `~/` is expanded */
  knownHostsFile: string;
  /** record unknown host keys instead of refusing them (a changed key is refused regardless) */
  acceptNewHostKeys?: boolean;
  /** ssh-agent socket; default $SSH_AUTH_SOCK, false for none */
  agentSocket?: string | false;
  /** TCP connect + SSH handshake + auth must finish within this (default 6000) */
  connectTimeoutMs?: number;
  /** keepalive period; the connection is declared dead after 3 unanswered (default 5000) */
  keepaliveIntervalMs?: number;
  /** values blanked out of logged commands and error messages */
  secrets?: Secrets;
  /** receives every command run, redacted, as "label$ command" */
  log?(line: string): void;
}

/**
 * A failed `run`: names host and command; the message ends with the last lines of its output — stderr's, and when
 * that is short the end of stdout before them (apt-get prints dpkg's reason there and only "E: Sub-process
 * /usr/bin/dpkg returned an error code (1)" on stderr).
 */
export class RemoteCommandError extends UserError {
  constructor(
    readonly host: string,
    readonly command: string,
    readonly result: ExecResult,
    hint?: string,
  ) {
    const status = result.code === null ? `was killed by ${result.signal ?? 'a signal'}` : `exited with ${result.code}`;
    const tail = outputTail(result, 12);
    super(`${host}: \`${command}\` ${status}${tail ? `:\n${tail.replace(/^/gm, '  ')}` : ''}`, hint);
    this.name = 'RemoteCommandError';
  }
}

function outputTail(result: ExecResult, n: number): string {
  // output through a terminal: CRLF (or CR CR LF) line ends; a progress line redrawn after bare CRs keeps its last text
  const lines = (text: string): string[] => (text.trim() ? text.trimEnd().split('\n').map((l) => l.replace(/\r+$/, '').replace(/^.*\r/, '')) : []);
  const err = lines(result.stderr).slice(-n);
  const out = err.length < n ? lines(result.stdout).slice(-(n - err.length)) : [];
  return [...out, ...err].join('\n');
}

/** Fast ciphers first: AES-GCM uses AES-NI in OpenSSL; chacha20 (ssh2's native binding) where AES is slow. */
const CIPHERS: NonNullable<ConnectConfig['algorithms']>['cipher'] = [
  'aes128-gcm@openssh.com',
  'chacha20-poly1305@openssh.com',
  'aes256-gcm@openssh.com',
  'aes128-ctr',
  'aes256-ctr',
];

const HOST_KEY_ALGORITHMS: ServerHostKeyAlgorithm[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Host key algorithms with those whose key type known_hosts has for this host first, as OpenSSH orders them. */
function hostKeyAlgorithms(knownTypes: string[]): ServerHostKeyAlgorithm[] {
  const wanted = (alg: string): boolean => knownTypes.includes(alg.startsWith('rsa-sha2-') ? 'ssh-rsa' : alg);
  return [...HOST_KEY_ALGORITHMS.filter(wanted), ...HOST_KEY_ALGORITHMS.filter((a) => !wanted(a))];
}

/** The identity file as ssh2 wants it, or undefined when only the agent can use it (passphrase-protected). */
function readIdentity(file: string, agentAvailable: boolean): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(expandHome(file));
  } catch (err) {
    throw new UserError(`cannot read SSH identity file ${file}: ${(err as Error).message}`, undefined, { cause: err });
  }
  const parsed = ssh2.utils.parseKey(data);
  if (!(parsed instanceof Error)) return data;
  if (/passphrase/i.test(parsed.message)) {
    if (agentAvailable) return undefined;
    throw new UserError(`SSH identity file ${file} is protected by a passphrase`, `load it into ssh-agent first: ssh-add ${file}`);
  }
  throw new UserError(`SSH identity file ${file} is not a private key ssh can use: ${parsed.message}`);
}

function describeConnectError(err: Error & { code?: string; level?: string }, target: Required<Pick<SshTarget, 'host' | 'port'>>, timeoutMs: number): string {
  const fds = tooManyOpenFiles(err.code);
  if (fds) return fds;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `connection refused on port ${target.port} (is sshd running?)`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable (is it up and on this network?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve the name ${target.host}`;
    case 'ETIMEDOUT':
      return 'connection timed out';
  }
  if (err.level === 'client-timeout') return `no SSH answer within ${timeoutMs / 1000}s (is it up, is port ${target.port} open?)`;
  return err.message;
}

/**
 * Opens and authenticates a connection. Throws a UserError naming the host for every way this can fail: down,
 * refused, timed out, host key unknown/changed, authentication refused.
 */
export async function connect(target: SshTarget, options: SshOptions): Promise<Connection> {
  const port = target.port ?? 22;
  const user = target.user ?? 'root';
  const label = target.label ?? target.host;
  const knownHostsFile = expandHome(options.knownHostsFile);
  const timeoutMs = options.connectTimeoutMs ?? 6000;
  const agent = options.agentSocket === false ? undefined : (options.agentSocket ?? process.env.SSH_AUTH_SOCK);
  const privateKey = target.identityFile ? readIdentity(target.identityFile, agent !== undefined) : undefined;
  if (!privateKey && !agent) {
    throw new UserError(`no way to log in to ${label}: no identity file given and no ssh-agent running`, 'pass -i <private key> or start ssh-agent (SSH_AUTH_SOCK)');
  }

  const client = new Client();
  let hostKeyError: unknown;
  const config: ConnectConfig = {
    host: target.host,
    port,
    username: user,
    ...(privateKey ? { privateKey } : {}),
    ...(agent ? { agent } : {}),
    readyTimeout: timeoutMs,
    keepaliveInterval: options.keepaliveIntervalMs ?? 5000,
    keepaliveCountMax: 3,
    algorithms: { cipher: CIPHERS, serverHostKey: hostKeyAlgorithms(knownKeyTypes(readKnownHosts(knownHostsFile), target.host, port)) },
    hostVerifier: (key: Buffer) => {
      try {
        verifyHostKey({ file: knownHostsFile, host: target.host, port, label, key, acceptNew: options.acceptNewHostKeys ?? false });
        return true;
      } catch (err) {
        hostKeyError = err;
        return false;
      }
    },
  };

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error & { code?: string; level?: string }): void => {
      client.removeListener('ready', onReady);
      client.end();
      if (hostKeyError) return reject(hostKeyError);
      if (err.level === 'client-authentication') {
        const tried = [privateKey ? `identity ${target.identityFile}` : '', agent ? `ssh-agent (${agent})` : ''].filter(Boolean).join(', ');
        return reject(new UserError(`${user}@${label}: SSH authentication failed (tried ${tried})`, `is the public key in ~${user}/.ssh/authorized_keys on ${target.host}?`));
      }
      reject(new UserError(`cannot connect to ${label} port ${port}: ${describeConnectError(err, { host: target.host, port }, timeoutMs)}`, undefined, { cause: err }));
    };
    const onReady = (): void => {
      client.removeListener('error', onError);
      resolve();
    };
    client.once('error', onError).once('ready', onReady).connect(config);
  });
  return new Connection(client, label, user, options);
}

export class Connection {
  readonly isRoot: boolean;
  private readonly secrets: Secrets;
  private lostError: Error | undefined;
  private closed = false;

  constructor(
    private readonly client: Client,
    /** how messages name this host */
    readonly label: string,
    readonly user: string,
    private readonly options: SshOptions,
  ) {
    this.isRoot = user === 'root';
    this.secrets = options.secrets ?? new Secrets();
    // after 'ready', errors (keepalive timeout, reset) arrive here; running commands fail through 'close'
    client.on('error', (err) => {
      this.lostError = err;
    });
    client.on('close', () => {
      this.closed = true;
    });
  }

  /** Runs a shell command as root; resolves with its exit status and output whatever the status. */
  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.options.log?.(`${this.label}$ ${this.secrets.redact(command)}`);
    const shown = this.secrets.redact(opts.name ?? command); // how errors name it
    const line = wrapCommand(command, {
      sudo: !this.isRoot,
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutSeconds: opts.timeoutMs / 1000 } : {}),
    });
    const result = new Promise<ExecResult>((resolve, reject) => {
      // half-open: after our stdin EOF the channel stays open for the output and exit status, until the host closes it
      const onChannel = (err: Error | undefined, channel: ClientChannel): void => {
        if (err) return reject(this.lost(shown, err));
        this.collect(channel, shown, opts.stdin).then(resolve, reject);
      };
      try {
        this.client.exec(line, { allowHalfOpen: true }, onChannel);
      } catch (err) {
        reject(this.lost(shown, err as Error)); // ssh2 throws when the connection is already gone
      }
    });
    if (opts.timeoutMs === undefined) return result;
    return result.then((r) => {
      if (r.code !== TIMEOUT_EXIT_CODE) return r;
      throw new UserError(`${this.label}: \`${shown}\` did not finish within ${opts.timeoutMs! / 1000}s and was stopped`);
    });
  }

  /** Like exec, but a non-zero exit is a RemoteCommandError carrying host, command and the end of its output. */
  async run(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const result = await this.exec(command, opts);
    if (result.code !== 0) {
      const redacted = { ...result, stdout: this.secrets.redact(result.stdout), stderr: this.secrets.redact(result.stderr) };
      const hint = !this.isRoot && /sudo: .*password/.test(result.stderr) ? `${this.user} needs passwordless sudo on ${this.label}` : undefined;
      throw new RemoteCommandError(this.label, this.secrets.redact(opts.name ?? command), redacted, hint);
    }
    return result;
  }

  /**
   * Copies a local file to `remotePath`, atomically: written to `remotePath.partial` and renamed once the host
   * has checked its sha256. Skipped when the remote file already has that sha256; a partial left by an
   * interrupted upload is continued from where it stopped.
   */
  upload(localFile: string, remotePath: string, opts: UploadOptions = {}): Promise<UploadResult> {
    return uploadFile(this, localFile, remotePath, opts);
  }

  /** Writes a small generated file (config, key, token) atomically with `mode`; the content goes over stdin. */
  uploadBytes(bytes: string | Buffer, remotePath: string, mode = 0o644): Promise<void> {
    return uploadSmallFile(this, bytes, remotePath, mode);
  }

  /** Ends the connection; resolves once it is closed (at once when it already is). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.client.once('close', () => resolve());
      this.client.end();
    });
  }

  private lost(command: string, cause: Error): UserError {
    const why = this.lostError?.message ?? cause.message;
    return new UserError(`${this.label}: connection lost while running \`${command}\`: ${why}`, undefined, { cause });
  }

  /** Feeds stdin, gathers output and waits for the exit status of one exec channel. */
  private collect(channel: ClientChannel, shown: string, stdin: ExecOptions['stdin']): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let exit: { code: number | null; signal?: string } | undefined;
      let failure: Error | undefined;
      channel.on('data', (d: Buffer) => stdout.push(d));
      channel.stderr.on('data', (d: Buffer) => stderr.push(d));
      channel.on('exit', (code: number | null, signal?: string) => {
        exit = { code, ...(signal ? { signal } : {}) };
      });
      channel.on('error', (err: Error) => {
        failure ??= this.lost(shown, err);
      });
      channel.on('close', () => {
        stopFeeding();
        if (failure) return reject(failure);
        if (!exit) return reject(this.lost(shown, new Error('channel closed without an exit status')));
        resolve({ ...exit, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
      });
      const stopFeeding = this.feed(channel, stdin, (err) => {
        failure ??= new UserError(`${this.label}: cannot feed stdin of \`${shown}\`: ${err.message}`, undefined, { cause: err });
        channel.close();
      });
    });
  }

  /** Starts writing stdin into the channel; returns how to stop (the command may exit before reading it all). */
  private feed(channel: ClientChannel, stdin: ExecOptions['stdin'], onError: (err: Error) => void): () => void {
    if (stdin === undefined || typeof stdin === 'string' || Buffer.isBuffer(stdin)) {
      channel.end(stdin);
      return () => {};
    }
    stdin.once('error', onError);
    stdin.pipe(channel);
    return () => {
      stdin.unpipe(channel);
      stdin.destroy();
    };
  }
}
