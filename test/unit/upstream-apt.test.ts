/**
 * The simulated pkgs.k8s.io and GitHub releases, checked with real clients: this machine's apt-get (fully isolated
 * through APT_CONFIG: its own etc, lists, cache and an empty dpkg status; nothing is installed) and fetch.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { controlField, readDebControl } from '../../src/core/apt/debfile.js';
import { generateKeyPair } from '../../src/core/pgp.js';
import { type K8sApt, startK8sApt } from '../upstream/apt.js';
import { CRI_DOCKERD_RELEASE_PATH, FLANNEL_MANIFEST_PATH, type Github, startGithub } from '../upstream/github.js';

const run = promisify(execFile);
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const KUBEADM_DEB = 'amd64/kubeadm_1.32.3-1.1_amd64.deb';
const CRI_DOCKERD_DEB = 'cri-dockerd_0.3.16.3-0.debian-bookworm_amd64.deb';

let tmp: string;
let apt: K8sApt;
let github: Github;
let repo: string;

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'upstream-apt-test-'));
  const workDir = path.join(tmp, 'work');
  [apt, github] = await Promise.all([startK8sApt({ host: '127.0.0.1', workDir }), startGithub({ host: '127.0.0.1', workDir })]);
  repo = `${apt.url}/core:/stable:/v1.32/deb/`;
});

after(async () => {
  await Promise.allSettled([apt?.stop(), github?.stop()]);
  await rm(tmp, { recursive: true, force: true });
});

/** An apt that reads nothing of this machine's configuration, lists or dpkg database. */
async function isolatedApt(name: string, armoredKey: string): Promise<(args: string[], cwd?: string) => Promise<{ stdout: string; stderr: string }>> {
  const dir = path.join(tmp, name);
  for (const sub of ['etc/apt.conf.d', 'etc/sources.list.d', 'etc/preferences.d', 'lists/partial', 'cache/archives/partial', 'log', 'gnupg']) {
    await mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
  }
  await writeFile(path.join(dir, 'status'), '');
  await writeFile(path.join(dir, 'key.asc'), armoredKey);
  const keyring = path.join(dir, 'key.gpg');
  await run('gpg', ['--batch', '--yes', '--dearmor', '--output', keyring, path.join(dir, 'key.asc')], { env: { ...process.env, GNUPGHOME: path.join(dir, 'gnupg') } });
  await writeFile(path.join(dir, 'etc/sources.list'), `deb [signed-by=${keyring}] ${repo} /\n`);
  await writeFile(
    path.join(dir, 'apt.conf'),
    [
      `Dir::Etc "${dir}/etc";`,
      `Dir::Etc::Parts "${dir}/etc/apt.conf.d";`,
      `Dir::State "${dir}";`,
      `Dir::State::Lists "${dir}/lists";`,
      `Dir::State::status "${dir}/status";`,
      `Dir::Cache "${dir}/cache";`,
      `Dir::Log "${dir}/log";`,
      'APT::Architecture "amd64";',
      'APT::Architectures { "amd64"; "arm64"; };',
      // we are root and the cache is ours; without this apt drops to _apt and warns it cannot write there
      'APT::Sandbox::User "root";',
      '',
    ].join('\n'),
  );
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', APT_CONFIG: path.join(dir, 'apt.conf') };
  return (args, cwd = dir) => run(args[0] ?? '', args.slice(1), { env, cwd });
}

