/**
 * What each host stores of the bundle: the registry host all of it; the others the installer, manifests, release
 * files and the repository's index, and of the .debs only their role's closure over the bundle's Packages index,
 * taken generously (every alternative and provider the repository carries) so that apt on the host finds
 * whatever it picks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { debClosure, hostPayload, type VerifiedTree } from '../../src/core/install/payload.js';

const stanza = (name: string, fields: Record<string, string> = {}, arch = 'amd64'): string =>
  [`Package: ${name}`, 'Version: 1.0', `Architecture: ${arch}`, ...Object.entries(fields).map(([k, v]) => `${k}: ${v}`), `Filename: ${name}_1.0_${arch}.deb`, ''].join('\n');

const INDEX = [
  stanza('kubelet', { Depends: 'conntrack, iptables (>= 1.4), libc6 (>= 2.34), kubernetes-cni' }),
  stanza('kubeadm', { 'Pre-Depends': 'cri-tools', Depends: 'kubelet' }),
  stanza('kubernetes-cni'),
  stanza('cri-tools'),
  stanza('conntrack'),
  stanza('iptables', { Depends: 'libip4tc2 | libip6tc2, netbase [arm64]' }),
  stanza('libip4tc2'),
  stanza('libip6tc2'),
  stanza('netbase', {}, 'all'),
  stanza('containerd', { Depends: 'runc-provider' }),
  stanza('runc', { Provides: 'runc-provider' }),
  stanza('crun', { Provides: 'runc-provider' }),
  stanza('docker-registry', { Depends: 'adduser' }),
  stanza('adduser', {}, 'all'),
  stanza('haproxy'),
  stanza('kubelet', {}, 'arm64'),
].join('\n');

test('the closure follows Depends and Pre-Depends, takes every alternative and provider, and stops at the base system', () => {
  assert.deepEqual(debClosure(INDEX, ['kubeadm'], 'amd64'), [
    'packages/conntrack_1.0_amd64.deb',
    'packages/cri-tools_1.0_amd64.deb',
    'packages/iptables_1.0_amd64.deb',
    'packages/kubeadm_1.0_amd64.deb',
    'packages/kubelet_1.0_amd64.deb',
    'packages/kubernetes-cni_1.0_amd64.deb',
    'packages/libip4tc2_1.0_amd64.deb', // both alternatives: apt may pick either
    'packages/libip6tc2_1.0_amd64.deb',
  ]);
  // netbase is only an arm64 dependency, libc6 is not in the repository (the host's base system)
  assert.deepEqual(debClosure(INDEX, ['containerd'], 'amd64'), ['packages/containerd_1.0_amd64.deb', 'packages/crun_1.0_amd64.deb', 'packages/runc_1.0_amd64.deb']);
  assert.deepEqual(debClosure(INDEX.replace('Package: iptables\nVersion: 1.0\nArchitecture: amd64', 'Package: iptables\nVersion: 1.0\nArchitecture: arm64').replace('Filename: iptables_1.0_amd64', 'Filename: iptables_1.0_arm64'), ['iptables'], 'arm64'), [
    'packages/iptables_1.0_arm64.deb',
    'packages/netbase_1.0_all.deb', // an [arm64] dependency, an Architecture: all package
  ]);
  assert.deepEqual(debClosure(INDEX, ['kubelet'], 'arm64'), ['packages/kubelet_1.0_arm64.deb']);
  assert.deepEqual(debClosure(INDEX, ['not-in-the-bundle'], 'amd64'), []);
});

const sha = (c: string): string => c.repeat(64);
const TREE: VerifiedTree = {
  sums: new Map([
    ['bundle.yaml', sha('a')],
    ['images/blobs/sha256/' + sha('b'), sha('b')],
    ['images/index.json', sha('c')],
    ['images/oci-layout', sha('d')],
    ['installer/install-packages.sh', sha('e')],
    ['installer/registry-seed.txt', sha('f')],
    ['manifests/kube-flannel.yml', sha('0')],
    ['packages/InRelease', sha('1')],
    ['packages/Packages', sha('2')],
    ['packages/Packages.gz', sha('3')],
    ['packages/Release', sha('4')],
    ['packages/docker-registry_1.0_amd64.deb', sha('5')],
    ['packages/adduser_1.0_all.deb', sha('6')],
    ['packages/haproxy_1.0_amd64.deb', sha('7')],
    ['packages/kubelet_1.0_amd64.deb', sha('8')],
    ['packages/kubernetes-cni_1.0_amd64.deb', sha('9')],
    ['packages/conntrack_1.0_amd64.deb', sha('a')],
    ['packages/iptables_1.0_amd64.deb', sha('b')],
    ['packages/libip4tc2_1.0_amd64.deb', sha('c')],
    ['packages/libip6tc2_1.0_amd64.deb', sha('d')],
  ]),
  packagesIndex: INDEX,
  signed: true,
};

test('the registry host stores the whole bundle; a worker no image, no other role\'s package', () => {
  const whole = hostPayload(TREE, { whole: true });
  assert.equal(whole.length, TREE.sums.size + 2);
  assert.deepEqual(whole.slice(0, 2), ['SHA256SUMS', 'SHA256SUMS.asc'], 'SHA256SUMS and its signature lead, as in the tar');

  const worker = hostPayload(TREE, { packages: ['kubelet'], arch: 'amd64' });
  assert.deepEqual(worker, [
    'SHA256SUMS',
    'SHA256SUMS.asc',
    'bundle.yaml',
    'installer/install-packages.sh',
    'installer/registry-seed.txt',
    'manifests/kube-flannel.yml',
    'packages/InRelease',
    'packages/Packages',
    'packages/Packages.gz',
    'packages/Release',
    'packages/conntrack_1.0_amd64.deb',
    'packages/iptables_1.0_amd64.deb',
    'packages/kubelet_1.0_amd64.deb',
    'packages/kubernetes-cni_1.0_amd64.deb',
    'packages/libip4tc2_1.0_amd64.deb',
    'packages/libip6tc2_1.0_amd64.deb',
  ]);
  const lb = hostPayload({ ...TREE, signed: false }, { packages: ['haproxy'], arch: 'amd64' });
  assert.ok(lb.includes('packages/haproxy_1.0_amd64.deb') && !lb.includes('packages/kubelet_1.0_amd64.deb') && !lb.includes('SHA256SUMS.asc'));
});
