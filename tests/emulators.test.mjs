// Tests of the test support code itself: the provider emulators enforce the providers'
// documentation (docs/providers.md), oidc-provider issues client-credentials tokens, the
// demo-provider CLI works, and the Miniflare harness (bindings, clock, log capture, shared KV)
// works with a stub Worker.
// Run: node --test tests/emulators.test.mjs

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { startProviders } from './support/emulators.mjs';
import { startOidc } from './support/oidc.mjs';
import {
  startGateway, makeClock, issueCallerToken, sha256Hex, makeTempDir, removeDir, REPO_ROOT,
} from './support/gateway.mjs';

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json' };
const post = (url, body, headers = JSON_HEADERS) => fetch(url, { method: 'POST', headers, body });
const jwtClaims = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString('utf8'));
const nowS = () => Math.floor(Date.now() / 1000);

describe('provider emulators', () => {
  let emu;
  before(async () => { emu = await startProviders(); });
  after(() => emu.close());

  const optoroBody = (over = {}) => JSON.stringify({
    grant_type: 'client_credentials', client_id: emu.credentials.optoro.clientId,
    client_secret: emu.credentials.optoro.clientSecret, ...over,
  });
  const optimumForm = (over = {}) => new URLSearchParams({
    client_id: emu.credentials.optimum.clientId, client_secret: emu.credentials.optimum.clientSecret,
    grant_type: 'client_credentials', ...over,
  }).toString();
  const partnerBody = (over = {}) => JSON.stringify({
    grant_type: 'client_credentials', client_id: emu.credentials.partner.clientId,
    client_secret: emu.credentials.partner.clientSecret, ...over,
  });
  const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

  test('optoro accepts the exact JSON body (documented Optoro response shape)', async () => {
    const res = await post(emu.endpoints.optoro.token, optoroBody());
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.deepEqual(Object.keys(j).sort(), ['access_token', 'created_at', 'expires_in', 'scope', 'token_type']);
    assert.match(j.access_token, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(j.token_type, 'Bearer');
    assert.equal(j.expires_in, 90000);
    assert.equal(j.scope, 'read write');
    assert.ok(Math.abs(j.created_at - nowS()) <= 2);
    assert.ok(emu.isValidToken('optoro', j.access_token));
  });

  test('optoro rejects a form body, other content types and bad JSON with 400', async () => {
    const { clientId, clientSecret } = emu.credentials.optoro;
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret });
    assert.equal((await post(emu.endpoints.optoro.token, form.toString(), FORM)).status, 400);
    assert.equal((await post(emu.endpoints.optoro.token, optoroBody(), { 'content-type': 'text/plain' })).status, 400);
    assert.equal((await post(emu.endpoints.optoro.token, '{"grant_type":', JSON_HEADERS)).status, 400);
    assert.equal((await post(emu.endpoints.optoro.token, '["x"]', JSON_HEADERS)).status, 400);
  });

  test('optoro answers 422 for unknown, missing or invalid fields', async () => {
    let res = await post(emu.endpoints.optoro.token, optoroBody({ scope: 'read' }));
    assert.equal(res.status, 422);
    assert.deepEqual(await res.json(), { message: 'Validation Failed', errors: [{ field: 'scope', code: 'unexpected_field' }] });
    res = await post(emu.endpoints.optoro.token, JSON.stringify({ grant_type: 'client_credentials', client_id: 'x' }));
    assert.equal(res.status, 422);
    assert.deepEqual((await res.json()).errors, [{ field: 'client_secret', code: 'missing_field' }]);
    res = await post(emu.endpoints.optoro.token, optoroBody({ grant_type: 'password' }));
    assert.equal(res.status, 422);
    assert.deepEqual((await res.json()).errors, [{ field: 'grant_type', code: 'invalid' }]);
  });

  test('optoro answers 401 invalid_client for wrong credentials', async () => {
    const res = await post(emu.endpoints.optoro.token, optoroBody({ client_secret: 'wrong' }));
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), {
      error: 'invalid_client',
      error_description: 'Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.',
    });
  });

  test('optoro API needs a valid bearer (any scheme case) and echoes the request', async () => {
    const { access_token: tok } = await (await post(emu.endpoints.optoro.token, optoroBody())).json();
    assert.equal((await fetch(`${emu.endpoints.optoro.api}/v1/rmas`)).status, 401);
    assert.equal((await fetch(`${emu.endpoints.optoro.api}/v1/rmas`, { headers: { authorization: 'Bearer nope' } })).status, 401);
    const res = await fetch(`${emu.endpoints.optoro.api}/v1/rmas?a=1&b=%2F`, {
      method: 'PUT', headers: { authorization: `bearer ${tok}`, 'x-optiturn-api-version': '1', 'content-type': 'application/json' },
      body: '{"x":1}',
    });
    assert.equal(res.status, 200);
    const echo = await res.json();
    assert.equal(echo.method, 'PUT');
    assert.equal(echo.path, '/optoro/api/v1/rmas');
    assert.equal(echo.query, 'a=1&b=%2F');
    assert.equal(echo.headers['x-optiturn-api-version'], '1');
    assert.equal(echo.body, '{"x":1}');
    assert.equal(echo.bodyBytes, 7);
    const stream = await fetch(`${emu.endpoints.optoro.api}/stream?bytes=100000&chunk=7000`, { headers: { authorization: `Bearer ${tok}` } });
    assert.equal(stream.status, 200);
    assert.equal((await stream.arrayBuffer()).byteLength, 100000);
  });

  test('optimum takes form parameters and returns a long-lived JWT (~355 days, as documented)', async () => {
    const res = await post(emu.endpoints.optimum.token, optimumForm(), FORM);
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.deepEqual(Object.keys(j).sort(), ['access_token', 'expires_in', 'token_type']);
    assert.equal(j.expires_in, 30734400);
    assert.equal(j.token_type, 'Bearer');
    const claims = jwtClaims(j.access_token);
    assert.equal(claims.exp - claims.iat, 30734400);
    assert.ok(Math.abs(claims.iat - nowS()) <= 2);
    const api = await fetch(`${emu.endpoints.optimum.api}/v1/vehicles`, { headers: { authorization: `Bearer ${j.access_token}` } });
    assert.equal(api.status, 200);
  });

  test('optimum rejects JSON, wrong or header-only credentials, duplicates', async () => {
    const { clientId, clientSecret } = emu.credentials.optimum;
    let res = await post(emu.endpoints.optimum.token, JSON.stringify({ client_id: clientId, client_secret: clientSecret, grant_type: 'client_credentials' }));
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: 'invalid_request' });
    res = await post(emu.endpoints.optimum.token, optimumForm({ client_secret: 'wrong' }), FORM);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error: 'invalid_client' });
    const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64');
    res = await post(emu.endpoints.optimum.token, 'grant_type=client_credentials', { ...FORM, authorization: `Basic ${basic}` });
    assert.deepEqual([res.status, await res.json()], [400, { error: 'invalid_client' }]);
    res = await post(emu.endpoints.optimum.token, `${optimumForm()}&grant_type=client_credentials`, FORM);
    assert.deepEqual([res.status, await res.json()], [400, { error: 'invalid_request' }]);
  });

  test('partner requires Accept: application/json and a JSON body (as the partner API documents)', async () => {
    let res = await post(emu.endpoints.partner.token, partnerBody(), { 'content-type': 'application/json' });
    assert.equal(res.status, 406);
    res = await post(emu.endpoints.partner.token, new URLSearchParams(JSON.parse(partnerBody())).toString(), { ...FORM, accept: 'application/json' });
    assert.equal(res.status, 415);
    res = await post(emu.endpoints.partner.token, partnerBody({ client_secret: 'wrong' }));
    assert.equal(res.status, 401);
    assert.equal((await res.json()).error, 'invalid_client');
    res = await post(emu.endpoints.partner.token, partnerBody());
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.deepEqual(Object.keys(j), ['token_type', 'expires_in', 'access_token']);
    assert.equal(j.expires_in, 3600);
    const claims = jwtClaims(j.access_token);
    assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 3600)) <= 2);
    const api = await fetch(`${emu.endpoints.partner.api}/bookings`, { headers: { authorization: `Bearer ${j.access_token}` } });
    assert.equal(api.status, 200);
    assert.equal((await api.json()).path, '/partner/api/v1/bookings');
  });

  test('scripted token replies, delays, dropped connections and counters', async () => {
    emu.reset();
    emu.script('optoro', [{ status: 503, body: '<html>502 Bad Gateway</html>', headers: { 'content-type': 'text/html' } },
      { status: 429, headers: { 'retry-after': '1' }, body: { message: 'slow down' } }, 'ok', { delayMs: 150 }, { destroy: true }]);
    let res = await post(emu.endpoints.optoro.token, optoroBody());
    assert.equal(res.status, 503);
    assert.equal(await res.text(), '<html>502 Bad Gateway</html>');
    res = await post(emu.endpoints.optoro.token, optoroBody());
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.deepEqual(await res.json(), { message: 'slow down' });
    assert.equal((await post(emu.endpoints.optoro.token, optoroBody())).status, 200);
    const t0 = Date.now();
    assert.equal((await post(emu.endpoints.optoro.token, optoroBody())).status, 200);
    assert.ok(Date.now() - t0 >= 140);
    await assert.rejects(post(emu.endpoints.optoro.token, optoroBody()));
    assert.equal((await post(emu.endpoints.optoro.token, optoroBody({ client_secret: 'x' }))).status, 401);
    assert.equal(emu.exchanges('optoro'), 6);
    const reqs = emu.tokenRequests('optoro');
    assert.equal(reqs[0].method, 'POST');
    assert.equal(reqs[0].headers['content-type'], 'application/json');
    assert.equal(reqs[0].body, optoroBody());
    assert.equal(emu.exchanges('partner'), 0);
  });

  test('scripted API replies, revokeAll and setLifetime', async () => {
    emu.reset();
    const { access_token: tok } = await (await post(emu.endpoints.optoro.token, optoroBody())).json();
    const auth = { authorization: `Bearer ${tok}` };
    emu.scriptApi('optoro', [{ status: 503 }, { status: 429, headers: { 'retry-after': '1' } }]);
    assert.equal((await fetch(`${emu.endpoints.optoro.api}/x`, { headers: auth })).status, 503);
    assert.equal((await fetch(`${emu.endpoints.optoro.api}/x`, { headers: auth })).status, 429);
    assert.equal((await fetch(`${emu.endpoints.optoro.api}/x`, { headers: auth })).status, 200);
    assert.equal(emu.apiRequests('optoro').length, 3);
    emu.revokeAll('optoro');
    const res = await fetch(`${emu.endpoints.optoro.api}/x`, { headers: auth });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate'), /invalid_token/);
    emu.setLifetime('partner', 90);
    const j = await (await post(emu.endpoints.partner.token, partnerBody())).json();
    assert.equal(j.expires_in, 90);
    assert.ok(Math.abs(jwtClaims(j.access_token).exp - (Date.now() / 1000 + 90)) <= 2);
    emu.setLifetime('partner', null);
    assert.equal((await (await post(emu.endpoints.partner.token, partnerBody())).json()).expires_in, 3600);
  });

  test('gatewayConfig describes the emulators for TOKENGATE_PROVIDERS', () => {
    const { providers, secrets } = emu.gatewayConfig({ optoro: { api_headers: { 'X-Optiturn-Api-Version': '1' } } });
    assert.deepEqual(Object.keys(providers), ['optoro', 'optimum', 'partner']);
    assert.equal(providers.optoro.auth_style, 'json_body');
    assert.equal(providers.optimum.auth_style, 'client_secret_post');
    assert.equal(providers.optoro.api_headers['X-Optiturn-Api-Version'], '1');
    assert.equal(secrets[providers.partner.client_secret_name], emu.credentials.partner.clientSecret);
  });
});

