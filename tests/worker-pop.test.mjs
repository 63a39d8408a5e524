// Strong client authentication in the Worker (issue 18): the built test Worker in workerd
// (Miniflare) against oidc-provider (tests/support/pop.mjs) — private_key_jwt with ES256, RS256
// and PS256 keys (JWK and PKCS#8 PEM secrets), a replayed assertion, DPoP-bound tokens on both
// endpoints with their nonces (a configured DPoP key and a generated one), the minter signing
// the same way, configuration errors at start-up — and mTLS as far as it runs locally: a
// provider's requests go through its `mtls_certificate` binding's `fetch` (bound here as a
// service binding that stands in for the certificate), Miniflare's own mTLS binding (which only
// works remotely) is used rather than the global fetch, and a missing binding stops start-up.
// The clock is the real one: the peers check `iat` against theirs.
// Run: node --test --test-timeout=300000 tests/worker-pop.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { start, callerToken, call, rand, source, sweep, ALL } from './worker-lib.mjs';
import { startPopProvider, keyPair, thumbprint } from './support/pop.mjs';

let pop;
let echo;
before(async () => { [pop, echo] = await Promise.all([startPopProvider(), startEcho()]); });
after(async () => { await Promise.all([pop?.close(), echo?.close()]); });

// Keys the gateway is configured with, beside the clients' keys pop.mjs made: DPoP keys.
const dpopEc = keyPair('ES256');
const dpopRsa = keyPair('PS256');
const jwk = (k) => JSON.stringify(k.privateJwk);
const publicOf = (k) => k.publicJwk;

/** Everything secret in a key, for the sweep: its whole text and its private parts. */
function secretParts(k) {
  const pemBody = k.pem.split('\n').filter((l) => l && !l.startsWith('-----'));
  const d = k.privateJwk;
  return [jwk(k), k.pem, ...pemBody, ...['d', 'p', 'q', 'dp', 'dq', 'qi'].map((m) => d[m]).filter(Boolean)];
}
for (const k of [dpopEc, dpopRsa]) for (const s of secretParts(k)) sweep.secrets.add(s);

/** A private_key_jwt provider entry for pop's client of `alg`, DPoP-bound (the API takes no other). */
function pkProvider(alg, extra = {}) {
  const c = pop.clients[alg];
  return {
    token_url: pop.tokenUrl, api_base: `${pop.apiBase}/`, client_id: c.clientId,
    auth_style: 'private_key_jwt', client_key_name: `PK_${alg}`, client_key_alg: alg, kid: c.kid,
    scope: 'api:read', dpop: true, retry: { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 5 },
    ...extra,
  };
}

/** Starts a gateway on the real clock, with one caller allowed every provider given. */
async function gateway(t, providers, secrets, opts = {}) {
  for (const alg of ['ES256', 'RS256', 'PS256']) for (const s of secretParts(pop.clients[alg])) sweep.secrets.add(s);
  sweep.secrets.add(pop.dpopSecretClient.clientSecret);
  return start(t, {
    clock: undefined,
    providers,
    secrets,
    clients: { [ALL.id]: { secret: ALL.secret, scopes: Object.keys(providers) } },
    ...opts,
  });
}

const forClient = (clientId) => pop.tokenRequests().filter((r) => r.clientId === clientId || r.clientId === null);
const apiFor = (path) => pop.apiRequests().filter((r) => r.path.startsWith(path));

