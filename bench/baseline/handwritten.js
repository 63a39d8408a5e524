// The gateway a competent developer would write by hand for one client-credentials provider
// (Optoro's dialect: JSON body, bearer token with expires_in), the baseline tokengate's Worker
// is measured against. It does what tokengate does on the cached path, in plain JavaScript:
//
// - checks the caller's bearer: SHA-256 of it, looked up in KV (`caller:<hex>` → { scopes, exp })
//   and memoised per isolate; checks the provider is in the caller's scopes;
// - gets the provider token from memory, else KV, else one token exchange shared by every
//   request that needs it meanwhile (one in-flight promise), stored back in KV with a TTL;
// - drops hop-by-hop headers, the caller's Authorization and cookies, sets the provider bearer
//   and returns fetch(...) without following redirects.
//
// What it leaves out (and tokengate does not): path and header checks beyond that, retries,
// provider error handling, caller-token issuance, logging, multiple providers.

const DROP = new Set([
  'authorization', 'connection', 'cookie', 'host', 'keep-alive', 'proxy-authenticate',
  'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade',
]);
const SKEW_MS = 60_000;
const callers = new Map(); // SHA-256 hex of a caller token → { scopes, exp }
let memo = null; // { token, exp } of the provider
let inflight = null; // the exchange under way, shared

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
  if (memo && memo.exp - SKEW_MS > Date.now()) return memo.token;
  inflight ??= exchange(env).finally(() => { inflight = null; });
  return inflight;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, provider, ...rest] = url.pathname.split('/');
    if (provider !== 'optoro') return Response.json({ error: 'not_found' }, { status: 404 });
    const caller = await callerOf(request, env);
    if (!caller) return Response.json({ error: 'invalid_token' }, { status: 401 });
    if (!caller.scopes.includes(provider)) {
      return Response.json({ error: 'insufficient_scope' }, { status: 403 });
    }
    let token;
    try {
      token = await providerToken(env);
    } catch {
      return Response.json({ error: 'bad_gateway' }, { status: 502 });
    }
    const headers = new Headers();
    for (const [name, value] of request.headers) if (!DROP.has(name)) headers.set(name, value);
    headers.set('authorization', `Bearer ${token}`);
    return fetch(env.API_BASE + rest.join('/') + url.search, {
      method: request.method,
      headers,
      body: request.body,
      redirect: 'manual',
    });
  },
};
