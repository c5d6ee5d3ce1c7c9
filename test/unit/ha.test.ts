import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BundleManifest } from '../../src/core/bundle/manifest.js';
import {
  checkHaOptions, haEndpoint, haPreflight, haproxyConfig, keepalivedConfig, linkProblems, planHa, upToDateCommand, virtualRouterId,
  type HaCheckInput,
} from '../../src/core/install/ha.js';
import type { Listener } from '../../src/core/install/facts.js';
import type { HostRole, HostSpec } from '../../src/core/install/hosts.js';
import type { HaPlan, InstallHost } from '../../src/core/install/context.js';
import { UserError } from '../../src/util/errors.js';
import { parseLinks, testHost } from './helpers/install-host.js';

const IP_ADDR = [
  '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
  '2: eth0    inet 10.77.0.11/24 brd 10.77.0.255 scope global eth0\\       valid_lft forever preferred_lft forever',
  '2: eth0    inet 10.77.0.100/32 scope global eth0\\       valid_lft forever preferred_lft forever',
  '3: ens4    inet 192.168.5.3/16 brd 192.168.255.255 scope global ens4\\       valid_lft forever preferred_lft forever',
].join('\n');

/**
 * A host as install sees it; `answer` is `ip -o -4 addr show` and the kube-bundle configs found, as the facts hold
 * them; `listeners` who listens where, when the host can tell.
 */
function node(address: string, role: HostRole, name: string, opts: { answer?: string; listening?: number[]; listeners?: Listener[] } = {}): InstallHost {
  const spec: HostSpec = { address, role, line: 1 };
  const answer = opts.answer ?? '';
  return testHost(spec, name, {
    listening: opts.listening ?? [],
    listeners: opts.listeners ?? [],
    addresses: parseLinks(answer),
    ours: {
      registryConfigured: false,
      registryActive: false,
      haproxyConfigured: answer.includes('/etc/haproxy/haproxy.cfg'),
      keepalivedConfigured: answer.includes('/etc/keepalived/keepalived.conf'),
    },
  });
}

function manifestWith(names: string[]): BundleManifest {
  return { components: { packages: names.map((name) => ({ name })), images: [], files: [] } } as unknown as BundleManifest;
}

function checkInput(over: Partial<HaCheckInput> = {}): HaCheckInput {
  return {
    vip: '10.77.0.100',
    specs: [{ address: '10.77.0.11', role: 'control-plane', line: 1 }, { address: '10.77.0.12', role: 'worker', line: 2 }],
    hostsFile: 'hosts.txt',
    controlPlaneEndpoint: undefined,
    bundleFile: 'b.tar',
    manifest: manifestWith(['kubeadm', 'haproxy', 'keepalived']),
    haPackages: ['haproxy', 'keepalived'],
    ...over,
  };
}

/** A plan over these holders with their links filled in, as the preflight does. */
function plannedOn(holders: InstallHost[], vip = '10.77.0.100'): HaPlan {
  const plan = planHa(vip, holders);
  for (const h of plan.holders) plan.links.set(h, { iface: 'eth0', address: h.spec.address, prefix: 24 });
  return plan;
}

test('--vip is refused before any host is contacted: not IPv4, a host\'s address, with --control-plane-endpoint, a bundle without haproxy/keepalived; lb hosts need it', () => {
  assert.doesNotThrow(() => checkHaOptions(checkInput()));
  assert.doesNotThrow(() => checkHaOptions(checkInput({ vip: undefined, manifest: manifestWith([]) })), 'no --vip, no lb host: nothing to check');
  const withLb: HostSpec[] = [...checkInput().specs, { address: '10.77.0.5', role: 'lb', line: 3 }];
  assert.throws(() => checkHaOptions(checkInput({ vip: undefined, specs: withLb })), /hosts\.txt:3: an lb host, but no --vip/);
  assert.throws(() => checkHaOptions(checkInput({ vip: 'fd00::10' })), (e: unknown) => e instanceof UserError && /not an IPv4 address/.test(e.message));
  assert.throws(() => checkHaOptions(checkInput({ vip: '10.77.0.300' })), /not an IPv4 address/);
  assert.throws(() => checkHaOptions(checkInput({ vip: '10.77.0.12' })), /10\.77\.0\.12 is the address of a host \(hosts\.txt:2\)/);
  assert.throws(() => checkHaOptions(checkInput({ controlPlaneEndpoint: 'api.lan' })), /--vip and --control-plane-endpoint/);
  assert.throws(
    () => checkHaOptions(checkInput({ manifest: manifestWith(['kubeadm', 'haproxy']) })),
    (e: unknown) => e instanceof UserError && /b\.tar carries no keepalived/.test(e.message) && /--ha/.test(e.hint ?? ''),
  );
});

