// Worker tests, the token-management dialect (`auth_style = "token_api"`, openapi.com Oauth v2:
// docs/providers.md#openapi-token-api) against its emulator (tests/support/openapi.mjs): create
// and proxy, rotation before expiry on the test clock, creation when rotation is refused, the
// superseded token deleted in the background, never more than two live tokens, the service's
// error message in the caller's error.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTokenService } from './support/openapi.mjs';
import crypto from 'node:crypto';
import { clock, FAST_RETRY, rand, start, callerToken, call, sweep, sweepTest, startEmulators, tempDir } from './worker-lib.mjs';

let svc;
let emu; // the OAuth emulators, only for the closing sweep
before(async () => {
  svc = await startTokenService({ clock });
  emu = await startEmulators();
});
after(async () => { await svc?.close(); await emu?.close(); });

const CALLER = { id: 'svc-openapi', secret: `caller-${rand()}`, scopes: ['openapi'] };
const clients = { [CALLER.id]: { secret: CALLER.secret, scopes: CALLER.scopes } };

/** A gateway with the emulator's provider entry (overridable), and a caller token for it. */
async function gateway(t, overrides = {}) {
  const { providers, secrets } = svc.gatewayConfig({ retry: FAST_RETRY, ...overrides });
  const gw = await start(t, { providers, secrets, clients });
  return { gw, tok: await callerToken(gw, CALLER.id, CALLER.secret) };
}

/** Waits (bounded) until `cond()` holds: background work ends after the response. */
async function eventually(cond, what) {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`never happened: ${what}`);
}

test('creates a token with HTTP Basic and token_body, then proxies with it', async (t) => {
  for (const shape of ['wrapped', 'plain']) {
    svc.setShape(shape);
    const { gw, tok } = await gateway(t);
    svc.reset();
    const r = await call(gw, tok, '/openapi/IT-start/12345678901?x=1');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.method, 'GET');
    assert.equal(r.json.path, '/company.openapi.com/IT-start/12345678901');
    const [create] = svc.requests('create');
    assert.equal(svc.count('create'), 1);
    // RFC 7617: the e-mail's `+` and `@` and the key's `:` arrive as written.
    assert.equal(create.headers.authorization,
      `Basic ${Buffer.from(`${svc.credentials.email}:${svc.credentials.apiKey}`).toString('base64')}`);
    assert.deepEqual(JSON.parse(create.body),
      { scopes: ['GET:company.openapi.com/IT-start', 'GET:company.openapi.com/IT-advanced'], ttl: 3600, name: 'tokengate' });
    // The next call reuses it; a path the scopes do not cover is the API's 403, passed through.
    assert.equal((await call(gw, tok, '/openapi/IT-advanced/1')).status, 200);
    assert.equal((await call(gw, tok, '/openapi/IT-full/1')).status, 403);
    assert.equal(svc.count('create'), 1, `${shape}: one token`);
    assert.equal(svc.count('rotate'), 0);
  }
  svc.setShape('wrapped');
});

test('rotates before expiry: one POST, then only PATCHes; at most two live tokens', async (t) => {
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  const { gw, tok } = await gateway(t);
  svc.reset();
  assert.equal((await call(gw, tok, '/openapi/IT-start/1')).status, 200);
  for (let i = 0; i < 3; i++) {
    clock.advance(3_541_000); // past the refresh point (1 h − 60 s skew), before expiry
    // (a caller token lives an hour too: a fresh one each time)
    const r = await call(gw, await callerToken(gw, CALLER.id, CALLER.secret), '/openapi/IT-start/1');
    assert.equal(r.status, 200, r.text);
  }
  assert.equal(svc.count('create'), 1);
  assert.equal(svc.count('rotate'), 3);
  for (const rq of svc.requests('rotate')) assert.match(rq.headers.authorization, /^Bearer \S+$/);
  assert.equal(svc.count('delete'), 0, 'rotation needs no deletion');
  assert.equal(svc.liveTokens().length, 1, 'rotation deleted each previous token');
  const exchanges = gw.jsonLogs().filter((l) => l.event === 'token_exchange' && l.provider === 'openapi');
  assert.deepEqual(exchanges.map((l) => l.op), ['create', 'rotate', 'rotate', 'rotate']);
});

test('another instance rotates the stored token instead of creating one', async (t) => {
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  const { providers, secrets } = svc.gatewayConfig({ retry: FAST_RETRY });
  const shared = { providers, secrets, clients, kvPersist: tempDir(t), key: crypto.randomBytes(32).toString('base64') };
  const a = await start(t, shared);
  svc.reset();
  assert.equal((await call(a, await callerToken(a, CALLER.id, CALLER.secret), '/openapi/IT-start/1')).status, 200);
  clock.advance(3_541_000);
  // A second isolate, nothing in memory: the stored token (kept in KV until it expires, with
  // its refresh token) is rotated.
  const b = await start(t, shared);
  assert.equal((await call(b, await callerToken(b, CALLER.id, CALLER.secret), '/openapi/IT-start/1')).status, 200);
  assert.deepEqual(svc.requests().filter((q) => q.kind !== 'api').map((q) => q.kind), ['create', 'rotate']);
  // The first takes the rotated token from KV; the one it held went with the rotation.
  assert.equal((await call(a, await callerToken(a, CALLER.id, CALLER.secret), '/openapi/IT-start/2')).status, 200);
  assert.equal(svc.count('create'), 1);
  assert.equal(svc.count('rotate'), 1);
  assert.equal(svc.liveTokens().length, 1);
});

