import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import {
  describeListener, foreignPortsProblem, gatherFacts, isOurListener, parseListeners, preflightProblems,
  type Facts, type Listener, type PreflightHost,
} from '../../src/core/install/facts.js';
import type { Connection } from '../../src/core/ssh/connection.js';

const NOTHING_OURS = { registryConfigured: false, registryActive: false, haproxyConfigured: false, keepalivedConfigured: false };

function facts(over: Partial<Facts> = {}): Facts {
  const listeners = over.listeners ?? [];
  return {
    osId: 'debian', osIdLike: [], osVersion: '12', arch: 'amd64', hostname: 'cp1', machineId: 'm1', clockSkewSeconds: 0, cpus: 4, memoryMiB: 4096,
    freeMiB: 100_000, listening: listeners.map((l) => l.port), kubeletInstalled: false, clusterConfigured: false, containerdVersion: undefined,
    dockerRunning: false, journal: [], addresses: [], listeners, clusterSettings: false, ours: NOTHING_OURS,
    ...over,
  };
}

const REQ = { targetOs: 'debian', targetVersion: '12', arches: ['amd64'], bundleMiB: 100, registryPort: 5000, registryLabel: 'cp1' };
const cp1 = (f: Facts): PreflightHost => ({ label: 'cp1', role: 'control-plane', facts: f, nodeName: 'cp1' });
const problemsOf = (f: Facts) => preflightProblems([cp1(f)], REQ);

const registry: Listener = { port: 5000, process: 'docker-registry', pid: 812, unit: 'kube-bundle-registry.service' };
const apiServer: Listener = { port: 6443, process: 'kube-apiserver', pid: 900, unit: 'cri-containerd-0a1b.scope' };

test('facts: listeners as the facts command prints them, `port,process,pid,unit` each', () => {
  assert.deepEqual(parseListeners(['5000,docker-registry,812,kube-bundle-registry.service', '22,sshd,99,ssh.service', '2024,,,', '6443,systemd,1,', 'junk', ',x,1,']), [
    registry,
    { port: 22, process: 'sshd', pid: 99, unit: 'ssh.service' },
    { port: 2024 },
    { port: 6443, process: 'systemd', pid: 1 },
  ]);
});

test('facts: the one read-only facts command runs under a plain POSIX sh and names who listens', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const run = promisify(execFile);
    const conn = { run: async (script: string) => run('sh', ['-c', script]) } as unknown as Connection;
    const f = await gatherFacts(conn);
    assert.ok(f.listening.includes(port), `port ${port} read from /proc/net/tcp`);
    assert.equal(typeof f.clusterSettings, 'boolean');
    assert.equal(typeof f.ours.registryActive, 'boolean');
    const mine = f.listeners.find((l) => l.port === port);
    const hasSs = await run('sh', ['-c', 'command -v ss']).then(() => true, () => false);
    if (hasSs) {
      assert.ok(mine, `ss lists port ${port}`);
      // as root (npm test), ss -p names every process; else only our own
      if (mine.process !== undefined) assert.deepEqual([mine.process, mine.pid], ['node', process.pid]);
    }
  } finally {
    server.close();
  }
});

test('preflight: the registry this install started in a run cut before its journal line is not in the way', () => {
  // the case: kube-bundle-registry.service runs, the journal stops at the packages
  assert.deepEqual(problemsOf(facts({ listeners: [registry], journal: ['upload', 'prepare', 'packages'], ours: { ...NOTHING_OURS, registryConfigured: true, registryActive: true } })), []);
  // recognized by its unit alone: the name is kube-bundle's
  assert.ok(isOurListener('registry', registry, facts()));
  // the host cannot name the listener (no ss): our unit running with our config
  const unnamed = facts({ listening: [5000], ours: { ...NOTHING_OURS, registryConfigured: true, registryActive: true } });
  assert.deepEqual(problemsOf(unnamed), []);
  assert.deepEqual(problemsOf({ ...unnamed, ours: { ...NOTHING_OURS, registryConfigured: true } }), ['cp1: port 5000 already in use']);
  // Debian's docker-registry.service, started by our package install: setup-registry.sh turns it off
  const packaged: Listener = { port: 5000, process: 'docker-registry', pid: 5, unit: 'docker-registry.service' };
  assert.deepEqual(problemsOf(facts({ listeners: [packaged], journal: ['upload', 'prepare', 'packages'] })), []);
});

