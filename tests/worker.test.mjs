// The real Worker (`make worker` → build/) in workerd through Miniflare, against the provider
// emulators (tests/support/emulators.mjs) and oidc-provider (tests/support/oidc.mjs): issue 2's
// "Tests that must exist and pass". One clock drives the emulators and every gateway; tests
// only ever move it forward. The last test sweeps every response body and log line collected
// by all the others for secrets and tokens.
// Run: node --test --test-concurrency=1 tests/worker.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { startProviders, startEchoApi } from './support/emulators.mjs';
import { startOidc } from './support/oidc.mjs';
import { startGateway, makeClock, sha256Hex, makeTempDir, removeDir } from './support/gateway.mjs';

const rand = (n = 12) => crypto.randomBytes(n).toString('base64url');
const clock = makeClock();
const FAST_RETRY = { max_attempts: 4, base_delay_ms: 1, max_delay_ms: 20 };
const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json' };
const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
const PTOK = 'tg:v1:ptok:';
const CTOK = 'tg:v1:ctok:';

// Everything the final sweep looks at, and everything it looks for.
const sweep = { bodies: [], logs: [], secrets: new Set(), providerTokens: new Set(), callerTokens: new Set() };

/** The default caller: may call every emulated provider. */
const ALL = { id: 'svc-all', secret: `caller-${rand()}+/:%& "x`, scopes: ['optoro', 'optimum', 'partner'] };

let emu;
before(async () => { emu = await startProviders({ clock }); });
after(() => emu?.close());

/** TOKENGATE_PROVIDERS + secrets for the emulators, with per-provider overrides. */
const config = (overrides = {}) => emu.gatewayConfig(overrides);

function recordBody(where, status, text) {
  sweep.bodies.push({ where, status, text });
  if (where.endsWith('/oauth/token') && status === 200) {
    try { sweep.callerTokens.add(JSON.parse(text).access_token); } catch { /* not JSON */ }
  }
}

/**
 * Starts a gateway (clock, key and the default caller filled in), records every response body
 * and, when the test ends, every log line; the test's after-hook closes it.
 */
async function start(t, opts = {}) {
  const key = opts.key ?? crypto.randomBytes(32).toString('base64');
  sweep.secrets.add(key);
  const clients = opts.clients ?? { [ALL.id]: { secret: ALL.secret, scopes: ALL.scopes } };
  for (const c of Object.values(clients)) if (c.secret) sweep.secrets.add(c.secret);
  for (const v of Object.values(opts.secrets ?? {})) sweep.secrets.add(v);
  const gw = await startGateway({ clock, ...opts, key, clients });
  const dispatch = gw.fetch;
  gw.fetch = async (p, init) => {
    const res = await dispatch(p, init);
    recordBody(p, res.status, await res.clone().text());
    return res;
  };
  t.after(async () => {
    await gw.settleLogs(30);
    sweep.logs.push(...gw.logs);
    await gw.close();
  });
  return gw;
}

