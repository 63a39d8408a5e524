// The npm package as a user gets it: `npm pack` of pkg/ (built by .ci/build-npm), installed
// offline into an empty temporary project, loaded there with `require('tokengate')` and with
// `import ... from 'tokengate'`, and run against the provider emulators (one per provider
// dialect, docs/providers.md) and oidc-provider. Run: node --test tests/npm.test.mjs
//
// Every test closes the servers it started; the temporary project is removed at the end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startProviders } from './support/emulators.mjs';
import { startOidc } from './support/oidc.mjs';
import { startTokenService } from './support/openapi.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = path.join(ROOT, 'pkg');
const DIALECT = { optoro: 'json_body', optimum: 'client_secret_post', partner: 'json_body' };

let tmp; // the consumer project
const viaRequire = {}; // the package loaded with require()
const viaImport = {}; // the package loaded with import

const quiet = { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' };

before(async () => {
  if (!fs.existsSync(path.join(PKG, 'package.json'))) {
    execFileSync(path.join(ROOT, '.ci/build-npm'), [], { ...quiet, cwd: ROOT });
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-npm-'));
  const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', tmp], { ...quiet, cwd: PKG }).trim();
  fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  // A local tarball installs without the registry.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', path.join(tmp, tarball)],
    { ...quiet, cwd: tmp });
  fs.writeFileSync(path.join(tmp, 'cjs.cjs'), "module.exports = require('tokengate');\n");
  fs.writeFileSync(path.join(tmp, 'esm.mjs'), "export * from 'tokengate';\n");
  Object.assign(viaRequire, createRequire(path.join(tmp, 'package.json'))('./cjs.cjs'));
  Object.assign(viaImport, await import(pathToFileURL(path.join(tmp, 'esm.mjs')).href));
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Starts the emulators for one test and closes them when it ends. */
async function providers(t, opts) {
  const p = await startProviders(opts);
  t.after(() => p.close());
  return p;
}

/** A TokenClient for emulated provider `id`, from module `m`. */
function clientFor(m, p, id, extra = {}, options = {}) {
  return new m.TokenClient({
    tokenUrl: p.endpoints[id].token,
    clientId: p.credentials[id].clientId,
    clientSecret: p.credentials[id].clientSecret,
    authStyle: DIALECT[id],
    ...extra,
  }, options);
}

test('the tarball installs and loads through require and import', () => {
  const names = ['TokenClient', 'TokenError', 'buildTokenRequest', 'parseTokenResponse', 'cachePolicy', 'decodeJwtClaims'];
  for (const n of names) {
    assert.equal(typeof viaRequire[n], 'function', `require: ${n}`);
    assert.equal(viaImport[n], viaRequire[n], `import and require share one module instance: ${n}`);
  }
  const pj = JSON.parse(fs.readFileSync(path.join(tmp, 'node_modules/tokengate/package.json'), 'utf8'));
  assert.equal(pj.name, 'tokengate');
  assert.match(pj.version, /^\d+\.\d+\.\d+/);
  assert.ok(fs.existsSync(path.join(tmp, 'node_modules/tokengate', pj.types)));
  assert.equal(pj.license, 'Apache-2.0');
  assert.match(fs.readFileSync(path.join(tmp, 'node_modules/tokengate/LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
  // A fresh process in the consumer project, both module systems, as a user would write them.
  const cjs = "const { TokenClient, TokenError } = require('tokengate'); console.log(typeof TokenClient, new TokenError('config', 'x') instanceof Error);";
  const esm = "import { TokenClient, TokenError } from 'tokengate'; console.log(typeof TokenClient, new TokenError('config', 'x') instanceof Error);";
  assert.equal(execFileSync(process.execPath, ['-e', cjs], { ...quiet, cwd: tmp }).trim(), 'function true');
  assert.equal(execFileSync(process.execPath, ['--input-type=module', '-e', esm], { ...quiet, cwd: tmp }).trim(), 'function true');
});

for (const [label, m] of [['require', viaRequire], ['import', viaImport]]) {
  for (const id of ['optoro', 'optimum', 'partner']) {
    test(`${id} (${DIALECT[id]}) via ${label}: token, cache hit, authorized API call`, async (t) => {
      const p = await providers(t);
      const c = clientFor(m, p, id);
      const tok = await c.token();
      assert.equal(tok.tokenType, 'Bearer');
      assert.ok(p.isValidToken(id, tok.accessToken));
      assert.ok(tok.expiresAt > Date.now());
      const again = await c.token();
      assert.deepEqual(again, tok, 'served from memory');
      assert.equal(p.exchanges(id), 1);

      const api = `${p.endpoints[id].api}/v1/items?x=1`;
      const res = await c.fetch(api, { headers: { 'X-Optiturn-Api-Version': '1' } });
      assert.equal(res.status, 200);
      const echo = await res.json();
      assert.equal(echo.headers.authorization, `Bearer ${tok.accessToken}`);
      assert.equal(echo.headers['x-optiturn-api-version'], '1');
      assert.equal(echo.query, 'x=1');
      assert.equal(await c.authorizationHeader(), `Bearer ${tok.accessToken}`);
      assert.equal(p.exchanges(id), 1);
      // Logging the client shows no token (the fast lane's view of it is not enumerable).
      assert.ok(!util.inspect(c, { depth: 10, showHidden: false }).includes(tok.accessToken));
    });
  }
}

test('the shipped types compile in a strict TypeScript project (Node and web resolution)', () => {
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  // A user's code against every exported type; two deliberate mistakes must be caught.
  const source = `
import { TokenClient, TokenError, buildTokenRequest, parseTokenResponse, cachePolicy, decodeJwtClaims } from 'tokengate';
import type { TokenClientConfig, TokenCache, Token, TokenErrorCode, CachePolicy, TokenRequest } from 'tokengate';

const cache: TokenCache = { get: async () => null, set: () => undefined, delete: async () => true };
const config: TokenClientConfig = {
  tokenUrl: 'https://auth.example/token', clientId: 'id', clientSecret: 'secret', authStyle: 'json_body',
  retry: { maxAttempts: 2 }, timeoutMs: 1000, tokenParams: { a: 'b', n: 1 },
};
const client = new TokenClient(config, { cache, now: { now: () => Date.now() }, log: (event, fields) => void [event, fields] });
const tokenApi: TokenClientConfig = {
  tokenUrl: 'https://test.oauth.openapi.com/tokens', clientId: 'dev@example.com', clientSecret: 'key', authStyle: 'token_api',
  tokenBody: { scopes: ['GET:company.openapi.com/IT-start'], ttl: 3600, name: 'n', limits: { total: 10 } },
};
void tokenApi;
const strong: TokenClientConfig[] = [
  { tokenUrl: 'https://idp.example/token', clientId: 'id', authStyle: 'private_key_jwt', clientKey: '-----BEGIN PRIVATE KEY-----', clientKeyAlg: 'PS256', kid: 'k', dpop: true },
  { tokenUrl: 'https://idp.example/token', clientId: 'id', authStyle: 'tls_client_auth', dpop: true, dpopKey: { kty: 'EC' } },
];
void strong;
export async function use(): Promise<number> {
  const t: Token = await client.token();
  const header: string = await client.authorizationHeader();
  const proof: string = await client.dpopProof('GET', new URL('https://api.example/x'));
  const res: Response = await client.fetch(new URL('https://api.example/x'), { method: 'POST', body: 'x' });
  await client.invalidate();
  client.free();
  const req: TokenRequest = buildTokenRequest(config);
  const parsed = parseTokenResponse(200, { 'content-type': 'application/json' }, '{}', Date.now(), { refreshSkewS: 5 });
  const policy: CachePolicy = cachePolicy({ expiresAt: parsed.expiresAt }, Date.now());
  const claims: Record<string, unknown> | null = decodeJwtClaims(t.accessToken);
  try { await client.token(); } catch (e) {
    if (e instanceof TokenError) { const code: TokenErrorCode = e.code; void code; }
  }
  return proof.length + t.expiresAt + header.length + res.status + req.body.length + (policy.ttlSeconds ?? 0) + (claims ? 1 : 0);
}
`;
  const mistakes = `
import { TokenClient } from 'tokengate';
new TokenClient({ tokenUrl: 'https://a/t', clientId: 'id' });
new TokenClient({ tokenUrl: 'https://a/t', clientId: 'id', clientSecret: 's', authStyle: 'digest' });
new TokenClient({ tokenUrl: 'https://a/t', clientId: 'id', authStyle: 'private_key_jwt' });
`;
  const project = (name, compilerOptions, files) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { recursive: true });
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, skipLibCheck: false, lib: ['es2022', 'dom'], target: 'es2022', ...compilerOptions,
      },
      include: Object.keys(files),
    }));
    try {
      execFileSync(process.execPath, [tsc, '-p', dir], { ...quiet, cwd: dir });
      return '';
    } catch (e) {
      return `${e.stdout}${e.stderr}`;
    }
  };
  for (const options of [{ module: 'nodenext', moduleResolution: 'nodenext' }, { module: 'esnext', moduleResolution: 'bundler' }]) {
    assert.equal(project(`ts-ok-${options.moduleResolution}`, options, { 'use.ts': source }), '', JSON.stringify(options));
    const out = project(`ts-bad-${options.moduleResolution}`, options, { 'bad.ts': mistakes });
    assert.match(out, /bad\.ts\(3,/, `${JSON.stringify(options)}: a config without clientSecret (or another credential) is a type error`);
    assert.match(out, /"digest"/, `${JSON.stringify(options)}: an unknown authStyle is a type error`);
    assert.match(out, /bad\.ts\(5,[^]*Property 'clientKey' is missing/, `${JSON.stringify(options)}: private_key_jwt without clientKey is a type error`);
  }
});

test('single flight: 100 concurrent token() calls make exactly one exchange', async (t) => {
  const p = await providers(t);
  for (const id of ['optoro', 'optimum', 'partner']) {
    const c = clientFor(viaImport, p, id);
    const tokens = await Promise.all(Array.from({ length: 100 }, () => c.token()));
    assert.equal(new Set(tokens.map((x) => x.accessToken)).size, 1, id);
    assert.equal(p.exchanges(id), 1, id);
  }
});

test('401 from the API: invalidate, new token, replay once with the same body', async (t) => {
  const p = await providers(t);
  const c = clientFor(viaRequire, p, 'optoro');
  const first = await c.token();
  p.revokeAll('optoro');
  const body = JSON.stringify({ rma_identifier: 'R-1' });
  const res = await c.fetch(`${p.endpoints.optoro.api}/v1/rmas`, {
    method: 'POST', body, headers: { 'content-type': 'application/json' },
  });
  assert.equal(res.status, 200);
  const echo = await res.json();
  assert.equal(echo.body, body);
  const second = await c.token();
  assert.notEqual(second.accessToken, first.accessToken);
  assert.equal(echo.headers.authorization, `Bearer ${second.accessToken}`);
  const seen = p.apiRequests('optoro');
  assert.equal(seen.length, 2);
  assert.equal(seen[0].headers.authorization, `Bearer ${first.accessToken}`);
  assert.equal(seen[1].body, body);
  assert.equal(p.exchanges('optoro'), 2);
});

test('429 and 503: backoff and retry (API and token endpoint), Retry-After honoured', async (t) => {
  const p = await providers(t);
  const c = clientFor(viaImport, p, 'partner', { retry: { baseDelayMs: 20, maxDelayMs: 2000 } });
  p.script('partner', [{ status: 503, body: 'down' }]);
  await c.token();
  assert.equal(p.exchanges('partner'), 2, 'the token endpoint 503 was retried');

  p.scriptApi('partner', [{ status: 503, body: { busy: true } }, { status: 429, headers: { 'retry-after': '1' } }]);
  const started = performance.now();
  const res = await c.fetch(`${p.endpoints.partner.api}/bookings`);
  const elapsed = performance.now() - started;
  assert.equal(res.status, 200);
  assert.equal(p.apiRequests('partner').length, 3);
  assert.ok(elapsed >= 950, `waited for Retry-After: 1 (${elapsed.toFixed(0)} ms)`);

  // POST is not idempotent: its 503 comes back without a retry.
  p.scriptApi('partner', [{ status: 503, body: { busy: true } }]);
  const post = await c.fetch(`${p.endpoints.partner.api}/bookings`, { method: 'POST', body: '{}' });
  assert.equal(post.status, 503);
  assert.equal(p.apiRequests('partner').length, 4);

  // Retries run out: rate_limited.
  const strict = clientFor(viaImport, p, 'optoro', { retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } });
  p.script('optoro', [{ status: 429, body: {} }, { status: 429, body: {} }]);
  await assert.rejects(strict.token(), (e) => e instanceof viaImport.TokenError && e.code === 'rate_limited' && e.retryable === true && e.status === 429);
});

test('invalid_client: TokenError shape, never the secret', async (t) => {
  const p = await providers(t);
  for (const [id, status] of [['optoro', 401], ['optimum', 400], ['partner', 401]]) {
    const secret = `${p.credentials[id].clientSecret}-wrong`;
    for (const m of [viaRequire, viaImport]) {
      const c = clientFor(m, p, id, { clientSecret: secret });
      const err = await c.token().then(() => assert.fail('resolved'), (e) => e);
      assert.ok(err instanceof m.TokenError && err instanceof Error, id);
      assert.equal(err.name, 'TokenError');
      assert.equal(err.code, 'invalid_client', id);
      assert.equal(err.status, status, id);
      assert.equal(err.retryable, false);
      assert.equal(err.providerError, 'invalid_client');
      for (const text of [err.message, err.stack, util.inspect(err), JSON.stringify(err)]) {
        assert.ok(!text.includes(secret), `${id}: secret in ${text}`);
        assert.ok(!text.includes(p.credentials[id].clientSecret), `${id}: real secret in ${text}`);
      }
    }
  }
  // Config errors name the key, also for a missing clientSecret.
  assert.throws(() => new viaImport.TokenClient({ tokenUrl: p.endpoints.optoro.token, clientId: 'x' }),
    (e) => e instanceof viaImport.TokenError && e.code === 'config' && /clientSecret/.test(e.message));
  assert.throws(() => new viaRequire.TokenClient({ tokenUrl: 'ftp://x', clientId: 'x', clientSecret: 's3cret!' }),
    (e) => e.code === 'config' && /tokenUrl/.test(e.message) && !e.message.includes('s3cret!'));
});

test('a redirecting token endpoint is not followed; a streamed body is sent once', async (t) => {
  const p = await providers(t);
  const c = clientFor(viaRequire, p, 'optimum');
  p.script('optimum', [{ status: 302, headers: { location: `${p.url}/optoro/oauth/token` } }]);
  await assert.rejects(c.token(), (e) => e.code === 'invalid_response' && e.status === 302 && /redirect/.test(e.message));
  assert.equal(p.exchanges('optimum'), 1);
  assert.equal(p.exchanges('optoro'), 0, 'the credentials went nowhere else');

  // A ReadableStream body cannot be replayed: a 401 is handed back after one attempt.
  const tok = await c.token();
  p.revokeAll('optimum');
  const body = new ReadableStream({ start(ctl) { ctl.enqueue(new TextEncoder().encode('streamed')); ctl.close(); } });
  const res = await c.fetch(`${p.endpoints.optimum.api}/upload`, { method: 'PUT', body, duplex: 'half' });
  assert.equal(res.status, 401);
  const seen = p.apiRequests('optimum');
  assert.equal(seen.length, 1);
  assert.equal(seen[0].body, 'streamed');
  assert.equal(seen[0].headers.authorization, `Bearer ${tok.accessToken}`);
  // The rejected token is dropped: the next call uses a new one.
  assert.notEqual((await c.token()).accessToken, tok.accessToken);
});

test('custom cache adapter: a second client with the same cache does no exchange', async (t) => {
  const p = await providers(t);
  const map = new Map();
  const calls = [];
  const cache = {
    async get(k) { calls.push(['get', k]); return map.get(k) ?? null; },
    async set(k, v, ttl) { calls.push(['set', k, ttl]); map.set(k, v); },
    async delete(k) { calls.push(['delete', k]); map.delete(k); },
  };
  const a = clientFor(viaRequire, p, 'optoro', { maxLifetimeS: 90000 }, { cache });
  const ta = await a.token();
  const set = calls.find((c) => c[0] === 'set');
  assert.ok(set, 'the token was stored');
  assert.ok(set[2] > 89_900 && set[2] <= 89_940, `TTL ${set[2]}: lifetime minus the refresh skew`);
  assert.ok(!set[1].includes(p.credentials.optoro.clientSecret));
  const b = clientFor(viaImport, p, 'optoro', { maxLifetimeS: 90000 }, { cache });
  const tb = await b.token();
  assert.equal(tb.accessToken, ta.accessToken);
  assert.equal(p.exchanges('optoro'), 1);
  await b.invalidate();
  assert.equal(map.size, 0);
  // A broken cache is a miss, not a failure.
  const broken = { get: () => { throw new Error('down'); }, set: async () => { throw new Error('down'); }, delete: () => {} };
  const events = [];
  const c = clientFor(viaImport, p, 'optoro', {}, { cache: broken, log: (e, f) => events.push([e, f]) });
  assert.ok((await c.token()).accessToken);
  assert.ok(events.some(([e, f]) => e === 'store_error' && f.op === 'get'));
  assert.ok(!JSON.stringify(events).includes(p.credentials.optoro.clientSecret));
  // An adapter whose set error quotes its arguments (the token JSON) does not put the token in
  // the store_error event.
  const quoting = { get: () => null, set: async (k, v) => { throw new Error(`SET ${k} ${v} failed`); }, delete: () => {} };
  const seen = [];
  const d = clientFor(viaImport, p, 'partner', {}, { cache: quoting, log: (e, f) => seen.push([e, f]) });
  const td = await d.token();
  const put = seen.find(([e, f]) => e === 'store_error' && f.op === 'put');
  assert.ok(put, JSON.stringify(seen));
  assert.match(put[1].error, /cache\.set rejected: Error/);
  assert.ok(!JSON.stringify(seen).includes(td.accessToken));
});

/** Resolves once `cond()` holds (checked every 10 ms); rejects after `ms`. */
async function until(cond, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a hanging API: every attempt is torn down at timeoutMs; a slow body is read in full', async (t) => {
  const p = await providers(t);
  // An API that never answers /hang on its own, and answers /slow-body's headers at once and
  // its body 400 ms later; the test sees when each connection closes.
  const held = [];
  const api = http.createServer((req, res) => {
    if (req.url === '/slow-body') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first half, ');
      setTimeout(() => res.end('second half'), 400);
      return;
    }
    const entry = { res, closed: false };
    res.on('close', () => { entry.closed = true; });
    held.push(entry);
  });
  await new Promise((r) => api.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { api.close(r); api.closeAllConnections(); }));
  const base = `http://127.0.0.1:${api.address().port}`;
  const isTimeout = (e) => e instanceof viaImport.TokenError && e.code === 'timeout';

  // No retry: the one attempt is aborted at its deadline and its connection closed.
  const once = clientFor(viaImport, p, 'partner', { timeoutMs: 200, retry: { maxAttempts: 1 } });
  await once.token();
  await assert.rejects(once.fetch(`${base}/hang`), isTimeout);
  await until(() => held.length === 1 && held[0].closed, 'the request to be torn down at its deadline');
  // A GET is retried after a timeout: each attempt is torn down in turn.
  const twice = clientFor(viaImport, p, 'partner', { timeoutMs: 200, retry: { maxAttempts: 2, baseDelayMs: 0 } });
  await twice.token();
  await assert.rejects(twice.fetch(`${base}/hang`), isTimeout);
  await until(() => held.length === 3 && held.every((h) => h.closed), 'both attempts to be torn down');
  // The timeout covers the wait for the response headers, not the body.
  const res = await once.fetch(`${base}/slow-body`);
  assert.equal(await res.text(), 'first half, second half');
});

