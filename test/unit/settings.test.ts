import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settingsDifferences, type ClusterSettings } from '../../src/core/install/settings.js';

const wanted: ClusterSettings = { kubernetesVersion: 'v1.32.3', runtime: 'containerd', podCidr: '10.244.0.0/16', serviceCidr: '10.96.0.0/12', endpoint: '10.0.0.11:6443', registry: '10.0.0.11:5000' };

test('settings: equal is fine, each difference is named, unknown recorded fields are ignored', () => {
  assert.deepEqual(settingsDifferences(wanted, wanted), []);
  assert.deepEqual(settingsDifferences({ ...wanted, runtime: 'docker', endpoint: '10.0.0.100:8443' }, wanted), [
    'runtime: the cluster has docker, this run asks for containerd',
    'endpoint: the cluster has 10.0.0.100:8443, this run asks for 10.0.0.11:6443',
  ]);
  assert.deepEqual(settingsDifferences({ podCidr: '10.244.0.0/16' }, wanted), [], 'settings a cluster did not record are not compared');
});