/** POST /oauth/token with seed 001's JSON body; returns the access token. */
async function callerToken(gw, id = ALL.id, secret = ALL.secret) {
  const res = await gw.fetch('/oauth/token', {
    method: 'POST', headers: JSON_HEADERS,
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: id, client_secret: secret }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

/** A proxied call with a caller token; returns { res, status, text, json, timing }. */
async function call(gw, tok, path, init = {}) {
  const res = await gw.fetch(path, { ...init, headers: { authorization: `Bearer ${tok}`, ...(init.headers ?? {}) } });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { res, status: res.status, text, json, timing: res.headers.get('server-timing') };
}

/** A request over a real socket with the path sent byte for byte (no client-side normalising). */
function raw(gw, { method = 'GET', path, headers = {}, body }) {
  const u = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        recordBody(path, res.statusCode, text);
        resolve({ status: res.statusCode, headers: res.headers, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (typeof body === 'function') body(req); else req.end(body);
  });
}

const source = (timing) => /token;desc="(\w+)"/.exec(timing ?? '')?.[1];
const ptokKeys = async (gw) => (await gw.kv.list({ prefix: PTOK })).keys.map((k) => k.name);

// ---------------------------------------------------------------- token cache

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
  // Each provider speaks its own dialect (the emulators enforce the seed documents).
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
  const dir = makeTempDir();
  t.after(() => removeDir(dir));
  const key = crypto.randomBytes(32).toString('base64');
  const gwA = await start(t, { ...config(), kvPersist: dir, key });
  const tokA = await callerToken(gwA);
  const before = emu.exchanges('partner');
  assert.equal(source((await call(gwA, tokA, '/partner/bookings')).timing), 'exchange');
  const keys = await ptokKeys(gwA);
  assert.equal(keys.length, 1);
  assert.match(keys[0], /^tg:v1:ptok:[0-9a-f]{64}$/);
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
  for (const p of ['optoro', 'optimum']) { // 401 invalid_client (seed 001) and 400 invalid_client (seed 002)
    const before = emu.exchanges(p);
    const a = await call(gw, tok, `/${p}/v1/x`);
    assert.equal(a.status, 502, a.text);
    assert.match(a.json.error_description, /invalid_client/);
    assert.equal(emu.exchanges(p) - before, 1, 'never retried');
    const b = await call(gw, tok, `/${p}/v1/x`);
    assert.equal(b.status, 502);
    assert.match(b.json.error_description, /invalid_client/);
    assert.equal(emu.exchanges(p) - before, 1, 'cooling down: no new exchange');
  }
  clock.advance(31_000);
  for (const p of ['optoro', 'optimum']) {
    const before = emu.exchanges(p);
    assert.equal((await call(gw, tok, `/${p}/v1/x`)).status, 502);
    assert.equal(emu.exchanges(p) - before, 1, 'exchanges again after the cooldown');
  }
  assert.equal(emu.apiRequests('optoro').filter((r) => r.url.startsWith('/optoro/api/v1/x')).length, 0);
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

  // A streamed body (over the 1 MiB replay buffer) is not replayed: the caller sees the 401,
  // and the rejected token is dropped all the same.
  emu.revokeAll('optoro');
  emu.reset();
  const big = Buffer.alloc(1536 * 1024, 0x61);
  const s = await call(gw, tok, '/optoro/v1/upload', { method: 'PUT', body: big });
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
  t.after(() => emu.setLifetime('partner', null));
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
  const dir = makeTempDir();
  t.after(() => removeDir(dir));
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

// ---------------------------------------------------------------- callers and routing

test('caller token missing, wrong, expired or out of scope; unknown provider', async (t) => {
  const narrow = { secret: `narrow-${rand()}`, scopes: ['partner'] };
  const short = { secret: `short-${rand()}`, scopes: ['optoro'], token_ttl_s: 60 };
  const gw = await start(t, { ...config(), clients: { [ALL.id]: { secret: ALL.secret, scopes: ALL.scopes }, narrow, short } });
  emu.reset();
  const invalid = async (headers, what) => {
    const res = await gw.fetch('/optoro/v1/x', { headers });
    assert.equal(res.status, 401, what);
    const www = res.headers.get('www-authenticate');
    assert.match(www, /^Bearer\b/, what);
    assert.match(www, /error="invalid_token"/, what);
    assert.equal((await res.json()).error, 'invalid_token', what);
  };
  await invalid({}, 'missing');
  await invalid({ authorization: `Bearer tg_${rand(32)}` }, 'unknown token');
  await invalid({ authorization: 'Bearer ' }, 'empty bearer');
  await invalid({ authorization: `Basic ${Buffer.from(`${ALL.id}:${ALL.secret}`).toString('base64')}` }, 'not a bearer');

  const shortTok = await callerToken(gw, 'short', short.secret);
  assert.equal((await call(gw, shortTok, '/optoro/v1/x')).status, 200);
  clock.advance(61_000);
  await invalid({ authorization: `Bearer ${shortTok}` }, 'expired');

  const narrowTok = await callerToken(gw, 'narrow', narrow.secret);
  const f = await call(gw, narrowTok, '/optoro/v1/x');
  assert.equal(f.status, 403);
  assert.equal(f.json.error, 'insufficient_scope');
  assert.match(f.res.headers.get('www-authenticate'), /error="insufficient_scope"/);
  assert.equal((await call(gw, narrowTok, '/partner/x')).status, 200);

  const allTok = await callerToken(gw);
  for (const p of ['/nope/x', '/admin/x', '/nope']) {
    const r = await call(gw, allTok, p);
    assert.equal(r.status, 404, p);
    assert.equal(r.json.error, 'not_found');
  }
  assert.equal(emu.apiRequests('optoro').length, 1, 'only the one authorised call went upstream');
});

test('path-escape attempts never leave api_base', async (t) => {
  const echo = await startEchoApi();
  t.after(() => echo.close());
  const { providers, secrets } = config();
  providers.esc = { ...providers.optoro, api_base: `${echo.url}/base` };
  const gw = await start(t, { providers, secrets, clients: { [ALL.id]: { secret: ALL.secret, scopes: [...ALL.scopes, 'esc'] } } });
  const auth = { authorization: `Bearer ${await callerToken(gw)}` };
  emu.reset();
  const attempts = [
    '/esc/../x', '/esc/%2e%2e/x', '/esc/%2E%2E/%2e%2e/x', '/esc/.%2e/x', '/esc/a/%2e%2e%2f..', '/esc/a/..%2f..%2fx',
    '/esc/%252e%252e/x', '/esc/a\\..\\..\\x', '/esc/a%5c..%5c..%5cx', '/esc/..', '/esc/%2e%2e',
    '/esc//evil.example/x', '/esc/http://evil.example/x', '/esc/https:%2f%2fevil.example/x', '/esc/%2f%2fevil.example/x',
    '/optoro/../oauth/token', '/optoro/%2e%2e/oauth/token', '/optoro/..%2foauth%2ftoken', '/optoro/a/%2e%2e/%2e%2e/optimum/api/x',
  ];
  for (const path of attempts) {
    const r = await raw(gw, { path, headers: auth });
    // A dot segment or encoded separator is refused (400) or, normalised away by the runtime,
    // names an unknown provider (404) or the gateway's own GET /oauth/token (405); `//host` and
    // `scheme://` stay plain path segments under api_base.
    const inside = r.status === 200 && JSON.parse(r.text).path.startsWith('/base/');
    assert.ok([400, 404, 405].includes(r.status) || inside, `${path} → ${r.status} ${r.text.slice(0, 200)}`);
  }
  // An absolute-form request target is refused by the runtime before the Worker runs.
  assert.ok((await raw(gw, { path: 'http://evil.example/esc/x', headers: auth })).status >= 400);
  for (const q of echo.requests()) assert.ok(q.path.startsWith('/base/'), `escaped to ${q.path}`);
  assert.ok(echo.requests().every((q) => q.headers.host === new URL(echo.url).host));
  for (const p of ['optoro', 'optimum', 'partner']) assert.deepEqual(emu.apiRequests(p), [], `${p} API reached`);
  assert.equal(emu.exchanges('optoro'), 1, 'the token endpoint saw only the one exchange');
  assert.equal(emu.tokenRequests('optoro')[0].method, 'POST');
  assert.equal(emu.exchanges('optimum') + emu.exchanges('partner'), 0);
});

test("the caller's Authorization and Cookie never reach the provider; hop-by-hop stripped; api_headers injected", async (t) => {
  const gw = await start(t, config({ optoro: { api_headers: { 'X-Optiturn-Api-Version': '1' } } }));
  const tok = await callerToken(gw);
  emu.reset();
  emu.scriptApi('optoro', ['ok', { status: 200, body: 'hi', headers: { 'set-cookie': 'up=1', 'x-upstream': 'yes', 'content-type': 'text/plain' } }]);
  const r = await raw(gw, {
    path: '/optoro/v1/rmas?a=1&b=%2F&c=%20',
    headers: {
      authorization: `Bearer ${tok}`, cookie: `sid=${rand()}`, connection: 'keep-alive, x-drop-me', 'x-drop-me': '1',
      'keep-alive': 'timeout=5', te: 'trailers', 'proxy-authorization': 'Basic eHg6eXk=', 'x-custom': 'kept',
      'x-optiturn-api-version': '2', accept: 'application/json',
    },
  });
  assert.equal(r.status, 200, r.text);
  const echo = JSON.parse(r.text);
  const h = echo.headers;
  assert.equal(echo.query, 'a=1&b=%2F&c=%20');
  assert.ok(emu.isValidToken('optoro', h.authorization.replace(/^Bearer /, '')));
  assert.ok(!JSON.stringify(echo).includes(tok), 'the caller token went upstream');
  for (const name of ['cookie', 'x-drop-me', 'keep-alive', 'te', 'proxy-authorization', 'connection']) {
    assert.ok(!(name in h) || (name === 'connection' && !/x-drop-me/i.test(h[name])), `${name} forwarded: ${h[name]}`);
  }
  assert.equal(h['x-custom'], 'kept');
  assert.equal(h.accept, 'application/json');
  assert.equal(h['x-optiturn-api-version'], '1');
  for (const q of emu.tokenRequests('optoro')) {
    assert.ok(!('cookie' in q.headers) && !q.body.includes(tok) && !JSON.stringify(q.headers).includes(tok));
  }
  const s = await call(gw, tok, '/optoro/v1/cookies');
  assert.equal(s.text, 'hi');
  assert.equal(s.res.headers.get('x-upstream'), 'yes');
  assert.equal(s.res.headers.get('set-cookie'), null, "the provider's cookie is not handed to callers");
});

test('bodies: forwarded byte-exact both ways; over max_body_bytes → 413 with nothing sent upstream', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  for (const size of [0, 1, 70_000, 3 * 1024 * 1024]) {
    const body = crypto.randomBytes(size);
    const r = await call(gw, tok, '/optoro/v1/blob', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body });
    assert.equal(r.status, 200, `${size}: ${r.text.slice(0, 200)}`);
    assert.equal(r.json.bodyBytes, size);
    assert.equal(r.json.bodySha256, crypto.createHash('sha256').update(body).digest('hex'));
  }
  const down = await gw.fetch('/optoro/stream?bytes=2000000&chunk=65536', { headers: { authorization: `Bearer ${tok}` } });
  assert.equal(down.status, 200);
  assert.equal((await down.arrayBuffer()).byteLength, 2_000_000);

  const small = await start(t, { ...config(), vars: { max_body_bytes: '1000' } });
  const stok = await callerToken(small);
  emu.reset();
  const over = await call(small, stok, '/optoro/v1/blob', { method: 'POST', body: Buffer.alloc(1001, 0x62) });
  assert.equal(over.status, 413);
  assert.equal(over.json.error, 'request_too_large');
  const chunked = await raw(small, {
    method: 'PUT', path: '/optoro/v1/blob', headers: { authorization: `Bearer ${stok}` },
    body: (req) => { for (let i = 0; i < 5; i++) req.write(Buffer.alloc(300, 0x63)); req.end(); }, // no Content-Length
  });
  assert.equal(chunked.status, 413);
  assert.equal(emu.exchanges('optoro') + emu.apiRequests('optoro').length, 0, 'nothing was sent upstream');
  const exact = await call(small, stok, '/optoro/v1/blob', { method: 'POST', body: Buffer.alloc(1000, 0x62) });
  assert.equal(exact.status, 200);
  assert.equal(exact.json.bodyBytes, 1000);
});

