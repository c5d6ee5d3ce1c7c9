/**
 * The stub kubeadm/kubelet/kubectl/crictl/CNI/cri-dockerd programs of test/upstream/stubs, run on this machine.
 * Each simulated host is a temporary root (KUBE_STUB_ROOT) with the stub trees installed into it the way their
 * debs would be (`@VERSION@` replaced), fake `containerd`, `ctr`, `systemctl`, `docker` and `hostname` programs
 * first on PATH that record their calls, and a real unix socket where containerd's would be. The stub API
 * server's handler runs per TCP connection behind a node listener on <host ip>:6443 (127.0.0.x), standing in
 * for the systemd socket unit.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runToEnd } from './helpers/process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const STUBS = path.resolve(here, '../upstream/stubs');
const FLANNEL_FIXTURE = path.resolve(here, '../upstream/fixtures/kube-flannel.yml');

interface Versions {
  kube: string;
  criTools: string;
  cni: string;
  criDockerd: string;
}
const V132: Versions = { kube: '1.32.3', criTools: '1.32.0', cni: '1.6.0', criDockerd: '0.3.16' };
const V131: Versions = { kube: '1.31.7', criTools: '1.31.1', cni: '1.5.1', criDockerd: '0.3.16' };

const TOKEN = 'abcdef.0123456789abcdef';
const CERT_KEY = 'f'.repeat(16) + '0123456789abcdef'.repeat(3);
const API_PORT = 6443;

const IMAGES_1_32_3 = [
  'registry.k8s.io/kube-apiserver:v1.32.3',
  'registry.k8s.io/kube-controller-manager:v1.32.3',
  'registry.k8s.io/kube-scheduler:v1.32.3',
  'registry.k8s.io/kube-proxy:v1.32.3',
  'registry.k8s.io/coredns/coredns:v1.11.3',
  'registry.k8s.io/pause:3.10',
  'registry.k8s.io/etcd:3.5.16-0',
];

/** `containerd config dump` of a containerd 1.x set up for kubeadm (config version 2). */
function containerdDumpV2(opts: { sandbox?: string; systemdCgroup?: boolean } = {}): string {
  return `version = 2
root = "/var/lib/containerd"
disabled_plugins = []

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "${opts.sandbox ?? 'registry.k8s.io/pause:3.10'}"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = ""
${opts.systemdCgroup === false ? '' : '          SystemdCgroup = true\n'}
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
`;
}

/** The same for containerd 2.x (config version 3, single-quoted strings as its dump writes them). */
function containerdDumpV3(sandbox: string): string {
  return `version = 3
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '${sandbox}'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '/etc/containerd/certs.d'
  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
            SystemdCgroup = true
`;
}

interface InitOptions {
  apiVersion?: string;
  token?: string;
  podSubnet?: string | null;
  version?: string;
  imageRepository?: string;
  advertise: string;
  controlPlaneEndpoint?: string;
  criSocket?: string;
  certificateKey?: string;
}

function initConfig(o: InitOptions): string {
  const api = o.apiVersion ?? 'kubeadm.k8s.io/v1beta4';
  return `# kubeadm init config written by the test
apiVersion: ${api}
kind: InitConfiguration
bootstrapTokens:
- token: "${o.token ?? TOKEN}"
  ttl: 24h
  usages: [signing, authentication]
nodeRegistration:
  name: cp1
  criSocket: ${o.criSocket ?? 'unix:///var/run/containerd/containerd.sock'}
localAPIEndpoint:
  advertiseAddress: ${o.advertise}
certificateKey: ${o.certificateKey ?? CERT_KEY}
---
apiVersion: ${api}
kind: ClusterConfiguration
kubernetesVersion: ${o.version ?? 'v1.32.3'}
${o.controlPlaneEndpoint ? `controlPlaneEndpoint: ${o.controlPlaneEndpoint}` : ''}
${o.imageRepository ? `imageRepository: ${o.imageRepository}` : ''}
networking:
  serviceSubnet: 10.96.0.0/12
${o.podSubnet === null ? '' : `  podSubnet: ${o.podSubnet ?? '10.244.0.0/16'}`}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
`;
}

function joinConfig(o: { endpoint: string; hash: string; name: string; ip: string; token?: string; certificateKey?: string }): string {
  const controlPlane = o.certificateKey
    ? `controlPlane:\n  certificateKey: "${o.certificateKey}"\n  localAPIEndpoint:\n    advertiseAddress: ${o.ip}\n`
    : '';
  return `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: ${o.endpoint}
    token: ${o.token ?? TOKEN}
    caCertHashes: ["${o.hash}"]
nodeRegistration:
  name: ${o.name}
  kubeletExtraArgs:
  - name: node-ip
    value: ${o.ip}
${controlPlane}`;
}

/** The CA pin kubeadm prints: sha256 over the DER SubjectPublicKeyInfo, computed here with node's crypto. */
function caCertHash(pem: string): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Fake programs: each records "name args..." in $FAKE_DIR/calls and behaves as the files in $FAKE_DIR say. */
const FAKES: Record<string, string> = {
  containerd: `case "$*" in
  "config dump") [ -e "$FAKE_DIR/containerd-down" ] && { echo "containerd: connection refused" >&2; exit 1; }
                 cat "$FAKE_DIR/containerd-dump.toml" ;;
  --version) echo "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3" ;;
esac`,
  ctr: `ref="\${!#}"
case "$*" in
  "-n k8s.io images ls -q") cat "$FAKE_DIR/images" 2>/dev/null ;;
  "-n k8s.io images ls")
    echo "REF TYPE DIGEST SIZE PLATFORMS LABELS"
    while read -r r; do echo "$r application/vnd.oci.image.index.v1+json sha256:0123456789abcdef0123 1.0 MiB linux/amd64 -"; done < "$FAKE_DIR/images" ;;
  "-n k8s.io images pull "*)
    if grep -qxF -- "$ref" "$FAKE_DIR/fail-pulls" 2>/dev/null; then
      echo "ctr: failed to resolve reference \\"$ref\\": $ref: not found" >&2; exit 1
    fi
    echo "$ref" >> "$FAKE_DIR/images" ;;
esac`,
  docker: `ref="\${!#}"
case "$*" in
  info) ;;
  "image inspect "*) grep -qxF -- "$ref" "$FAKE_DIR/images" 2>/dev/null ;;
  "pull "*) echo "$ref" >> "$FAKE_DIR/images" ;;
  --version) echo "Docker version 20.10.24+dfsg1, build 297e128" ;;
esac`,
  systemctl: `grep -qxF -- "$*" "$FAKE_DIR/systemctl-fail" 2>/dev/null && { echo "Job for $* failed." >&2; exit 1; }
exit 0`,
  hostname: `[ "$1" = -I ] && echo "$FAKE_IP " || echo "$FAKE_HOSTNAME"`,
};

/** strace arguments that append every exec (with its whole argv) of a process tree to FILE. */
function traceArgs(file: string): string[] {
  return ['-f', '-qq', '-A', '-e', 'trace=execve', '-e', 'signal=none', '-s', '100000', '-o', file];
}

/** Copies a stub tree into a host root as dpkg would install it: modes and symlinks kept, DEBIAN/ left out. */
async function installTree(from: string, to: string, version: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (entry.name === 'DEBIAN') continue;
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) await installTree(source, target, version);
    else if (entry.isSymbolicLink()) {
      await rm(target, { force: true });
      await symlink(await readlink(source), target);
    } else {
      const text = (await readFile(source, 'utf8')).replaceAll('@VERSION@', version);
      await writeFile(target, text);
      await chmod(target, (await lstat(source)).mode & 0o7777);
    }
  }
}

class Host {
  private readonly servers: net.Server[] = [];
  private apiServer?: net.Server;

