// The hand-written gateway (handwritten.js) given the duties tokengate performs on the cached
// path and handwritten.js leaves out, written as plainly as a competent developer would in
// JavaScript: the control that tells the cost of tokengate's extra platform work (a deadline
// timer, a copy of the response headers, one log line) from the cost of doing its rules in
// Rust. Each duty follows the rule of tokengate's core it stands for:
//
// - the path: every segment percent-decoded and refused if it decodes to a dot segment, a
//   separator or a control character, or was encoded twice; the joined URL re-parsed and kept
//   under the API base (src/proxy/path.rs, without the Unicode look-alike table);
// - request headers: hop-by-hop and `Connection`-listed headers, the caller's credentials,
//   `Host`, `Content-Length`, `cf-*`, `x-forwarded-*` and the spoofable address and method
//   override headers dropped (src/proxy/headers.rs);
// - a deadline for the response headers: an AbortController and a timer, cleared on answer
//   (worker/js/platform.js's fetchWithin);
// - response headers: hop-by-hop, cookies, CORS, HSTS, Alt-Svc and Clear-Site-Data dropped, any
//   value holding the provider token dropped, `Cache-Control` made private, a `Server-Timing`
//   naming the token's origin added; the body streamed through a new Response;
// - one JSON log line per request (provider, method, status, token source, ms, client id);
//   none when the binding LOG is "off" (the bench's row without a log line, beside tokengate's
//   `log_level = "warn"` row).
//
// Still left out: retries and provider error handling (none happen on this path), caller-token
// issuance, multiple providers, Unicode look-alike segments, token-echo spellings other than
// the token itself, statistics.

const SKEW_MS = 60_000;
const DEADLINE_MS = 10_000;
const HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization',
  'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
const DROP_REQUEST = new Set([...HOP, 'authorization', 'cookie', 'dpop', 'host', 'content-length',
  'forwarded', 'true-client-ip', 'x-real-ip', 'x-client-ip', 'x-original-url', 'x-rewrite-url',
  'x-http-method-override', 'x-http-method', 'x-method-override']);
const DROP_RESPONSE = new Set([...HOP, 'set-cookie', 'content-length', 'alt-svc',
  'strict-transport-security', 'clear-site-data']);
const TIMEOUT = Symbol('timeout');
const callers = new Map();
let memo = null;
let inflight = null;

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function callerOf(request, env) {
  const m = /^Bearer (\S+)$/.exec(request.headers.get('authorization') ?? '');
  if (!m) return null;
  const key = await sha256Hex(m[1]);
  let caller = callers.get(key);
  if (caller === undefined) {
    caller = await env.KV.get(`caller:${key}`, 'json');
    if (caller) callers.set(key, caller);
  }
  return caller && caller.exp > Date.now() ? caller : null;
}

async function exchange(env) {
  const stored = await env.KV.get('provider-token', 'json');
  if (stored && stored.exp - SKEW_MS > Date.now()) return (memo = stored).token;
  const res = await fetch(env.TOKEN_URL, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({
      grant_type: 'client_credentials', client_id: env.CLIENT_ID, client_secret: env.CLIENT_SECRET,
    }),
  });
  if (res.status !== 200) throw new Error(`token endpoint answered HTTP ${res.status}`);
  const body = await res.json();
  memo = { token: body.access_token, exp: Date.now() + body.expires_in * 1000 };
  await env.KV.put('provider-token', JSON.stringify(memo), {
    expirationTtl: Math.max(60, body.expires_in - SKEW_MS / 1000),
  });
  return memo.token;
}

function providerToken(env) {
  if (memo && memo.exp - SKEW_MS > Date.now()) return [memo.token, 'memory'];
  inflight ??= exchange(env).finally(() => { inflight = null; });
  return inflight.then((token) => [token, 'exchange']);
}