test('timeouts: a slow token endpoint or API → 504', async (t) => {
  const gw = await start(t, config({ optoro: { timeout_ms: 300, retry: { ...FAST_RETRY, max_attempts: 1 } } }));
  const tok = await callerToken(gw);
  emu.script('optoro', [{ delayMs: 2000 }]);
  let t0 = Date.now();
  const a = await call(gw, tok, '/optoro/v1/x');
  assert.equal(a.status, 504, a.text);
  assert.ok(Date.now() - t0 < 1500);
  assert.equal((await call(gw, tok, '/optoro/v1/x')).status, 200);
  emu.scriptApi('optoro', [{ delayMs: 2000 }]);
  t0 = Date.now();
  const b = await call(gw, tok, '/optoro/v1/x');
  assert.equal(b.status, 504, b.text);
  assert.ok(Date.now() - t0 < 1500);
});

// ---------------------------------------------------------------- POST /oauth/token

test('token endpoint: seed 001 contract, RFC 6749 forms, only hashes in KV', async (t) => {
  const special = { secret: `s p+e/c:i%a&l=${rand()}`, scopes: ['optoro', 'partner'], token_ttl_s: 900 };
  const gw = await start(t, { ...config(), clients: { [ALL.id]: { secret: ALL.secret, scopes: ALL.scopes }, special } });
  const post = (body, headers = JSON_HEADERS) => gw.fetch('/oauth/token', { method: 'POST', headers, body });
  const json = (o) => JSON.stringify({ grant_type: 'client_credentials', client_id: ALL.id, client_secret: ALL.secret, ...o });

  let res = await post(json());
  assert.equal(res.status, 200);
  assert.match(res.headers.get('cache-control'), /no-store/);
  const ok = await res.json();
  assert.deepEqual(Object.keys(ok).sort(), ['access_token', 'created_at', 'expires_in', 'scope', 'token_type']);
  assert.equal(ok.token_type, 'Bearer');
  assert.equal(ok.expires_in, 3600);
  assert.equal(ok.scope, 'optoro optimum partner');
  assert.equal(ok.created_at, Math.floor(clock.now() / 1000));
  assert.ok(Buffer.from(ok.access_token.replace(/^tg_/, ''), 'base64url').length >= 32, '256-bit token');

  res = await post('{"grant_type": "client_credentials",');
  assert.equal(res.status, 400);
  res = await post(json({ scope: 'optoro' }));
  assert.equal(res.status, 422);
  assert.deepEqual(await res.json(), { message: 'Validation Failed', errors: [{ field: 'scope', code: 'unexpected_field' }] });
  res = await post(JSON.stringify({ grant_type: 'client_credentials', client_id: ALL.id }));
  assert.equal(res.status, 422);
  const missing = await res.json();
  assert.equal(missing.message, 'Validation Failed');
  assert.deepEqual(missing.errors.map((e) => e.field), ['client_secret']);
  assert.ok(missing.errors.every((e) => typeof e.code === 'string'));
  res = await post(json({ client_secret: `${ALL.secret}x` }));
  assert.equal(res.status, 401);
  const bad = await res.json();
  assert.equal(bad.error, 'invalid_client');
  assert.equal(typeof bad.error_description, 'string');
  res = await post(json({ client_id: 'nobody' }));
  assert.equal(res.status, 401);
  assert.equal((await gw.fetch('/oauth/token')).status, 405);

  // RFC 6749 §4.4: a form body with the credentials in it, or in HTTP Basic (§2.3.1 encoding).
  res = await post(new URLSearchParams({ grant_type: 'client_credentials', client_id: 'special', client_secret: special.secret }).toString(), FORM);
  assert.equal(res.status, 200);
  const form = await res.json();
  assert.equal(form.expires_in, 900);
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  const basic = (id, s) => ({ ...FORM, authorization: `Basic ${Buffer.from(`${enc(id)}:${enc(s)}`).toString('base64')}` });
  res = await post('grant_type=client_credentials&scope=partner', basic('special', special.secret));
  assert.equal(res.status, 200);
  const viaBasic = await res.json();
  assert.equal(viaBasic.scope, 'partner');
  res = await post('grant_type=client_credentials', basic('special', 'nope'));
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate') ?? '', /^Basic/);
  assert.equal((await res.json()).error, 'invalid_client');
  res = await post('grant_type=password', basic('special', special.secret));
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, 'unsupported_grant_type');

  // The issued tokens work, with the granted scope.
  assert.equal((await call(gw, form.access_token, '/optoro/v1/x')).status, 200);
  assert.equal((await call(gw, viaBasic.access_token, '/optoro/v1/x')).status, 403);

  // KV holds each issued token's SHA-256 only.
  const issued = [ok, form, viaBasic].map((o) => o.access_token);
  const { keys } = await gw.kv.list();
  const ctok = keys.map((k) => k.name).filter((k) => k.startsWith(CTOK));
  for (const tok of issued) assert.ok(ctok.includes(CTOK + sha256Hex(tok)));
  for (const { name } of keys) {
    const value = await gw.kv.get(name);
    for (const tok of issued) {
      assert.ok(!name.includes(tok) && !value.includes(tok), `token stored in clear under ${name}`);
    }
    if (name.startsWith(CTOK)) {
      const rec = JSON.parse(value);
      assert.deepEqual(Object.keys(rec).sort(), ['client_id', 'expires_at_ms', 'scopes']);
    }
  }
});

