// Worker tests, the provider token cache: exchange, memory, KV, single-flight, token-endpoint
// retries and cooldown, API 401 replay, expiry. The proxy route is tested in
// worker-proxy.test.mjs, the gateway's own token endpoint in worker-endpoint.test.mjs, hardening
// in worker-hardening.test.mjs; the harness is worker-lib.mjs.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  clock, FAST_RETRY, rand, defer, tempDir, startEmulators, start, callerToken, call, raw, source, ptokKeys, sweepTest,
} from './worker-lib.mjs';

let emu;
before(async () => { emu = await startEmulators(); });
after(() => emu?.close());
/** TOKENGATE_PROVIDERS + secrets for the emulators, with per-provider overrides. */
const config = (overrides = {}) => emu.gatewayConfig(overrides);

test('exchange, then memory hit', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  const before = emu.exchanges('optoro');
  const a = await call(gw, tok, '/optoro/v1/rmas?page=2');
  assert.equal(a.status, 200, a.text);
  assert.equal(source(a.timing), 'exchange');
  assert.match(a.timing, /exchange;dur=\d+/);
  assert.equal(a.json.path, '/optoro/api/v1/rmas');
  assert.equal(a.json.query, 'page=2');
  const bearer = a.json.headers.authorization.replace(/^Bearer /, '');
  assert.ok(emu.isValidToken('optoro', bearer));
  const b = await call(gw, tok, '/optoro/v1/rmas');
  assert.equal(b.status, 200);
  assert.equal(source(b.timing), 'memory');
  assert.equal(b.json.headers.authorization, `Bearer ${bearer}`);
  assert.equal(emu.exchanges('optoro') - before, 1);
  // Each provider speaks its own dialect (the emulators enforce the provider's documentation,
  // docs/providers.md).
  for (const p of ['optimum', 'partner']) {
    const r = await call(gw, tok, `/${p}/v1/x`);
    assert.equal(r.status, 200, `${p}: ${r.text}`);
    assert.equal(source(r.timing), 'exchange');
  }
  const logs = gw.jsonLogs();
  assert.ok(logs.some((l) => l.event === 'token_exchange' && l.provider === 'optoro' && l.ok === true));
  assert.ok(logs.some((l) => l.event === 'proxy' && l.token_source === 'memory'));
});

test('KV hit from a fresh instance on the same storage; a rotated key is only a miss', async (t) => {
  const dir = tempDir(t);
  const key = crypto.randomBytes(32).toString('base64');
  const gwA = await start(t, { ...config(), kvPersist: dir, key });
  const tokA = await callerToken(gwA);
  const before = emu.exchanges('partner');
  assert.equal(source((await call(gwA, tokA, '/partner/bookings')).timing), 'exchange');
  const keys = await ptokKeys(gwA);
  assert.equal(keys.length, 1);
  assert.match(keys[0], /^tg:v2:ptok:[0-9a-f]{64}$/);
  const sealed = await gwA.kv.get(keys[0]);
  for (const tok of emu.issuedTokens('partner')) assert.ok(!sealed.includes(tok), 'KV value is sealed');

  const gwB = await start(t, { ...config(), kvPersist: dir, key });
  const tokB = await callerToken(gwB);
  const b1 = await call(gwB, tokB, '/partner/bookings');
  assert.equal(b1.status, 200, b1.text);
  assert.equal(source(b1.timing), 'kv');
  assert.equal(source((await call(gwB, tokB, '/partner/bookings')).timing), 'memory');
  assert.equal(emu.exchanges('partner') - before, 1, 'no new exchange');

  const gwC = await start(t, { ...config(), kvPersist: dir }); // another TOKENGATE_KEY
  const c1 = await call(gwC, await callerToken(gwC), '/partner/bookings');
  assert.equal(c1.status, 200, c1.text);
  assert.equal(source(c1.timing), 'exchange');
  assert.equal(emu.exchanges('partner') - before, 2);
});