test('an injected clock drives refresh before expiry', async (t) => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = { now: () => now };
  const p = await providers(t, { clock });
  const c = clientFor(viaImport, p, 'partner', { refreshSkewS: 60 }, { now: clock.now });
  const first = await c.token();
  assert.equal(first.expiresAt, now + 3_600_000);
  now = first.expiresAt - 60_000 - 1;
  assert.equal((await c.token()).accessToken, first.accessToken);
  now += 1; // 60 s before expiry: the provider still accepts it, the client refreshes anyway
  assert.ok(p.isValidToken('partner', first.accessToken));
  const second = await c.token();
  assert.notEqual(second.accessToken, first.accessToken);
  // The JWT's fractional `exp` may round a millisecond below expires_in.
  assert.ok(Math.abs(second.expiresAt - (now + 3_600_000)) <= 1, `${second.expiresAt} vs ${now + 3_600_000}`);
  assert.equal(p.exchanges('partner'), 2);
});

// ---- the token-management dialect (openapi.com Oauth v2: docs/providers.md#openapi-token-api)

/** The emulated service on an injected clock, and a client of it from module `m`. */
async function tokenService(t, m, { shape = 'wrapped', tokenBody, logs = [] } = {}) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = { now: () => now, advance: (ms) => { now += ms; } };
  const svc = await startTokenService({ clock, shape });
  t.after(() => svc.close());
  const client = new m.TokenClient({
    tokenUrl: svc.tokenUrl, clientId: svc.credentials.email, clientSecret: svc.credentials.apiKey,
    authStyle: 'token_api',
    tokenBody: tokenBody ?? { scopes: ['GET:company.openapi.com/IT-start'], ttl: 3600, name: 'tokengate' },
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
  }, { now: clock, log: (event, fields) => logs.push({ event, ...fields }) });
  return { svc, clock, client };
}