// ---------------------------------------------------------------- a real OAuth server

test('oidc-provider: client_secret_basic (special-character secret) and client_secret_post end to end', async (t) => {
  const oidc = await startOidc();
  t.after(() => oidc.close());
  for (const c of Object.values(oidc.clients)) sweep.secrets.add(c.clientSecret);
  const { providers, secrets } = oidc.gatewayConfig();
  const gw = await start(t, { providers, secrets, clients: { [ALL.id]: { secret: ALL.secret, scopes: ['oidc-basic', 'oidc-post'] } } });
  const tok = await callerToken(gw);
  for (const [id, client] of [['oidc-basic', oidc.clients.basic], ['oidc-post', oidc.clients.post]]) {
    const r = await call(gw, tok, `/${id}/things?x=1`);
    assert.equal(r.status, 200, `${id}: ${r.text}`);
    const bearer = oidc.apiRequests().at(-1).headers.authorization.replace(/^Bearer /, '');
    sweep.providerTokens.add(bearer);
    assert.ok(await oidc.isIssuedToken(bearer), `${id}: the forwarded bearer was issued by oidc-provider`);
    assert.equal((await oidc.tokenInfo(bearer)).clientId, client.clientId);
    assert.equal(oidc.apiRequests().at(-1).path, '/api/things');
    assert.equal(source((await call(gw, tok, `/${id}/things`)).timing), 'memory');
  }
  const reqs = oidc.tokenRequests();
  assert.deepEqual(reqs.map((q) => q.status), [200, 200]);
  assert.match(reqs.find((q) => q.clientId === oidc.clients.basic.clientId).headers.authorization, /^Basic /);
  assert.equal(reqs.find((q) => q.clientId === oidc.clients.post.clientId).headers.authorization, undefined);
});

