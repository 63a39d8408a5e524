// Provider emulators for tokengate's tests: one node:http server on 127.0.0.1 emulating the
// token endpoints and APIs of the three documented providers, each as strictly as its
// documentation (summarised in docs/providers.md):
//
//   optoro   (Optoro)              POST /optoro/oauth/token        JSON body, exactly 3 keys
//            API                   ANY  /optoro/api/...
//   optimum  (Optimum Automotive)  POST /optimum/connect/token     form parameters (IdentityServer)
//            API                   ANY  /optimum/api/...
//   partner  (the partner API)     POST /partner/api/oauth/token   JSON body, Accept: application/json
//            API                   ANY  /partner/api/v1/...
//
// API routes require `Authorization: Bearer <token issued by this emulator for that provider,
// not revoked, not expired>` (scheme case-insensitive) and answer with an echo of the request.
// `.../stream?bytes=N[&chunk=C][&delayMs=D]` under an API prefix streams N bytes instead.
// Nothing here logs; secrets and tokens are only ever returned to the in-process caller.

import http from 'node:http';
import crypto from 'node:crypto';

/** The provider ids this server emulates. */
export const PROVIDERS = Object.freeze(['optoro', 'optimum', 'partner']);

const ROUTES = {
  optoro: { token: '/optoro/oauth/token', api: '/optoro/api' },
  optimum: { token: '/optimum/connect/token', api: '/optimum/api' },
  partner: { token: '/partner/api/oauth/token', api: '/partner/api/v1' },
};
const AUTH_STYLE = { optoro: 'json_body', optimum: 'client_secret_post', partner: 'json_body' };
const DEFAULT_LIFETIME = { optoro: 90000, optimum: 30734400, partner: 3600 };
const OPTORO_INVALID_CLIENT =
  'Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.';
const MAX_TOKEN_BODY = 64 * 1024;
const ECHO_BODY_LIMIT = 1024 * 1024;

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const rand = (n) => crypto.randomBytes(n).toString('base64url');

/** Reads the whole request body into a Buffer. */
export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Writes a JSON response (status, object, extra headers). */
export function sendJson(res, status, obj, headers = {}) {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** Sends a scripted reply `{status, body, headers}`; an object body is sent as JSON. */
export function sendScripted(res, entry) {
  if (res.headersSent || res.destroyed) return;
  const status = entry.status ?? 200;
  const headers = { ...(entry.headers ?? {}) };
  let body = entry.body ?? '';
  if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body)) {
    body = JSON.stringify(body);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['content-type'] = 'application/json; charset=utf-8';
    }
  }
  res.writeHead(status, headers);
  res.end(body);
}