test('private_key_jwt: ES256 (JWK), RS256 (PEM) and PS256 (JWK) assertions obtain DPoP-bound tokens that reach the API', async (t) => {
  pop.reset();
  const gw = await gateway(t, {
    es: pkProvider('ES256'),
    rs: pkProvider('RS256', { dpop_key_name: 'DPOP_EC' }),
    ps: pkProvider('PS256', { dpop_key_name: 'DPOP_RSA' }),
  }, {
    PK_ES256: jwk(pop.clients.ES256), PK_RS256: pop.clients.RS256.pem, PK_PS256: jwk(pop.clients.PS256),
    DPOP_EC: jwk(dpopEc), DPOP_RSA: dpopRsa.pem,
  });
  const tok = await callerToken(gw);
  const expectedJkt = { rs: thumbprint(publicOf(dpopEc)), ps: thumbprint(publicOf(dpopRsa)) };
  for (const [id, alg] of [['es', 'ES256'], ['rs', 'RS256'], ['ps', 'PS256']]) {
    const clientId = pop.clients[alg].clientId;
    const r = await call(gw, tok, `/${id}/things?x=1`);
    assert.equal(r.status, 200, `${id}: ${r.text}`);
    assert.equal(r.json.clientId, clientId);
    assert.equal(source(r.timing), 'exchange');
    if (expectedJkt[id]) assert.equal(r.json.jkt, expectedJkt[id], `${id}: bound to the configured DPoP key`);
    // The token endpoint asked for its nonce once, then issued a DPoP token to this client.
    const mine = pop.tokenRequests().filter((x) => x.clientId === clientId);
    assert.deepEqual(mine.map((x) => [x.status, x.error ?? x.tokenType]), [[400, 'use_dpop_nonce'], [200, 'DPoP']], id);
    assert.ok(mine.every((x) => x.dpop), `${id}: every token request carried a DPoP proof`);
    // The API asked for its own nonce once; the proof with it was verified (binding included).
    assert.deepEqual(apiFor(`/api/things`).slice(-2).map((x) => [x.status, x.error ?? null]),
      [[401, 'use_dpop_nonce'], [200, null]], id);
    // The next call: the token from memory, a new proof with the nonce kept — no new refusal.
    const before = pop.apiRequests().length;
    const again = await call(gw, tok, `/${id}/more`);
    assert.equal(again.status, 200, again.text);
    assert.equal(source(again.timing), 'memory');
    assert.deepEqual(pop.apiRequests().slice(before).map((x) => x.status), [200]);
  }
  await gw.settleLogs(30);
  const nonces = gw.jsonLogs().filter((l) => l.event === 'dpop_nonce');
  assert.equal(nonces.filter((l) => l.server === 'api').length, 3);
  assert.equal(nonces.filter((l) => l.server === 'token_endpoint').length, 3);
});

test('a replayed client assertion is refused by the provider and replaced by a new one: the caller never sees it', async (t) => {
  pop.reset();
  const gw = await gateway(t, { es: pkProvider('ES256', { dpop_key_name: 'DPOP_EC' }) },
    { PK_ES256: jwk(pop.clients.ES256), DPOP_EC: jwk(dpopEc) });
  const tok = await callerToken(gw);
  pop.replayNextAssertion();
  const r = await call(gw, tok, '/es/replayed');
  assert.equal(r.status, 200, r.text);
  const seen = forClient(pop.clients.ES256.clientId);
  const refusal = seen.findIndex((x) => x.error === 'invalid_client');
  assert.ok(refusal >= 0, `the provider refused the replayed assertion: ${JSON.stringify(seen)}`);
  assert.equal(seen.at(-1).status, 200);
  assert.equal(seen.at(-1).tokenType, 'DPoP');
  assert.ok(seen.length <= 4, `bounded: ${JSON.stringify(seen)}`);
  await gw.waitForLog((l) => l.includes('"client_assertion_refused"'), 2000);
});