  private constructor(
    readonly name: string,
    readonly ip: string,
    readonly root: string,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static async create(name: string, ip: string, versions: Versions = V132): Promise<Host> {
    const root = await mkdtemp(path.join(os.tmpdir(), `kube-stub-${name}-`));
    const fake = path.join(root, 'fake');
    const bin = path.join(fake, 'bin');
    await mkdir(bin, { recursive: true });
    for (const [pkg, version] of [
      ['kubeadm', versions.kube], ['kubelet', versions.kube], ['kubectl', versions.kube],
      ['cri-tools', versions.criTools], ['kubernetes-cni', versions.cni], ['cri-dockerd', versions.criDockerd],
    ] as const) {
      await installTree(path.join(STUBS, pkg), root, version);
    }
    for (const [program, body] of Object.entries(FAKES)) {
      await writeFile(path.join(bin, program), `#!/bin/bash\necho "${program} $*" >> "$FAKE_DIR/calls"\n${body}\n`, { mode: 0o755 });
    }
    await writeFile(path.join(fake, 'containerd-dump.toml'), containerdDumpV2());
    await mkdir(path.join(root, 'proc/sys/net/ipv4'), { recursive: true });
    await writeFile(path.join(root, 'proc/sys/net/ipv4/ip_forward'), '1\n');
    await mkdir(path.join(root, 'etc'), { recursive: true });
    await writeFile(path.join(root, 'etc/os-release'), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n');
    const env: NodeJS.ProcessEnv = {
      PATH: `${bin}:${root}/usr/bin:${process.env.PATH ?? '/usr/bin:/bin'}`,
      KUBE_STUB_ROOT: root,
      FAKE_DIR: fake,
      FAKE_IP: ip,
      FAKE_HOSTNAME: name,
      // the API server a control plane's `kubeadm upgrade` restarts is away for no time here (8 s in the lab)
      KUBE_STUB_APISERVER_RESTART_SECONDS: '0',
      HOME: '/root',
      LC_ALL: 'C',
    };
    const host = new Host(name, ip, root, env);
    await host.listenUnix('/var/run/containerd/containerd.sock');
    return host;
  }

  file(p: string): string {
    return path.join(this.root, p);
  }

  async read(p: string): Promise<string> {
    return readFile(this.file(p), 'utf8');
  }

  async writeFake(name: string, text: string): Promise<void> {
    await writeFile(path.join(this.root, 'fake', name), text);
  }

  /** A real unix socket at P (inside the root), like a running runtime's. */
  async listenUnix(p: string): Promise<void> {
    await mkdir(path.dirname(this.file(p)), { recursive: true });
    const server = net.createServer((s) => s.end());
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.file(p), resolve));
    this.servers.push(server);
  }

  /** when set, every program the API handler runs is recorded here (strace's execve lines) */
  traceFile?: string;

  /** Stands in for kube-stub-apiserver.socket: one apiserver.sh per connection on <ip>:6443. */
  async serveApi(): Promise<void> {
    const handler = this.file('usr/lib/kube-stub/apiserver.sh');
    const server = net.createServer((socket) => {
      const [program, args] = this.traceFile ? ['strace', [...traceArgs(this.traceFile), 'bash', handler]] : ['bash', [handler]];
      const child = spawn(program, args, { env: { ...this.env, REMOTE_ADDR: socket.remoteAddress ?? '' }, stdio: ['pipe', 'pipe', 'inherit'] });
      socket.on('error', () => child.kill());
      child.stdin.on('error', () => undefined);
      socket.pipe(child.stdin);
      child.stdout.pipe(socket);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(API_PORT, this.ip, resolve));
    this.apiServer = server;
  }

  run(command: string, args: string[], input = ''): Promise<Result> {
    return runToEnd(command, args, { env: this.env, cwd: this.root, input });
  }

  /** Runs and fails the test (showing the output) unless the command exits 0. */
  async ok(command: string, args: string[], input = ''): Promise<Result> {
    const result = await this.run(command, args, input);
    assert.equal(result.code, 0, `${command} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
    return result;
  }

  async calls(): Promise<string[]> {
    const text = await readFile(path.join(this.root, 'fake/calls'), 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean);
  }

  async pulls(): Promise<string[]> {
    return (await this.calls()).filter((c) => c.startsWith('ctr -n k8s.io images pull')).map((c) => c.split(' ').at(-1) ?? '');
  }

  async writeConfig(name: string, text: string): Promise<string> {
    const file = this.file(name);
    await writeFile(file, text);
    return file;
  }

  async close(): Promise<void> {
    for (const server of [...this.servers, ...(this.apiServer ? [this.apiServer] : [])]) {
      await new Promise((resolve) => server.close(resolve));
    }
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Polls CONDITION every 10 ms until it holds; fails after 5 s. */
async function waitFor(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  for (const start = Date.now(); !(await condition()); ) {
    if (Date.now() - start > 5000) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Starts a long-running stub; stop() sends SIGTERM and waits until it has exited. */
function startDaemon(host: Host, command: string, args: string[]): { running: () => boolean; stop: () => Promise<void> } {
  const child = spawn(command, args, { env: host.env, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    running,
    stop: async () => {
      if (running()) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs the API handler directly with REQUEST as its connection's input. */
function handler(host: Host, request: string): string {
  const result = spawnSync('bash', [host.file('usr/lib/kube-stub/apiserver.sh')], { env: host.env, input: `${request}\n`, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

function flannelManifest(): Promise<string> {
  return readFile(FLANNEL_FIXTURE, 'utf8').then((t) =>
    t.replaceAll('@FLANNEL_VERSION@', 'v0.26.5').replaceAll('@CNI_PLUGIN_VERSION@', 'v1.6.2-flannel1'));
}

describe('kubeadm stub: versions and image lists', () => {
  let h132: Host;
  let h131: Host;
  before(async () => {
    h132 = await Host.create('img132', '127.0.0.21');
    h131 = await Host.create('img131', '127.0.0.22', V131);
  });
  after(async () => {
    await h132.close();
    await h131.close();
  });

  it('prints its version like kubeadm', async () => {
    assert.equal((await h132.ok('kubeadm', ['version', '-o', 'short'])).stdout, 'v1.32.3\n');
    assert.match((await h131.ok('kubeadm', ['version'])).stdout, /^kubeadm version: &version.Info\{Major:"1", Minor:"31", GitVersion:"v1.31.7",/);
  });

  it('lists the images of v1.32.3 and v1.31.7 in kubeadm order', async () => {
    const list132 = await h132.ok('kubeadm', ['config', 'images', 'list', '--kubernetes-version', 'v1.32.3']);
    assert.deepEqual(list132.stdout.trim().split('\n'), IMAGES_1_32_3);
    const list131 = await h131.ok('kubeadm', ['config', 'images', 'list', '--kubernetes-version=1.31.7']);
    assert.deepEqual(list131.stdout.trim().split('\n'), [
      'registry.k8s.io/kube-apiserver:v1.31.7',
      'registry.k8s.io/kube-controller-manager:v1.31.7',
      'registry.k8s.io/kube-scheduler:v1.31.7',
      'registry.k8s.io/kube-proxy:v1.31.7',
      'registry.k8s.io/coredns/coredns:v1.11.3',
      'registry.k8s.io/pause:3.10',
      'registry.k8s.io/etcd:3.5.15-0',
    ]);
  });

  it('puts CoreDNS at <repo>/coredns for a custom repository, as kubeadm does', async () => {
    const custom = await h132.ok('kubeadm', ['config', 'images', 'list', '--kubernetes-version', 'v1.32.3', '--image-repository', '10.0.0.10:5000']);
    assert.deepEqual(custom.stdout.trim().split('\n'), IMAGES_1_32_3.map((i) =>
      i.replace('registry.k8s.io/coredns/coredns', '10.0.0.10:5000/coredns').replace('registry.k8s.io', '10.0.0.10:5000')));
    const fromConfig = await h132.writeConfig('images.yaml', 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.3\nimageRepository: mirror.test\ndns:\n  imageRepository: registry.k8s.io\n');
    const listed = (await h132.ok('kubeadm', ['config', 'images', 'list', '--config', fromConfig])).stdout;
    assert.match(listed, /^registry\.k8s\.io\/coredns\/coredns:v1\.11\.3$/m);
    assert.match(listed, /^mirror\.test\/etcd:3\.5\.16-0$/m);
  });

  it('works from an unpacked deb (library beside the script) without logging on that machine', async () => {
    const unpacked = await mkdtemp(path.join(os.tmpdir(), 'kube-stub-unpacked-'));
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'kube-stub-root-'));
    try {
      await installTree(path.join(STUBS, 'kubeadm'), unpacked, V132.kube);
      const result = spawnSync(path.join(unpacked, 'usr/bin/kubeadm'), ['config', 'images', 'list', '--kubernetes-version', 'v1.32.3'], {
        env: { PATH: process.env.PATH, KUBE_STUB_ROOT: elsewhere },
        encoding: 'utf8',
      });
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split('\n'), IMAGES_1_32_3);
      assert.deepEqual(await readdir(elsewhere), []);
    } finally {
      await rm(unpacked, { recursive: true, force: true });
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('refuses versions it cannot deploy', async () => {
    const old = await h132.run('kubeadm', ['config', 'images', 'list', '--kubernetes-version', 'v1.28.0']);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /only supports deploying clusters with the control plane version >= 1\.31\.0/);
    const unknown = await h132.run('kubeadm', ['config', 'images', 'list', '--kubernetes-version', 'v1.32.99']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no image list for Kubernetes v1\.32\.99/);
  });
});

describe('kubeadm stub: init', () => {
  let host: Host;
  before(async () => {
    host = await Host.create('init', '127.0.0.31');
  });
  after(() => host.close());

  const rejected = async (config: string, message: RegExp): Promise<void> => {
    const file = await host.writeConfig('bad.yaml', config);
    const result = await host.run('kubeadm', ['init', '--config', file]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, message);
    assert.deepEqual(await host.pulls(), []);
    assert.equal(existsSync(host.file('etc/kubernetes/admin.conf')), false);
  };

  it('rejects a malformed bootstrap token', () =>
    rejected(initConfig({ advertise: host.ip, token: 'abcdef.0123' }), /bootstrapTokens\[0\]\.token: Invalid value: "abcdef\.0123": the bootstrap token is invalid/));

  it('rejects kubeadm API versions it does not read', async () => {
    await rejected(initConfig({ advertise: host.ip, apiVersion: 'kubeadm.k8s.io/v1beta2' }), /uses an old API spec: "kubeadm\.k8s\.io\/v1beta2"/);
    await rejected(initConfig({ advertise: host.ip, apiVersion: 'kubeadm.k8s.io/v1' }), /no kind "InitConfiguration" is registered for version "kubeadm\.k8s\.io\/v1"/);
  });

  it('requires networking.podSubnet and the stub\'s own Kubernetes version', async () => {
    await rejected(initConfig({ advertise: host.ip, podSubnet: null }), /networking\.podSubnet: Required value/);
    await rejected(initConfig({ advertise: host.ip, version: 'v1.32.2' }), /deploys v1\.32\.3 only/);
  });

  it('refuses config fields given as flags next to --config, like kubeadm', async () => {
    const file = await host.writeConfig('init.yaml', initConfig({ advertise: host.ip }));
    const mixed = await host.run('kubeadm', ['init', '--config', file, '--pod-network-cidr', '10.244.0.0/16']);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /can not mix '--config' with arguments \[pod-network-cidr\]/);
  });

  it('refuses a CRI socket that does not exist', () =>
    rejected(initConfig({ advertise: host.ip, criSocket: 'unix:///run/crio/crio.sock' }), /supports containerd and cri-dockerd only/).then(() =>
      rejected(initConfig({ advertise: host.ip, criSocket: 'unix:///var/run/cri-dockerd.sock' }), /\[ERROR CRI\]: container runtime is not running.*dial unix \/var\/run\/cri-dockerd\.sock/)));

  it('fails preflight when containerd runs runc without SystemdCgroup', async () => {
    await host.writeFake('containerd-dump.toml', containerdDumpV2({ systemdCgroup: false }));
    await rejected(initConfig({ advertise: host.ip }), /\[ERROR CRI\]: the kubelet uses the "systemd" cgroup driver but containerd runs runc with cgroupfs/);
    await host.writeFake('containerd-dump.toml', containerdDumpV2({ sandbox: 'registry.k8s.io/pause:3.8' }));
    await rejected(initConfig({ advertise: host.ip }), /sandbox image "registry\.k8s\.io\/pause:3\.8" of the container runtime is inconsistent/);
    await host.writeFake('containerd-dump.toml', containerdDumpV2());
  });

  it('fails when an image cannot be pulled, naming it', async () => {
    await host.writeFake('fail-pulls', 'registry.k8s.io/etcd:3.5.16-0\n');
    const file = await host.writeConfig('init.yaml', initConfig({ advertise: host.ip }));
    const result = await host.run('kubeadm', ['init', '--config', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /\[ERROR ImagePull\]: failed to pull image registry\.k8s\.io\/etcd:3\.5\.16-0: output: ctr: failed to resolve reference/);
    assert.equal(existsSync(host.file('etc/kubernetes/admin.conf')), false);
    await rm(host.file('fake/fail-pulls'));
    await rm(host.file('fake/images'));
    await rm(host.file('fake/calls'));
  });

  it('pulls exactly the image list through containerd\'s hosts dir, then sets up the control plane', async () => {
    const file = await host.writeConfig('init.yaml', initConfig({ advertise: host.ip, controlPlaneEndpoint: 'kubeapi.test' }));
    const result = await host.ok('kubeadm', ['init', '--config', file, '--upload-certs']);
    const pullCalls = (await host.calls()).filter((c) => c.includes('images pull'));
    assert.deepEqual(pullCalls, IMAGES_1_32_3.map((i) => `ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d ${i}`));

    const ca = await host.read('etc/kubernetes/pki/ca.crt');
    const hash = caCertHash(ca);
    assert.ok(result.stdout.includes(`kubeadm join kubeapi.test:6443 --token ${TOKEN} \\\n\t--discovery-token-ca-cert-hash ${hash} \\\n\t--control-plane --certificate-key ${CERT_KEY}`), result.stdout);
    assert.match(await host.read('etc/kubernetes/admin.conf'), /server: https:\/\/kubeapi\.test:6443\n/);
    assert.match(await host.read('etc/kubernetes/manifests/etcd.yaml'), /image: registry\.k8s\.io\/etcd:3\.5\.16-0/);
    assert.match(await host.read('var/lib/kubelet/kubeadm-flags.env'), /--container-runtime-endpoint=unix:\/\/\/var\/run\/containerd\/containerd\.sock --pod-infra-container-image=registry\.k8s\.io\/pause:3\.10/);
    const systemctl = (await host.calls()).filter((c) => c.startsWith('systemctl'));
    assert.ok(systemctl.includes('systemctl restart kubelet.service'), systemctl.join('\n'));
    assert.ok(systemctl.includes('systemctl enable --now kube-stub-apiserver.socket'), systemctl.join('\n'));

    const log = (await host.read('var/log/kube-stub.log')).trim().split('\n');
    const line = log.find((l) => / kubeadm init --config /.test(l) && !/bad\.yaml/.test(l) && / --upload-certs/.test(l));
    assert.ok(line, log.join('\n'));
    const copy = / saved as (\/var\/log\/kube-stub\/\d+-init\.yaml)$/.exec(line)?.[1];
    assert.ok(copy, line);
    assert.match(line, new RegExp(` # config \\S+ \\(mode ${((await lstat(file)).mode & 0o777).toString(8)}\\) saved as `));
    assert.equal(await host.read(copy), await readFile(file, 'utf8'));
  });

  it('refuses to init twice without a reset, and reset removes what init wrote', async () => {
    const file = await host.writeConfig('init.yaml', initConfig({ advertise: host.ip }));
    const again = await host.run('kubeadm', ['init', '--config', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver\.yaml\]: \/etc\/kubernetes\/manifests\/kube-apiserver\.yaml already exists/);

    const reset = await host.ok('kubeadm', ['reset', '-f']);
    assert.match(reset.stdout, /does not clean CNI configuration/);
    for (const gone of ['etc/kubernetes/admin.conf', 'etc/kubernetes/pki/ca.crt', 'etc/kubernetes/manifests/etcd.yaml', 'var/lib/kubelet/config.yaml', 'var/lib/kube-stub']) {
      assert.equal(existsSync(host.file(gone)), false, gone);
    }
    const systemctl = (await host.calls()).filter((c) => c.startsWith('systemctl'));
    assert.ok(systemctl.includes('systemctl disable --now kube-stub-apiserver.socket'));
    assert.ok(systemctl.includes('systemctl stop kubelet.service'));
  });

  it('reads containerd 2.x (config version 3) and pulls from a custom repository', async () => {
    await rm(host.file('fake/calls'), { force: true });
    await rm(host.file('fake/images'), { force: true });
    await host.writeFake('containerd-dump.toml', containerdDumpV3('10.0.0.10:5000/pause:3.10'));
    const file = await host.writeConfig('init.yaml', initConfig({ advertise: host.ip, imageRepository: '10.0.0.10:5000', apiVersion: 'kubeadm.k8s.io/v1beta3' }));
    await host.ok('kubeadm', ['init', '--config', file]);
    assert.deepEqual(await host.pulls(), IMAGES_1_32_3.map((i) =>
      i.replace('registry.k8s.io/coredns/coredns', '10.0.0.10:5000/coredns').replace('registry.k8s.io', '10.0.0.10:5000')));
    await host.ok('kubeadm', ['reset', '-f']);
  });
});

