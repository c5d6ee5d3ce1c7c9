import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { parseKubeVersion } from '../../src/core/kube-version.js';
import {
  caCertHash, fillTemplate, kubeadmInitConfig, kubeadmJoinConfig, newBootstrapToken, newCertificateKey, renderFlannel,
} from '../../src/core/install/render.js';
import { containerdConfig, hostsToml } from '../../src/core/install/runtime/containerd.js';
import { unpackedDebianPackage } from '../upstream/registry/debian-package.js';

const v1323 = parseKubeVersion('v1.32.3');

/** The image references a rendered manifest names, each once. */
function imagesOfManifest(manifest: string): string[] {
  return [...new Set([...manifest.matchAll(/^\s*image:\s*["']?([^\s"']+)/gm)].map((m) => m[1] as string))];
}

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
    version: v1323, token, certificateKey: key, advertiseAddress: '10.0.0.11', nodeName: 'cp1', nodeIp: '10.0.0.11', criSocket: 'unix:///run/containerd/containerd.sock',
    controlPlaneEndpoint: '10.0.0.11:6443', imageRepository: 'registry.k8s.io', podSubnet: '10.244.0.0/16', serviceSubnet: '10.96.0.0/12', certSANs: ['10.0.0.11', 'cp1'],
  });
  const docs = parseAllDocuments(init).map((d) => d.toJS());
  assert.deepEqual(docs.map((d) => d.kind), ['InitConfiguration', 'ClusterConfiguration', 'KubeletConfiguration']);
  assert.equal(docs[0].apiVersion, 'kubeadm.k8s.io/v1beta4');
  assert.equal(docs[0].bootstrapTokens[0].token, token);
  assert.equal(docs[1].kubernetesVersion, 'v1.32.3');
  assert.deepEqual(docs[1].apiServer.certSANs, ['10.0.0.11', 'cp1']);
  assert.equal(docs[2].cgroupDriver, 'systemd');
  const join = parse(kubeadmJoinConfig({ version: parseKubeVersion('v1.30.5'), apiServerEndpoint: '10.0.0.11:6443', token, caCertHash: 'sha256:ab', nodeName: 'w1', nodeIp: '10.0.0.12', criSocket: 'unix:///x', controlPlane: { advertiseAddress: '10.0.0.12', certificateKey: key } }));
  assert.equal(join.apiVersion, 'kubeadm.k8s.io/v1beta3');
  assert.deepEqual(join.nodeRegistration.kubeletExtraArgs, { 'node-ip': '10.0.0.12' }, 'v1beta3: a map');
  assert.deepEqual(docs[0].nodeRegistration.kubeletExtraArgs, [{ name: 'node-ip', value: '10.0.0.11' }], 'v1beta4: a list of name/value');
  assert.deepEqual(join.discovery.bootstrapToken.caCertHashes, ['sha256:ab']);
  assert.equal(join.controlPlane.certificateKey, key);
});

const STUB_FLATTEN = new URL('../upstream/stubs/kubeadm/usr/lib/kube-stub/yaml-flatten.awk', import.meta.url).pathname;

/** What the stub kubeadm reads from a config: DOC<TAB>PATH<TAB>VALUE lines (see yaml-flatten.awk). */
function stubFlatten(yaml: string): string[] {
  return execFileSync('awk', ['-f', STUB_FLATTEN], { input: yaml }).toString().trim().split('\n');
}

const initValues = (over: Partial<Parameters<typeof kubeadmInitConfig>[0]> = {}): Parameters<typeof kubeadmInitConfig>[0] => ({
  version: v1323, token: 'abcdef.0123456789abcdef', certificateKey: 'ab'.repeat(32), advertiseAddress: '10.0.0.11', nodeName: 'cp1', nodeIp: '10.0.0.11', criSocket: 'unix:///run/containerd/containerd.sock',
  controlPlaneEndpoint: '10.0.0.10:8443', imageRepository: 'registry.k8s.io', podSubnet: '10.244.0.0/16', serviceSubnet: '10.96.0.0/12', certSANs: ['10.0.0.11', 'cp1', '10.0.0.10'],
  ...over,
});

test('kubeadm configs are serialized: every field the stub kubeadm reads, in the form it reads, for v1beta3 and v1beta4', () => {
  for (const [tag, api] of [['v1.32.3', 'v1beta4'], ['v1.30.5', 'v1beta3']] as const) {
    // the kubelet's --node-ip: kubeletExtraArgs is a list of name/value in v1beta4, a map before
    const nodeIpLines = (ip: string) => (api === 'v1beta4' ? ['0\tnodeRegistration.kubeletExtraArgs.0.name\tnode-ip', `0\tnodeRegistration.kubeletExtraArgs.0.value\t${ip}`] : [`0\tnodeRegistration.kubeletExtraArgs.node-ip\t${ip}`]);
    const init = kubeadmInitConfig(initValues({ version: parseKubeVersion(tag) }));
    assert.match(init, /^# kubeadm init configuration, written by kube-bundle \(mode 0600/);
    assert.match(init, /^ {2}certSANs: \["10\.0\.0\.11", "cp1", "10\.0\.0\.10"\]$/m, 'lists of strings stay one-line flow sequences');
    assert.deepEqual(stubFlatten(init), [
      `0\tapiVersion\tkubeadm.k8s.io/${api}`, '0\tkind\tInitConfiguration',
      '0\tbootstrapTokens.0.token\tabcdef.0123456789abcdef', '0\tbootstrapTokens.0.ttl\t24h0m0s', '0\tbootstrapTokens.0.description\tkube-bundle install',
      '0\tbootstrapTokens.0.usages.0\tsigning', '0\tbootstrapTokens.0.usages.1\tauthentication', '0\tbootstrapTokens.0.groups.0\tsystem:bootstrappers:kubeadm:default-node-token',
      `0\tcertificateKey\t${'ab'.repeat(32)}`, '0\tlocalAPIEndpoint.advertiseAddress\t10.0.0.11', '0\tlocalAPIEndpoint.bindPort\t6443',
      '0\tnodeRegistration.name\tcp1', '0\tnodeRegistration.criSocket\tunix:///run/containerd/containerd.sock', '0\tnodeRegistration.imagePullPolicy\tIfNotPresent',
      ...nodeIpLines('10.0.0.11'),
      `1\tapiVersion\tkubeadm.k8s.io/${api}`, '1\tkind\tClusterConfiguration', `1\tkubernetesVersion\t${tag}`, '1\tcontrolPlaneEndpoint\t10.0.0.10:8443',
      '1\timageRepository\tregistry.k8s.io', '1\tnetworking.podSubnet\t10.244.0.0/16', '1\tnetworking.serviceSubnet\t10.96.0.0/12', '1\tnetworking.dnsDomain\tcluster.local',
      '1\tapiServer.certSANs.0\t10.0.0.11', '1\tapiServer.certSANs.1\tcp1', '1\tapiServer.certSANs.2\t10.0.0.10',
      '2\tapiVersion\tkubelet.config.k8s.io/v1beta1', '2\tkind\tKubeletConfiguration', '2\tcgroupDriver\tsystemd',
    ]);
    const join = kubeadmJoinConfig({ version: parseKubeVersion(tag), apiServerEndpoint: '10.0.0.10:8443', token: 'abcdef.0123456789abcdef', caCertHash: 'sha256:ab', nodeName: 'cp2', nodeIp: '10.0.0.12', criSocket: 'unix:///x', controlPlane: { advertiseAddress: '10.0.0.12', certificateKey: 'cd'.repeat(32) } });
    assert.deepEqual(stubFlatten(join), [
      `0\tapiVersion\tkubeadm.k8s.io/${api}`, '0\tkind\tJoinConfiguration',
      '0\tdiscovery.bootstrapToken.apiServerEndpoint\t10.0.0.10:8443', '0\tdiscovery.bootstrapToken.token\tabcdef.0123456789abcdef', '0\tdiscovery.bootstrapToken.caCertHashes.0\tsha256:ab',
      '0\tnodeRegistration.name\tcp2', '0\tnodeRegistration.criSocket\tunix:///x', '0\tnodeRegistration.imagePullPolicy\tIfNotPresent',
      ...nodeIpLines('10.0.0.12'),
      '0\tcontrolPlane.localAPIEndpoint.advertiseAddress\t10.0.0.12', '0\tcontrolPlane.localAPIEndpoint.bindPort\t6443', `0\tcontrolPlane.certificateKey\t${'cd'.repeat(32)}`,
    ]);
    const worker = parse(kubeadmJoinConfig({ version: parseKubeVersion(tag), apiServerEndpoint: 'api.lan:6443', token: 't', caCertHash: 'sha256:ab', nodeName: 'w1', nodeIp: '10.0.0.13', criSocket: 'unix:///x' }));
    assert.equal(worker.controlPlane, undefined, 'a worker joins without a controlPlane section');
  }
});

test('a value with a quote and a newline stays one string: it cannot add a key or a document', () => {
  const evil = 'x"\nkind: Evil\n---\napiVersion: v1\n# "';
  const docsOf = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS());
  const clean = docsOf(kubeadmInitConfig(initValues()));
  const fields: (keyof ReturnType<typeof initValues>)[] = ['token', 'certificateKey', 'advertiseAddress', 'nodeName', 'nodeIp', 'criSocket', 'controlPlaneEndpoint', 'imageRepository', 'podSubnet', 'serviceSubnet'];
  for (const field of fields) {
    const yaml = kubeadmInitConfig(initValues({ [field]: evil }));
    const docs = docsOf(yaml);
    assert.equal(docs.length, 3, field);
    assert.deepEqual(docs.map((d) => Object.keys(d)), clean.map((d) => Object.keys(d)), `${field}: no key added`);
    assert.equal(JSON.stringify(docs).split(JSON.stringify(evil).slice(1, -1)).length, 2, `${field}: the value is there once, whole`);
    assert.equal(stubFlatten(yaml).filter((l) => l.includes('Evil')).length, 1, `${field}: the stub reads it as one value`);
  }
  const sans = docsOf(kubeadmInitConfig(initValues({ certSANs: ['10.0.0.11', evil] })));
  assert.deepEqual(sans[1].apiServer.certSANs, ['10.0.0.11', evil]);
  const join = docsOf(kubeadmJoinConfig({ version: v1323, apiServerEndpoint: evil, token: evil, caCertHash: evil, nodeName: evil, nodeIp: evil, criSocket: evil, controlPlane: { advertiseAddress: evil, certificateKey: evil } }));
  assert.equal(join.length, 1);
  assert.deepEqual(Object.keys(join[0]), ['apiVersion', 'kind', 'discovery', 'nodeRegistration', 'controlPlane']);
  assert.deepEqual(join[0].nodeRegistration, { name: evil, criSocket: evil, imagePullPolicy: 'IfNotPresent', kubeletExtraArgs: [{ name: 'node-ip', value: evil }] });
});

test('strings YAML 1.1 would read as something else stay strings (kubeadm reads YAML 1.1)', () => {
  const yaml = kubeadmInitConfig(initValues({ nodeName: 'on', imageRepository: 'no' }));
  assert.match(yaml, /^ {2}name: "on"$/m);
  assert.match(yaml, /^imageRepository: "no"$/m);
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

test("flanneld is told its interface by the node's address, not left to the default route (none in an air gap)", () => {
  const manifest = readFileSync(new URL('../upstream/fixtures/kube-flannel.yml', import.meta.url), 'utf8').replaceAll('@FLANNEL_VERSION@', 'v0.26.5').replaceAll('@CNI_PLUGIN_VERSION@', 'v1.6.2-flannel1');
  const ds = parseAllDocuments(renderFlannel(manifest, '10.244.0.0/16')).map((d) => d.toJS()).find((o) => o?.kind === 'DaemonSet');
  const [flanneld] = ds.spec.template.spec.containers;
  assert.deepEqual(flanneld.env.filter((e: { name: string }) => e.name === 'FLANNELD_IFACE'), [{ name: 'FLANNELD_IFACE', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } }]);
  assert.ok(flanneld.env.some((e: { name: string }) => e.name === 'POD_NAME'), "flannel's own variables are kept");
  for (const init of ds.spec.template.spec.initContainers) assert.ok(!(init.env ?? []).some((e: { name: string }) => e.name === 'FLANNELD_IFACE'), 'only flanneld');
  // rendering a rendered manifest again gives one variable, not two
  const twice = parseAllDocuments(renderFlannel(renderFlannel(manifest, '10.244.0.0/16'), '10.244.0.0/16')).map((d) => d.toJS()).find((o) => o?.kind === 'DaemonSet');
  assert.equal(twice.spec.template.spec.containers[0].env.filter((e: { name: string }) => e.name === 'FLANNELD_IFACE').length, 1);
});