/** A path segment that is safe to forward (see the header comment). */
function safeSegment(seg) {
  let decoded;
  try {
    decoded = decodeURIComponent(seg);
  } catch {
    return false;
  }
  if (decoded.includes('%') && seg.includes('%25')) return false;
  if (/[/\\\u0000-\u001f\u007f]/.test(decoded)) return false;
  const head = decoded.split(';')[0].trimEnd();
  return !(head.length > 0 && /^\.+$/.test(head));
}

function listed(connection, name) {
  return connection !== null && connection.split(',').some((t) => t.trim().toLowerCase() === name);
}

function privateCacheControl(upstream) {
  const kept = (upstream ?? '').split(',').map((d) => d.trim()).filter((d) => {
    const n = d.split('=')[0].trim().toLowerCase();
    return d && n !== 'public' && n !== 's-maxage';
  });
  const restricted = kept.some((d) => {
    const n = d.split('=')[0].trim().toLowerCase();
    return n === 'private' || n === 'no-store';
  });
  return (restricted ? kept : ['private', ...kept]).join(', ');
}

function fetchWithin(request, ms, controller) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      controller.abort();
      reject(TIMEOUT);
    }, ms);
    fetch(request).then(
      (response) => { clearTimeout(timer); resolve(response); },
      (error) => { clearTimeout(timer); reject(error); },
    );
  });
}

function json(status, error) {
  return Response.json({ error }, { status });
}

export default {
  async fetch(request, env) {
    const started = Date.now();
    const url = new URL(request.url);
    const [, provider, ...rest] = url.pathname.split('/');
    if (provider !== 'optoro') return json(404, 'not_found');
    const caller = await callerOf(request, env);
    if (!caller) return json(401, 'invalid_token');
    if (!caller.scopes.includes(provider)) return json(403, 'insufficient_scope');
    if (!rest.every(safeSegment)) return json(400, 'invalid_request');
    const base = new URL(env.API_BASE);
    const target = new URL(env.API_BASE + rest.join('/') + url.search);
    if (target.origin !== base.origin || !target.pathname.startsWith(base.pathname)) {
      return json(400, 'invalid_request');
    }
    let token;
    let source;
    try {
      [token, source] = await providerToken(env);
    } catch {
      return json(502, 'bad_gateway');
    }
    const connection = request.headers.get('connection');
    const headers = new Headers();
    for (const [name, value] of request.headers) {
      if (DROP_REQUEST.has(name) || name.startsWith('cf-') || name.startsWith('x-forwarded-')
        || listed(connection, name)) continue;
      headers.append(name, value);
    }
    headers.set('authorization', `Bearer ${token}`);
    const controller = new AbortController();
    let upstream;
    try {
      upstream = await fetchWithin(new Request(target, {
        method: request.method,
        headers,
        body: request.body,
        redirect: 'manual',
        signal: controller.signal,
      }), DEADLINE_MS, controller);
    } catch (error) {
      return json(error === TIMEOUT ? 504 : 502, 'bad_gateway');
    }
    const out = new Headers();
    const upConnection = upstream.headers.get('connection');
    let cacheControl = null;
    for (const [name, value] of upstream.headers) {
      if (name === 'cache-control') {
        cacheControl = cacheControl === null ? value : `${cacheControl}, ${value}`;
      } else if (!(DROP_RESPONSE.has(name) || name.startsWith('access-control-')
        || listed(upConnection, name) || value.includes(token))) {
        out.append(name, value);
      }
    }
    out.set('cache-control', privateCacheControl(cacheControl));
    out.set('server-timing', `token;desc="${source}"`);
    if (env.LOG !== 'off') console.log(JSON.stringify({
      event: 'proxy',
      provider,
      method: request.method,
      status: upstream.status,
      token_source: source,
      ms: Date.now() - started,
      client_id: caller.id ?? 'bench',
    }));
    return new Response(upstream.body, { status: upstream.status, headers: out });
  },
};