test('100 concurrent cold requests share exactly one exchange', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  const before = emu.exchanges('optoro');
  emu.script('optoro', [{ delayMs: 100 }]); // every request arrives while the exchange is in flight
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => call(gw, tok, `/optoro/v1/items/${i}`)));
  const tally = {};
  for (const r of results) {
    const k = `${r.status} ${r.timing ?? r.text.slice(0, 100)}`;
    tally[k] = (tally[k] ?? 0) + 1;
  }
  await gw.settleLogs(50);
  const diag = () => JSON.stringify({ tally, logs: [...new Set(gw.logs.filter((l) => !l.includes('"event":"proxy"')))].slice(0, 12) }, null, 1);
  assert.equal(emu.exchanges('optoro') - before, 1, diag());
  assert.deepEqual(results.map((r) => r.status), Array(100).fill(200), diag());
  assert.equal(new Set(results.map((r) => r.json.headers.authorization)).size, 1);

  // Concurrent 401s from the API after a revocation: one refresh between them.
  emu.revokeAll('optoro');
  const again = await Promise.all(Array.from({ length: 20 }, (_, i) => call(gw, tok, `/optoro/v1/items/${i}`)));
  assert.deepEqual(again.map((r) => r.status), Array(20).fill(200), diag());
  assert.equal(emu.exchanges('optoro') - before, 2, diag());
});

test('concurrent requests during a failing exchange share its failure', async (t) => {
  const { providers, secrets } = config();
  const gw = await start(t, { providers, secrets: { ...secrets, PARTNER_CLIENT_SECRET: `wrong-${rand()}` } });
  const tok = await callerToken(gw);
  const before = emu.exchanges('partner');
  emu.script('partner', [{ delayMs: 100 }]);
  const results = await Promise.all(Array.from({ length: 20 }, () => call(gw, tok, '/partner/x')));
  assert.deepEqual(results.map((r) => r.status), Array(20).fill(502), JSON.stringify(results.map((r) => r.text.slice(0, 120))));
  assert.ok(results.every((r) => /invalid_client/.test(r.json.error_description)));
  assert.equal(emu.exchanges('partner') - before, 1);
});

test('token endpoint 503, 503, 200 → success after retries', async (t) => {
  const gw = await start(t, config({ optoro: { retry: FAST_RETRY } }));
  const tok = await callerToken(gw);
  const before = emu.exchanges('optoro');
  emu.script('optoro', [
    { status: 503, body: '<html>503 Service Unavailable</html>', headers: { 'content-type': 'text/html' } },
    { status: 503, body: { message: 'busy' } },
  ]);
  const r = await call(gw, tok, '/optoro/v1/rmas');
  assert.equal(r.status, 200, r.text);
  assert.equal(source(r.timing), 'exchange');
  assert.equal(emu.exchanges('optoro') - before, 3);
  await gw.settleLogs(30);
  const attempts = gw.jsonLogs().filter((l) => l.event === 'token_exchange' && l.provider === 'optoro');
  assert.deepEqual(attempts.map((l) => [l.attempt, l.status, l.ok]), [[1, 503, false], [2, 503, false], [3, 200, true]]);
});

test('token endpoint: retries run out → 502; a redirect is never followed', async (t) => {
  const gw = await start(t, config({ optoro: { retry: FAST_RETRY } }));
  const tok = await callerToken(gw);
  let before = emu.exchanges('optoro');
  emu.script('optoro', Array(4).fill({ status: 503, body: '<html>busy</html>', headers: { 'content-type': 'text/html' } }));
  const a = await call(gw, tok, '/optoro/v1/x');
  assert.equal(a.status, 502, a.text);
  assert.match(a.json.error_description, /503/);
  assert.equal(emu.exchanges('optoro') - before, 4, 'max_attempts 4');
  before = emu.exchanges('optoro');
  emu.script('optoro', [{ status: 302, headers: { location: emu.endpoints.optoro.token } }]);
  const b = await call(gw, tok, '/optoro/v1/x');
  assert.equal(b.status, 502, b.text);
  assert.equal(emu.exchanges('optoro') - before, 1, 'the redirect was not followed');
  assert.equal((await call(gw, tok, '/optoro/v1/x')).status, 200, 'nothing was cached');
});

