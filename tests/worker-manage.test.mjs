// Worker tests, management: managed callers created through the admin API, their tokens,
// scopes, limits and allowlists decided by the caller authority (Durable Objects bound as
// TOKENGATE_LIMITER), revocation and introspection, statistics and the error log, and the
// operator's drop of a provider token. Most tests run two instances of the built Worker in one
// workerd (tests/support/fleet.mjs): two isolates sharing KV and the Durable Objects, as
// isolates in two locations do.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startFleet } from './support/fleet.mjs';
import { clock, rand, startEmulators, defer, tempDir, JSON_HEADERS, FORM, PTOK, withChecksum, eventually } from './worker-lib.mjs';

let emu;
before(async () => { emu = await startEmulators(); });
after(() => emu?.close());

const ADMIN = `admin-${crypto.randomBytes(24).toString('base64url')}`;
const STATIC = { id: 'svc-static', secret: `static-${rand()}`, scopes: ['optoro', 'introspect'] };
/** The documented pattern of every secret tokengate issues (README, "Recognising tokengate credentials"). */
const CREDENTIAL = /\btg[st]_[0-9A-Za-z]{72}(?:[0-9A-Za-z]{22})?\b/g;

/** Everything every test saw, for the last test's sweep. */
const seen = { responses: [], logs: [], secrets: new Set([ADMIN, STATIC.secret]), tokens: new Set() };

/** A fleet of `n` instances with the admin token, the emulated providers and one static caller. */
async function fleet(t, opts = {}) {
  const cfg = emu.gatewayConfig(opts.providers ?? {});
  const f = await startFleet({
    clock, n: opts.n ?? 2, minter: opts.minter ?? false, ...cfg,
    secrets: { ...cfg.secrets, ...(opts.admin === false ? {} : { TOKENGATE_ADMIN_TOKEN: ADMIN }) },
    clients: { [STATIC.id]: { secret: STATIC.secret, scopes: STATIC.scopes } },
    ...(opts.doPersist ? { doPersist: opts.doPersist, kvPersist: opts.kvPersist } : {}),
  });
  defer(t, async () => {
    await f.settleLogs(30);
    seen.logs.push(...f.logs);
    await f.close();
  });
  const send = f.fetch;
  f.fetch = async (i, p, init) => {
    const res = await send(i, p, init);
    seen.responses.push({ path: p, status: res.status, text: await res.clone().text(), headers: JSON.stringify([...res.headers]) });
    return res;
  };
  /** An admin call on instance `i`: { status, json, res }. */
  f.admin = async (i, method, p, body, token = ADMIN) => {
    const headers = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await f.fetch(i, p, { method, headers, body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)) });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* empty or not JSON */ }
    return { status: res.status, json, res };
  };
  /** Creates a managed caller: its record with `client_secret`. */
  f.create = async (body, i = 0) => {
    const r = await f.admin(i, 'POST', '/admin/clients', body);
    assert.equal(r.status, 201, JSON.stringify(r.json));
    seen.secrets.add(r.json.client_secret);
    seen.oneTime ??= new Map();
    seen.oneTime.set(r.json.client_secret, 'created');
    return r.json;
  };
  /** POST /oauth/token on instance `i`: { status, json, res }. */
  f.token = async (i, id, secret, extra = {}) => {
    const res = await f.fetch(i, '/oauth/token', {
      method: 'POST', headers: { ...JSON_HEADERS, ...(extra.headers ?? {}) },
      body: JSON.stringify({ grant_type: 'client_credentials', client_id: id, client_secret: secret }),
    });
    const json = await res.json();
    if (json.access_token) seen.tokens.add(json.access_token);
    return { status: res.status, json, res };
  };
  /** A proxied call: { status, json, res }. */
  f.call = async (i, tok, p, init = {}) => {
    const res = await f.fetch(i, p, { ...init, headers: { authorization: `Bearer ${tok}`, ...(init.headers ?? {}) } });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json, res };
  };
  /** A form POST to /oauth/revoke or /oauth/introspect. */
  f.form = async (i, p, params, headers = {}) => {
    const res = await f.fetch(i, p, { method: 'POST', headers: { ...FORM, ...headers }, body: new URLSearchParams(params).toString() });
    return { status: res.status, json: await res.json().catch(() => null), res };
  };
  return f;
}

const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

