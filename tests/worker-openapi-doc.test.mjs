// Worker tests, the OpenAPI document (docs/openapi.json): the Worker serves it byte for byte at
// GET /openapi.json and it is a valid OpenAPI 3.1 document; it describes exactly the routes the
// Worker serves (the list below is the router's, worker/src/lib.rs and worker/src/admin.rs:
// each is probed and answers as documented, every other method on a documented path is 405
// with the `Allow` the document gives, and paths that are no route are 404); and the proxy,
// which tests/schemathesis-gateway.test.mjs leaves out, answers as the document declares.
// Run: node --test --test-concurrency=1 tests/worker-openapi-doc.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { validate } from '@readme/openapi-parser';
import Ajv2020 from 'ajv/dist/2020.js';
import { clock, rand, startEmulators, JSON_HEADERS, FORM } from './worker-lib.mjs';
import { startGateway, issueCallerToken, REPO_ROOT } from './support/gateway.mjs';

const DOC_PATH = path.join(REPO_ROOT, 'docs', 'openapi.json');
const DOC_BYTES = fs.readFileSync(DOC_PATH);
const DOC = JSON.parse(DOC_BYTES.toString('utf8'));
const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'trace'];
const PROXY = '/{provider}/{path}';

/** Every route the Worker serves, as its router spells them (method, OpenAPI path). */
const ROUTES = [
  ['GET', '/healthz'],
  ['GET', '/openapi.json'],
  ['GET', '/.well-known/oauth-authorization-server'],
  ['POST', '/oauth/token'],
  ['POST', '/oauth/revoke'],
  ['POST', '/oauth/introspect'],
  ['POST', '/admin/clients'],
  ['GET', '/admin/clients'],
  ['GET', '/admin/clients/{client_id}'],
  ['PATCH', '/admin/clients/{client_id}'],
  ['DELETE', '/admin/clients/{client_id}'],
  ['POST', '/admin/clients/{client_id}/rotate-secret'],
  ['GET', '/admin/tokens'],
  ['DELETE', '/admin/tokens/{token_id}'],
  ['GET', '/admin/scopes'],
  ['GET', '/admin/stats'],
  ['GET', '/admin/errors'],
  ['GET', '/admin/providers'],
  ['DELETE', '/admin/providers/{provider}/token'],
  // Everything else: the proxy. TRACE is answered by the gateway (405), never forwarded.
  ...['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'].map((m) => [m, PROXY]),
];

const ADMIN = `admin-${crypto.randomBytes(24).toString('base64url')}`;
const AUTH = { authorization: `Bearer ${ADMIN}` };
const STATIC = { id: 'svc-doc', secret: `doc-${rand()}`, scopes: ['optoro', 'partner:read', 'introspect'] };

let emu;
let gw;
before(async () => {
  emu = await startEmulators();
  const cfg = emu.gatewayConfig();
  gw = await startGateway({
    clock, ...cfg,
    secrets: { ...cfg.secrets, TOKENGATE_ADMIN_TOKEN: ADMIN },
    clients: { [STATIC.id]: { secret: STATIC.secret, scopes: STATIC.scopes } },
    // The static assets (the ASSETS binding) hold the document GET /openapi.json answers with.
    assets: 'wrangler.demo.toml',
  });
});
after(async () => {
  await gw?.close();
  await emu?.close();
});

// ---------------------------------------------------------------- checking answers against the document

/** The object a local `$ref` (`#/components/...`) points at. */
function pointer(ref) {
  assert.ok(ref.startsWith('#/'), ref);
  return ref.slice(2).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((o, k) => { assert.ok(o && k in o, `${ref} does not resolve`); return o[k]; }, DOC);
}
const deref = (o) => (o && typeof o.$ref === 'string' ? deref(pointer(o.$ref)) : o);

const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema(DOC, 'openapi.json');
const compiled = new Map();
/** A validator for a schema of the document (its local `$ref`s resolved in the document). */
function validator(schema) {
  const key = JSON.stringify(schema);
  if (!compiled.has(key)) {
    const rebased = JSON.parse(key, (k, v) => (k === '$ref' && v.startsWith('#/') ? `openapi.json${v}` : v));
    compiled.set(key, ajv.compile(rebased));
  }
  return compiled.get(key);
}

