// Emulator of openapi.com's "Oauth" v2 token-management service (OpenAPI document 2.1.0) for
// tokengate's tests: one node:http server on 127.0.0.1. A token is not obtained with an RFC 6749
// grant: it is created as a resource with chosen scopes, TTL, name and limits, then rotated,
// listed or deleted.
//
//   POST   /tokens           create   HTTP Basic (e-mail : API key); JSON body
//                                     {"scopes": ["GET:company.openapi.com/IT-start", …],
//                                      "ttl"?: 1..31536000 s (default 31536000),
//                                      "name"?: string (default ""), "limits"?: object (default {})}
//   PATCH  /tokens/{token}  rotate   Authorization: Bearer <that token's refreshToken>; JSON body
//                                     {} or {"ttl": n} (default: the ttl the old token had) →
//                                     a new token and refresh token with the same scopes, name,
//                                     limits and stats; the old token is deleted
//   DELETE /tokens/{token}  delete   HTTP Basic → the deleted record
//   GET    /tokens           list     HTTP Basic → the live tokens, oldest first
//   ANY    /<host>/<path>    api      Authorization: Bearer <live token> with a scope covering
//                                     the method and `<host>/<path>` → JSON echo of the request
//
// Basic credentials are encoded as RFC 7617 says: base64 of the UTF-8 `email:apikey`, split at
// the first ':' (no form-urlencoding first), so an e-mail with '+' and '@' and a key with
// '+ / = :' must arrive byte-exact. A scope is `METHOD:host/path-prefix`, METHOD one of GET POST
// PUT PATCH DELETE or '*', host one of the APIs enabled for the account; it covers a request
// when the method matches (or is '*') and `host/path-prefix` is a prefix of the request's
// `host/path` (a scope without a path covers the whole host).
//
// Successful replies are either the record itself (shape 'plain') or
// {"success": true, "message": "", "error": null, "data": <record or array>} (shape 'wrapped').
// A token record: {token, expireAt, refreshToken, scopes, name, createdAt, updatedAt, limits,
// stats: {requests, paid}} (date-times in ISO 8601); list and delete replies leave out
// refreshToken, which is only returned when a token is issued. Errors, in either shape, are
// {"success": false, "message": <text>, "error": <code>, "data": null}:
//
//   401  1   Unauthorized                 missing or wrong HTTP Basic credentials
//   401  2   Invalid refresh token        PATCH bearer is not the current refresh token of that
//                                         token (also a refresh token already used for rotation)
//   401  3   Invalid or expired token     api: bearer missing, unknown, expired or deleted
//                                         (with www-authenticate: Bearer error="invalid_token")
//   403  4   Scope does not cover this request (401 with opts.scopeStatus = 401)
//   404  5   Token not found              PATCH/DELETE of an unknown, deleted or expired token
//   404  6   Not found                    any other route or method
//   413  15  Request body too large       token-management bodies above 64 KiB
//   415  14  Content-Type must be application/json
//   422  10  Request body must be a JSON object
//   422  11  ttl must be an integer between 1 and 31536000
//   422  12  name must be a string
//   422  13  limits must be an object
//   422  90  Invalid scopes specified or API not enabled
//   500  99  Internal error
//
// Checks run in that order per route: PATCH looks up the token (404) before the refresh token
// (401); POST, DELETE and GET check Basic first. Expiry follows the injected clock. Nothing
// here logs; credentials and tokens are only ever returned to the in-process caller.

import http from 'node:http';
import crypto from 'node:crypto';
import { readBody, sendJson, echoOf, mediaType, runScript, listen, closeServer } from './emulators.mjs';

