// A real OAuth 2.0 authorization server for tokengate's tests: panva's oidc-provider (9.13.3)
// with the client-credentials grant, on 127.0.0.1, plus an echo API that accepts any bearer.
//
// Two clients: `basic` authenticates with client_secret_basic, `post` with client_secret_post.
// The basic client's secret contains `+ / : % & space`, which oidc-provider only accepts when the
// caller form-urlencodes id and secret before base64 (RFC 6749 §2.3.1): a naive encoder sends
// '+' (decoded as a space) or a bare '%' (undecodable) and is refused.
//
// Tokens are opaque by default; a request with a `resource` parameter gets an RS256 JWT whose
// `aud` is that resource. Signing keys and cookie keys are generated in-process.

import http from 'node:http';
import crypto from 'node:crypto';
import { startEchoApi } from './emulators.mjs';

// oidc-provider 9 prints "Unsupported runtime" once at import on Node 20; the toolchain notes
// record 9.13.3 as working on Node 20, so only that one line is filtered, nothing else.
export async function importProvider() {
  const warn = console.warn;
  console.warn = (...args) => {
    if (String(args[0]).includes('oidc-provider WARNING: Unsupported runtime')) return;
    warn.apply(console, args);
  };
  try {
    return (await import('oidc-provider')).default;
  } finally {
    console.warn = warn;
  }
}

