// Worker tests, a fleet coordinated by the minter (`coordination = "durable_object"`): four
// instances of the built Worker in one workerd sharing one KV namespace and one Durable Object
// namespace (tests/support/fleet.mjs). Cold bursts over every instance cause one exchange per
// provider (the three OAuth dialects and a token API); a token the API refuses everywhere at
// once is replaced once and every caller is served; a token API's 401 for a path outside the
// token's scopes never gets the shared token rotated; a Retry-After one instance met holds the
// others; a restarted minter recovers from its storage; without the binding, isolates mint
// themselves and say so.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startTokenService } from './support/openapi.mjs';
import { startFleet } from './support/fleet.mjs';
import { clock, rand, sweep, sweepTest, startEmulators, tempDir, defer, JSON_HEADERS } from './worker-lib.mjs';

let emu;
let svc;
before(async () => {
  emu = await startEmulators();
  svc = await startTokenService({ clock, scopeStatus: 401 });
  sweep.secrets.add(svc.credentials.apiKey);
});
after(async () => { await emu?.close(); await svc?.close(); });

const CALLER = { id: 'svc-fleet', secret: `fleet-${rand()}`, scopes: ['optoro', 'optimum', 'partner', 'openapi'] };
const FAST = { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 20 };

/** Every provider coordinated by the minter. */
function coordinated(overrides = {}) {
  const oauth = emu.gatewayConfig({
    optoro: { coordination: 'durable_object', retry: FAST, ...(overrides.optoro ?? {}) },
    optimum: { coordination: 'durable_object', retry: FAST },
    partner: { coordination: 'durable_object', retry: FAST },
  });
  const api = svc.gatewayConfig({ coordination: 'durable_object', retry: FAST, ...(overrides.openapi ?? {}) });
  return {
    providers: { ...oauth.providers, ...api.providers },
    secrets: { ...oauth.secrets, ...api.secrets },
    clients: { [CALLER.id]: { secret: CALLER.secret, scopes: CALLER.scopes } },
  };
}

/** A fleet (closed when the test ends) and a caller token per instance. */
async function fleet(t, opts = {}) {
  const f = await startFleet({ clock, ...coordinated(opts.overrides), ...opts });
  defer(t, async () => {
    await f.settleLogs(30);
    sweep.logs.push(...f.logs);
    await f.close();
  });
  const tokens = [];
  for (let i = 0; i < f.n; i++) {
    const res = await f.fetch(i, '/oauth/token', {
      method: 'POST', headers: JSON_HEADERS,
      body: JSON.stringify({ grant_type: 'client_credentials', client_id: CALLER.id, client_secret: CALLER.secret }),
    });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    sweep.callerTokens.add(body.access_token);
    tokens.push(body.access_token);
  }
  /** A proxied call from instance i; { status, text, source }. */
  f.call = async (i, p, init = {}) => {
    const res = await f.fetch(i, p, { ...init, headers: { authorization: `Bearer ${tokens[i]}`, ...(init.headers ?? {}) } });
    const text = await res.text();
    sweep.bodies.push({ where: p, status: res.status, text });
    sweep.headers.push({ where: p, status: res.status, text: JSON.stringify([...res.headers]) });
    return { status: res.status, text, source: /token;desc="(\w+)"/.exec(res.headers.get('server-timing') ?? '')?.[1] };
  };
  /** `count` concurrent calls spread over the instances. */
  f.burst = (count, p) => Promise.all(Array.from({ length: count }, (_, k) => f.call(k % f.n, p)));
  return f;
}

const PATHS = { optoro: '/optoro/rmas', optimum: '/optimum/vehicles', partner: '/partner/bookings', openapi: '/openapi/IT-start/1' };

test('hundreds of concurrent cold requests over four instances: one exchange per provider', async (t) => {
  emu.reset();
  svc.reset();
  const f = await fleet(t);
  const calls = [];
  for (let k = 0; k < 320; k++) {
    const p = Object.values(PATHS)[k % 4];
    calls.push(f.call(Math.floor(k / 4) % f.n, p));
  }
  const results = await Promise.all(calls);
  assert.deepEqual(results.filter((r) => r.status !== 200), []);
  for (const p of ['optoro', 'optimum', 'partner']) assert.equal(emu.exchanges(p), 1, p);
  assert.equal(svc.count('create'), 1, 'one token created at the token API');
  assert.equal(svc.liveTokens().length, 1);
  // Each instance's next request is served from its memory.
  for (let i = 0; i < f.n; i++) assert.equal((await f.call(i, PATHS.optoro)).source, 'memory');
  await f.settleLogs(30);
  const modes = f.jsonLogs().filter((l) => l.event === 'coordination' && l.provider === 'optoro');
  assert.ok(modes.length >= f.n && modes.every((l) => l.mode === 'durable_object'), JSON.stringify(modes));
});