/** /proc/net/tcp with one socket listening on PORT, plus connections that must not count (not LISTEN). */
function procNetTcp(port: number): string {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    `   0: 00000000:${hex} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0`,
    '   1: 0100007F:0016 0100007F:2710 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 20 4 30 10 -1',
    '   2: 0100007F:2710 0100007F:0016 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1',
    '',
  ].join('\n');
}

describe('kubeadm stub: preflight refuses what an earlier init left, like kubeadm', () => {
  let host: Host;
  let config = '';
  before(async () => {
    host = await Host.create('again', '127.0.0.32');
    config = await host.writeConfig('init.yaml', initConfig({ advertise: host.ip }));
  });
  after(() => host.close());

  it('refuses port 6443 in use and a non-empty /var/lib/etcd, and --ignore-preflight-errors makes them warnings', async () => {
    await mkdir(host.file('proc/net'), { recursive: true });
    await writeFile(host.file('proc/net/tcp6'), procNetTcp(API_PORT));
    await mkdir(host.file('var/lib/etcd/member'), { recursive: true });
    const refused = await host.run('kubeadm', ['init', '--config', config]);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /\t\[ERROR Port-6443\]: Port 6443 is in use\n/);
    assert.match(refused.stderr, /\t\[ERROR DirAvailable--var-lib-etcd\]: \/var\/lib\/etcd is not empty\n/);
    assert.doesNotMatch(refused.stderr, /Port-10250|Port-2379/, 'only LISTEN sockets on the port count');
    assert.match(refused.stderr, /you can make a check non-fatal with `--ignore-preflight-errors=...`/);
    assert.equal(existsSync(host.file('etc/kubernetes/admin.conf')), false);

    const ignored = await host.ok('kubeadm', ['init', '--config', config, '--ignore-preflight-errors=port-6443,DirAvailable--var-lib-etcd']);
    assert.match(ignored.stderr, /\t\[WARNING Port-6443\]: Port 6443 is in use\n/);
    assert.match(ignored.stderr, /\t\[WARNING DirAvailable--var-lib-etcd\]: \/var\/lib\/etcd is not empty\n/);
    await rm(host.file('proc/net/tcp6'));
  });

  it('a second init fails on every manifest and the etcd data; reset -f clears all of it and init works again', async () => {
    const again = await host.run('kubeadm', ['init', '--config', config]);
    assert.equal(again.code, 1);
    for (const component of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'etcd']) {
      assert.match(again.stderr, new RegExp(`\\[ERROR FileAvailable--etc-kubernetes-manifests-${component}\\.yaml\\]: /etc/kubernetes/manifests/${component}\\.yaml already exists`));
    }
    assert.match(again.stderr, /\[ERROR DirAvailable--var-lib-etcd\]: \/var\/lib\/etcd is not empty/);
    const all = await host.run('kubeadm', ['init', '--config', config, '--ignore-preflight-errors=all']);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /\[kubeconfig\] Using existing kubeconfig file: "\/etc\/kubernetes\/admin\.conf"/);

    await host.ok('kubeadm', ['reset', '-f']);
    assert.deepEqual(await readdir(host.file('var/lib/etcd')), []);
    for (const gone of ['etc/kubernetes/admin.conf', 'etc/kubernetes/kubelet.conf', 'etc/kubernetes/pki/ca.crt']) assert.equal(existsSync(host.file(gone)), false, gone);
    await host.ok('kubeadm', ['init', '--config', config]);
    await host.ok('kubeadm', ['reset', '-f']);
  });

  it('keeps an admin.conf of the same CA (warning about another server), and fails on one of another CA, in the kubeconfig phase', async () => {
    const ca = Buffer.from(await readFile(host.file('usr/lib/kube-stub/pki/ca.crt'))).toString('base64');
    const kubeconfig = (caData: string, server: string) =>
      `apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ${caData}\n    server: ${server}\n  name: kubernetes\nkind: Config\n`;
    await mkdir(host.file('etc/kubernetes'), { recursive: true });
    await writeFile(host.file('etc/kubernetes/admin.conf'), kubeconfig(ca, 'https://10.9.9.9:6443'));
    const kept = await host.ok('kubeadm', ['init', '--config', config]);
    assert.match(kept.stderr, /a kubeconfig file "\/etc\/kubernetes\/admin\.conf" exists already but has an unexpected API Server URL: expected: https:\/\/127\.0\.0\.32:6443, got: https:\/\/10\.9\.9\.9:6443/);
    await host.ok('kubeadm', ['reset', '-f']);

    await mkdir(host.file('etc/kubernetes'), { recursive: true });
    await writeFile(host.file('etc/kubernetes/admin.conf'), kubeconfig(Buffer.from('another CA').toString('base64'), `https://${host.ip}:6443`));
    const refused = await host.run('kubeadm', ['init', '--config', config]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error execution phase kubeconfig\/admin: a kubeconfig file "\/etc\/kubernetes\/admin\.conf" exists already but has got the wrong CA cert$/m);
    await host.ok('kubeadm', ['reset', '-f']);
  });
});

