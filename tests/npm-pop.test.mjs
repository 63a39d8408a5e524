// Strong client authentication in the npm package (pkg/node, built by .ci/build-npm):
// private_key_jwt with ES256, RS256 and PS256 keys in every form the package takes (a JWK, a
// PKCS#8 PEM, a CryptoKey), DPoP-bound tokens with the nonce dance at the token endpoint and
// at the API, and tls_client_auth through a `fetch` that presents a client certificate —
// against oidc-provider and an API that verifies each proof itself (tests/support/pop.mjs), and
// a TLS server that requires a client certificate (certificates made by openssl per run).
//
//   node --test tests/npm-pop.test.mjs     (needs pkg/ from .ci/build-npm)
//
// Every test stops the servers it started.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { startPopProvider, thumbprint, keyPair } from './support/pop.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
let tg;

before(() => {
  const entry = path.join(ROOT, 'pkg/node/index.cjs');
  assert.ok(fs.existsSync(entry), 'pkg/node/index.cjs is missing: build the package with .ci/build-npm (make npm-pkg)');
  tg = require(entry);
});

async function popProvider(t, opts) {
  const p = await startPopProvider(opts);
  t.after(() => p.close());
  return p;
}

const logger = (logs) => (event, fields) => logs.push({ event, ...fields });

test('private_key_jwt: ES256 from a JWK, RS256 from a PKCS#8 PEM, PS256 from a CryptoKey', async (t) => {
  const p = await popProvider(t);
  const cryptoKey = await crypto.webcrypto.subtle.importKey(
    'jwk', p.clients.PS256.privateJwk, { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['sign'],
  );
  const forms = { ES256: p.clients.ES256.privateJwk, RS256: p.clients.RS256.pem, PS256: cryptoKey };
  for (const [alg, clientKey] of Object.entries(forms)) {
    const c = p.clients[alg];
    const client = new tg.TokenClient({
      tokenUrl: p.tokenUrl, clientId: c.clientId, authStyle: 'private_key_jwt',
      clientKey, clientKeyAlg: alg, kid: c.kid, scope: 'api:read',
    });
    const tok = await client.token();
    assert.equal(tok.tokenType, 'Bearer', alg);
    assert.equal(tok.scope, 'api:read');
    const last = p.tokenRequests().at(-1);
    assert.deepEqual([last.status, last.clientId], [200, c.clientId], `${alg}: the provider authenticated the client`);
    assert.equal((await client.token()).accessToken, tok.accessToken, 'cached');
  }
  assert.equal(p.tokenRequests().length, 3, 'one exchange per client');
});

test('private_key_jwt: a replayed assertion is refused and tokengate recovers with a new one', async (t) => {
  const p = await popProvider(t);
  const logs = [];
  const c = p.clients.ES256;
  const client = new tg.TokenClient({
    tokenUrl: p.tokenUrl, clientId: c.clientId, authStyle: 'private_key_jwt', clientKey: c.pem,
  }, { log: logger(logs) });
  p.replayNextAssertion();
  const tok = await client.token();
  assert.ok(tok.accessToken);
  const seen = p.tokenRequests().map((r) => [r.status, r.error]);
  // The copy (the attacker's) is accepted; tokengate's own is refused as a replay, then a new
  // assertion succeeds.
  assert.deepEqual(seen, [[200, null], [401, 'invalid_client'], [200, null]]);
  assert.equal(logs.filter((l) => l.event === 'client_assertion_refused').length, 1);
  assert.ok(!JSON.stringify(logs).includes(c.privateJwk.d), 'no key material in logs');
});

test('DPoP: the nonce dance at the token endpoint and the API; DPoP tokens bound to a generated key', async (t) => {
  const p = await popProvider(t);
  const logs = [];
  const { clientId, clientSecret } = p.dpopSecretClient;
  const client = new tg.TokenClient({ tokenUrl: p.tokenUrl, clientId, clientSecret, dpop: true }, { log: logger(logs) });
  const tok = await client.token();
  assert.equal(tok.tokenType, 'DPoP');
  assert.equal(await client.authorizationHeader(), `DPoP ${tok.accessToken}`);
  assert.deepEqual(p.tokenRequests().map((r) => [r.status, r.error ?? r.tokenType, r.dpop]),
    [[400, 'use_dpop_nonce', true], [200, 'DPoP', true]]);
  const res = await client.fetch(`${p.apiBase}/things?page=2`, { headers: { DPoP: 'caller-proof', Authorization: 'Bearer x' } });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.path, '/api/things?page=2');
  assert.equal(body.jkt, await p.tokenJkt(tok.accessToken), 'the proof key is the key the token is bound to');
  assert.deepEqual(p.apiRequests().map((r) => [r.status, r.error ?? 'ok']), [[401, 'use_dpop_nonce'], [200, 'ok']]);
  // The nonce is kept: the next call needs no second round.
  assert.equal((await client.fetch(`${p.apiBase}/more`, { method: 'POST', body: 'x' })).status, 200);
  assert.equal(p.apiRequests().length, 3);
  // A proof for a request the caller sends itself.
  const proof = await client.dpopProof('GET', `${p.apiBase}/self?q=1`);
  const own = await fetch(`${p.apiBase}/self?q=1`, { headers: { authorization: await client.authorizationHeader(), dpop: proof } });
  assert.equal(own.status, 200);
  assert.equal(p.tokenRequests().length, 2, 'one token for all of it');
  assert.ok(logs.some((l) => l.event === 'dpop_nonce'));
});

