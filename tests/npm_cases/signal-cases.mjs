// `client.fetch` and signals: every attempt carries an AbortSignal of ours, aborted at
// `timeoutMs` while the response headers are awaited (combined with the caller's own signal,
// which our timeout never aborts); a late body is read in full; the caller's abort is rethrown
// as it is, at once, in flight, during the token exchange and during a backoff.

import { sleep, until } from './mock.mjs';

const API = 'https://api.test/v1/slow';
const isTimeoutError = (e) => e instanceof DOMException && e.name === 'TimeoutError';

export const cases = [
  {
    // Every attempt is handed an AbortSignal of its own (direct string/URL input, with or
    // without a caller signal, Request input, each retry), never the caller's signal itself.
    name: 'every attempt carries its own AbortSignal',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { baseDelayMs: 0, maxDelayMs: 0 } });
      const caller = new AbortController();
      await (await c.fetch(API)).text();
      await (await c.fetch(new URL(API))).text();
      await (await c.fetch(API, { signal: caller.signal })).text();
      await (await c.fetch(new Request(API, { signal: caller.signal }))).text();
      mock.scriptApi({ status: 503, body: 'busy' });
      await (await c.fetch(API)).text();
      assert.equal(mock.apiCount, 6);
      for (const [i, rec] of mock.apiRequests.entries()) {
        assert.ok(rec.signal instanceof AbortSignal, `attempt ${i} has a signal`);
        assert.ok(rec.signal !== caller.signal, `attempt ${i}: not the caller’s signal itself`);
        assert.equal(rec.signal.aborted, false, `attempt ${i}: answered in time, not aborted`);
        if (rec.input !== 'Request') assert.ok(rec.initKeys.includes('signal'), `attempt ${i}`);
      }
      assert.equal(mock.apiRequests[3].input, 'Request');
      assert.ok(mock.apiRequests[4].signal !== mock.apiRequests[5].signal, 'a retry gets a fresh signal');
      assert.equal(caller.signal.aborted, false);
      // The token request carries a signal too (its timeout covers the whole exchange).
      assert.ok(mock.tokenRequests[0].signal instanceof AbortSignal);
    },
  },
  {
    // A hanging attempt is aborted at timeoutMs (its signal's reason a TimeoutError); a GET is
    // retried and each attempt torn down in turn, with or without a caller signal, which our
    // timeout never aborts. Nothing is left hanging.
    name: 'a hanging attempt is torn down at timeoutMs, with or without a caller signal',
    async run({ MockProvider, client, assert, isTokenError }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 50, retry: { maxAttempts: 2, baseDelayMs: 0, maxDelayMs: 0 } });
      await c.token();
      for (const withSignal of [false, true]) {
        const before = mock.apiCount;
        const aborted = mock.aborted;
        const caller = new AbortController();
        mock.scriptApi('hang', 'hang');
        const started = Date.now();
        const e = await assert.rejects(c.fetch(API, withSignal ? { signal: caller.signal } : undefined), isTokenError('timeout'));
        const elapsed = Date.now() - started;
        assert.equal(e.message, 'timeout: the API did not answer within 50 ms');
        assert.deepEqual([e.retryable, e.status], [true, null]);
        assert.ok(elapsed >= 90 && elapsed < 1500, `two attempts of 50 ms took ${elapsed} ms`);
        assert.equal(mock.apiCount, before + 2, 'a GET’s timeout is retried');
        assert.equal(mock.aborted, aborted + 2, 'both attempts were aborted');
        for (const rec of mock.apiRequests.slice(before)) {
          assert.ok(rec.signal.aborted && isTimeoutError(rec.signal.reason), `reason: ${rec.signal.reason}`);
        }
        assert.equal(caller.signal.aborted, false, 'the caller’s signal is not aborted by our timeout');
      }
      assert.equal(mock.hanging, 0, 'no attempt went out without a signal');
    },
  },
  {
    // A Request input's attempt is torn down at timeoutMs as well; the caller signal inside
    // the Request is left alone.
    name: 'a hanging Request input is torn down at timeoutMs',
    async run({ MockProvider, client, assert, isTokenError }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 50, retry: { maxAttempts: 1 } });
      await c.token();
      const caller = new AbortController();
      mock.scriptApi('hang');
      await assert.rejects(c.fetch(new Request(API, { signal: caller.signal })), isTokenError('timeout'));
      assert.deepEqual([mock.apiCount, mock.aborted, mock.hanging], [1, 1, 0]);
      assert.equal(mock.apiRequests[0].input, 'Request');
      assert.equal(caller.signal.aborted, false);
    },
  },
  {
    // A POST that timed out is not retried (it may have taken effect): one attempt, aborted.
    name: 'a POST timeout is not retried',
    async run({ MockProvider, client, assert, isTokenError }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 50, retry: { baseDelayMs: 0, maxDelayMs: 0 } });
      await c.token();
      mock.scriptApi('hang', 'hang');
      await assert.rejects(c.fetch(API, { method: 'POST', body: 'x' }), isTokenError('timeout'));
      assert.deepEqual([mock.apiCount, mock.aborted], [1, 1]);
      mock.apiScript.length = 0;
    },
  },
  {
    // The timeout covers the wait for the headers only: a body that arrives after timeoutMs is
    // read in full, with or without a caller signal (its attempt's signal is never aborted).
    name: 'headers in time, body later than timeoutMs: the body is read in full',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 50 });
      await c.token();
      for (const withSignal of [false, true]) {
        const caller = new AbortController();
        mock.scriptApi({ status: 200, body: { late: withSignal }, bodyDelayMs: 150 });
        const res = await c.fetch(`${API}/late`, withSignal ? { signal: caller.signal } : undefined);
        assert.equal(res.status, 200);
        const started = Date.now();
        assert.deepEqual(await res.json(), { late: withSignal });
        assert.ok(Date.now() - started >= 80, 'the body really came late');
        assert.equal(mock.apiRequests.at(-1).signal.aborted, false);
      }
      assert.deepEqual([mock.apiCount, mock.aborted], [2, 0]);
    },
  },
  {
    // The caller's abort in flight rejects with the caller's own reason, tears the attempt down
    // and is never retried (string, URL and Request inputs, a POST); the token is left alone.
    name: 'the caller abort in flight is rethrown as is, never retried',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { baseDelayMs: 0, maxDelayMs: 0 } });
      await c.token();
      const inputs = [
        (s) => [API, { signal: s }],
        (s) => [new URL(API), { signal: s }],
        (s) => [new Request(API, { signal: s })],
        // A POST, whose failure would not be retried: the abort must still come back as is.
        (s) => [API, { method: 'POST', body: 'x', signal: s }],
      ];
      for (const [i, make] of inputs.entries()) {
        const before = mock.apiCount;
        const ctl = new AbortController();
        mock.scriptApi('hang');
        const pending = c.fetch(...make(ctl.signal));
        await until(() => mock.apiCount === before + 1, 'the request to go out');
        const reason = new Error(`caller gave up ${i}`);
        ctl.abort(reason);
        const e = await assert.rejects(pending, (x) => x === reason, 'the caller’s own reason');
        assert.equal(e.message, `caller gave up ${i}`);
        assert.ok(mock.apiRequests[before].signal.aborted, 'the attempt was torn down');
        await sleep(20);
        assert.equal(mock.apiCount, before + 1, 'not retried');
      }
      assert.deepEqual([mock.aborted, mock.tokenCount], [4, 1]);
      assert.equal((await c.fetch(API)).status, 200, 'the token is still good');
      assert.equal(mock.tokenCount, 1);
    },
  },
  {
    // The caller's abort during the token exchange ends the call at once with its reason, not
    // when the exchange's timeout runs out; no API request is made.
    name: 'the caller abort during the token exchange ends the call at once',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 1000, retry: { maxAttempts: 1 } });
      mock.scriptToken('hang');
      const ctl = new AbortController();
      const pending = c.fetch(API, { signal: ctl.signal });
      await until(() => mock.tokenCount === 1, 'the exchange to start');
      const reason = new Error('caller gave up during the exchange');
      ctl.abort(reason);
      const started = Date.now();
      await assert.rejects(pending, (x) => x === reason);
      assert.ok(Date.now() - started < 500, 'not after the exchange’s timeout');
      assert.equal(mock.apiCount, 0);
    },
  },
  {
    // An already-aborted signal: the call rejects with its reason and sends nothing at all.
    name: 'an already aborted signal sends nothing',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock);
      await assert.rejects(c.fetch(API, { signal: AbortSignal.abort() }), (e) => e.name === 'AbortError');
      const reason = new Error('before the call');
      await assert.rejects(c.fetch(new Request(API, { signal: AbortSignal.abort(reason) })), (e) => e === reason);
      assert.deepEqual([mock.tokenCount, mock.apiCount], [0, 0]);
      await c.token();
      await assert.rejects(c.fetch(API, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
      assert.deepEqual([mock.tokenCount, mock.apiCount], [1, 0]);
    },
  },
  {
    // The caller's abort during a backoff (Retry-After: 3) ends the call at once; no further
    // attempt is made afterwards.
    name: 'the caller abort during a backoff ends the call at once',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { maxAttempts: 3, baseDelayMs: 3000, maxDelayMs: 3000 } });
      await c.token();
      mock.scriptApi({ status: 503, headers: { 'retry-after': '3' } });
      const ctl = new AbortController();
      const pending = c.fetch(API, { signal: ctl.signal });
      await until(() => mock.cancelled === 1, 'the 503 to be discarded (backoff under way)');
      ctl.abort();
      const started = Date.now();
      await assert.rejects(pending, (e) => e.name === 'AbortError');
      assert.ok(Date.now() - started < 500, 'not after the 3 s backoff');
      await sleep(30);
      assert.equal(mock.apiCount, 1, 'no attempt after the abort');
    },
  },
  {
    // The caller's abort while a 401's new token is being fetched ends the call at once; the
    // 401's body was cancelled.
    name: 'the caller abort during the exchange after a 401 ends the call at once',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock);
      await c.token();
      mock.revokeAll();
      mock.tokenDelayMs = 300;
      const ctl = new AbortController();
      const pending = c.fetch(API, { signal: ctl.signal });
      await until(() => mock.tokenCount === 2, 'the refresh to start');
      const reason = new Error('enough');
      ctl.abort(reason);
      const started = Date.now();
      await assert.rejects(pending, (e) => e === reason);
      assert.ok(Date.now() - started < 200);
      assert.deepEqual([mock.apiCount, mock.cancelled], [1, 1]);
    },
  },
  {
    // Where the host has no AbortSignal.any (Node < 20.3, older browsers) the caller's signal is
    // forwarded by a listener: the caller's abort still ends an attempt with its reason, and
    // our timeout still never aborts the caller's signal.
    name: 'without AbortSignal.any the caller abort and the timeout still work',
    async run({ MockProvider, client, assert, isTokenError }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 50, retry: { maxAttempts: 1 } });
      await c.token();
      const saved = Object.getOwnPropertyDescriptor(AbortSignal, 'any');
      try {
        Object.defineProperty(AbortSignal, 'any', { value: undefined, configurable: true, writable: true });
        const caller = new AbortController();
        mock.scriptApi('hang');
        await assert.rejects(c.fetch(API, { signal: caller.signal }), isTokenError('timeout'));
        assert.deepEqual([caller.signal.aborted, mock.aborted], [false, 1]);
        const ctl = new AbortController();
        mock.scriptApi('hang');
        const pending = c.fetch(API, { signal: ctl.signal });
        await until(() => mock.apiCount === 2, 'the request to go out');
        const reason = new Error('stop');
        ctl.abort(reason);
        await assert.rejects(pending, (e) => e === reason);
        assert.equal(mock.aborted, 2, 'the attempt was torn down');
      } finally {
        Object.defineProperty(AbortSignal, 'any', saved);
      }
    },
  },
  {
    // Without AbortSignal.any, a long-lived caller signal (an app-wide shutdown signal) must
    // not collect one listener per call that has ended.
    name: 'without AbortSignal.any no listener is left on the caller signal after a call',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock);
      await c.token();
      const caller = new AbortController();
      const live = new Set();
      const { signal } = caller;
      const add = signal.addEventListener.bind(signal);
      const remove = signal.removeEventListener.bind(signal);
      signal.addEventListener = (type, fn, opts) => { if (type === 'abort') live.add(fn); return add(type, fn, opts); };
      signal.removeEventListener = (type, fn, opts) => { live.delete(fn); return remove(type, fn, opts); };
      const saved = Object.getOwnPropertyDescriptor(AbortSignal, 'any');
      try {
        Object.defineProperty(AbortSignal, 'any', { value: undefined, configurable: true, writable: true });
        for (let i = 0; i < 5; i += 1) await (await c.fetch(API, { signal })).text();
      } finally {
        Object.defineProperty(AbortSignal, 'any', saved);
      }
      assert.equal(mock.apiCount, 5);
      assert.equal(live.size, 0, 'abort listeners left on the caller signal after 5 calls');
    },
  },
];