describe('stub cluster: API handler, join, kubectl', () => {
  let cp1: Host;
  let worker: Host;
  let cp2: Host;
  let hash = '';
  const endpoint = '127.0.0.41:6443';

  before(async () => {
    cp1 = await Host.create('cp1', '127.0.0.41');
    worker = await Host.create('w1', '127.0.0.42');
    cp2 = await Host.create('cp2', '127.0.0.43');
    const file = await cp1.writeConfig('init.yaml', initConfig({ advertise: cp1.ip, controlPlaneEndpoint: endpoint }));
    await cp1.ok('kubeadm', ['init', '--config', file]);
    hash = caCertHash(await cp1.read('etc/kubernetes/pki/ca.crt'));
    await cp1.serveApi();
  });
  after(async () => {
    for (const h of [cp1, worker, cp2]) await h.close();
  });

  it('the handler answers cluster-info, configuration and node requests', () => {
    const info = handler(cp1, 'CLUSTER-INFO\tabcdef').split('\n');
    assert.equal(info[0], 'OK');
    assert.match(info[1] ?? '', /^[0-9a-f]{64}$/);
    assert.equal(caCertHash(info.slice(2).join('\n')), hash);
    assert.equal(handler(cp1, 'CLUSTER-INFO\tzzzzzz'), 'ERROR could not find a JWS signature in the cluster-info ConfigMap for token ID "zzzzzz"\n');
    assert.match(handler(cp1, `CONFIG\t${TOKEN}`), /^OK\n(.*\n)*control_plane_image=registry\.k8s\.io\/etcd:3\.5\.16-0\n/);
    assert.equal(handler(cp1, 'CONFIG\tabcdef.ffffffffffffffff'), 'ERROR Unauthorized\n');
    assert.match(handler(cp1, 'NODES'), /^OK\ncp1\tNotReady\tcontrol-plane\t\d+\tv1\.32\.3\t127\.0\.0\.41\tDebian GNU\/Linux 12 \(bookworm\)\t/);
    assert.equal(handler(cp1, 'VERSION'), 'OK\nv1.32.3\n');
    assert.equal(handler(cp1, 'NOPE'), 'ERROR unknown request "NOPE"\n');
  });

  it('join with a wrong CA hash fails; with the right one the worker registers', async () => {
    const wrong = await worker.writeConfig('join.yaml', joinConfig({ endpoint, hash: `sha256:${'0'.repeat(64)}`, name: 'w1', ip: worker.ip }));
    const refused = await worker.run('kubeadm', ['join', '--config', wrong]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "sha256:[0-9a-f]{64}" are pinned/);
    assert.equal(existsSync(worker.file('etc/kubernetes/kubelet.conf')), false);

    const badToken = await worker.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'w1', ip: worker.ip, token: 'abcdef.ffffffffffffffff' }));
    const unsigned = await worker.run('kubeadm', ['join', '--config', badToken]);
    assert.equal(unsigned.code, 1);
    assert.match(unsigned.stderr, /failed to verify JWS signature/);

    const right = await worker.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'w1', ip: worker.ip }));
    const joined = await worker.ok('kubeadm', ['join', '--config', right]);
    assert.match(joined.stdout, /This node has joined the cluster:/);
    assert.deepEqual(await worker.pulls(), ['registry.k8s.io/kube-proxy:v1.32.3', 'registry.k8s.io/pause:3.10']);
    assert.match(await worker.read('etc/kubernetes/kubelet.conf'), /server: https:\/\/127\.0\.0\.41:6443/);
    assert.ok((await worker.calls()).includes('systemctl restart kubelet.service'));
  });

  it('kubectl get nodes lists the registered nodes', async () => {
    const admin = cp1.file('etc/kubernetes/admin.conf');
    const { stdout } = await cp1.ok('kubectl', ['--kubeconfig', admin, 'get', 'nodes']);
    const rows = stdout.trim().split('\n').map((l) => l.split(/\s{3,}/));
    assert.deepEqual(rows[0], ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION']);
    assert.deepEqual(rows.slice(1).map((r) => [r[0], r[1], r[2], r[4]]), [
      ['cp1', 'NotReady', 'control-plane', 'v1.32.3'],
      ['w1', 'NotReady', '<none>', 'v1.32.3'],
    ]);
    const json = JSON.parse((await cp1.ok('kubectl', ['--kubeconfig', admin, 'get', 'nodes', '-o', 'json'])).stdout) as {
      items: Array<{ metadata: { name: string }; status: { addresses: Array<{ address: string }> } }>;
    };
    assert.deepEqual(json.items.map((n) => [n.metadata.name, n.status.addresses[0]?.address]), [['cp1', '127.0.0.41'], ['w1', '127.0.0.42']]);
  });

  it('kubectl apply records the CNI manifest, pulls its images, and the nodes become Ready', async () => {
    const manifest = await cp1.writeConfig('kube-flannel.yml', await flannelManifest());
    const env = { KUBECONFIG: cp1.file('etc/kubernetes/admin.conf') };
    Object.assign(cp1.env, env);
    const applied = await cp1.ok('kubectl', ['apply', '-f', manifest]);
    assert.deepEqual(applied.stdout.trim().split('\n'), [
      'namespace/kube-flannel created',
      'clusterrole.rbac.authorization.k8s.io/flannel created',
      'clusterrolebinding.rbac.authorization.k8s.io/flannel created',
      'serviceaccount/flannel created',
      'configmap/kube-flannel-cfg created',
      'daemonset.apps/kube-flannel-ds created',
    ]);
    const pulls = await cp1.pulls();
    assert.ok(pulls.includes('ghcr.io/flannel-io/flannel:v0.26.5') && pulls.includes('ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1'), pulls.join('\n'));
    const again = await cp1.ok('kubectl', ['apply', '-f', manifest]);
    assert.match(again.stdout, /^daemonset\.apps\/kube-flannel-ds unchanged$/m);
    const nodes = await cp1.ok('kubectl', ['get', 'nodes', '--no-headers']);
    assert.deepEqual(nodes.stdout.trim().split('\n').map((l) => l.split(/\s+/).slice(0, 2)), [['cp1', 'Ready'], ['w1', 'Ready']]);
    const pods = await cp1.ok('kubectl', ['get', 'pods', '-A']);
    assert.match(pods.stdout, /^kube-flannel\s+kube-flannel-ds-[a-z0-9]{5}\s+1\/1\s+Running\s+0\s+/m);
    assert.match(pods.stdout, /^kube-system\s+etcd-cp1\s+1\/1\s+Running/m);
  });

  it('a control plane joins only with the uploaded certificate key, then relays to the first one', async () => {
    const before = await cp2.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'cp2', ip: cp2.ip, certificateKey: CERT_KEY }));
    const notUploaded = await cp2.run('kubeadm', ['join', '--config', before]);
    assert.equal(notUploaded.code, 1);
    assert.match(notUploaded.stderr, /Secret "kubeadm-certs" was not found/);

    const upload = await cp1.ok('kubeadm', ['init', 'phase', 'upload-certs', '--upload-certs', '--certificate-key', CERT_KEY]);
    assert.match(upload.stdout, new RegExp(`Using certificate key:\n${CERT_KEY}\n`));
    const wrongKey = await cp2.writeConfig('join-wrong-key.yaml', joinConfig({ endpoint, hash, name: 'cp2', ip: cp2.ip, certificateKey: 'a'.repeat(64) }));
    const refused = await cp2.run('kubeadm', ['join', '--config', wrongKey]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /error downloading certs: .*message authentication failed \(wrong certificate key\)/);

    await rm(cp2.file('fake/calls'));
    await rm(cp2.file('fake/images'));   // the refused attempts pulled already (preflight comes first)
    await cp2.ok('kubeadm', ['join', '--config', before]);
    const pulls = await cp2.pulls();
    assert.deepEqual(pulls.slice(0, 7), IMAGES_1_32_3);
    assert.ok(pulls.includes('ghcr.io/flannel-io/flannel:v0.26.5'), 'a node joining after the CNI pulls its DaemonSet images');
    assert.ok((await cp2.calls()).includes('systemctl enable --now kube-stub-apiserver.socket'));

    await cp2.serveApi();
    const relayed = await cp2.ok('kubectl', ['--server', `https://${cp2.ip}:6443`, 'get', 'nodes', '-o', 'name']);
    assert.deepEqual(relayed.stdout.trim().split('\n'), ['node/cp1', 'node/cp2', 'node/w1']);
  });

  it('upload-certs takes the certificate key from --config, and refuses --certificate-key beside it, as kubeadm does', async () => {
    const key = '0123456789abcdef'.repeat(4);
    const file = await cp1.writeConfig('upload-certs.yaml', initConfig({ advertise: cp1.ip, controlPlaneEndpoint: endpoint, certificateKey: key }));
    const mixed = await cp1.run('kubeadm', ['init', 'phase', 'upload-certs', '--upload-certs', '--config', file, '--certificate-key', key]);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /can not mix '--config' with arguments \[certificate-key\]/);
    const upload = await cp1.ok('kubeadm', ['init', 'phase', 'upload-certs', '--upload-certs', '--config', file]);
    assert.match(upload.stdout, new RegExp(`Using certificate key:\n${key}\n`));
    const keyHash = createHash('sha256').update(key).digest('hex');
    assert.match(await cp1.read('var/lib/kube-stub/cluster/cluster.env'), new RegExp(`^certificate_key_sha256=${keyHash}$`, 'm'));
  });

  it('token create with no token makes one and prints it; token delete by ID removes it from the cluster records', async () => {
    const token = (await cp1.ok('kubeadm', ['token', 'create', '--ttl', '24h0m0s', '--description', 'kube-bundle join'])).stdout.trim();
    assert.match(token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    const id = token.slice(0, 6);
    assert.match((await cp1.ok('kubeadm', ['token', 'list'])).stdout, new RegExp(`^${id}\\.\\S+\\s+24h\\s.*kube-bundle join`, 'm'));
    assert.equal((await cp1.ok('kubeadm', ['token', 'delete', id])).stdout, `bootstrap token "${id}" deleted\n`);
    assert.doesNotMatch(await cp1.read('var/lib/kube-stub/cluster/tokens'), new RegExp(`^${id}\\.`, 'm'), 'gone from the stand-in for etcd');
    assert.doesNotMatch((await cp1.ok('kubeadm', ['token', 'list'])).stdout, new RegExp(`^${id}\\.`, 'm'));
    const again = await cp1.run('kubeadm', ['token', 'delete', id]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`failed to delete bootstrap token "${id}": secrets "bootstrap-token-${id}" not found`));
    const malformed = await cp1.run('kubeadm', ['token', 'delete', 'NOPE']);
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /given token didn't match pattern/);
  });

  it('token create --print-join-command prints a join command that works', async () => {
    const { stdout } = await cp1.ok('kubeadm', ['token', 'create', '--print-join-command']);
    const command = stdout.trim().split(' ');
    assert.deepEqual([...command.slice(0, 4), command[5], command[6]], ['kubeadm', 'join', '127.0.0.41:6443', '--token', '--discovery-token-ca-cert-hash', hash]);
    assert.match(command[4] ?? '', /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    assert.notEqual(command[4], TOKEN);
    const w2 = await Host.create('w2', '127.0.0.44');
    try {
      await w2.ok('kubeadm', [...command.slice(1), '--node-name', 'w2']);
      const wide = await cp1.ok('kubectl', ['get', 'nodes', 'w2', '-o', 'wide']);
      assert.match(wide.stdout, /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\s+INTERNAL-IP\s+EXTERNAL-IP\s+OS-IMAGE\s+KERNEL-VERSION\s+CONTAINER-RUNTIME\n/);
      assert.match(wide.stdout, /\nw2\s+Ready\s+<none>\s+\d+s\s+v1\.32\.3\s+127\.0\.0\.44\s+<none>\s+Debian GNU\/Linux 12 \(bookworm\)\s+\S+\s+containerd:\/\/1\.6\.20\n$/);
    } finally {
      await w2.close();
    }
  });

  it('token list shows the unexpired tokens; an expired token no longer joins', async () => {
    await cp1.ok('kubeadm', ['token', 'create', 'neverx.0123456789abcdef', '--ttl', '0', '--description', 'kept']);
    const listed = (await cp1.ok('kubeadm', ['token', 'list'])).stdout.split('\n');
    assert.match(listed[0] ?? '', /^TOKEN\s+TTL\s+EXPIRES\s+USAGES\s+DESCRIPTION\s+EXTRA GROUPS$/);
    assert.ok(listed.some((l) => new RegExp(`^${TOKEN.replace('.', '\\.')}\\s+24h\\s+\\d{4}-`).test(l)), listed.join('\n'));
    assert.ok(listed.some((l) => /^neverx\.0123456789abcdef\s+<forever>\s+<never>\s+authentication,signing\s+kept\s+/.test(l)), listed.join('\n'));

    // let the init token expire, as 24 hours would
    const tokens = cp1.file('var/lib/kube-stub/cluster/tokens');
    await writeFile(tokens, (await readFile(tokens, 'utf8')).replace(new RegExp(`^${TOKEN}\t\\d+`, 'm'), `${TOKEN}\t1`));
    assert.doesNotMatch((await cp1.ok('kubeadm', ['token', 'list'])).stdout, new RegExp(TOKEN));
    const w3 = await Host.create('w3', '127.0.0.45');
    try {
      const config = await w3.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'w3', ip: w3.ip }));
      const refused = await w3.run('kubeadm', ['join', '--config', config]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /could not find a JWS signature in the cluster-info ConfigMap for token ID "abcdef"/);
    } finally {
      await w3.close();
    }
  });

  it('a node that joined is refused a second join before it asks the cluster (kubelet.conf, and the CA on a worker)', async () => {
    const workerConfig = await worker.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'w1', ip: worker.ip }));
    const again = await worker.run('kubeadm', ['join', '--config', workerConfig]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\t\[ERROR FileAvailable--etc-kubernetes-kubelet\.conf\]: \/etc\/kubernetes\/kubelet\.conf already exists\n/);
    assert.match(again.stderr, /\t\[ERROR FileAvailable--etc-kubernetes-pki-ca\.crt\]: \/etc\/kubernetes\/pki\/ca\.crt already exists\n/);
    const warned = await worker.run('kubeadm', ['join', '--config', workerConfig, '--ignore-preflight-errors', 'FileAvailable--etc-kubernetes-kubelet.conf']);
    assert.equal(warned.code, 1);
    assert.match(warned.stderr, /\[WARNING FileAvailable--etc-kubernetes-kubelet\.conf\]/);
    assert.doesNotMatch(warned.stderr, /\[ERROR FileAvailable--etc-kubernetes-kubelet\.conf\]/);

    const cpConfig = await cp2.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'cp2', ip: cp2.ip, certificateKey: CERT_KEY }));
    const cpAgain = await cp2.run('kubeadm', ['join', '--config', cpConfig]);
    assert.equal(cpAgain.code, 1);
    assert.match(cpAgain.stderr, /\[ERROR FileAvailable--etc-kubernetes-kubelet\.conf\]/);
    assert.doesNotMatch(cpAgain.stderr, /pki-ca\.crt/, 'a control plane may bring the shared CA');
  });

  it('kubectl fails like kubectl when the server is unreachable', async () => {
    const result = await worker.run('kubectl', ['--server', 'https://127.0.0.49:6443', 'get', 'nodes']);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'The connection to the server 127.0.0.49:6443 was refused - did you specify the right host or port?\n');
    const noConfig = await worker.run('kubectl', ['get', 'nodes']);
    assert.match(noConfig.stderr, /The connection to the server localhost:8080 was refused/);
  });
});

