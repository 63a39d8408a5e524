// The tokens the Worker issues to its callers, against an attacker and against operators:
// made-up or altered bearers, write access to the KV namespace alone, a caller's secret
// rotated, a caller removed and added back, a shortened token_ttl_s, and guessing a secret at
// POST /oauth/token. Several gateways on one KV directory are one deployment's isolates.
// Run: node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  ALL, CTOK, JSON_HEADERS, TOKEN_RE, clock, rand, tempDir, start, startEmulators, callerToken, call, sweepTest,
  wellFormedToken, withChecksum,
} from './worker-lib.mjs';
import { sha256Hex } from './support/gateway.mjs';

let emu;
before(async () => { emu = await startEmulators(); });
after(() => emu?.close());
const config = (overrides = {}) => emu.gatewayConfig(overrides);
const deploymentKey = () => crypto.randomBytes(32).toString('base64');
/**
 * One deployment's isolates: the same KV and Durable Object storage (one directory), the same
 * TOKENGATE_KEY, these callers.
 */
const isolate = (t, dir, key, clients) => start(t, { ...config(), kvPersist: dir, doPersist: dir, key, clients });

test('a made-up or altered bearer is refused, and KV write access alone cannot mint or extend a token', async (t) => {
  const dir = tempDir(t);
  const key = deploymentKey();
  const everyone = { [ALL.id]: { secret: ALL.secret, scopes: ['optoro'] } };
  const gw1 = await isolate(t, dir, key, everyone);
  const tok = await callerToken(gw1);
  const other = await callerToken(gw1);
  assert.match(tok, TOKEN_RE);
  assert.equal(withChecksum(tok.slice(0, -6)), tok, 'the last 6 characters are the CRC-32 of the rest');
  const far = clock.now() + 365 * 86_400_000;
  const forgedRecord = JSON.stringify({ client_id: ALL.id, scopes: ['optoro', 'partner'], expires_at_ms: far });
  // A made-up token, well-formed (its checksum is right) but with a tag this deployment did not
  // make, with a record for it written straight into KV (the old, unsealed format).
  const madeUp = wellFormedToken();
  await gw1.kv.put(CTOK + sha256Hex(madeUp), forgedRecord);
  // An issued token with one character changed (a typo: the checksum no longer matches), and
  // with one character of its tag changed and the checksum made right again.
  const swap = (s, i) => s.slice(0, i) + (s[i] === '1' ? '2' : '1') + s.slice(i + 1);
  const altered = swap(tok, 10);
  const retagged = withChecksum(swap(tok, 60).slice(0, -6));
  assert.notEqual(retagged, tok);
  for (const bad of [madeUp, altered, retagged, `tgt_${'A'.repeat(72)}`, `tg_${'A'.repeat(64)}`, 'tgt_short']) {
    const r = await call(gw1, bad, '/optoro/v1/x');
    assert.equal(r.status, 401, bad);
    assert.equal(r.json.error, 'invalid_token');
  }
  // Overwrite a real token's record with a longer-lived, wider one in clear, or with another
  // token's sealed record: a fresh isolate (nothing in its memory) reads KV and refuses both.
  await gw1.kv.put(CTOK + sha256Hex(tok), forgedRecord);
  const sealedOther = await gw1.kv.get(CTOK + sha256Hex(other));
  const gw2 = await isolate(t, dir, key, everyone);
  assert.equal((await call(gw2, tok, '/optoro/v1/x')).status, 401, 'a record in clear');
  await gw1.kv.put(CTOK + sha256Hex(tok), sealedOther);
  const gw3 = await isolate(t, dir, key, everyone);
  assert.equal((await call(gw3, tok, '/optoro/v1/x')).status, 401, "another token's record");
  // The untouched token still works everywhere.
  assert.equal((await call(gw3, other, '/optoro/v1/x')).status, 200);
});

