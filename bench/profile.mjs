// `make bench-profile`: where tokengate's CPU goes on the cached proxy path. Starts the Worker
// in workerd (Miniflare) exactly as bench/worker.mjs does for its "tokengate" row — default
// configuration (one log line per request), a static caller, the same provider emulator and API
// server, the same request (GET /optoro/v1/items/<client>-<n>?page=1) from 16 concurrent
// keep-alive clients — with workerd's V8 inspector on a free port of 127.0.0.1, and samples it
// with V8's CPU profiler over the Chrome DevTools protocol (Profiler.enable,
// Profiler.setSamplingInterval, Profiler.start … Profiler.stop; the `ws` package, since Node 20
// has no global WebSocket). The profile becomes tables of the hottest functions by self and by
// total time, and the split between WebAssembly, the JavaScript glue, the runtime's own APIs,
// garbage collection and idle time.
//
// Function names. The deployed wasm has no `name` section (`strip = true`), so V8 would call
// its functions `wasm-function[N]`. `make worker-profile` builds build-profile/: the deployed
// wasm byte for byte plus the names (bench/wasm-names.mjs says how), and the JavaScript glue
// unminified. This script checks that build-profile/'s code is build/'s before it reports, and
// prints Rust names demangled, without their hashes.
//
// How samples are weighed. On this shared 2-core machine the profiler's sampling thread is
// often not scheduled for a millisecond or more; DevTools would charge each such gap to
// whichever function was sampled last. Here every sample counts once, so a function's share is
// its share of the samples; "ms" is that share of the CPU time the workerd process used while
// the profiler ran (from /proc, as the bench's CPU column), idle samples left out of the
// denominator. The profiler itself costs CPU: the report gives CPU per request with it off
// and on.
//
// Crossings. A second instance runs a counting copy of build-profile/ (in a temporary
// directory: every wasm import and export wrapped in a counter, and a /__bench/crossings route
// added to its entry) and reports how many times a request crosses from JavaScript into
// WebAssembly and back, at 1 and at the profile's concurrency.
//
// Cold burst. Then, from fresh instances, a burst of N requests at once (no provider token
// anywhere: one exchange, every other request waiting on it), profiled from before the first
// request to after the last answer, for tokengate and for its control, the hand-written gateway
// doing tokengate's duties (bench/baseline/handwritten-duties.js), rounds interleaved: where each
// spends its CPU per request, by kind of code and by function.
//
//   node bench/profile.mjs [--seconds 5] [--warmup 3] [--concurrency 16] [--interval 50]
//                          [--top 25] [--build DIR] [--deployed DIR] [--out FILE]
//                          [--cpuprofile FILE] [--no-crossings] [--var NAME=VALUE]…
//                          [--burst 1000] [--burst-rounds 2] [--no-burst]
//
// --interval is V8's sampling interval in µs; --out writes the report as markdown (default:
// print only); --top sets the length of the three tables (self, total, tokengate's own
// functions: the Rust crates tokengate and tokengate_worker and worker/js/platform.js);
// --cpuprofile saves the raw profile for Chrome DevTools; --var sets a Worker
// variable as bench/worker.mjs's --var does (e.g. --var log_level=warn).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import http from 'node:http';
import {
  startFixture, startWorker, seedCallers, authFor, load, get, DUTIES_NO_LOG,
} from './worker.mjs';
import { codeFingerprint, exportedFunctions, functionNames } from './wasm-names.mjs';
import { cpuMs, median } from './support.mjs';
import { freePort, makeTempDir, removeDir } from '../tests/support/gateway.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const NAME = 'tokengate';

// ---- options --------------------------------------------------------------------------------