test('DPoP with a client secret: a configured key and a generated one, the nonce dance on both endpoints', async (t) => {
  const { clientId, clientSecret } = pop.dpopSecretClient;
  const entry = (extra) => ({
    token_url: pop.tokenUrl, api_base: `${pop.apiBase}/`, client_id: clientId, client_secret_name: 'DPOP_BASIC_SECRET',
    scope: 'api:read', dpop: true, ...extra,
  });
  for (const [name, extra, secrets] of [
    ['configured', { dpop_key_name: 'DPOP_EC' }, { DPOP_EC: jwk(dpopEc) }],
    ['generated', {}, {}],
  ]) {
    pop.reset();
    const gw = await gateway(t, { bound: entry(extra) }, { DPOP_BASIC_SECRET: clientSecret, ...secrets });
    const tok = await callerToken(gw);
    const r = await call(gw, tok, '/bound/x');
    assert.equal(r.status, 200, `${name}: ${r.text}`);
    assert.deepEqual(pop.tokenRequests().map((x) => [x.status, x.error ?? x.tokenType, x.dpop]),
      [[400, 'use_dpop_nonce', true], [200, 'DPoP', true]], name);
    assert.deepEqual(pop.apiRequests().map((x) => [x.status, x.error ?? null]),
      [[401, 'use_dpop_nonce'], [200, null]], name);
    const { jkt } = pop.apiRequests().at(-1);
    if (name === 'configured') assert.equal(jkt, thumbprint(publicOf(dpopEc)));
    else assert.notEqual(jkt, thumbprint(publicOf(dpopEc)));
    // The same key signs the next proof (the API checks the binding itself).
    const again = await call(gw, tok, '/bound/y');
    assert.equal(again.status, 200, again.text);
    assert.equal(pop.apiRequests().at(-1).jkt, jkt);
    assert.equal(pop.tokenRequests().length, 2, `${name}: no second exchange`);
    // A token bound to a key only this isolate holds is not shared through KV: no other
    // isolate could use it.
    const stored = (await gw.kv.list({ prefix: 'tg:v2:ptok:' })).keys;
    assert.equal(stored.length, name === 'configured' ? 1 : 0, `${name}: provider tokens in KV`);
  }
});

test("a streamed body is not sent twice: the API's nonce 401 reaches the caller, the token is kept and the next request has the nonce", async (t) => {
  pop.reset();
  const { clientId, clientSecret } = pop.dpopSecretClient;
  const gw = await gateway(t, {
    bound: {
      token_url: pop.tokenUrl, api_base: `${pop.apiBase}/`, client_id: clientId, client_secret_name: 'DPOP_BASIC_SECRET',
      scope: 'api:read', dpop: true, dpop_key_name: 'DPOP_EC',
    },
  }, { DPOP_BASIC_SECRET: clientSecret, DPOP_EC: jwk(dpopEc) });
  const tok = await callerToken(gw);
  // Larger than the replay buffer (1 MiB): it streams, once.
  const big = Buffer.alloc(1536 * 1024, 'x');
  const first = await call(gw, tok, '/bound/upload', { method: 'POST', body: big, headers: { 'content-type': 'text/plain' } });
  assert.equal(first.status, 401, first.text);
  assert.equal(first.json.error, 'use_dpop_nonce');
  assert.deepEqual(pop.apiRequests().map((x) => [x.status, x.error ?? null]), [[401, 'use_dpop_nonce']]);
  const again = await call(gw, tok, '/bound/upload', { method: 'POST', body: big, headers: { 'content-type': 'text/plain' } });
  assert.equal(again.status, 200, again.text);
  assert.equal(source(again.timing), 'memory', 'the nonce refusal did not drop the token');
  assert.deepEqual(pop.apiRequests().map((x) => x.status), [401, 200]);
  assert.equal(pop.tokenRequests().filter((x) => x.status === 200).length, 1, 'one token');
});

test('the minter (a Durable Object) signs the assertion and the DPoP proof with the same keys', async (t) => {
  pop.reset();
  const gw = await gateway(t, {
    ps: pkProvider('PS256', { dpop_key_name: 'DPOP_EC', coordination: 'durable_object' }),
  }, { PK_PS256: pop.clients.PS256.pem, DPOP_EC: jwk(dpopEc) }, { minter: true });
  const tok = await callerToken(gw);
  const r = await call(gw, tok, '/ps/minted');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.jkt, thumbprint(publicOf(dpopEc)));
  assert.match(source(r.timing), /^(exchange|minter)$/);
  assert.deepEqual(pop.tokenRequests().map((x) => [x.status, x.error ?? x.tokenType]), [[400, 'use_dpop_nonce'], [200, 'DPoP']]);
  await gw.settleLogs(30);
  assert.ok(gw.jsonLogs().some((l) => l.event === 'coordination' && l.mode === 'durable_object'));
});

