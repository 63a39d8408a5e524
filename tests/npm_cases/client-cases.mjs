// The client around `client.fetch`: requests fetch refuses (the host's TypeError, before any
// token request), options validation, the global fetch, cache adapters, the injected clock,
// invalidate(), what a logged client shows, and free().

import { streamOf, until } from './mock.mjs';

const API = 'https://api.test/x';

/** Requests `fetch` refuses outright: [input, init]. */
const refused = () => [
  [API, { headers: { 'x-bad': 'a\nb' } }],
  [API, { headers: [['x-bad']] }],
  [API, { method: 'CONNECT' }],
  [API, { method: 'bad method' }],
  [API, { body: 'on a GET' }],
  [API, { method: 'HEAD', body: 'x' }],
  ['https://user:pw@api.test/x', {}],
  // Credentials the URL parser finds past an empty authority or a stripped newline.
  ['https:///user:pw@api.test/x', {}],
  ['https://\n/user:pw@api.test/x', {}],
  ['http://[bad', {}],
  // init fields with values fetch does not know or allow.
  [API, { redirect: 'sideways' }],
  [API, { referrerPolicy: 'bogus' }],
  [API, { cache: 'only-if-cached' }],
];

export const cases = [
  {
    // Without a fresh token, a request fetch refuses throws the host's own TypeError before
    // any token request; with one, the same TypeError comes from fetch, rethrown as is, never
    // retried, and nothing reaches the API.
    name: 'requests fetch refuses throw the host TypeError, before a token request, never retried',
    async run({ MockProvider, client, assert, isHostTypeError }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { baseDelayMs: 0, maxDelayMs: 0 } });
      for (const [input, init] of refused()) {
        await assert.rejects(c.fetch(input, init), isHostTypeError, `cold: ${JSON.stringify([input, init])}`);
      }
      assert.deepEqual([mock.tokenCount, mock.apiCount], [0, 0]);
      await c.token();
      for (const [input, init] of refused()) {
        await assert.rejects(c.fetch(input, init), isHostTypeError, `warm: ${JSON.stringify([input, init])}`);
      }
      assert.deepEqual([mock.tokenCount, mock.apiCount], [1, 0]);
      // A Request input with an init fetch refuses: the same (normalised path).
      await assert.rejects(c.fetch(new Request(API), { method: 'CONNECT' }), isHostTypeError);
      await assert.rejects(c.fetch(new Request(API), { redirect: 'sideways' }), isHostTypeError);
      assert.deepEqual([mock.tokenCount, mock.apiCount], [1, 0]);
      assert.equal((await c.fetch(API)).status, 200, 'the client still works');
    },
  },
  {
    // A stream body that fetch refuses (no `duplex`, or on a GET) is the caller's mistake too:
    // the host's TypeError, before any token request, also when warm.
    name: 'a stream body fetch refuses throws the host TypeError, before a token request',
    async run({ MockProvider, client, assert, isHostTypeError }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { maxAttempts: 1 } });
      const bad = () => [[{ method: 'PUT', body: streamOf('no duplex') }], [{ body: streamOf('on a GET'), duplex: 'half' }]];
      for (const [init] of bad()) {
        await assert.rejects(c.fetch(API, init), isHostTypeError, `cold: ${Object.keys(init)}`);
      }
      assert.deepEqual([mock.tokenCount, mock.apiCount], [0, 0], 'no token request for a request fetch refuses');
      await c.token();
      for (const [init] of bad()) {
        await assert.rejects(c.fetch(API, init), isHostTypeError, `warm: ${Object.keys(init)}`);
      }
    },
  },
  {
    // Invalid options throw a `config` TokenError naming the key; absent and null options are
    // fine, and so are keys given as undefined or null.
    name: 'options validation: TokenError config naming the key',
    async run({ TokenClient, TokenError, config, assert }) {
      const bad = [
        [{ bogus: 1 }, '`options.bogus` is not a known key'],
        [{ fetch: 'https://api.test' }, '`options.fetch` must be a function'],
        [{ cache: 'redis' }, '`options.cache.get` must be a function'],
        [{ cache: { get() {}, set() {} } }, '`options.cache.delete` must be a function'],
        [{ cache: { get() {}, set: 1, delete() {} } }, '`options.cache.set` must be a function'],
        [{ now: 5 }, '`options.now` must be a function returning epoch milliseconds, or an object with now()'],
        [{ now: { now: 5 } }, '`options.now`'],
        [{ log: 'console' }, '`options.log` must be a function'],
        ['fast', '`options` must be an object'],
      ];
      for (const [options, text] of bad) {
        const e = assert.throws(() => new TokenClient(config(), options),
          (x) => x instanceof TokenError && x.code === 'config' && x.retryable === false, JSON.stringify(options));
        assert.ok(e.message.includes(text), `${e.message} should say ${text}`);
        assert.ok(e.message.startsWith('invalid TokenClient config: '), e.message);
      }
      for (const options of [undefined, null, {}, { fetch: undefined, cache: null, now: undefined, log: null }]) {
        assert.ok(new TokenClient(config(), options) instanceof TokenClient, JSON.stringify(options));
      }
      // Config errors name the key, never the secret.
      const { clientSecret: _, ...noSecret } = config();
      assert.throws(() => new TokenClient(noSecret), (x) => x.code === 'config' && x.message.includes('clientSecret'));
      assert.throws(() => new TokenClient(config({ tokenUrl: 'ftp://x', clientSecret: 's3cret!' })),
        (x) => x.code === 'config' && x.message.includes('tokenUrl') && !x.message.includes('s3cret!'));
    },
  },
  {
    // Without options.fetch the global fetch is looked up on every call (tests may swap it);
    // with options.fetch the global one is never used.
    name: 'the global fetch is looked up on every call; options.fetch wins over it',
    async run({ MockProvider, TokenClient, config, client, assert }) {
      const mock = new MockProvider();
      const saved = globalThis.fetch;
      try {
        globalThis.fetch = mock.fetch;
        const c = new TokenClient(config({ retry: { maxAttempts: 1 } }), { now: mock.now });
        assert.equal((await c.fetch(API)).status, 200);
        assert.deepEqual([mock.tokenCount, mock.apiCount], [1, 1]);
        const seen = [];
        globalThis.fetch = (input, init) => { seen.push(String(input.url ?? input)); return mock.fetch(input, init); };
        assert.equal((await c.fetch(`${API}/2`)).status, 200);
        assert.deepEqual(seen, [`${API}/2`], 'the swapped global was used');
        globalThis.fetch = undefined;
        await assert.rejects(c.fetch(API), (e) => e instanceof Error && e.message.includes('options.fetch'));
        // An injected fetch is used whatever the global is.
        globalThis.fetch = () => { throw new Error('the global fetch must not be used'); };
        const own = client(new MockProvider());
        assert.equal((await own.fetch(API)).status, 200);
      } finally {
        globalThis.fetch = saved;
      }
    },
  },
  {
    // A cache adapter that never settles is a miss bounded by timeoutMs, for token() and for
    // fetch; the token is then served from memory.
    name: 'a cache adapter that never settles is a miss, not a hang',
    async run({ MockProvider, client, hangingCache, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 50 }, { cache: hangingCache() });
      const started = Date.now();
      const res = await c.fetch(API);
      assert.deepEqual([res.status, (await res.json()).token], [200, 'tok-1']);
      assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
      assert.equal((await c.token()).accessToken, 'tok-1');
      assert.deepEqual([mock.tokenCount, mock.apiCount], [1, 1]);
    },
  },
  {
    // The cache adapter is shared between clients: a second client's fetch uses the cached
    // token; a 401 deletes the refused token from the cache (if it is still there) and stores
    // the new one.
    name: 'cache adapter: shared token, a 401 replaces it in the cache',
    async run({ MockProvider, client, mapCache, assert, SECRET }) {
      const mock = new MockProvider();
      const cache = mapCache();
      const first = client(mock, {}, { cache });
      assert.equal((await (await first.fetch(API)).json()).token, 'tok-1');
      // The token, then (before exchanging) a pause another process may have recorded.
      assert.deepEqual(cache.log.map((l) => l[0]), ['get', 'get', 'set']);
      const [, key, ttl] = cache.log[2];
      assert.equal(cache.log[1][1], `${key}:hold`);
      assert.equal(ttl, 3540, 'TTL: lifetime minus the refresh skew');
      assert.ok(key.startsWith('tg:v2:ptok:') && !key.includes(SECRET), key);
      const second = client(mock, {}, { cache });
      mock.revokeAll();
      const res = await second.fetch(API);
      assert.deepEqual([res.status, (await res.json()).token], [200, 'tok-2']);
      // The refused token is deleted only after a read shows the cache still holds it (not
      // another process's newer token); then the refresh reads, exchanges and stores.
      assert.deepEqual(cache.log.slice(3).map((l) => l[0]), ['get', 'get', 'delete', 'get', 'get', 'set']);
      assert.ok(!cache.map.get(key).includes('tok-1') && cache.map.get(key).includes('tok-2'));
      const third = client(mock, {}, { cache });
      assert.equal((await third.token()).accessToken, 'tok-2');
      assert.equal(mock.tokenCount, 2);
    },
  },
  {
    // The injected clock (a function or an object with now()) drives refresh before expiry
    // for fetch; invalidate() makes the next fetch exchange anew.
    name: 'the injected clock refreshes before expiry; invalidate() forces an exchange',
    async run({ MockProvider, TokenClient, config, assert }) {
      const mock = new MockProvider();
      const c = new TokenClient(config({ refreshSkewS: 60 }), { fetch: mock.fetch, now: { now: () => mock.clock } });
      const token = async () => (await (await c.fetch(API)).json()).token;
      assert.equal(await token(), 'tok-1');
      mock.advance(3_600_000 - 60_000 - 1);
      assert.equal(await token(), 'tok-1');
      mock.advance(1); // 60 s before expiry: refreshed although the API still accepts tok-1
      assert.equal(await token(), 'tok-2');
      assert.equal((await c.token()).expiresAt, mock.clock + 3_600_000);
      await c.invalidate();
      assert.equal(await token(), 'tok-3');
      assert.deepEqual([mock.tokenCount, mock.apiCount], [3, 4]);
    },
  },
  {
    // tokenRateLimitPerMinute: the token endpoint is asked at most that often a minute; while
    // the budget is spent a token that has not expired is served, and without one token()
    // throws temporarily_unavailable with retryAfterMs.
    name: 'tokenRateLimitPerMinute holds token requests; a valid token is served meanwhile',
    async run({ MockProvider, TokenClient, TokenError, config, assert }) {
      const mock = new MockProvider();
      mock.lifetime = 50; // refreshed 25 s in (half the life: the 60 s skew is capped)
      const c = new TokenClient(config({ tokenRateLimitPerMinute: 1 }),
        { fetch: mock.fetch, now: { now: () => mock.clock } });
      assert.equal((await c.token()).accessToken, 'tok-1');
      // Past its refresh point, within the same minute: the budget is spent, tok-1 (valid for
      // 20 s more) is served.
      mock.advance(30_000);
      assert.equal((await c.token()).accessToken, 'tok-1');
      assert.equal(mock.tokenCount, 1);
      await c.invalidate();
      await assert.rejects(c.token(), (e) => e instanceof TokenError
        && e.code === 'temporarily_unavailable' && e.retryable && e.retryAfterMs > 0);
      assert.equal(mock.tokenCount, 1, 'not asked again this minute');
      mock.advance(60_000);
      assert.equal((await c.token()).accessToken, 'tok-2');
      assert.equal(mock.tokenCount, 2);
      assert.throws(() => new TokenClient(config({ tokenRateLimitPerMinute: 0 }), { fetch: mock.fetch }),
        (e) => e.code === 'config' && /tokenRateLimitPerMinute/.test(e.message));
    },
  },
  {
    // A client shows no token: JSON, own keys, string form, and (Node) util.inspect.
    name: 'a logged or serialised client shows no token',
    async run({ MockProvider, client, assert, inspect }) {
      const mock = new MockProvider();
      const c = client(mock);
      await (await c.fetch(API)).text();
      const views = [JSON.stringify(c), String(c), JSON.stringify(Object.getOwnPropertyNames(c)), JSON.stringify(Object.entries(c))];
      for (const key in c) views.push(key);
      if (inspect) views.push(inspect(c, { depth: 10, showHidden: true }), inspect(c, { depth: 10 }));
      for (const v of views) assert.ok(!v.includes('tok-1') && !v.includes('s3cr'), v);
      assert.equal(JSON.stringify(c), '{}');
    },
  },
  {
    // free(): a pending call settles (rejects), later calls reject or throw instead of
    // crashing the module, and other clients keep working.
    name: 'free(): later calls reject, a pending call settles, other clients work',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 50, retry: { maxAttempts: 1 } });
      await c.token();
      mock.scriptApi('hang');
      const pending = c.fetch(API);
      await until(() => mock.apiCount === 1, 'the request to go out');
      c.free();
      await assert.rejects(pending, (e) => e instanceof Error);
      assert.equal(mock.aborted, 1, 'the pending attempt was torn down at its deadline');
      for (const call of [() => c.fetch(API), () => c.token(), () => c.authorizationHeader(), () => c.invalidate()]) {
        await assert.rejects(call, (e) => e instanceof Error, String(call));
      }
      assert.equal(mock.apiCount, 1, 'nothing sent by a freed client');
      try {
        c.free(); // a second free() may throw, but only a plain Error
      } catch (e) {
        assert.ok(e instanceof Error, String(e));
      }
      const other = client(mock);
      assert.equal((await other.fetch(API)).status, 200);
      const again = client(mock);
      again.free();
      assert.equal((await other.fetch(API)).status, 200, 'freeing another client does not disturb this one');
    },
  },
  {
    // The token exchange inside fetch: a 503 is retried; a hang is torn down at timeoutMs; a
    // network failure, an oversized answer (its body cancelled) and a redirect (not followed)
    // fail the call with their TokenError; the client recovers afterwards.
    name: 'token endpoint failures inside fetch: retried, torn down, refused, then paused',
    async run({ MockProvider, client, assert, isTokenError }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { maxAttempts: 2, baseDelayMs: 0, maxDelayMs: 0 } });
      mock.scriptToken({ status: 503, body: '<html>down</html>', headers: { 'content-type': 'text/html' } });
      assert.equal((await c.fetch(API)).status, 200);
      assert.deepEqual([mock.tokenCount, mock.apiCount], [2, 1]);
      const one = client(mock, { timeoutMs: 50, retry: { maxAttempts: 1 } });
      mock.scriptToken('hang');
      const e = await assert.rejects(one.fetch(API), isTokenError('timeout'));
      assert.deepEqual([e.message, e.retryable], ['timeout: token endpoint did not answer within 50 ms', true]);
      assert.ok(mock.tokenRequests[2].signal.aborted && mock.aborted === 1, 'the exchange was torn down');
      mock.scriptToken('refused');
      const n = await assert.rejects(one.fetch(API), isTokenError('network'));
      assert.equal(n.message, 'network: token endpoint unreachable: fetch failed (ECONNREFUSED)');
      mock.scriptToken({ status: 200, body: 'x'.repeat(200_000), chunks: 4 });
      const big = await assert.rejects(one.fetch(API), isTokenError('network'));
      assert.match(big.message, /exceeds 65536 bytes/);
      assert.equal(mock.cancelled, 1, 'the oversized body was cancelled');
      // Three failed exchanges in a row (timeout, refused, oversized) open the circuit: the
      // endpoint is left alone for 30 s, then probed once.
      const asked = mock.tokenCount;
      const paused = await assert.rejects(one.fetch(API), isTokenError('temporarily_unavailable'));
      assert.ok(paused.retryable && paused.retryAfterMs > 0 && paused.retryAfterMs <= 30_000, paused.message);
      assert.equal(mock.tokenCount, asked, 'not called while the circuit is open');
      mock.advance(30_000);
      // The probe meets a redirect: not followed.
      mock.scriptToken({ status: 302, headers: { location: 'https://elsewhere.test/token' } });
      await assert.rejects(one.fetch(API), (x) => x.code === 'invalid_response' && x.status === 302);
      assert.equal(mock.tokenRequests.at(-1).redirect, 'manual');
      assert.equal(mock.apiCount, 1, 'no API request without a token');
      assert.equal((await one.fetch(API)).status, 200, 'the client recovers');
    },
  },
  {
    // options.log gets the events of fetch calls — a broken cache, a 401 that stands within
    // the 30 s window — never a token or the secret; a throwing logger breaks nothing.
    name: 'options.log: events without tokens; a throwing logger is harmless',
    async run({ MockProvider, client, assert, SECRET }) {
      const mock = new MockProvider();
      const events = [];
      const broken = { get: () => { throw new Error('down'); }, set: async () => { throw new Error('down'); }, delete: async () => {} };
      const c = client(mock, {}, { cache: broken, log: (e, f) => events.push([e, f]) });
      await (await c.fetch(API)).text();
      mock.revokeAll();
      await (await c.fetch(API)).text();
      mock.revokeAll();
      assert.equal((await c.fetch(API)).status, 401, 'within the 401 window');
      const names = events.map(([e]) => e);
      assert.ok(names.includes('store_error') && names.includes('api_401_not_refreshed'), names.join());
      const text = JSON.stringify(events);
      for (const s of ['tok-1', 'tok-2', SECRET]) assert.ok(!text.includes(s), `${s} in ${text}`);
      let calls = 0;
      const d = client(mock, {}, { cache: broken, log: () => { calls += 1; throw new Error('logger down'); } });
      assert.equal((await d.fetch(API)).status, 200);
      assert.ok(calls > 0, 'the logger was called');
    },
  },
];