const { values: argv } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '16' },
    interval: { type: 'string', default: '50' },
    top: { type: 'string', default: '25' },
    build: { type: 'string', default: path.join(root, 'build-profile') },
    deployed: { type: 'string', default: path.join(root, 'build') },
    out: { type: 'string' },
    cpuprofile: { type: 'string' },
    'no-crossings': { type: 'boolean', default: false },
    burst: { type: 'string', default: '1000' },
    'burst-rounds': { type: 'string', default: '2' },
    'no-burst': { type: 'boolean', default: false },
    var: { type: 'string', multiple: true, default: [] },
  },
});
const num = (k) => {
  const n = Number(argv[k]);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k} must be a positive number`);
  return n;
};
const opts = {
  seconds: num('seconds'),
  warmup: num('warmup'),
  concurrency: num('concurrency'),
  interval: num('interval'),
  top: num('top'),
  burst: num('burst'),
  burstRounds: num('burst-rounds'),
  build: path.resolve(argv.build),
  deployed: path.resolve(argv.deployed),
  vars: Object.fromEntries(argv.var.map((kv) => {
    const i = kv.indexOf('=');
    if (i < 1) throw new Error(`--var takes NAME=VALUE, got ${kv}`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  })),
};
if (!fs.existsSync(path.join(opts.build, 'index.js'))) {
  throw new Error(`${opts.build}/index.js not found: build it first (make worker-profile)`);
}
const log = (m) => console.error(`[profile] ${m}`);

// ---- the Chrome DevTools protocol -----------------------------------------------------------

/**
 * The inspector's WebSocket URL for the Worker's own isolate of `w` (started with an
 * `inspectorPort`). Only the Profiler domain is used on it: with Runtime enabled, every
 * console.log would also be serialised to the session, a cost production does not have.
 */
async function userTarget(w) {
  const inspector = await (w.gw?.mf ?? w.mf).getInspectorURL();
  const targets = await (await fetch(`http://${inspector.host}/json`)).json();
  const target = targets.find((t) => t.id.startsWith('core:user:'));
  if (!target) throw new Error(`no user worker among the inspector's targets: ${targets.map((t) => t.id).join(', ')}`);
  log(`inspector ${target.webSocketDebuggerUrl}`);
  return target.webSocketDebuggerUrl;
}

