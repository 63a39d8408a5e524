// Proof of possession against real peers, for the Worker's and the npm package's tests:
// panva's oidc-provider (9.13.3) with `private_key_jwt` clients (RFC 7523; ES256, RS256 and
// PS256 keys generated here) and DPoP (RFC 9449) with nonces, behind a small front (at the
// issuer's address) that can replay a client assertion before tokengate's own request arrives;
// and an API that accepts
// only DPoP-bound tokens and verifies each proof itself (signature with the header's key,
// `htm`, `htu`, `iat`, unique `jti`, `ath`, its own nonce, and the token's key binding).
// Everything listens on 127.0.0.1; close() stops all of it.

import crypto from 'node:crypto';
import http from 'node:http';
import { importProvider, memoryAdapterFactory } from './oidc.mjs';

const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/** RFC 7638 thumbprint of a public JWK, computed here independently of tokengate. */
export function thumbprint(jwk) {
  const members = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['e', 'kty', 'n'];
  const json = `{${members.map((k) => `${JSON.stringify(k)}:${JSON.stringify(jwk[k])}`).join(',')}}`;
  return crypto.createHash('sha256').update(json).digest('base64url');
}

/** Verifies a compact JWS with `jwk` (public) under `alg`. */
function verifyJws(jws, jwk, alg) {
  const [h, p, s] = jws.split('.');
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s ?? '', 'base64url');
  if (alg === 'ES256') return crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  if (alg === 'RS256') return crypto.verify('sha256', data, key, sig);
  if (alg === 'PS256') {
    return crypto.verify('sha256', data, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
  }
  return false;
}