describe('kubeadm stub: secrets are never a process argument', () => {
  // The real kubeadm never puts the token or certificate key into another program's arguments (readable by every
  // local user in /proc/PID/cmdline); neither may the stub, or the install's "no secret in any argv" check would
  // be about the stub. strace records every exec of the stub commands and of the API handler.
  const hosts: Host[] = [];
  after(async () => {
    for (const h of hosts) await h.close();
  });

  it('init, token create|list|delete, certs certificate-key, upload-certs --config and both joins', async () => {
    assert.equal(spawnSync('strace', ['-V']).status, 0, 'strace is not installed (scripts/test.sh installs it)');
    const [cp1, w1, cp2] = await Promise.all([Host.create('cp1', '127.0.0.61'), Host.create('w1', '127.0.0.62'), Host.create('cp2', '127.0.0.63')]);
    hosts.push(cp1!, w1!, cp2!);
    const endpoint = `${cp1!.ip}:${API_PORT}`;
    const trace = (h: Host) => h.file('exec.trace');
    const traced = (h: Host, args: string[]) => h.ok('strace', [...traceArgs(trace(h)), 'kubeadm', ...args]);
    cp1!.traceFile = trace(cp1!);

    await traced(cp1!, ['init', '--config', await cp1!.writeConfig('init.yaml', initConfig({ advertise: cp1!.ip, controlPlaneEndpoint: endpoint })), '--upload-certs']);
    await cp1!.serveApi();
    const hash = caCertHash(await cp1!.read('etc/kubernetes/pki/ca.crt'));
    const token = (await traced(cp1!, ['token', 'create', '--ttl', '24h0m0s'])).stdout.trim();
    const key = (await traced(cp1!, ['certs', 'certificate-key'])).stdout.trim();
    await traced(cp1!, ['init', 'phase', 'upload-certs', '--upload-certs', '--config',
      await cp1!.writeConfig('upload.yaml', initConfig({ advertise: cp1!.ip, controlPlaneEndpoint: endpoint, certificateKey: key }))]);
    await traced(w1!, ['join', '--config', await w1!.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'w1', ip: w1!.ip, token }))]);
    await traced(cp2!, ['join', '--config', await cp2!.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'cp2', ip: cp2!.ip, token, certificateKey: key }))]);
    assert.match((await traced(cp1!, ['token', 'list'])).stdout, new RegExp(token.replace('.', '\\.')));
    await traced(cp1!, ['token', 'delete', token.slice(0, 6)]);

    for (const h of [cp1!, w1!, cp2!]) {
      const execs = (await readFile(trace(h), 'utf8')).split('\n').filter((l) => l.includes('execve('));
      assert.ok(execs.length > 20, `${h.name}: the trace recorded the stub's programs`);
      for (const secret of [TOKEN, CERT_KEY, token, key]) {
        const leaked = execs.filter((l) => l.includes(secret));
        assert.deepEqual(leaked, [], `${h.name}: a secret in the arguments of ${leaked.length} program(s)`);
      }
    }
    // the handler's traces are there too: it checked the token of both joins
    assert.match(await readFile(trace(cp1!), 'utf8'), /apiserver\.sh/);
  });
});

