// Worker tests, hardening round 2: a token API's refusal that comes as HTTP 200, the provider
// token echoed in encoded response headers, Unicode look-alikes that NFKC folds into `..` or
// `\`, the API's redirects, plain http on the proxy, lock-outs and enumeration at
// /oauth/token, issuance floods, and the isolate's replay budget.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTokenService } from './support/openapi.mjs';
import {
  ALL, JSON_HEADERS, FAST_RETRY, clock, rand, sweep, startEmulators, start, callerToken, call, raw, sweepTest,
} from './worker-lib.mjs';

let emu;
let svc;
before(async () => {
  emu = await startEmulators();
  svc = await startTokenService({ clock });
  sweep.secrets.add(svc.credentials.apiKey);
});
after(async () => { await emu?.close(); await svc?.close(); });
const config = (overrides = {}) => emu.gatewayConfig(overrides);
const b64 = (s) => Buffer.from(s).toString('base64');
/** RFC 3986 percent-encoding with lower-case hex digits (RFC 3986 §2.1: equivalent). */
const lowerHex = (s) => encodeURIComponent(s).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());

/** Every way the tests below spell `secret` in a provider's text. */
const spellings = (secret) => [secret, encodeURIComponent(secret), lowerHex(secret),
  new URLSearchParams({ v: secret }).toString().slice(2), JSON.stringify(secret).slice(1, -1), b64(secret),
  Buffer.from(secret).toString('base64url')];

/** A token request from `ip` (CF-Connecting-IP); returns { status, json, retryAfter }. */
async function login(gw, ip, id, secret) {
  const res = await gw.fetch('/oauth/token', {
    method: 'POST',
    headers: { ...JSON_HEADERS, 'cf-connecting-ip': ip },
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: id, client_secret: secret }),
  });
  return { status: res.status, json: await res.json(), retryAfter: res.headers.get('retry-after') };
}

// ---------------------------------------------------------------------------------------- leaks

test('a token API refusal that comes as HTTP 200 is scrubbed: the 502, the cooldown, the logs', async (t) => {
  const caller = { id: 'svc-openapi', secret: `caller-${rand()}`, scopes: ['openapi'] };
  const { providers, secrets } = svc.gatewayConfig({ retry: FAST_RETRY });
  const gw = await start(t, { providers, secrets, clients: { [caller.id]: { secret: caller.secret, scopes: caller.scopes } } });
  const tok = await callerToken(gw, caller.id, caller.secret);
  const { email, apiKey } = svc.credentials;
  const quoted = [...spellings(apiKey), b64(`${email}:${apiKey}`)].join(' | ');
  svc.script('create', [{ status: 200, body: { success: false, message: `account ${email} key ${quoted} refused`, error: 7, data: null } }]);
  const first = await call(gw, tok, '/openapi/IT-start/1');
  assert.equal(first.status, 502, first.text);
  assert.equal(first.json.error, 'invalid_response');
  assert.match(first.json.error_description, /\[error 7\]: .*account .* key \[redacted\]/);
  // The 30 s cooldown repeats the same (scrubbed) error to the next caller, without asking.
  const again = await call(gw, tok, '/openapi/IT-start/1');
  assert.equal(again.status, 502);
  assert.equal(again.json.error_description, first.json.error_description);
  assert.equal(svc.count('create'), 1);
  for (const text of [first.text, again.text]) {
    for (const s of spellings(apiKey)) assert.ok(!text.includes(s), `the API key (as ${JSON.stringify(s)}) in ${text}`);
  }
  await gw.settleLogs(50);
  for (const s of spellings(apiKey)) assert.ok(!gw.logs.join('\n').includes(s), 'the API key in a log line');

  // A refused rotation (HTTP 200, success: false) that quotes the token and its refresh token.
  clock.advance(31_000);
  const r = await call(gw, tok, '/openapi/IT-start/1');
  assert.equal(r.status, 200, r.text);
  const [live] = svc.allTokens().filter((x) => !x.deleted).slice(-1);
  clock.advance(3_560_000); // past the refresh point (60 s before expiry)
  const leak = `token ${live.token} (${encodeURIComponent(live.token)}) with ${live.refreshToken} / ${b64(live.refreshToken)}`;
  svc.script('rotate', [{ status: 200, body: { success: false, message: leak, error: 12, data: null } }]);
  const refused = await call(gw, tok, '/openapi/IT-start/1');
  assert.equal(refused.status, 502, refused.text);
  for (const s of [live.token, live.refreshToken, b64(live.refreshToken)]) {
    assert.ok(!refused.text.includes(s), `${refused.text}`);
  }
  sweep.providerTokens.add(live.token);
  sweep.secrets.add(live.refreshToken);
});