/** A key pair for `alg`: its private JWK, its PKCS#8 PEM and its public JWK. */
export function keyPair(alg) {
  const { privateKey, publicKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    alg,
    privateJwk: privateKey.export({ format: 'jwk' }),
    pem: privateKey.export({ format: 'pem', type: 'pkcs8' }),
    publicJwk: publicKey.export({ format: 'jwk' }),
  };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * Starts the authorization server, its front and the DPoP API.
 * opts: { tokenNonce = true (the token endpoint requires a DPoP nonce), apiNonce = true (the API
 * requires its own) }.
 */
export async function startPopProvider(opts = {}) {
  const Provider = await importProvider();
  const tokenNonce = opts.tokenNonce ?? true;
  const apiNonce = opts.apiNonce ?? true;
  const keys = { ES256: keyPair('ES256'), RS256: keyPair('RS256'), PS256: keyPair('PS256') };
  const kid = (alg) => `pk-${alg.toLowerCase()}-key`;
  const clients = Object.fromEntries(Object.keys(keys).map((alg) => [alg, {
    clientId: `pk-${alg.toLowerCase()}`, alg, kid: kid(alg), ...keys[alg],
  }]));
  const dpopSecretClient = { clientId: 'dpop-basic', clientSecret: `d-${crypto.randomBytes(18).toString('base64url')}` };

  const { privateKey: signingKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  // The provider listens on a port of its own; its issuer is the front's address, so the URLs
  // it checks (a DPoP proof's htu, an assertion's aud) are the ones clients use.
  const server = http.createServer();
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  const inner = `http://127.0.0.1:${server.address().port}`;
  let replayNext = false;
  // Forwarded with its own Host, so the provider computes the URLs clients see.
  const forward = (req, body) => new Promise((resolve, reject) => {
    const out = http.request(`${inner}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      readBody(r).then((b) => resolve({ status: r.statusCode, headers: r.headers, body: b }), reject);
    });
    out.on('error', reject);
    out.end(body);
  });
  const front = http.createServer(async (req, res) => {
    const body = await readBody(req);
    if (replayNext && req.url === '/token') {
      replayNext = false;
      await forward(req, body);
    }
    const r = await forward(req, body);
    res.writeHead(r.status, r.headers);
    res.end(r.body);
  });
  await new Promise((resolve) => front.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${front.address().port}`;

  const provider = new Provider(issuer, {
    adapter: memoryAdapterFactory(),
    clients: [
      ...Object.values(clients).map((c) => ({
        client_id: c.clientId, token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: c.alg,
        jwks: { keys: [{ ...c.publicJwk, kid: c.kid, alg: c.alg, use: 'sig' }] },
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api:read',
      })),
      {
        client_id: dpopSecretClient.clientId, client_secret: dpopSecretClient.clientSecret,
        token_endpoint_auth_method: 'client_secret_basic', dpop_bound_access_tokens: true,
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api:read',
      },
    ],
    clientAuthMethods: ['client_secret_basic', 'private_key_jwt'],
    scopes: ['api:read'],
    jwks: { keys: [{ ...signingKey.export({ format: 'jwk' }), kid: 'as-1', alg: 'RS256', use: 'sig' }] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    ttl: { ClientCredentials: () => 600 },
    enabledJWA: { dPoPSigningAlgValues: ['ES256', 'PS256', 'RS256'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => tokenNonce },
    },
  });
  const tokenReqs = [];
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token') return;
    const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : {};
    tokenReqs.push({
      status: ctx.status, error: body.error ?? null, tokenType: body.token_type ?? null,
      dpop: typeof ctx.headers.dpop === 'string', clientId: ctx.oidc?.client?.clientId ?? null,
    });
  });
  // POP_DEBUG=1 prints why the provider refused a token request (its own error detail).
  if (process.env.POP_DEBUG) provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_detail));
  server.on('request', provider.callback());

  // The API: DPoP-bound tokens only, each proof verified.
  const seenJti = new Set();
  const apiNonces = new Set();
  const apiLog = [];
  const api = http.createServer(async (req, res) => {
    await readBody(req);
    const url = `http://127.0.0.1:${api.address().port}${req.url}`;
    const refuse = (status, error, description, extra = {}) => {
      apiLog.push({ status, error, path: req.url });
      res.writeHead(status, {
        'content-type': 'application/json',
        'www-authenticate': `DPoP error="${error}", error_description="${description}"`,
        ...extra,
      });
      res.end(JSON.stringify({ error, error_description: description }));
    };
    const auth = req.headers.authorization ?? '';
    const proof = req.headers.dpop;
    if (!auth.startsWith('DPoP ')) return refuse(401, 'invalid_token', 'a DPoP-bound token is required');
    if (typeof proof !== 'string') return refuse(401, 'invalid_dpop_proof', 'no DPoP proof');
    const token = auth.slice(5);
    const [h, p] = proof.split('.');
    let header;
    let claims;
    try { header = b64json(h); claims = b64json(p); } catch { return refuse(401, 'invalid_dpop_proof', 'unreadable proof'); }
    if (header.typ !== 'dpop+jwt' || !header.jwk || header.jwk.d !== undefined) return refuse(401, 'invalid_dpop_proof', 'bad header');
    if (!verifyJws(proof, header.jwk, header.alg)) return refuse(401, 'invalid_dpop_proof', 'bad signature');
    const htu = url.split('?')[0];
    if (claims.htm !== req.method || claims.htu !== htu) return refuse(401, 'invalid_dpop_proof', 'htm or htu mismatch');
    if (Math.abs(claims.iat - Date.now() / 1000) > 60) return refuse(401, 'invalid_dpop_proof', 'iat out of window');
    if (seenJti.has(claims.jti)) return refuse(401, 'invalid_dpop_proof', 'jti replayed');
    seenJti.add(claims.jti);
    if (claims.ath !== crypto.createHash('sha256').update(token).digest('base64url')) return refuse(401, 'invalid_dpop_proof', 'ath mismatch');
    if (apiNonce && !apiNonces.has(claims.nonce)) {
      const n = crypto.randomBytes(12).toString('base64url');
      apiNonces.add(n);
      return refuse(401, 'use_dpop_nonce', 'a nonce is required', { 'dpop-nonce': n });
    }
    const model = await provider.ClientCredentials.find(token);
    if (!model || model.isExpired) return refuse(401, 'invalid_token', 'unknown token');
    if (model.jkt !== thumbprint(header.jwk)) return refuse(401, 'invalid_token', 'the proof key is not the token key');
    apiLog.push({ status: 200, path: req.url, jkt: model.jkt, clientId: model.clientId });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, method: req.method, path: req.url, clientId: model.clientId, jkt: model.jkt }));
  });
  await new Promise((resolve) => api.listen(0, '127.0.0.1', resolve));
  const apiBase = `http://127.0.0.1:${api.address().port}/api`;

  return {
    issuer,
    /** The token endpoint (through the front, which can replay an assertion). */
    tokenUrl: `${issuer}/token`,
    /** The private_key_jwt clients by alg: {clientId, alg, kid, privateJwk, pem, publicJwk}. */
    clients,
    /** A client_secret_basic client whose tokens are DPoP-bound. */
    dpopSecretClient,
    apiBase,
    /** The next token request through the front is preceded by a copy of itself. */
    replayNextAssertion: () => { replayNext = true; },
    /** Token endpoint answers: [{status, error, tokenType, dpop, clientId}]. */
    tokenRequests: () => tokenReqs.map((r) => ({ ...r })),
    /** API answers: [{status, error?, path, jkt?, clientId?}]. */
    apiRequests: () => apiLog.map((r) => ({ ...r })),
    /** The key thumbprint a token is bound to, or null. */
    tokenJkt: async (token) => (await provider.ClientCredentials.find(token))?.jkt ?? null,
    reset: () => { tokenReqs.splice(0); apiLog.splice(0); },
    close: async () => {
      await Promise.all([server, front, api].map((s) => new Promise((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      })));
    },
  };
}