test('the admin API needs its secret: 404 without TOKENGATE_ADMIN_TOKEN, 401 for a missing or wrong token', async (t) => {
  const off = await fleet(t, { n: 1, admin: false });
  const r0 = await off.admin(0, 'GET', '/admin/clients');
  assert.equal(r0.status, 404);
  assert.equal(r0.json.error, 'not_found');
  const f = await fleet(t, { n: 1 });
  for (const auth of [undefined, 'Bearer wrong', `Bearer ${ADMIN}x`, `Basic ${Buffer.from(`a:${ADMIN}`).toString('base64')}`]) {
    const res = await f.fetch(0, '/admin/clients', { headers: auth ? { authorization: auth } : {} });
    assert.equal(res.status, 401, auth);
    assert.equal((await res.json()).error, 'invalid_token');
    assert.match(res.headers.get('www-authenticate'), /^Bearer /);
  }
  // The admin token is a bearer over https only, like every credential.
  const plain = await f.mf.dispatchFetch('http://w0.test/admin/clients', { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(plain.status, 400);
  assert.equal((await f.admin(0, 'GET', '/admin/clients')).status, 200);
  assert.equal((await f.admin(0, 'PUT', '/admin/clients')).status, 405);
  assert.equal((await f.admin(0, 'GET', '/admin/nope')).status, 404);
});

test('wrong admin tokens lock their address out, exactly across instances, even for the right token', async (t) => {
  const f = await fleet(t);
  const guessing = '192.0.2.60';
  const admin = (i, ip, token) => f.fetch(i, '/admin/clients', {
    headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': ip },
  });
  // 16 guesses at once over both instances: 10 are looked at, the others held.
  const guesses = await Promise.all(Array.from({ length: 16 }, (_, i) => admin(i % 2, guessing, `guess-${rand(20)}`)));
  const counts = guesses.reduce((m, g) => ({ ...m, [g.status]: (m[g.status] ?? 0) + 1 }), {});
  assert.deepEqual(counts, { 401: 10, 429: 6 });
  // The right token from that address is held on both instances, and so are the address's
  // client credentials at the token endpoint: one limit for every credential.
  for (const i of [0, 1]) {
    const held = await admin(i, guessing, ADMIN);
    assert.equal(held.status, 429);
    assert.equal((await held.json()).error, 'too_many_attempts');
    const wait = Number(held.headers.get('retry-after'));
    assert.ok(wait > 0 && wait <= 60, `Retry-After ${wait}`);
  }
  assert.equal((await f.token(0, STATIC.id, STATIC.secret, { headers: { 'cf-connecting-ip': guessing } })).status, 429);
  // Another address is untouched; the lock ends with the minute.
  assert.equal((await admin(1, '192.0.2.61', ADMIN)).status, 200);
  clock.advance(61_000);
  assert.equal((await admin(0, guessing, ADMIN)).status, 200);
  // Each refusal is logged with its address (and never with the token presented).
  await f.settleLogs(30);
  const refused = f.jsonLogs().filter((l) => l.event === 'admin_refused');
  assert.equal(refused.length, 10);
  assert.ok(refused.every((l) => l.address === guessing && l.route === 'admin'), JSON.stringify(refused[0]));
  assert.ok(!JSON.stringify(f.logs).includes('guess-'), 'a presented token was logged');
});

test('the admin token as a bearer at /oauth/introspect is under the same limit; a right token frees its place before its operation', async (t) => {
  const f = await fleet(t);
  const introspect = (i, ip, bearer) => f.form(i, '/oauth/introspect', { token: 'tgt_anything' },
    { authorization: `Bearer ${bearer}`, 'cf-connecting-ip': ip });
  const admin = (i, ip, token) => f.fetch(i, '/admin/clients', {
    headers: { authorization: `Bearer ${token}`, 'cf-connecting-ip': ip },
  });
  // Ten wrong bearers at introspection lock the address, for introspection and the admin API
  // alike, even with the right token.
  const guessing = '192.0.2.70';
  for (let i = 0; i < 10; i++) assert.equal((await introspect(i % 2, guessing, `guess-${rand(20)}`)).status, 401);
  const held = await introspect(1, guessing, ADMIN);
  assert.equal(held.status, 429);
  assert.equal(held.json.error, 'too_many_attempts');
  assert.equal((await admin(0, guessing, ADMIN)).status, 429);
  // Another address introspects with the right token.
  assert.equal((await introspect(0, '192.0.2.71', ADMIN)).status, 200);
  // Nine failures, then a run of admin operations with the right token, one after another:
  // each frees its place before it answers, so none is held by the one before it.
  const near = '192.0.2.72';
  for (let i = 0; i < 9; i++) assert.equal((await admin(i % 2, near, `guess-${rand(20)}`)).status, 401);
  for (let i = 0; i < 6; i++) assert.equal((await admin(i % 2, near, ADMIN)).status, 200, `admin call ${i}`);
  await f.settleLogs(30);
  assert.equal(f.jsonLogs().filter((l) => l.event === 'admin_refused' && l.route === 'introspect').length, 10);
});

test('bad admin bodies are refused naming the field; nothing is created', async (t) => {
  const f = await fleet(t, { n: 1 });
  const bad = async (body, field, status = 422) => {
    const r = await f.admin(0, 'POST', '/admin/clients', body);
    assert.equal(r.status, status, `${JSON.stringify(body)} → ${JSON.stringify(r.json)}`);
    assert.equal(typeof r.json.error, 'string');
    assert.equal(typeof r.json.error_description, 'string');
    if (field) assert.equal(r.json.field, field, JSON.stringify(r.json));
  };
  await bad('{"name": "x", ', null, 400);
  await bad('[]', null, 400);
  await bad({ scopes: ['optoro'] }, 'name');
  await bad({ name: 'x', scopes: [] }, 'scopes');
  await bad({ name: 'x', scopes: ['nope'] }, 'scopes[0]');
  await bad({ name: 'x', scopes: ['optoro', 'partner:write'] }, 'scopes[1]');
  await bad({ name: 'x', scopes: ['optoro'], token_ttl_s: 30 }, 'token_ttl_s');
  await bad({ name: 'x', scopes: ['optoro'], limits: { requests_per_minute: 0 } }, 'limits.requests_per_minute');
  await bad({ name: 'x', scopes: ['optoro'], limits: { per_hour: 5 } }, 'limits.per_hour');
  await bad({ name: 'x', scopes: ['optoro'], ip_allowlist: ['10.0.0.0/33'] }, 'ip_allowlist[0]');
  await bad({ name: 'x', scopes: ['optoro'], secret: 'mine' }, 'secret');
  const listed = await f.admin(0, 'GET', '/admin/clients');
  assert.deepEqual(listed.json, { items: [], next_cursor: null });
  // PATCH validates the same way, and a missing client is 404.
  const c = await f.create({ name: 'billing', scopes: ['optoro'] });
  const p = await f.admin(0, 'PATCH', `/admin/clients/${c.client_id}`, { token_ttl_s: 'long' });
  assert.equal(p.status, 422);
  assert.equal(p.json.field, 'token_ttl_s');
  assert.equal((await f.admin(0, 'PATCH', '/admin/clients/cl_0000000000000000000000', { name: 'y' })).status, 404);
  assert.equal((await f.admin(0, 'GET', '/admin/clients/cl_0000000000000000000000')).status, 404);
});

test('the full lifecycle: create, token, proxy, stats, narrow, rotate, delete — each in effect at once on the other instance', async (t) => {
  const f = await fleet(t);
  const created = await f.create({ name: 'billing', scopes: ['optoro', 'partner'], token_ttl_s: 600 });
  // The record, once with the secret; the secret in the documented format.
  assert.match(created.client_id, /^cl_[0-9A-Za-z]{22}$/);
  assert.match(created.client_secret, /^tgs_[0-9A-Za-z]{72}$/);
  assert.deepEqual(Object.keys(created).sort(), ['client_id', 'client_secret', 'created_at', 'disabled', 'ip_allowlist', 'limits', 'name', 'scopes', 'token_ttl_s', 'updated_at']);
  assert.deepEqual(created.limits, { requests_per_minute: null, total_requests: null });
  const got = await f.admin(1, 'GET', `/admin/clients/${created.client_id}`);
  assert.equal(got.status, 200);
  assert.equal(got.json.client_secret, undefined, 'the secret is shown once');
  assert.deepEqual({ ...got.json }, (({ client_secret, ...r }) => r)(created));
  // A token, from the other instance; a proxied call.
  const tok = await f.token(1, created.client_id, created.client_secret);
  assert.equal(tok.status, 200, JSON.stringify(tok.json));
  assert.match(tok.json.access_token, /^tgt_[0-9A-Za-z]{94}$/);
  assert.equal(tok.json.expires_in, 600);
  assert.equal(tok.json.scope, 'optoro partner');
  const t1 = tok.json.access_token;
  assert.equal((await f.call(0, t1, '/optoro/v1/rmas')).status, 200);
  assert.equal((await f.call(1, t1, '/partner/items')).status, 200);
  // The stats moved: the caller's at once (its authority counted them), the provider's after the flush.
  const stats = await f.admin(0, 'GET', `/admin/stats?client_id=${created.client_id}`);
  assert.deepEqual(stats.json.clients[created.client_id], { requests: 2, rejected: { 401: 0, 403: 0, 429: 0 } });
  await eventually(async () => {
    const s = await f.admin(1, 'GET', '/admin/stats?provider=optoro');
    return s.json.providers.optoro.requests >= 1 && s.json.providers.optoro.responses['2xx'] >= 1;
  });
  // Tokens are listed, without the token.
  const listed = await f.admin(0, 'GET', `/admin/tokens?client_id=${created.client_id}`);
  assert.equal(listed.json.items.length, 1);
  assert.deepEqual(Object.keys(listed.json.items[0]).sort(), ['client_id', 'expires_at', 'id', 'issued_at', 'requests', 'scopes']);
  assert.equal(listed.json.items[0].requests, 2);
  // Narrowing applies to the token already issued, on both instances, at once.
  const narrowed = await f.admin(1, 'PATCH', `/admin/clients/${created.client_id}`, { scopes: ['partner'] });
  assert.equal(narrowed.status, 200);
  assert.deepEqual(narrowed.json.scopes, ['partner']);
  assert.ok(narrowed.json.updated_at >= created.updated_at);
  const refused = await f.call(0, t1, '/optoro/v1/rmas');
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error, 'insufficient_scope');
  assert.equal((await f.call(1, t1, '/partner/items')).status, 200);
  // Rotation: the old secret and every token issued under it stop at once.
  const rotated = await f.admin(0, 'POST', `/admin/clients/${created.client_id}/rotate-secret`);
  assert.equal(rotated.status, 200);
  assert.deepEqual(Object.keys(rotated.json).sort(), ['client_id', 'client_secret']);
  seen.secrets.add(rotated.json.client_secret);
  seen.oneTime.set(rotated.json.client_secret, 'rotated');
  assert.notEqual(rotated.json.client_secret, created.client_secret);
  assert.equal((await f.token(1, created.client_id, created.client_secret)).status, 401);
  const old = await f.call(1, t1, '/partner/items');
  assert.equal(old.status, 401);
  assert.equal(old.json.error, 'invalid_token');
  const tok2 = await f.token(0, created.client_id, rotated.json.client_secret);
  assert.equal(tok2.status, 200);
  const t2 = tok2.json.access_token;
  assert.equal((await f.call(1, t2, '/partner/items')).status, 200);
  // Deletion: the caller and its tokens are gone everywhere.
  const del = await f.admin(1, 'DELETE', `/admin/clients/${created.client_id}`);
  assert.equal(del.status, 204);
  assert.equal((await f.call(0, t2, '/partner/items')).status, 401);
  assert.equal((await f.token(0, created.client_id, rotated.json.client_secret)).status, 401);
  assert.equal((await f.admin(0, 'GET', `/admin/clients/${created.client_id}`)).status, 404);
  assert.deepEqual((await f.admin(1, 'GET', '/admin/clients')).json.items, []);
  const after = await f.admin(0, 'GET', `/admin/stats?client_id=${STATIC.id}`);
  assert.ok(after.json.clients[STATIC.id], 'a static caller has stats too');
});

test('a :read scope refuses a POST with 403 and allows GET, HEAD and OPTIONS', async (t) => {
  const f = await fleet(t, { n: 1 });
  const c = await f.create({ name: 'reader', scopes: ['optoro:read'] });
  const tok = (await f.token(0, c.client_id, c.client_secret)).json.access_token;
  const post = await f.call(0, tok, '/optoro/v1/rmas', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(post.status, 403);
  assert.equal(post.json.error, 'insufficient_scope');
  for (const method of ['GET', 'HEAD', 'OPTIONS']) {
    assert.equal((await f.call(0, tok, '/optoro/v1/rmas', { method })).status, 200, method);
  }
  assert.equal(emu.apiRequests('optoro').filter((r) => r.method === 'POST').length, 0, 'the POST never left');
  // A token may ask for less than its caller holds, never more.
  const both = await f.create({ name: 'both', scopes: ['optoro', 'partner'] });
  const narrow = await f.fetch(0, '/oauth/token', {
    method: 'POST', headers: FORM,
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: both.client_id, client_secret: both.client_secret, scope: 'optoro:read' }).toString(),
  });
  const nt = await narrow.json();
  assert.equal(nt.scope, 'optoro:read');
  assert.equal((await f.call(0, nt.access_token, '/optoro/v1/rmas', { method: 'DELETE' })).status, 403);
  const wider = await f.fetch(0, '/oauth/token', {
    method: 'POST', headers: FORM,
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.client_id, client_secret: c.client_secret, scope: 'optoro' }).toString(),
  });
  assert.equal(wider.status, 400);
  assert.equal((await wider.json()).error, 'invalid_scope');
});

