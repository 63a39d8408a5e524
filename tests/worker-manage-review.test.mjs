// Worker tests, management: what introspection (RFC 7662) reports for a token whose caller was
// narrowed after it was issued — the scopes the token still allows, never more.
// Run: node --test --test-concurrency=1 tests/worker-manage-review.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startFleet } from './support/fleet.mjs';
import { clock, rand, startEmulators, defer, tempDir, JSON_HEADERS, FORM } from './worker-lib.mjs';

let emu;
before(async () => { emu = await startEmulators(); });
after(() => emu?.close());

const ADMIN = `admin-${crypto.randomBytes(24).toString('base64url')}`;
const STATIC = { id: 'svc-static', secret: `static-${rand()}` };

/** A fleet of `n` instances with the admin token and a static caller holding `staticScopes`. */
async function fleet(t, { n = 2, staticScopes = ['optoro', 'partner', 'introspect'], persist } = {}) {
  const cfg = emu.gatewayConfig({});
  const f = await startFleet({
    clock, n, minter: false, ...cfg,
    ...(persist ?? {}),
    secrets: { ...cfg.secrets, TOKENGATE_ADMIN_TOKEN: ADMIN },
    clients: { [STATIC.id]: { secret: STATIC.secret, scopes: staticScopes } },
  });
  defer(t, () => f.close());
  f.admin = async (i, method, p, body) => {
    const headers = { authorization: `Bearer ${ADMIN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await f.fetch(i, p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: await res.json().catch(() => null) };
  };
  f.token = async (i, id, secret) => {
    const res = await f.fetch(i, '/oauth/token', {
      method: 'POST', headers: JSON_HEADERS,
      body: JSON.stringify({ grant_type: 'client_credentials', client_id: id, client_secret: secret }),
    });
    return { status: res.status, json: await res.json() };
  };
  f.call = async (i, tok, p, init = {}) => (await f.fetch(i, p, { ...init, headers: { authorization: `Bearer ${tok}` } })).status;
  f.introspect = async (i, token) => {
    const res = await f.fetch(i, '/oauth/introspect', {
      method: 'POST', headers: { ...FORM, authorization: `Bearer ${ADMIN}` }, body: new URLSearchParams({ token }).toString(),
    });
    assert.equal(res.status, 200);
    return res.json();
  };
  return f;
}

test('introspection of a managed caller\'s token reports only the scopes it still allows after the caller is narrowed', async (t) => {
  const f = await fleet(t);
  const c = await f.admin(0, 'POST', '/admin/clients', { name: 'billing', scopes: ['optoro', 'partner:read'] });
  assert.equal(c.status, 201);
  const tok = (await f.token(0, c.json.client_id, c.json.client_secret)).json.access_token;
  assert.equal((await f.introspect(1, tok)).scope, 'optoro partner:read');
  // Narrowed to reading optoro: the token may no longer write to optoro nor reach partner …
  assert.equal((await f.admin(1, 'PATCH', `/admin/clients/${c.json.client_id}`, { scopes: ['optoro:read'] })).status, 200);
  assert.equal(await f.call(0, tok, '/optoro/v1/rmas', { method: 'POST' }), 403);
  assert.equal(await f.call(0, tok, '/partner/items'), 403);
  assert.equal(await f.call(0, tok, '/optoro/v1/rmas'), 200);
  // … and introspection says so, on either instance.
  for (const i of [0, 1]) {
    const seen = await f.introspect(i, tok);
    assert.equal(seen.active, true);
    assert.equal(seen.scope, 'optoro:read', JSON.stringify(seen));
  }
  // Widening the caller again gives the token back what it was issued with, never more.
  await f.admin(0, 'PATCH', `/admin/clients/${c.json.client_id}`, { scopes: ['optoro', 'partner', 'introspect'] });
  assert.equal((await f.introspect(0, tok)).scope, 'optoro partner:read');
});

test('introspection of a static caller\'s token reports only the scopes its caller still holds after a narrowing deploy', async (t) => {
  const dir = tempDir(t);
  const persist = { key: crypto.randomBytes(32).toString('base64'), doPersist: `${dir}/do`, kvPersist: `${dir}/kv` };
  const before = await fleet(t, { n: 1, persist });
  const tok = (await before.token(0, STATIC.id, STATIC.secret)).json.access_token;
  assert.equal((await before.introspect(0, tok)).scope, 'optoro partner introspect');
  await before.close();
  // The same caller, redeployed with reads of optoro only.
  const f = await fleet(t, { n: 1, persist, staticScopes: ['optoro:read', 'introspect'] });
  assert.equal(await f.call(0, tok, '/partner/items'), 403);
  assert.equal(await f.call(0, tok, '/optoro/v1/rmas', { method: 'POST' }), 403);
  assert.equal(await f.call(0, tok, '/optoro/v1/rmas'), 200);
  const seen = await f.introspect(0, tok);
  assert.equal(seen.active, true);
  assert.equal(seen.scope, 'optoro:read introspect', JSON.stringify(seen));
});

test('a managed caller\'s request refused for its path is not counted against its limits', async (t) => {
  const f = await fleet(t, { n: 1 });
  const c = await f.admin(0, 'POST', '/admin/clients', { name: 'metered', scopes: ['optoro'], limits: { total_requests: 1 } });
  const tok = (await f.token(0, c.json.client_id, c.json.client_secret)).json.access_token;
  // Never sent upstream: 400 before anything leaves the gateway.
  assert.equal(await f.call(0, tok, '/optoro/%252e%252e/x'), 400);
  assert.equal(await f.call(0, tok, '/optoro/v1/rmas'), 200, 'the one allowed request is still there');
  assert.equal(await f.call(0, tok, '/optoro/v1/rmas'), 429);
  const stats = await f.admin(0, 'GET', `/admin/stats?client_id=${c.json.client_id}`);
  assert.equal(stats.json.clients[c.json.client_id].requests, 1);
});
