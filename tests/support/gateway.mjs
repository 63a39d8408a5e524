// Miniflare 4 harness for the built tokengate Worker, running in workerd. The suites run the
// test build (`make worker-test` → build-test/: the deployed code plus feature `test-clock`,
// which lets them set the time through the TOKENGATE_CLOCK service binding); the deployed build
// is build/ (`make worker`).
//
// Log capture: Miniflare spawns workerd and hands its stdout/stderr to `handleRuntimeStdio`;
// every console.log / console.error of the Worker (and a Rust panic message) arrives there as a
// line of text. Lines are collected, ANSI-stripped, into `gw.logs`. Miniflare's own warnings and
// errors (e.g. a failed module load) go through a capturing `Log` into the same array, prefixed
// "[mf:". Output arrives asynchronously: use `gw.waitForLog` / `gw.settleLogs` before asserting.
//
// KV persistence: `kvPersist: <dir>` makes Miniflare keep the TOKENGATE_KV namespace in
// `<dir>` (SQLite + blob files). Two instances given the same dir see the same data, also while
// both run (verified with Miniflare 4.20260426.0), so "fresh instance on the same storage" is
// `startGateway({..., kvPersist: dir})` twice. Without it each instance has private storage.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { Miniflare, Log, LogLevel } from 'miniflare';

/** Repository root (two levels above this file). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The test build of the Worker (`make worker-test`). */
export const BUILD_DIR = path.join(REPO_ROOT, 'build-test');
/** The Worker as deployed (`make worker`). */
export const DEPLOYED_BUILD_DIR = path.join(REPO_ROOT, 'build');

/** Hex SHA-256 of a UTF-8 string. */
export function sha256Hex(s) {
  return crypto.createHash('sha256').update(s, 'utf8').digest('hex');
}

/**
 * An injectable clock for the Worker's TOKENGATE_CLOCK service binding (and the emulators).
 * now() → integer ms since epoch; advance(ms); set(ms); reads → how often the Worker asked.
 */
export function makeClock(startMs = Date.now()) {
  let t = Math.floor(startMs);
  const clock = {
    reads: 0,
    now: () => t,
    advance: (ms) => { t += Math.floor(ms); return t; },
    set: (ms) => { t = Math.floor(ms); return t; },
  };
  return clock;
}

/**
 * Builds the TOKENGATE_CLIENTS JSON string. Each entry is passed through, except that a plain
 * `secret` is replaced by its `secret_sha256`; `token_ttl_s` defaults to 3600.
 * e.g. clientsJson({ 'svc-a': { secret: 's3cret', scopes: ['optoro'] } })
 */
export function clientsJson(clients) {
  if (typeof clients === 'string') return clients;
  const out = {};
  for (const [id, c] of Object.entries(clients ?? {})) {
    const { secret, ...rest } = c;
    out[id] = { token_ttl_s: 3600, ...rest };
    if (secret !== undefined && rest.secret_sha256 === undefined) out[id].secret_sha256 = sha256Hex(secret);
  }
  return JSON.stringify(out);
}

/** A free TCP port on 127.0.0.1 (listened on and released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A fresh temporary directory (for kvPersist); the caller removes it with `removeDir`. */
export function makeTempDir(prefix = 'tokengate-kv-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Removes a directory tree, ignoring errors. */
export function removeDir(dir) {
  try { fs.rmSync(dir, { recursive: true, force: true }); } catch { /* ignore */ }
}

// Splits a byte stream into lines, calling `push(line)` for each complete (and the final) line.
function lineSplitter(stream, push) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) !== -1) {
      push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => { if (buf) push(buf); buf = ''; });
}

class CaptureLog extends Log {
  constructor(sink) { super(LogLevel.WARN, { prefix: 'mf' }); this.sink = sink; }
  log(message) { this.sink(message); }
}