test('the provider token echoed in a response header, percent-encoded or base64, is dropped', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  assert.equal((await call(gw, tok, '/optoro/rmas')).status, 200);
  const [ptoken] = emu.issuedTokens('optoro');
  const echoes = {
    'x-raw': `Bearer ${ptoken}`,
    'x-percent': `t=${encodeURIComponent(`${ptoken}/`)}`,
    'x-percent-lower': lowerHex(`${ptoken}+`),
    'x-base64': b64(ptoken),
    'x-basic': `Basic ${b64(`user:${ptoken}`)}`,
    'x-base64url': Buffer.from(`..${ptoken}`).toString('base64url'),
  };
  emu.scriptApi('optoro', [{ status: 200, headers: { ...echoes, 'x-kept': 'yes' }, body: { ok: true } }]);
  const r = await call(gw, tok, '/optoro/rmas');
  assert.equal(r.status, 200);
  assert.equal(r.res.headers.get('x-kept'), 'yes');
  for (const name of Object.keys(echoes)) assert.equal(r.res.headers.get(name), null, name);
});

// --------------------------------------------------------------------------------------- bypass

test('look-alikes that NFKC folds into `..` or `\\` never reach the provider', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  emu.reset();
  for (const path of [
    '/optoro/%E2%80%A5/admin', // U+2025 TWO DOT LEADER → ".."
    '/optoro/v1/%EF%B8%B0/x', // U+FE30 PRESENTATION FORM FOR VERTICAL TWO DOT LEADER → ".."
    '/optoro/a%EF%B9%A8b', // U+FE68 SMALL REVERSE SOLIDUS → "\"
    '/optoro/..%C2%A0/x', // ".." and NO-BREAK SPACE → ".. "
    '/optoro/..%EF%BC%9Bx/y', // ".." and FULLWIDTH SEMICOLON → "..;x"
  ]) {
    const r = await raw(gw, { path, headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.equal(JSON.parse(r.text).error, 'invalid_request');
  }
  assert.equal(emu.apiRequests('optoro').length, 0);
  // An ordinary non-ASCII segment still goes through.
  const ok = await raw(gw, { path: '/optoro/caf%C3%A9', headers: { authorization: `Bearer ${tok}` } });
  assert.equal(ok.status, 200, ok.text);
});

test('an API redirect is rewritten: inside api_base to the gateway route, anywhere else absolute', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  const api = emu.endpoints.optoro.api; // http://127.0.0.1:PORT/optoro/api
  const origin = new URL(api).origin;
  const cases = [
    // The attack: a route of the gateway, which the caller would resolve against the gateway.
    ['/partner/api/v1/bookings', `${origin}/partner/api/v1/bookings`],
    ['/optoro/rmas/1/cancel', `${origin}/optoro/rmas/1/cancel`],
    // Inside api_base: the caller is sent to the gateway's route for it.
    ['/optoro/api/rmas/2?page=2', 'https://gateway.test/optoro/rmas/2?page=2'],
    ['3', 'https://gateway.test/optoro/rmas/3'],
    ['https://elsewhere.example/x', 'https://elsewhere.example/x'],
    // Naming the gateway outright: no Location at all.
    ['https://gateway.test/partner/bookings', null],
  ];
  for (const [location, want] of cases) {
    emu.scriptApi('optoro', [{ status: 307, headers: { location }, body: '' }]);
    const r = await call(gw, tok, '/optoro/rmas/1', { method: 'POST', body: '{"x":1}', headers: JSON_HEADERS, redirect: 'manual' });
    assert.equal(r.status, 307, location);
    assert.equal(r.res.headers.get('location'), want, location);
  }
});

test('a proxied request over plain http is refused before anything is sent', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  emu.reset();
  const res = await gw.fetchHttp('/optoro/rmas', { headers: { authorization: `Bearer ${tok}` } });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error, 'invalid_request');
  assert.match(body.error_description, /https only/);
  assert.equal(emu.apiRequests('optoro').length + emu.exchanges('optoro'), 0, 'nothing was sent');
  // Over https, and over plain http to the machine itself (127.0.0.1), it goes through.
  assert.equal((await call(gw, tok, '/optoro/rmas')).status, 200);
  assert.equal((await raw(gw, { path: '/optoro/rmas', headers: { authorization: `Bearer ${tok}` } })).status, 200);
});

// ------------------------------------------------------------------------ lock-outs and floods

test('failed logins lock the address that made them, not the client id', async (t) => {
  const gw = await start(t, config());
  for (let i = 0; i < 10; i++) {
    assert.equal((await login(gw, '198.51.100.7', ALL.id, `wrong-${i}`)).status, 401);
  }
  // The right secret from the guessing address: locked for the rest of the minute.
  const locked = await login(gw, '198.51.100.7', ALL.id, ALL.secret);
  assert.equal(locked.status, 429);
  assert.equal(locked.json.error, 'too_many_attempts');
  assert.ok(Number(locked.retryAfter) > 0 && Number(locked.retryAfter) <= 60, locked.retryAfter);
  // The real client, elsewhere, is untouched; so is another id from another address.
  assert.equal((await login(gw, '203.0.113.9', ALL.id, ALL.secret)).status, 200);
  assert.equal((await login(gw, '2001:db8:5::1', 'nobody', 'x')).status, 401);
  // The lock ends with the minute.
  clock.advance(61_000);
  assert.equal((await login(gw, '198.51.100.7', ALL.id, ALL.secret)).status, 200);
});