describe('kubelet, crictl, CNI and cri-dockerd stubs', () => {
  let host: Host;
  before(async () => {
    host = await Host.create('node', '127.0.0.51');
  });
  after(() => host.close());

  it('kubelet exits without its config and idles with it', async () => {
    const missing = await host.run('kubelet', ['--config=/var/lib/kubelet/config.yaml']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /failed to load kubelet config file, path: \/var\/lib\/kubelet\/config\.yaml/);
    await mkdir(host.file('var/lib/kubelet'), { recursive: true });
    await writeFile(host.file('var/lib/kubelet/config.yaml'), 'kind: KubeletConfiguration\n');
    const kubelet = startDaemon(host, 'kubelet', ['--config=/var/lib/kubelet/config.yaml', '--node-ip=10.0.0.5']);
    try {
      let log = '';
      await waitFor('the kubelet log line', async () => (log = await host.read('var/log/kube-stub.log').catch(() => '')).includes('--node-ip=10.0.0.5'));
      assert.match(log, /kubelet --config=\/var\/lib\/kubelet\/config\.yaml --node-ip=10\.0\.0\.5\n/);
      assert.ok(kubelet.running(), 'kubelet keeps running');
    } finally {
      await kubelet.stop();
    }
    assert.equal((await host.ok('kubelet', ['--version'])).stdout, 'Kubernetes v1.32.3\n');
  });

  it('crictl reports the runtime and lists containerd\'s images', async () => {
    await host.writeFake('images', 'registry.k8s.io/pause:3.10\nsha256:0123\n');
    assert.match((await host.ok('crictl', ['--runtime-endpoint', 'unix:///var/run/containerd/containerd.sock', 'version'])).stdout, /RuntimeName:  containerd\nRuntimeVersion:  1\.6\.20~ds1\n/);
    const images = await host.ok('crictl', ['-r', 'unix:///var/run/containerd/containerd.sock', 'images']);
    assert.match(images.stdout, /^IMAGE\s+TAG\s+IMAGE ID\s+SIZE\nregistry\.k8s\.io\/pause\s+3\.10\s+0123456789abc\s+1\.0MiB\n$/);
    const down = await host.run('crictl', ['-r', 'unix:///run/nothing.sock', 'images']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /dial unix \/run\/nothing\.sock: connect: no such file or directory/);
  });

  it('CNI plugins answer VERSION as each plugin', async () => {
    const env = { ...host.env, CNI_COMMAND: 'VERSION' };
    for (const plugin of ['bridge', 'host-local', 'loopback', 'portmap']) {
      const result = spawnSync(host.file(`opt/cni/bin/${plugin}`), [], { env, encoding: 'utf8' });
      assert.equal(result.status, 0);
      assert.ok((JSON.parse(result.stdout) as { supportedVersions: string[] }).supportedVersions.includes('1.0.0'));
    }
    assert.match(await host.read('var/log/kube-stub.log'), / portmap CNI_COMMAND=VERSION\n/);
  });

  it('kubeadm with cri-dockerd checks its pause image and pulls through docker', async () => {
    await rm(host.file('fake/images'), { force: true });   // present images would not be pulled again
    await host.listenUnix('/var/run/cri-dockerd.sock');
    const config = await host.writeConfig('init.yaml', initConfig({ advertise: host.ip, criSocket: 'unix:///var/run/cri-dockerd.sock' }));
    const notRunning = await host.run('kubeadm', ['init', '--config', config]);
    assert.equal(notRunning.code, 1);
    assert.match(notRunning.stderr, /cri-dockerd does not answer/);

    const state = host.file('run/cri-dockerd/kube-stub.env');
    const dockerd = startDaemon(host, 'cri-dockerd', ['--container-runtime-endpoint', 'fd://', '--pod-infra-container-image', 'registry.k8s.io/pause:3.10']);
    try {
      await waitFor('cri-dockerd to record its state', () => existsSync(state));
      assert.equal(await host.read('run/cri-dockerd/kube-stub.env'), 'pod_infra_container_image=registry.k8s.io/pause:3.10\ncontainer_runtime_endpoint=fd://\n');
      await host.ok('kubeadm', ['init', '--config', config]);
      const dockerPulls = (await host.calls()).filter((c) => c.startsWith('docker pull ')).map((c) => c.slice('docker pull '.length));
      assert.deepEqual(dockerPulls, IMAGES_1_32_3);
    } finally {
      await dockerd.stop();
    }
    assert.equal(existsSync(state), false, 'cri-dockerd removes its state when stopped');
  });
});