test("the caller's own DPoP proof, Authorization and Cookie never reach upstream; the gateway's proof does", async (t) => {
  pop.reset();
  const { clientId, clientSecret } = pop.dpopSecretClient;
  const gw = await gateway(t, {
    echoed: {
      token_url: pop.tokenUrl, api_base: `${echo.url}/api/`, client_id: clientId,
      client_secret_name: 'DPOP_BASIC_SECRET', scope: 'api:read', dpop: true, dpop_key_name: 'DPOP_EC',
    },
  }, { DPOP_BASIC_SECRET: clientSecret, DPOP_EC: jwk(dpopEc) });
  const tok = await callerToken(gw);
  const callerProof = `eyJ0eXAiOiJkcG9wK2p3dCJ9.${rand(24)}.${rand(24)}`;
  echo.seen.length = 0;
  const r = await call(gw, tok, '/echoed/inspect?q=1', { headers: { dpop: callerProof, cookie: 'session=caller' } });
  assert.equal(r.status, 200, r.text);
  const [seen] = echo.seen;
  assert.ok(seen, 'the request reached the API');
  assert.match(seen.headers.authorization, /^DPoP [^ ]+$/);
  assert.ok(!seen.headers.authorization.includes(tok));
  sweep.providerTokens.add(seen.headers.authorization.slice(5));
  assert.equal(seen.headers.cookie, undefined);
  assert.notEqual(seen.headers.dpop, callerProof);
  assert.ok(!seen.headers.dpop.includes(','), 'one proof, not two joined');
  const [h, p] = seen.headers.dpop.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
  assert.equal(h.typ, 'dpop+jwt');
  assert.deepEqual(h.jwk, Object.fromEntries(Object.entries(publicOf(dpopEc)).sort()));
  assert.equal(p.htm, 'GET');
  assert.equal(p.htu, `${echo.url}/api/inspect`);
  assert.equal(p.ath, crypto.createHash('sha256').update(seen.headers.authorization.slice(5)).digest('base64url'));
});

