/**
 * Files install writes on the hosts, rendered from the templates under manifests/ and from the bundle's own
 * manifests. Pure functions: values in, text out; every placeholder must be given a value. YAML (kubeadm's configs,
 * flannel's manifest) is built as objects and serialized, never filled in as text.
 */
import { randomBytes, randomInt, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Document, isScalar, parseAllDocuments, stringify, visit } from 'yaml';
import { UserError } from '../../util/errors.js';
import { packageRoot } from '../../util/package-root.js';
import type { KubeVersion } from '../kube-version.js';
import { sha256Of } from '../../util/digest.js';

/** Fill `{{name}}` placeholders; a placeholder without a value (or a value without a placeholder) is a bug. */
export function fillTemplate(text: string, values: Record<string, string>, source: string): string {
  const used = new Set<string>();
  const out = text.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`${source}: no value for {{${name}}}`);
    used.add(name);
    return value;
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length) throw new Error(`${source}: values given for no placeholder: ${unused.join(', ')}`);
  return out;
}

export function renderTemplate(name: string, values: Record<string, string>): string {
  const file = join(packageRoot(), 'manifests', name);
  return fillTemplate(readFileSync(file, 'utf8'), values, `manifests/${name}`);
}

/** kubeadm's config API: v1beta4 from 1.31 on, v1beta3 before (v1beta3 is gone in 1.36). */
export function kubeadmApiVersion(version: KubeVersion): 'v1beta3' | 'v1beta4' {
  return version.minor >= 31 ? 'v1beta4' : 'v1beta3';
}

export interface InitValues {
  version: KubeVersion;
  token: string;
  certificateKey: string;
  advertiseAddress: string;
  nodeName: string;
  /** the node's address from the hosts file: the kubelet reports it (--node-ip), whatever NIC holds a default route */
  nodeIp: string;
  criSocket: string;
  controlPlaneEndpoint: string;
  imageRepository: string;
  podSubnet: string;
  serviceSubnet: string;
  certSANs: string[];
}

/**
 * kubeadm's configs are built as objects and written by the YAML serializer, never by pasting values into text: a
 * value holding a quote and a newline stays one string and cannot add a key. Every string is written double-quoted
 * on one line with JSON escapes (kubeadm reads YAML 1.1, where a plain `on` or `no` would be a boolean) and every
 * list of strings as a one-line flow sequence, as the files always looked (the stub kubeadm under
 * test/upstream/stubs reads exactly this form).
 */
function kubeadmYaml(comment: string, documents: object[]): string {
  return documents
    .map((content, i) => {
      const doc = new Document(content);
      visit(doc, { Seq: (_key, node) => void (node.flow = node.items.every(isScalar)) });
      if (i === 0) doc.commentBefore = ` ${comment}`;
      return doc.toString({ defaultStringType: 'QUOTE_DOUBLE', doubleQuotedAsJSON: true, defaultKeyType: 'PLAIN', lineWidth: 0, flowCollectionPadding: false });
    })
    .join('---\n');
}

function kubeadmApi(version: KubeVersion): string {
  return `kubeadm.k8s.io/${kubeadmApiVersion(version)}`;
}

/**
 * The node's registration: its name, runtime, and `--node-ip` for the kubelet, so the address it reports (and
 * every component that takes the node's address, flannel included) is the hosts-file one even on a host with two
 * NICs or no default route. kubeletExtraArgs is a list of {name, value} in v1beta4, a map before.
 */
function nodeRegistration(version: KubeVersion, name: string, criSocket: string, nodeIp: string) {
  const kubeletExtraArgs = kubeadmApiVersion(version) === 'v1beta4' ? [{ name: 'node-ip', value: nodeIp }] : { 'node-ip': nodeIp };
  return { name, criSocket, imagePullPolicy: 'IfNotPresent', kubeletExtraArgs };
}

/** The API server of this control plane: its own address, on kubeadm's port. */
function localAPIEndpoint(advertiseAddress: string) {
  return { advertiseAddress, bindPort: 6443 };
}