/** The media type of a request (lower-cased, parameters removed), or '' when absent. */
export function mediaType(req) {
  return String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/**
 * The JSON echo of a received request, as answered by every API route. With `maskBearer` the
 * echoed Authorization shows only the token's length and a SHA-256 prefix (the demo provider
 * uses it, so a demo response never displays the provider token).
 */
export function echoOf(req, body, { maskBearer = false } = {}) {
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  return {
    method: req.method,
    path: q === -1 ? raw : raw.slice(0, q), // raw, not decoded, not normalised
    query: q === -1 ? '' : raw.slice(q + 1), // raw search string without the '?'
    headers: maskBearer ? maskAuthorization(req.headers) : { ...req.headers }, // names lower-cased
    body: body.length <= ECHO_BODY_LIMIT ? body.toString('utf8') : null, // null above 1 MiB
    bodyBytes: body.length,
    bodySha256: crypto.createHash('sha256').update(body).digest('hex'),
  };
}

function maskAuthorization(headers) {
  const out = { ...headers };
  const m = /^(\S+)\s+(.+)$/.exec(out.authorization ?? '');
  if (m) {
    const digest = crypto.createHash('sha256').update(m[2]).digest('hex').slice(0, 12);
    out.authorization = `${m[1]} <${m[2].length} chars, sha256 ${digest}…>`;
  }
  return out;
}

/** Streams `bytes` bytes ('x' repeated) in chunks of `chunk` bytes, `delayMs` apart. */
function sendStream(res, params, timers) {
  const total = Math.max(0, Number(params.get('bytes') ?? 0) | 0);
  const chunk = Math.max(1, Number(params.get('chunk') ?? 16384) | 0);
  const delay = Math.max(0, Number(params.get('delayMs') ?? 0) | 0);
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-stream-bytes': String(total) });
  let sent = 0;
  const step = () => {
    if (res.destroyed) return;
    if (sent >= total) return void res.end();
    const n = Math.min(chunk, total - sent);
    sent += n;
    const ok = res.write(Buffer.alloc(n, 0x78));
    const next = () => {
      if (delay === 0) return setImmediate(step);
      const t = setTimeout(() => { timers.delete(t); step(); }, delay);
      timers.add(t);
    };
    if (ok) next(); else res.once('drain', next);
  };
  step();
}

/** Signs a compact HS256 JWT (a real signature, with a per-server key). */
function makeJwt(payload, key, kid) {
  const head = b64u({ alg: 'HS256', typ: 'at+jwt', kid });
  const body = b64u(payload);
  const sig = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** A plain echo API on its own server: any bearer is accepted, every request is recorded. */
export async function startEchoApi({ port = 0 } = {}) {
  const requests = [];
  const timers = new Set();
  const server = http.createServer(async (req, res) => {
    const body = await readBody(req).catch(() => Buffer.alloc(0));
    const echo = echoOf(req, body);
    requests.push(echo);
    const u = new URL(req.url, 'http://x');
    if (u.pathname.endsWith('/stream')) return sendStream(res, u.searchParams, timers);
    sendJson(res, 200, echo);
  });
  await listen(server, port);
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Every request received, oldest first. */
    requests: () => requests.slice(),
    reset: () => void requests.splice(0),
    close: () => closeServer(server, timers),
  };
}

/**
 * Applies the next entry of a scripted-reply `queue` (see `script` below) to `req`/`res`:
 * calls `normal()` for 'ok', a bare delay or an empty queue. Delays are tracked in `timers`.
 */
export async function runScript(queue, req, res, timers, normal) {
  const entry = queue?.shift();
  if (entry === undefined || entry === 'ok') return normal();
  if (entry.delayMs) {
    await new Promise((r) => { const t = setTimeout(() => { timers.delete(t); r(); }, entry.delayMs); timers.add(t); });
    if (res.destroyed) return undefined;
  }
  if (entry.destroy) return void req.socket.destroy();
  if (entry.lose) {
    // Handled as usual (a token may be created), but the answer is lost: the connection drops
    // instead of carrying it.
    res.end = () => { req.socket.destroy(); return res; };
    res.writeHead = () => res;
    return normal();
  }
  if (entry.status === undefined) return normal();
  return sendScripted(res, entry);
}

/** Listens on 127.0.0.1:`port` (0: any free port). */
export function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
}