for (const [label, m] of [['require', viaRequire], ['import', viaImport]]) {
  test(`token_api via ${label}: create with RFC 7617 Basic, then fetch with the token (both shapes)`, async (t) => {
    for (const shape of ['wrapped', 'plain']) {
      const { svc, client } = await tokenService(t, m, { shape });
      const tok = await client.token();
      assert.ok(svc.isLive(tok.accessToken));
      assert.equal(tok.expiresAt, Date.parse('2026-01-01T01:00:00Z'));
      assert.equal(tok.scope, 'GET:company.openapi.com/IT-start');
      const [create] = svc.requests('create');
      assert.equal(create.headers.authorization,
        `Basic ${Buffer.from(`${svc.credentials.email}:${svc.credentials.apiKey}`).toString('base64')}`);
      assert.deepEqual(JSON.parse(create.body), { scopes: ['GET:company.openapi.com/IT-start'], ttl: 3600, name: 'tokengate' });
      const res = await client.fetch(`${svc.apiBase()}IT-start/12345678901`);
      assert.equal(res.status, 200, shape);
      assert.equal((await res.json()).path, '/company.openapi.com/IT-start/12345678901');
      assert.equal(svc.count('create'), 1);
    }
  });
}

test('token_api: rotation before expiry on the injected clock — one POST, then only PATCHes', async (t) => {
  const { svc, clock, client } = await tokenService(t, viaImport);
  const first = await client.token();
  const seen = [first.accessToken];
  for (let i = 0; i < 3; i++) {
    clock.advance(3_541_000);
    const next = await client.token();
    assert.ok(!seen.includes(next.accessToken));
    seen.push(next.accessToken);
    assert.equal((await client.fetch(`${svc.apiBase()}IT-start/1`)).status, 200);
  }
  assert.deepEqual(svc.requests().filter((r) => r.kind !== 'api').map((r) => r.kind), ['create', 'rotate', 'rotate', 'rotate']);
  assert.deepEqual(svc.liveTokens(), [seen.at(-1)]);
});