test('requests_per_minute is exact under concurrency across instances: 60 concurrent → 20 served, 40 × 429 with Retry-After', async (t) => {
  const f = await fleet(t);
  const c = await f.create({ name: 'limited', scopes: ['optoro'], limits: { requests_per_minute: 20 } });
  const tok = (await f.token(0, c.client_id, c.client_secret)).json.access_token;
  const before = emu.apiRequests('optoro').length;
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => f.call(i % 2, tok, '/optoro/v1/rmas')));
  const served = results.filter((r) => r.status === 200);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(served.length, 20);
  assert.equal(limited.length, 40);
  assert.equal(emu.apiRequests('optoro').length - before, 20, 'exactly 20 reached the provider');
  for (const r of limited) {
    assert.equal(r.json.error, 'too_many_requests');
    const retry = Number(r.res.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  }
  const stats = await f.admin(1, 'GET', `/admin/stats?client_id=${c.client_id}`);
  assert.deepEqual(stats.json.clients[c.client_id], { requests: 20, rejected: { 401: 0, 403: 0, 429: 40 } });
  // The next minute admits again.
  clock.advance(60_000);
  assert.equal((await f.call(1, tok, '/optoro/v1/rmas')).status, 200);
  // total_requests is spent for good: no Retry-After.
  const once = await f.create({ name: 'once', scopes: ['optoro'], limits: { total_requests: 2 } });
  const t2 = (await f.token(1, once.client_id, once.client_secret)).json.access_token;
  const three = await Promise.all([0, 1, 0].map((i) => f.call(i, t2, '/optoro/v1/rmas')));
  assert.deepEqual(three.map((r) => r.status).sort(), [200, 200, 429]);
  clock.advance(120_000);
  const spent = await f.call(1, t2, '/optoro/v1/rmas');
  assert.equal(spent.status, 429);
  assert.equal(spent.res.headers.get('retry-after'), null);
  // Raising the limit lets it through at once.
  await f.admin(0, 'PATCH', `/admin/clients/${once.client_id}`, { limits: { total_requests: 3 } });
  assert.equal((await f.call(1, t2, '/optoro/v1/rmas')).status, 200);
});