test('token endpoint 429 + Retry-After is retried after the delay', async (t) => {
  const gw = await start(t, config({ partner: { retry: { ...FAST_RETRY, max_delay_ms: 3000 } } }));
  const tok = await callerToken(gw);
  const before = emu.exchanges('partner');
  emu.script('partner', [{ status: 429, headers: { 'retry-after': '1' }, body: { error: 'slow_down' } }]);
  const t0 = Date.now();
  const r = await call(gw, tok, '/partner/bookings');
  const waited = Date.now() - t0;
  assert.equal(r.status, 200, r.text);
  assert.equal(emu.exchanges('partner') - before, 2);
  assert.ok(waited >= 950, `retried after ${waited} ms, Retry-After said 1 s`);
});

test('invalid_client → 502, then a cooldown, then a new exchange', async (t) => {
  const { providers, secrets } = config();
  const wrong = { OPTORO_CLIENT_SECRET: `wrong-${rand()}`, OPTIMUM_CLIENT_SECRET: `wrong-${rand()}` };
  const gw = await start(t, { providers, secrets: { ...secrets, ...wrong } });
  const tok = await callerToken(gw);
  for (const p of ['optoro', 'optimum']) { // 401 invalid_client (Optoro) and 400 invalid_client (Optimum Automotive)
    const before = emu.exchanges(p);
    const a = await call(gw, tok, `/${p}/v1/cooldown`);
    assert.equal(a.status, 502, a.text);
    assert.match(a.json.error_description, /invalid_client/);
    assert.equal(emu.exchanges(p) - before, 1, 'never retried');
    const b = await call(gw, tok, `/${p}/v1/cooldown`);
    assert.equal(b.status, 502);
    assert.match(b.json.error_description, /invalid_client/);
    assert.equal(emu.exchanges(p) - before, 1, 'cooling down: no new exchange');
  }
  clock.advance(31_000);
  for (const p of ['optoro', 'optimum']) {
    const before = emu.exchanges(p);
    assert.equal((await call(gw, tok, `/${p}/v1/cooldown`)).status, 502);
    assert.equal(emu.exchanges(p) - before, 1, 'exchanges again after the cooldown');
  }
  assert.equal(emu.apiRequests('optoro').filter((r) => r.url.startsWith('/optoro/api/v1/cooldown')).length, 0);
});

test('upstream 401 → token refreshed and the request replayed once', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  assert.equal((await call(gw, tok, '/optoro/v1/warmup')).status, 200);
  const [old] = emu.issuedTokens('optoro').slice(-1);
  emu.revokeAll('optoro');
  emu.reset();
  const r = await call(gw, tok, '/optoro/v1/rmas', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'replay me' });
  assert.equal(r.status, 200, r.text);
  assert.equal(source(r.timing), 'exchange');
  assert.equal(emu.exchanges('optoro'), 1);
  const reqs = emu.apiRequests('optoro');
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0].headers.authorization, `Bearer ${old}`);
  assert.notEqual(reqs[1].headers.authorization, `Bearer ${old}`);
  assert.deepEqual(reqs.map((q) => q.body), ['replay me', 'replay me']);
  assert.equal(source((await call(gw, tok, '/optoro/v1/rmas')).timing), 'memory');

  // Within 30 s of that refresh a further 401 stands (no exchange per request from an API that
  // answers 401 for a permission problem) …
  emu.revokeAll('optoro');
  emu.reset();
  const storm = await call(gw, tok, '/optoro/v1/rmas');
  assert.equal(storm.status, 401);
  assert.equal(emu.exchanges('optoro'), 0);
  await gw.waitForLog('"event":"api_401_not_refreshed"');

  // … after it, a 401 refreshes again. A streamed body (declared over the 1 MiB replay buffer)
  // is not replayed: the caller sees the 401, and the rejected token is dropped all the same.
  clock.advance(30_001);
  emu.reset();
  const big = Buffer.alloc(1536 * 1024, 0x61);
  const s = await raw(gw, {
    method: 'PUT', path: '/optoro/v1/upload', body: big,
    headers: { authorization: `Bearer ${tok}`, 'content-length': String(big.length) },
  });
  assert.equal(s.status, 401);
  assert.equal(emu.apiRequests('optoro').length, 1);
  assert.equal(emu.apiRequests('optoro')[0].bodyBytes, big.length);
  const n = await call(gw, tok, '/optoro/v1/rmas');
  assert.equal(n.status, 200);
  assert.equal(source(n.timing), 'exchange');
});