test('token_api: a refused rotation creates a new token and deletes the superseded one', async (t) => {
  const logs = [];
  const { svc, clock, client } = await tokenService(t, viaRequire, { logs });
  const first = await client.token();
  clock.advance(3_541_000);
  svc.script('rotate', [{ status: 401, body: { success: false, message: 'Invalid refresh token', error: 2, data: null } }]);
  const second = await client.token();
  assert.notEqual(second.accessToken, first.accessToken);
  assert.ok(svc.liveTokens().length <= 2, 'never more than two live tokens');
  await until(() => svc.count('delete') === 1 && !svc.isLive(first.accessToken), 'the superseded token to be deleted');
  assert.deepEqual(svc.liveTokens(), [second.accessToken]);
  await until(() => logs.some((l) => l.event === 'token_revoked' && l.ok === true), 'the deletion to be logged');
  const text = JSON.stringify(logs);
  const refreshTokens = svc.allTokens().map((r) => r.refreshToken);
  for (const secret of [svc.credentials.apiKey, first.accessToken, second.accessToken, ...refreshTokens]) {
    assert.ok(!text.includes(secret));
  }
});

test('token_api: invalidate() rotates the dropped token instead of leaving it at the service', async (t) => {
  const { svc, client } = await tokenService(t, viaImport);
  const first = await client.token();
  await client.invalidate();
  const second = await client.token();
  assert.notEqual(second.accessToken, first.accessToken);
  assert.deepEqual(svc.requests().filter((r) => r.kind !== 'api').map((r) => r.kind), ['create', 'rotate']);
  assert.deepEqual(svc.liveTokens(), [second.accessToken]);
});