test('an ip_allowlist refuses other addresses with 403 access_denied, at the token endpoint and the proxy', async (t) => {
  const f = await fleet(t, { n: 1 });
  const c = await f.create({ name: 'office', scopes: ['optoro'], ip_allowlist: ['203.0.113.0/24', '2001:db8::/32'] });
  const from = (ip) => ({ headers: { 'cf-connecting-ip': ip } });
  assert.equal((await f.token(0, c.client_id, c.client_secret, from('198.51.100.7'))).status, 403);
  const ok = await f.token(0, c.client_id, c.client_secret, from('203.0.113.9'));
  assert.equal(ok.status, 200);
  const tok = ok.json.access_token;
  assert.equal((await f.call(0, tok, '/optoro/v1/rmas', from('2001:db8::5'))).status, 200);
  const denied = await f.call(0, tok, '/optoro/v1/rmas', from('198.51.100.7'));
  assert.equal(denied.status, 403);
  assert.equal(denied.json.error, 'access_denied');
  assert.equal((await f.call(0, tok, '/optoro/v1/rmas')).status, 403, 'no address: outside the allowlist');
  // Emptying the allowlist lets every address in at once.
  await f.admin(0, 'PATCH', `/admin/clients/${c.client_id}`, { ip_allowlist: [] });
  assert.equal((await f.call(0, tok, '/optoro/v1/rmas', from('198.51.100.7'))).status, 200);
});

