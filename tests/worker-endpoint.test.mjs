// Worker tests, the gateway's own token endpoint: POST /oauth/token (Optoro's JSON contract,
// docs/providers.md#optoro-token-request, and the RFC 6749 forms), oidc-provider end to end,
// /healthz and configuration errors.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOidc } from './support/oidc.mjs';
import { sha256Hex } from './support/gateway.mjs';
import {
  clock, sweep, ALL, JSON_HEADERS, FORM, CTOK, rand, defer, startEmulators, start, callerToken, call, source, sweepTest,
  TOKEN_RE, withChecksum,
} from './worker-lib.mjs';

let emu;
before(async () => { emu = await startEmulators(); });
after(() => emu?.close());
/** TOKENGATE_PROVIDERS + secrets for the emulators, with per-provider overrides. */
const config = (overrides = {}) => emu.gatewayConfig(overrides);

test('token endpoint: the Optoro JSON contract, RFC 6749 forms, only hashes in KV', async (t) => {
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
  // The test build's clock is the suite's, running on from each request's reading: the token
  // can be created in the next second when the machine is slow.
  const nowS = Math.floor(clock.now() / 1000);
  assert.ok(ok.created_at === nowS || ok.created_at === nowS + 1, `${ok.created_at} vs ${nowS}`);
  // tgt_, 256 random bits (44 base62 digits), a 128-bit tag (22), a CRC-32 checksum (6).
  assert.match(ok.access_token, TOKEN_RE, '256-bit token');
  assert.equal(withChecksum(ok.access_token.slice(0, -6)), ok.access_token);

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

  // KV holds each issued token's SHA-256 only, and a sealed record: neither the token, nor the
  // client id or scopes, are readable there.
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
      assert.ok(!value.includes(ALL.id) && !value.includes('special') && !value.includes('optoro'), `${name} is readable`);
      assert.throws(() => JSON.parse(value), 'the record is not plain JSON');
      // 12-byte nonce, ciphertext and 16-byte tag, base64.
      assert.ok(Buffer.from(value, 'base64').length > 12 + 16 + 20);
    }
  }
});

// ---------------------------------------------------------------- a real OAuth server

test('oidc-provider: client_secret_basic (special-character secret) and client_secret_post end to end', async (t) => {
  const oidc = await startOidc();
  defer(t, () => oidc.close());
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


sweepTest(() => emu);