/**
 * Asserts that an answer `{status, headers, text}` to `method path` (a path of the document) is
 * one the document declares: its status (or `default`), its documented headers (the required
 * ones present), its media type and its JSON body against the schema.
 */
function conforms(method, docPath, { status, headers, text }, what = `${method} ${docPath}`) {
  const op = DOC.paths[docPath]?.[method.toLowerCase()];
  assert.ok(op, `${what}: no such operation in the document`);
  const declared = op.responses[String(status)] ?? op.responses.default;
  assert.ok(declared, `${what}: status ${status} is not declared (${Object.keys(op.responses)})`);
  const response = deref(declared);
  const header = (name) => (typeof headers.get === 'function' ? headers.get(name) : headers[name.toLowerCase()]);
  for (const [name, h] of Object.entries(response.headers ?? {})) {
    const spec = deref(h);
    const value = header(name);
    if (value === null || value === undefined) {
      assert.ok(!spec.required, `${what}: ${status} without required header ${name}`);
      continue;
    }
    const typed = spec.schema?.type === 'integer' && /^\d+$/.test(value) ? Number(value) : value;
    const v = validator(spec.schema ?? {});
    assert.ok(v(typed), `${what}: header ${name}: ${JSON.stringify(value)}: ${ajv.errorsText(v.errors)}`);
  }
  const content = response.content;
  if (!content || method === 'HEAD') {
    if (!content) assert.equal(text, '', `${what}: ${status} has a body, none is declared`);
    return;
  }
  const type = (header('content-type') ?? '').split(';')[0].trim();
  const media = content[type] ?? content['*/*'];
  assert.ok(media, `${what}: ${status} is ${type}, declared ${Object.keys(content)}`);
  if (type === 'application/json') {
    const body = JSON.parse(text);
    const v = validator(media.schema ?? {});
    assert.ok(v(body), `${what}: ${status} ${text.slice(0, 300)}: ${ajv.errorsText(v.errors)}`);
  }
}

/** A request to the Worker over https: { status, headers, text, json }. */
async function send(method, p, { headers = {}, body } = {}) {
  const res = await gw.fetch(p, { method, headers, body });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}

/** A request over the Worker's socket with the path sent byte for byte (also TRACE, which fetch refuses). */
function raw(method, p, headers = {}) {
  const u = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------- the document itself

test('without the ASSETS binding, GET /openapi.json is a 404 that names the binding and the file', async () => {
  const cfg = emu.gatewayConfig();
  const bare = await startGateway({ clock, ...cfg });
  try {
    const res = await bare.fetch('/openapi.json');
    assert.equal(res.status, 404);
    const body = await res.json();
    assert.equal(body.error, 'not_found');
    assert.match(body.error_description, /binding = "ASSETS"/);
    assert.match(body.error_description, /build-console\/openapi\.json/);
  } finally {
    await bare.close();
  }
});

test('GET /openapi.json is docs/openapi.json byte for byte, a valid OpenAPI 3.1 document', async () => {
  const res = await gw.fetch('/openapi.json');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json\b/);
  assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
  const served = Buffer.from(await res.arrayBuffer());
  assert.ok(served.equals(DOC_BYTES), 'the served document differs from docs/openapi.json: make console');

  assert.equal(DOC.openapi, '3.1.0');
  for (const key of ['title', 'version']) assert.equal(typeof DOC.info[key], 'string', `info.${key}`);
  // The validator checks the document against the OpenAPI 3.1 schema, every $ref, path
  // parameters and operation ids; it changes what it is given.
  const result = await validate(structuredClone(DOC));
  assert.deepEqual({ valid: result.valid, errors: result.errors ?? [], warnings: result.warnings ?? [] },
    { valid: true, errors: [], warnings: [] });
  // And once more here: every local $ref resolves.
  JSON.stringify(DOC, (k, v) => { if (k === '$ref') pointer(v); return v; });
});