test('revocation and disabling are visible at once from the other instance; introspection of active, expired and revoked tokens', async (t) => {
  const f = await fleet(t);
  const c = await f.create({ name: 'svc', scopes: ['optoro'], token_ttl_s: 120 });
  const mine = async (i) => (await f.token(i, c.client_id, c.client_secret)).json.access_token;
  const t1 = await mine(0);
  const t2 = await mine(1);
  assert.equal((await f.call(1, t1, '/optoro/v1/rmas')).status, 200);
  // RFC 7009 on instance 0; instance 1 refuses the token on its next request.
  const creds = { client_id: c.client_id, client_secret: c.client_secret };
  const rv = await f.form(0, '/oauth/revoke', { token: t1, token_type_hint: 'access_token', ...creds });
  assert.equal(rv.status, 200);
  assert.equal((await f.call(1, t1, '/optoro/v1/rmas')).status, 401);
  assert.equal((await f.call(0, t2, '/optoro/v1/rmas')).status, 200, 'only that token');
  // Revoking an unknown or already revoked token is 200 too; another caller's token is refused.
  assert.equal((await f.form(1, '/oauth/revoke', { token: t1, ...creds })).status, 200);
  assert.equal((await f.form(1, '/oauth/revoke', { token: 'not-a-token', ...creds })).status, 200);
  const other = await f.create({ name: 'other', scopes: ['optoro'] });
  const theirs = await f.form(0, '/oauth/revoke', { token: t2 }, { authorization: basic(other.client_id, other.client_secret) });
  assert.equal(theirs.status, 400);
  assert.equal(theirs.json.error, 'unauthorized_client');
  assert.equal((await f.call(1, t2, '/optoro/v1/rmas')).status, 200);
  assert.equal((await f.form(0, '/oauth/revoke', { token: t2, client_id: c.client_id, client_secret: 'tgs_wrong' })).status, 401);
  // A static caller's token cannot be revoked one by one.
  const st = (await f.token(0, STATIC.id, STATIC.secret)).json.access_token;
  const sr = await f.form(0, '/oauth/revoke', { token: st, client_id: STATIC.id, client_secret: STATIC.secret });
  assert.equal(sr.status, 400);
  assert.equal(sr.json.error, 'unsupported_token_type');
  // Introspection: by the admin token, or by a caller holding `introspect` (the static one).
  const asAdmin = (token, i = 0) => f.form(i, '/oauth/introspect', { token }, { authorization: `Bearer ${ADMIN}` });
  const active = await asAdmin(t2, 1);
  assert.equal(active.status, 200);
  assert.deepEqual(Object.keys(active.json).sort(), ['active', 'client_id', 'exp', 'iat', 'scope', 'token_type']);
  assert.equal(active.json.active, true);
  assert.equal(active.json.client_id, c.client_id);
  assert.equal(active.json.scope, 'optoro');
  assert.equal(active.json.exp - active.json.iat, 120);
  assert.deepEqual((await asAdmin(t1)).json, { active: false }, 'revoked');
  assert.deepEqual((await asAdmin('tgt_nothing')).json, { active: false }, 'unknown');
  const byCaller = await f.form(1, '/oauth/introspect', { token: st }, { authorization: basic(STATIC.id, STATIC.secret) });
  assert.equal(byCaller.json.active, true);
  assert.equal(byCaller.json.client_id, STATIC.id);
  const noScope = await f.form(0, '/oauth/introspect', { token: t2, ...creds });
  assert.equal(noScope.status, 403);
  assert.equal(noScope.json.error, 'insufficient_scope');
  assert.equal((await f.form(0, '/oauth/introspect', { token: t2 }, { authorization: 'Bearer wrong' })).status, 401);
  // Expired.
  clock.advance(121_000);
  assert.deepEqual((await asAdmin(t2)).json, { active: false }, 'expired');
  assert.equal((await f.call(0, t2, '/optoro/v1/rmas')).status, 401);
  // Disabling refuses its tokens and its secret at once, on both instances; enabling restores.
  const t3 = await mine(0);
  await f.admin(1, 'PATCH', `/admin/clients/${c.client_id}`, { disabled: true });
  assert.equal((await f.call(0, t3, '/optoro/v1/rmas')).status, 401);
  assert.equal((await f.token(1, c.client_id, c.client_secret)).status, 401);
  await f.admin(0, 'PATCH', `/admin/clients/${c.client_id}`, { disabled: false });
  assert.equal((await f.call(1, t3, '/optoro/v1/rmas')).status, 200);
  // An operator revokes one token by its id.
  const items = (await f.admin(0, 'GET', `/admin/tokens?client_id=${c.client_id}`)).json.items;
  assert.equal(items.length, 1, 'expired and revoked tokens are not listed');
  assert.equal((await f.admin(1, 'DELETE', `/admin/tokens/${items[0].id}`)).status, 204);
  assert.equal((await f.call(0, t3, '/optoro/v1/rmas')).status, 401);
  assert.equal((await f.admin(1, 'DELETE', `/admin/tokens/${items[0].id}`)).status, 404);
});

