// The façade test cases (npm/js/client.js on the built package), environment-neutral: the Node
// runner (tests/npm-fetch.test.mjs) and the Chromium runner (tests/npm-browser.test.mjs) import
// this module, build a context from the package they loaded, and run every case.
//
// A case is `{name, run(ctx)}`.

import * as assert from './assert.mjs';
import { MockProvider, mapCache, hangingCache } from './mock.mjs';
import { cases as fetchCases } from './fetch-cases.mjs';
import { cases as signalCases } from './signal-cases.mjs';
import { cases as clientCases } from './client-cases.mjs';

export const cases = [...fetchCases, ...signalCases, ...clientCases];

/** A client secret with characters every auth style must encode; must never leak. */
export const SECRET = 's3cr:t+/ &%';

/**
 * What every case gets: the package's `TokenClient` and `TokenError`, the mock, `assert`, and
 * helpers. `extra.inspect`: Node's util.inspect (absent in a browser).
 */
export function contextFor(pkg, extra = {}) {
  const { TokenClient, TokenError } = pkg;
  const config = (x = {}) => ({ tokenUrl: 'https://auth.test/token', clientId: 'client-1', clientSecret: SECRET, ...x });
  return {
    TokenClient,
    TokenError,
    MockProvider,
    mapCache,
    hangingCache,
    assert,
    SECRET,
    config,
    /** A client of `mock` (its fetch and clock), config `x`, more options `options`. */
    client: (mock, x = {}, options = {}) => new TokenClient(config(x), { fetch: mock.fetch, now: mock.now, ...options }),
    /** A predicate: a TokenError with `code` whose message and stack hold no secret. */
    isTokenError: (code) => (e) => e instanceof TokenError && e instanceof Error && e.name === 'TokenError'
      && e.code === code && !`${e.message}${e.stack}`.includes(SECRET),
    /** A predicate: the host's own TypeError (not a TokenError). */
    isHostTypeError: (e) => e instanceof TypeError && !(e instanceof TokenError) && e.name === 'TypeError',
    inspect: extra.inspect,
    host: extra.host ?? 'unknown',
  };
}

/** Runs `c` with context `ctx`, failing it if it has not settled after `ms`. */
export function runCase(c, ctx, ms = 10_000) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the case did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([c.run(ctx), limit]).finally(() => clearTimeout(timer));
}

/** Runs every case in order: `[{name, ok, error, ms}]` (a browser page returns this). */
export async function runAll(pkg, extra = {}, only = undefined) {
  const results = [];
  for (const c of cases) {
    if (only && !only.includes(c.name)) continue;
    const started = Date.now();
    try {
      await runCase(c, contextFor(pkg, extra));
      results.push({ name: c.name, ok: true, error: null, ms: Date.now() - started });
    } catch (e) {
      const error = `${e?.name ?? 'Error'}: ${e?.message ?? e}\n${e?.stack ?? ''}`;
      results.push({ name: c.name, ok: false, error, ms: Date.now() - started });
    }
  }
  return results;
}