/** Stops `server`, its open connections and the pending `timers` (a Set of timeouts). */
export function closeServer(server, timers) {
  for (const t of timers) clearTimeout(t);
  timers.clear();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Starts the three provider emulators on one server.
 * opts: { port = 0, credentials?: {optoro?: {clientId, clientSecret}, ...} (merged over
 * generated ones), clock?: { now(): ms } (drives issue and expiry times; default Date.now) }.
 * Returns the control surface documented on each member below.
 */
export async function startProviders(opts = {}) {
  const clock = opts.clock ?? { now: () => Date.now() };
  const jwtKey = crypto.randomBytes(32);
  const kid = rand(6);
  const timers = new Set();

  // Generated secrets carry characters that break naive encoders: JSON escapes for the JSON
  // dialects, form-encoding specials for the form dialect.
  const credentials = {
    optoro: { clientId: `optoro-${rand(12)}`, clientSecret: `${rand(18)}+/="\\` },
    optimum: { clientId: `optimum-${rand(12)}`, clientSecret: `${rand(18)}+/=& %` },
    partner: { clientId: `partner-${rand(12)}`, clientSecret: `${rand(18)}+/="\\` },
  };
  for (const p of PROVIDERS) Object.assign(credentials[p], opts.credentials?.[p] ?? {});

  const fresh = () => ({ tokenReqs: [], apiReqs: [], script: [], apiScript: [], lifetime: null });
  const state = Object.fromEntries(PROVIDERS.map((p) => [p, fresh()]));
  const tokens = Object.fromEntries(PROVIDERS.map((p) => [p, new Map()])); // token -> {expiresAtMs, revoked}

  const check = (p) => {
    if (!PROVIDERS.includes(p)) throw new Error(`unknown emulated provider: ${p}`);
    return state[p];
  };

  function issue(p, extraClaims = {}) {
    const now = clock.now();
    const nowS = Math.floor(now / 1000);
    const lifetime = state[p].lifetime ?? DEFAULT_LIFETIME[p];
    let token;
    if (p === 'optoro') {
      token = rand(24); // 32 chars, opaque like "8xB2vvU4ytrl1zYQ_EdGUQrdFJmuCMck"
    } else if (p === 'optimum') {
      token = makeJwt({
        iss: 'https://identityserver.optimum-automotive.test', nbf: nowS, iat: nowS,
        exp: nowS + lifetime, aud: 'public-api', client_id: credentials.optimum.clientId,
        jti: crypto.randomUUID(), ...extraClaims,
      }, jwtKey, kid);
    } else {
      const frac = (now % 1000) / 1000; // the partner API's claims are fractional seconds
      token = makeJwt({
        aud: credentials.partner.clientId, jti: crypto.randomBytes(40).toString('hex'),
        iat: nowS + frac, nbf: nowS + frac, exp: nowS + lifetime + frac, sub: '', scopes: [],
        partner_id: crypto.randomUUID(), is_test: true,
      }, jwtKey, kid);
    }
    tokens[p].set(token, { expiresAtMs: now + lifetime * 1000, revoked: false });
    return { token, lifetime, nowS };
  }

  // ---- token endpoints, one handler per dialect -------------------------------------------

  function optoroToken(req, res, raw) {
    if (mediaType(req) !== 'application/json') {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'Malformed request. Check structure of JSON payload.' });
    }
    let body;
    try { body = JSON.parse(raw.toString('utf8')); } catch {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'Malformed request. Check structure of JSON payload.' });
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'Malformed request. Check structure of JSON payload.' });
    }
    const allowed = ['grant_type', 'client_id', 'client_secret'];
    const errors = [];
    for (const f of allowed) {
      if (!(f in body)) errors.push({ field: f, code: 'missing_field' });
      else if (typeof body[f] !== 'string') errors.push({ field: f, code: 'invalid' });
    }
    for (const k of Object.keys(body)) if (!allowed.includes(k)) errors.push({ field: k, code: 'unexpected_field' });
    if (errors.length === 0 && body.grant_type !== 'client_credentials') errors.push({ field: 'grant_type', code: 'invalid' });
    if (errors.length) return sendJson(res, 422, { message: 'Validation Failed', errors });
    const c = credentials.optoro;
    if (body.client_id !== c.clientId || body.client_secret !== c.clientSecret) {
      return sendJson(res, 401, { error: 'invalid_client', error_description: OPTORO_INVALID_CLIENT });
    }
    const { token, lifetime, nowS } = issue('optoro');
    sendJson(res, 200, { access_token: token, token_type: 'Bearer', expires_in: lifetime, scope: 'read write', created_at: nowS });
  }

  function optimumToken(req, res, raw) {
    if (mediaType(req) !== 'application/x-www-form-urlencoded') {
      return sendJson(res, 400, { error: 'invalid_request' });
    }
    const params = new URLSearchParams(raw.toString('utf8'));
    for (const k of new Set(params.keys())) {
      if (params.getAll(k).length > 1) return sendJson(res, 400, { error: 'invalid_request' }); // RFC 6749 §3.2
    }
    const c = credentials.optimum;
    // Optimum Automotive: credentials are form parameters; an Authorization header is not looked at.
    if (params.get('client_id') !== c.clientId || params.get('client_secret') !== c.clientSecret) {
      return sendJson(res, 400, { error: 'invalid_client' });
    }
    const grant = params.get('grant_type');
    if (grant !== 'client_credentials') return sendJson(res, 400, { error: 'unsupported_grant_type' });
    const scope = params.get('scope');
    const { token, lifetime } = issue('optimum', scope ? { scope: scope.split(' ') } : {});
    sendJson(res, 200, { access_token: token, expires_in: lifetime, token_type: 'Bearer', ...(scope ? { scope } : {}) });
  }

  function partnerToken(req, res, raw) {
    const accept = String(req.headers.accept ?? '').toLowerCase().split(',').map((s) => s.split(';')[0].trim());
    if (!accept.includes('application/json')) {
      return sendJson(res, 406, { error: 'not_acceptable', error_description: 'Accept must be application/json' });
    }
    if (mediaType(req) !== 'application/json') {
      return sendJson(res, 415, { error: 'invalid_request', error_description: 'Content-Type must be application/json' });
    }
    let body;
    try { body = JSON.parse(raw.toString('utf8')); } catch { body = null; }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'The request body is not a JSON object.' });
    }
    for (const f of ['grant_type', 'client_id', 'client_secret']) {
      if (typeof body[f] !== 'string' || body[f] === '') {
        return sendJson(res, 400, {
          error: 'invalid_request',
          error_description: `The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed. Check the \`${f}\` parameter`,
        });
      }
    }
    if (body.grant_type !== 'client_credentials') {
      return sendJson(res, 400, { error: 'unsupported_grant_type', error_description: 'The authorization grant type is not supported by the authorization server.' });
    }
    const c = credentials.partner;
    if (body.client_id !== c.clientId || body.client_secret !== c.clientSecret) {
      return sendJson(res, 401, { error: 'invalid_client', error_description: 'Client authentication failed' });
    }
    const { token, lifetime } = issue('partner');
    sendJson(res, 200, { token_type: 'Bearer', expires_in: lifetime, access_token: token });
  }

  const TOKEN_HANDLERS = { optoro: optoroToken, optimum: optimumToken, partner: partnerToken };

  // ---- API ------------------------------------------------------------------------------

  function apiCall(p, req, res, body) {
    const m = /^bearer +(\S+)\s*$/i.exec(String(req.headers.authorization ?? ''));
    const rec = m && tokens[p].get(m[1]);
    if (!rec || rec.revoked || clock.now() >= rec.expiresAtMs) {
      return sendJson(res, 401, { error: 'invalid_token', error_description: 'The access token is missing, revoked or expired.' },
        { 'www-authenticate': 'Bearer error="invalid_token"' });
    }
    const u = new URL(req.url, 'http://x');
    if (u.pathname === `${ROUTES[p].api}/stream` || u.pathname.endsWith('/stream')) {
      return sendStream(res, u.searchParams, timers);
    }
    sendJson(res, 200, echoOf(req, body, { maskBearer: Boolean(opts.maskBearer) }));
  }

  const server = http.createServer(async (req, res) => {
    try {
      const path = (req.url ?? '/').split('?')[0];
      for (const p of PROVIDERS) {
        const r = ROUTES[p];
        if (path === r.token) {
          const raw = await readBody(req);
          const s = state[p];
          s.tokenReqs.push({ method: req.method, url: req.url, headers: { ...req.headers }, rawHeaders: req.rawHeaders.slice(), body: raw.toString('utf8'), at: clock.now() });
          if (raw.length > MAX_TOKEN_BODY) return sendJson(res, 413, { error: 'invalid_request' });
          return await runScript(s.script, req, res, timers, () => {
            if (req.method !== 'POST') return sendJson(res, 404, { error: 'not_found' });
            return TOKEN_HANDLERS[p](req, res, raw);
          });
        }
        if (path === r.api || path.startsWith(`${r.api}/`)) {
          const body = await readBody(req);
          state[p].apiReqs.push({ method: req.method, url: req.url, headers: { ...req.headers }, rawHeaders: req.rawHeaders.slice(), body: body.toString('utf8'), bodyBytes: body.length, at: clock.now() });
          return await runScript(state[p].apiScript, req, res, timers, () => apiCall(p, req, res, body));
        }
      }
      sendJson(res, 404, { error: 'not_found' });
    } catch (err) {
      sendJson(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) });
    }
  });
  server.keepAliveTimeout = 2000;
  await listen(server, opts.port ?? 0);
  const url = `http://127.0.0.1:${server.address().port}`;

  const copy = (arr) => arr.map((x) => ({ ...x, headers: { ...x.headers } }));
  return {
    /** Base URL, e.g. http://127.0.0.1:PORT */
    url,
    /** { optoro: {clientId, clientSecret}, optimum: {...}, partner: {...} } */
    credentials,
    /** Path layout: { optoro: {token, api}, ... } (absolute URLs). */
    endpoints: Object.fromEntries(PROVIDERS.map((p) => [p, { token: url + ROUTES[p].token, api: url + ROUTES[p].api }])),
    /** Number of token requests received for `p` (successful, failed and scripted). */
    exchanges: (p) => check(p).tokenReqs.length,
    /** Captured token requests: [{method, url, headers, rawHeaders, body, at}]. */
    tokenRequests: (p) => copy(check(p).tokenReqs),
    /** Captured API requests: [{method, url (path+query), headers, rawHeaders, body, bodyBytes, at}]. */
    apiRequests: (p) => copy(check(p).apiReqs),
    /** Tokens issued so far for `p` (opaque values), oldest first. */
    issuedTokens: (p) => (check(p), [...tokens[p].keys()]),
    /** True when `token` was issued for `p` and is neither revoked nor expired. */
    isValidToken: (p, token) => {
      const rec = (check(p), tokens[p].get(token));
      return Boolean(rec && !rec.revoked && clock.now() < rec.expiresAtMs);
    },
    /**
     * Queues replies for the next token requests of `p`, each one of: 'ok' (normal handling),
     * {status, body?, headers?} (that reply), {delayMs} (hang, then normal handling; with
     * `status` too, then that reply), {destroy: true} (drop the connection), {lose: true}
     * (handle it, then drop the connection instead of answering).
     */
    script: (p, entries) => void check(p).script.push(...entries),
    /** Same as `script`, for API requests of `p` (e.g. {status: 503}, {status: 429, headers: {'retry-after': '1'}}). */
    scriptApi: (p, entries) => void check(p).apiScript.push(...entries),
    /** Every token issued so far for `p` becomes invalid (the API answers 401). */
    revokeAll: (p) => { for (const rec of (check(p), tokens[p].values())) rec.revoked = true; },
    /** Overrides expires_in (and the JWT exp) of the next tokens of `p`; null restores the documented value. */
    setLifetime: (p, seconds) => { check(p).lifetime = seconds; },
    /**
     * Builds a TOKENGATE_PROVIDERS object and the matching Worker secrets for these emulators:
     * { providers: { optoro: {...}, optimum: {...}, partner: {...} }, secrets: { OPTORO_CLIENT_SECRET, ... } }.
     * `overrides` is merged per provider id, e.g. { optoro: { api_headers: {...} } }.
     */
    gatewayConfig: (overrides = {}) => {
      const providers = {};
      const secrets = {};
      for (const p of PROVIDERS) {
        const secretName = `${p.toUpperCase()}_CLIENT_SECRET`;
        providers[p] = {
          token_url: url + ROUTES[p].token, api_base: url + ROUTES[p].api,
          client_id: credentials[p].clientId, client_secret_name: secretName,
          auth_style: AUTH_STYLE[p], ...(overrides[p] ?? {}),
        };
        secrets[secretName] = credentials[p].clientSecret;
      }
      return { providers, secrets };
    },
    /** Clears captured requests, counters, scripts and lifetime overrides (issued tokens stay valid). */
    reset: () => { for (const p of PROVIDERS) state[p] = fresh(); },
    /** Stops the server, pending delays and open connections. */
    close: () => closeServer(server, timers),
  };
}