test('the document describes exactly the routes the Worker serves', () => {
  const documented = Object.entries(DOC.paths)
    .flatMap(([p, item]) => METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${p}`)).sort();
  assert.deepEqual(documented, ROUTES.map(([m, p]) => `${m} ${p}`).sort());
  const ids = documented.map((op) => { const [m, p] = op.split(' '); return DOC.paths[p][m.toLowerCase()].operationId; });
  assert.equal(new Set(ids).size, ids.length, 'operation ids are unique');
  // The proxy is documented with both of its parameters.
  const proxy = DOC.paths[PROXY];
  assert.deepEqual(proxy.parameters.map((p) => [p.name, p.in, p.required]), [['provider', 'path', true], ['path', 'path', true]]);
});

test('every gateway route answers as documented; other methods are 405 with the documented Allow', async () => {
  const form = (o) => new URLSearchParams(o).toString();
  const json = (o) => JSON.stringify(o);
  const staticToken = await issueCallerToken(gw, STATIC.id, STATIC.secret);
  const probe = async (method, docPath, p, init = {}, want = undefined) => {
    const r = await send(method, p, init);
    conforms(method, docPath, r, `${method} ${p}`);
    if (want !== undefined) assert.equal(r.status, want, `${method} ${p}: ${r.text}`);
    return r;
  };
  await probe('GET', '/healthz', '/healthz', {}, 200);
  await probe('GET', '/openapi.json', '/openapi.json', {}, 200);
  await probe('GET', '/.well-known/oauth-authorization-server', '/.well-known/oauth-authorization-server', {}, 200);
  await probe('POST', '/oauth/token', '/oauth/token', {
    headers: JSON_HEADERS, body: json({ grant_type: 'client_credentials', client_id: STATIC.id, client_secret: STATIC.secret }),
  }, 200);
  await probe('POST', '/oauth/token', '/oauth/token', { headers: FORM, body: form({ grant_type: 'client_credentials', scope: 'optimum' }) }, 401);
  await probe('POST', '/oauth/revoke', '/oauth/revoke', {
    headers: FORM, body: form({ token: staticToken, client_id: STATIC.id, client_secret: STATIC.secret }),
  }, 400);
  await probe('POST', '/oauth/introspect', '/oauth/introspect', { headers: { ...FORM, ...AUTH }, body: form({ token: staticToken }) }, 200);

  // The admin API, one managed caller through its life.
  const created = await probe('POST', '/admin/clients', '/admin/clients', {
    headers: { ...AUTH, ...JSON_HEADERS }, body: json({ name: 'doc', scopes: ['optoro'], limits: { requests_per_minute: 100 } }),
  }, 201);
  const id = created.json.client_id;
  await probe('POST', '/admin/clients', '/admin/clients', { headers: { ...AUTH, ...JSON_HEADERS }, body: json({ name: 'doc', scopes: ['nope'] }) }, 422);
  await probe('GET', '/admin/clients', '/admin/clients?limit=1', { headers: AUTH }, 200);
  await probe('GET', '/admin/clients/{client_id}', `/admin/clients/${id}`, { headers: AUTH }, 200);
  await probe('GET', '/admin/clients/{client_id}', `/admin/clients/cl_${'0'.repeat(22)}`, { headers: AUTH }, 404);
  await probe('PATCH', '/admin/clients/{client_id}', `/admin/clients/${id}`, { headers: { ...AUTH, ...JSON_HEADERS }, body: json({ scopes: ['optoro', 'partner:read'] }) }, 200);
  const rotated = await probe('POST', '/admin/clients/{client_id}/rotate-secret', `/admin/clients/${id}/rotate-secret`, { headers: AUTH }, 200);
  const managedToken = await issueCallerToken(gw, id, rotated.json.client_secret);
  await probe('POST', '/oauth/introspect', '/oauth/introspect', { headers: { ...FORM, ...AUTH }, body: form({ token: managedToken }) }, 200);
  const tokens = await probe('GET', '/admin/tokens', `/admin/tokens?client_id=${id}`, { headers: AUTH }, 200);
  assert.equal(tokens.json.items.length, 1);
  await probe('GET', '/admin/tokens', '/admin/tokens', { headers: AUTH }, 200);
  await probe('DELETE', '/admin/tokens/{token_id}', `/admin/tokens/${tokens.json.items[0].id}`, { headers: AUTH }, 204);
  await probe('DELETE', '/admin/tokens/{token_id}', `/admin/tokens/${tokens.json.items[0].id}`, { headers: AUTH }, 404);
  await probe('GET', '/admin/scopes', '/admin/scopes', { headers: AUTH }, 200);
  await probe('GET', '/admin/stats', '/admin/stats', { headers: AUTH }, 200);
  await probe('GET', '/admin/stats', '/admin/stats?provider=nope', { headers: AUTH }, 422);
  await probe('GET', '/admin/errors', '/admin/errors?limit=5', { headers: AUTH }, 200);
  const states = await probe('GET', '/admin/providers', '/admin/providers', { headers: AUTH }, 200);
  assert.deepEqual(states.json.items.map((p) => p.provider), Object.keys(emu.gatewayConfig().providers).sort());
  await probe('DELETE', '/admin/providers/{provider}/token', '/admin/providers/optoro/token', { headers: AUTH }, 204);
  await probe('DELETE', '/admin/providers/{provider}/token', '/admin/providers/nope/token', { headers: AUTH }, 404);
  await probe('DELETE', '/admin/clients/{client_id}', `/admin/clients/${id}`, { headers: AUTH }, 204);
  await probe('GET', '/admin/clients/{client_id}', `/admin/clients/${id}`, { headers: AUTH }, 404);
  await probe('GET', '/admin/clients', '/admin/clients', {}, 401);

  // Every other method on a documented gateway path: 405, `Allow` naming the documented ones.
  const concrete = (p) => p.replace('{client_id}', id).replace('{token_id}', `${id}.${'0'.repeat(32)}`).replace('{provider}', 'optoro');
  for (const [docPath, item] of Object.entries(DOC.paths)) {
    if (docPath === PROXY) continue;
    const allowed = METHODS.filter((m) => item[m]).map((m) => m.toUpperCase());
    for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      if (allowed.includes(method)) continue;
      const r = await send(method, concrete(docPath), { headers: AUTH });
      assert.equal(r.status, 405, `${method} ${docPath}: ${r.text}`);
      assert.deepEqual(r.headers.get('allow')?.split(', ').sort(), [...allowed].sort(), `${method} ${docPath}: Allow`);
      if (method !== 'HEAD') assert.equal(r.json?.error, 'invalid_request', `${method} ${docPath}`);
    }
  }
});

test('paths that are no route answer 404, whatever the admin API is asked', async () => {
  // Under /admin/ with the admin token: only the documented routes exist. (An empty segment
  // names nothing; `/admin` is stripped once, so /admin/admin/... is no route either.)
  for (const p of ['/admin', '/admin/', '/admin/nope', '/admin/clients/', '/admin//clients', '/admin/admin/clients',
    '/admin/admin/scopes', '/admin/clients/x/y', '/admin/clients//rotate-secret', '/admin/tokens/', '/admin/tokens/x/y',
    '/admin/scopes/x', '/admin/providers/optoro', '/admin/providers//token', '/admin/providers/optoro/token/x']) {
    for (const method of ['GET', 'DELETE']) {
      const r = await send(method, p, { headers: AUTH });
      assert.equal(r.status, 404, `${method} ${p}: ${r.text}`);
      assert.equal(r.json?.error, 'not_found', `${method} ${p}`);
    }
  }
  // Anything else is the proxy's: a caller token for a provider that is not configured is 404.
  const token = await issueCallerToken(gw, STATIC.id, STATIC.secret);
  for (const p of ['/nope/x', '/metrics/x', '/oauth/x']) {
    const r = await send('GET', p, { headers: { authorization: `Bearer ${token}` } });
    conforms('GET', PROXY, r, `GET ${p}`);
    assert.equal(r.status, 404, `${p}: ${r.text}`);
    assert.equal(r.json.error, 'not_found');
  }
  // The gateway's own GET routes are never proxied: another method is 405, not 401 for a missing token.
  for (const p of ['/healthz', '/openapi.json', '/.well-known/oauth-authorization-server']) {
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await send(method, p);
      assert.equal(r.status, 405, `${method} ${p}: ${r.text}`);
      assert.equal(r.headers.get('allow'), 'GET');
    }
  }
});

test('admin query parameters: an empty client_id or a limit not in digits is 422; any client id names its own object', async () => {
  for (const [p, field] of [['/admin/tokens?client_id=', 'client_id'], ['/admin/stats?client_id=', 'client_id'],
    ['/admin/stats?provider=optoro&client_id=', 'client_id'], ['/admin/errors?limit=%2B5', 'limit'],
    ['/admin/errors?limit=101', 'limit'], ['/admin/clients?limit=%2B5', 'limit']]) {
    const r = await send('GET', p, { headers: AUTH });
    conforms('GET', p.split('?')[0], r);
    assert.equal(r.status, 422, `${p}: ${r.text}`);
    assert.equal(r.json.field, field);
  }
  // A client id no header could carry as it is (a line break, surrounding spaces) still reaches
  // an object of its own: zero counts, or no such managed caller.
  for (const odd of ['a\nb', ' svc-doc ', 'svc-doc%', '\u00e9t\u00e9', 'client:x']) {
    const q = encodeURIComponent(odd);
    const stats = await send('GET', `/admin/stats?client_id=${q}`, { headers: AUTH });
    conforms('GET', '/admin/stats', stats);
    assert.equal(stats.status, 200, `${JSON.stringify(odd)}: ${stats.text}`);
    assert.deepEqual(Object.keys(stats.json.clients), [odd]);
    assert.deepEqual(stats.json.clients[odd], { requests: 0, rejected: { 401: 0, 403: 0, 429: 0 } });
    const tokens = await send('GET', `/admin/tokens?client_id=${q}`, { headers: AUTH });
    conforms('GET', '/admin/tokens', tokens);
    assert.equal(tokens.status, 404, `${JSON.stringify(odd)}: ${tokens.text}`);
  }
});

// ---------------------------------------------------------------- the proxy against the document

test('the proxy answers as the document declares: 401, 403, 404, 400, 405 and the provider\'s 200', async () => {
  const token = await issueCallerToken(gw, STATIC.id, STATIC.secret);
  const bearer = { authorization: `Bearer ${token}` };

  // No token, a made-up one: 401 invalid_token with the RFC 6750 challenge.
  for (const headers of [{}, { authorization: 'Bearer tgt_made-up' }, { authorization: 'Basic eDp5' }]) {
    const r = await send('GET', '/optoro/v1/items', { headers });
    conforms('GET', PROXY, r);
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error, 'invalid_token');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="tokengate", error="invalid_token"');
  }
  // A provider the token does not grant, or grants read-only: 403 insufficient_scope.
  for (const [method, p] of [['GET', '/optimum/v1/items'], ['POST', '/partner/v1/items'], ['DELETE', '/partner/v1/items']]) {
    const r = await send(method, p, { headers: bearer });
    conforms(method, PROXY, r, `${method} ${p}`);
    assert.equal(r.status, 403, `${method} ${p}: ${r.text}`);
    assert.equal(r.json.error, 'insufficient_scope');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="tokengate", error="insufficient_scope"');
  }
  // A path segment the gateway refuses: 400 invalid_request, before anything is sent.
  const before = emu.apiRequests('optoro').length;
  const slash = await raw('GET', '/optoro/a%2Fb', bearer);
  conforms('GET', PROXY, slash);
  assert.equal(slash.status, 400, slash.text);
  // TRACE: 405, never forwarded.
  const trace = await raw('TRACE', '/optoro/v1/items', bearer);
  conforms('TRACE', PROXY, trace);
  assert.equal(trace.status, 405, trace.text);
  assert.equal(emu.apiRequests('optoro').length, before, 'nothing reached the provider');

  // Granted: the provider's answer passes through (the document's `default`).
  for (const [method, p, scope] of [['GET', '/optoro/v1/items?page=2', 'optoro'], ['POST', '/optoro/v1/items', 'optoro'],
    ['GET', '/partner/orders/7', 'partner:read']]) {
    const r = await send(method, p, { headers: { ...bearer, 'content-type': 'application/json' }, body: method === 'POST' ? '{"n":1}' : undefined });
    conforms(method, PROXY, r, `${method} ${p}`);
    assert.equal(r.status, 200, `${method} ${p} (${scope}): ${r.text}`);
    assert.equal(r.json.method, method);
    // (The document's headers, checked above: a Cache-Control for no shared cache, Server-Timing.)
    assert.ok(r.headers.get('cache-control') && r.headers.get('server-timing'));
  }
  const last = emu.apiRequests('optoro').at(-1);
  assert.equal(last.url, '/optoro/api/v1/items');
  assert.equal(last.body, '{"n":1}');
});
