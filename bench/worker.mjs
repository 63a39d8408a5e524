// The Worker benchmark: tokengate's cached proxy path, cold bursts and cold start, beside three
// baselines measured in the same run on the same machine, all in workerd (Miniflare) and
// calling the same local API (bench/api-server.mjs, its own process):
//
//   passthrough     bench/baseline/passthrough.js: adds a fixed provider bearer and forwards
//   rust forwarder  bench/baseline/rust-forwarder (`make bench-forwarder`): the same in Rust,
//                   built like the Worker (wasm-bindgen, web_sys types): the Rust floor
//   rust forwarder, worker-build
//                   the same behind the worker crate's #[event(fetch)], built by worker-build
//                   with its JavaScript entry, as the Worker is
//   hand-written    bench/baseline/handwritten.js: the gateway a competent user writes by hand
//   hand-written, tokengate's duties
//                   bench/baseline/handwritten-duties.js: the same with the platform work tokengate
//                   does on the cached path (deadline timer, response header copy, a log line):
//                   the control for what tokengate's rules cost in Rust
//   tokengate       build/ (`make worker`), as deployed, default configuration
//
// Only ratios within one run mean anything (the machine is shared and noisy); nothing here
// passes or fails on a number.
//
//   node bench/worker.mjs [--seconds 3] [--rounds 3] [--concurrency 1,16,64] [--burst 1000]
//                         [--burst-rounds 3] [--cold-rounds 3] [--build DIR]
//                         [--forwarder-build DIR] [--var NAME=VALUE]… [--json FILE]
//                         [--only NAME]…   (steady state: only these workers)
//                         [--compare DIR]  (steady state: also tokengate built in DIR, same rounds)

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { startProviders } from '../tests/support/emulators.mjs';
import {
  startGateway, issueCallerToken, DEPLOYED_BUILD_DIR, makeTempDir, removeDir, sha256Hex,
} from '../tests/support/gateway.mjs';
import { cpuMs, median, quantile, startChild, workerdPids } from './support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The Rust floor: bench/baseline/passthrough.js in Rust, built like the Worker. */
export const FORWARDER = 'rust forwarder';
export const FORWARDER_BUILD_DIR = path.join(here, 'baseline/rust-forwarder/build');
/** The same forwarder behind `#[event(fetch)]`, built by worker-build like the Worker. */
export const FORWARDER_WB = 'rust forwarder, worker-build';
export const FORWARDER_WB_BUILD_DIR = path.join(here, 'baseline/rust-forwarder/build-worker-build');
export const WORKERS = ['passthrough', FORWARDER, 'hand-written', 'tokengate'];
/** The hand-written gateway doing tokengate's platform work too (handwritten-duties.js). */
export const DUTIES = "hand-written, tokengate's duties";
/** The same without its log line (as tokengate with `log_level = "warn"`). */
export const DUTIES_NO_LOG = "hand-written, tokengate's duties, no log line";
/**
 * Steady state also measures tokengate with each of these configurations (name → extra vars):
 * the default writes one log line per proxied request; `log_level = "warn"` does not.
 */
export const TOKENGATE_VARIANTS = { 'tokengate, log_level=warn': { log_level: 'warn' } };
/**
 * tokengate again, called with a managed caller's token (created through the admin API): each
 * request is decided by the caller's authority object, one Durable Object round trip.
 */
export const MANAGED = 'tokengate, managed caller';
/** Every worker the steady state measures, in report order. */
export const STEADY = [WORKERS[0], WORKERS[1], FORWARDER_WB, WORKERS[2], DUTIES, DUTIES_NO_LOG,
  ...WORKERS.slice(3),
  ...Object.keys(TOKENGATE_VARIANTS), MANAGED];
/** The workers of the cold start. */
export const COLD = [WORKERS[0], WORKERS[1], FORWARDER_WB, ...WORKERS.slice(2)];
/** The gateways of the cold burst, each from a cold instance with no provider token anywhere. */
export const BURST = ['hand-written', DUTIES, 'tokengate'];
/** `--compare DIR`: tokengate built from DIR too, in the same rounds (an A/B of two builds). */
export const COMPARED = 'tokengate, compared build';
const isTokengate = (name) => name === 'tokengate' || name === MANAGED || name === COMPARED
  || name in TOKENGATE_VARIANTS;