test('emulator tokens expire on an injected clock', async (t) => {
  const clock = makeClock(Date.parse('2030-01-01T00:00:00Z'));
  const emu = await startProviders({ clock, credentials: { partner: { clientId: 'p', clientSecret: 's' } } });
  t.after(() => emu.close());
  emu.setLifetime('partner', 120);
  const res = await post(emu.endpoints.partner.token, JSON.stringify({ grant_type: 'client_credentials', client_id: 'p', client_secret: 's' }));
  const { access_token: tok } = await res.json();
  assert.equal(jwtClaims(tok).exp, Date.parse('2030-01-01T00:02:00Z') / 1000);
  const call = () => fetch(`${emu.endpoints.partner.api}/x`, { headers: { authorization: `Bearer ${tok}` } });
  assert.equal((await call()).status, 200);
  clock.advance(121_000);
  assert.equal((await call()).status, 401);
});

describe('oidc-provider (client credentials)', () => {
  let oidc;
  before(async () => { oidc = await startOidc(); });
  after(() => oidc.close());
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+'); // application/x-www-form-urlencoded
  const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };

  test('client_secret_basic with a special-character secret, RFC 6749 §2.3.1 encoding', async () => {
    const { clientId, clientSecret } = oidc.clients.basic;
    assert.match(clientSecret, /[+/:%]/);
    const good = Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64');
    const res = await post(oidc.tokenUrl, 'grant_type=client_credentials', { ...FORM, authorization: `Basic ${good}` });
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.equal(j.token_type, 'Bearer');
    assert.ok(await oidc.isIssuedToken(j.access_token));
    assert.equal((await oidc.tokenInfo(j.access_token)).clientId, clientId);
    const naive = Buffer.from(`${clientId}:${clientSecret}`).toString('base64');
    const bad = await post(oidc.tokenUrl, 'grant_type=client_credentials', { ...FORM, authorization: `Basic ${naive}` });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error, 'invalid_request');
  });

  test('client_secret_post, and a resource indicator gives a JWT', async () => {
    const { clientId, clientSecret } = oidc.clients.post;
    let res = await post(oidc.tokenUrl, new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString(), FORM);
    assert.equal(res.status, 200);
    const { access_token: tok } = await res.json();
    assert.ok(await oidc.isIssuedToken(tok));
    res = await post(oidc.tokenUrl, new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, resource: 'https://api.test/' }).toString(), FORM);
    const { access_token: jwt } = await res.json();
    assert.equal((await oidc.tokenInfo(jwt)).aud, 'https://api.test/');
    assert.equal(await oidc.isIssuedToken('not-a-token'), false);
    assert.equal(await oidc.isIssuedToken(`${tok}x`), false);
    const wrong = await post(oidc.tokenUrl, new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: 'nope' }).toString(), FORM);
    assert.equal(wrong.status, 401);
    assert.equal((await wrong.json()).error, 'invalid_client');
    assert.ok(oidc.exchanges() >= 3);
  });

  test('echo API records the forwarded bearer', async () => {
    const api = await fetch(`${oidc.apiBase}/things?x=1`, { headers: { authorization: 'Bearer abc' } });
    assert.equal(api.status, 200);
    assert.equal(oidc.apiRequests().at(-1).headers.authorization, 'Bearer abc');
    assert.equal(oidc.gatewayConfig().providers['oidc-basic'].auth_style, 'client_secret_basic');
  });
});

