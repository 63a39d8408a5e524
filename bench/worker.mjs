// Throughput of the gateway's cached path against a bare passthrough Worker, measured in the
// same run on the same machine: both run in workerd (Miniflare) and call the same local echo
// API; only the ratio between them is meaningful (the machine is shared and noisy).
//
//   node bench/worker.mjs [--seconds 3] [--concurrency 16] [--rounds 2] [--build DIR]
//   (--build: another build of the Worker, to compare; default build/, as deployed)

import { parseArgs } from 'node:util';
import { Miniflare } from 'miniflare';
import { startProviders } from '../tests/support/emulators.mjs';
import { startGateway, issueCallerToken, DEPLOYED_BUILD_DIR } from '../tests/support/gateway.mjs';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '2' },
    build: { type: 'string', default: DEPLOYED_BUILD_DIR },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);

const PASSTHROUGH = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const rest = url.pathname.replace(/^\\/optoro\\//, '');
    const headers = new Headers(request.headers);
    headers.set('authorization', 'Bearer ' + env.TOKEN);
    return fetch(env.API_BASE + rest + url.search, { method: request.method, headers, redirect: 'manual' });
  },
};`;

async function load(base, path, headers) {
  const latencies = [];
  let count = 0;
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  const worker = async () => {
    while (performance.now() < until) {
      const t0 = performance.now();
      const res = await fetch(base + path, { headers });
      await res.arrayBuffer();
      latencies.push(performance.now() - t0);
      if (res.status === 200) count++;
      else errors++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { rps: count / elapsed, p50: latencies[Math.floor(latencies.length / 2)], errors };
}

const providers = await startProviders();
const { providers: config, secrets } = providers.gatewayConfig();
const gw = await startGateway({
  buildDir: values.build,
  providers: config,
  secrets,
  clients: { bench: { secret: 'bench-secret', scopes: ['optoro'] } },
});
// A provider token for the passthrough, straight from the emulator.
const creds = providers.credentials.optoro;
const tokenRes = await fetch(config.optoro.token_url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json' },
  body: JSON.stringify({ grant_type: 'client_credentials', client_id: creds.clientId, client_secret: creds.clientSecret }),
});
const providerToken = (await tokenRes.json()).access_token;
const bare = new Miniflare({
  modules: true,
  script: PASSTHROUGH,
  compatibilityDate: '2025-01-01',
  bindings: { API_BASE: config.optoro.api_base.replace(/\/?$/, '/'), TOKEN: providerToken },
  cf: false,
  host: '127.0.0.1',
});
try {
  const bareUrl = (await bare.ready).href.replace(/\/$/, '');
  const callerToken = await issueCallerToken(gw, 'bench', 'bench-secret');
  const auth = { authorization: `Bearer ${callerToken}` };
  // Warm both: the gateway's first call exchanges, later ones hit memory.
  for (const [b, h] of [[gw.url, auth], [bareUrl, {}]]) {
    const r = await fetch(`${b}/optoro/bench`, { headers: h });
    if (r.status !== 200) throw new Error(`warm-up got HTTP ${r.status}`);
    await r.arrayBuffer();
  }
  const rows = [];
  for (let i = 0; i < rounds; i++) {
    rows.push({ name: 'passthrough', ...(await load(bareUrl, '/optoro/bench?x=1', {})) });
    rows.push({ name: 'tokengate (cached)', ...(await load(gw.url, '/optoro/bench?x=1', auth)) });
  }
  const sum = (n) => rows.filter((r) => r.name === n).reduce((a, r) => a + r.rps, 0);
  const ratio = sum('tokengate (cached)') / sum('passthrough');
  console.log(`worker throughput, ${concurrency} concurrent, ${seconds}s x ${rounds} rounds each`);
  console.log('name                 req/s     p50 ms  non-200');
  for (const r of rows) {
    console.log(`${r.name.padEnd(20)} ${r.rps.toFixed(0).padStart(6)}  ${r.p50.toFixed(2).padStart(8)}  ${r.errors}`);
  }
  console.log(`ratio tokengate/passthrough: ${ratio.toFixed(3)} (gateway token exchanges: ${providers.exchanges('optoro') - 1})`);
} finally {
  await bare.dispose();
  await gw.close();
  await providers.close();
}