const ADMIN_TOKEN = `bench-admin-${'x'.repeat(32)}`;
const CALLER_ID = 'bench';
const CALLER_SECRET = 'bench-secret';
const COMPAT_DATE = '2025-01-01';

/** Drains workerd's stdout/stderr without keeping it (log lines must not cost the bench). */
const discardStdio = (stdout, stderr) => { stdout.resume(); stderr.resume(); };

/**
 * The shared pieces: the provider emulator (token endpoint, in this process: one exchange per
 * fresh instance), the API server (own process) and a caller token for each gateway.
 */
export async function startFixture(buildDir, gatewayVars, forwarderBuildDir) {
  const providers = await startProviders();
  const api = await startChild('./api-server.mjs');
  const { providers: config, secrets } = providers.gatewayConfig();
  const optoro = { ...config.optoro, api_base: `${api.info.url}/` };
  const creds = providers.credentials.optoro;
  const fixture = {
    providers,
    api,
    creds,
    optoro,
    secrets,
    buildDir,
    gatewayVars,
    forwarderBuildDir,
    key: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64'),
    callerToken: null, // issued per KV storage by seedCallers
    handwrittenToken: `hw-${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url')}`,
    async close() {
      await api.close();
      await providers.close();
    },
  };
  return fixture;
}

/**
 * A fresh instance of one of the workers; `kvDir` shares KV between instances; `miniflare`:
 * extra Miniflare options (e.g. `inspectorPort`). Returns { url, close, pid } (pid: its workerd
 * process, for CPU accounting; undefined off Linux), and `gw` (tokengate) or `mf`.
 */
export async function startWorker(name, fx, kvDir, miniflare = {}) {
  const before = new Set(workerdPids());
  const w = await startWorkerProcess(name, fx, kvDir, miniflare);
  w.pid = workerdPids().find((p) => !before.has(p));
  return w;
}

async function startWorkerProcess(name, fx, kvDir, miniflare) {
  const api = fx.optoro.api_base;
  if (isTokengate(name)) {
    const gw = await startGateway({
      buildDir: name === COMPARED ? fx.compareBuild : fx.buildDir,
      providers: { optoro: fx.optoro },
      secrets: { ...fx.secrets, TOKENGATE_ADMIN_TOKEN: ADMIN_TOKEN },
      key: fx.key,
      clients: { [CALLER_ID]: { secret: CALLER_SECRET, scopes: ['optoro'] } },
      vars: { ...fx.gatewayVars, ...(TOKENGATE_VARIANTS[name] ?? {}) },
      kvPersist: kvDir,
      // The bench reads KV through the Worker only; the harness's KV proxy would add its own
      // set-up time to tokengate's cold start.
      kvProxy: false,
      miniflare: { handleRuntimeStdio: discardStdio, ...miniflare },
    });
    return { url: gw.url.replace(/\/$/, ''), gw, close: () => gw.close() };
  }
  const common = {
    modules: true,
    compatibilityDate: COMPAT_DATE,
    cf: false,
    host: '127.0.0.1',
    handleRuntimeStdio: discardStdio,
  };
  const handWritten = (script, extra = {}) => ({
    scriptPath: path.join(here, script),
    kvNamespaces: ['KV'],
    ...(kvDir ? { kvPersist: kvDir } : {}),
    bindings: {
      ...extra,
      API_BASE: api,
      TOKEN_URL: fx.optoro.token_url,
      CLIENT_ID: fx.creds.clientId,
      CLIENT_SECRET: fx.creds.clientSecret,
    },
  });
  // The passthrough and the two forwarders: a fixed provider bearer (env.TOKEN), fetched once
  // by the bench. A forwarder: the module `entry` of build directory `dir`, the wasm beside it.
  const forwarderBindings = { API_BASE: api, TOKEN: fx.passthroughToken };
  const forwarder = (dir, entry) => ({
    scriptPath: path.join(dir, entry),
    modulesRoot: dir,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    bindings: forwarderBindings,
  });
  const own = {
    passthrough: () => ({
      scriptPath: path.join(here, 'baseline/passthrough.js'),
      bindings: forwarderBindings,
    }),
    [FORWARDER]: () => forwarder(fx.forwarderBuildDir, 'shim.js'),
    [FORWARDER_WB]: () => forwarder(FORWARDER_WB_BUILD_DIR, 'index.js'),
    'hand-written': () => handWritten('baseline/handwritten.js'),
    [DUTIES]: () => handWritten('baseline/handwritten-duties.js'),
    [DUTIES_NO_LOG]: () => handWritten('baseline/handwritten-duties.js', { LOG: 'off' }),
  }[name]();
  const mf = new Miniflare({ ...common, ...own, ...miniflare });
  const url = (await mf.ready).href.replace(/\/$/, '');
  return { url, mf, close: () => mf.dispose() };
}