describe('yaml-flatten.awk', () => {
  it('flattens nested maps, sequences, flow collections, quotes, comments and block scalars', () => {
    const yaml = `# c
a:
  b: "x # not a comment"   # comment
  list:
  - name: one
    args: [p, 'q r', "s"]
  - two
c: {}
d: |
  line 1
  line 2
e:
---
f: it's
`;
    const result = spawnSync('awk', ['-f', path.join(STUBS, 'kubeadm/usr/lib/kube-stub/yaml-flatten.awk')], { input: yaml, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, [
      '0\ta.b\tx # not a comment', '0\ta.list.0.name\tone', '0\ta.list.0.args.0\tp', '0\ta.list.0.args.1\tq r',
      '0\ta.list.0.args.2\ts', '0\ta.list.1\ttwo', '0\tc\t{}', '0\td\tline 1\\nline 2', '0\te\t', "1\tf\tit's", '',
    ].join('\n'));
  });
});

/** A newer (or older) deb of PKG installed over the host's root, as apt would upgrade it. */
function installPackage(host: Host, pkg: 'kubeadm' | 'kubelet' | 'kubectl', version: string): Promise<void> {
  return installTree(path.join(STUBS, pkg), host.root, version);
}

describe('stub cluster: what `bundle upgrade` relies on (kubectl version/drain/uncordon, kubelet, kubeadm upgrade)', () => {
  let cp1: Host;
  let cp2: Host;
  let w1: Host;
  const endpoint = '127.0.0.51:6443';
  const kubelets: Array<{ stop: () => Promise<void> }> = [];
  const admin = (): string[] => ['--kubeconfig', cp1.file('etc/kubernetes/admin.conf')];
  const node = async (name: string) => JSON.parse((await cp1.ok('kubectl', [...admin(), 'get', 'node', name, '-o', 'json'])).stdout) as {
    kind: string;
    spec: { unschedulable?: boolean };
    status: { conditions: Array<{ type: string; status: string }>; nodeInfo: { kubeletVersion: string } };
  };
  const ready = async (name: string): Promise<boolean> => (await node(name)).status.conditions.find((c) => c.type === 'Ready')?.status === 'True';
  const serverVersion = async (): Promise<string> =>
    (JSON.parse((await cp1.ok('kubectl', [...admin(), 'version', '-o', 'json'])).stdout) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion;
  /** the kubelet as 10-kubeadm.conf starts it */
  const startKubelet = (host: Host) => {
    const k = startDaemon(host, 'kubelet', ['--kubeconfig=/etc/kubernetes/kubelet.conf', '--config=/var/lib/kubelet/config.yaml']);
    kubelets.push(k);
    return k;
  };
  const kubeletLog = async (host: Host): Promise<string> => (await host.read('var/log/kube-stub.log')).split('\n').filter((l) => / kubelet # /.test(l)).join('\n');

  before(async () => {
    cp1 = await Host.create('cp1', '127.0.0.51');
    cp2 = await Host.create('cp2', '127.0.0.52');
    w1 = await Host.create('w1', '127.0.0.53');
    const file = await cp1.writeConfig('init.yaml', initConfig({ advertise: cp1.ip, controlPlaneEndpoint: endpoint }));
    await cp1.ok('kubeadm', ['init', '--config', file, '--upload-certs']);
    await cp1.serveApi();
    const hash = caCertHash(await cp1.read('etc/kubernetes/pki/ca.crt'));
    await w1.ok('kubeadm', ['join', '--config', await w1.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'w1', ip: w1.ip }))]);
    await cp2.ok('kubeadm', ['join', '--config', await cp2.writeConfig('join.yaml', joinConfig({ endpoint, hash, name: 'cp2', ip: cp2.ip, certificateKey: CERT_KEY }))]);
    await cp1.ok('kubectl', [...admin(), 'apply', '-f', await cp1.writeConfig('kube-flannel.yml', await flannelManifest())]);
    for (const h of [cp1, cp2, w1]) await rm(h.file('fake/calls'), { force: true });
  });
  after(async () => {
    for (const k of kubelets) await k.stop();
    for (const h of [cp1, cp2, w1]) await h.close();
  });

  it('kubelet --version and kubectl version -o json say the installed and the API server\'s versions; the text form stays', async () => {
    assert.equal((await w1.ok('kubelet', ['--version'])).stdout, 'Kubernetes v1.32.3\n');
    const json = JSON.parse((await cp1.ok('kubectl', [...admin(), 'version', '-o', 'json'])).stdout) as Record<string, { gitVersion: string; minor: string }>;
    assert.equal(json.clientVersion?.gitVersion, 'v1.32.3');
    assert.equal(json.serverVersion?.gitVersion, 'v1.32.3');
    assert.equal(json.serverVersion?.minor, '32');
    assert.equal((await cp1.ok('kubectl', [...admin(), 'version'])).stdout, 'Client Version: v1.32.3\nServer Version: v1.32.3\n');
    const client = JSON.parse((await w1.ok('kubectl', ['version', '--client', '-o', 'json'])).stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(client), ['clientVersion', 'kustomizeVersion']);
  });

  it('get node NAME -o json is the Node object: Ready condition, kubeletVersion, no spec.unschedulable', async () => {
    const w = await node('w1');
    assert.equal(w.kind, 'Node');
    assert.equal(w.status.nodeInfo.kubeletVersion, 'v1.32.3');
    assert.equal(await ready('w1'), true);
    assert.equal(w.spec.unschedulable, undefined);
    const missing = await cp1.run('kubectl', [...admin(), 'get', 'node', 'nope', '-o', 'json']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Error from server \(NotFound\): nodes "nope" not found/);
  });

  it('drain refuses DaemonSet pods without --ignore-daemonsets (leaving the node cordoned), drains with it; uncordon undoes it', async () => {
    const refused = await cp1.run('kubectl', [...admin(), 'drain', 'w1']);
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, 'node/w1 cordoned\n');
    assert.match(refused.stderr, /^error: unable to drain node "w1" due to error: cannot delete DaemonSet-managed Pods \(use --ignore-daemonsets to ignore\): kube-system\/kube-proxy-[a-z0-9]{5}, kube-flannel\/kube-flannel-ds-[a-z0-9]{5}, continuing command\.\.\.$/m);
    assert.equal((await node('w1')).spec.unschedulable, true);

    const drained = await cp1.ok('kubectl', [...admin(), 'drain', 'w1', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=5m']);
    assert.equal(drained.stdout, 'node/w1 already cordoned\nnode/w1 drained\n');
    assert.match(drained.stderr, /^Warning: ignoring DaemonSet-managed Pods: kube-system\/kube-proxy-[a-z0-9]{5}, kube-flannel\/kube-flannel-ds-[a-z0-9]{5}$/m);
    const table = (await cp1.ok('kubectl', [...admin(), 'get', 'nodes', '-o', 'wide'])).stdout;
    assert.match(table, /^w1\s+Ready,SchedulingDisabled\s+<none>\s+\S+\s+v1\.32\.3\s+127\.0\.0\.53\s/m);
    const list = JSON.parse((await cp1.ok('kubectl', [...admin(), 'get', 'nodes', '-o', 'json'])).stdout) as { items: Array<{ metadata: { name: string }; spec: { unschedulable?: boolean } }> };
    assert.deepEqual(list.items.map((n) => [n.metadata.name, n.spec.unschedulable ?? false]), [['cp1', false], ['cp2', false], ['w1', true]]);

    assert.equal((await cp1.ok('kubectl', [...admin(), 'uncordon', 'w1'])).stdout, 'node/w1 uncordoned\n');
    assert.equal((await cp1.ok('kubectl', [...admin(), 'uncordon', 'w1'])).stdout, 'node/w1 already uncordoned\n');
    assert.equal((await node('w1')).spec.unschedulable, undefined);
    const bad = await cp1.run('kubectl', [...admin(), 'drain', 'w1', '--ignore-daemonsets', '--timeout=5 minutes']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid argument "5 minutes" for "--timeout" flag/);
    const missing = await cp1.run('kubectl', [...admin(), 'uncordon', 'nope']);
    assert.match(missing.stderr, /Error from server \(NotFound\): nodes "nope" not found/);
  });

  it('the kubelet reports its version when started; the API server refuses a kubelet newer than itself, and the node stays NotReady', async () => {
    let k = startKubelet(w1);
    await waitFor('the kubelet to register', async () => /registered node w1 with kubelet v1\.32\.3 at 127\.0\.0\.51:6443/.test(await kubeletLog(w1)));
    await k.stop();
    await installPackage(w1, 'kubelet', '1.33.1');
    assert.equal((await w1.ok('kubelet', ['--version'])).stdout, 'Kubernetes v1.33.1\n');
    k = startKubelet(w1);
    await waitFor('the refusal', async () => /node w1 refused by the API server at 127\.0\.0\.51:6443: Forbidden: .*kubelet version v1\.33\.1 is newer than the API server's v1\.32\.3/.test(await kubeletLog(w1)));
    await k.stop();
    assert.equal(await ready('w1'), false);
    assert.equal((await node('w1')).status.nodeInfo.kubeletVersion, 'v1.32.3');
    await installPackage(w1, 'kubelet', '1.32.3');
    k = startKubelet(w1);
    await waitFor('Ready again', () => ready('w1'));
    await k.stop();
  });

  it('upgrade plan prints the plan (noting an older kubeadm) and enforces no policy, as kubeadm\'s plan.go', async () => {
    const plan = await cp1.ok('kubeadm', ['upgrade', 'plan', 'v1.32.4']);
    assert.match(plan.stdout, /^\[upgrade\/versions\] Cluster version: v1\.32\.3$/m);
    assert.match(plan.stdout, /^\[upgrade\/versions\] Target version: v1\.32\.4$/m);
    assert.match(plan.stdout, /^kubelet\s+w1\s+v1\.32\.3\s+v1\.32\.4$/m);
    assert.match(plan.stdout, /^kube-apiserver\s+cp1\s+v1\.32\.3\s+v1\.32\.4$/m);
    assert.match(plan.stdout, /^kube-apiserver\s+cp2\s+v1\.32\.3\s+v1\.32\.4$/m);
    assert.match(plan.stdout, /^\tkubeadm upgrade apply v1\.32\.4$/m);
    assert.match(plan.stdout, /^Note: Before you can perform this upgrade, you have to update kubeadm to v1\.32\.4\.$/m);
    const skip = await cp1.ok('kubeadm', ['upgrade', 'plan', 'v1.34.1']);
    assert.match(skip.stdout, /^Upgrade to the latest version in the v1\.32 series:$/m);
    const down = await cp1.ok('kubeadm', ['upgrade', 'plan', 'v1.32.2']);
    assert.match(down.stdout, /Awesome, you're up-to-date! Enjoy!/);
    const worker = await w1.run('kubeadm', ['upgrade', 'plan']);
    assert.equal(worker.code, 1);
    assert.match(worker.stderr, /failed to load admin kubeconfig: open \/etc\/kubernetes\/admin\.conf: no such file or directory/);
  });

  it('upgrade apply refuses what policy.go refuses, with its messages, and changes nothing', async () => {
    const older = await cp1.run('kubeadm', ['upgrade', 'apply', 'v1.32.4', '--yes']);
    assert.equal(older.code, 1);
    assert.match(older.stderr, /^error execution phase preflight: the version argument is invalid due to these errors:\n\n\t- Specified version to upgrade to "v1\.32\.4" is higher than the kubeadm version "v1\.32\.3"\. Upgrade kubeadm first using the tool you used to install kubeadm\n\nCan be bypassed if you pass the --force flag$/m);

    await installPackage(cp1, 'kubeadm', '1.32.4');
    const minor = await cp1.run('kubeadm', ['upgrade', 'apply', 'v1.33.1', '-y']);
    assert.equal(minor.code, 1);
    assert.match(minor.stderr, /these fatal errors:\n\n\t- Specified version to upgrade to "v1\.33\.1" is at least one minor release higher than the kubeadm minor release \(33 > 32\)\. Such an upgrade is not supported\n\nPlease fix the misalignments/);
    const skip = await cp1.run('kubeadm', ['upgrade', 'apply', 'v1.34.1', '-y']);
    assert.match(skip.stderr, /\t- Specified version to upgrade to "v1\.34\.1" is too high; kubeadm can upgrade only 1 minor version at a time\n/);
    const unconfirmed = await cp1.run('kubeadm', ['upgrade', 'apply', 'v1.32.4'], 'n\n');
    assert.equal(unconfirmed.code, 1);
    assert.match(unconfirmed.stderr, /won't proceed; the user didn't answer \(Y\|y\) in order to continue/);
    const worker = await w1.run('kubeadm', ['upgrade', 'apply', 'v1.32.4', '-y']);
    assert.equal(worker.code, 1);
    assert.match(worker.stderr, /failed to load admin kubeconfig/);

    assert.equal(await serverVersion(), 'v1.32.3');
    assert.match(await cp1.read('etc/kubernetes/manifests/kube-apiserver.yaml'), /image: registry\.k8s\.io\/kube-apiserver:v1\.32\.3\n/);
    assert.deepEqual(await cp1.pulls(), []);
  });

  it('upgrade apply pulls the new images through containerd\'s hosts dir, rewrites the static Pods and moves the API server', async () => {
    const applied = await cp1.ok('kubeadm', ['upgrade', 'apply', 'v1.32.4', '--yes']);
    assert.match(applied.stdout, /\[upgrade\] SUCCESS! A control plane node of your cluster was upgraded to "v1\.32\.4"\./);
    // IfNotPresent: CoreDNS, pause and etcd keep their 1.32.3 tags and are there already
    assert.deepEqual((await cp1.calls()).filter((c) => c.includes('images pull')), [
      'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy',
    ].map((c) => `ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d registry.k8s.io/${c}:v1.32.4`));
    for (const c of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) {
      assert.match(await cp1.read(`etc/kubernetes/manifests/${c}.yaml`), new RegExp(`image: registry\\.k8s\\.io/${c}:v1\\.32\\.4\\n`));
    }
    const backups = await readdir(cp1.file('etc/kubernetes/tmp'));
    assert.ok(backups.some((b) => b.startsWith('kubeadm-backup-manifests-')), backups.join(' '));
    assert.equal(await serverVersion(), 'v1.32.4');
    // kubeadm keeps the cluster's records: a worker joining now would pull the new kube-proxy
    assert.match(handler(cp1, `CONFIG\t${TOKEN}`), /^node_image=registry\.k8s\.io\/kube-proxy:v1\.32\.4$/m);
    const plan = await cp1.ok('kubeadm', ['upgrade', 'plan', 'v1.32.4']);
    assert.match(plan.stdout, /Awesome, you're up-to-date!/);
  });

  it('upgrade node: a control plane gets the cluster\'s images and static Pods; a worker its kubelet config', async () => {
    await installPackage(cp2, 'kubeadm', '1.32.4');
    const cp = await cp2.ok('kubeadm', ['upgrade', 'node']);
    assert.match(cp.stdout, /\[upgrade\/control-plane\] The control plane instance for this node was successfully upgraded!/);
    assert.ok((await cp2.pulls()).includes('registry.k8s.io/kube-apiserver:v1.32.4'));
    assert.match(await cp2.read('etc/kubernetes/manifests/kube-scheduler.yaml'), /image: registry\.k8s\.io\/kube-scheduler:v1\.32\.4\n/);
    // its API server restarted with its new static Pod: the socket stopped, started again, answering before kubeadm ends
    const calls = (await cp2.calls()).filter((c) => c.includes('kube-stub-apiserver.socket'));
    assert.deepEqual(calls.slice(-2), ['systemctl stop kube-stub-apiserver.socket', 'systemctl enable --now kube-stub-apiserver.socket']);
    assert.match(await cp2.read('var/log/kube-stub.log'), /kubeadm # upgrade: kube-apiserver restarting, this host's API server down for 0s\n.*kubeadm # upgrade: kube-apiserver back\n/);
    const plan = await cp1.ok('kubeadm', ['upgrade', 'plan', 'v1.33.1']);
    assert.match(plan.stdout, /^kube-apiserver\s+cp2\s+v1\.32\.4\s+v1\.33\.1$/m);

    await installPackage(w1, 'kubeadm', '1.32.4');
    const worker = await w1.ok('kubeadm', ['upgrade', 'node']);
    assert.match(worker.stdout, /Skipping phase\. Not a control plane node\./);
    assert.match(worker.stdout, /\[upgrade\] Backing up kubelet config file to \/etc\/kubernetes\/tmp\/kubeadm-kubelet-config-[0-9-]+\/config\.yaml/);
    assert.match(await w1.read('var/lib/kubelet/config.yaml'), /^cgroupDriver: systemd$/m);
    assert.match(await w1.read('var/log/kube-stub.log'), /kubeadm # upgrade: wrote \/var\/lib\/kubelet\/config\.yaml for v1\.32\.4/);
    assert.deepEqual(await w1.pulls(), []);
  });

  it('after the control plane moves a minor, an older kubeadm refuses `upgrade node`, and a newer kubelet is welcome', async () => {
    await installPackage(cp1, 'kubeadm', '1.33.1');
    await cp1.ok('kubeadm', ['upgrade', 'apply', 'v1.33.1', '-y']);
    assert.equal(await serverVersion(), 'v1.33.1');
    assert.match(await cp1.read('etc/kubernetes/manifests/etcd.yaml'), /image: registry\.k8s\.io\/etcd:3\.5\.21-0\n/);

    const refused = await w1.run('kubeadm', ['upgrade', 'node']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\[ERROR KubernetesVersion\]: Kubernetes version is greater than kubeadm version\. Please consider to upgrade kubeadm\. Kubernetes version: 1\.33\.1\. Kubeadm version: 1\.32\.x/);
    await installPackage(w1, 'kubeadm', '1.33.1');
    await w1.ok('kubeadm', ['upgrade', 'node']);

    await installPackage(w1, 'kubelet', '1.33.1');
    const k = startKubelet(w1);
    await waitFor('w1 Ready with kubelet v1.33.1', async () => (await node('w1')).status.nodeInfo.kubeletVersion === 'v1.33.1' && (await ready('w1')));
    await k.stop();
    assert.match((await cp1.ok('kubectl', [...admin(), 'get', 'nodes'])).stdout, /^w1\s+Ready\s+<none>\s+\S+\s+v1\.33\.1$/m);
  });
});