/** A DevTools-protocol session on `wsUrl`: { send(method, params) → result, close() }. */
async function devtools(wsUrl) {
  const ws = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map();
  ws.on('message', (data) => {
    const msg = JSON.parse(data);
    const p = msg.id === undefined ? undefined : pending.get(msg.id);
    if (!p) return; // an event
    pending.delete(msg.id);
    clearTimeout(p.timer);
    // (workerd answers some commands it handles itself, Profiler.enable among them, with the
    // command echoed back rather than a `result`.)
    if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
    else p.resolve(msg.result ?? {});
  });
  ws.on('close', () => {
    for (const p of pending.values()) p.reject(new Error(`${p.method}: inspector connection closed`));
    pending.clear();
  });
  return {
    send(method, params = {}) {
      return new Promise((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${method}: no answer from the inspector in 60 s`));
        }, 60_000);
        pending.set(id, { method, resolve, reject, timer });
        ws.send(JSON.stringify({ id, method, params }));
      });
    },
    close: () => ws.close(),
  };
}

/**
 * A fresh instance of worker `name` on KV `kvDir` (the caller seeded as bench/worker.mjs does),
 * with workerd's inspector on a free port and a DevTools session on its own isolate:
 * { w, session }.
 */
async function inspected(fx, name, kvDir) {
  await seedCallers(fx, kvDir);
  const w = await startWorker(name, fx, kvDir, { inspectorPort: await freePort() });
  try {
    return { w, session: await devtools(await userTarget(w)) };
  } catch (e) {
    await w.close();
    throw e;
  }
}

/** Starts V8's sampling profiler on `session` at the chosen interval. */
async function startProfiler(session) {
  await session.send('Profiler.enable');
  await session.send('Profiler.setSamplingInterval', { interval: opts.interval });
  await session.send('Profiler.start');
}

/** Stops the profiler on `session`: its profile. */
async function stopProfiler(session) {
  const { profile } = await session.send('Profiler.stop');
  await session.send('Profiler.disable');
  return profile;
}

// ---- the profile ----------------------------------------------------------------------------

/** `rust::path::fn::h0123…` → `rust::path::fn`; crate disambiguators `[0123…]` dropped too. */
const demangled = (name) => name.replace(/::h[0-9a-f]{16}(?=$|[ .])/g, '').replace(/\[[0-9a-f]{16}\]/g, '');

/** The bundle's sections (esbuild's `// file` comments): which source a glue line comes from. */
function glueSections(indexJs) {
  const label = (file) => {
    if (/platform\.js$/.test(file)) return 'worker/js/platform.js';
    if (file === 'shim.js') return "worker-build's entry";
    if (file === 'index.js') return 'wasm-bindgen glue';
    return file;
  };
  return indexJs.split('\n').flatMap((line, i) => {
    const m = /^\/\/ (\S+\.js)$/.exec(line);
    return m ? [{ line: i, source: label(m[1]) }] : [];
  });
}

/** The cold burst's control (bench/worker.mjs's "hand-written, tokengate's duties"). */
const CONTROL_SCRIPT = 'handwritten-duties.js';

const SPECIAL = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);

/**
 * What kind of code a frame is:
 *   rust        a function of the Worker's wasm (Rust, its dependencies, std)
 *   boundary    the JS↔wasm crossing itself: V8's js-to-wasm / wasm-to-js wrappers and
 *               wasm-bindgen's adapters inside the wasm (catch wrappers, externref shims,
 *               __wbindgen_* helpers)
 *   glue        JavaScript of build-profile/index.js (wasm-bindgen's glue, platform.js,
 *               worker-build's entry)
 *   script      the cold burst's control: JavaScript of bench/baseline/handwritten-duties.js
 *   runtime     code without a script: workerd's APIs (fetch, Request, Headers, timers,
 *               console) and V8 builtins; and workerd's own JavaScript (node-internal:…)
 *   gc, program, idle   V8's pseudo-frames
 */
function kindOf(cf) {
  const name = cf.functionName;
  if (name === '(garbage collector)') return 'gc';
  if (name === '(idle)') return 'idle';
  if (SPECIAL.has(name)) return 'program'; // (program), and (root) should a sample land on it
  if (/^(js-to-wasm|wasm-to-js)/.test(name)) return 'boundary';
  if (cf.url.startsWith('wasm://')) {
    if (/ (catch wrapper|externref shim)$/.test(name) || /^__wbindgen|^__wasm_bindgen/.test(name)) return 'boundary';
    return 'rust';
  }
  if (cf.url === 'index.js' || cf.url.endsWith('/index.js')) return 'glue';
  if (cf.url.endsWith(CONTROL_SCRIPT)) return 'script';
  return 'runtime';
}

/**
 * Self and total sample counts per function (same name and place = one function), and counts
 * per kind. Each sample counts once (see the header).
 */
function analyse(profile, sections) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const fns = new Map();
  const keyOf = (cf) => `${cf.functionName}\u0000${cf.url}\u0000${cf.lineNumber}\u0000${cf.columnNumber}`;
  const fnOf = (cf) => {
    const key = keyOf(cf);
    let f = fns.get(key);
    if (!f) {
      f = { cf, kind: kindOf(cf), self: 0, total: 0 };
      fns.set(key, f);
    }
    return f;
  };
  const kinds = {};
  for (const id of profile.samples) {
    const leaf = byId.get(id);
    const f = fnOf(leaf.callFrame);
    f.self++;
    kinds[f.kind] = (kinds[f.kind] ?? 0) + 1;
    const seen = new Set();
    for (let n = leaf; n; n = byId.get(parent.get(n.id))) {
      if (n.callFrame.functionName === '(root)') break;
      const g = fnOf(n.callFrame);
      if (!seen.has(g)) {
        seen.add(g);
        g.total++;
      }
    }
  }
  const describe = (f) => {
    const { functionName: name, url, lineNumber } = f.cf;
    if (f.kind === 'glue') {
      const sec = sections.filter((s) => s.line <= lineNumber).pop();
      return `${name || '(anonymous)'} (index.js:${lineNumber + 1}, ${sec?.source ?? 'glue'})`;
    }
    if (f.kind === 'script') return `${name || '(anonymous)'} (${CONTROL_SCRIPT}:${lineNumber + 1})`;
    if (f.kind === 'rust' || f.kind === 'boundary') return demangled(name) || '(anonymous)';
    if (url && !SPECIAL.has(name)) return `${name || '(anonymous)'} (${url}:${lineNumber + 1})`;
    return name || '(unnamed, entered from native code)';
  };
  const list = [...fns.values()].map((f) => ({ ...f, label: describe(f) }));
  return { list, kinds, samples: profile.samples.length };
}

// ---- crossings ------------------------------------------------------------------------------

// Prepended to the counting copy's index.js: wraps every import the wasm calls (wasm → JS) and
// every export the glue calls (JS → wasm) in a counter.
const COUNTERS = `
globalThis.__benchCrossings = { requests: 0, jsToWasm: {}, wasmToJs: {} };
function __benchCount(table, name, f) {
  return function (...args) {
    table[name] = (table[name] ?? 0) + 1;
    return f.apply(this, args);
  };
}
function __benchCountImports(imports) {
  const out = {};
  for (const [mod, fns] of Object.entries(imports)) {
    out[mod] = {};
    for (const [name, f] of Object.entries(fns)) {
      out[mod][name] = typeof f === 'function' ? __benchCount(globalThis.__benchCrossings.wasmToJs, name, f) : f;
    }
  }
  return out;
}
function __benchCountExports(exports) {
  const out = {};
  for (const [name, f] of Object.entries(exports)) {
    out[name] = typeof f === 'function' ? __benchCount(globalThis.__benchCrossings.jsToWasm, name, f) : f;
  }
  return out;
}
`;

// Inserted before the default export is made: GET /__bench/crossings answers the counts (and
// ?reset zeroes them) without entering the wasm; every other request is counted and served.
const ROUTE = `
{
  const serve = Entrypoint.prototype.fetch;
  Entrypoint.prototype.fetch = function (request) {
    const url = new URL(request.url);
    if (url.pathname === '/__bench/crossings') {
      const c = globalThis.__benchCrossings;
      const body = JSON.stringify(c);
      if (url.search === '?reset') {
        c.requests = 0;
        for (const t of [c.jsToWasm, c.wasmToJs]) for (const k of Object.keys(t)) delete t[k];
      }
      return new Response(body, { headers: { 'content-type': 'application/json' } });
    }
    globalThis.__benchCrossings.requests++;
    return serve.call(this, request);
  };
}
`;

/** A copy of the build in a temporary directory, with the counters; throws if the glue has changed shape. */
function countingCopy(buildDir) {
  const dir = makeTempDir('tokengate-crossings-');
  fs.cpSync(buildDir, dir, { recursive: true });
  const file = path.join(dir, 'index.js');
  let js = fs.readFileSync(file, 'utf8');
  const patch = (re, to) => {
    if (!re.test(js)) throw new Error(`counting copy: ${re} not found in ${buildDir}/index.js`);
    js = js.replace(re, to);
  };
  patch(/new WebAssembly\.Instance\(wasmModule, __wbg_get_imports\(\)\)/g,
    'new WebAssembly.Instance(wasmModule, __benchCountImports(__wbg_get_imports()))');
  patch(/\bwasm = wasmInstance\.exports;/g, 'wasm = __benchCountExports(wasmInstance.exports);');
  patch(/^var shim_default = new Proxy\(Entrypoint, classProxyHooks\);$/m,
    (m) => `${ROUTE}${m}`);
  fs.writeFileSync(file, COUNTERS + js);
  return dir;
}

async function crossings(fx, kvDir, concurrencies) {
  const dir = countingCopy(opts.build);
  const w = await startWorker(NAME, { ...fx, buildDir: dir }, kvDir);
  try {
    const auth = authFor(NAME, fx);
    await get(undefined, `${w.url}/optoro/warm`, auth);
    await load(w.url, auth, opts.concurrency, 1);
    const rows = [];
    for (const c of concurrencies) {
      await fetch(`${w.url}/__bench/crossings?reset`);
      const res = await load(w.url, auth, c, 2);
      const counts = await (await fetch(`${w.url}/__bench/crossings`)).json();
      const n = counts.requests;
      const sum = (t) => Object.values(t).reduce((a, b) => a + b, 0);
      const top = (t) => Object.entries(t).sort((a, b) => b[1] - a[1]).slice(0, 12)
        .map(([k, v]) => [k, v / n]);
      rows.push({
        concurrency: c, requests: n, non200: res.other,
        jsToWasm: sum(counts.jsToWasm) / n, wasmToJs: sum(counts.wasmToJs) / n,
        topJsToWasm: top(counts.jsToWasm), topWasmToJs: top(counts.wasmToJs),
      });
    }
    return rows;
  } finally {
    await w.close();
    removeDir(dir);
  }
}

// ---- the cold burst -------------------------------------------------------------------------

/**
 * The two workers of the cold burst: tokengate and its control, the hand-written gateway doing
 * tokengate's duties, each without its per-request log line (the inspector makes console.log
 * dearer than it is, and would weigh on both; `make bench` measures the line).
 */
const BURST_WORKERS = ['tokengate, log_level=warn', DUTIES_NO_LOG];

/**
 * One cold burst, profiled: a fresh instance (new KV, no provider token anywhere, the caller
 * seeded as bench/worker.mjs does) receives `opts.burst` requests at once, with V8's profiler
 * running from before the first until after the last answer. Returns the profile, the burst's
 * wall time, the workerd process's CPU time over it, the 200s and the provider exchanges.
 */
async function profiledBurst(fx, name) {
  const kvDir = makeTempDir('tokengate-profile-burst-');
  try {
    const { w, session } = await inspected(fx, name, kvDir);
    try {
      await startProfiler(session);
      const before = fx.providers.exchanges('optoro');
      const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
      const auth = authFor(name, fx);
      const cpu0 = cpuMs(w.pid);
      const t0 = performance.now();
      const res = await Promise.all(Array.from(
        { length: opts.burst },
        (_, i) => get(agent, `${w.url}/optoro/v1/items/${i}`, auth),
      ));
      const ms = performance.now() - t0;
      const cpu1 = cpuMs(w.pid);
      agent.destroy();
      const profile = await stopProfiler(session);
      return {
        profile,
        ms,
        cpuMs: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : NaN,
        ok: res.filter(([status]) => status === 200).length,
        exchanges: fx.providers.exchanges('optoro') - before,
      };
    } finally {
      session.close();
      await w.close();
    }
  } finally {
    removeDir(kvDir);
  }
}

/** `opts.burstRounds` profiled bursts of each of BURST_WORKERS, interleaved: name → [burst]. */
async function bursts(fx) {
  const out = Object.fromEntries(BURST_WORKERS.map((n) => [n, []]));
  for (let r = 0; r < opts.burstRounds; r++) {
    for (const name of BURST_WORKERS) {
      log(`cold burst of ${opts.burst}, ${name}, round ${r + 1} of ${opts.burstRounds} …`);
      out[name].push(await profiledBurst(fx, name));
    }
  }
  return out;
}

// ---- run ------------------------------------------------------------------------------------

const started = new Date();
const tryRun = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};
const version = (pkg) =>
  JSON.parse(fs.readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version;

// The profiled code must be the deployed code (the JS may differ only by minification).
const wasmOf = (dir) => path.join(dir, 'index_bg.wasm');
let sameCode = 'not checked (no deployed build)';
if (fs.existsSync(wasmOf(opts.deployed))) {
  const same = codeFingerprint(fs.readFileSync(wasmOf(opts.build)), { withExports: true }) ===
    codeFingerprint(fs.readFileSync(wasmOf(opts.deployed)), { withExports: true });
  sameCode = same
    ? `yes: ${path.relative(root, wasmOf(opts.build))} has the code of ${path.relative(root, wasmOf(opts.deployed))}, byte for byte`
    : `NO: ${path.relative(root, wasmOf(opts.build))} differs from ${path.relative(root, wasmOf(opts.deployed))} (rebuild both: make worker worker-profile)`;
  if (!same) log(`warning: ${sameCode}`);
}

const fx = await startFixture(opts.build, opts.vars);
const kvDir = makeTempDir('tokengate-profile-');
let result;
try {
  const { w, session } = await inspected(fx, NAME, kvDir);
  try {
    const auth = authFor(NAME, fx);
    const url = w.url;
    const [status] = await get(undefined, `${url}/optoro/warm`, auth);
    if (status !== 200) throw new Error(`warm-up got HTTP ${status}`);
    log(`warming up ${opts.warmup} s …`);
    await load(url, auth, opts.concurrency, opts.warmup, w.pid);
    log(`${opts.seconds} s without the profiler …`);
    const off = await load(url, auth, opts.concurrency, opts.seconds, w.pid);

    await startProfiler(session);
    log(`${opts.seconds} s profiled (sampling every ${opts.interval} µs) …`);
    const cpu0 = cpuMs(w.pid);
    const on = await load(url, auth, opts.concurrency, opts.seconds);
    const cpu1 = cpuMs(w.pid);
    const profile = await stopProfiler(session);
    if (argv.cpuprofile) fs.writeFileSync(argv.cpuprofile, JSON.stringify(profile));

    const requests = on.latencies.length;
    result = {
      profile,
      off,
      on,
      requests,
      cpuMs: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : NaN,
    };
  } finally {
    session.close();
    await w.close();
  }
  if (!argv['no-crossings']) {
    log('crossings, on a counting copy …');
    result.crossings = await crossings(fx, kvDir, [1, opts.concurrency]);
  }
  if (!argv['no-burst']) result.bursts = await bursts(fx);
} finally {
  removeDir(kvDir);
  await fx.close();
}

// ---- report ---------------------------------------------------------------------------------

const { profile } = result;
const sections = glueSections(fs.readFileSync(path.join(opts.build, 'index.js'), 'utf8'));
const { list, kinds, samples } = analyse(profile, sections);
const idle = kinds.idle ?? 0;
const busy = samples - idle;
const cpuPerSample = result.cpuMs / busy; // ms of workerd CPU a busy sample stands for
const pct = (n) => `${((100 * n) / busy).toFixed(1)}`;
const ms = (n) => (Number.isFinite(cpuPerSample) ? (n * cpuPerSample).toFixed(1) : 'n/a');
const f0 = (n) => (Number.isFinite(n) ? n.toFixed(0) : 'n/a');
const f1 = (n) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const esc = (s) => s.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const wall = (profile.endTime - profile.startTime) / 1000;
const deltas = profile.timeDeltas.slice(1);
const gaps = deltas.filter((d) => d > 1000);

const lines = [];
const say = (s = '') => lines.push(s);
say('# tokengate CPU profile: the cached proxy path');
say();
say(`Written by \`make bench-profile\` (\`node bench/profile.mjs ${process.argv.slice(2).join(' ')}\`) on`);
say(`${started.toISOString()}; commit ${tryRun('git', ['describe', '--always', '--dirty'])}, ${os.cpus().length} × ${os.cpus()[0]?.model?.trim() ?? 'unknown'},`);
say(`Node ${process.version}, workerd ${version('workerd')}, ${tryRun('rustc', ['--version'])}. One run on a shared, noisy`);
say('machine: read the shares, not the absolute times.');
say();
say(`What ran: \`${path.relative(root, opts.build)}/\` (\`make worker-profile\`) in workerd through Miniflare, default`);
const varsText = Object.entries(opts.vars).map(([k, v]) => `\`${k} = "${v}"\``).join(', ');
say(`configuration${varsText ? ` with ${varsText}` : ' (one log line per request)'}, a static caller, the provider token cached: the`);
say(`bench's "tokengate" row (bench/worker.mjs). ${opts.concurrency} concurrent keep-alive clients sending`);
say(`\`GET /optoro/v1/items/<client>-<n>?page=1\`, ${opts.warmup} s of warm-up, ${opts.seconds} s without the profiler, then`);
say(`${opts.seconds} s sampled by V8's CPU profiler through workerd's inspector (interval set to ${opts.interval} µs).`);
say(`Profiled code = deployed code: ${sameCode}.`);
say();
say('## Totals');
say();
say('| | |');
say('| --- | ---: |');
say(`| samples | ${samples} (${busy} not idle) |`);
say(`| profile length | ${f0(wall)} ms wall |`);
say(`| interval between samples | median ${f0(median(deltas))} µs; ${gaps.length} gaps over 1 ms (${f0(gaps.reduce((a, b) => a + b, 0) / 1000)} ms) |`);
say(`| requests while profiled | ${result.requests} (${f0(result.on.rps)} req/s; ${f0(result.off.rps)} req/s without the profiler) |`);
say(`| workerd CPU while profiled | ${f0(result.cpuMs)} ms = ${f0((result.cpuMs * 1000) / result.requests)} µs/req (${f0(result.off.cpuUs)} µs/req without the profiler) |`);
say(`| non-200 answers | ${result.on.other + result.off.other} |`);
say();
say('Where the samples are, by kind of code (% of the samples that are not idle; ms: that share of');
say('the workerd CPU time above):');
say();
say('| kind | samples | % | ≈ CPU ms | what |');
say('| --- | ---: | ---: | ---: | --- |');
const KINDS = [
  ['rust', 'WebAssembly: tokengate\'s Rust, its crates, std (allocator, memcpy …)'],
  ['boundary', 'the crossings: V8\'s js-to-wasm/wasm-to-js wrappers, wasm-bindgen\'s adapters in the wasm'],
  ['glue', 'JavaScript of index.js: wasm-bindgen\'s glue, worker/js/platform.js, worker-build\'s entry'],
  ['runtime', 'workerd\'s APIs (fetch, Request, Headers, timers, console) and V8 builtins'],
  ['gc', '(garbage collector)'],
  ['program', '(program): native code with no JavaScript on the stack (workerd\'s HTTP, I/O, V8 itself)'],
];
for (const [k, what] of KINDS) {
  say(`| ${k} | ${kinds[k] ?? 0} | ${pct(kinds[k] ?? 0)} | ${ms(kinds[k] ?? 0)} | ${what} |`);
}
say(`| idle | ${idle} | — | — | (idle): V8 told the isolate had nothing to do (not in the denominator) |`);
say();
const table = (title, rows) => {
  say(`## Top ${opts.top} by ${title}`);
  say();
  say('| # | function | kind | self ms | self % | total ms | total % |');
  say('| ---: | --- | --- | ---: | ---: | ---: | ---: |');
  rows.forEach((f, i) => {
    say(`| ${i + 1} | ${esc(f.label)} | ${f.kind} | ${ms(f.self)} | ${pct(f.self)} | ${ms(f.total)} | ${pct(f.total)} |`);
  });
  say();
};
const notIdle = list.filter((f) => f.kind !== 'idle');
table('self time', [...notIdle].sort((a, b) => b.self - a.self || b.total - a.total).slice(0, opts.top));
table('total time', [...notIdle].filter((f) => !SPECIAL.has(f.cf.functionName))
  .sort((a, b) => b.total - a.total || b.self - a.self).slice(0, opts.top));
table('total time, tokengate\'s own functions', notIdle
  .filter((f) => /^<?tokengate/.test(demangled(f.cf.functionName)) || f.label.includes('worker/js/platform.js'))
  .sort((a, b) => b.total - a.total || b.self - a.self).slice(0, opts.top));
say('Self: samples with the function on top of the stack; total: samples with it anywhere on the');
say('stack (once per sample, however deep the recursion). Rust names are demangled without their');
say('hashes; `{{closure}}` of an `async fn` is its future\'s poll.');
say();
say('Reading it:');
say();
say('- Many of workerd\'s APIs have no frame of their own: their time is the self time of the glue');
say('  function that calls them (`__wbg_log_…` is `console.log`, `headerLines` iterates `Headers`,');
say('  `__wbg_get_…` is `Headers.get`). So "glue" holds platform work as well as wasm-bindgen\'s.');
say('- `console.log` costs more while the profiler runs than otherwise: compare the request\'s');
say('  log line here (`LogLine::write`, total) with what `log_level = "warn"` saves in `make bench`');
say('  (its "tokengate, log_level=warn" row), or profile that configuration (`--var log_level=warn`).');
say('- `js-to-wasm`/`wasm-to-js` and the "catch wrapper"/"externref shim" frames are the crossing');
say('  itself; their *total* is the time of everything called across them.');
say();
if (result.crossings) {
  say('## Crossings per request');
  say();
  say('A counting copy of the same build (every wasm import and export wrapped in a counter), 2 s of');
  say('load per row; calls per request, averaged over the requests:');
  say();
  say('| concurrency | requests | JS → wasm | wasm → JS | non-200 |');
  say('| ---: | ---: | ---: | ---: | ---: |');
  for (const r of result.crossings) {
    say(`| ${r.concurrency} | ${r.requests} | ${f1(r.jsToWasm)} | ${f1(r.wasmToJs)} | ${r.non200} |`);
  }
  say();
  // wasm-bindgen gives some exports numbers (`__wbindgen_export2`): name them after their function.
  const wasm = fs.readFileSync(path.join(opts.build, 'index_bg.wasm'));
  const fnNames = functionNames(wasm);
  const exported = exportedFunctions(wasm);
  const exportLabel = (k) => {
    const fn = fnNames.get(exported.get(k));
    return fn && demangled(fn) !== k ? `\`${k}\` (${esc(demangled(fn))})` : `\`${k}\``;
  };
  const r = result.crossings[result.crossings.length - 1];
  const often = (top, label) => top.filter(([, v]) => v >= 0.05).map(([k, v]) => `${label(k)} ${f1(v)}`).join(', ');
  say(`The most frequent at ${r.concurrency} concurrent (calls per request). JS → wasm: ` +
    `${often(r.topJsToWasm, exportLabel)}. wasm → JS: ${often(r.topWasmToJs, (k) => `\`${k}\``)}.`);
  say();
}

if (result.bursts) {
  // Each round's samples count for that round's CPU time (its workerd CPU over the burst divided
  // by its samples that are not idle), so rounds sum as CPU time; per request = over every
  // request of every round.
  const summary = (runs) => {
    const fns = new Map();
    const kindsMs = {};
    let cpu = 0;
    for (const b of runs) {
      const a = analyse(b.profile, sections);
      const per = b.cpuMs / (a.samples - (a.kinds.idle ?? 0));
      cpu += b.cpuMs;
      for (const [k, n] of Object.entries(a.kinds)) if (k !== 'idle') kindsMs[k] = (kindsMs[k] ?? 0) + n * per;
      for (const f of a.list) {
        if (f.kind === 'idle') continue;
        // (The same function in every round; `fetch` names both the runtime's and the wasm's.)
        const key = `${f.kind}\u0000${f.label}`;
        const g = fns.get(key) ?? { label: f.label, kind: f.kind, cf: f.cf, self: 0, total: 0 };
        g.self += f.self * per;
        g.total += f.total * per;
        fns.set(key, g);
      }
    }
    const requests = runs.length * opts.burst;
    const us = (msTotal) => (msTotal * 1000) / requests;
    return { fns: [...fns.values()], kindsMs, cpu, requests, us, runs };
  };
  const [tgName, controlName] = BURST_WORKERS;
  const tg = summary(result.bursts[tgName]);
  const control = summary(result.bursts[controlName]);
  const rows = [[tgName, tg], [controlName, control]];
  say('## Cold burst');
  say();
  say(`A fresh instance of each worker (new KV, no provider token anywhere) receives ${opts.burst} requests at`);
  say(`once, profiled from before the first to after the last answer; ${opts.burstRounds} rounds each, interleaved. The`);
  say('control is the hand-written gateway doing tokengate\'s duties (bench/baseline/handwritten-duties.js);');
  say('both run without their per-request log line, which the inspector makes dearer than it is (`make');
  say('bench` measures the line). µs/req: the share of the samples times the workerd CPU time of the');
  say('burst, over every request of every round. That CPU time also holds what no sample sees (V8\'s');
  say('background compilation and GC threads, the profiler itself), spread over the kinds and');
  say('functions in proportion.');
  say();
  say('| worker | wall ms per burst (median) | workerd CPU ms per burst (median) | CPU µs/req | 200s | exchanges per burst |');
  say('| --- | ---: | ---: | ---: | ---: | --- |');
  for (const [name, t] of rows) {
    say(`| ${esc(name)} | ${f0(median(t.runs.map((b) => b.ms)))} | ${f0(median(t.runs.map((b) => b.cpuMs)))} | ` +
      `${f0(t.us(t.cpu))} | ${t.runs.reduce((a, b) => a + b.ok, 0)} of ${t.requests} | ` +
      `${t.runs.map((b) => b.exchanges).join(', ')} |`);
  }
  say();
  say('By kind of code (as in the totals above; "script" is the control\'s own JavaScript), CPU µs per');
  say('request:');
  say();
  say('| kind | tokengate | control | tokengate − control |');
  say('| --- | ---: | ---: | ---: |');
  for (const k of ['rust', 'boundary', 'glue', 'script', 'runtime', 'gc', 'program']) {
    const a = tg.us(tg.kindsMs[k] ?? 0);
    const b = control.us(control.kindsMs[k] ?? 0);
    say(`| ${k} | ${f0(a)} | ${f0(b)} | ${a - b >= 0 ? '+' : ''}${f0(a - b)} |`);
  }
  say(`| all | ${f0(tg.us(tg.cpu))} | ${f0(control.us(control.cpu))} | ` +
    `${tg.cpu >= control.cpu ? '+' : ''}${f0(tg.us(tg.cpu) - control.us(control.cpu))} |`);
  say();
  const burstTable = (title, t, list) => {
    say(`### ${title}`);
    say();
    say('| # | function | kind | self µs/req | total µs/req |');
    say('| ---: | --- | --- | ---: | ---: |');
    list.forEach((f, i) => say(`| ${i + 1} | ${esc(f.label)} | ${f.kind} | ${f1(t.us(f.self))} | ${f1(t.us(f.total))} |`));
    say();
  };
  const n = Math.min(opts.top, 20);
  burstTable(`tokengate, top ${n} by self time`, tg, [...tg.fns]
    .sort((a, b) => b.self - a.self).slice(0, n));
  burstTable(`tokengate's own functions, top ${n} by total time`, tg, tg.fns
    .filter((f) => /^<?tokengate/.test(demangled(f.cf.functionName)) || f.label.includes('worker/js/platform.js'))
    .sort((a, b) => b.total - a.total).slice(0, n));
  burstTable(`The control, top ${n} by self time`, control, [...control.fns]
    .sort((a, b) => b.self - a.self).slice(0, n));
}

const text = `${lines.join('\n')}\n`;
console.log(text);
if (argv.out) {
  fs.writeFileSync(argv.out, text);
  log(`wrote ${path.relative(process.cwd(), path.resolve(argv.out))}`);
}