/** The Authorization header each worker's callers send. */
export function authFor(name, fx) {
  if (name === MANAGED) return `Bearer ${fx.managedToken}`;
  if (isTokengate(name)) return `Bearer ${fx.callerToken}`;
  if (name === 'hand-written' || name === DUTIES || name === DUTIES_NO_LOG) {
    return `Bearer ${fx.handwrittenToken}`;
  }
  return undefined;
}

/**
 * Gives each gateway's KV (in `kvDir`) a valid caller token without serving a request on the
 * instance that will be measured: tokengate issues one on a throw-away instance sharing the
 * storage (and key); the hand-written gateway's record is written straight into its KV.
 */
export async function seedCallers(fx, kvDir) {
  const gw = await startWorker('tokengate', fx, kvDir);
  try {
    fx.callerToken = await issueCallerToken(gw.gw, CALLER_ID, CALLER_SECRET);
  } finally {
    await gw.close();
  }
  const hw = await startWorker('hand-written', fx, kvDir);
  try {
    const kv = await hw.mf.getKVNamespace('KV');
    await kv.put(`caller:${sha256Hex(fx.handwrittenToken)}`, JSON.stringify({
      scopes: ['optoro'], exp: Date.now() + 3_600_000,
    }));
  } finally {
    await hw.close();
  }
}

/** A managed caller created on the instance at `url` (no limits, scope optoro), and its token. */
async function managedToken(url, fx) {
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  const created = await fetch(`${url}/admin/clients`, {
    method: 'POST', headers: admin, body: JSON.stringify({ name: 'bench', scopes: ['optoro'] }),
  });
  if (created.status !== 201) throw new Error(`managed caller: HTTP ${created.status}`);
  const c = await created.json();
  const tok = await fetch(`${url}/oauth/token`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: c.client_id, client_secret: c.client_secret }),
  });
  if (tok.status !== 200) throw new Error(`managed caller's token: HTTP ${tok.status}`);
  return (await tok.json()).access_token;
}

/** One HTTP GET over `agent`; resolves to [status, ms]. */
export function get(agent, url, auth) {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: auth ? { authorization: auth } : {} }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve([res.statusCode, performance.now() - t0]));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/**
 * Closed-loop load: `concurrency` clients, each sending its next request when one returns.
 * `cpuUs`: the workerd process's CPU time per request (µs), which the machine's other load
 * disturbs far less than throughput.
 */
export async function load(url, auth, concurrency, seconds, pid) {
  const cpu0 = pid ? cpuMs(pid) : null;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies = [];
  let ok = 0;
  let other = 0;
  const until = performance.now() + seconds * 1000;
  const client = async (i) => {
    let n = 0;
    while (performance.now() < until) {
      const [status, ms] = await get(agent, `${url}/optoro/v1/items/${i}-${n++}?page=1`, auth);
      latencies.push(ms);
      if (status === 200) ok++;
      else other++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, i) => client(i)));
  const elapsed = (performance.now() - start) / 1000;
  agent.destroy();
  const cpu1 = pid ? cpuMs(pid) : null;
  const cpuUs = cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) * 1000) / latencies.length : NaN;
  return { rps: ok / elapsed, latencies, other, cpuUs };
}

/**
 * Steady state: every worker warm (its first request exchanged or loaded the token), then for
 * each concurrency `rounds` interleaved rounds (the order rotates per round).
 */