test("rotating a caller's secret revokes every token issued before; a shortened token_ttl_s caps them", async (t) => {
  const dir = tempDir(t);
  const key = deploymentKey();
  const before = { secret: `s1-${rand()}`, scopes: ['optoro'], token_ttl_s: 3600 };
  const gw1 = await isolate(t, dir, key, { svc: before });
  const tok = await callerToken(gw1, 'svc', before.secret);
  assert.equal((await call(gw1, tok, '/optoro/v1/x')).status, 200);

  const rotated = { ...before, secret: `s2-${rand()}` };
  const gw2 = await isolate(t, dir, key, { svc: rotated });
  const r = await call(gw2, tok, '/optoro/v1/x');
  assert.equal(r.status, 401);
  assert.match(r.json.error_description, /secret has changed/);
  const fresh = await callerToken(gw2, 'svc', rotated.secret);
  assert.equal((await call(gw2, fresh, '/optoro/v1/x')).status, 200);

  // The same registration with token_ttl_s 60: a token issued for an hour lasts 60 s.
  const short = await isolate(t, dir, key, { svc: { ...rotated, token_ttl_s: 60 } });
  assert.equal((await call(short, fresh, '/optoro/v1/x')).status, 200);
  clock.advance(61_000);
  assert.equal((await call(short, fresh, '/optoro/v1/x')).status, 401);
  assert.equal((await call(gw2, fresh, '/optoro/v1/x')).status, 200, 'still an hour where the TTL is an hour');
});

test('removing a caller and adding it back revokes every token issued before', async (t) => {
  const dir = tempDir(t);
  const key = deploymentKey();
  const svc = { secret: `s-${rand()}`, scopes: ['optoro'] };
  const everyone = { [ALL.id]: { secret: ALL.secret, scopes: ALL.scopes } };
  const gw1 = await isolate(t, dir, key, { ...everyone, svc });
  const tok = await callerToken(gw1, 'svc', svc.secret);
  assert.equal((await call(gw1, tok, '/optoro/v1/x')).status, 200);
  clock.advance(1_000);

  // A configuration without svc is deployed and serves a request.
  const without = await isolate(t, dir, key, everyone);
  assert.equal((await without.fetch('/healthz')).status, 200);
  assert.equal((await call(without, tok, '/optoro/v1/x')).status, 401);
  clock.advance(1_000);

  // svc comes back, with the very same secret: its old token stays revoked, a new one works.
  const back = await isolate(t, dir, key, { ...everyone, svc });
  const r = await call(back, tok, '/optoro/v1/x');
  assert.equal(r.status, 401);
  assert.match(r.json.error_description, /removed after the token was issued/);
  const fresh = await callerToken(back, 'svc', svc.secret);
  assert.equal((await call(back, fresh, '/optoro/v1/x')).status, 200);
  // Another isolate of the same deployment agrees.
  const peer = await isolate(t, dir, key, { ...everyone, svc });
  assert.equal((await call(peer, tok, '/optoro/v1/x')).status, 401);
  assert.equal((await call(peer, fresh, '/optoro/v1/x')).status, 200);
});

test('guessing a caller\'s secret: 429 with Retry-After after 10 failures from one address, logged with the client id and address', async (t) => {
  const gw = await start(t, config());
  const post = (id, secret, ip = '198.51.100.1') => gw.fetch('/oauth/token', {
    method: 'POST', headers: { ...JSON_HEADERS, 'cf-connecting-ip': ip },
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: id, client_secret: secret }),
  });
  for (let i = 0; i < 5; i++) assert.equal((await post(ALL.id, `guess-${i}`)).status, 401);
  for (let i = 0; i < 5; i++) assert.equal((await post('nobody', `guess-${i}`)).status, 401);
  const locked = await post(ALL.id, ALL.secret); // even the right secret, from this address, for now
  assert.equal(locked.status, 429);
  assert.equal((await locked.json()).error, 'too_many_attempts');
  const wait = Number(locked.headers.get('retry-after'));
  // The rest of the 60 s window (the isolate's clock may run a few ms apart from the suite's).
  assert.ok(wait >= 59 && wait <= 60, String(wait));
  assert.equal((await post('nobody', 'x')).status, 429, 'whatever id the address names');
  // From anywhere else the caller is not locked out.
  assert.equal((await post(ALL.id, ALL.secret, '203.0.113.77')).status, 200);
  // After the window the right secret works again.
  clock.advance(61_000);
  assert.equal((await post(ALL.id, ALL.secret)).status, 200);
  await gw.settleLogs(50);
  const failures = gw.jsonLogs().filter((l) => l.event === 'caller_auth_failed');
  assert.ok(failures.some((l) => l.client_id === ALL.id && l.registered === true && l.address === '198.51.100.1'));
  assert.ok(failures.some((l) => l.client_id === 'nobody' && l.registered === false));
  assert.ok(gw.jsonLogs().some((l) => l.event === 'caller_auth_refused' && l.address === '198.51.100.1'));
});

sweepTest(() => emu, { minBodies: 8, minLogs: 5 });
