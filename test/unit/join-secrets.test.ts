import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  UPLOADED_CERTS_TTL_MS, formatClusterEnv, parseCertificateKey, parseClusterEnv, parseCreatedToken, planJoinSecrets, tokenId, tokenListed,
} from '../../src/core/install/join-secrets.js';

const TOKEN = 'abcdef.0123456789abcdef';
const KEY = '0123456789abcdef'.repeat(4);
const LIST = `TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION           EXTRA GROUPS
${TOKEN}   23h         2030-01-01T00:00:00Z   authentication,signing   kube-bundle install   system:bootstrappers:kubeadm:default-node-token
`;

describe('cluster.env', () => {
  it('round-trips, with or without a certificate key', () => {
    assert.deepEqual(parseClusterEnv(formatClusterEnv({ token: TOKEN, certificateKey: KEY, certsUploaded: 1234 })), { token: TOKEN, certificateKey: KEY, certsUploaded: 1234 });
    assert.equal(formatClusterEnv({ token: TOKEN, certsUploaded: 0 }), `TOKEN=${TOKEN}\nCERTS_UPLOADED=0\n`);
    assert.deepEqual(parseClusterEnv(`TOKEN=${TOKEN}\nCERTS_UPLOADED=0\n`), { token: TOKEN, certsUploaded: 0 });
  });

  it('an absent file or values in another form read as missing, so that new ones are made', () => {
    assert.deepEqual(parseClusterEnv(''), { certsUploaded: 0 });
    assert.deepEqual(parseClusterEnv('TOKEN=abc\nCERTIFICATE_KEY=XYZ\nCERTS_UPLOADED=soon\n'), { certsUploaded: 0 });
  });
});

describe("kubeadm's answers", () => {
  it('the token ID is the public half; anything else is refused without being quoted', () => {
    assert.equal(tokenId(TOKEN), 'abcdef');
    assert.throws(() => tokenId('abcdef.short'), (e: Error) => !e.message.includes('short'));
  });

  it('token list: a token is listed only by its whole value in the first column', () => {
    assert.equal(tokenListed(LIST, TOKEN), true);
    assert.equal(tokenListed(LIST, 'abcdef.ffffffffffffffff'), false);
    assert.equal(tokenListed('', TOKEN), false);
  });

  it('token create and certs certificate-key: the last line, in its form; an error never quotes the output', () => {
    assert.equal(parseCreatedToken(`${TOKEN}\n`), TOKEN);
    assert.equal(parseCertificateKey(`${KEY}\n`), KEY);
    assert.throws(() => parseCreatedToken('abcdef.0123\n'), (e: Error) => !e.message.includes('abcdef'));
    assert.throws(() => parseCertificateKey('nope'), /printed no certificate key/);
  });
});

describe('what a run with joins must make', () => {
  const now = 10 * UPLOADED_CERTS_TTL_MS;
  it('nothing kept (a finished install removed it): a token, and for control planes a key and its upload', () => {
    assert.deepEqual(planJoinSecrets({ certsUploaded: 0 }, '', false, now), { newToken: true, newCertificateKey: false, uploadCerts: false });
    assert.deepEqual(planJoinSecrets({ certsUploaded: 0 }, '', true, now), { newToken: true, newCertificateKey: true, uploadCerts: true });
  });

  it('kept by a run that stopped before its joins: reused while the token lives and the certificates are fresh', () => {
    const kept = { token: TOKEN, certificateKey: KEY, certsUploaded: now - 60_000 };
    assert.deepEqual(planJoinSecrets(kept, LIST, true, now), { newToken: false, newCertificateKey: false, uploadCerts: false });
    assert.deepEqual(planJoinSecrets(kept, LIST.replace(TOKEN, 'other0.0123456789abcdef'), true, now), { newToken: true, newCertificateKey: false, uploadCerts: false });
    assert.deepEqual(planJoinSecrets({ ...kept, certsUploaded: now - UPLOADED_CERTS_TTL_MS - 1 }, LIST, true, now), { newToken: false, newCertificateKey: false, uploadCerts: true });
    assert.deepEqual(planJoinSecrets({ ...kept, certsUploaded: 0 }, LIST, false, now), { newToken: false, newCertificateKey: false, uploadCerts: false }, 'workers need no certificates');
  });
});