/**
 * Starts the built Worker in Miniflare.
 * opts: {
 *   providers   TOKENGATE_PROVIDERS (object → JSON var binding; a string is passed as text)
 *   clients     TOKENGATE_CLIENTS (object, see clientsJson, or a JSON string)
 *   secrets     { NAME: value } provider client secrets (Worker secrets)
 *   key         TOKENGATE_KEY (base64 of 32 bytes; default: random)
 *   vars        extra bindings, applied last; a null/undefined value removes a binding
 *   kvPersist   directory for TOKENGATE_KV storage, to share it between instances
 *   doPersist   directory for Durable Object storage (the caller authority, the minter)
 *   limiter     false: leave TOKENGATE_LIMITER unbound (default: bound to CallerAuthority)
 *   minter      true: bind TOKENGATE_MINTER to TokenMinter; 'isolate': the minter runs in a
 *               second copy of the Worker (its own isolate, as it may in production), bound to
 *               the same KV namespace and the first copy's caller authority
 *   kvProxy     false: no `kv` handle (Miniflare's KV proxy, ~0.2 s to set up, is not started)
 *   clock       { now() } → service binding TOKENGATE_CLOCK answering GET /now with ms as text
 *   assets      a wrangler file (e.g. 'wrangler.demo.toml'): its [assets] (the console at /ui/,
 *               from build-console/: `make console`), routed as wrangler routes them — wrangler's
 *               own translation of the file into Miniflare options (`run_worker_first` included)
 *   buildDir    default <repo>/build-test; scriptPath default <buildDir>/index.js
 *   miniflare   extra Miniflare options (merged last)
 * }
 * Returns { fetch(path, init), kv, logs, jsonLogs(), waitForLog(pred, ms), settleLogs(ms), mf, url, close }.
 */
