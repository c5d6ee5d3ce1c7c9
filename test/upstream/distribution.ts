/**
 * A real CNCF distribution registry ("docker-registry" in Debian) as a child process: the storage behind the
 * simulated upstream registries. Debian's packaged config turns on htpasswd auth, so we write our own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { TEST_CACHE_DIR, unpackedDebianPackage } from './registry/debian-package.js';

export interface DistributionRegistry {
  /** e.g. http://127.0.0.1:41759 (no auth, read-write) */
  url: string;
  storageDir: string;
  stop(): Promise<void>;
}

export interface DistributionOptions {
  /** Config and storage go to `<workDir>/distribution/`. */
  workDir: string;
  cacheDir?: string;
  /** How long to wait for the registry to listen and answer /v2/. */
  startTimeoutMs?: number;
}

const LOG_TAIL_LINES = 40;

export async function startDistribution(options: DistributionOptions): Promise<DistributionRegistry> {
  const packageRoot = await unpackedDebianPackage('docker-registry', options.cacheDir ?? TEST_CACHE_DIR);
  const binary = join(packageRoot, 'usr/bin/docker-registry');
  const dir = join(options.workDir, 'distribution');
  const storageDir = join(dir, 'storage');
  await mkdir(storageDir, { recursive: true });
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, stringify(registryConfig(storageDir)));

  const child = spawn(binary, ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  // If the test process dies without calling stop(), do not leave an orphaned registry behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const log = collectLog(child);
  const stop = async () => {
    await stopChild(child);
    process.off('exit', killOnExit);
  };
  try {
    const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
    const address = await withDeadline(log.listening, deadline, `${binary} did not report its listen address`);
    const url = `http://${address}`;
    await pollUntilReady(`${url}/v2/`, deadline);
    return { url, storageDir, stop };
  } catch (err) {
    await stop();
    throw new Error(`distribution registry (${binary} serve ${configPath}) failed to start: ${(err as Error).message}` +
      `\n--- last log lines ---\n${log.tail().join('\n')}`);
  }
}

function registryConfig(storageDir: string): object {
  return {
    version: 0.1,
    // info level is needed for the "listening on" line we read the port from; access logs are noise.
    log: { level: 'info', formatter: 'json', accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: storageDir },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    // Port 0: the kernel picks a free port, so parallel test processes never collide.
    http: { addr: '127.0.0.1:0', secret: randomBytes(16).toString('hex') },
  };
}

interface ChildLog {
  /** Resolves with host:port from the registry's "listening on" log line; rejects if the process exits first. */
  listening: Promise<string>;
  tail(): string[];
}

/** Reads the JSON log lines on stderr (keeps draining them so the pipe never fills) and keeps the last few. */
function collectLog(child: ChildProcess): ChildLog {
  const lines: string[] = [];
  let onAddress: (address: string) => void = () => {};
  let onExit: (err: Error) => void = () => {};
  const listening = new Promise<string>((resolve, reject) => {
    onAddress = resolve;
    onExit = reject;
  });
  listening.catch(() => {}); // observed by the caller; avoid an unhandled rejection after a timeout
  createInterface({ input: child.stderr! }).on('line', (line) => {
    lines.push(line);
    if (lines.length > LOG_TAIL_LINES) lines.shift();
    const match = /^listening on (\S+)$/.exec(logMessage(line));
    if (match?.[1]) onAddress(match[1]);
  });
  child.once('error', (err) => onExit(err));
  child.once('exit', (code, signal) => onExit(new Error(`exited early (code ${code}, signal ${signal})`)));
  return { listening, tail: () => [...lines] };
}

function logMessage(line: string): string {
  try {
    const parsed = JSON.parse(line) as { msg?: unknown };
    return typeof parsed.msg === 'string' ? parsed.msg : '';
  } catch {
    return ''; // not one of the registry's JSON lines (e.g. a Go panic); kept in the tail only
  }
}

async function pollUntilReady(url: string, deadline: number): Promise<void> {
  let lastProblem = 'no attempt made';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.status === 200) return;
      lastProblem = `HTTP ${response.status}`;
    } catch (err) {
      lastProblem = (err as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 25)); // poll interval
  }
  throw new Error(`GET ${url} did not answer 200 in time (last: ${lastProblem})`);
}

function withDeadline<T>(promise: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} in time`)), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** SIGTERM, then SIGKILL if the registry has not exited after a few seconds. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const killTimer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(killTimer);
}
