// Shared harness of the Worker tests (tests/worker*.test.mjs): the real Worker (`make worker` →
// build/) in workerd through Miniflare, against the provider emulators and oidc-provider. One
// clock per test file drives the emulators and every gateway; tests only ever move it forward.
// Every response body and log line is collected for the secret sweep that ends each file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { startProviders } from './support/emulators.mjs';
import { startGateway, makeClock, makeTempDir, removeDir } from './support/gateway.mjs';

export const rand = (n = 12) => crypto.randomBytes(n).toString('base64url');
export const clock = makeClock();
export const FAST_RETRY = { max_attempts: 4, base_delay_ms: 1, max_delay_ms: 20 };
export const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json' };
export const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
export const PTOK = 'tg:v2:ptok:';
export const CTOK = 'tg:v2:ctok:';

// Everything the final sweep looks at, and everything it looks for.
export const sweep = { bodies: [], headers: [], logs: [], secrets: new Set(), providerTokens: new Set(), callerTokens: new Set() };

/** The default caller: may call every emulated provider. */
export const ALL = { id: 'svc-all', secret: `caller-${rand()}+/:%& "x`, scopes: ['optoro', 'optimum', 'partner'] };

/** Provider emulators on this file's clock. */
export const startEmulators = () => startProviders({ clock });

/** Records a response for the sweep: its body, and its headers as one more text to search. */
function recordBody(where, status, text, headers) {
  sweep.bodies.push({ where, status, text });
  if (headers) sweep.headers.push({ where, status, text: JSON.stringify(headers) });
  if (where.endsWith('/oauth/token') && status === 200) {
    try { sweep.callerTokens.add(JSON.parse(text).access_token); } catch { /* not JSON */ }
  }
}

/** Registers `fn` to run when test `t` ends; the last registered runs first (gateways close before their KV dir goes). */
const stacks = new WeakMap();
export function defer(t, fn) {
  if (!stacks.has(t)) {
    const stack = [];
    stacks.set(t, stack);
    t.after(async () => { while (stack.length) await stack.pop()(); });
  }
  stacks.get(t).push(fn);
}

/** A temporary KV directory, removed when the test ends. */
export function tempDir(t) {
  const dir = makeTempDir();
  defer(t, () => removeDir(dir));
  return dir;
}

/**
 * Starts a gateway (clock, key and the default caller filled in), records every response body
 * and, when the test ends, every log line; the test's after-hook closes it.
 */
export async function start(t, opts = {}) {
  const key = opts.key ?? crypto.randomBytes(32).toString('base64');
  sweep.secrets.add(key);
  const clients = opts.clients ?? { [ALL.id]: { secret: ALL.secret, scopes: ALL.scopes } };
  for (const c of Object.values(clients)) if (c.secret) sweep.secrets.add(c.secret);
  for (const v of Object.values(opts.secrets ?? {})) sweep.secrets.add(v);
  const gw = await startGateway({ clock, ...opts, key, clients });
  const dispatch = gw.fetch;
  const recorded = (send) => async (p, init) => {
    const res = await send(p, init);
    recordBody(p, res.status, await res.clone().text(), [...res.headers]);
    return res;
  };
  gw.fetch = recorded(dispatch);
  gw.fetchHttp = recorded(gw.fetchHttp);
  defer(t, async () => {
    await gw.settleLogs(30);
    sweep.logs.push(...gw.logs);
    await gw.close();
  });
  return gw;
}

