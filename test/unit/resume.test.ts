/**
 * Resuming after a killed CLI (src/core/install/resume.ts): the decisions before kubeadm init and join, the probe
 * that feeds them, and the host-wide lock wrapper, run here in a real shell with its paths moved into a temp dir.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CLUSTER_SETTINGS, REMOTE_ROOT } from '../../src/core/install/host-paths.js';
import {
  ADMIN_CONF, CLUSTER_CA, ETCD_DATA_DIR, HOST_LOCK, HOST_LOCK_WAIT_SECONDS, KUBELET_CONF, hostLocked, initDecision, joinDecision, kubeadmResetCommand,
  kubeadmStateProbe, parseKubeadmState, type KubeadmState,
} from '../../src/core/install/resume.js';
import { runToEnd } from './helpers/process.js';

const MANIFESTS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd'].map((c) => `/etc/kubernetes/manifests/${c}.yaml`);
const state = (present: string[], apiAnswers = false): KubeadmState => ({ present: new Set(present), apiAnswers });

const sh = (script: string) => runToEnd('sh', ['-c', script]);

describe('initDecision', () => {
  it('nothing of kubeadm: init runs', () => {
    assert.deepEqual(initDecision(state([CLUSTER_SETTINGS])), { kind: 'fresh' });
    assert.deepEqual(initDecision(state([])), { kind: 'fresh' });
  });

  it('CA, admin.conf, the settings this install wrote and an API that answers: init had completed', () => {
    const d = initDecision(state([ADMIN_CONF, CLUSTER_CA, KUBELET_CONF, ...MANIFESTS, ETCD_DATA_DIR, CLUSTER_SETTINGS], true));
    assert.equal(d.kind, 'done');
    assert.match(d.kind === 'done' ? d.why : '', /kubeadm init had completed/);
  });

  it('anything kubeadm left without a working API or without the CA: half-done, named', () => {
    const dead = initDecision(state([ADMIN_CONF, CLUSTER_CA, ...MANIFESTS, CLUSTER_SETTINGS], false));
    assert.equal(dead.kind, 'redo');
    assert.match(dead.kind === 'redo' ? dead.why : '', /half-way \(\/etc\/kubernetes\/admin\.conf, .*\/etc\/kubernetes\/manifests\/etcd\.yaml; the API does not answer\)/);
    assert.equal(initDecision(state([ETCD_DATA_DIR, CLUSTER_SETTINGS])).kind, 'redo');
    assert.equal(initDecision(state([KUBELET_CONF, CLUSTER_SETTINGS])).kind, 'redo');
    assert.equal(initDecision(state([ADMIN_CONF, CLUSTER_SETTINGS], true)).kind, 'redo', 'no CA: not the init this install ran');
  });

  it('kubeadm files without the settings file this install writes before init: not ours, never reset', () => {
    const d = initDecision(state([ADMIN_CONF, CLUSTER_CA, ...MANIFESTS], true));
    assert.equal(d.kind, 'foreign');
    assert.match(d.kind === 'foreign' ? d.why : '', new RegExp(`no ${CLUSTER_SETTINGS}: a cluster this install did not make`));
  });
});

describe('joinDecision', () => {
  it('nothing of kubeadm: join runs', () => {
    assert.deepEqual(joinDecision(state([]), true, false), { kind: 'fresh' });
  });

  it('a worker with kubelet.conf that the cluster has: join had completed', () => {
    assert.equal(joinDecision(state([KUBELET_CONF, CLUSTER_CA]), true, false).kind, 'done');
  });

  it('kubelet.conf but the cluster does not have the node: half-done', () => {
    const d = joinDecision(state([KUBELET_CONF, CLUSTER_CA]), false, false);
    assert.equal(d.kind, 'redo');
    assert.match(d.kind === 'redo' ? d.why : '', /the cluster does not have the node/);
    assert.equal(joinDecision(state([CLUSTER_CA]), true, false).kind, 'redo', 'a registered node without kubelet.conf is re-joined');
  });

  it('a control plane also needs its admin.conf and static Pod manifests', () => {
    assert.equal(joinDecision(state([KUBELET_CONF, CLUSTER_CA, ADMIN_CONF, ...MANIFESTS, ETCD_DATA_DIR]), true, true).kind, 'done');
    const d = joinDecision(state([KUBELET_CONF, CLUSTER_CA]), true, true);
    assert.equal(d.kind, 'redo');
    assert.match(d.kind === 'redo' ? d.why : '', /no \/etc\/kubernetes\/admin\.conf, \/etc\/kubernetes\/manifests\/kube-apiserver\.yaml/);
  });
});

describe('kubeadmResetCommand', () => {
  it('names the runtime\'s CRI socket', () => {
    assert.equal(kubeadmResetCommand('unix:///var/run/cri-dockerd.sock'), 'kubeadm reset -f --cri-socket unix:///var/run/cri-dockerd.sock');
  });
});

describe('kubeadmStateProbe on a host (paths moved into a temp dir)', () => {
  it('reports the files kubeadm left, a non-empty etcd dir, and the settings file; no kubectl → no API', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'kb-probe-'));
    try {
      const probe = kubeadmStateProbe().replaceAll('/etc/', `${root}/etc/`).replaceAll('/var/lib/', `${root}/var/lib/`);
      const empty = await sh(probe);
      assert.equal(empty.code, 0);
      assert.deepEqual(parseKubeadmState(empty.stdout), state([]));

      await mkdir(`${root}/etc/kubernetes/manifests`, { recursive: true });
      await mkdir(`${root}/var/lib/etcd`, { recursive: true });
      await writeFile(`${root}${ADMIN_CONF}`, 'x');
      await writeFile(`${root}/etc/kubernetes/manifests/etcd.yaml`, 'x');
      const emptyEtcd = parseKubeadmState((await sh(probe)).stdout);
      assert.deepEqual([...emptyEtcd.present].sort(), [ADMIN_CONF, '/etc/kubernetes/manifests/etcd.yaml'].map((p) => `${root}${p}`).sort());

      await writeFile(`${root}/var/lib/etcd/member`, 'x');
      const found = parseKubeadmState((await sh(`PATH=/usr/bin:/bin; ${probe}`)).stdout);
      assert.ok(found.present.has(`${root}${ETCD_DATA_DIR}`));
      assert.equal(found.apiAnswers, false);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('parses "api answers"', () => {
    assert.deepEqual(parseKubeadmState(`present ${ADMIN_CONF}\napi answers\n`), state([ADMIN_CONF], true));
  });
});

describe('hostLocked (the lock and output dir moved into a temp dir)', () => {
  const inDir = (cmd: string, dir: string) => hostLocked(cmd).replaceAll(REMOTE_ROOT, dir);

  it('uses flock on the host-wide lock with a generous wait, stdin from /dev/null', () => {
    const line = hostLocked('kubeadm init --config /etc/kube-bundle/kubeadm-init.yaml --upload-certs');
    assert.ok(line.includes(`flock -w ${HOST_LOCK_WAIT_SECONDS} -E 75 ${HOST_LOCK} sh -c 'kubeadm init --config /etc/kube-bundle/kubeadm-init.yaml --upload-certs' </dev/null`), line);
    assert.ok(HOST_LOCK_WAIT_SECONDS >= 15 * 60, 'longer than a kubeadm init may take');
    assert.equal(HOST_LOCK, '/var/lib/kube-bundle/host.lock');
  });

  it('passes stdout, stderr and the exit status through, and leaves no output file behind', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kb-lock-'));
    try {
      const r = await sh(inDir(`echo out; echo "it's err" >&2; exit 3`, dir));
      assert.deepEqual(r, { code: 3, stdout: 'out\n', stderr: "it's err\n" });
      assert.deepEqual(await readdir(path.join(dir, 'steps')), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a second locked command waits for the first to end; a wait that runs out says so', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kb-lock-'));
    try {
      const first = sh(inDir(`sleep 1; echo first >> ${dir}/order`, dir));
      await new Promise((r) => setTimeout(r, 200));
      const second = await sh(inDir(`echo second >> ${dir}/order; cat ${dir}/order`, dir));
      assert.equal(second.stdout, 'first\nsecond\n');
      assert.equal((await first).code, 0);

      const holder = sh(inDir('sleep 2', dir));
      await new Promise((r) => setTimeout(r, 200));
      const busy = await sh(inDir('echo never', dir).replace(`-w ${HOST_LOCK_WAIT_SECONDS}`, '-w 0.3'));
      assert.equal(busy.code, 75);
      assert.equal(busy.stdout, '');
      assert.match(busy.stderr, /another kube-bundle step held .*host\.lock for 30 minutes/);
      await holder;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the command runs to its end when the session that started it is gone (its output does not go to the session)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kb-lock-'));
    try {
      // the reader of the pipe goes away at once, as a dead SSH session's does: writing there would be SIGPIPE
      const child = spawn('sh', ['-c', inDir(`sleep 0.5; echo a lot of output; echo done > ${dir}/result`, dir)], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy();
      child.stderr.destroy();
      await new Promise((r) => child.on('close', r));
      const result = await sh(`cat ${dir}/result`);
      assert.equal(result.stdout, 'done\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