test('a refused rotation creates a new token and deletes the old one in the background', async (t) => {
  for (const refusal of [
    { status: 401, body: { success: false, message: 'Invalid refresh token', error: 2, data: null } },
    { status: 404, body: { success: false, message: 'Token not found', error: 5, data: null } },
  ]) {
    // Starts from no live token, so the account's count is this gateway's alone.
    for (const live of svc.liveTokens()) svc.deleteToken(live);
    const { gw, tok } = await gateway(t);
    svc.reset();
    assert.equal((await call(gw, tok, '/openapi/IT-start/1')).status, 200);
    const [first] = svc.liveTokens();
    clock.advance(3_541_000);
    svc.script('rotate', [refusal]);
    const r = await call(gw, tok, '/openapi/IT-start/1');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(svc.requests().filter((q) => q.kind !== 'api').map((q) => q.kind).slice(0, 3), ['create', 'rotate', 'create']);
    assert.ok(svc.liveTokens().length <= 2, 'never more than two live tokens');
    await eventually(() => svc.count('delete') === 1, 'the superseded token is deleted');
    assert.equal(svc.requests('delete')[0].url, `/tokens/${first}`);
    await eventually(() => svc.liveTokens().length === 1, 'one live token left');
    assert.ok(!svc.isLive(first));
    await gw.waitForLog((l) => l.includes('"token_revoked"') && l.includes('"ok":true'), 2000);
  }
});

test('a token the service no longer honours (API 401) is replaced, and the call replayed', async (t) => {
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  const { gw, tok } = await gateway(t);
  svc.reset();
  assert.equal((await call(gw, tok, '/openapi/IT-start/1')).status, 200);
  const [first] = svc.liveTokens();
  svc.deleteToken(first); // removed at the service behind the gateway's back
  const r = await call(gw, tok, '/openapi/IT-start/2');
  assert.equal(r.status, 200, r.text);
  assert.equal(svc.count('create'), 2);
  assert.equal(svc.liveTokens().length, 1);
  // The refused token is deleted too (the service answers 404: it is gone already).
  await eventually(() => svc.count('delete') === 1, 'the refused token to be deleted');
  assert.equal(svc.requests('delete')[0].url, `/tokens/${first}`);
});

test('a failed deletion is logged and changes nothing for callers', async (t) => {
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  const { gw, tok } = await gateway(t);
  svc.reset();
  assert.equal((await call(gw, tok, '/openapi/IT-start/1')).status, 200);
  clock.advance(3_541_000);
  svc.script('rotate', [{ status: 404, body: { success: false, message: 'Token not found', error: 5, data: null } }]);
  svc.script('delete', [{ status: 500, body: { success: false, message: 'Internal error', error: 99, data: null } }]);
  assert.equal((await call(gw, tok, '/openapi/IT-start/1')).status, 200);
  const line = await gw.waitForLog((l) => l.includes('"token_revoked"'), 2000);
  const ev = JSON.parse(line);
  assert.equal(ev.ok, false);
  assert.equal(ev.status, 500);
  assert.equal(ev.provider_error, 'error 99');
  assert.equal((await call(gw, tok, '/openapi/IT-start/2')).status, 200);
  assert.equal(svc.count('create'), 2);
});

test("the service's error message and code reach the caller's 502; 401 is invalid_client with a cooldown", async (t) => {
  const { gw, tok } = await gateway(t, {
    token_body: { scopes: ['GET:company.openapi.com/IT-start', 'GET:nope.openapi.com/x'], ttl: 3600 },
  });
  svc.reset();
  const r = await call(gw, tok, '/openapi/IT-start/1');
  assert.equal(r.status, 502);
  assert.equal(r.json.error, 'invalid_request');
  assert.match(r.json.error_description, /HTTP 422/);
  assert.match(r.json.error_description, /\[error 90\]: Invalid scopes specified or API not enabled/);
  assert.ok(gw.jsonLogs().some((l) => l.event === 'token_exchange' && l.provider_error === 'error 90'));

  const wrong = svc.gatewayConfig({ retry: FAST_RETRY });
  wrong.secrets.OPENAPI_API_KEY = `wrong-${rand()}`;
  sweep.secrets.add(wrong.secrets.OPENAPI_API_KEY);
  const gw2 = await start(t, { providers: wrong.providers, secrets: wrong.secrets, clients });
  const tok2 = await callerToken(gw2, CALLER.id, CALLER.secret);
  svc.reset();
  const bad = await call(gw2, tok2, '/openapi/IT-start/1');
  assert.equal(bad.status, 502);
  assert.equal(bad.json.error, 'invalid_client');
  assert.match(bad.json.error_description, /Unauthorized/);
  assert.equal((await call(gw2, tok2, '/openapi/IT-start/1')).status, 502);
  assert.equal(svc.count('create'), 1, 'the second call waited out the cooldown instead of calling');
});

test('openapi tokens, refresh tokens and the API key join the sweep', () => {
  sweep.secrets.add(svc.credentials.apiKey);
  for (const r of svc.allTokens()) {
    sweep.providerTokens.add(r.token);
    sweep.providerTokens.add(r.refreshToken);
  }
  assert.ok(svc.allTokens().length >= 8);
});

sweepTest(() => emu, { minBodies: 10, minLogs: 10 });