test('API 503 on GET is retried; POST is not', async (t) => {
  const gw = await start(t, config({ optoro: { retry: FAST_RETRY } }));
  const tok = await callerToken(gw);
  assert.equal((await call(gw, tok, '/optoro/v1/warmup')).status, 200);
  emu.reset();
  emu.scriptApi('optoro', [{ status: 503, body: 'busy' }]);
  assert.equal((await call(gw, tok, '/optoro/v1/a')).status, 200);
  assert.equal(emu.apiRequests('optoro').length, 2);
  emu.reset();
  emu.scriptApi('optoro', [{ status: 503, body: 'busy' }]);
  const p = await call(gw, tok, '/optoro/v1/a', { method: 'POST', body: '{}' });
  assert.equal(p.status, 503);
  assert.equal(emu.apiRequests('optoro').length, 1);
});

test('a short-lived token stays out of KV but is served from memory', async (t) => {
  const gw = await start(t, config());
  defer(t, () => emu.setLifetime('partner', null));
  emu.setLifetime('partner', 90); // 90 s − skew (capped at half: 45 s) leaves < 60 s for KV
  const tok = await callerToken(gw);
  const before = emu.exchanges('partner');
  const a = await call(gw, tok, '/partner/x');
  assert.equal(a.status, 200, a.text);
  assert.equal(source(a.timing), 'exchange');
  assert.deepEqual(await ptokKeys(gw), []);
  assert.equal(source((await call(gw, tok, '/partner/x')).timing), 'memory');
  assert.equal(emu.exchanges('partner') - before, 1);
  await gw.settleLogs(30);
  assert.ok(!gw.logs.some((l) => l.includes('store_error')), 'no KV write was attempted with a TTL < 60 s');
});

test('expiry: past the refresh point a new exchange, also when KV still holds the old token', async (t) => {
  const dir = tempDir(t);
  const key = crypto.randomBytes(32).toString('base64');
  const gwA = await start(t, { ...config(), kvPersist: dir, key });
  const tokA = await callerToken(gwA);
  const before = emu.exchanges('partner');
  assert.equal(source((await call(gwA, tokA, '/partner/x')).timing), 'exchange'); // 3600 s, skew 60 s
  clock.advance(3530_000);
  assert.equal(source((await call(gwA, tokA, '/partner/x')).timing), 'memory');
  clock.advance(11_000); // 3541 s: past the refresh point; KV's own (real-time) TTL has not run out
  const gwB = await start(t, { ...config(), kvPersist: dir, key });
  const b = await call(gwB, await callerToken(gwB), '/partner/x');
  assert.equal(b.status, 200, b.text);
  assert.equal(source(b.timing), 'exchange', 'an expired token read from KV is not served');
  assert.equal(emu.exchanges('partner') - before, 2);
  const a = await call(gwA, tokA, '/partner/x');
  assert.equal(source(a.timing), 'kv', "instance A drops its stale copy and finds B's token in KV");
  assert.equal(a.json.headers.authorization, b.json.headers.authorization);
  assert.equal(emu.exchanges('partner') - before, 2);
});


sweepTest(() => emu, { minBodies: 100 });