async function steady(fx, opts) {
  const kvDir = makeTempDir('tokengate-bench-');
  const running = {};
  try {
    await seedCallers(fx, kvDir);
    const all = opts.compareBuild ? [...STEADY, COMPARED] : STEADY;
    const names = opts.only ? all.filter((n) => opts.only.includes(n) || n === COMPARED) : all;
    for (const name of names) running[name] = await startWorker(name, fx, kvDir);
    if (running[MANAGED]) fx.managedToken = await managedToken(running[MANAGED].url, fx);
    for (const name of names) {
      const [status] = await get(undefined, `${running[name].url}/optoro/warm`, authFor(name, fx));
      if (status !== 200) throw new Error(`${name}: warm-up got HTTP ${status}`);
    }
    const results = [];
    for (const c of opts.concurrency) {
      const acc = Object.fromEntries(names.map((n) => [n, { rps: [], cpu: [], latencies: [], other: 0 }]));
      for (let r = 0; r < opts.rounds; r++) {
        const order = names.map((_, i) => names[(i + r) % names.length]);
        for (const name of order) {
          const w = running[name];
          const res = await load(w.url, authFor(name, fx), c, opts.seconds, w.pid);
          acc[name].rps.push(res.rps);
          acc[name].cpu.push(res.cpuUs);
          for (const ms of res.latencies) acc[name].latencies.push(ms);
          acc[name].other += res.other;
        }
      }
      for (const name of names) {
        const a = acc[name];
        results.push({
          worker: name,
          concurrency: c,
          rps: median(a.rps),
          rpsRounds: a.rps,
          cpuUs: median(a.cpu),
          p50: quantile(a.latencies, 0.5),
          p99: quantile(a.latencies, 0.99),
          requests: a.latencies.length,
          non200: a.other,
          latencies: c === opts.plotConcurrency ? a.latencies : undefined,
        });
      }
    }
    return results;
  } finally {
    for (const w of Object.values(running)) await w.close();
    removeDir(kvDir);
  }
}

/**
 * Cold burst: `n` concurrent requests to a fresh instance (nothing served yet, no provider
 * token anywhere) of each gateway; total time until the last response, and the exchanges the
 * provider saw.
 */
async function burst(fx, opts) {
  const rows = [];
  for (let r = 0; r < opts.burstRounds; r++) {
    for (const name of BURST) {
      const kvDir = makeTempDir('tokengate-burst-');
      try {
        await seedCallers(fx, kvDir);
        const w = await startWorker(name, fx, kvDir);
        try {
          const before = fx.providers.exchanges('optoro');
          const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
          const auth = authFor(name, fx);
          const t0 = performance.now();
          const res = await Promise.all(Array.from(
            { length: opts.burst },
            (_, i) => get(agent, `${w.url}/optoro/v1/items/${i}`, auth),
          ));
          const ms = performance.now() - t0;
          agent.destroy();
          rows.push({
            worker: name,
            ms,
            ok: res.filter(([s]) => s === 200).length,
            exchanges: fx.providers.exchanges('optoro') - before,
          });
        } finally {
          await w.close();
        }
      } finally {
        removeDir(kvDir);
      }
    }
  }
  return rows;
}

/**
 * Cold start: from `new Miniflare(...)` (workerd starting, the Worker loading) to the end of the
 * first proxied response, which also fetches the provider token (an exchange for the
 * gateways). Split into "ready" (workerd listening) and "first response".
 */
async function coldStart(fx, opts) {
  const rows = [];
  for (let r = 0; r < opts.coldRounds; r++) {
    for (const name of COLD) {
      const kvDir = makeTempDir('tokengate-cold-');
      try {
        await seedCallers(fx, kvDir);
        const t0 = performance.now();
        const w = await startWorker(name, fx, kvDir);
        const ready = performance.now() - t0;
        try {
          const [status] = await get(undefined, `${w.url}/optoro/first`, authFor(name, fx));
          const total = performance.now() - t0;
          if (status !== 200) throw new Error(`${name}: first request got HTTP ${status}`);
          rows.push({ worker: name, ready, total });
        } finally {
          await w.close();
        }
      } finally {
        removeDir(kvDir);
      }
    }
  }
  return rows;
}

