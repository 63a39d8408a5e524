// The Worker against what a hostile caller or a careless provider sends: statuses no response
// can carry, spoofable request headers, response headers that would act on the gateway's own
// origin or echo the provider token, public caching, plain-http credentials, paths that decode
// to a step up. Every case is a real request to the built Worker in workerd.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  ALL, JSON_HEADERS, clock, tempDir, start, startEmulators, callerToken, call, raw, sweepTest, source,
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
  assert.match((await callerToken(gw)), /^tgt_/);
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

test('a long Retry-After from the token endpoint pauses every isolate; a valid token in KV is still served', async (t) => {
  const dir = tempDir(t);
  const key = crypto.randomBytes(32).toString('base64');
  const gwA = await start(t, { ...config(), kvPersist: dir, key });
  const tokA = await callerToken(gwA);
  // optimum's token is fetched (and put in KV) before trouble starts.
  assert.equal((await call(gwA, tokA, '/optimum/x')).status, 200);
  emu.reset();
  emu.script('optoro', [{ status: 429, headers: { 'retry-after': '120' }, body: { error: 'slow_down' } }]);
  const first = await call(gwA, tokA, '/optoro/v1/x');
  assert.equal(first.status, 502);
  assert.equal(first.json.error, 'rate_limited');
  // Within the pause: 503 with the rest of it, the provider not asked, in this isolate and in
  // a fresh one of the same deployment.
  clock.advance(20_000);
  const gwB = await start(t, { ...config(), kvPersist: dir, key });
  for (const gw of [gwA, gwB]) {
    const r = await call(gw, await callerToken(gw), '/optoro/v1/x');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error, 'temporarily_unavailable');
    const wait = Number(r.res.headers.get('retry-after'));
    assert.ok(wait >= 99 && wait <= 101, String(wait));
  }
  assert.equal(emu.exchanges('optoro'), 1, 'one exchange: the one that was told to wait');
  // optimum's token, valid in KV, is served by the fresh isolate all along.
  const o = await call(gwB, await callerToken(gwB), '/optimum/x');
  assert.equal(o.status, 200);
  assert.equal(source(o.timing), 'kv');
  // After the pause the provider is asked again.
  clock.advance(101_000);
  const after = await call(gwA, tokA, '/optoro/v1/x');
  assert.equal(after.status, 200, after.text);
  assert.equal(emu.exchanges('optoro'), 2);
});

test('a failing token endpoint opens the circuit: 503 without calling it, then one probe', async (t) => {
  const gw = await start(t, config({ partner: { retry: { max_attempts: 1, base_delay_ms: 1, max_delay_ms: 5 } } }));
  const tok = await callerToken(gw);
  emu.reset();
  emu.script('partner', [{ status: 502 }, { status: 502 }, { status: 502 }]);
  for (let i = 0; i < 3; i++) assert.equal((await call(gw, tok, '/partner/x')).status, 502);
  const open = await call(gw, tok, '/partner/x');
  assert.equal(open.status, 503);
  assert.equal(open.json.error, 'temporarily_unavailable');
  assert.equal(emu.exchanges('partner'), 3, 'not called while open');
  clock.advance(31_000); // past the 30 s (the isolate's clock may run a few ms behind)
  const probe = await call(gw, tok, '/partner/x');
  assert.equal(probe.status, 200, probe.text);
  assert.equal(emu.exchanges('partner'), 4);
});

test('a body of unknown length is counted as it streams: 413 past max_body_bytes, never buffered whole', async (t) => {
  const MiB = 1024 * 1024;
  const gw = await start(t, { ...config(), vars: { max_body_bytes: 3 * MiB } });
  const tok = await callerToken(gw);
  /** A chunked upload (no Content-Length) of `size` random bytes, 64 KiB at a time. */
  const upload = (size) => {
    const bytes = crypto.randomBytes(size);
    let at = 0;
    const body = new ReadableStream({
      pull(c) {
        if (at >= size) return c.close();
        c.enqueue(bytes.subarray(at, at + 64 * 1024));
        at += 64 * 1024;
      },
    });
    return { bytes, body };
  };
  const send = (body) => call(gw, tok, '/optoro/v1/upload', { method: 'PUT', body, duplex: 'half' });
  emu.reset();
  // Up to 1 MiB: buffered (and replayable); up to the limit: streamed, byte-exact.
  for (const size of [200 * 1024, 2 * MiB]) {
    const { bytes, body } = upload(size);
    const r = await send(body);
    assert.equal(r.status, 200, r.text);
    // The API's echo: what arrived, byte for byte.
    assert.equal(r.json.bodyBytes, size);
    assert.equal(r.json.bodySha256, crypto.createHash('sha256').update(bytes).digest('hex'));
  }
  // Only up to 1 MiB is held: a longer chunked body is streamed, so a 401 to it is returned
  // as it is rather than replayed (a buffered body would have been sent twice).
  emu.scriptApi('optoro', [{ status: 401, body: { error: 'invalid_token' } }]);
  const streamed = await send(upload(2 * MiB).body);
  assert.equal(streamed.status, 401, streamed.text);
  const small = upload(100 * 1024);
  emu.scriptApi('optoro', [{ status: 401, body: { error: 'invalid_token' } }]);
  clock.advance(31_000); // past the 401 refresh window of the 401 above
  const replayed = await send(small.body);
  assert.equal(replayed.status, 200, 'a buffered body is replayed after a 401');
  assert.equal(replayed.json.bodyBytes, 100 * 1024);
  // Past the limit: 413, and the provider never got the whole body.
  const before = emu.apiRequests('optoro').length;
  const over = await send(upload(5 * MiB).body);
  assert.equal(over.status, 413, over.text);
  assert.equal(over.json.error, 'request_too_large');
  // The upstream request was torn down part way, not ended as if complete.
  const got = emu.apiRequests('optoro').slice(before);
  assert.deepEqual(got, [], 'the provider received a (truncated) request as complete');
  // The isolate goes on serving.
  assert.equal((await call(gw, tok, '/optoro/v1/after')).status, 200);
});

test('log_level: warn keeps refusals and errors, drops the line per request and the start-up coordination line; a bad value is a config error', async (t) => {
  const gw = await start(t, { ...config(), vars: { log_level: 'warn' } });
  const tok = await callerToken(gw);
  assert.equal((await call(gw, tok, '/optoro/v1/ok')).status, 200);
  emu.scriptApi('optoro', [{ status: 999 }]);
  assert.equal((await call(gw, tok, '/optoro/v1/odd')).status, 502);
  await gw.fetch('/oauth/token', {
    method: 'POST', headers: JSON_HEADERS,
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'x' }),
  });
  await gw.settleLogs(50);
  const events = gw.jsonLogs().map((l) => l.event);
  // Routine lines, the configured coordination among them, are info.
  for (const quiet of ['proxy', 'token_issued', 'coordination']) assert.ok(!events.includes(quiet), `${quiet} logged at warn`);
  for (const loud of ['caller_auth_failed', 'proxy_error']) assert.ok(events.includes(loud), `${loud} missing: ${events}`);
  const bad = await start(t, { ...config(), vars: { log_level: 'verbose' } });
  const res = await bad.fetch('/healthz');
  assert.equal(res.status, 500);
  assert.equal((await res.json()).key, 'log_level');
});

sweepTest(() => emu, { minBodies: 8, minLogs: 5 });
