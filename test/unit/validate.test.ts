import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddresses, preflightProblems, type Facts } from '../../src/core/install/facts.js';
import {
  checkNetworkFlags, cidrsOverlap, formatEndpoint, formatIp, hostNetworkProblems, hostnameProblem, networkFlagProblems, parseCidr, parseEndpoint, parseIp,
  nodeAddressProblems, podCidrRule, serviceCidrRule, type Cidr,
} from '../../src/core/install/validate.js';
import { UserError } from '../../src/util/errors.js';

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  assert.ok(!('problem' in c), `${text}: ${'problem' in c ? c.problem : ''}`);
  return c;
}

function problemOf(text: string): string {
  const c = parseCidr(text);
  assert.ok('problem' in c, `accepted ${text}`);
  return c.problem;
}

const DEFAULTS = { podCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12' };

test('IP addresses: IPv4 and IPv6 (compressed, embedded IPv4) parse; zone ids and junk do not; IPv6 prints per RFC 5952', () => {
  assert.deepEqual(parseIp('10.0.0.1'), { family: 4, value: 0x0a000001n });
  assert.equal(parseIp('::ffff:10.0.0.1')?.value, 0xffff0a000001n);
  assert.equal(parseIp('FD00::1')?.value, (0xfd00n << 112n) | 1n);
  assert.equal(parseIp('::')?.value, 0n);
  for (const bad of ['10.0.0.256', '010.0.0.1', 'fe80::1%eth0', 'fd00:::1', 'host', '', '1.2.3']) assert.equal(parseIp(bad), undefined, bad);
  for (const text of ['fd00::', '::1', '2001:db8::1:0:0:1', 'fd00:0:1::', '1:2:3:4:5:6:7:8', '10.0.0.1']) assert.equal(formatIp(parseIp(text)!), text, text);
  assert.equal(formatIp(parseIp('fd00:0:0:0:0:0:0:0')!), 'fd00::');
});

test('a CIDR is one network address with its host bits zero and a prefix that fits the address', () => {
  assert.equal(cidr('10.244.0.0/16').text, '10.244.0.0/16');
  assert.equal(cidr('FD00:0::/108').text, 'fd00::/108', 'IPv6 in canonical form');
  assert.match(problemOf('10.244.1.0/16'), /^host bits are set: the network is 10\.244\.0\.0\/16$/);
  assert.match(problemOf('fd00::1/64'), /host bits are set: the network is fd00::\/64/);
  assert.match(problemOf('10.244.0.0/33'), /prefix \/33 is longer than an IPv4 address \(32 bits\)/);
  assert.match(problemOf('fd00::/129'), /prefix \/129 is longer than an IPv6 address/);
  assert.match(problemOf('10.244.0.0/16,fd00::/56'), /one CIDR only/);
  for (const bad of ['10.244.0.0', '10.244.0.0/', '10.244.0.0/016', '10.244.0.0/-1', '/16', 'ten/8', '10.244.0.0/16 ', '10.244.0.0/16"\nkind: X']) {
    assert.match(problemOf(bad), /not a CIDR/, JSON.stringify(bad));
  }
});

test("pod network: kubeadm's ValidatePodSubnetNodeMask with node masks /24 and /64 and at most 16 bits between", () => {
  for (const ok of ['10.244.0.0/24', '10.244.0.0/16', '10.0.0.0/8', 'fd00::/64', 'fd00::/48']) assert.equal(podCidrRule(cidr(ok)), undefined, ok);
  assert.match(podCidrRule(cidr('10.244.0.0/25'))!, /IPv4 pod network's prefix must be \/8 to \/24 .*every node gets a \/24/);
  assert.match(podCidrRule(cidr('10.0.0.0/7'))!, /must be \/8 to \/24 .*differ by at most 16/);
  assert.match(podCidrRule(cidr('fd00::/65'))!, /IPv6 pod network's prefix must be \/48 to \/64/);
  assert.match(podCidrRule(cidr('fd00::/47'))!, /\/48 to \/64/);
});

test("service network: kubeadm's ValidateServiceSubnetSize (at most 2^20 addresses) and its minimum of 10 addresses", () => {
  for (const ok of ['10.96.0.0/12', '10.96.0.0/28', 'fd00::/108', 'fd00::/124']) assert.equal(serviceCidrRule(cidr(ok)), undefined, ok);
  assert.match(serviceCidrRule(cidr('10.0.0.0/11'))!, /IPv4 service network's prefix must be \/12 to \/28 .*at most 2\^20/);
  assert.match(serviceCidrRule(cidr('10.96.0.0/29'))!, /\/12 to \/28 .*at least 10/);
  assert.match(serviceCidrRule(cidr('fd00::/107'))!, /IPv6 service network's prefix must be \/108 to \/124/);
  assert.match(serviceCidrRule(cidr('fd00::/125'))!, /\/108 to \/124/);
});

test('overlap: either network containing the other; different families never overlap', () => {
  assert.ok(cidrsOverlap(cidr('10.96.0.0/12'), cidr('10.100.0.0/16')));
  assert.ok(cidrsOverlap(cidr('10.100.0.0/16'), cidr('10.96.0.0/12')));
  assert.ok(!cidrsOverlap(cidr('10.244.0.0/16'), cidr('10.96.0.0/12')));
  assert.ok(!cidrsOverlap(cidr('0.0.0.0/8'), cidr('::/8')));
});

test('the control-plane endpoint is host[:port]: a DNS name, IPv4 or [IPv6], and a port 1-65535', () => {
  assert.equal(formatEndpoint(parseEndpoint('api.lan') as never), 'api.lan:6443');
  assert.equal(formatEndpoint(parseEndpoint('API.example.lan:443') as never), 'API.example.lan:443');
  assert.equal(formatEndpoint(parseEndpoint('10.0.0.10:8443') as never), '10.0.0.10:8443');
  assert.equal(formatEndpoint(parseEndpoint('[fd00::10]') as never), '[fd00::10]:6443');
  assert.equal(formatEndpoint(parseEndpoint('[fd00::10]:65535') as never), '[fd00::10]:65535');
  assert.equal(formatEndpoint(parseEndpoint('cafe') as never), 'cafe:6443', 'a name of hex letters is a name, not IPv6');
  assert.equal(formatEndpoint(parseEndpoint('cafe:6443') as never), 'cafe:6443');
  const problem = (text: string) => {
    const e = parseEndpoint(text);
    assert.ok('problem' in e, `accepted ${JSON.stringify(text)}`);
    return e.problem;
  };
  assert.match(problem('fd00::10'), /IPv6 address needs brackets: \[fd00::10\] or \[fd00::10\]:6443/);
  for (const port of ['0', '65536', '', '+1', '6443 ', '1e3']) assert.match(problem(`api.lan:${port}`), /port must be a number 1-65535/, port);
  for (const bad of ['', ':6443', 'api lan', 'api_lan', '-api.lan', 'api.lan.', '10.0.0.256', '[10.0.0.1]:6443', '[api.lan]', 'a:b:c', '[fd00::1]:1:2', 'https://api.lan', 'api.lan"\nkind: X']) {
    assert.match(problem(bad), /not host\[:port\]: a DNS name \(RFC 1123\), an IPv4 address or a bracketed IPv6 address/, JSON.stringify(bad));
  }
});

test('the install flags: the defaults pass; each bad value is one line naming the flag, the value and the rule', () => {
  assert.deepEqual(checkNetworkFlags(DEFAULTS), { ...DEFAULTS, controlPlaneEndpoint: undefined, vip: undefined });
  assert.deepEqual(checkNetworkFlags({ ...DEFAULTS, controlPlaneEndpoint: 'api.lan', vip: '10.0.0.10' }), { ...DEFAULTS, controlPlaneEndpoint: 'api.lan:6443', vip: '10.0.0.10' });
  const lines = (flags: Partial<typeof DEFAULTS> & { controlPlaneEndpoint?: string; vip?: string }) => networkFlagProblems({ ...DEFAULTS, ...flags }).problems;
  assert.deepEqual(lines({ podCidr: '10.244.0.0/25' }), ["--pod-cidr '10.244.0.0/25': an IPv4 pod network's prefix must be /8 to /24 (kubeadm: every node gets a /24 of it, and the two masks may differ by at most 16)"]);
  assert.deepEqual(lines({ serviceCidr: '172.0.0.0/8' }), ["--service-cidr '172.0.0.0/8': an IPv4 service network's prefix must be /12 to /28 (kubeadm: at most 2^20 service addresses, and at least 10: the cluster DNS service is the 10th)"]);
  assert.match(lines({ podCidr: 'fd00::/56' })[0]!, /^--pod-cidr 'fd00::\/56': must be an IPv4 network: it becomes flannel's Network/);
  assert.match(lines({ serviceCidr: 'fd00::/112' })[0]!, /^--service-cidr 'fd00::\/112': must be an IPv4 network like --pod-cidr/);
  assert.deepEqual(lines({ podCidr: '10.96.0.0/16' }), ["--pod-cidr '10.96.0.0/16' and --service-cidr '10.96.0.0/12' overlap: pod and service addresses must be distinct"]);
  assert.match(lines({ controlPlaneEndpoint: '10.244.3.1:6443' })[0]!, /^--control-plane-endpoint '10\.244\.3\.1:6443': inside --pod-cidr 10\.244\.0\.0\/16/);
  assert.match(lines({ vip: '10.96.0.10' })[0]!, /^--vip '10\.96\.0\.10': inside --service-cidr 10\.96\.0\.0\/12/);
  assert.match(lines({ vip: 'fd00::10' })[0]!, /^--vip 'fd00::10': not an IPv4 address/);
  assert.match(lines({ controlPlaneEndpoint: 'api.lan:99999' })[0]!, /^--control-plane-endpoint 'api\.lan:99999': the port must be a number 1-65535/);
  // several bad values: a line each
  assert.equal(lines({ podCidr: '10.0.0.0/7', serviceCidr: '10.96.0.1/12', controlPlaneEndpoint: 'a b', vip: 'x' }).length, 4);
});

test('a value with a quote and a newline is reported on one line, escaped, and never returned', () => {
  const evil = '10.244.0.0/16"\nkind: Evil';
  const { problems, checked } = networkFlagProblems({ ...DEFAULTS, podCidr: evil, controlPlaneEndpoint: 'api.lan"\n  x: y' });
  assert.equal(checked, undefined);
  assert.equal(problems.length, 2);
  for (const p of problems) assert.ok(!p.includes('\n'), p);
  assert.equal(problems[0], '--pod-cidr "10.244.0.0/16\\"\\nkind: Evil": not a CIDR: an IPv4 or IPv6 network address, "/" and a prefix length, e.g. 10.244.0.0/16');
  assert.throws(() => checkNetworkFlags({ ...DEFAULTS, podCidr: evil }), (err: unknown) => err instanceof UserError && err.exitCode === 2 && !err.message.includes('\n'));
  assert.throws(() => checkNetworkFlags({ ...DEFAULTS, podCidr: evil, serviceCidr: 'x' }), /^UserError: 2 bad values:\n {2}--pod-cidr .*\n {2}--service-cidr 'x': not a CIDR/);
});

test("a host's own hostname becomes its node name only when it is a lowercase RFC 1123 subdomain (after lowercasing)", () => {
  assert.equal(hostnameProblem('node-1.rack2', 'node-1.rack2'), undefined);
  assert.equal(hostnameProblem('web01', 'WEB01'), undefined, 'the kubelet lowercases it too');
  assert.equal(hostnameProblem('cp1', 'Bad_Name'), undefined, 'a name= from the hosts file wins');
  const p = hostnameProblem('web_01', 'web_01')!;
  assert.equal(p, "reports hostname 'web_01', which is not a valid Kubernetes node name (a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.'; labels of 1 to 63 that start and end with a letter or digit; at most 253 in all): set name= for this host in the hosts file");
  assert.match(hostnameProblem('', '')!, /reports hostname '', which is not a valid/);
  assert.match(hostnameProblem('a'.repeat(64), 'a'.repeat(64))!, /not a valid/);
  const evil = hostnameProblem('h1"\nkind: x', 'h1"\nkind: x')!;
  assert.ok(!evil.includes('\n') && evil.includes('"h1\\"\\nkind: x"'), evil);
});

test("preflight: the hosts' addresses (hosts file and interfaces) must not be in the pod or service network", () => {
  assert.deepEqual(hostNetworkProblems('10.0.0.11', [{ iface: 'eth0', address: '10.0.0.11', prefix: 24 }], DEFAULTS), []);
  assert.deepEqual(hostNetworkProblems('10.244.7.11', [], DEFAULTS), ["its address 10.244.7.11 (hosts file) is inside --pod-cidr 10.244.0.0/16: pod and service networks must not hold the hosts' addresses (choose another --pod-cidr)"]);
  assert.deepEqual(hostNetworkProblems('node1.lan', [{ iface: 'eth1', address: '10.100.0.5', prefix: 16 }], DEFAULTS), [
    "eth1's address 10.100.0.5 is inside --service-cidr 10.96.0.0/12: pod and service networks must not hold the hosts' addresses (choose another --service-cidr)",
  ]);
  // what the cluster itself puts there on a host already installed is not in the way
  const installed = ['cni0', 'flannel.1', 'kube-ipvs0', 'lo'].map((iface) => ({ iface, address: '10.244.0.1', prefix: 24 }));
  assert.deepEqual(hostNetworkProblems('10.0.0.11', installed, DEFAULTS), []);
  assert.deepEqual(hostNetworkProblems('fd00::11', [{ iface: 'eth0', address: 'fe80::1', prefix: 64 }], DEFAULTS), []);
});

test('facts: interface addresses from `ip -o addr show`', () => {
  assert.deepEqual(parseAddresses(['lo=127.0.0.1/8', 'eth0@if12=10.0.0.11/24', 'eth0=fe80::1/64', 'junk']), [
    { iface: 'lo', address: '127.0.0.1', prefix: 8 },
    { iface: 'eth0', address: '10.0.0.11', prefix: 24 },
    { iface: 'eth0', address: 'fe80::1', prefix: 64 },
  ]);
});

test('preflightProblems names the host, the value and the rule, for a bad hostname and an address in a network', () => {
  const facts = (hostname: string, addresses: Facts['addresses'] = []): Facts => ({
    osId: 'debian', osIdLike: [], osVersion: '12', arch: 'amd64', hostname, machineId: hostname, clockSkewSeconds: 0, cpus: 4, memoryMiB: 4096, freeMiB: 100_000,
    listening: [], kubeletInstalled: false, clusterConfigured: false, containerdVersion: undefined, dockerRunning: false, journal: [], addresses,
    listeners: [], clusterSettings: false, ours: { registryConfigured: false, registryActive: false, haproxyConfigured: false, keepalivedConfigured: false },
  });
  const req = { targetOs: 'debian', targetVersion: '12', arches: ['amd64'], bundleMiB: 100, registryPort: 5000, registryLabel: 'cp1 (10.0.0.11)', ...DEFAULTS };
  const problems = preflightProblems(
    [
      { label: 'cp1 (10.0.0.11)', role: 'control-plane', facts: facts('cp1'), nodeName: 'cp1', address: '10.0.0.11' },
      { label: '10.0.0.12', role: 'worker', facts: facts('Worker_2'), nodeName: 'worker_2', address: '10.0.0.12' },
      { label: 'w3 (10.0.0.13)', role: 'worker', facts: facts('w3', [{ iface: 'eth1', address: '10.96.0.9', prefix: 24 }]), nodeName: 'w3', address: '10.0.0.13' },
    ],
    req,
  );
  assert.deepEqual(problems, [
    "10.0.0.12: reports hostname 'Worker_2', which is not a valid Kubernetes node name (a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.'; labels of 1 to 63 that start and end with a letter or digit; at most 253 in all): set name= for this host in the hosts file",
    "w3 (10.0.0.13): eth1's address 10.96.0.9 is inside --service-cidr 10.96.0.0/12: pod and service networks must not hold the hosts' addresses (choose another --service-cidr)",
  ]);
});

test("a node's address must be an IP on one of its interfaces; a DNS name must resolve on the host; no default route is no problem", () => {
  const interfaces = [
    { iface: 'lo', address: '127.0.0.1', prefix: 8 },
    { iface: 'eth0', address: '192.168.10.5', prefix: 24 },
    { iface: 'eth1', address: '10.77.0.11', prefix: 24 },
  ];
  // a host with two NICs listed by its cluster-network address: fine (whatever holds the default route, if any)
  assert.deepEqual(nodeAddressProblems({ label: 'h1', address: '10.77.0.11', ip: '10.77.0.11', interfaces }), []);
  const elsewhere = nodeAddressProblems({ label: 'h1', address: '10.77.0.99', ip: '10.77.0.99', interfaces });
  assert.deepEqual(elsewhere, ['h1: its address 10.77.0.99 is on none of its interfaces (eth0 192.168.10.5/24, eth1 10.77.0.11/24): list the host by the address it has on the cluster network']);
  const unresolved = nodeAddressProblems({ label: 'node7', address: 'node7.lan', ip: '', interfaces });
  assert.match(unresolved[0]!, /^node7: 'node7\.lan' \(hosts file\) does not resolve to an IPv4 address on the host \(getent ahostsv4\): list the host by its address/);
  // a host whose interfaces are unknown (no `ip` there) is not refused for it
  assert.deepEqual(nodeAddressProblems({ label: 'h1', address: '10.77.0.11', ip: '10.77.0.11', interfaces: [] }), []);
});