test('a token the API refuses everywhere at once: one exchange, every caller served', async (t) => {
  emu.reset();
  const f = await fleet(t);
  assert.deepEqual((await f.burst(8, PATHS.optoro)).map((r) => r.status), Array(8).fill(200));
  assert.equal(emu.exchanges('optoro'), 1);
  emu.revokeAll('optoro'); // the provider revokes the token: every instance's next call gets 401
  const results = await f.burst(40, PATHS.optoro);
  assert.deepEqual(results.map((r) => r.status), Array(40).fill(200));
  assert.equal(emu.exchanges('optoro'), 2, 'one new token for the whole fleet');
  // The token API: the token deleted at the service → one new token.
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  svc.reset();
  assert.equal((await f.call(0, PATHS.openapi)).status, 200);
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  const api = await f.burst(40, PATHS.openapi);
  assert.deepEqual(api.map((r) => r.status), Array(40).fill(200));
  assert.equal(svc.count('create'), 2, 'the first token, and one replacement');
  assert.ok(svc.count('rotate') <= 1, 'at most one attempt to rotate the deleted token');
  assert.equal(svc.liveTokens().length, 1);
});

test('a token API: 401s for paths outside the token\'s scopes, from every instance, never get it rotated', async (t) => {
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  svc.reset();
  const f = await fleet(t);
  assert.equal((await f.call(0, PATHS.openapi)).status, 200);
  const [token] = svc.liveTokens();
  // Callers hammer a path the token's scopes do not cover (the service answers 401) while
  // others keep working.
  const calls = [];
  for (let k = 0; k < 80; k++) {
    calls.push(f.call(k % f.n, k % 2 ? '/openapi/IT-full/1' : PATHS.openapi).then((r) => [k % 2, r.status]));
  }
  const results = await Promise.all(calls);
  assert.deepEqual(results.filter(([outside, s]) => s !== (outside ? 401 : 200)), []);
  assert.equal(svc.count('rotate'), 0, 'never rotated');
  assert.equal(svc.count('create'), 1, 'never replaced');
  assert.deepEqual(svc.liveTokens(), [token]);
  assert.ok(svc.count('list') <= f.n, `the minter checked the token at most once per report window (${svc.count('list')} lists)`);
});

test('a Retry-After one instance met holds every instance', async (t) => {
  emu.reset();
  const f = await fleet(t);
  emu.script('optoro', [{ status: 429, headers: { 'retry-after': '120' }, body: { error: 'slow_down' } }]);
  const first = await f.call(0, PATHS.optoro);
  assert.equal(first.status, 502, first.text);
  assert.equal(JSON.parse(first.text).error, 'rate_limited');
  for (let i = 1; i < f.n; i++) {
    const r = await f.call(i, PATHS.optoro);
    assert.equal(r.status, 503, r.text);
    assert.equal(JSON.parse(r.text).error, 'temporarily_unavailable');
  }
  assert.equal(emu.exchanges('optoro'), 1, 'no other instance asked the provider');
});

test('a restarted minter recovers its token from storage: no exchange, no storm', async (t) => {
  emu.reset();
  const kvPersist = tempDir(t);
  const doPersist = tempDir(t);
  const key = crypto.randomBytes(32).toString('base64');
  const first = await fleet(t, { kvPersist, doPersist, key });
  assert.equal((await first.call(0, PATHS.optoro)).status, 200);
  assert.equal(emu.exchanges('optoro'), 1);
  // Every instance and the minter object go away; KV loses the token (a cache, it may); the
  // minter's own storage keeps it.
  const names = (await first.kv.list({ prefix: 'tg:v2:ptok:' })).keys.map((k) => k.name);
  for (const name of names) await first.kv.delete(name);
  await first.close();
  const again = await fleet(t, { kvPersist, doPersist, key });
  const results = await again.burst(40, PATHS.optoro);
  assert.deepEqual(results.map((r) => r.status), Array(40).fill(200));
  assert.equal(emu.exchanges('optoro'), 1, 'the token came from the minter\'s storage');
  assert.ok(results.every((r) => r.source === 'minter' || r.source === 'memory'), JSON.stringify(results.map((r) => r.source)));
  assert.ok(results.some((r) => r.source === 'minter'));
});

test('without the minter binding, a provider that asks for one is served by each isolate, which says so', async (t) => {
  emu.reset();
  const f = await fleet(t, { minter: false });
  assert.deepEqual((await f.burst(8, PATHS.optoro)).map((r) => r.status), Array(8).fill(200));
  await f.settleLogs(30);
  const fallback = f.jsonLogs().filter((l) => l.event === 'coordination_fallback' && l.provider === 'optoro');
  assert.ok(fallback.length >= 1 && fallback.every((l) => l.mode === 'isolate'), JSON.stringify(fallback));
  assert.ok(emu.exchanges('optoro') >= 1 && emu.exchanges('optoro') <= f.n);
});

