// Worker tests, hardening: methods that must not be forwarded, methods that must be forwarded
// verbatim, bounded token-request bodies, callers removed or narrowed after their token was
// issued, path-parameter dot segments, Retry-After on a rate-limited exchange, and the body-limit
// bounds.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  ALL, JSON_HEADERS, rand, tempDir, startEmulators, start, callerToken, call, raw, sweepTest,
} from './worker-lib.mjs';
import { BUILD_DIR, DEPLOYED_BUILD_DIR, makeClock } from './support/gateway.mjs';

let emu;
before(async () => { emu = await startEmulators(); });
after(() => emu?.close());
const config = (overrides = {}) => emu.gatewayConfig(overrides);

test('TRACE, TRACK and CONNECT are refused; other methods are forwarded verbatim', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  emu.reset();
  const trace = await raw(gw, { method: 'TRACE', path: '/optoro/v1/x', headers: { authorization: `Bearer ${tok}` } });
  assert.equal(trace.status, 405);
  assert.equal(JSON.parse(trace.text).error, 'invalid_request');
  assert.match(trace.headers.allow, /GET/);
  // workerd itself answers TRACK with 501; either way it goes nowhere.
  const track = await raw(gw, { method: 'TRACK', path: '/optoro/v1/x', headers: { authorization: `Bearer ${tok}` } });
  assert.ok([405, 501].includes(track.status), String(track.status));
  assert.equal(emu.apiRequests('optoro').length, 0, 'nothing refused reached the provider');

  const body = '<propfind xmlns="DAV:"><allprop/></propfind>';
  const r = await raw(gw, {
    method: 'PROPFIND', path: '/optoro/v1/dav', body,
    headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/xml', 'content-length': String(body.length) },
  });
  assert.equal(r.status, 200, r.text);
  const seen = emu.apiRequests('optoro').at(-1);
  assert.equal(seen.method, 'PROPFIND');
  assert.equal(seen.body, body);
});

test('POST /oauth/token reads at most 16 KiB', async (t) => {
  const gw = await start(t, config());
  const big = JSON.stringify({ grant_type: 'client_credentials', client_id: ALL.id, client_secret: 'x'.repeat(20_000) });
  const declared = await gw.fetch('/oauth/token', {
    method: 'POST', body: big, headers: { ...JSON_HEADERS, 'content-length': String(big.length) },
  });
  assert.equal(declared.status, 413);
  // No Content-Length (a stream): counted while read.
  const stream = new ReadableStream({
    start(c) { for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode('x'.repeat(1024))); c.close(); },
  });
  const chunked = await gw.fetch('/oauth/token', { method: 'POST', body: stream, duplex: 'half', headers: JSON_HEADERS });
  assert.equal(chunked.status, 413);
  assert.equal((await chunked.json()).error, 'invalid_request');
  assert.equal((await callerToken(gw)).startsWith('tgt_'), true, 'a normal request still works');
});

test('a caller removed or narrowed after issue loses access at once', async (t) => {
  const dir = tempDir(t);
  const key = crypto.randomBytes(32).toString('base64'); // one deployment: one TOKENGATE_KEY
  const b = { secret: `b-${rand()}`, scopes: ['optoro', 'partner'] };
  const everyone = { [ALL.id]: { secret: ALL.secret, scopes: ALL.scopes } };
  const gw1 = await start(t, { ...config(), kvPersist: dir, key, clients: { ...everyone, b } });
  const tok = await callerToken(gw1, 'b', b.secret);
  assert.equal((await call(gw1, tok, '/optoro/v1/x')).status, 200);

  const narrowed = await start(t, { ...config(), kvPersist: dir, key, clients: { ...everyone, b: { ...b, scopes: ['partner'] } } });
  const f = await call(narrowed, tok, '/optoro/v1/x');
  assert.equal(f.status, 403);
  assert.equal(f.json.error, 'insufficient_scope');
  assert.equal((await call(narrowed, tok, '/partner/x')).status, 200);

  const removed = await start(t, { ...config(), kvPersist: dir, key, clients: everyone });
  const g = await call(removed, tok, '/partner/x');
  assert.equal(g.status, 401);
  assert.equal(g.json.error, 'invalid_token');
});

test('dot segments with path parameters never reach the provider', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  emu.reset();
  for (const path of ['/optoro/..;/admin', '/optoro/v1/..;/..;/x', '/optoro/%2e%2e;x/y', '/optoro/a%00b']) {
    const r = await raw(gw, { path, headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
  }
  assert.equal(emu.apiRequests('optoro').length, 0);
});

test('a rate-limited exchange answers 502 rate_limited with the provider\'s Retry-After', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  emu.script('optoro', [{ status: 429, headers: { 'retry-after': '120' }, body: { error: 'slow_down' } }]);
  const r = await call(gw, tok, '/optoro/v1/x');
  assert.equal(r.status, 502);
  assert.equal(r.json.error, 'rate_limited');
  assert.equal(r.res.headers.get('retry-after'), '120');
});

test('max_body_bytes above the Workers request limit is a config error', async (t) => {
  const gw = await start(t, { ...config(), vars: { max_body_bytes: 200 * 1024 * 1024 } });
  const res = await gw.fetch('/healthz');
  assert.equal(res.status, 500);
  const body = await res.json();
  assert.equal(body.key, 'max_body_bytes');
  assert.match(body.error_description, /104857600/);
});

test('only the test build reads TOKENGATE_CLOCK; the deployed build keeps real time', async (t) => {
  for (const [buildDir, honoured] of [[BUILD_DIR, true], [DEPLOYED_BUILD_DIR, false]]) {
    const testClock = makeClock(Date.now());
    const gw = await start(t, { ...config(), buildDir, clock: testClock });
    const tok = await callerToken(gw);
    assert.equal(testClock.reads > 0, honoured, `${buildDir}: clock read`);
    // Two hours later by the bound clock: past the caller token's 1 h lifetime.
    testClock.advance(2 * 3600 * 1000);
    const r = await call(gw, tok, '/optoro/v1/rmas');
    assert.equal(r.status, honoured ? 401 : 200, `${buildDir}: ${r.text}`);
  }
});

sweepTest(() => emu, { minBodies: 5, minLogs: 5 });
