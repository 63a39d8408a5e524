// The minter measured (part of `make bench`; `node bench/fleet.mjs` alone prints): instances of
// the Worker's test build in one workerd sharing KV and the minter's Durable Object namespace
// (tests/support/fleet.mjs), against the provider emulators, on the test clock — so token
// lifetimes roll over in seconds of real time.
//
// - Exchanges: a cold burst (8 requests per instance at once), then a stream over three token
//   lifetimes (one-hour tokens; every 60 s of the clock, 2 requests per instance), at 1, 4 and
//   16 instances, with the minter (`coordination = "durable_object"`, refresh-ahead) and
//   without (`"isolate"`). The token endpoint takes 50 ms an answer, so a caller that waits for
//   an exchange shows.
// - Latency of the stream's requests (real ms, as the caller sees them), and how many waited on
//   an exchange (Server-Timing `exchange`).
// - A minter round trip: the first request on instances whose memory is empty, the token in KV,
//   then with KV emptied (the minter answers from its memory), then each instance's second
//   request (memory).

import { startProviders } from '../tests/support/emulators.mjs';
import { startFleet } from '../tests/support/fleet.mjs';
import { makeClock } from '../tests/support/gateway.mjs';
import { median, quantile } from './support.mjs';

const CALLER = { id: 'bench-fleet', secret: 'bench-fleet-secret-0123456789', scopes: ['partner'] };
// One-hour tokens: the refresh-ahead point (80–85 %) is 8–11 minutes before the refresh point
// (90 %: 60 s skew). The clock runs about a thousand times faster than real time here, so a
// 50 ms exchange spans a few minutes of it; the window must be longer than that.
const LIFETIME_S = 3_600;
const STEP_MS = 60_000;

async function fleetOf({ n, minter, clock, emu }) {
  const { providers, secrets } = emu.gatewayConfig({
    partner: { coordination: minter ? 'durable_object' : 'isolate' },
  });
  const fleet = await startFleet({
    n, clock, providers: { partner: providers.partner }, secrets: { PARTNER_CLIENT_SECRET: secrets.PARTNER_CLIENT_SECRET },
    // Caller tokens that outlive the three hours the stream covers.
    clients: { [CALLER.id]: { secret: CALLER.secret, scopes: CALLER.scopes, token_ttl_s: 86_400 } },
    vars: { log_level: 'warn' },
  });
  const tokens = [];
  for (let i = 0; i < n; i++) {
    const res = await fleet.fetch(i, '/oauth/token', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'client_credentials', client_id: CALLER.id, client_secret: CALLER.secret }),
    });
    tokens.push((await res.json()).access_token);
  }
  fleet.call = async (i) => {
    const t0 = performance.now();
    const res = await fleet.fetch(i, '/partner/bookings', { headers: { authorization: `Bearer ${tokens[i]}` } });
    await res.arrayBuffer();
    return {
      ms: performance.now() - t0,
      status: res.status,
      source: /token;desc="(\w+)"/.exec(res.headers.get('server-timing') ?? '')?.[1],
    };
  };
  return fleet;
}

/** Exchanges and latency of one fleet size and mode. */
async function stream({ n, minter }) {
  const clock = makeClock();
  const emu = await startProviders({ clock });
  emu.setLifetime('partner', LIFETIME_S);
  emu.script('partner', Array.from({ length: 2_000 }, () => ({ delayMs: 50 })));
  const fleet = await fleetOf({ n, minter, clock, emu });
  try {
    const cold = await Promise.all(Array.from({ length: 8 * n }, (_, k) => fleet.call(k % n)));
    const coldExchanges = emu.exchanges('partner');
    const rounds = (3 * LIFETIME_S * 1000) / STEP_MS;
    const seen = [];
    for (let r = 0; r < rounds; r++) {
      clock.advance(STEP_MS);
      seen.push(...await Promise.all(Array.from({ length: 2 * n }, (_, k) => fleet.call(k % n))));
      await new Promise((res) => setTimeout(res, 5)); // background refreshes settle
    }
    const ms = seen.map((s) => s.ms);
    return {
      n, minter,
      coldExchanges,
      coldMs: Math.max(...cold.map((c) => c.ms)),
      perLifetime: (emu.exchanges('partner') - coldExchanges) / 3,
      requests: seen.length,
      non200: seen.filter((s) => s.status !== 200).length,
      waited: seen.filter((s) => s.source === 'exchange').length,
      p50: median(ms), p99: quantile(ms, 0.99), max: Math.max(...ms),
    };
  } finally {
    await fleet.close();
    await emu.close();
  }
}

/** First requests served by KV, by the minter, then by memory. */
async function roundTrip() {
  const clock = makeClock();
  const emu = await startProviders({ clock });
  const n = 16;
  const fleet = await fleetOf({ n, minter: true, clock, emu });
  try {
    await fleet.call(0);
    const kv = [];
    for (let i = 1; i < 8; i++) kv.push(await fleet.call(i));
    for (const k of (await fleet.kv.list({ prefix: 'tg:v2:ptok:' })).keys) await fleet.kv.delete(k.name);
    const minter = [];
    for (let i = 8; i < n; i++) minter.push(await fleet.call(i));
    const memory = [];
    for (let i = 1; i < n; i++) memory.push(await fleet.call(i));
    const pick = (xs, source) => xs.filter((x) => x.source === source).map((x) => x.ms);
    return {
      kv: median(pick(kv, 'kv')), kvCount: pick(kv, 'kv').length,
      minter: median(pick(minter, 'minter')), minterCount: pick(minter, 'minter').length,
      memory: median(pick(memory, 'memory')), memoryCount: pick(memory, 'memory').length,
      exchanges: emu.exchanges('partner'),
    };
  } finally {
    await fleet.close();
    await emu.close();
  }
}

export async function runFleetBench({ sizes = [1, 4, 16], log = () => {} } = {}) {
  const streams = [];
  for (const n of sizes) {
    for (const minter of [true, false]) {
      log(`fleet: ${n} instance(s), ${minter ? 'minter' : 'isolate'} …`);
      streams.push(await stream({ n, minter }));
    }
  }
  log('fleet: minter round trip …');
  return { streams, roundTrip: await roundTrip() };
}

/** The tables of a run, as Markdown lines. */
export function fleetTables({ streams, roundTrip: rt }) {
  const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
  const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  const out = [];
  out.push('| instances | coordination | exchanges, cold burst | exchanges per token lifetime | requests | waited on an exchange | p50 ms | p99 ms | max ms | non-200 |');
  out.push('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const s of streams) {
    out.push(`| ${s.n} | ${s.minter ? 'durable_object' : 'isolate'} | ${s.coldExchanges} | ${f1(s.perLifetime)} | ${s.requests} | ${s.waited} | ${f1(s.p50)} | ${f1(s.p99)} | ${f0(s.max)} | ${s.non200} |`);
  }
  out.push('');
  out.push('| first request of an instance served by | median ms | requests |');
  out.push('| --- | ---: | ---: |');
  out.push(`| memory (its second request) | ${f1(rt.memory)} | ${rt.memoryCount} |`);
  out.push(`| KV | ${f1(rt.kv)} | ${rt.kvCount} |`);
  out.push(`| the minter (memory and KV missed) | ${f1(rt.minter)} | ${rt.minterCount} |`);
  out.push('');
  out.push(`(${rt.exchanges} exchange in the round-trip run.)`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await runFleetBench({ log: (m) => console.error(`[bench] ${m}`) });
  console.log(fleetTables(results).join('\n'));
}