test('demo-provider CLI: fixed demo credentials, ready line, SIGTERM', async (t) => {
  const dir = makeTempDir('tokengate-demo-');
  t.after(() => removeDir(dir));
  const credFile = path.join(dir, 'creds.json');
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'tests/support/demo-provider.mjs'), '--port', '0', '--credentials-file', credFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const [line] = await new Promise((resolve) => {
    let buf = '';
    child.stdout.on('data', (d) => { buf += d; if (buf.includes('\n')) resolve([buf.split('\n')[0]]); });
  });
  const ready = JSON.parse(line);
  assert.doesNotMatch(line, /demo-secret/);
  assert.deepEqual(JSON.parse(fs.readFileSync(credFile, 'utf8')).optoro, { clientId: 'demo-client', clientSecret: 'demo-secret' });
  const res = await post(ready.token_urls.optoro, JSON.stringify({ grant_type: 'client_credentials', client_id: 'demo-client', client_secret: 'demo-secret' }));
  assert.equal(res.status, 200);
  // The token-management service beside them, with its demo account.
  assert.deepEqual(JSON.parse(fs.readFileSync(credFile, 'utf8')).openapi, { email: 'demo+tokengate@example.com', apiKey: 'demo-secret' });
  const created = await post(ready.token_urls.openapi, JSON.stringify({ scopes: ['GET:company.openapi.com/IT-start'], ttl: 60 }),
    { ...JSON_HEADERS, authorization: `Basic ${Buffer.from('demo+tokengate@example.com:demo-secret').toString('base64')}` });
  assert.equal(created.status, 200);
  const api = await fetch(`${ready.api_bases.openapi}IT-start/1`, { headers: { authorization: `Bearer ${(await created.json()).data.token}` } });
  assert.equal(api.status, 200);
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});