export function kubeadmInitConfig(v: InitValues): string {
  const init = {
    apiVersion: kubeadmApi(v.version),
    kind: 'InitConfiguration',
    bootstrapTokens: [
      {
        token: v.token,
        ttl: '24h0m0s',
        description: 'kube-bundle install',
        usages: ['signing', 'authentication'],
        groups: ['system:bootstrappers:kubeadm:default-node-token'],
      },
    ],
    certificateKey: v.certificateKey,
    localAPIEndpoint: localAPIEndpoint(v.advertiseAddress),
    nodeRegistration: nodeRegistration(v.version, v.nodeName, v.criSocket, v.nodeIp),
  };
  const cluster = {
    apiVersion: kubeadmApi(v.version),
    kind: 'ClusterConfiguration',
    kubernetesVersion: v.version.tag,
    controlPlaneEndpoint: v.controlPlaneEndpoint,
    imageRepository: v.imageRepository,
    networking: { podSubnet: v.podSubnet, serviceSubnet: v.serviceSubnet, dnsDomain: 'cluster.local' },
    apiServer: { certSANs: v.certSANs },
  };
  const kubelet = { apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', cgroupDriver: 'systemd' };
  return kubeadmYaml('kubeadm init configuration, written by kube-bundle (mode 0600: it holds the bootstrap token and certificate key).', [init, cluster, kubelet]);
}

export interface JoinValues {
  version: KubeVersion;
  apiServerEndpoint: string;
  token: string;
  caCertHash: string;
  nodeName: string;
  /** see InitValues.nodeIp */
  nodeIp: string;
  criSocket: string;
  /** present for a control plane */
  controlPlane?: { advertiseAddress: string; certificateKey: string };
}

export function kubeadmJoinConfig(v: JoinValues): string {
  const join = {
    apiVersion: kubeadmApi(v.version),
    kind: 'JoinConfiguration',
    discovery: { bootstrapToken: { apiServerEndpoint: v.apiServerEndpoint, token: v.token, caCertHashes: [v.caCertHash] } },
    nodeRegistration: nodeRegistration(v.version, v.nodeName, v.criSocket, v.nodeIp),
    ...(v.controlPlane
      ? { controlPlane: { localAPIEndpoint: localAPIEndpoint(v.controlPlane.advertiseAddress), certificateKey: v.controlPlane.certificateKey } }
      : {}),
  };
  return kubeadmYaml('kubeadm join configuration, written by kube-bundle (mode 0600: it holds the bootstrap token).', [join]);
}

/** A bootstrap token as kubeadm wants it: `[a-z0-9]{6}.[a-z0-9]{16}`, from the system's CSPRNG. */
export function newBootstrapToken(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const pick = (n: number) => Array.from({ length: n }, () => alphabet[randomInt(alphabet.length)]).join('');
  return `${pick(6)}.${pick(16)}`;
}

/** kubeadm's certificate key: 32 random bytes, hex. */
export function newCertificateKey(): string {
  return randomBytes(32).toString('hex');
}

/** The discovery hash kubeadm checks: sha256 over the CA certificate's DER SubjectPublicKeyInfo. */
export function caCertHash(pem: string): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    throw new UserError(`the cluster CA certificate cannot be read: ${(err as Error).message}`);
  }
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${sha256Of(spki)}`;
}

/**
 * flannel's manifest with its network set to the cluster's pod CIDR (flannel's default is 10.244.0.0/16 and it
 * must match kubeadm's podSubnet). `imageFor` maps an image reference to the one to use (identity on the
 * containerd path, where containerd mirrors the upstream names; the Docker path rewrites to the registry).
 *
 * flanneld is told its interface: by default it takes the one holding the default route, which is the wrong NIC on
 * a host with a management and a cluster network, and none at all on an air-gapped host without a default route
 * (flanneld then exits). FLANNELD_IFACE (flanneld reads every flag from FLANNELD_<FLAG>; --iface takes an
 * interface name or an IP) is set from the pod's status.hostIP: the node's address, which the kubelet reports as
 * the hosts-file one (--node-ip). One rule that holds on every node.
 */
export function renderFlannel(manifest: string, podCidr: string, imageFor: (ref: string) => string = (r) => r): string {
  const docs = parseAllDocuments(manifest);
  let found = false;
  const out = docs.map((doc) => {
    if (doc.errors.length) throw new UserError(`kube-flannel.yml: ${doc.errors[0]?.message}`);
    const obj = doc.toJS() as Record<string, any> | null;
    if (!obj) return '';
    if (obj.kind === 'ConfigMap' && obj.data?.['net-conf.json']) {
      const conf = JSON.parse(obj.data['net-conf.json']);
      conf.Network = podCidr;
      obj.data['net-conf.json'] = JSON.stringify(conf, null, 2) + '\n';
      found = true;
    }
    const spec = obj.spec?.template?.spec;
    for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) c.image = imageFor(c.image);
    for (const c of spec?.containers ?? []) if (isFlanneld(c)) c.env = [...(c.env ?? []).filter((e: { name?: string }) => e.name !== FLANNEL_IFACE_ENV), FLANNEL_IFACE];
    return stringify(obj, { lineWidth: 0 });
  });
  if (!found) throw new UserError('kube-flannel.yml has no ConfigMap with net-conf.json: is it flannel\'s manifest?');
  return out.filter(Boolean).join('---\n');
}

const FLANNEL_IFACE_ENV = 'FLANNELD_IFACE';
export const FLANNEL_IFACE = { name: FLANNEL_IFACE_ENV, valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } };

function isFlanneld(container: { command?: unknown; args?: unknown }): boolean {
  return [container.command, container.args].some((list) => Array.isArray(list) && list.some((a) => typeof a === 'string' && (a.endsWith('/flanneld') || a === '--kube-subnet-mgr')));
}