test('a continuous stream across roll-overs: after warm-up no caller waits on an exchange, none sees a 401', async (t) => {
  emu.reset();
  emu.setLifetime('partner', 600); // refresh point at 540 s; refresh-ahead from 80–85 %
  const f = await fleet(t);
  assert.equal((await f.call(0, PATHS.partner)).status, 200);
  const sources = {};
  const statuses = {};
  for (let round = 0; round < 90; round++) { // 20 s a round: 1,800 s, three token lifetimes
    clock.advance(20_000);
    const results = await f.burst(8, PATHS.partner);
    for (const r of results) {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      sources[r.source] = (sources[r.source] ?? 0) + 1;
    }
    // Background refreshes (waitUntil) finish before the next round's clock step.
    await f.settleLogs(5);
  }
  assert.deepEqual(statuses, { 200: 720 });
  assert.equal(sources.exchange, undefined, `no caller waited on an exchange: ${JSON.stringify(sources)}`);
  const exchanges = emu.exchanges('partner');
  assert.ok(exchanges >= 3 && exchanges <= 5, `about one exchange per lifetime: ${exchanges}`);
  // A token API: at most the live token and the one being replaced.
  emu.setLifetime('partner', null);
});

test('a token API over roll-overs: at most the live token and the one being replaced, no caller sees a 401', async (t) => {
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  svc.reset();
  const body = { scopes: ['GET:company.openapi.com/IT-start'], ttl: 600, name: 'tokengate' };
  const f = await fleet(t, { overrides: { openapi: { token_body: body, max_lifetime_s: 600 } } });
  assert.equal((await f.call(0, PATHS.openapi)).status, 200);
  const statuses = {};
  let most = 0;
  for (let round = 0; round < 60; round++) { // 30 s a round: 1,800 s, three token lifetimes
    clock.advance(30_000);
    for (const r of await f.burst(8, PATHS.openapi)) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    await f.settleLogs(5);
    most = Math.max(most, svc.liveTokens().length);
  }
  assert.deepEqual(statuses, { 200: 480 });
  assert.ok(most <= 2, `at most two live tokens at a time (${most})`);
  assert.ok(svc.count('rotate') >= 2, `rotated ahead of expiry (${svc.count('rotate')} rotations)`);
  assert.equal(svc.count('create'), 1);
});

test('the provider down longer than the refresh window: served while the token is valid, the documented error after', async (t) => {
  emu.reset();
  emu.setLifetime('optoro', 600);
  const f = await fleet(t);
  assert.equal((await f.call(0, PATHS.optoro)).status, 200);
  // The provider fails every token request from now on.
  emu.script('optoro', Array.from({ length: 200 }, () => ({ status: 503, body: { error: 'temporarily_unavailable' } })));
  clock.advance(560_000); // past the refresh point (540 s), 40 s before expiry
  const during = [];
  for (let k = 0; k < 5; k++) {
    during.push(...await f.burst(8, PATHS.optoro));
    clock.advance(6_000);
  }
  assert.deepEqual(during.map((r) => r.status), Array(40).fill(200), 'no caller failed while the token was valid');
  clock.advance(20_000); // expired
  const after = await f.burst(8, PATHS.optoro);
  for (const r of after) {
    assert.ok([502, 503].includes(r.status), `${r.status} ${r.text}`);
    assert.ok(['server_error', 'temporarily_unavailable'].includes(JSON.parse(r.text).error), r.text);
  }
  emu.setLifetime('optoro', null);
});

test('a token API: a token created without an answer is found and removed, not left live', async (t) => {
  for (const live of svc.liveTokens()) svc.deleteToken(live);
  svc.reset();
  const f = await fleet(t);
  svc.script('create', [{ lose: true }]);
  const lost = await f.call(0, PATHS.openapi);
  assert.equal(lost.status, 502, lost.text);
  assert.equal(JSON.parse(lost.text).error, 'network');
  assert.equal(svc.liveTokens().length, 1, 'the service did create a token');
  const [orphan] = svc.liveTokens();
  assert.equal((await f.call(1, PATHS.openapi)).status, 200);
  // The sweep runs in the background after the new token is in use.
  for (let i = 0; i < 100 && svc.isLive(orphan); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(svc.isLive(orphan), false, 'the orphan was removed');
  assert.equal(svc.liveTokens().length, 1);
  const names = svc.allTokens().map((x) => x.name);
  assert.ok(names.every((n) => /^tokengate \[tokengate:[0-9a-f]{8}\]$/.test(n)), JSON.stringify(names));
});

test('the token API\'s tokens join the sweep', () => {
  for (const t of svc.allTokens()) {
    sweep.providerTokens.add(t.token);
    if (t.refreshToken) sweep.secrets.add(t.refreshToken);
  }
  assert.ok(sweep.providerTokens.size > 0);
});

sweepTest(() => emu, { minBodies: 50, minLogs: 50 });