const MAX_TTL = 31536000; // one year, in seconds
const MAX_BODY = 64 * 1024;
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', '*'];
const SCOPE_RE = /^([A-Z]+|\*):([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(\/[^\s?#]*)?$/;
const DEFAULT_APIS = ['company.openapi.com', 'sms.openapi.com'];
const KINDS = ['create', 'rotate', 'delete', 'list', 'api'];
const SCOPES_MSG = 'Invalid scopes specified or API not enabled';

const rand = (n) => crypto.randomBytes(n).toString('base64url');
const iso = (ms) => new Date(ms).toISOString();
const copy = (x) => JSON.parse(JSON.stringify(x));

function sendError(res, status, error, message, headers = {}) {
  sendJson(res, status, { success: false, message, error, data: null }, headers);
}

/** The (user, password) of an RFC 7617 Basic header, or null when absent or malformed. */
function parseBasic(header) {
  const m = /^basic +([A-Za-z0-9+/]+={0,2})\s*$/i.exec(String(header ?? ''));
  if (!m) return null;
  const buf = Buffer.from(m[1], 'base64');
  if (buf.toString('base64') !== m[1]) return null; // not canonical base64
  let text;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(buf); } catch { return null; }
  const i = text.indexOf(':');
  return i === -1 ? null : { user: text.slice(0, i), password: text.slice(i + 1) };
}

function parseBearer(header) {
  const m = /^bearer +(\S+)\s*$/i.exec(String(header ?? ''));
  return m ? m[1] : null;
}

/** Parses a JSON object body after the media-type check; returns {value} or {status, code, msg}. */
function jsonObject(req, raw) {
  if (mediaType(req) !== 'application/json') return { status: 415, code: 14, msg: 'Content-Type must be application/json' };
  let v;
  try { v = JSON.parse(raw.toString('utf8')); } catch { v = undefined; }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    return { status: 422, code: 10, msg: 'Request body must be a JSON object' };
  }
  return { value: v };
}

const validTtl = (t) => Number.isInteger(t) && t >= 1 && t <= MAX_TTL;

/**
 * Starts the emulator.
 * opts: { port = 0, clock?: { now(): ms } (issue and expiry times; default Date.now),
 * shape?: 'plain' | 'wrapped' (default 'wrapped'), credentials?: {email?, apiKey?} (merged over
 * generated ones), enabledApis?: string[] (default company.openapi.com, sms.openapi.com) }.
 * Returns the control surface documented on each member below.
 */
export async function startTokenService(opts = {}) {
  const clock = opts.clock ?? { now: () => Date.now() };
  const enabledApis = new Set(opts.enabledApis ?? DEFAULT_APIS);
  const checkShape = (s) => {
    if (s !== 'plain' && s !== 'wrapped') throw new Error(`unknown response shape: ${s}`);
    return s;
  };
  let shape = checkShape(opts.shape ?? 'wrapped');
  // The status of a request outside the token's scopes: 403 here by default; some deployments
  // answer 401 (opts.scopeStatus), which a gateway must not read as a dead token.
  const scopeStatus = opts.scopeStatus ?? 403;

  // Generated credentials carry the characters that break naive Basic encoders: '+' and '@' in
  // the e-mail, '+ / =' and a ':' (legal after the first one) in the key.
  const credentials = {
    email: `qa+tg-${crypto.randomBytes(5).toString('hex')}@example.com`,
    apiKey: `${rand(18)}+/=:${rand(9)}`,
    ...(opts.credentials ?? {}),
  };

  const tokens = new Map(); // token -> {token, refreshToken, ttl, scopes, name, limits, stats, createdAtMs, updatedAtMs, expireAtMs, deleted, via}
  const timers = new Set();
  let captured = [];
  let scripts = Object.fromEntries(KINDS.map((k) => [k, []]));

  const live = (rec) => Boolean(rec && !rec.deleted && clock.now() < rec.expireAtMs);
  const reply = (res, data) => sendJson(res, 200, shape === 'plain' ? data : { success: true, message: '', error: null, data });

  function view(rec, { withRefresh = true } = {}) {
    return {
      token: rec.token,
      expireAt: iso(rec.expireAtMs),
      ...(withRefresh ? { refreshToken: rec.refreshToken } : {}),
      scopes: rec.scopes.slice(),
      name: rec.name,
      createdAt: iso(rec.createdAtMs),
      updatedAt: iso(rec.updatedAtMs),
      limits: copy(rec.limits),
      stats: { ...rec.stats },
    };
  }

  function issue(fields, ttl, via) {
    const now = clock.now();
    const rec = {
      token: rand(30), refreshToken: rand(30), ttl, via, deleted: false,
      createdAtMs: now, updatedAtMs: now, expireAtMs: now + ttl * 1000, ...fields,
    };
    tokens.set(rec.token, rec);
    return rec;
  }

  /** Parsed scope, or null when malformed or on an API not enabled. */
  function parseScope(s) {
    const m = typeof s === 'string' && SCOPE_RE.exec(s);
    if (!m || !METHODS.includes(m[1]) || !enabledApis.has(m[2])) return null;
    return { method: m[1], prefix: `${m[2]}${m[3] ?? '/'}` };
  }

  const basicOk = (req) => {
    const c = parseBasic(req.headers.authorization);
    return Boolean(c && c.user === credentials.email && c.password === credentials.apiKey);
  };

  // ---- handlers ---------------------------------------------------------------------------

  function create(req, res, raw) {
    if (!basicOk(req)) return sendError(res, 401, 1, 'Unauthorized');
    const b = jsonObject(req, raw);
    if (!b.value) return sendError(res, b.status, b.code, b.msg);
    const { scopes, ttl = MAX_TTL, name = '', limits = {} } = b.value;
    if (!Array.isArray(scopes) || scopes.length === 0 || !scopes.every(parseScope)) {
      return sendError(res, 422, 90, SCOPES_MSG);
    }
    if (!validTtl(ttl)) return sendError(res, 422, 11, `ttl must be an integer between 1 and ${MAX_TTL}`);
    if (typeof name !== 'string') return sendError(res, 422, 12, 'name must be a string');
    if (limits === null || typeof limits !== 'object' || Array.isArray(limits)) {
      return sendError(res, 422, 13, 'limits must be an object');
    }
    const rec = issue({ scopes: scopes.slice(), name, limits: copy(limits), stats: { requests: 0, paid: 0 } }, ttl, 'create');
    reply(res, view(rec));
  }

  function rotate(req, res, raw, id) {
    const old = tokens.get(id);
    if (!live(old)) return sendError(res, 404, 5, 'Token not found');
    const bearer = parseBearer(req.headers.authorization);
    const a = Buffer.from(bearer ?? ''), e = Buffer.from(old.refreshToken);
    if (a.length !== e.length || !crypto.timingSafeEqual(a, e)) return sendError(res, 401, 2, 'Invalid refresh token');
    const b = jsonObject(req, raw);
    if (!b.value) return sendError(res, b.status, b.code, b.msg);
    const ttl = b.value.ttl ?? old.ttl;
    if (!validTtl(ttl)) return sendError(res, 422, 11, `ttl must be an integer between 1 and ${MAX_TTL}`);
    old.deleted = true;
    const rec = issue({ scopes: old.scopes.slice(), name: old.name, limits: copy(old.limits), stats: { ...old.stats } }, ttl, 'rotate');
    reply(res, view(rec));
  }

  function remove(req, res, id) {
    if (!basicOk(req)) return sendError(res, 401, 1, 'Unauthorized');
    const rec = tokens.get(id);
    if (!live(rec)) return sendError(res, 404, 5, 'Token not found');
    rec.deleted = true;
    reply(res, view(rec, { withRefresh: false }));
  }

  function list(req, res) {
    if (!basicOk(req)) return sendError(res, 401, 1, 'Unauthorized');
    reply(res, [...tokens.values()].filter(live).map((r) => view(r, { withRefresh: false })));
  }

  function api(req, res, body, target) {
    const rec = tokens.get(parseBearer(req.headers.authorization) ?? '');
    if (!live(rec)) {
      return sendError(res, 401, 3, 'Invalid or expired token', { 'www-authenticate': 'Bearer error="invalid_token"' });
    }
    const covered = rec.scopes.map(parseScope).some((s) => s && (s.method === '*' || s.method === req.method) && target.startsWith(s.prefix));
    if (!covered) return sendError(res, scopeStatus, 4, 'Scope does not cover this request');
    rec.stats.requests += 1;
    sendJson(res, 200, { ...echoOf(req, body, { maskBearer: true }), authorization: true });
  }

  /** The kind of a request and its handler (null: no such route). */
  function route(req, res, path) {
    const m = /^\/tokens(?:\/([^/]+))?$/.exec(path);
    if (m) {
      const id = m[1];
      if (!id && req.method === 'POST') return ['create', (raw) => create(req, res, raw)];
      if (!id && req.method === 'GET') return ['list', () => list(req, res)];
      if (id && req.method === 'PATCH') return ['rotate', (raw) => rotate(req, res, raw, id)];
      if (id && req.method === 'DELETE') return ['delete', () => remove(req, res, id)];
      return ['other', null];
    }
    const a = /^\/([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(\/.*)?$/.exec(path);
    if (a) return ['api', (raw) => api(req, res, raw, `${a[1]}${a[2] ?? '/'}`)];
    return ['other', null];
  }

  const server = http.createServer(async (req, res) => {
    try {
      const path = (req.url ?? '/').split('?')[0];
      const [kind, handler] = route(req, res, path);
      const raw = await readBody(req);
      captured.push({ kind, method: req.method, url: req.url, headers: { ...req.headers }, body: raw.toString('utf8'), at: clock.now() });
      if (kind !== 'api' && raw.length > MAX_BODY) return sendError(res, 413, 15, 'Request body too large');
      return await runScript(scripts[kind], req, res, timers, () => (handler ? handler(raw) : sendError(res, 404, 6, 'Not found')));
    } catch (err) {
      sendError(res, 500, 99, `Internal error: ${String(err?.message ?? err)}`);
    }
  });
  server.keepAliveTimeout = 2000;
  await listen(server, opts.port ?? 0);
  const url = `http://127.0.0.1:${server.address().port}`;
  const apiBase = (host = 'company.openapi.com') => `${url}/${host}/`;

  return {
    /** Base URL, e.g. http://127.0.0.1:PORT */
    url,
    /** `${url}/tokens` */
    tokenUrl: `${url}/tokens`,
    /** `${url}/<host>/`, the base of an emulated API (default company.openapi.com). */
    apiBase,
    /** { email, apiKey }: the account's HTTP Basic credentials. */
    credentials,
    /** Captured requests [{kind, method, url, headers, body, at}], oldest first; only `kind` when given. */
    requests: (kind) => captured.filter((r) => !kind || r.kind === kind).map((r) => ({ ...r, headers: { ...r.headers } })),
    /** Number of captured requests of `kind` (all when omitted). */
    count: (kind) => captured.filter((r) => !kind || r.kind === kind).length,
    /**
     * Queues replies for the next requests of `kind` ('create' | 'rotate' | 'delete' | 'list' |
     * 'api'), each one of: 'ok' (normal handling), {status, body?, headers?} (that reply),
     * {delayMs} (hang, then normal handling; with `status` too, then that reply),
     * {destroy: true} (drop the connection), {lose: true} (handle it — a token may be created —
     * then drop the connection instead of answering).
     */
    script: (kind, entries) => {
      if (!KINDS.includes(kind)) throw new Error(`unknown request kind: ${kind}`);
      scripts[kind].push(...entries);
    },
    /** Live token values (not deleted, not expired by the clock), oldest first. */
    liveTokens: () => [...tokens.values()].filter(live).map((r) => r.token),
    /** Every token issued: [{token, name, createdAt (ms), expireAtMs, deleted, via: 'create'|'rotate', refreshToken}]. */
    allTokens: () => [...tokens.values()].map((r) => ({ token: r.token, name: r.name, createdAt: r.createdAtMs, expireAtMs: r.expireAtMs, deleted: r.deleted, via: r.via, refreshToken: r.refreshToken })),
    /** True when `token` was issued here and is neither deleted nor expired. */
    isLive: (token) => live(tokens.get(token)),
    /** Deletes `token` server-side; true when it was live. */
    deleteToken: (token) => {
      const rec = tokens.get(token);
      const was = live(rec);
      if (rec) rec.deleted = true;
      return was;
    },
    /** Switches the success shape: 'plain' (the record) or 'wrapped' ({success, message, error, data}). */
    setShape: (s) => { shape = checkShape(s); },
    /**
     * A TOKENGATE_PROVIDERS object and the matching Worker secrets for this emulator:
     * { providers: { openapi: {...} }, secrets: { OPENAPI_API_KEY } }; `overrides` is merged
     * into the provider entry.
     */
    gatewayConfig: (overrides = {}) => ({
      providers: {
        openapi: {
          token_url: `${url}/tokens`, api_base: apiBase(), client_id: credentials.email,
          client_secret_name: 'OPENAPI_API_KEY', auth_style: 'token_api',
          token_body: { scopes: ['GET:company.openapi.com/IT-start', 'GET:company.openapi.com/IT-advanced'], ttl: 3600, name: 'tokengate' },
          ...overrides,
        },
      },
      secrets: { OPENAPI_API_KEY: credentials.apiKey },
    }),
    /** Clears captured requests and scripts (tokens stay as they are). */
    reset: () => {
      captured = [];
      scripts = Object.fromEntries(KINDS.map((k) => [k, []]));
    },
    /** Stops the server, pending delays and open connections. */
    close: () => closeServer(server, timers),
  };
}