test("token_api: the service's 422 message and code reach the TokenError; a bad key is invalid_client", async (t) => {
  const { client } = await tokenService(t, viaImport, { tokenBody: { scopes: ['GET:nope.openapi.com/x'], ttl: 3600 } });
  await assert.rejects(client.token(), (e) => {
    assert.ok(e instanceof viaImport.TokenError);
    assert.equal(e.code, 'invalid_request');
    assert.equal(e.status, 422);
    assert.equal(e.providerError, 'error 90');
    assert.match(e.message, /Invalid scopes specified or API not enabled/);
    return true;
  });
  const svc = await startTokenService();
  t.after(() => svc.close());
  const wrong = new viaImport.TokenClient({
    tokenUrl: svc.tokenUrl, clientId: svc.credentials.email, clientSecret: 'not-the-key', authStyle: 'token_api',
    tokenBody: { scopes: ['GET:company.openapi.com/IT-start'], ttl: 3600 },
  });
  await assert.rejects(wrong.token(), (e) => e.code === 'invalid_client' && e.status === 401);
  // Configuration mistakes name their key.
  assert.throws(() => new viaImport.TokenClient({
    tokenUrl: svc.tokenUrl, clientId: 'a@b.c', clientSecret: 'k', authStyle: 'token_api',
  }), /tokenBody/);
  assert.throws(() => new viaImport.TokenClient({
    tokenUrl: svc.tokenUrl, clientId: 'a@b.c', clientSecret: 'k', authStyle: 'token_api',
    tokenBody: { scopes: ['company.openapi.com/IT-start'] },
  }), /tokenBody\.scopes/);
});

