import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { parseKubeVersion } from '../../src/core/kube-version.js';
import {
  caCertHash, containerdConfig, fillTemplate, hostsToml, imagesOfManifest, kubeadmInitConfig, kubeadmJoinConfig, newBootstrapToken, newCertificateKey, renderFlannel,
} from '../../src/core/install/render.js';
import { unpackedDebianPackage } from '../upstream/registry/debian-package.js';

const v1323 = parseKubeVersion('v1.32.3');

test('templates: every placeholder needs a value and every value a placeholder', () => {
  assert.equal(fillTemplate('a {{x}} b', { x: '1' }, 't'), 'a 1 b');
  assert.throws(() => fillTemplate('a {{x}}', {}, 't'), /no value for \{\{x\}\}/);
  assert.throws(() => fillTemplate('a', { x: '1' }, 't'), /values given for no placeholder: x/);
});

test('containerd 1.x accepts the version 2 config: real `containerd config dump` shows what kubeadm needs', async () => {
  const root = await unpackedDebianPackage('containerd');
  const dir = mkdtempSync(join(tmpdir(), 'ctd-'));
  writeFileSync(join(dir, 'config.toml'), containerdConfig(1, 'registry.k8s.io/pause:3.10'));
  const dump = execFileSync(join(root, 'usr/bin/containerd'), ['--config', join(dir, 'config.toml'), 'config', 'dump']).toString();
  assert.match(dump, /sandbox_image = "registry\.k8s\.io\/pause:3\.10"/);
  assert.match(dump, /SystemdCgroup = true/);
  assert.match(dump, /config_path = "\/etc\/containerd\/certs\.d"/);
  assert.match(containerdConfig(2, 'registry.k8s.io/pause:3.10'), /^version = 3$/m);
  assert.match(containerdConfig(2, 'registry.k8s.io/pause:3.10'), /sandbox = "registry\.k8s\.io\/pause:3\.10"/);
});

test('hosts.toml sends an upstream registry to the seeded one with no fallback', () => {
  const text = hostsToml('registry.k8s.io', '10.0.0.11:5000', '/etc/kube-bundle/pki/ca.crt');
  const settings = text.split('\n').filter((l) => !l.startsWith('#'));
  assert.match(text, /^server = "https:\/\/10\.0\.0\.11:5000"$/m, 'the fallback is the seeded registry too');
  assert.match(text, /^\[host\."https:\/\/10\.0\.0\.11:5000"\]$/m, 'containerd 1.6 ignores a hosts.toml without a host tree');
  assert.equal(settings.filter((l) => /ca = "\/etc\/kube-bundle\/pki\/ca\.crt"/.test(l)).length, 2);
  assert.ok(!settings.some((l) => l.includes('registry.k8s.io')), 'the upstream is named nowhere but in comments');
});

test('kubeadm configs: v1beta4 for 1.32, v1beta3 for 1.30, with the values kubeadm validates', () => {
  const token = newBootstrapToken();
  const key = newCertificateKey();
  assert.match(token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
  assert.match(key, /^[0-9a-f]{64}$/);
  const init = kubeadmInitConfig({
    version: v1323, token, certificateKey: key, advertiseAddress: '10.0.0.11', nodeName: 'cp1', criSocket: 'unix:///run/containerd/containerd.sock',
    controlPlaneEndpoint: '10.0.0.11:6443', imageRepository: 'registry.k8s.io', podSubnet: '10.244.0.0/16', serviceSubnet: '10.96.0.0/12', certSANs: ['10.0.0.11', 'cp1'],
  });
  const docs = parseAllDocuments(init).map((d) => d.toJS());
  assert.deepEqual(docs.map((d) => d.kind), ['InitConfiguration', 'ClusterConfiguration', 'KubeletConfiguration']);
  assert.equal(docs[0].apiVersion, 'kubeadm.k8s.io/v1beta4');
  assert.equal(docs[0].bootstrapTokens[0].token, token);
  assert.equal(docs[1].kubernetesVersion, 'v1.32.3');
  assert.deepEqual(docs[1].apiServer.certSANs, ['10.0.0.11', 'cp1']);
  assert.equal(docs[2].cgroupDriver, 'systemd');
  const join = parse(kubeadmJoinConfig({ version: parseKubeVersion('v1.30.5'), apiServerEndpoint: '10.0.0.11:6443', token, caCertHash: 'sha256:ab', nodeName: 'w1', criSocket: 'unix:///x', controlPlane: { advertiseAddress: '10.0.0.12', certificateKey: key } }));
  assert.equal(join.apiVersion, 'kubeadm.k8s.io/v1beta3');
  assert.deepEqual(join.discovery.bootstrapToken.caCertHashes, ['sha256:ab']);
  assert.equal(join.controlPlane.certificateKey, key);
});

test('the CA hash is sha256 over the DER SubjectPublicKeyInfo, as openssl computes it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ca-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=kubernetes', '-days', '1', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'pipe' });
  const pub = execFileSync('openssl', ['x509', '-pubkey', '-noout', '-in', join(dir, 'c')]);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
  const expected = execFileSync('sha256sum', { input: der }).toString().split(' ')[0];
  assert.equal(caCertHash(readFileSync(join(dir, 'c'), 'utf8')), `sha256:${expected}`);
  assert.throws(() => caCertHash('not a cert'), /cluster CA certificate cannot be read/);
});

test('flannel\'s network follows the pod CIDR; images kept or mapped', () => {
  const manifest = readFileSync(new URL('../upstream/fixtures/kube-flannel.yml', import.meta.url), 'utf8').replaceAll('@FLANNEL_VERSION@', 'v0.26.5').replaceAll('@CNI_PLUGIN_VERSION@', 'v1.6.2-flannel1');
  const out = renderFlannel(manifest, '10.200.0.0/16');
  assert.match(out, /"Network": "10\.200\.0\.0\/16"/);
  assert.deepEqual(imagesOfManifest(out).sort(), ['ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1', 'ghcr.io/flannel-io/flannel:v0.26.5']);
  const mapped = renderFlannel(manifest, '10.244.0.0/16', (r) => r.replace('ghcr.io/', '10.0.0.11:5000/'));
  assert.ok(imagesOfManifest(mapped).every((i) => i.startsWith('10.0.0.11:5000/flannel-io/')));
  assert.throws(() => renderFlannel('kind: Namespace\n', '10.0.0.0/8'), /no ConfigMap with net-conf\.json/);
});