test('configuration errors at start-up name the provider and the key, never the key material', async (t) => {
  const rsa = pop.clients.RS256;
  const cases = [
    ['unknown alg', pkProvider('ES256', { client_key_alg: 'ES512' }), { PK_ES256: jwk(pop.clients.ES256) }, 'client_key_alg', /must be ES256, RS256 or PS256/],
    ['unreadable key', pkProvider('ES256'), { PK_ES256: `garbage ${rand(30)}` }, 'client_key_name', /PK_ES256. must be a private JWK .* or a PKCS#8 PEM/],
    ['key type against alg', pkProvider('ES256'), { PK_ES256: rsa.pem }, 'client_key_name', /is a RSA key, which ES256 cannot use/],
    ['public JWK', pkProvider('RS256'), { PK_RS256: JSON.stringify(rsa.publicJwk) }, 'client_key_name', /is a public key/],
    // A secret that is not set is named by its own name, as a client secret is.
    ['key secret not set', pkProvider('ES256'), {}, 'PK_ES256', /Worker secret `PK_ES256` is not set/],
    ['DPoP key unreadable', pkProvider('ES256', { dpop_key_name: 'DPOP_BAD' }),
      { PK_ES256: jwk(pop.clients.ES256), DPOP_BAD: '{"kty":"EC","crv":"P-256","x":"' }, 'dpop_key_name', /not a readable JWK/],
  ];
  for (const [name, entry, secrets, key, message] of cases) {
    const gw = await gateway(t, { p: entry }, secrets);
    const res = await gw.fetch('/healthz');
    const body = await res.json();
    assert.equal(res.status, 500, name);
    assert.equal(body.error, 'config_error', name);
    assert.equal(body.provider, 'p', name);
    assert.equal(body.key, key, `${name}: ${body.error_description}`);
    assert.match(body.error_description, message, name);
    for (const v of Object.values(secrets)) {
      for (const part of [v, ...v.split('\n').filter((l) => l.length > 8 && !l.startsWith('-----'))]) {
        assert.ok(!JSON.stringify(body).includes(part), `${name}: the key is in the answer`);
      }
    }
  }
});

test('a key that reads as a JWK but WebCrypto refuses fails its token requests (502), never the gateway or the key', async (t) => {
  pop.reset();
  // Well-formed members, but not a point on P-256: only the import can tell.
  const bogus = JSON.stringify({ kty: 'EC', crv: 'P-256', x: rand(32), y: rand(32), d: rand(32) });
  sweep.secrets.add(bogus);
  sweep.secrets.add(JSON.parse(bogus).d);
  const gw = await gateway(t, { es: pkProvider('ES256') }, { PK_ES256: bogus });
  assert.equal((await gw.fetch('/healthz')).status, 200);
  const tok = await callerToken(gw);
  const r = await call(gw, tok, '/es/x');
  assert.equal(r.status, 502, r.text);
  assert.ok(!r.text.includes(JSON.parse(bogus).d));
  assert.equal(pop.tokenRequests().length, 0, 'nothing unsigned was sent');
  await gw.waitForLog((l) => l.includes('could not be signed'), 2000);
});

test('mTLS: tls_client_auth token requests and API calls go through the mtls_certificate binding', async (t) => {
  echo.seen.length = 0;
  const viaBinding = [];
  // Stands in for Cloudflare's mTLS certificate binding: whatever it sends presents "the
  // certificate" (here a header the local server requires, as a TLS server requires the
  // certificate).
  const certificate = async (request) => {
    viaBinding.push({ method: request.method, url: request.url, authorization: request.headers.get('authorization') });
    const headers = new Headers(request.headers);
    headers.set('x-client-cert', 'cert-1');
    const body = ['GET', 'HEAD'].includes(request.method) ? undefined : await request.arrayBuffer();
    return fetch(request.url, { method: request.method, headers, body, redirect: 'manual' });
  };
  const gw = await gateway(t, {
    mt: {
      token_url: `${echo.url}/token`, api_base: `${echo.url}/api/`, client_id: 'mtls-client',
      auth_style: 'tls_client_auth', mtls_certificate: 'PARTNER_CERT',
    },
  }, {}, { miniflare: { serviceBindings: { PARTNER_CERT: certificate } } });
  const tok = await callerToken(gw);
  const r = await call(gw, tok, '/mt/orders');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.cert, 'cert-1');
  assert.deepEqual(viaBinding.map((x) => [x.method, new URL(x.url).pathname]), [['POST', '/token'], ['GET', '/api/orders']]);
  assert.match(viaBinding[1].authorization, /^Bearer mt-/);
  sweep.providerTokens.add(viaBinding[1].authorization.slice(7));
  // The token request carried the client id and nothing secret (RFC 8705 §2.1.1).
  const tokenReq = echo.seen.find((s) => s.path === '/token');
  assert.deepEqual(tokenReq.form, { grant_type: 'client_credentials', client_id: 'mtls-client' });
  assert.equal(tokenReq.headers.authorization, undefined);
});