test('DPoP: a nonce asked for on a body that cannot be sent again is the caller\'s 401, and the token stays', async (t) => {
  const p = await popProvider(t, { tokenNonce: false });
  const { clientId, clientSecret } = p.dpopSecretClient;
  const client = new tg.TokenClient({ tokenUrl: p.tokenUrl, clientId, clientSecret, dpop: true });
  const stream = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('once')); c.close(); } });
  const res = await client.fetch(`${p.apiBase}/upload`, { method: 'POST', body: stream, duplex: 'half' });
  assert.equal(res.status, 401);
  assert.match(res.headers.get('www-authenticate'), /use_dpop_nonce/);
  // The nonce is kept and the token was not dropped: the next call is answered at once.
  assert.equal((await client.fetch(`${p.apiBase}/after`)).status, 200);
  assert.equal(p.tokenRequests().length, 1);
  assert.deepEqual(p.apiRequests().map((r) => r.status), [401, 200]);
});

test('DPoP with a configured key (JWK and key pair): the token is bound to that key; a new key is a new token', async (t) => {
  const p = await popProvider(t, { tokenNonce: false, apiNonce: false });
  const { clientId, clientSecret } = p.dpopSecretClient;
  const cache = new Map();
  const store = {
    get: async (k) => cache.get(k) ?? null, set: async (k, v) => { cache.set(k, v); }, delete: async (k) => { cache.delete(k); },
  };
  const key = keyPair('ES256');
  const a = new tg.TokenClient({ tokenUrl: p.tokenUrl, clientId, clientSecret, dpop: true, dpopKey: key.privateJwk }, { cache: store });
  const tok = await a.token();
  assert.equal(await p.tokenJkt(tok.accessToken), thumbprint(key.publicJwk));
  assert.equal((await a.fetch(`${p.apiBase}/x`)).status, 200);
  // The same key elsewhere shares the token through the cache; another key does not.
  const same = new tg.TokenClient({ tokenUrl: p.tokenUrl, clientId, clientSecret, dpop: true, dpopKey: key.privateJwk }, { cache: store });
  assert.equal((await same.token()).accessToken, tok.accessToken);
  const pair = await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const other = new tg.TokenClient({ tokenUrl: p.tokenUrl, clientId, clientSecret, dpop: true, dpopKey: pair }, { cache: store });
  const tok2 = await other.token();
  assert.notEqual(tok2.accessToken, tok.accessToken);
  const publicJwk = await crypto.webcrypto.subtle.exportKey('jwk', pair.publicKey);
  assert.equal(await p.tokenJkt(tok2.accessToken), thumbprint(publicJwk));
  assert.equal((await other.fetch(`${p.apiBase}/y`)).status, 200);
  // An RSA DPoP key from a PEM signs PS256.
  const rsa = keyPair('RS256');
  const r = new tg.TokenClient({ tokenUrl: p.tokenUrl, clientId, clientSecret, dpop: true, dpopKey: rsa.pem });
  const tok3 = await r.token();
  assert.equal(await p.tokenJkt(tok3.accessToken), thumbprint(rsa.publicJwk));
  assert.equal((await r.fetch(`${p.apiBase}/z`)).status, 200);
  assert.equal(p.tokenRequests().length, 3);
});