/** POST /oauth/token with Optoro's JSON body (docs/providers.md#optoro-token-request); returns the access token. */
export async function callerToken(gw, id = ALL.id, secret = ALL.secret) {
  const res = await gw.fetch('/oauth/token', {
    method: 'POST', headers: JSON_HEADERS,
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: id, client_secret: secret }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

// Caller tokens (src/credentials.rs): `tgt_`, the 32 random bytes as two 22-digit base62
// numbers, the 16-byte tag as one, then 6 base62 digits of the CRC-32 (IEEE) of everything
// before. Node 20 has no zlib.crc32, so the CRC is computed here, bit by bit.
export const TOKEN_RE = /^tgt_[0-9A-Za-z]{72}$/;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** The CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of `text`'s UTF-8 bytes. */
export function crc32(text) {
  let c = 0xffffffff;
  for (const b of Buffer.from(text, 'utf8')) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** `n` (a BigInt) as exactly `width` base62 digits, most significant first. */
function base62(n, width) {
  let out = '';
  for (let i = 0; i < width; i++) { out = BASE62[Number(n % 62n)] + out; n /= 62n; }
  assert.equal(n, 0n, `${width} base62 digits`);
  return out;
}

/** `body` (a credential without its last 6 characters) with its checksum appended. */
export const withChecksum = (body) => body + base62(BigInt(crc32(body)), 6);

/** A caller token of the right shape and checksum that no gateway issued: only its tag is wrong. */
export function wellFormedToken() {
  const u128 = () => base62(BigInt(`0x${crypto.randomBytes(16).toString('hex')}`), 22);
  return withChecksum(`tgt_${u128()}${u128()}${u128()}`);
}

/** A proxied call with a caller token; returns { res, status, text, json, timing }. */
export async function call(gw, tok, path, init = {}) {
  const res = await gw.fetch(path, { ...init, headers: { authorization: `Bearer ${tok}`, ...(init.headers ?? {}) } });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { res, status: res.status, text, json, timing: res.headers.get('server-timing') };
}

/** A request over a real socket with the path sent byte for byte (no client-side normalising). */
export function raw(gw, { method = 'GET', path, headers = {}, body }) {
  const u = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        recordBody(path, res.statusCode, text, res.headers);
        resolve({ status: res.statusCode, headers: res.headers, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (typeof body === 'function') body(req); else req.end(body);
  });
}

/**
 * Polls `fn` (sync or async) every 50 ms until it returns a truthy value, which it resolves
 * with; throws after `ms`. For what the Worker does after its response (statistics travel
 * within about a second).
 */
export async function eventually(fn, ms = 5000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error('eventually: condition not met');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const source = (timing) => /token;desc="(\w+)"/.exec(timing ?? '')?.[1];
export const ptokKeys = async (gw) => (await gw.kv.list({ prefix: PTOK })).keys.map((k) => k.name);

/**
 * Registers the file's last test: no provider client secret, caller secret, provider access
 * token or issued caller token in any response body, response header or log line the file's
 * tests collected.
 */
export function sweepTest(getEmu, { minBodies = 10, minLogs = 10 } = {}) {
  test('no secret or token in any response body, response header or log line', () => {
    const emu = getEmu();
    for (const p of ['optoro', 'optimum', 'partner']) {
      sweep.secrets.add(emu.credentials[p].clientSecret);
      for (const tok of emu.issuedTokens(p)) sweep.providerTokens.add(tok);
    }
    sweep.secrets.add(ALL.secret);
    const needles = [
      ...[...sweep.secrets].map((v) => ['secret', v]),
      ...[...sweep.providerTokens].map((v) => ['provider token', v]),
      ...[...sweep.callerTokens].map((v) => ['caller token', v]),
    ].filter(([, v]) => typeof v === 'string' && v.length >= 8)
      // also as it would appear JSON-escaped, form-encoded or base64-encoded
      .flatMap(([kind, v]) => [...new Set([v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v),
        new URLSearchParams({ v }).toString().slice(2), Buffer.from(v).toString('base64')])].map((form) => [kind, form, v]));
    const redact = (text) => needles.reduce((acc, [, form]) => acc.split(form).join('<redacted>'), text);
    assert.ok(sweep.bodies.length >= minBodies && sweep.logs.length >= minLogs, 'the sweep saw the suite');
    assert.ok(sweep.callerTokens.size > 0);
    const leaks = [];
    for (const { where, status, text } of sweep.bodies) {
      let hay = text;
      let own = null;
      try {
        const j = JSON.parse(text);
        if (where.endsWith('/oauth/token') && status === 200) own = j.access_token; // the token it issues
        if (j && typeof j.headers === 'object' && 'method' in j) { // an emulator echo: the bearer it received
          delete j.headers.authorization;
          hay = JSON.stringify(j);
        }
      } catch { /* not JSON */ }
      for (const [kind, form, v] of needles) {
        if (v !== own && hay.includes(form)) leaks.push(`${kind} in the ${status} body of ${redact(where)}`);
      }
    }
    assert.ok(sweep.headers.length >= minBodies, 'the sweep saw the response headers');
    for (const { where, status, text } of sweep.headers) {
      for (const [kind, form] of needles) {
        if (text.includes(form)) leaks.push(`${kind} in the headers of the ${status} response to ${redact(where)}`);
      }
    }
    for (const line of sweep.logs) {
      for (const [kind, form] of needles) if (line.includes(form)) leaks.push(`${kind} in log line ${redact(line).slice(0, 200)}`);
    }
    assert.deepEqual(leaks, []);
  });
}