// ---------------------------------------------------------------- configuration

test('healthz, and TOKENGATE_PROVIDERS given as a JSON string', async (t) => {
  const { providers, secrets } = config();
  const gw = await start(t, { providers: JSON.stringify(providers), secrets });
  const res = await gw.fetch('/healthz');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ok', providers: 3 });
  assert.equal((await call(gw, await callerToken(gw), '/optimum/v1/x')).status, 200);
});

test('config errors answer every request with a 500 naming the key at fault', async (t) => {
  const { providers, secrets } = config();
  const cases = [
    ['missing provider secret', { providers, secrets, vars: { OPTIMUM_CLIENT_SECRET: null } }, 'optimum', /OPTIMUM_CLIENT_SECRET/],
    ['bad auth_style', { providers: { ...providers, partner: { ...providers.partner, auth_style: 'private_key_jwt' } }, secrets }, 'partner', /auth_style/],
    ['reserved id', { providers: { ...providers, oauth: providers.optoro }, secrets }, 'oauth', /oauth/],
    ['plain-http token_url', { providers: { ...providers, optoro: { ...providers.optoro, token_url: 'http://auth.example.com/oauth/token' } }, secrets }, 'optoro', /token_url/],
  ];
  for (const [what, opts, provider, names] of cases) {
    const gw = await start(t, opts);
    for (const [path, init] of [['/healthz'], ['/optoro/v1/x', { headers: { authorization: 'Bearer x' } }],
      ['/oauth/token', { method: 'POST', headers: JSON_HEADERS, body: '{}' }]]) {
      const res = await gw.fetch(path, init);
      assert.equal(res.status, 500, `${what}: ${path}`);
      const body = await res.json();
      assert.equal(body.error, 'config_error', what);
      assert.match(body.error_description, names, `${what}: ${body.error_description}`);
      assert.ok(body.provider === provider || body.error_description.includes(provider), `${what}: names provider ${provider}`);
    }
  }
});