test('a mistyped managed secret is refused without a lookup; failed logins are limited exactly across instances', async (t) => {
  const f = await fleet(t);
  const c = await f.create({ name: 'svc', scopes: ['optoro'] });
  // One character changed: the checksum fails, no authority call is made (no log of one).
  const typo = c.client_secret.slice(0, 10) + (c.client_secret[10] === 'A' ? 'B' : 'A') + c.client_secret.slice(11);
  assert.equal((await f.token(0, c.client_id, typo, { headers: { 'cf-connecting-ip': '192.0.2.1' } })).status, 401);
  // Ten failures from one address over both instances, then the address is held on both —
  // even with the right secret — while another address is not.
  const from = { headers: { 'cf-connecting-ip': '192.0.2.50' } };
  const guesses = await Promise.all(Array.from({ length: 16 }, (_, i) => f.token(i % 2, c.client_id, `tgs_${rand(40)}`, from)));
  const counts = guesses.reduce((m, g) => ({ ...m, [g.status]: (m[g.status] ?? 0) + 1 }), {});
  assert.equal(counts[401], 10, JSON.stringify(counts));
  assert.equal(counts[429], 6, JSON.stringify(counts));
  for (const i of [0, 1]) {
    const held = await f.token(i, c.client_id, c.client_secret, from);
    assert.equal(held.status, 429);
    assert.equal(held.json.error, 'too_many_attempts');
  }
  assert.equal((await f.token(1, c.client_id, c.client_secret, { headers: { 'cf-connecting-ip': '192.0.2.51' } })).status, 200);
  clock.advance(61_000);
  assert.equal((await f.token(0, c.client_id, c.client_secret, from)).status, 200);
});