test('registered and unknown client ids get the same answers in the same order', async (t) => {
  const gw = await start(t, config());
  const answers = async (ip, id) => {
    const seq = [];
    for (let i = 0; i < 12; i++) {
      const r = await login(gw, ip, id, `guess-${i}`);
      seq.push(`${r.status} ${r.json.error} ${r.retryAfter === null ? '' : 'retry-after'}`);
    }
    return seq;
  };
  const registered = await answers('198.51.100.20', ALL.id);
  const unknown = await answers('198.51.100.21', `no-such-${rand()}`);
  assert.deepEqual(unknown, registered);
  assert.equal(registered[9], '401 invalid_client ');
  assert.equal(registered[10], '429 too_many_attempts retry-after');
});

test('a caller asks for at most token_requests_per_minute tokens a minute (default 60)', async (t) => {
  const capped = { id: 'svc-capped', secret: `capped-${rand()}`, scopes: ['optoro'], token_requests_per_minute: 3 };
  const gw = await start(t, {
    ...config(),
    clients: {
      [ALL.id]: { secret: ALL.secret, scopes: ALL.scopes },
      [capped.id]: { secret: capped.secret, scopes: capped.scopes, token_requests_per_minute: 3 },
    },
  });
  const ip = '192.0.2.50';
  for (let i = 0; i < 3; i++) assert.equal((await login(gw, ip, capped.id, capped.secret)).status, 200);
  const flooded = await login(gw, ip, capped.id, capped.secret);
  assert.equal(flooded.status, 429);
  assert.equal(flooded.json.error, 'too_many_requests');
  assert.ok(Number(flooded.retryAfter) >= 1, flooded.retryAfter);
  const written = (await gw.kv.list({ prefix: 'tg:v2:ctok:' })).keys.length;
  // Other callers are not held up, and the caller is back once the minute is over.
  assert.equal((await login(gw, ip, ALL.id, ALL.secret)).status, 200);
  clock.advance(61_000);
  assert.equal((await login(gw, ip, capped.id, capped.secret)).status, 200);
  assert.equal(written, 3, 'the refused request wrote nothing');
  // The default: 60 a minute.
  clock.advance(61_000);
  const statuses = [];
  for (let i = 0; i < 61; i++) statuses.push((await login(gw, ip, ALL.id, ALL.secret)).status);
  assert.deepEqual(statuses.slice(0, 60), Array(60).fill(200));
  assert.equal(statuses[60], 429);
  await gw.settleLogs(50);
  const limited = gw.jsonLogs().filter((l) => l.event === 'token_requests_limited').map((l) => l.client_id);
  assert.deepEqual(limited, [capped.id, ALL.id], 'each refusal is logged with its caller');
});

// ------------------------------------------------------------------------------------ exhaustion

test('replay buffers share a 16 MiB budget: a body that does not fit streams and is not replayed', async (t) => {
  const gw = await start(t, config());
  const tok = await callerToken(gw);
  assert.equal((await call(gw, tok, '/optoro/warm')).status, 200);
  // Seventeen slow uploads of unknown length: sixteen hold the 1 MiB each may buffer for a
  // replay, which spends the budget; the seventeenth finds none left and streams (logged).
  const releases = [];
  const slow = [];
  for (let i = 0; i < 17; i++) {
    let release;
    const done = new Promise((r) => { release = r; });
    releases.push(release);
    const body = new ReadableStream({
      async start(c) {
        c.enqueue(new TextEncoder().encode(`{"slow":${i}`));
        await done;
        c.enqueue(new TextEncoder().encode('}'));
        c.close();
      },
    });
    slow.push(gw.fetch('/optoro/upload', {
      method: 'POST', body, duplex: 'half', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
    }));
  }
  await gw.waitForLog((l) => l.includes('"replay_budget_spent"'), 20_000);
  const streamed = () => new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('{"n":1}')); c.close(); } });
  const post = (body) => gw.fetch('/optoro/rmas', {
    method: 'POST', body, duplex: 'half', headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
  });
  // The budget is spent: this body streams, so the API's 401 stands (no replay).
  emu.reset();
  emu.scriptApi('optoro', [{ status: 401, body: { error: 'invalid_token' } }]);
  const over = await post(streamed());
  assert.equal(over.status, 401, await over.text());
  assert.equal(emu.apiRequests('optoro').length, 1, 'sent once, never replayed');
  assert.equal(emu.apiRequests('optoro')[0].body, '{"n":1}', 'streamed whole');
  // The slow uploads finish and give their bytes back.
  for (const r of releases) r();
  for (const res of await Promise.all(slow)) assert.equal(res.status, 200, await res.text());
  // Now the same body is held again, and replayed after a 401 with a new token (past the 30 s
  // in which a 401 right after a 401-caused refresh stands).
  clock.advance(31_000);
  emu.reset();
  emu.scriptApi('optoro', [{ status: 401, body: { error: 'invalid_token' } }]);
  const held = await post(streamed());
  assert.equal(held.status, 200, await held.text());
  assert.deepEqual(emu.apiRequests('optoro').map((r) => r.body), ['{"n":1}', '{"n":1}'], 'replayed');
});

sweepTest(() => emu, { minBodies: 20, minLogs: 20 });
