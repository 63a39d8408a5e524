// Worker tests, GET /admin/providers: each provider's token state as the console's dashboard
// shows it — who holds the token (the minter, this isolate's memory, KV), when it was issued,
// is refreshed and expires, the latest exchange, the latest drop and the latest errors — and
// never a token or a secret.
// Run: node --test --test-concurrency=1 tests/worker-providers.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { clock, startEmulators, ALL, start, call, callerToken, eventually } from './worker-lib.mjs';

const ADMIN = `admin-${crypto.randomBytes(24).toString('base64url')}`;
const AUTH = { authorization: `Bearer ${ADMIN}` };
const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');

let emu;
before(async () => { emu = await startEmulators(); });
after(async () => { await emu?.close(); });

async function states(gw) {
  const res = await gw.fetch('/admin/providers', { headers: AUTH });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return { text, byId: Object.fromEntries(JSON.parse(text).items.map((p) => [p.provider, p])) };
}

test('GET /admin/providers: the minter\'s token, this isolate\'s, the latest exchange, a drop; never a token or secret', async (t) => {
  const cfg = emu.gatewayConfig({ optoro: { coordination: 'durable_object', max_lifetime_s: 90000 } });
  const gw = await start(t, { ...cfg, minter: true, secrets: { ...cfg.secrets, TOKENGATE_ADMIN_TOKEN: ADMIN } });

  // Refused without the admin token, and with a wrong one.
  for (const headers of [{}, { authorization: `Bearer ${ADMIN}x` }]) {
    const r = await gw.fetch('/admin/providers', { headers });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error, 'invalid_token');
  }

  // Before any request: no token anywhere, nothing exchanged; nothing is obtained by asking.
  const exchangesBefore = emu.exchanges('optoro');
  let { byId } = await states(gw);
  assert.deepEqual(Object.keys(byId).sort(), Object.keys(cfg.providers).sort());
  assert.equal(byId.optoro.coordination, 'durable_object');
  assert.equal(byId.optimum.coordination, 'isolate');
  assert.equal(byId.optoro.auth_style, cfg.providers.optoro.auth_style);
  assert.equal(byId.optoro.api_host, new URL(cfg.providers.optoro.api_base).host.replace(/:\d+$/, ''));
  for (const p of Object.values(byId)) {
    assert.equal(p.token, null, p.provider);
    assert.equal(p.last_exchange, null, p.provider);
    assert.equal(p.dropped_at, null, p.provider);
    assert.deepEqual(p.recent_errors, [], p.provider);
  }
  assert.equal(emu.exchanges('optoro'), exchangesBefore, 'asking obtained no token');

  const tok = await callerToken(gw);
  for (const p of ['/optoro/v1/rmas', '/optimum/v1/vehicles']) assert.equal((await call(gw, tok, p)).status, 200, p);

  ({ byId } = await states(gw));
  const now = clock.now();
  const [optoroToken] = emu.issuedTokens('optoro');
  const o = byId.optoro.token;
  assert.equal(o.held_by, 'minter');
  assert.equal(o.expires_at_ms - o.issued_at_ms, 90000 * 1000, 'Optoro: created_at + 25 h');
  assert.equal(o.refresh_at_ms, o.expires_at_ms - 60000);
  assert.ok(Math.abs(o.expires_in_s - (o.expires_at_ms - now) / 1000) < 60);
  assert.equal(o.fresh, true);
  assert.equal(o.sha256_prefix, sha(optoroToken).slice(0, 12));
  const m = byId.optimum.token;
  assert.equal(m.held_by, 'memory');
  assert.equal(m.expires_at_ms - m.issued_at_ms, 86400 * 1000, 'Optimum: capped at a day');
  assert.equal(byId.partner.token, null, 'no request, no token');

  // The latest exchange arrives with the statistics.
  const exchanged = await eventually(async () => {
    const s = (await states(gw)).byId;
    return s.optoro.last_exchange && s.optimum.last_exchange && s;
  });
  for (const p of ['optoro', 'optimum']) {
    assert.equal(exchanged[p].last_exchange.ok, true, p);
    assert.equal(exchanged[p].last_exchange.status, 200, p);
    assert.ok(Math.abs(exchanged[p].last_exchange.time - clock.now()) < 60_000, p);
  }

  // Dropped: no token until the next request, which obtains a new one.
  assert.equal((await gw.fetch('/admin/providers/optoro/token', { method: 'DELETE', headers: AUTH })).status, 204);
  ({ byId } = await states(gw));
  assert.equal(byId.optoro.token, null);
  assert.ok(Math.abs(byId.optoro.dropped_at - clock.now()) < 60_000);
  assert.equal((await call(gw, tok, '/optoro/v1/rmas')).status, 200);
  ({ byId } = await states(gw));
  const next = emu.issuedTokens('optoro').at(-1);
  assert.notEqual(next, optoroToken);
  assert.equal(byId.optoro.token.sha256_prefix, sha(next).slice(0, 12));

  // A refused exchange: the latest exchange, and the provider's latest error (its code only).
  emu.script('partner', [{ status: 401, body: { error: 'invalid_client' } }]);
  assert.equal((await call(gw, tok, '/partner/v1/bookings')).status, 502);
  const failed = await eventually(async () => {
    const s = (await states(gw)).byId.partner;
    return s.last_exchange && s.recent_errors.some((e) => e.kind === 'token_exchange') && s;
  });
  assert.deepEqual({ ok: failed.last_exchange.ok, status: failed.last_exchange.status }, { ok: false, status: 401 });
  const exchangeError = failed.recent_errors.find((e) => e.kind === 'token_exchange');
  assert.equal(exchangeError?.status, 401, JSON.stringify(failed.recent_errors));
  assert.equal(exchangeError.provider_error, 'invalid_client');
  assert.equal(failed.token, null);

  const text = (await states(gw)).text;
  for (const secret of [...Object.values(cfg.secrets), ALL.secret, ADMIN, tok, ...emu.issuedTokens('optoro'), ...emu.issuedTokens('optimum')]) {
    assert.ok(!text.includes(secret), 'no token or secret in the answer');
  }
  assert.equal((await gw.fetch('/admin/providers', { method: 'POST', headers: AUTH })).status, 405);
});

test('a minter in an isolate of its own: its exchanges reach the statistics and the dashboard', async (t) => {
  // In production the minter's Durable Object may run in another isolate than any Worker
  // request; what it counts must still be sent. Here it runs in a second copy of the Worker.
  const cfg = emu.gatewayConfig({ optoro: { coordination: 'durable_object', max_lifetime_s: 90000 } });
  const gw = await start(t, { ...cfg, minter: 'isolate', secrets: { ...cfg.secrets, TOKENGATE_ADMIN_TOKEN: ADMIN } });
  const exchangesBefore = emu.exchanges('optoro');
  const tok = await callerToken(gw);
  assert.equal((await call(gw, tok, '/optoro/v1/rmas')).status, 200);
  assert.equal(emu.exchanges('optoro'), exchangesBefore + 1, 'one exchange, by the minter');
  const { byId } = await states(gw);
  assert.equal(byId.optoro.token.held_by, 'minter');
  const seen = await eventually(async () => (await states(gw)).byId.optoro.last_exchange);
  assert.deepEqual({ ok: seen.ok, status: seen.status }, { ok: true, status: 200 });
  const stats = await eventually(async () => {
    const r = await gw.fetch('/admin/stats?provider=optoro', { headers: AUTH });
    const optoro = (await r.json()).providers.optoro;
    return optoro.exchanges >= 1 && optoro;
  });
  assert.equal(stats.exchanges, 1);
});