// A stand-in for build/index.js, proving the harness: bindings, clock, logs, KV sharing.
const STUB_WORKER = `
export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    const now = env.TOKENGATE_CLOCK ? Number(await (await env.TOKENGATE_CLOCK.fetch('http://clock/now')).text()) : Date.now();
    console.log(JSON.stringify({ event: 'request', path: url.pathname }));
    if (url.pathname === '/oauth/token') {
      const b = await req.json();
      const c = JSON.parse(env.TOKENGATE_CLIENTS)[b.client_id];
      const h = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(b.client_secret))), (x) => x.toString(16).padStart(2, '0')).join('');
      if (!c || c.secret_sha256 !== h) return Response.json({ error: 'invalid_client' }, { status: 401 });
      await env.TOKENGATE_KV.put('tok', 'stub-token', { expirationTtl: 60 });
      return Response.json({ access_token: 'stub-token', token_type: 'Bearer', expires_in: c.token_ttl_s, created_at: Math.floor(now / 1000) });
    }
    if (url.pathname === '/kv') return new Response(String(await env.TOKENGATE_KV.get('tok')));
    console.error('stderr line');
    return Response.json({ now, providers: env.TOKENGATE_PROVIDERS, key: atob(env.TOKENGATE_KEY).length, secret: typeof env.OPTORO_CLIENT_SECRET });
  },
};`;

