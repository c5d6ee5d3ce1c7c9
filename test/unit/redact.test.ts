import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactUrl, redactUrls } from '../../src/util/redact.js';

test('a URL loses its user info, query and fragment, and says something was there', () => {
  assert.equal(redactUrl('https://user:pa55@mirror.example:8443/k8s/deb/InRelease'), 'https://***@mirror.example:8443/k8s/deb/InRelease');
  assert.equal(redactUrl(new URL('https://cdn.example/asset/1?X-Amz-Signature=abc&x=1#frag')), 'https://cdn.example/asset/1?***');
  assert.equal(redactUrl('http://token@host/p?access_token=t0k#x'), 'http://***@host/p?***');
  // a password holding '@' (percent-encoding forgotten) is hidden up to the last '@' of the authority
  assert.equal(redactUrl('https://me:p@ss@host/x'), 'https://***@host/x');
  // nothing to hide: unchanged
  assert.equal(redactUrl('https://pkgs.k8s.io/core:/stable:/v1.32/deb/'), 'https://pkgs.k8s.io/core:/stable:/v1.32/deb/');
});

test('every URL in a text, and a --mirror flag quoted whole', () => {
  assert.equal(
    redactUrls("download of x from http://u:secret@10.0.0.5/x failed: connect ECONNREFUSED (at https://cdn/y?sig=1)"),
    'download of x from http://***@10.0.0.5/x failed: connect ECONNREFUSED (at https://cdn/y?***)',
  );
  assert.equal(redactUrls('https://pkgs.k8s.io=http://u:secret@10.0.0.5:8081/k8s'), 'https://pkgs.k8s.io=http://***@10.0.0.5:8081/k8s');
  assert.equal(redactUrls("'http://a:b@x/p' and 'http://c:d@y/q'"), "'http://***@x/p' and 'http://***@y/q'");
  assert.equal(redactUrls('no URL here: user:pass@host'), 'no URL here: user:pass@host');
});