test('oidc-provider: client_secret_basic and client_secret_post, resource JWT', async (t) => {
  const o = await startOidc();
  t.after(() => o.close());
  const { TokenClient, decodeJwtClaims, buildTokenRequest } = viaRequire;
  const basic = new TokenClient({
    tokenUrl: o.tokenUrl, clientId: o.clients.basic.clientId, clientSecret: o.clients.basic.clientSecret, scope: 'api:read',
  });
  const tb = await basic.token();
  assert.ok(await o.isIssuedToken(tb.accessToken));
  assert.equal(tb.scope, 'api:read');
  const req = buildTokenRequest({ tokenUrl: o.tokenUrl, clientId: o.clients.basic.clientId, clientSecret: o.clients.basic.clientSecret });
  assert.ok(!req.body.includes('client_secret'), 'basic: the secret is only in the Authorization header');

  const post = new viaImport.TokenClient({
    tokenUrl: o.tokenUrl, clientId: o.clients.post.clientId, clientSecret: o.clients.post.clientSecret,
    authStyle: 'client_secret_post', resource: 'https://api.example/',
  });
  const tp = await post.token();
  assert.ok(await o.isIssuedToken(tp.accessToken));
  const claims = decodeJwtClaims(tp.accessToken);
  assert.equal(claims.aud, 'https://api.example/');
  assert.ok(Math.abs(claims.exp * 1000 - tp.expiresAt) < 2000);
  const res = await post.fetch(`${o.apiBase}/things`);
  assert.equal((await res.json()).headers.authorization, `Bearer ${tp.accessToken}`);
  assert.equal(o.exchanges(), 2);

  const wrong = new TokenClient({ tokenUrl: o.tokenUrl, clientId: o.clients.basic.clientId, clientSecret: 'nope-nope' });
  await assert.rejects(wrong.token(), (e) => e.code === 'invalid_client' && e.status === 401 && !e.message.includes('nope-nope'));
});