describe('simulated pkgs.k8s.io with the real apt-get', () => {
  let aptRun: Awaited<ReturnType<typeof isolatedApt>>;

  before(async () => {
    aptRun = await isolatedApt('apt-good', apt.publicKey);
    await aptRun(['apt-get', 'update']);
  });

  it('shows kubeadm 1.32.3-1.1 from the repo, with upstream Depends', async () => {
    const { stdout: policy } = await aptRun(['apt-cache', 'policy', 'kubeadm']);
    assert.match(policy, /Candidate: 1\.32\.3-1\.1/);
    assert.ok(policy.includes(`500 ${apt.url}/core:/stable:/v1.32/deb  Packages`), policy);
    const { stdout: kubeadm } = await aptRun(['apt-cache', 'show', 'kubeadm:amd64']);
    assert.match(kubeadm, /^Depends: cri-tools \(>= 1\.30\.0\)$/m);
    assert.match(kubeadm, /^Filename: amd64\/kubeadm_1\.32\.3-1\.1_amd64\.deb$/m);
    const { stdout: kubelet } = await aptRun(['apt-cache', 'show', 'kubelet:amd64']);
    assert.match(kubelet, /^Depends: iptables \(>= 1\.4\.21\),kubernetes-cni \(>= 1\.2\.0\),iproute2,mount,conntrack,util-linux,ethtool$/m);
  });

  it('downloads kubeadm and its dependency through the 302 to the CDN, with hashes apt checked', async () => {
    const { stdout } = await aptRun(['apt-get', 'install', '-y', '--download-only', 'kubeadm']);
    assert.match(stdout, /Download complete and in download only mode/);
    const archives = path.join(tmp, 'apt-good/cache/archives');
    const debs = (await readdir(archives)).filter((f) => f.endsWith('.deb')).sort();
    assert.deepEqual(debs, ['cri-tools_1.32.0-1.1_amd64.deb', 'kubeadm_1.32.3-1.1_amd64.deb']);
    const packages = await (await fetch(`${repo}Packages`)).text();
    const listed = /Filename: amd64\/kubeadm_1\.32\.3-1\.1_amd64\.deb\nSize: \d+\nSHA256: ([0-9a-f]{64})/.exec(packages)?.[1];
    assert.equal(sha256(await readFile(path.join(archives, 'kubeadm_1.32.3-1.1_amd64.deb'))), listed);
    const debPath = `/core:/stable:/v1.32/deb/${KUBEADM_DEB}`;
    assert.ok(apt.requests.some((r) => r.method === 'GET' && r.url === debPath && r.status === 302), 'pkgs.k8s.io redirected the deb');
    assert.ok(apt.cdnRequests.some((r) => r.url === `/repositories/isv:/kubernetes:${debPath}` && r.status === 200), 'the CDN served it');
  });

  it('`apt-get download` fetches the arm64 kubeadm too', async () => {
    const into = path.join(tmp, 'download');
    await mkdir(into);
    await aptRun(['apt-get', 'download', 'kubeadm:arm64'], into);
    const control = await readDebControl(path.join(into, 'kubeadm_1.32.3-1.1_arm64.deb'));
    assert.equal(controlField(control, 'Architecture'), 'arm64');
    assert.equal(controlField(control, 'Version'), '1.32.3-1.1');
  });

  it('refuses the repository when signed-by names a different key', async () => {
    assert.equal(await readFile(apt.keyFile, 'utf8'), apt.publicKey, 'keyFile holds the served key');
    const stranger = await generateKeyPair('someone else');
    const badRun = await isolatedApt('apt-bad', stranger.publicKey);
    await assert.rejects(badRun(['apt-get', 'update']), (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, 100);
      assert.match(err.stderr ?? '', /NO_PUBKEY/);
      assert.match(err.stderr ?? '', /is not signed/);
      return true;
    });
  });
});