/** A per-instance in-memory adapter (oidc-provider's default one is process-global and warns). */
export function memoryAdapterFactory() {
  const stores = new Map();
  return (name) => {
    if (!stores.has(name)) stores.set(name, new Map());
    const store = stores.get(name);
    const live = (id) => {
      const e = store.get(id);
      if (!e) return undefined;
      if (e.expiresAt !== undefined && e.expiresAt <= Date.now()) { store.delete(id); return undefined; }
      return e;
    };
    return {
      async upsert(id, payload, expiresIn) {
        store.set(id, { payload: { ...payload }, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
      },
      async find(id) { return live(id)?.payload; },
      async findByUserCode(code) { for (const [id, e] of store) if (e.payload.userCode === code) return live(id)?.payload; return undefined; },
      async findByUid(uid) { for (const [id, e] of store) if (e.payload.uid === uid) return live(id)?.payload; return undefined; },
      async consume(id) { const e = live(id); if (e) e.payload.consumed = Math.floor(Date.now() / 1000); },
      async destroy(id) { store.delete(id); },
      async revokeByGrantId(grantId) { for (const [id, e] of store) if (e.payload.grantId === grantId) store.delete(id); },
    };
  };
}

function decodeJwtPart(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/**
 * Starts oidc-provider and an echo API.
 * opts: { ttlSeconds = 600 (access-token lifetime), clients?: {basic?: {clientId, clientSecret},
 * post?: {...}} (merged over the defaults) }.
 * Returns { issuer, tokenUrl, clients, apiBase, isIssuedToken, tokenInfo, tokenRequests,
 * exchanges, apiRequests, gatewayConfig, reset, close }.
 */
export async function startOidc(opts = {}) {
  const Provider = await importProvider();
  const ttl = opts.ttlSeconds ?? 600;
  const clients = {
    basic: { clientId: 'tokengate-basic', clientSecret: `b+s/e:c%r&e t-${crypto.randomBytes(12).toString('base64url')}` },
    post: { clientId: 'tokengate-post', clientSecret: `p-${crypto.randomBytes(18).toString('base64url')}` },
  };
  for (const k of ['basic', 'post']) Object.assign(clients[k], opts.clients?.[k] ?? {});

  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = crypto.randomBytes(8).toString('base64url');
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };

  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const echo = await startEchoApi();

  const clientMeta = (c, method) => ({
    client_id: c.clientId, client_secret: c.clientSecret, token_endpoint_auth_method: method,
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api:read api:write',
  });
  const provider = new Provider(issuer, {
    adapter: memoryAdapterFactory(),
    clients: [clientMeta(clients.basic, 'client_secret_basic'), clientMeta(clients.post, 'client_secret_post')],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    scopes: ['api:read', 'api:write'],
    jwks: { keys: [jwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    ttl: { ClientCredentials: () => ttl },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resource) => ({
          scope: 'api:read api:write', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: ttl,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });

  const issued = new Map(); // access_token -> { clientId, format }
  const tokenReqs = [];
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token') return;
    const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : {};
    tokenReqs.push({
      method: ctx.method, headers: { ...ctx.headers }, status: ctx.status,
      clientId: ctx.oidc?.client?.clientId ?? null, error: body.error ?? null,
    });
    if (ctx.status === 200 && typeof body.access_token === 'string') {
      issued.set(body.access_token, {
        clientId: ctx.oidc?.client?.clientId,
        format: body.access_token.split('.').length === 3 ? 'jwt' : 'opaque',
      });
    }
  });
  server.on('request', provider.callback());

  async function tokenInfo(token) {
    const meta = issued.get(token);
    if (!meta) return null;
    if (meta.format === 'opaque') {
      const model = await provider.ClientCredentials.find(token);
      if (!model || model.isExpired) return null;
      return { clientId: model.clientId, scope: model.scope ?? null, exp: model.exp, format: 'opaque' };
    }
    const [h, p, s] = token.split('.');
    const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url'));
    const claims = decodeJwtPart(p);
    if (!ok || decodeJwtPart(h).kid !== kid || claims.exp * 1000 <= Date.now()) return null;
    return { clientId: claims.client_id, scope: claims.scope ?? null, exp: claims.exp, aud: claims.aud, format: 'jwt' };
  }

  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    /** { basic: {clientId, clientSecret}, post: {clientId, clientSecret} } */
    clients,
    /** Base URL of the echo API (accepts any bearer, records every request). */
    apiBase: `${echo.url}/api`,
    /** True when `token` is an access token this provider issued and still considers valid. */
    isIssuedToken: async (token) => (await tokenInfo(token)) !== null,
    /** { clientId, scope, exp, format, aud? } for a valid issued token, else null. */
    tokenInfo,
    /** Token endpoint requests seen: [{method, headers, status, clientId, error}]. */
    tokenRequests: () => tokenReqs.map((r) => ({ ...r, headers: { ...r.headers } })),
    /** Number of token endpoint requests (successful and failed). */
    exchanges: () => tokenReqs.length,
    /** Requests received by the echo API (see emulators.mjs echoOf). */
    apiRequests: () => echo.requests(),
    /**
     * TOKENGATE_PROVIDERS entries and secrets for both clients:
     * { providers: {'oidc-basic': {...}, 'oidc-post': {...}}, secrets: {OIDC_BASIC_SECRET, OIDC_POST_SECRET} }.
     */
    gatewayConfig: (overrides = {}) => {
      const mk = (id, c, style, secretName) => ({
        token_url: `${issuer}/token`, api_base: `${echo.url}/api`, client_id: c.clientId,
        client_secret_name: secretName, auth_style: style, ...(overrides[id] ?? {}),
      });
      return {
        providers: {
          'oidc-basic': mk('oidc-basic', clients.basic, 'client_secret_basic', 'OIDC_BASIC_SECRET'),
          'oidc-post': mk('oidc-post', clients.post, 'client_secret_post', 'OIDC_POST_SECRET'),
        },
        secrets: { OIDC_BASIC_SECRET: clients.basic.clientSecret, OIDC_POST_SECRET: clients.post.clientSecret },
      };
    },
    /** Forgets recorded token and API requests (issued tokens stay valid). */
    reset: () => { tokenReqs.splice(0); echo.reset(); },
    /** Stops the authorization server and the echo API. */
    close: async () => {
      await Promise.all([
        new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
        echo.close(),
      ]);
    },
  };
}