test('statistics of concurrent requests on one isolate are exact: one flush carries them all, the next flush the rest', async (t) => {
  const f = await fleet(t, { n: 1 });
  const tok = (await f.token(0, STATIC.id, STATIC.secret)).json.access_token;
  // 30 at once on one isolate: every one counted, by the flush the first of them started.
  const answers = await Promise.all(Array.from({ length: 30 }, () => f.call(0, tok, '/optoro/rmas')));
  assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
  await eventually(async () => {
    const s = await f.admin(0, 'GET', '/admin/stats?provider=optoro');
    return s.json.providers.optoro.requests === 30 && s.json.providers.optoro.responses['2xx'] === 30;
  });
  const c = await eventually(async () => {
    const s = await f.admin(0, 'GET', `/admin/stats?client_id=${STATIC.id}`);
    return s.json.clients[STATIC.id].requests === 30 && s.json.clients[STATIC.id];
  });
  assert.deepEqual(c.rejected, { 401: 0, 403: 0, 429: 0 });
  // A second round after the first flush went: counted by the next flush, nothing twice.
  await Promise.all(Array.from({ length: 5 }, () => f.call(0, tok, '/optoro/rmas')));
  await eventually(async () => (await f.admin(0, 'GET', '/admin/stats?provider=optoro')).json.providers.optoro.requests === 35);
});

test('a static caller keeps its cached path; its token-request allowance is exact across instances', async (t) => {
  const f = await fleet(t);
  const results = [];
  for (let i = 0; i < 62; i++) results.push(await f.token(i % 2, STATIC.id, STATIC.secret));
  assert.equal(results.filter((r) => r.status === 200).length, 60);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(limited.length, 2);
  assert.equal(limited[0].json.error, 'too_many_requests');
  const tok = results[0].json.access_token;
  assert.match(tok, /^tgt_[0-9A-Za-z]{72}$/);
  assert.equal((await f.call(1, tok, '/optoro/v1/rmas')).status, 200);
});

test('metadata (RFC 8414), the scope catalogue and the error log', async (t) => {
  const f = await fleet(t, { n: 1 });
  const res = await f.fetch(0, '/.well-known/oauth-authorization-server');
  const m = await res.json();
  assert.equal(m.issuer, 'https://w0.test');
  assert.equal(m.token_endpoint, 'https://w0.test/oauth/token');
  assert.equal(m.revocation_endpoint, 'https://w0.test/oauth/revoke');
  assert.equal(m.introspection_endpoint, 'https://w0.test/oauth/introspect');
  assert.deepEqual(m.grant_types_supported, ['client_credentials']);
  assert.ok(m.scopes_supported.includes('optoro:read') && m.scopes_supported.includes('introspect'));
  const scopes = await f.admin(0, 'GET', '/admin/scopes');
  const optoro = scopes.json.items.find((s) => s.scope === 'optoro');
  assert.equal(optoro.provider, 'optoro');
  assert.equal(optoro.api_host, '127.0.0.1');
  assert.equal(optoro.auth_style, 'json_body');
  assert.ok(!JSON.stringify(scopes.json).includes('SECRET'), 'no secret names');
  // An API that fails, and a token endpoint that refuses: both in the error log.
  const c = await f.create({ name: 'svc', scopes: ['optoro', 'partner'] });
  const tok = (await f.token(0, c.client_id, c.client_secret)).json.access_token;
  emu.script('partner', [{ status: 401, body: { error: 'invalid_client', error_description: 'nope' } }]);
  const failed = await f.call(0, tok, '/partner/items');
  assert.equal(failed.status, 502);
  const errors = await eventually(async () => {
    const e = await f.admin(0, 'GET', '/admin/errors?limit=10');
    return e.json.items.length >= 2 && e.json.items;
  });
  const exchange = errors.find((e) => e.kind === 'token_exchange');
  assert.equal(exchange.provider, 'partner');
  assert.equal(exchange.status, 401);
  assert.equal(exchange.provider_error, 'invalid_client');
  const proxied = errors.find((e) => e.kind !== 'token_exchange');
  assert.equal(proxied.client_id, c.client_id);
  assert.equal(proxied.status, 502);
  assert.ok(errors[0].time >= errors[errors.length - 1].time, 'newest first');
  assert.equal((await f.admin(0, 'GET', '/admin/errors?limit=0')).status, 422);
});