test('the web build from the tarball runs in Chromium (init, TokenClient, TokenError)', async (t) => {
  // `make test` installs Chromium first: a missing one is a failure, never a skip.
  assert.ok(fs.existsSync('/usr/bin/chromium'), 'no /usr/bin/chromium: run .ci/setup-tools chromium');
  const { chromium } = await import('playwright-core');
  const http = await import('node:http');
  const root = path.join(tmp, 'node_modules/tokengate');
  const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
  const server = http.createServer((req, res) => {
    const rel = req.url === '/' ? null : path.normalize(decodeURIComponent(req.url.split('?')[0])).replace(/^[/\\]+/, '');
    const file = rel && path.join(root, rel);
    if (!file || !file.startsWith(root) || !fs.existsSync(file)) {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end('<!doctype html><title>tokengate</title>');
    }
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { server.close(r); server.closeAllConnections(); }));
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const out = await page.evaluate(async () => {
    const m = await import('/web/index.js');
    await m.default(); // fetches core_bg.wasm next to the module
    let exchanges = 0;
    const fetch = async (input, init) => {
      const req = new Request(input, init);
      if (req.url.endsWith('/token')) {
        exchanges += 1;
        if (exchanges === 1) return Response.json({ error: 'invalid_client' }, { status: 401 });
        return Response.json({ access_token: `web-${exchanges}`, token_type: 'Bearer', expires_in: 3600 });
      }
      return Response.json({ authorization: req.headers.get('authorization') });
    };
    const config = { tokenUrl: 'https://idp.example/token', clientId: 'c', clientSecret: 'browser-secret' };
    const bad = new m.TokenClient(config, { fetch });
    const err = await bad.token().catch((e) => e);
    const good = new m.TokenClient(config, { fetch });
    const tokens = await Promise.all(Array.from({ length: 100 }, () => good.token()));
    const api = await (await good.fetch('https://api.example/x')).json();
    return {
      isTokenError: err instanceof m.TokenError && err instanceof Error,
      code: err.code, status: err.status, leaked: `${err.message}${err.stack}`.includes('browser-secret'),
      distinct: new Set(tokens.map((x) => x.accessToken)).size, exchanges, api,
      hasWindow: typeof window === 'object',
    };
  });
  assert.deepEqual(out, {
    isTokenError: true, code: 'invalid_client', status: 401, leaked: false,
    distinct: 1, exchanges: 2, api: { authorization: 'Bearer web-2' }, hasWindow: true,
  });
});