test('preflight: a port held by something not ours is refused, naming the holder when the host can tell', () => {
  const nginx: Listener = { port: 5000, process: 'nginx', pid: 77, unit: 'nginx.service' };
  assert.deepEqual(problemsOf(facts({ listeners: [nginx], journal: ['upload', 'packages'], ours: { ...NOTHING_OURS, registryConfigured: true, registryActive: true } })), [
    'cp1: port 5000 already in use by nginx (pid 77, nginx.service)',
  ]);
  // a site's own docker-registry before this install did anything
  assert.deepEqual(problemsOf(facts({ listeners: [{ port: 5000, process: 'docker-registry', pid: 5, unit: 'docker-registry.service' }] })), [
    'cp1: port 5000 already in use by docker-registry (pid 5, docker-registry.service)',
  ]);
  // several: each named where it can be
  assert.deepEqual(problemsOf(facts({ listeners: [{ port: 6443, process: 'nginx', pid: 3 }, { port: 2379 }] })), ['cp1: ports 6443, 2379 already in use; 6443 by nginx (pid 3)']);
  assert.equal(describeListener(undefined), '');
  assert.equal(describeListener({ port: 1, process: 'sshd' }), 'sshd');
});

test('preflight: the Kubernetes ports and /etc/kubernetes are ours on a host with this install\'s journal or cluster settings', () => {
  const cut = { journal: ['upload', 'prepare', 'packages', 'registry', 'runtime'], clusterConfigured: true };
  // kubeadm init cut half-way: its API server and etcd run, the journal has no init line
  assert.deepEqual(problemsOf(facts({ ...cut, listeners: [apiServer, { port: 2379, process: 'etcd', pid: 901 }, registry] })), []);
  // the settings init records, with no journal at all, are this install's too
  assert.deepEqual(problemsOf(facts({ clusterSettings: true, clusterConfigured: true, listeners: [apiServer] })), []);
  // the tests' stub API server is socket-activated: systemd (pid 1) holds 6443
  assert.deepEqual(problemsOf(facts({ ...cut, listeners: [{ port: 6443, process: 'systemd', pid: 1 }] })), []);
  // but not before kubeadm ran here: pid 1 on 6443 with no /etc/kubernetes is someone else's socket
  assert.deepEqual(problemsOf(facts({ ...cut, clusterConfigured: false, listeners: [{ port: 6443, process: 'systemd', pid: 1 }] })), [
    'cp1: port 6443 already in use by systemd (pid 1)',
  ]);
  // a foreign process is named, our journal or not
  assert.deepEqual(problemsOf(facts({ ...cut, listeners: [{ port: 6443, process: 'nginx', pid: 3, unit: 'nginx.service' }] })), [
    'cp1: port 6443 already in use by nginx (pid 3, nginx.service)',
  ]);
});

test('preflight: a cluster that is not this install\'s is refused, its files and ports named', () => {
  assert.deepEqual(problemsOf(facts({ clusterConfigured: true, listeners: [apiServer] })), [
    'cp1: already has a Kubernetes node configured (/etc/kubernetes): run `bundle reset` on it or remove it from the hosts file',
    'cp1: port 6443 already in use by kube-apiserver (pid 900, cri-containerd-0a1b.scope)',
  ]);
  // a host whose journal says the install finished is not checked at all
  assert.deepEqual(problemsOf(facts({ clusterConfigured: true, listeners: [apiServer], journal: ['installed'] })), []);
});

test('foreignPortsProblem: a port nobody holds, or only ours, gives no problem; the text can say what the port is for', () => {
  assert.equal(foreignPortsProblem([[8443, 'haproxy']], facts()), undefined);
  const f = facts({ listeners: [{ port: 8443, process: 'haproxy', pid: 4 }], ours: { ...NOTHING_OURS, haproxyConfigured: true } });
  assert.equal(foreignPortsProblem([[8443, 'haproxy']], f), undefined);
  assert.equal(foreignPortsProblem([[8443, 'haproxy']], { ...f, ours: NOTHING_OURS }, ' (haproxy\'s)'), 'port 8443 (haproxy\'s) already in use by haproxy (pid 4)');
});
