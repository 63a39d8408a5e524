// The Worker against what a hostile caller or a careless provider sends: statuses no response
// can carry, spoofable request headers, response headers that would act on the gateway's own
// origin or echo the provider token, public caching, plain-http credentials, paths that decode
// to a step up. Every case is a real request to the built Worker in workerd.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ALL, JSON_HEADERS, start, startEmulators, callerToken, call, raw, sweepTest, source,
} from './worker-lib.mjs';

let emu;
before(async () => { emu = await startEmulators(); });
after(() => emu?.close());
const config = (overrides = {}) => emu.gatewayConfig(overrides);

test('an API status no response can carry (999, 101) is a 502 JSON error; the isolate lives on', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  for (const status of [999, 600]) {
    emu.scriptApi('optoro', [{ status, body: 'odd' }]);
    const r = await call(gw, tok, '/optoro/v1/odd');
    assert.equal(r.status, 502, `${status}: ${r.text}`);
    assert.equal(r.json.error, 'invalid_response');
    assert.match(r.json.error_description, new RegExp(`HTTP status ${status}`));
    assert.equal(r.res.headers.get('content-type'), 'application/json');
  }
  // The same isolate answers the next request from its memory: nothing was torn down.
  const next = await call(gw, tok, '/optoro/v1/after');
  assert.equal(next.status, 200, next.text);
  assert.equal(source(next.timing), 'memory');
});

test('request headers a server could take as the client address, another method or URL never reach the provider', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  emu.reset();
  const spoofed = {
    forwarded: 'for=203.0.113.7;proto=https', 'true-client-ip': '203.0.113.7', 'x-real-ip': '203.0.113.7',
    'x-client-ip': '203.0.113.7', 'x-original-url': '/admin', 'x-rewrite-url': '/admin',
    'x-http-method-override': 'DELETE', 'x-http-method': 'DELETE', 'x-method-override': 'DELETE',
  };
  const r = await raw(gw, { path: '/optoro/v1/items', headers: { authorization: `Bearer ${tok}`, ...spoofed, 'x-kept': 'yes' } });
  assert.equal(r.status, 200, r.text);
  const seen = JSON.parse(r.text).headers;
  for (const name of Object.keys(spoofed)) assert.ok(!(name in seen), `${name} reached the provider`);
  assert.equal(seen['x-kept'], 'yes');
});

test('response headers: none that acts on the gateway origin, none that echoes the provider token, never publicly cacheable', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  const warm = await call(gw, tok, '/optoro/v1/warm');
  assert.equal(warm.status, 200);
  const providerToken = emu.issuedTokens('optoro').at(-1);
  emu.scriptApi('optoro', [{
    status: 200,
    body: 'ok',
    headers: {
      'content-type': 'text/plain', etag: '"v1"', 'alt-svc': 'h3=":443"', 'strict-transport-security': 'max-age=31536000',
      'clear-site-data': '"*"', 'access-control-allow-origin': '*', 'access-control-allow-credentials': 'true',
      'cache-control': 'public, max-age=60, s-maxage=600', 'x-debug-auth': `Bearer ${providerToken}`,
      'x-echo': `token=${providerToken}`,
    },
  }]);
  const r = await call(gw, tok, '/optoro/v1/headers');
  assert.equal(r.status, 200, r.text);
  const h = Object.fromEntries(r.res.headers);
  for (const name of ['alt-svc', 'strict-transport-security', 'clear-site-data', 'access-control-allow-origin',
    'access-control-allow-credentials', 'x-debug-auth', 'x-echo']) {
    assert.ok(!(name in h), `${name} reached the caller`);
  }
  assert.ok(!JSON.stringify(h).includes(providerToken), 'the provider token is in a response header');
  assert.equal(h.etag, '"v1"');
  assert.equal(h['cache-control'], 'private, max-age=60');
  // The emulator's own `no-store` is kept; without any Cache-Control the answer is private.
  assert.equal(warm.res.headers.get('cache-control'), 'no-store');
  emu.scriptApi('optoro', [{ status: 200, body: 'bare', headers: { 'content-type': 'text/plain' } }]);
  const bare = await call(gw, tok, '/optoro/v1/bare');
  assert.equal(bare.res.headers.get('cache-control'), 'private');
});

test('POST /oauth/token over plain http is refused unless it comes from this machine', async (t) => {
  const gw = await start(t, config());
  const body = JSON.stringify({ grant_type: 'client_credentials', client_id: ALL.id, client_secret: ALL.secret });
  const plain = await gw.fetchHttp('/oauth/token', { method: 'POST', headers: JSON_HEADERS, body });
  assert.equal(plain.status, 400);
  const refused = await plain.json();
  assert.equal(refused.error, 'invalid_request');
  assert.match(refused.error_description, /https/);
  // 127.0.0.1 over a real socket (`wrangler dev`, the suites): allowed; https: allowed.
  const local = await raw(gw, { method: 'POST', path: '/oauth/token', headers: { ...JSON_HEADERS, 'content-length': String(body.length) }, body });
  assert.equal(local.status, 200, local.text);
  assert.match((await callerToken(gw)), /^tg_/);
});

test('path segments that decode to a step up, a separator or a control character never reach the provider', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  emu.reset();
  const refused = [
    '/optoro/%252e%252e/admin', '/optoro/%%32e%%32e/admin', '/optoro/a%25b', '/optoro/%C0%AE%C0%AE/admin',
    '/optoro/%EF%BC%8E%EF%BC%8E/admin', '/optoro/%E2%80%A4%E2%80%A4/x', '/optoro/a%EF%BC%8Fb', '/optoro/..%20/x',
    '/optoro/%2e%2e%3b/x', '/optoro/a%7fb', '/optoro/a%FFb',
  ];
  for (const path of refused) {
    const r = await raw(gw, { path, headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.equal(JSON.parse(r.text).error, 'invalid_request');
  }
  assert.equal(emu.apiRequests('optoro').length, 0, 'nothing refused reached the provider');
  // Ordinary segments with dots, percent signs and UTF-8 pass.
  for (const path of ['/optoro/v1/a.b/c..d', '/optoro/v1/100%', '/optoro/v1/caf%C3%A9']) {
    const r = await raw(gw, { path, headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 200, `${path}: ${r.text}`);
  }
});

test('a provider echoing the client secret in JSON escapes: scrubbed once decoded, in the answer and the logs', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  const secret = emu.credentials.optoro.clientSecret;
  const escaped = [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
  const body = `{"error":"invalid_client","error_description":"unknown secret ${escaped}"}`;
  emu.script('optoro', [{ status: 401, body, headers: { 'content-type': 'application/json' } }]);
  const r = await call(gw, tok, '/optoro/v1/x');
  assert.equal(r.status, 502);
  assert.equal(r.json.error, 'invalid_client');
  assert.match(r.json.error_description, /unknown secret \[redacted\]/);
  assert.ok(!r.text.includes(secret));
  // The logs are in the sweep below, with the secret among its needles.
});

sweepTest(() => emu, { minBodies: 8, minLogs: 5 });