export async function startGateway(opts = {}) {
  const buildDir = opts.buildDir ?? BUILD_DIR;
  const scriptPath = opts.scriptPath ?? path.join(buildDir, 'index.js');
  if (!fs.existsSync(scriptPath)) {
    throw new Error(`${scriptPath} not found: build the Worker first (make worker worker-test)`);
  }

  const logs = [];
  const push = (line) => logs.push(stripVTControlCharacters(line).replace(/\r$/, ''));

  const bindings = {
    TOKENGATE_PROVIDERS: opts.providers ?? {},
    TOKENGATE_CLIENTS: clientsJson(opts.clients ?? {}),
    TOKENGATE_KEY: opts.key ?? crypto.randomBytes(32).toString('base64'),
    ...(opts.secrets ?? {}),
    ...(opts.vars ?? {}),
  };
  for (const [k, v] of Object.entries(bindings)) if (v === undefined || v === null) delete bindings[k];

  const clock = opts.clock;
  const serviceBindings = {};
  if (clock) {
    serviceBindings.TOKENGATE_CLOCK = async () => {
      clock.reads = (clock.reads ?? 0) + 1;
      return new Response(String(Math.floor(clock.now())), { headers: { 'content-type': 'text/plain' } });
    };
  }

  let assets = {};
  if (opts.assets) {
    const { unstable_getMiniflareWorkerOptions } = await import('wrangler');
    const { workerOptions } = unstable_getMiniflareWorkerOptions(path.resolve(REPO_ROOT, opts.assets));
    if (!workerOptions.assets || !fs.existsSync(path.join(workerOptions.assets.directory, 'ui/index.html'))) {
      throw new Error(`${opts.assets}: no [assets], or its directory is not built (make console)`);
    }
    assets = { assets: workerOptions.assets };
  }

  const script = {
    modules: true,
    scriptPath,
    modulesRoot: buildDir,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: opts.compatibilityDate ?? '2025-01-01',
    compatibilityFlags: opts.compatibilityFlags ?? [],
    kvNamespaces: { TOKENGATE_KV: 'TOKENGATE_KV' },
    bindings,
    serviceBindings,
  };
  const shared = {
    ...(opts.kvPersist ? { kvPersist: opts.kvPersist } : {}),
    ...(opts.doPersist ? { durableObjectsPersist: opts.doPersist } : {}),
    cf: false,
    host: '127.0.0.1',
    log: new CaptureLog(push),
    handleRuntimeStdio(stdout, stderr) {
      lineSplitter(stdout, push);
      lineSplitter(stderr, push);
    },
  };
  const mf = new Miniflare(opts.minter === 'isolate'
    ? {
      ...shared,
      workers: [
        {
          name: 'gateway',
          ...script,
          durableObjects: {
            TOKENGATE_LIMITER: 'CallerAuthority',
            TOKENGATE_MINTER: { className: 'TokenMinter', scriptName: 'minter' },
          },
          ...assets,
        },
        {
          name: 'minter',
          ...script,
          durableObjects: {
            TOKENGATE_LIMITER: { className: 'CallerAuthority', scriptName: 'gateway' },
            TOKENGATE_MINTER: 'TokenMinter',
          },
        },
      ],
      ...(opts.miniflare ?? {}),
    }
    : {
      ...script,
      // The caller authority (required) and, when a test asks, the minter.
      durableObjects: {
        ...(opts.limiter === false ? {} : { TOKENGATE_LIMITER: 'CallerAuthority' }),
        ...(opts.minter ? { TOKENGATE_MINTER: 'TokenMinter' } : {}),
      },
      ...assets,
      ...shared,
      ...(opts.miniflare ?? {}),
    });
  let url;
  try {
    url = await mf.ready;
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw err;
  }
  // Miniflare's proxy to the KV namespace takes ~0.2 s to set up: only for callers that use it
  // (the benchmark's cold start measures the Worker, not the harness).
  const kv = opts.kvProxy === false ? null : await mf.getKVNamespace('TOKENGATE_KV');

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  return {
    /** Dispatches a request to the Worker: fetch('/oauth/token', { method: 'POST', ... }). */
    fetch: (p, init) => mf.dispatchFetch(`https://gateway.test${p}`, init),
    /** The same over plain http (the token endpoint refuses that from anywhere but 127.0.0.1). */
    fetchHttp: (p, init) => mf.dispatchFetch(`http://gateway.test${p}`, init),
    /** The TOKENGATE_KV namespace (get/put/list/delete) from Node. */
    kv,
    /** Captured log lines (Worker stdout/stderr and Miniflare warnings), oldest first. */
    logs,
    /** Captured lines that parse as JSON objects. */
    jsonLogs: () => logs.flatMap((l) => {
      try { const v = JSON.parse(l); return v && typeof v === 'object' ? [v] : []; } catch { return []; }
    }),
    /** Resolves with the first line matching `pred` (a function or substring); rejects after `ms`. */
    waitForLog: async (pred, ms = 2000) => {
      const test = typeof pred === 'function' ? pred : (l) => l.includes(pred);
      const until = Date.now() + ms;
      for (;;) {
        const hit = logs.find(test);
        if (hit !== undefined) return hit;
        if (Date.now() > until) throw new Error('waitForLog: no matching log line');
        await sleep(10);
      }
    },
    /** Waits until no new line has arrived for `quietMs` (at most 2 s). */
    settleLogs: async (quietMs = 100) => {
      const until = Date.now() + 2000;
      let n = -1;
      while (n !== logs.length && Date.now() < until) { n = logs.length; await sleep(quietMs); }
    },
    mf,
    /** The URL Miniflare listens on (127.0.0.1), for clients that need a real socket. */
    url: url.href.replace(/\/$/, ''),
    /** Disposes Miniflare (stops workerd). */
    close: () => mf.dispose(),
  };
}

/**
 * POSTs Optoro's JSON token-request body (docs/providers.md#optoro-token-request) to the
 * gateway's /oauth/token and returns the access_token.
 * Throws (status and the gateway's error code, never the secret) on any other answer.
 */
export async function issueCallerToken(gw, clientId, secret) {
  const res = await gw.fetch('/oauth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }),
  });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  if (res.status !== 200 || typeof body?.access_token !== 'string') {
    throw new Error(`issueCallerToken: HTTP ${res.status} ${body?.error ?? body?.message ?? text.slice(0, 200)}`);
  }
  return body.access_token;
}
