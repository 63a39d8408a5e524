// Several instances of the built Worker in one workerd (Miniflare's `workers` option): each
// instance is its own isolate with its own memory, all share one KV namespace and one Durable
// Object namespace (the minter class lives in the first instance; the others bind it by script
// name), so every instance talks to the same minter object of a cache key — as isolates in many
// locations do in production. Reach instance i at https://w<i>.test/… (its route).
//
// opts: as startGateway's (providers, clients, secrets, key, vars, clock, buildDir), plus
//   n                  the number of instances (default 4)
//   minter             bind TOKENGATE_MINTER (default true)
//   kvPersist, doPersist  directories, to restart the fleet on the same storage
// Returns { fetch(i, path, init), kv, logs, jsonLogs(), settleLogs(ms), close }.

import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { stripVTControlCharacters } from 'node:util';
import { Miniflare, Log, LogLevel } from 'miniflare';
import { BUILD_DIR, clientsJson } from './gateway.mjs';

class CaptureLog extends Log {
  constructor(sink) { super(LogLevel.WARN, { prefix: 'mf' }); this.sink = sink; }
  log(message) { this.sink(message); }
}

function lines(stream, push) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) !== -1) { push(buf.slice(0, i)); buf = buf.slice(i + 1); }
  });
  stream.on('end', () => { if (buf) push(buf); buf = ''; });
}

export async function startFleet(opts = {}) {
  const n = opts.n ?? 4;
  const buildDir = opts.buildDir ?? BUILD_DIR;
  const scriptPath = path.join(buildDir, 'index.js');
  if (!fs.existsSync(scriptPath)) throw new Error(`${scriptPath} not found: make worker-test first`);
  const logs = [];
  const push = (line) => logs.push(stripVTControlCharacters(line).replace(/\r$/, ''));
  const bindings = {
    TOKENGATE_PROVIDERS: opts.providers ?? {},
    TOKENGATE_CLIENTS: clientsJson(opts.clients ?? {}),
    TOKENGATE_KEY: opts.key ?? crypto.randomBytes(32).toString('base64'),
    ...(opts.secrets ?? {}),
    ...(opts.vars ?? {}),
  };
  const clock = opts.clock;
  const serviceBindings = clock ? {
    TOKENGATE_CLOCK: async () => {
      clock.reads = (clock.reads ?? 0) + 1;
      return new Response(String(Math.floor(clock.now())));
    },
  } : {};
  const minter = opts.minter ?? true;
  const workers = Array.from({ length: n }, (_, i) => ({
    name: `w${i}`,
    modules: true,
    scriptPath,
    modulesRoot: buildDir,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js', '**/*.mjs'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: '2025-01-01',
    routes: [`w${i}.test/*`],
    kvNamespaces: { TOKENGATE_KV: 'tokengate-kv' },
    durableObjects: {
      TOKENGATE_LIMITER: i === 0 ? 'CallerAuthority' : { className: 'CallerAuthority', scriptName: 'w0' },
      ...(minter ? {
        TOKENGATE_MINTER: i === 0 ? 'TokenMinter' : { className: 'TokenMinter', scriptName: 'w0' },
      } : {}),
    },
    bindings,
    serviceBindings,
  }));
  const mf = new Miniflare({
    workers,
    ...(opts.kvPersist ? { kvPersist: opts.kvPersist } : {}),
    ...(opts.doPersist ? { durableObjectsPersist: opts.doPersist } : {}),
    cf: false,
    host: '127.0.0.1',
    log: new CaptureLog(push),
    handleRuntimeStdio(stdout, stderr) { lines(stdout, push); lines(stderr, push); },
  });
  try {
    await mf.ready;
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw err;
  }
  const kv = await mf.getKVNamespace('TOKENGATE_KV', 'w0');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let closed = null;
  return {
    n,
    /** A request to instance `i` (0 … n−1). */
    fetch: (i, p, init) => mf.dispatchFetch(`https://w${i}.test${p}`, init),
    kv,
    logs,
    jsonLogs: () => logs.flatMap((l) => {
      try { const v = JSON.parse(l); return v && typeof v === 'object' ? [v] : []; } catch { return []; }
    }),
    settleLogs: async (quietMs = 100) => {
      const until = Date.now() + 2000;
      let m = -1;
      while (m !== logs.length && Date.now() < until) { m = logs.length; await sleep(quietMs); }
    },
    mf,
    /** Stops every instance (once, however often it is called). */
    close: () => (closed ??= mf.dispose()),
  };
}