test('configuration errors name the key and never quote the key material', () => {
  const ec = keyPair('ES256');
  const base = { tokenUrl: 'https://idp.example/token', clientId: 'c', authStyle: 'private_key_jwt' };
  const cases = [
    [{ ...base, clientKey: ec.privateJwk, clientKeyAlg: 'RS256' }, 'clientKey', /is a EC key, which RS256 cannot use/],
    [{ ...base, clientKey: ec.pem, clientKeyAlg: 'PS256' }, 'clientKey', /is a EC key/],
    [{ ...base, clientKey: ec.publicJwk }, 'clientKey', /is a public key/],
    [{ ...base, clientKey: 'not a key' }, 'clientKey', /private JWK .* or a PKCS#8 PEM/],
    [{ ...base }, 'clientKey', /is required with authStyle private_key_jwt/],
    [{ ...base, clientKey: ec.privateJwk, clientKeyAlg: 'HS256' }, 'clientKeyAlg', /ES256, RS256 or PS256/],
    [{ ...base, clientKey: ec.privateJwk, clientSecret: 's' }, 'clientSecret', /sends no secret/],
    [{ ...base, authStyle: undefined, clientSecret: 's', clientKey: ec.privateJwk }, 'clientKey', /only with authStyle private_key_jwt/],
    [{ ...base, authStyle: undefined, clientSecret: 's', dpopKey: ec.privateJwk }, 'dpopKey', /only with dpop: true/],
    [{ ...base, authStyle: 'tls_client_auth', clientSecret: 's' }, 'clientSecret', /sends no secret/],
  ];
  for (const [config, key, message] of cases) {
    assert.throws(() => new tg.TokenClient(config), (e) => {
      assert.ok(e instanceof tg.TokenError, String(e));
      assert.equal(e.code, 'config');
      assert.ok(e.message.includes(`\`${key}\``), `${e.message} names ${key}`);
      assert.match(e.message, message);
      for (const secret of [ec.privateJwk.d, ec.pem.split('\n')[1]]) assert.ok(!e.message.includes(secret));
      return true;
    });
  }
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate for `clientId`, by openssl. */
function certificates(t, clientId) {
  assert.ok(fs.existsSync('/usr/bin/openssl'), 'openssl is missing: run .ci/setup-tools chromium (make setup-browser)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokengate-mtls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=tokengate test CA');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const [name, cn] of [['server', '127.0.0.1'], ['client', clientId]]) {
    run('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '1', ...(name === 'server' ? ['-extfile', 'san.ext'] : []));
  }
  const read = (f) => fs.readFileSync(path.join(dir, f));
  return { ca: read('ca.crt'), server: { key: read('server.key'), cert: read('server.crt') }, client: { key: read('client.key'), cert: read('client.crt') } };
}

test('tls_client_auth: a fetch that presents a client certificate (RFC 8705); without it, no token', async (t) => {
  const clientId = 'mtls-client';
  const certs = certificates(t, clientId);
  const seen = [];
  const server = https.createServer({ ...certs.server, ca: certs.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const cn = req.socket.getPeerCertificate().subject?.CN;
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
      seen.push({ path: req.url, cn, form, authorization: req.headers.authorization ?? null });
      res.setHeader('content-type', 'application/json');
      if (req.url === '/token') {
        // RFC 8705 §2.1.1: the client is the certificate's subject, and the form names it.
        if (form.client_id !== cn || form.client_secret !== undefined) {
          res.statusCode = 401;
          return res.end(JSON.stringify({ error: 'invalid_client' }));
        }
        return res.end(JSON.stringify({ access_token: `mtls-${seen.length}`, token_type: 'Bearer', expires_in: 600 }));
      }
      res.end(JSON.stringify({ cn, authorization: req.headers.authorization }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { server.close(r); server.closeAllConnections(); }));
  const base = `https://127.0.0.1:${server.address().port}`;
  const { Agent, fetch: undiciFetch } = await import('undici');
  const agent = new Agent({ connect: { ...certs.client, ca: certs.ca } });
  t.after(() => agent.close());
  const mtlsFetch = (input, init) => undiciFetch(input, { ...init, dispatcher: agent });
  const config = { tokenUrl: `${base}/token`, clientId, authStyle: 'tls_client_auth' };
  const client = new tg.TokenClient(config, { fetch: mtlsFetch });
  const tok = await client.token();
  assert.equal(tok.accessToken, 'mtls-1');
  assert.deepEqual(seen[0].form, { grant_type: 'client_credentials', client_id: clientId });
  assert.equal(seen[0].authorization, null, 'no secret in any form');
  const res = await client.fetch(`${base}/api/x`);
  assert.deepEqual(await res.json(), { cn: clientId, authorization: 'Bearer mtls-1' });
  // Without the certificate the handshake fails: a network TokenError, no token.
  const bare = new Agent({ connect: { ca: certs.ca } });
  t.after(() => bare.close());
  const noCert = new tg.TokenClient({ ...config, retry: { maxAttempts: 1 } }, { fetch: (i, o) => undiciFetch(i, { ...o, dispatcher: bare }) });
  await assert.rejects(noCert.token(), (e) => e instanceof tg.TokenError && e.code === 'network');
  assert.equal(seen.length, 2, 'the server saw nothing from the client without a certificate');
});