test('the address is held by the lb hosts on 6443 when there are any, else by the control planes on 8443', () => {
  const cps = [node('10.0.0.11', 'control-plane', 'cp1'), node('10.0.0.12', 'control-plane', 'cp2'), node('10.0.0.21', 'worker', 'w1')];
  const onCps = planHa('10.0.0.10', cps);
  assert.deepEqual(onCps.holders.map((h) => h.name), ['cp1', 'cp2']);
  assert.equal(haEndpoint(onCps), '10.0.0.10:8443');
  const lbs = [node('10.0.0.5', 'lb', 'lb1'), ...cps, node('10.0.0.6', 'lb', 'lb2')];
  const onLbs = planHa('10.0.0.10', lbs);
  assert.deepEqual(onLbs.holders.map((h) => h.name), ['lb1', 'lb2']);
  assert.equal(haEndpoint(onLbs), '10.0.0.10:6443');
});

test('ip -o -4 addr show is read per interface, and the holder\'s link is the one with its address', () => {
  assert.deepEqual(parseLinks(IP_ADDR), [
    { iface: 'lo', address: '127.0.0.1', prefix: 8 },
    { iface: 'eth0', address: '10.77.0.11', prefix: 24 },
    { iface: 'eth0', address: '10.77.0.100', prefix: 32 },
    { iface: 'ens4', address: '192.168.5.3', prefix: 16 },
  ]);
  const links = parseLinks(IP_ADDR).filter((l) => l.address !== '10.77.0.100');
  assert.deepEqual(linkProblems(links, '10.77.0.11', '10.77.0.100', false), []);
  assert.match(linkProblems(links, '10.77.0.11', '10.78.0.100', false).join(), /not in eth0's subnet 10\.77\.0\.0\/24/);
  assert.match(linkProblems(links, '10.77.0.11', '10.77.0.255', false).join(), /broadcast address of 10\.77\.0\.0\/24/);
  assert.match(linkProblems(links, '10.77.0.11', '10.77.0.0', false).join(), /network address/);
  assert.match(linkProblems(links, '10.9.9.9', '10.77.0.100', false).join(), /no interface has the address 10\.9\.9\.9/);
  // a host named by DNS: the interface on the address's network
  assert.deepEqual(linkProblems(links, 'lb1.lan', '192.168.200.1', false), []);
  assert.match(linkProblems(links, 'lb1.lan', '172.16.0.1', false).join(), /no interface is on the network of --vip 172\.16\.0\.1/);
  // the address already on the host: fine when our keepalived put it there (a re-run), else someone else uses it
  assert.deepEqual(linkProblems(parseLinks(IP_ADDR), '10.77.0.11', '10.77.0.100', true), []);
  assert.match(linkProblems(parseLinks(IP_ADDR), '10.77.0.11', '10.77.0.100', false).join(), /already has 10\.77\.0\.100 on eth0/);
});

test('the preflight names every holder with a problem, records each holder\'s link, and leaves a port kube-bundle\'s haproxy holds alone', async () => {
  const answer = (own: string, extra = '') => `2: eth0    inet ${own}/24 brd 10.77.0.255 scope global eth0\n${extra}`;
  const h1 = node('10.77.0.11', 'control-plane', 'h1', { answer: answer('10.77.0.11') });
  const h2 = node('10.77.0.12', 'control-plane', 'h2', { answer: answer('10.77.0.12'), listening: [8443] });
  const h3 = node('10.77.0.13', 'control-plane', 'h3', { answer: answer('10.77.0.13', '/etc/haproxy/haproxy.cfg\n'), listening: [8443] });
  const plan = planHa('10.77.0.100', [h1, h2, h3]);
  const problems = await haPreflight({ ha: plan });
  assert.deepEqual(problems, ['h2 (10.77.0.12): port 8443 (haproxy\'s, for the control-plane address) already in use']);
  assert.deepEqual(plan.links.get(h3), { iface: 'eth0', address: '10.77.0.13', prefix: 24 });

  // kube-bundle's config, but someone else holds the port: named; haproxy itself with our config: ours
  const h4 = node('10.77.0.14', 'control-plane', 'h4', { answer: answer('10.77.0.14', '/etc/haproxy/haproxy.cfg\n'), listening: [8443], listeners: [{ port: 8443, process: 'nginx', pid: 77, unit: 'nginx.service' }] });
  const h5 = node('10.77.0.15', 'control-plane', 'h5', { answer: answer('10.77.0.15', '/etc/haproxy/haproxy.cfg\n'), listening: [8443], listeners: [{ port: 8443, process: 'haproxy', pid: 78, unit: 'haproxy.service' }] });
  const h6 = node('10.77.0.16', 'control-plane', 'h6', { answer: answer('10.77.0.16'), listening: [8443], listeners: [{ port: 8443, process: 'haproxy', pid: 79, unit: 'haproxy.service' }] });
  assert.deepEqual(haPreflight({ ha: planHa('10.77.0.100', [h4, h5, h6]) }), [
    'h4 (10.77.0.14): port 8443 (haproxy\'s, for the control-plane address) already in use by nginx (pid 77, nginx.service)',
    'h6 (10.77.0.16): port 8443 (haproxy\'s, for the control-plane address) already in use by haproxy (pid 79, haproxy.service)',
  ]);

  const elsewhere = planHa('10.78.0.100', [h1]);
  assert.match((await haPreflight({ ha: elsewhere })).join(), /^h1 \(10\.77\.0\.11\): --vip 10\.78\.0\.100 is not in eth0's subnet/);
  assert.deepEqual(await haPreflight({}), [], 'nothing to check without --vip');
});

test('the configs count as up to date only once setup-lb.sh recorded that both services were reloaded with them', () => {
  const cmd = upToDateCommand('global\n', 'vrrp\n');
  // what setup-lb.sh writes last, `sha256sum` of both configs, is compared with the configs install renders
  assert.match(cmd, /\| sha256sum --check --status/);
  assert.match(cmd, /\| cmp -s - \/etc\/kube-bundle\/ha\/applied\.sha256 &&/);
  assert.match(cmd, /is-active --quiet haproxy\.service && systemctl is-active --quiet keepalived\.service$/);
});

test('haproxy forwards TCP to every API server, each health-checked', () => {
  const plan = plannedOn([node('10.77.0.11', 'control-plane', 'h1'), node('10.77.0.12', 'control-plane', 'h2')]);
  const cfg = haproxyConfig(plan, [{ name: 'h1', address: '10.77.0.11' }, { name: 'h2', address: '10.77.0.12' }]);
  assert.match(cfg, /^# Written by kube-bundle/, 'reset recognises it');
  assert.match(cfg, /^\s+mode tcp$/m);
  assert.match(cfg, /^\s+bind :8443$/m);
  assert.match(cfg, /^\s+default-server check inter 2s fall 3 rise 2$/m);
  assert.deepEqual(cfg.match(/^\s+server .*$/gm)?.map((l) => l.trim()), ['server h1 10.77.0.11:6443', 'server h2 10.77.0.12:6443']);
  assert.match(cfg, /stats socket \/run\/haproxy\/admin\.sock/);
});

test('a node name that is not valid never reaches haproxy.cfg or keepalived.conf (the preflight refuses it first)', () => {
  const plan = plannedOn([node('10.77.0.11', 'control-plane', 'h1')]);
  assert.throws(() => haproxyConfig(plan, [{ name: 'h1\n    server evil 10.0.0.66', address: '10.77.0.11' }]), /node name "h1\\n {4}server evil 10\.0\.0\.66" reached the haproxy\/keepalived configs unchecked/);
  const bad = plannedOn([node('10.77.0.11', 'control-plane', 'Bad_Host')]);
  assert.throws(() => keepalivedConfig(bad, bad.holders[0]!), /node name 'Bad_Host' reached/);
});

test('keepalived: priorities by host order, unicast to the other holders, the address tracked to haproxy', () => {
  const holders = [node('10.77.0.11', 'control-plane', 'h1'), node('10.77.0.12', 'control-plane', 'h2'), node('10.77.0.13', 'control-plane', 'h3')];
  const plan = plannedOn(holders);
  const [first, second] = [keepalivedConfig(plan, holders[0]!), keepalivedConfig(plan, holders[1]!)];
  const priority = (cfg: string) => Number(/^\s+priority (\d+)$/m.exec(cfg)?.[1]);
  assert.ok(priority(first) > priority(second) && priority(second) > priority(keepalivedConfig(plan, holders[2]!)));
  assert.match(second, /^\s+unicast_src_ip 10\.77\.0\.12$/m);
  assert.deepEqual(/unicast_peer \{\n([^}]*)\}/.exec(second)?.[1]?.trim().split(/\s+/), ['10.77.0.11', '10.77.0.13']);
  assert.match(first, /^\s+10\.77\.0\.100\/32 dev eth0$/m);
  assert.match(first, /^\s+interface eth0$/m);
  assert.match(first, /^\s+virtual_router_id 100$/m);
  assert.match(first, /^\s+state BACKUP\n\s+nopreempt$/m);
  assert.match(first, /script "\/usr\/bin\/systemctl is-active --quiet haproxy\.service"/);
  assert.match(first, /track_script \{\n\s+kube_bundle_haproxy\n/);

  const alone = plannedOn([holders[0]!]);
  assert.doesNotMatch(keepalivedConfig(alone, holders[0]!).replace(/^\s*#.*$/gm, ''), /unicast/, 'keepalived rejects unicast keywords without peers');
  assert.equal(virtualRouterId('10.0.1.0'), 255);
});