describe('simulated pkgs.k8s.io over plain HTTP', () => {
  it('serves Release.key, the v1.31 repo, and 403/404 like the real service', async () => {
    assert.equal(await (await fetch(`${repo}Release.key`)).text(), apt.publicKey);
    const v131 = await (await fetch(`${apt.url}/core:/stable:/v1.31/deb/Packages`)).text();
    assert.match(v131, /^Package: kubeadm\nVersion: 1\.31\.7-1\.1\n/m);
    assert.match(v131, /^Package: kubernetes-cni\nVersion: 1\.5\.1-1\.1\n/m);
    assert.match(v131, /^Package: cri-tools\nVersion: 1\.31\.1-1\.1\n/m);
    assert.equal((await fetch(repo)).status, 403);
    assert.equal((await fetch(`${apt.url}/core:/stable:/v1.32/deb/amd64`)).status, 403);
    assert.equal((await fetch(`${repo}Packages.xz`)).status, 404);
    assert.equal((await fetch(`${repo}InRelease`, { method: 'POST' })).status, 405);
    const head = await fetch(`${repo}InRelease`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), (await (await fetch(`${repo}InRelease`)).arrayBuffer()).byteLength);
  });

  it('answers Range requests on the CDN with 206 and the right bytes', async () => {
    const redirect = await fetch(`${repo}${KUBEADM_DEB}`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    const location = redirect.headers.get('location') ?? '';
    assert.ok(location.startsWith(`${apt.cdnUrl}/repositories/isv:/kubernetes:/core:/stable:/v1.32/deb/`), location);
    const whole = new Uint8Array(await (await fetch(location)).arrayBuffer());
    const part = await fetch(location, { headers: { Range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${whole.length}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), whole.slice(100, 200));
    const tail = await fetch(location, { headers: { Range: 'bytes=-10' } });
    assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), whole.slice(-10));
    const beyond = await fetch(location, { headers: { Range: `bytes=${whole.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${whole.length}`);
  });
});

describe('simulated GitHub releases', () => {
  it('redirects the flannel manifest to the asset CDN, which serves the v0.26.5 manifest', async () => {
    const redirect = await fetch(`${github.url}${FLANNEL_MANIFEST_PATH}`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    const location = redirect.headers.get('location') ?? '';
    assert.ok(location.startsWith(`${github.cdnUrl}/github-production-release-asset/`), location);
    const asset = await fetch(location);
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get('content-disposition'), 'attachment; filename=kube-flannel.yml');
    const docs = parseAllDocuments(await asset.text()).map((d) => d.toJS() as Record<string, any>);
    assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`), [
      'Namespace/kube-flannel', 'ClusterRole/flannel', 'ClusterRoleBinding/flannel', 'ServiceAccount/flannel',
      'ConfigMap/kube-flannel-cfg', 'DaemonSet/kube-flannel-ds',
    ]);
    const netConf = JSON.parse(docs[4]?.data['net-conf.json']);
    assert.deepEqual(netConf, { Network: '10.244.0.0/16', EnableNFTables: false, Backend: { Type: 'vxlan' } });
    const pod = docs[5]?.spec.template.spec;
    assert.deepEqual(pod.initContainers.map((c: { name: string; image: string }) => `${c.name}=${c.image}`), [
      'install-cni-plugin=ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1',
      'install-cni=ghcr.io/flannel-io/flannel:v0.26.5',
    ]);
    assert.equal(pod.containers[0].image, 'ghcr.io/flannel-io/flannel:v0.26.5');
  });

  it('serves the cri-dockerd debs through the redirect, with Range, and 404 for anything else', async () => {
    const url = `${github.url}${CRI_DOCKERD_RELEASE_PATH}/${CRI_DOCKERD_DEB}`;
    const redirect = await fetch(url, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const file = path.join(tmp, CRI_DOCKERD_DEB);
    await writeFile(file, bytes);
    const control = await readDebControl(file);
    assert.equal(controlField(control, 'Version'), '0.3.16~3-0~debian-bookworm');
    assert.equal(controlField(control, 'Depends'), 'containerd (>= 1.2.2-3) | containerd.io (>= 1.2.2-3) | moby-containerd (>= 1.2.2), iptables, libseccomp2 (>= 2.3.0)');
    const jammy = await fetch(`${github.url}${CRI_DOCKERD_RELEASE_PATH}/cri-dockerd_0.3.16.3-0.ubuntu-jammy_amd64.deb`);
    assert.equal(jammy.status, 200);
    const part = await fetch(redirect.headers.get('location') ?? '', { headers: { Range: 'bytes=0-7' } });
    assert.equal(part.status, 206);
    assert.equal(Buffer.from(await part.arrayBuffer()).toString('latin1'), '!<arch>\n');
    assert.equal((await fetch(`${github.url}${CRI_DOCKERD_RELEASE_PATH}/nope.deb`, { redirect: 'manual' })).status, 404);
    assert.equal((await fetch(`${github.url}${CRI_DOCKERD_RELEASE_PATH}`, { redirect: 'manual' })).status, 404);
  });
});
