import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PackageIndex, type ScannedRecord } from '../../src/core/apt/index.js';
import { Speculator, type SpeculationPlan } from '../../src/core/builder/speculate.js';

const MAIN = 0;
const SECURITY = 1;
const K8S = 2;

let serial = 0;
/** A record as the scan hands it out (made by the real index code from a stanza). */
function scanned(name: string, version: string, fields: Record<string, string> = {}): ScannedRecord {
  const sha256 = (++serial).toString(16).padStart(64, '0');
  const filename = `pool/${name}_${version}_amd64.deb`;
  const text = Object.entries({ Package: name, Version: version, Architecture: 'amd64', Filename: filename, Size: '100', SHA256: sha256, ...fields })
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
  const record = PackageIndex.build([{ label: 'x', baseUrl: 'https://example.test', packages: text, packagesUrl: 'u' }], 'amd64').candidate(name);
  assert.ok(record);
  return { record, filename, size: 100, sha256 };
}

const PLAN: SpeculationPlan = {
  repos: 3,
  pinned: { names: ['kubeadm', 'kubelet'], versionPrefix: '1.32.3-', repo: K8S },
  roots: [{ name: 'containerd' }, { name: 'runc' }, { name: 'docker.io' }, { name: 'cri-dockerd' }, { name: 'libc6' }, { name: 'pinned-one', version: '2.0-1' }],
  elsewhere: ['cri-dockerd'],
};

function speculator(plan: SpeculationPlan = PLAN): { s: Speculator; fetched: () => string[] } {
  const got: ScannedRecord[] = [];
  return { s: new Speculator(plan, (r) => got.push(r)), fetched: () => got.map((r) => `${r.record.name} ${r.record.version}`) };
}

describe('Speculator', () => {
  it('fetches a root as soon as every other source is complete and has nothing newer', () => {
    const { s, fetched } = speculator();
    s.repoDone(SECURITY);
    s.repoDone(K8S);
    s.record(MAIN, scanned('containerd', '1.6.20-1'));
    assert.deepEqual(fetched(), ['containerd 1.6.20-1'], 'main is still being scanned: its record counts at once');
  });

  it('waits while another source is still being read, and then takes the newest', () => {
    const { s, fetched } = speculator();
    s.record(MAIN, scanned('containerd', '1.6.20-1'));
    s.record(MAIN, scanned('runc', '1.1.5-1'));
    assert.deepEqual(fetched(), []);
    s.record(SECURITY, scanned('containerd', '1.6.20-1+deb12u3'));
    s.repoDone(SECURITY);
    assert.deepEqual(fetched(), [], 'the Kubernetes repository might still have either');
    s.repoDone(K8S);
    assert.deepEqual(fetched(), ['runc 1.1.5-1'], 'main, still being read, is the only one that could have a newer runc');
    s.repoDone(MAIN);
    assert.deepEqual(fetched(), ['runc 1.1.5-1', 'containerd 1.6.20-1+deb12u3'], 'the newer containerd is in security, once main has none newer');
  });

  it('keeps the earlier source on a tie, and never fetches one download twice', () => {
    const { s, fetched } = speculator();
    s.repoDone(K8S);
    const security = scanned('runc', '1.1.5-1');
    s.record(SECURITY, security);
    s.record(MAIN, scanned('runc', '1.1.5-1'));
    s.repoDone(SECURITY);
    s.repoDone(MAIN);
    assert.deepEqual(fetched(), ['runc 1.1.5-1']);
  });

  it('leaves out what the host has, what another source offers, and versions the request does not want', () => {
    const { s, fetched } = speculator();
    s.repoDone(SECURITY);
    s.repoDone(K8S);
    s.record(MAIN, scanned('libc6', '2.36-9', { Priority: 'required' }));
    s.record(MAIN, scanned('docker.io', '20.10.24-1', { Essential: 'yes' }));
    s.record(MAIN, scanned('cri-dockerd', '0.3.16-1'));
    s.record(MAIN, scanned('pinned-one', '3.0-1'));
    s.record(MAIN, scanned('not-asked-for', '1.0'));
    assert.deepEqual(fetched(), []);
    s.record(MAIN, scanned('pinned-one', '2.0-1'));
    assert.deepEqual(fetched(), ['pinned-one 2.0-1']);
  });

  it('takes the pinned Kubernetes packages from their repository alone, the newest of the release, once it is complete', () => {
    const { s, fetched } = speculator();
    s.record(K8S, scanned('kubeadm', '1.32.3-1.1'));
    s.record(K8S, scanned('kubeadm', '1.32.3-1.2'));
    s.record(K8S, scanned('kubeadm', '1.32.30-1.1'));
    s.record(K8S, scanned('kubeadm', '1.32.2-1.1'));
    s.record(MAIN, scanned('kubelet', '1.32.3-9'));
    s.record(K8S, scanned('kubelet', '1.32.3-1.1'));
    assert.deepEqual(fetched(), []);
    s.repoDone(K8S);
    assert.deepEqual(fetched().sort(), ['kubeadm 1.32.3-1.2', 'kubelet 1.32.3-1.1'], 'before Debian main is complete');
  });
});