test('an operator drops a provider token: KV now, the other instance at its next use, a new exchange', async (t) => {
  const f = await fleet(t);
  const c = await f.create({ name: 'svc', scopes: ['optoro'] });
  const tok = (await f.token(0, c.client_id, c.client_secret)).json.access_token;
  emu.reset();
  for (const i of [0, 1]) assert.equal((await f.call(i, tok, '/optoro/v1/rmas')).status, 200);
  const before = emu.exchanges('optoro');
  assert.ok(before >= 1);
  const old = emu.issuedTokens('optoro').at(-1);
  assert.equal((await f.kv.list({ prefix: PTOK })).keys.length, 1);
  const dropped = await f.admin(0, 'DELETE', '/admin/providers/optoro/token');
  assert.equal(dropped.status, 204);
  assert.equal((await f.kv.list({ prefix: PTOK })).keys.length, 0, 'KV at once');
  // Instance 1 still held it in memory: its next use may still carry it; once its counts have
  // travelled (and the answer named the dropped token) it asks for a new one.
  await f.call(1, tok, '/optoro/v1/rmas');
  await eventually(async () => {
    await f.call(1, tok, '/optoro/v1/rmas');
    const last = emu.apiRequests('optoro').at(-1);
    return last.headers.authorization !== `Bearer ${old}`;
  });
  assert.ok(emu.exchanges('optoro') > before, 'a new exchange');
  assert.equal((await f.admin(0, 'DELETE', '/admin/providers/nope/token')).status, 404);
});

test('the ledger lives in the caller authority: deleting KV entries never revives a removed static caller', async (t) => {
  const kvDir = tempDir(t);
  const doDir = tempDir(t);
  const key = crypto.randomBytes(32).toString('base64');
  const cfg = emu.gatewayConfig();
  const A = { id: 'svc-removed', secret: `gone-${rand()}`, scopes: ['optoro'] };
  seen.secrets.add(A.secret);
  const run = async (clients) => {
    const f = await startFleet({ clock, n: 1, minter: false, ...cfg, key, kvPersist: kvDir, doPersist: doDir, clients });
    defer(t, async () => { await f.settleLogs(30); seen.logs.push(...f.logs); await f.close(); });
    return f;
  };
  const f1 = await run({ [A.id]: { secret: A.secret, scopes: A.scopes } });
  const res = await f1.fetch(0, '/oauth/token', {
    method: 'POST', headers: JSON_HEADERS,
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: A.id, client_secret: A.secret }),
  });
  const tok = (await res.json()).access_token;
  seen.tokens.add(tok);
  await f1.close();
  clock.advance(1_000);
  // A deployment without A serves a request: the authority remembers A's removal.
  const f2 = await run({ [STATIC.id]: { secret: STATIC.secret, scopes: STATIC.scopes } });
  assert.equal((await f2.fetch(0, '/healthz')).status, 200);
  // Every KV entry but the token's record is deleted (the old ledger key among them); A is back.
  for (const { name } of (await f2.kv.list()).keys) if (!name.startsWith('tg:v2:ctok:')) await f2.kv.delete(name);
  assert.equal((await f2.kv.list()).keys.length, 1);
  await f2.close();
  const f3 = await run({ [A.id]: { secret: A.secret, scopes: A.scopes } });
  const refused = await f3.fetch(0, '/optoro/v1/rmas', { headers: { authorization: `Bearer ${tok}` } });
  assert.equal(refused.status, 401);
  assert.match((await refused.json()).error_description, /removed/);
});

test('no secret or token in any admin response but the one-time client_secret, nor in any log line', () => {
  assert.ok(seen.responses.length > 100 && seen.logs.length > 20, 'the sweep saw the suite');
  assert.ok(seen.secrets.size > 5 && seen.tokens.size > 5);
  const leaks = [];
  for (const r of seen.responses) {
    for (const s of seen.secrets) {
      if (!r.text.includes(s) && !r.headers.includes(s)) continue;
      const allowed = seen.oneTime?.has(s) && r.path.startsWith('/admin/clients') && [200, 201].includes(r.status)
        && JSON.parse(r.text).client_secret === s;
      if (!allowed) leaks.push(`secret in the ${r.status} answer to ${r.path}`);
    }
    for (const tk of seen.tokens) {
      if (!r.text.includes(tk) && !r.headers.includes(tk)) continue;
      const own = r.path === '/oauth/token' && JSON.parse(r.text).access_token === tk;
      if (!own) leaks.push(`token in the ${r.status} answer to ${r.path}`);
    }
    // Admin answers never hold a credential of the documented form, but for the one-time secret.
    if (r.path.startsWith('/admin/')) {
      for (const m of r.text.match(CREDENTIAL) ?? []) {
        if (!seen.oneTime?.has(m)) leaks.push(`a credential in the answer to ${r.path}`);
      }
    }
  }
  for (const line of seen.logs) {
    for (const s of [...seen.secrets, ...seen.tokens]) if (line.includes(s)) leaks.push(`secret or token in log line ${line.slice(0, 80)}`);
    if (CREDENTIAL.test(line)) leaks.push(`a credential in log line ${line.slice(0, 80)}`);
    CREDENTIAL.lastIndex = 0;
  }
  assert.deepEqual(leaks, []);
  // The last six characters of every secret shown are the CRC-32 of the rest: a scanner can
  // tell a real one from a look-alike without a lookup.
  for (const secret of seen.oneTime.keys()) assert.equal(withChecksum(secret.slice(0, -6)), secret);
});
