// Tests of the openapi.com Oauth v2 emulator (tests/support/openapi.mjs): RFC 7617 Basic with
// awkward credentials, token creation in both response shapes, scope and body validation,
// refresh-token rotation, deletion, expiry by the injected clock, the scope-checked API and
// scripted replies.
// Run: node --test tests/openapi-emulator.test.mjs

import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startTokenService } from './support/openapi.mjs';

const SCOPES = ['GET:company.openapi.com/IT-start', 'POST:sms.openapi.com/messages'];
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');

describe('openapi.com Oauth v2 emulator', () => {
  const clock = { t: Date.parse('2026-01-01T00:00:00Z'), now() { return this.t; } };
  let emu;
  before(async () => { emu = await startTokenService({ clock }); });
  after(() => emu.close());
  beforeEach(() => { emu.reset(); emu.setShape('wrapped'); });

  const basic = () => `Basic ${b64(`${emu.credentials.email}:${emu.credentials.apiKey}`)}`;
  const call = (method, path, { auth = basic(), body, type = 'application/json' } = {}) => fetch(emu.url + path, {
    method,
    headers: { ...(auth ? { authorization: auth } : {}), ...(body !== undefined ? { 'content-type': type } : {}) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const create = (body = { scopes: SCOPES, ttl: 3600, name: 'qa' }, o = {}) => call('POST', '/tokens', { body, ...o });
  const created = async (body) => {
    const res = await create(body);
    assert.equal(res.status, 200);
    return (await res.json()).data;
  };
  const api = (token, path, method = 'GET') => fetch(`${emu.url}/${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const assertError = async (res, status, error, message) => {
    assert.equal(res.status, status);
    const j = await res.json();
    assert.deepEqual(Object.keys(j).sort(), ['data', 'error', 'message', 'success']);
    assert.equal(j.success, false);
    assert.equal(j.data, null);
    assert.equal(j.error, error);
    if (message) assert.equal(j.message, message);
  };

  test('generated credentials carry + and @ in the e-mail and : + / = in the key', () => {
    assert.match(emu.credentials.email, /^qa\+tg-[0-9a-f]+@example\.com$/);
    assert.ok(/[+/=]/.test(emu.credentials.apiKey) && emu.credentials.apiKey.indexOf(':') > 0);
  });

  test('create, wrapped shape: the record, Basic split at the first colon', async () => {
    const res = await create({ scopes: SCOPES, ttl: 3600, name: 'qa', limits: { requests: 10 } });
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.deepEqual([j.success, j.message, j.error], [true, '', null]);
    const r = j.data;
    assert.deepEqual(Object.keys(r).sort(), ['createdAt', 'expireAt', 'limits', 'name', 'refreshToken', 'scopes', 'stats', 'token', 'updatedAt']);
    assert.match(r.token, /^[A-Za-z0-9_-]{40}$/);
    assert.match(r.refreshToken, /^[A-Za-z0-9_-]{40}$/);
    assert.notEqual(r.token, r.refreshToken);
    assert.equal(r.expireAt, new Date(clock.t + 3600e3).toISOString());
    assert.equal(r.createdAt, new Date(clock.t).toISOString());
    assert.deepEqual([r.scopes, r.name, r.limits, r.stats], [SCOPES, 'qa', { requests: 10 }, { requests: 0, paid: 0 }]);
    assert.ok(emu.isLive(r.token));
    const [req] = emu.requests('create');
    assert.equal(req.headers.authorization, basic());
    assert.equal(emu.count('create'), 1);
  });

  test('create, plain shape and defaults (ttl one year)', async () => {
    emu.setShape('plain');
    const r = await (await create({ scopes: ['*:company.openapi.com'] })).json();
    assert.equal(r.expireAt, new Date(clock.t + 31536000e3).toISOString());
    assert.deepEqual([r.name, r.limits], ['', {}]);
    assert.equal(r.success, undefined);
  });

  test('Basic: form-urlencoded first, wrong key, missing or malformed → 401 error 1', async () => {
    const { email, apiKey } = emu.credentials;
    const urlenc = `Basic ${b64(`${encodeURIComponent(email)}:${encodeURIComponent(apiKey)}`)}`; // qa%2Btg-…%40example.com
    const issued = emu.allTokens().length;
    for (const auth of [urlenc, `Basic ${b64(`${email}:${apiKey}x`)}`, `Basic ${b64(email)}`, 'Basic !!', null]) {
      await assertError(await create(undefined, { auth }), 401, 1, 'Unauthorized');
    }
    await assertError(await call('GET', '/tokens', { auth: urlenc }), 401, 1);
    assert.equal(emu.allTokens().length, issued);
    assert.deepEqual(emu.requests('create').map((r) => r.headers.authorization ?? null).slice(0, 2), [urlenc, `Basic ${b64(`${email}:${apiKey}x`)}`]);
  });

  test('validation: scopes → 422/90, ttl, name, limits, JSON, Content-Type', async () => {
    const bad = [['GET:example.com/x'], ['GET company.openapi.com/IT-start'], ['FETCH:company.openapi.com/x'], [], 'GET:company.openapi.com', [42]];
    for (const scopes of bad) await assertError(await create({ scopes }), 422, 90, 'Invalid scopes specified or API not enabled');
    await assertError(await create({ name: 'x' }), 422, 90);
    for (const ttl of [31536001, 0, 1.5, '60']) await assertError(await create({ scopes: SCOPES, ttl }), 422, 11);
    await assertError(await create({ scopes: SCOPES, name: 7 }), 422, 12);
    await assertError(await create({ scopes: SCOPES, limits: [1] }), 422, 13);
    await assertError(await create('{"scopes":'), 422, 10);
    await assertError(await create(JSON.stringify({ scopes: SCOPES }), { type: 'text/plain' }), 415, 14);
    await assertError(await call('PUT', '/tokens'), 404, 6);
  });

  test('PATCH rotation: new token and refresh token, old one gone, reuse 401, unknown 404', async () => {
    const a = await created({ scopes: SCOPES, ttl: 600, name: 'rot', limits: { paid: 1 } });
    await api(a.token, 'company.openapi.com/IT-start/1');
    const bearer = (t) => `Bearer ${t}`;
    await assertError(await call('PATCH', `/tokens/${a.token}`, { auth: bearer('nope'), body: {} }), 401, 2, 'Invalid refresh token');
    const res = await call('PATCH', `/tokens/${a.token}`, { auth: bearer(a.refreshToken), body: {} });
    assert.equal(res.status, 200);
    const b = (await res.json()).data;
    assert.notEqual(b.token, a.token);
    assert.notEqual(b.refreshToken, a.refreshToken);
    assert.deepEqual([b.scopes, b.name, b.limits, b.stats], [SCOPES, 'rot', { paid: 1 }, { requests: 1, paid: 0 }]);
    assert.equal(b.expireAt, new Date(clock.t + 600e3).toISOString());
    assert.ok(!emu.isLive(a.token) && emu.isLive(b.token));
    assert.equal((await api(a.token, 'company.openapi.com/IT-start/1')).status, 401);
    await assertError(await call('PATCH', `/tokens/${b.token}`, { auth: bearer(a.refreshToken), body: {} }), 401, 2);
    await assertError(await call('PATCH', `/tokens/${a.token}`, { auth: bearer(a.refreshToken), body: {} }), 404, 5);
    await assertError(await call('PATCH', '/tokens/unknown', { auth: bearer(b.refreshToken), body: {} }), 404, 5);
    await assertError(await call('PATCH', `/tokens/${b.token}`, { auth: bearer(b.refreshToken), body: { ttl: 31536001 } }), 422, 11);
    const c = (await (await call('PATCH', `/tokens/${b.token}`, { auth: bearer(b.refreshToken), body: { ttl: 60 } })).json()).data;
    assert.equal(c.expireAt, new Date(clock.t + 60e3).toISOString());
    assert.deepEqual(emu.allTokens().filter((t) => [a.token, b.token, c.token].includes(t.token)).map((t) => [t.via, t.deleted]),
      [['create', true], ['rotate', true], ['rotate', false]]);
    assert.equal(emu.count('rotate'), 7);
  });

  test('DELETE then 404; GET lists live tokens without refresh tokens', async () => {
    const a = await created();
    let list = (await (await call('GET', '/tokens')).json()).data;
    assert.ok(list.some((r) => r.token === a.token) && list.every((r) => !('refreshToken' in r)));
    const del = await call('DELETE', `/tokens/${a.token}`);
    assert.equal(del.status, 200);
    assert.equal((await del.json()).data.token, a.token);
    await assertError(await call('DELETE', `/tokens/${a.token}`), 404, 5, 'Token not found');
    await assertError(await call('DELETE', `/tokens/${a.token}`, { auth: 'Basic eDp5' }), 401, 1);
    emu.setShape('plain');
    list = await (await call('GET', '/tokens')).json();
    assert.ok(Array.isArray(list) && !list.some((r) => r.token === a.token));
    assert.deepEqual(list.map((r) => r.token), emu.liveTokens());
  });

  test('expiry follows the injected clock', async () => {
    const a = await created({ scopes: SCOPES, ttl: 5 });
    assert.equal((await api(a.token, 'company.openapi.com/IT-start/1')).status, 200);
    clock.t += 5000;
    assert.ok(!emu.isLive(a.token) && !emu.liveTokens().includes(a.token));
    assert.equal((await api(a.token, 'company.openapi.com/IT-start/1')).status, 401);
    await assertError(await call('PATCH', `/tokens/${a.token}`, { auth: `Bearer ${a.refreshToken}`, body: {} }), 404, 5);
  });

  test('API: scope method and prefix → 200 / 403 / 401', async () => {
    const a = await created();
    const ok = await api(a.token, 'company.openapi.com/IT-start/12345678901?x=1');
    assert.equal(ok.status, 200);
    const echo = await ok.json();
    assert.deepEqual([echo.method, echo.path, echo.query, echo.authorization], ['GET', '/company.openapi.com/IT-start/12345678901', 'x=1', true]);
    assert.ok(!JSON.stringify(echo).includes(a.token));
    assert.equal((await api(a.token, 'sms.openapi.com/messages', 'POST')).status, 200);
    await assertError(await api(a.token, 'company.openapi.com/IT-advanced/1'), 403, 4);
    await assertError(await api(a.token, 'company.openapi.com/IT-start/1', 'DELETE'), 403, 4);
    await assertError(await api(a.token, 'sms.openapi.com/messages'), 403, 4);
    const un = await api(null, 'company.openapi.com/IT-start/1');
    assert.equal(un.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    await assertError(un, 401, 3);
    emu.deleteToken(a.token);
    await assertError(await api(a.token, 'company.openapi.com/IT-start/1'), 401, 3);
    assert.equal(emu.count('api'), 7);
  });

  test('scripted replies: status, delay, destroy, then normal handling', async () => {
    emu.script('create', [{ status: 503, body: { busy: true }, headers: { 'retry-after': '1' } }, { delayMs: 30 }, { destroy: true }]);
    const r1 = await create();
    assert.deepEqual([r1.status, r1.headers.get('retry-after'), await r1.json()], [503, '1', { busy: true }]);
    const t0 = Date.now();
    assert.equal((await create()).status, 200);
    assert.ok(Date.now() - t0 >= 25);
    await assert.rejects(create());
    assert.equal((await create()).status, 200);
    emu.script('api', [{ status: 429 }]);
    assert.equal((await api(null, 'company.openapi.com/x')).status, 429);
    assert.equal(emu.count('create'), 4);
    assert.throws(() => emu.script('bogus', []));
  });

  test('gatewayConfig', () => {
    const { providers, secrets } = emu.gatewayConfig({ ttl_margin: 1 });
    assert.deepEqual(providers.openapi.token_url, emu.tokenUrl);
    assert.equal(providers.openapi.api_base, `${emu.url}/company.openapi.com/`);
    assert.equal(providers.openapi.client_id, emu.credentials.email);
    assert.equal(providers.openapi.auth_style, 'token_api');
    assert.equal(providers.openapi.ttl_margin, 1);
    assert.deepEqual(secrets, { OPENAPI_API_KEY: emu.credentials.apiKey });
  });
});
