// Worker tests, the proxy route: caller tokens and scopes, routing, path escapes, header rules,
// bodies and limits, timeouts.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startEchoApi } from './support/emulators.mjs';
import {
  clock, ALL, FAST_RETRY, rand, defer, startEmulators, start, callerToken, call, raw, sweepTest,
  wellFormedToken,
} from './worker-lib.mjs';

let emu;
before(async () => { emu = await startEmulators(); });
after(() => emu?.close());
/** TOKENGATE_PROVIDERS + secrets for the emulators, with per-provider overrides. */
const config = (overrides = {}) => emu.gatewayConfig(overrides);

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
  await invalid({ authorization: `Bearer ${wellFormedToken()}` }, 'unknown token');
  await invalid({ authorization: `Bearer tgt_${rand(54)}` }, 'malformed token');
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
  defer(t, () => echo.close());
  const { providers, secrets } = config();
  providers.esc = { ...providers.optoro, api_base: `${echo.url}/base` };
  const gw = await start(t, { providers, secrets, clients: { [ALL.id]: { secret: ALL.secret, scopes: ['optoro', 'esc'] } } });
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
    // names an unknown provider (404), one outside the caller's scope (403) or the gateway's own
    // GET /oauth/token (405); `//host` and `scheme://` stay plain path segments under api_base.
    const inside = r.status === 200 && /^\/(base|optoro\/api)\//.test(JSON.parse(r.text).path);
    assert.ok([400, 403, 404, 405].includes(r.status) || inside, `${path} → ${r.status} ${r.text.slice(0, 200)}`);
  }
  // An absolute-form request target is refused by the runtime before the Worker runs.
  assert.ok((await raw(gw, { path: 'http://evil.example/esc/x', headers: auth })).status >= 400);
  for (const q of echo.requests()) assert.ok(q.path.startsWith('/base/'), `escaped to ${q.path}`);
  assert.ok(echo.requests().every((q) => q.headers.host === new URL(echo.url).host));
  for (const q of emu.apiRequests('optoro')) assert.ok(q.url.startsWith('/optoro/api/'), `escaped to ${q.url}`);
  for (const p of ['optimum', 'partner']) assert.deepEqual(emu.apiRequests(p), [], `${p} API reached`);
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
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  for (const size of [0, 1, 70_000, 3 * 1024 * 1024]) {
    const body = crypto.randomBytes(size);
    const r = await call(gw, tok, '/optoro/v1/blob', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body });
    assert.equal(r.status, 200, `${size}: ${r.text.slice(0, 200)}`);
    assert.equal(r.json.bodyBytes, size);
    assert.equal(r.json.bodySha256, sha(body));
  }
  const streamed = crypto.randomBytes(3 * 1024 * 1024 + 7); // declared length over 1 MiB: streamed through
  const st = await raw(gw, {
    method: 'PUT', path: '/optoro/v1/blob', body: streamed,
    headers: { authorization: `Bearer ${tok}`, 'content-length': String(streamed.length) },
  });
  assert.equal(st.status, 200, st.text.slice(0, 200));
  assert.equal(JSON.parse(st.text).bodySha256, sha(streamed));
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


sweepTest(() => emu);