test("mTLS: Miniflare's own mtls_certificates binding is used (it only works remotely); a missing binding stops start-up", async (t) => {
  const entry = { token_url: `${echo.url}/token`, api_base: `${echo.url}/api/`, client_id: 'mtls-client',
    auth_style: 'tls_client_auth', mtls_certificate: 'PARTNER_CERT' };
  echo.seen.length = 0;
  const gw = await gateway(t, { mt: entry }, {},
    { miniflare: { mtlsCertificates: { PARTNER_CERT: { certificate_id: '00000000-0000-0000-0000-000000000000' } } } });
  const tok = await callerToken(gw);
  const r = await call(gw, tok, '/mt/orders');
  assert.equal(r.status, 502, r.text);
  assert.equal(echo.seen.length, 0, 'nothing went out through the global fetch');
  await gw.waitForLog((l) => l.includes('needs to be run remotely'), 2000);

  const missing = await gateway(t, { mt: { ...entry, mtls_certificate: 'NOT_BOUND' } }, {});
  const res = await missing.fetch('/healthz');
  const body = await res.json();
  assert.equal(res.status, 500);
  assert.equal(body.provider, 'mt');
  assert.equal(body.key, 'mtls_certificate');
  assert.match(body.error_description, /NOT_BOUND.*not bound.*\[\[mtls_certificates\]\]/);
});

test('no key, secret or token in any response body, response header or log line', () => {
  for (const s of [ALL.secret, pop.dpopSecretClient.clientSecret]) sweep.secrets.add(s);
  for (const t of echo.issued) sweep.providerTokens.add(t);
  const needles = [
    ...[...sweep.secrets].map((v) => ['secret', v]),
    ...[...sweep.providerTokens].map((v) => ['provider token', v]),
    ...[...sweep.callerTokens].map((v) => ['caller token', v]),
  ].filter(([, v]) => typeof v === 'string' && v.length >= 8)
    .flatMap(([kind, v]) => [...new Set([v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v),
      Buffer.from(v).toString('base64')])].map((form) => [kind, form, v]));
  assert.ok(sweep.bodies.length >= 10 && sweep.logs.length >= 10, 'the sweep saw the suite');
  assert.ok(sweep.providerTokens.size >= 2 && sweep.callerTokens.size > 0);
  const leaks = [];
  for (const { where, status, text } of sweep.bodies) {
    let own = null;
    try { if (where.endsWith('/oauth/token') && status === 200) own = JSON.parse(text).access_token; } catch { /* not JSON */ }
    for (const [kind, form, v] of needles) if (v !== own && text.includes(form)) leaks.push(`${kind} in the ${status} body of ${where}`);
  }
  for (const { where, status, text } of sweep.headers) {
    for (const [kind, form] of needles) if (text.includes(form)) leaks.push(`${kind} in the headers of the ${status} response to ${where}`);
  }
  for (const line of sweep.logs) for (const [kind, form] of needles) if (line.includes(form)) leaks.push(`${kind} in a log line`);
  assert.deepEqual(leaks, []);
});

/**
 * A plain local server: POST /token issues a Bearer token to `mtls-client` only when the
 * request presents the stand-in certificate and no secret or assertion; /api/* records what it
 * received and answers with the certificate it saw. Listens on 127.0.0.1.
 */
async function startEcho() {
  const seen = [];
  const issued = new Set();
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url.split('?')[0];
    const answer = (status, obj) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(obj)); };
    if (path === '/token') {
      const form = Object.fromEntries(new URLSearchParams(body));
      seen.push({ path, headers: req.headers, form });
      if (req.headers['x-client-cert'] !== 'cert-1' || form.client_id !== 'mtls-client' || form.client_secret || form.client_assertion) {
        return answer(401, { error: 'invalid_client' });
      }
      const token = `mt-${crypto.randomBytes(16).toString('base64url')}`;
      issued.add(token);
      return answer(200, { access_token: token, token_type: 'Bearer', expires_in: 600 });
    }
    seen.push({ path, headers: req.headers });
    const auth = req.headers.authorization ?? '';
    const token = auth.replace(/^(Bearer|DPoP) /, '');
    if (req.headers['x-client-cert'] !== undefined && !issued.has(token)) return answer(401, { error: 'invalid_token' });
    return answer(200, { ok: true, path, cert: req.headers['x-client-cert'] ?? null });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    seen,
    issued,
    close: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