/** Runs the whole Worker benchmark; returns plain data (see bench/run.mjs for the report). */
export async function runWorkerBench(opts) {
  const forwarderBuild = opts.forwarderBuild ?? FORWARDER_BUILD_DIR;
  if (!fs.existsSync(path.join(forwarderBuild, 'shim.js'))) {
    throw new Error(`${forwarderBuild}/shim.js not found: build the Rust forwarder first (make bench-forwarder)`);
  }
  if (!fs.existsSync(path.join(FORWARDER_WB_BUILD_DIR, 'index.js'))) {
    throw new Error(`${FORWARDER_WB_BUILD_DIR}/index.js not found: make bench-forwarder`);
  }
  const fx = await startFixture(opts.build, opts.gatewayVars, forwarderBuild);
  fx.compareBuild = opts.compareBuild;
  try {
    // The passthrough's fixed token, straight from the provider (not counted for the gateways).
    const res = await fetch(fx.optoro.token_url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({
        grant_type: 'client_credentials', client_id: fx.creds.clientId, client_secret: fx.creds.clientSecret,
      }),
    });
    fx.passthroughToken = (await res.json()).access_token;
    const log = opts.log ?? (() => {});
    log('steady state…');
    const steadyRows = await steady(fx, opts);
    log('cold bursts…');
    const burstRows = await burst(fx, opts);
    log('cold starts…');
    const coldRows = await coldStart(fx, opts);
    const apiCounts = await fx.api.call('counts');
    return { steady: steadyRows, burst: burstRows, cold: coldRows, apiCounts };
  } finally {
    await fx.close();
  }
}

export const DEFAULTS = {
  seconds: 3,
  rounds: 5,
  concurrency: [1, 16, 64],
  plotConcurrency: 16,
  burst: 1000,
  burstRounds: 3,
  coldRounds: 3,
  build: DEPLOYED_BUILD_DIR,
  forwarderBuild: FORWARDER_BUILD_DIR,
};

/** Command-line options shared with bench/run.mjs. */
export function parseWorkerArgs(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: String(DEFAULTS.seconds) },
      rounds: { type: 'string', default: String(DEFAULTS.rounds) },
      concurrency: { type: 'string', default: DEFAULTS.concurrency.join(',') },
      burst: { type: 'string', default: String(DEFAULTS.burst) },
      'burst-rounds': { type: 'string', default: String(DEFAULTS.burstRounds) },
      'cold-rounds': { type: 'string', default: String(DEFAULTS.coldRounds) },
      build: { type: 'string', default: DEFAULTS.build },
      'forwarder-build': { type: 'string', default: DEFAULTS.forwarderBuild },
      var: { type: 'string', multiple: true, default: [] },
      json: { type: 'string' },
      only: { type: 'string', multiple: true },
      compare: { type: 'string' },
    },
  });
  const int = (k, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k} must be a positive number`);
    return n;
  };
  const concurrency = values.concurrency.split(',').map((c) => int('concurrency', c));
  const gatewayVars = {};
  for (const kv of values.var) {
    const i = kv.indexOf('=');
    if (i < 1) throw new Error(`--var takes NAME=VALUE, got ${kv}`);
    gatewayVars[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return {
    seconds: int('seconds', values.seconds),
    rounds: int('rounds', values.rounds),
    concurrency,
    plotConcurrency: concurrency.includes(DEFAULTS.plotConcurrency) ? DEFAULTS.plotConcurrency : concurrency[0],
    burst: int('burst', values.burst),
    burstRounds: int('burst-rounds', values['burst-rounds']),
    coldRounds: int('cold-rounds', values['cold-rounds']),
    build: path.resolve(values.build),
    forwarderBuild: path.resolve(values['forwarder-build']),
    gatewayVars,
    json: values.json,
    only: values.only?.length ? values.only : undefined,
    compareBuild: values.compare ? path.resolve(values.compare) : undefined,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const opts = parseWorkerArgs(process.argv.slice(2));
  const data = await runWorkerBench({ ...opts, log: (m) => console.error(m) });
  for (const r of data.steady) {
    console.log(`${r.worker.padEnd(25)} c=${String(r.concurrency).padStart(3)} ${r.rps.toFixed(0).padStart(6)} req/s ` +
      `p50 ${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms cpu ${r.cpuUs.toFixed(0)} µs/req non-200 ${r.non200}`);
  }
  for (const r of data.burst) {
    console.log(`burst ${r.worker.padEnd(14)} ${r.ms.toFixed(0)} ms, ${r.ok} ok, ${r.exchanges} exchange(s)`);
  }
  for (const r of data.cold) {
    console.log(`cold  ${r.worker.padEnd(14)} ready ${r.ready.toFixed(0)} ms, first response ${r.total.toFixed(0)} ms`);
  }
  if (opts.json) {
    fs.writeFileSync(opts.json, JSON.stringify(data, (k, v) => (k === 'latencies' ? undefined : v), 2));
  }
}