test('Miniflare harness: bindings, clock, log capture, KV shared across instances', async (t) => {
  const buildDir = makeTempDir('tokengate-stub-');
  const kvDir = makeTempDir();
  t.after(() => { removeDir(buildDir); removeDir(kvDir); });
  fs.writeFileSync(path.join(buildDir, 'index.js'), STUB_WORKER);
  const clock = makeClock(1_700_000_000_000);
  const opts = {
    buildDir, clock, kvPersist: kvDir,
    providers: { optoro: { token_url: 'http://127.0.0.1:1/t', api_base: 'http://127.0.0.1:1/a' } },
    clients: { caller: { secret: 'caller-secret', scopes: ['optoro'] } },
    secrets: { OPTORO_CLIENT_SECRET: 'x' },
  };
  const gw = await startGateway(opts);
  t.after(() => gw.close());
  const info = await (await gw.fetch('/info')).json();
  assert.equal(info.now, 1_700_000_000_000);
  assert.equal(info.providers.optoro.token_url, 'http://127.0.0.1:1/t');
  assert.equal(info.key, 32);
  assert.equal(info.secret, 'string');
  clock.advance(5000);
  assert.equal((await (await gw.fetch('/info')).json()).now, 1_700_000_005_000);
  assert.ok(clock.reads >= 2);
  assert.equal(await issueCallerToken(gw, 'caller', 'caller-secret'), 'stub-token');
  await assert.rejects(issueCallerToken(gw, 'caller', 'wrong'), /HTTP 401 invalid_client/);
  await gw.waitForLog('stderr line');
  await gw.settleLogs();
  assert.ok(gw.jsonLogs().some((l) => l.event === 'request' && l.path === '/oauth/token'));
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');

  const gw2 = await startGateway(opts); // fresh instance, same KV storage
  t.after(() => gw2.close());
  assert.equal(await (await gw2.fetch('/kv')).text(), 'stub-token');
  assert.equal(await gw2.kv.get('tok'), 'stub-token');
  const gw3 = await startGateway({ ...opts, kvPersist: undefined }); // private storage
  t.after(() => gw3.close());
  assert.equal(await (await gw3.fetch('/kv')).text(), 'null');
});

test('maskBearer: the echo never shows the bearer it received (demo provider)', async (t) => {
  const emu = await startProviders({ maskBearer: true });
  t.after(() => emu.close());
  const { clientId, clientSecret } = emu.credentials.optoro;
  const tok = await (await post(`${emu.url}/optoro/oauth/token`, JSON.stringify({
    grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret,
  }))).json();
  const res = await fetch(`${emu.url}/optoro/api/rmas`, { headers: { authorization: `Bearer ${tok.access_token}` } });
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.ok(!text.includes(tok.access_token));
  const digest = sha256Hex(tok.access_token).slice(0, 12);
  assert.equal(JSON.parse(text).headers.authorization, `Bearer <${tok.access_token.length} chars, sha256 ${digest}…>`);
});
