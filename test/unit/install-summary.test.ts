import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSummary, type InstallSummary } from '../../src/core/install/summary.js';

const base: InstallSummary = {
  ok: true, dryRun: false, changed: true, cancelled: false,
  nodes: [{ name: 'cp1', address: '10.0.0.11', role: 'control-plane' }],
  kubeconfig: 'cp1 (10.0.0.11):/etc/kubernetes/admin.conf',
  phases: [
    { title: 'Upload the bundle', status: 'ok', seconds: 1.2, hosts: [{ host: 'cp1', status: 'skipped' }] },
    { title: 'Set up the control-plane address (haproxy + keepalived)', status: 'ok', seconds: 0, hosts: [] },
    { title: 'kubeadm init on the first control plane', status: 'failed', seconds: 2, hosts: [{ host: 'cp1', status: 'failed', error: 'cp1: `kubeadm init` exited with 1:\n  [ERROR ImagePull]' }] },
  ],
  uploadedDirectly: [],
  seconds: 3.4,
};

test('the summary names the failed host, phase and error, and leaves out phases with no host', () => {
  const text = formatSummary({ ...base, ok: false });
  assert.match(text, /Install failed on 1 host\(s\)/);
  assert.match(text, /cp1 — kubeadm init on the first control plane:\n {4}cp1: `kubeadm init` exited with 1:\n {6}\[ERROR ImagePull\]/);
  assert.match(text, /Upload the bundle\s+done before\s+1\.2s/);
  assert.doesNotMatch(text, /haproxy \+ keepalived/);
  assert.match(text, /total\s+3\.4s/);
});

test('a re-run that changed nothing says so', () => {
  assert.match(formatSummary({ ...base, changed: false, phases: [base.phases[0]!] }), /^Nothing to do: every host is already as installed\./);
  assert.equal(formatSummary({ ...base, dryRun: true }), 'Dry run: nothing was changed.\n');
});

test('hosts that got their part uploaded from here are named with their hosts-file line and why; a phase\'s own error too', () => {
  const text = formatSummary({
    ...base,
    hostsFile: 'hosts.txt',
    uploadedDirectly: [{ host: 'w7 (10.0.0.18)', line: 8, reason: 'cannot reach it over SSH: ssh: connect to host 10.0.0.11 port 22: Connection timed out' }],
    phases: [...base.phases, { title: 'Hand out the bundle inside the site', status: 'failed', seconds: 1, error: 'cp1: removing the one-time key failed', hosts: [] }],
    ok: false,
  });
  assert.match(text, /Uploaded from here \(could not fetch their part inside the site\): 1 host\(s\)\n {2}w7 \(10\.0\.0\.18\) \[hosts\.txt:8\]: cannot reach it over SSH: ssh: connect to host 10\.0\.0\.11 port 22: Connection timed out/);
  assert.match(text, /Hand out the bundle inside the site: cp1: removing the one-time key failed/);
});