// ---------------------------------------------------------------- the sweep

test('no secret or token in any response body or log line', () => {
  for (const p of ['optoro', 'optimum', 'partner']) {
    sweep.secrets.add(emu.credentials[p].clientSecret);
    for (const tok of emu.issuedTokens(p)) sweep.providerTokens.add(tok);
  }
  sweep.secrets.add(ALL.secret);
  const needles = [
    ...[...sweep.secrets].map((v) => ['secret', v]),
    ...[...sweep.providerTokens].map((v) => ['provider token', v]),
    ...[...sweep.callerTokens].map((v) => ['caller token', v]),
  ].filter(([, v]) => typeof v === 'string' && v.length >= 8);
  assert.ok(sweep.bodies.length > 100 && sweep.logs.length > 50, 'the sweep saw the suite');
  assert.ok(sweep.providerTokens.size > 10 && sweep.callerTokens.size > 10);
  const leaks = [];
  for (const { where, status, text } of sweep.bodies) {
    let hay = text;
    let own = null;
    try {
      const j = JSON.parse(text);
      if (where.endsWith('/oauth/token') && status === 200) own = j.access_token; // the token it issues
      if (j && typeof j.headers === 'object' && 'method' in j) { // an emulator echo: the bearer it received
        delete j.headers.authorization;
        hay = JSON.stringify(j);
      }
    } catch { /* not JSON */ }
    for (const [kind, v] of needles) {
      if (v !== own && hay.includes(v)) leaks.push(`${kind} in the ${status} body of ${where}`);
    }
  }
  for (const line of sweep.logs) {
    for (const [kind, v] of needles) if (line.includes(v)) leaks.push(`${kind} in log line ${line.slice(0, 160)}`);
  }
  assert.deepEqual(leaks, []);
});
