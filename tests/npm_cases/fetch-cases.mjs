// `client.fetch`: the bearer, 401 replays, retries of 429/5xx with backoff and Retry-After, every
// body kind, `init` fields, network failures. Each case's first comment line says what it proves.
// Ported from the Rust wasm tests at f5c4fb4 (tests/npm_common/{mod,fetch,lane}.rs).

import { replayableBodies, streamOf, until } from './mock.mjs';

const API = 'https://api.test/v1/things';
const noDelay = (x = {}) => ({ ...x, retry: { baseDelayMs: 0, maxDelayMs: 0, ...x.retry } });

export const cases = [
  {
    // The bearer is added, the caller's headers and body kept, a caller Authorization replaced;
    // the token request is a POST with Basic auth and no redirects; a warm call exchanges nothing.
    name: 'fetch adds the bearer over the caller headers; one exchange for many calls',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock);
      const init = { method: 'POST', body: '{"a":1}', headers: { 'x-test': '1', 'content-type': 'application/json', Authorization: 'Basic caller' } };
      const res = await c.fetch(API, init);
      assert.equal(res.status, 200);
      const echo = await res.json();
      assert.deepEqual([echo.method, echo.body, echo.token], ['POST', '{"a":1}', 'tok-1']);
      const sent = mock.apiRequests[0];
      assert.equal(sent.headers.authorization, 'Bearer tok-1', 'the bearer replaces the caller Authorization');
      assert.equal(sent.headers['x-test'], '1');
      assert.equal(sent.headers['content-type'], 'application/json');
      const t = mock.tokenRequests[0];
      assert.deepEqual([t.method, t.redirect, t.body], ['POST', 'manual', 'grant_type=client_credentials']);
      assert.equal(t.headers.authorization, 'Basic Y2xpZW50LTE6czNjciUzQXQlMkIlMkYrJTI2JTI1');
      assert.equal((await c.fetch(`${API}/2`)).status, 200);
      assert.deepEqual([mock.tokenCount, mock.apiCount], [1, 2], 'the warm call used the token in memory');
      // Twenty cold calls of a new client share one exchange.
      const cold = client(mock);
      const all = await Promise.all(Array.from({ length: 20 }, (_, i) => cold.fetch(`${API}/${i}`).then((r) => r.json())));
      assert.deepEqual([...new Set(all.map((e) => e.token))], ['tok-2']);
      assert.equal(mock.tokenCount, 2);
    },
  },
  {
    // 401: the token is forgotten, a new one fetched, the request replayed once with the same
    // body; the 401's body is cancelled. Within 30 s of that refresh a 401 stands; later, a
    // second 401 within one call is returned, not looped on.
    name: '401: new token, replay once with the same body; 401 window; second 401 returned',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock);
      const init = { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } };
      await (await c.fetch(API, init)).text();
      mock.revokeAll();
      const res = await c.fetch(API, init);
      const echo = await res.json();
      assert.deepEqual([res.status, echo.token, echo.body], [200, 'tok-2', '{"a":1}']);
      assert.deepEqual([mock.apiCount, mock.tokenCount], [3, 2]);
      assert.equal(mock.apiRequests[1].headers.authorization, 'Bearer tok-1');
      assert.equal(mock.apiRequests[1].body, '{"a":1}');
      assert.equal(mock.cancelled, 1, 'the discarded 401 body was cancelled');

      mock.revokeAll();
      const stands = await c.fetch(`${API}/x`);
      assert.equal(stands.status, 401, 'within 30 s of a 401 refresh');
      assert.deepEqual(await stands.json(), { error: 'invalid_token' }, 'the returned 401 is readable');
      assert.deepEqual([mock.apiCount, mock.tokenCount, mock.cancelled], [4, 2, 1]);

      mock.advance(30_000);
      mock.scriptApi({ status: 401, body: { error: 'invalid_token' } }, { status: 401, body: { error: 'again' } });
      const second = await c.fetch(`${API}/x`);
      assert.equal(second.status, 401);
      assert.deepEqual(await second.json(), { error: 'again' }, 'the replay’s 401 is the one returned');
      assert.deepEqual([mock.apiCount, mock.tokenCount], [6, 3]);
      assert.equal(mock.apiRequests[5].headers.authorization, 'Bearer tok-3');
    },
  },
  {
    // A 401 of a call whose body is a stream (sent once): the token is forgotten and the 401
    // handed back without a replay; the next call gets a new token.
    name: '401 with a stream body: token forgotten, the 401 returned, no replay',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock);
      await c.token();
      mock.revokeAll();
      const res = await c.fetch(`${API}/upload`, { method: 'PUT', body: streamOf('streamed'), duplex: 'half' });
      assert.equal(res.status, 401);
      assert.deepEqual(await res.json(), { error: 'invalid_token' });
      assert.equal(mock.apiCount, 1);
      assert.deepEqual([mock.apiRequests[0].body, mock.apiRequests[0].headers.authorization], ['streamed', 'Bearer tok-1']);
      assert.equal(mock.cancelled, 0, 'the returned body is not cancelled');
      assert.equal(mock.tokenCount, 1);
      assert.equal((await c.token()).accessToken, 'tok-2', 'the refused token was forgotten');
      const next = await (await c.fetch(`${API}/y`)).json();
      assert.equal(next.token, 'tok-2');
    },
  },
  {
    // A 401 whose new token cannot be had: the exchange's TokenError is thrown, the 401 body
    // cancelled.
    name: '401 then a failed exchange: the exchange error is thrown',
    async run({ MockProvider, client, assert, isTokenError }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { maxAttempts: 1 } });
      await c.token();
      mock.revokeAll();
      mock.scriptToken({ status: 401, body: { error: 'invalid_client' } });
      const e = await assert.rejects(c.fetch(API), isTokenError('invalid_client'));
      assert.deepEqual([e.status, e.retryable], [401, false]);
      assert.deepEqual([mock.apiCount, mock.tokenCount, mock.cancelled], [1, 2, 1]);
    },
  },
  {
    // A 401 stops concurrent calls from presenting the refused token: a call that starts while
    // the refresh is under way waits for it and sends the new token.
    name: 'a 401 makes concurrent calls wait for the new token',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, noDelay());
      await c.token();
      mock.revokeAll();
      mock.tokenDelayMs = 100;
      const first = c.fetch(`${API}/a`);
      await until(() => mock.tokenCount === 2, 'the refresh to start');
      const second = c.fetch(`${API}/b`);
      for (const p of [first, second]) {
        const res = await p;
        assert.deepEqual([res.status, (await res.json()).token], [200, 'tok-2']);
      }
      assert.deepEqual([mock.apiCount, mock.tokenCount], [3, 2]);
      const tokens = mock.apiRequests.map((r) => r.headers.authorization);
      assert.deepEqual(tokens, ['Bearer tok-1', 'Bearer tok-2', 'Bearer tok-2'], 'tok-1 was presented once');
    },
  },
  {
    // Two calls refused together: one exchange between them, both replayed with it.
    name: 'concurrent 401s share one exchange',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, noDelay());
      await c.token();
      mock.revokeAll();
      mock.tokenDelayMs = 30;
      const out = await Promise.all([c.fetch(`${API}/a`), c.fetch(`${API}/b`)].map((p) => p.then((r) => r.json())));
      assert.deepEqual(out.map((e) => e.token), ['tok-2', 'tok-2']);
      assert.deepEqual([mock.apiCount, mock.tokenCount, mock.cancelled], [4, 2, 2]);
    },
  },
  {
    // 503 and 429 on a GET are retried (bodies of the discarded answers cancelled); POST and
    // PATCH (and unknown methods) answers come back as they are; PUT, DELETE, OPTIONS (any
    // case) are retried.
    name: '429/5xx retried for idempotent methods only',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, noDelay());
      await c.token();
      mock.scriptApi({ status: 503, body: 'busy' }, { status: 429, headers: { 'retry-after': '0' } });
      const res = await c.fetch(API);
      assert.deepEqual([res.status, (await res.json()).method], [200, 'GET']);
      assert.deepEqual([mock.apiCount, mock.cancelled], [3, 2]);
      for (const method of ['POST', 'PATCH', 'post', 'PURGE']) {
        const before = mock.apiCount;
        mock.scriptApi({ status: 503, body: { busy: method } });
        const r = await c.fetch(API, { method, body: 'x' });
        assert.equal(r.status, 503, method);
        assert.deepEqual(await r.json(), { busy: method }, `${method}: the answer itself`);
        assert.equal(mock.apiCount, before + 1, `${method}: not retried`);
      }
      for (const method of ['PUT', 'DELETE', 'OPTIONS', 'put']) {
        const before = mock.apiCount;
        mock.scriptApi({ status: 502, body: 'bad gateway' });
        const r = await c.fetch(API, { method });
        assert.equal(r.status, 200, method);
        assert.equal(mock.apiCount, before + 2, `${method}: retried once`);
      }
      assert.equal(mock.cancelled, 6, 'every discarded answer was cancelled, no returned one');
    },
  },
  {
    // When retries run out the last 5xx is the caller's response, readable; the earlier ones
    // were cancelled.
    name: 'retries run out: the last answer is returned',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, noDelay({ retry: { maxAttempts: 3 } }));
      await c.token();
      mock.scriptApi({ status: 503, body: 'busy-1' }, { status: 500, body: 'busy-2' }, { status: 503, body: 'busy-3' });
      const res = await c.fetch(API);
      assert.deepEqual([res.status, await res.text()], [503, 'busy-3']);
      assert.deepEqual([mock.apiCount, mock.cancelled], [3, 2]);
      // A 4xx other than 401/429 is never retried.
      mock.scriptApi({ status: 404, body: { missing: true } });
      const missing = await c.fetch(API);
      assert.deepEqual([missing.status, mock.apiCount], [404, 4]);
    },
  },
  {
    // retryUnsafeMethods: a POST's 503 is retried with the same body, but a POST that timed out
    // or lost its connection is not (it may have taken effect).
    name: 'retryUnsafeMethods retries a POST 503, never a POST timeout or network failure',
    async run({ MockProvider, client, assert, isTokenError }) {
      const mock = new MockProvider();
      const c = client(mock, { timeoutMs: 50, retry: { retryUnsafeMethods: true, baseDelayMs: 0, maxDelayMs: 0 } });
      await c.token();
      mock.scriptApi({ status: 503, body: 'busy' });
      const res = await c.fetch(API, { method: 'POST', body: 'payload' });
      assert.deepEqual([res.status, (await res.json()).body], [200, 'payload']);
      assert.deepEqual(mock.apiRequests.map((r) => r.body), ['payload', 'payload']);
      mock.scriptApi('hang');
      await assert.rejects(c.fetch(API, { method: 'POST', body: 'p' }), isTokenError('timeout'));
      assert.deepEqual([mock.apiCount, mock.aborted], [3, 1]);
      mock.scriptApi('refused');
      await assert.rejects(c.fetch(API, { method: 'POST', body: 'p' }), isTokenError('network'));
      assert.equal(mock.apiCount, 4);
    },
  },
  {
    // Retry-After in seconds is waited for instead of the backoff (which is 0 here): one second.
    name: 'Retry-After: 1 waits a second before the retry',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { baseDelayMs: 0, maxDelayMs: 5000 } });
      await c.token();
      mock.scriptApi({ status: 503, headers: { 'retry-after': '1' } });
      const started = Date.now();
      const res = await c.fetch(API);
      const elapsed = Date.now() - started;
      assert.equal(res.status, 200);
      assert.equal(mock.apiCount, 2);
      assert.ok(elapsed >= 950 && elapsed < 3000, `waited ${elapsed} ms for Retry-After: 1`);
    },
  },
  {
    // Retry-After: 0 overrides a long backoff (base 5 s): the retry is immediate.
    name: 'Retry-After: 0 retries at once despite a long backoff',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { baseDelayMs: 5000, maxDelayMs: 5000 } });
      await c.token();
      mock.scriptApi({ status: 429, headers: { 'retry-after': '0' } }, { status: 503, headers: { 'retry-after': ' 0 ' } });
      const started = Date.now();
      assert.equal((await c.fetch(API)).status, 200);
      assert.equal(mock.apiCount, 3);
      assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    },
  },
  {
    // Retry-After as an HTTP date is measured on the injected clock (150 ms ahead of it here; on
    // the real clock that date is long past).
    name: 'Retry-After as an HTTP date counts from the injected clock',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      mock.clock = 1_700_000_000_000 - 150;
      const c = client(mock, { retry: { baseDelayMs: 0, maxDelayMs: 5000 } });
      await c.token();
      mock.scriptApi({ status: 503, headers: { 'retry-after': new Date(1_700_000_000_000).toUTCString() } });
      const started = Date.now();
      assert.equal((await c.fetch(API)).status, 200);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 140 && elapsed < 1000, `waited ${elapsed} ms`);
    },
  },
  {
    // A Retry-After beyond maxDelayMs is not waited for: the answer is returned at once.
    name: 'Retry-After beyond maxDelayMs: no retry, the answer returned',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, { retry: { baseDelayMs: 0, maxDelayMs: 1000 } });
      await c.token();
      mock.scriptApi({ status: 429, body: { slow: 'down' }, headers: { 'retry-after': '60', 'content-type': 'application/json' } });
      const started = Date.now();
      const res = await c.fetch(API);
      assert.deepEqual([res.status, res.headers.get('retry-after'), mock.apiCount], [429, '60', 1]);
      assert.deepEqual(await res.json(), { slow: 'down' });
      assert.ok(Date.now() - started < 500);
    },
  },
  {
    // Every replayable body kind (string, ArrayBuffer, typed array, DataView, Blob, FormData,
    // URLSearchParams) is handed to fetch as it is and re-sent on a retry, for string and URL
    // inputs, with the content type fetch derives.
    name: 'every replayable body kind is re-sent as is on a retry',
    async run({ MockProvider, client, assert }) {
      const bodies = replayableBodies();
      for (const [i, { kind, body, text, type }] of bodies.entries()) {
        const mock = new MockProvider();
        const c = client(mock, noDelay());
        mock.scriptApi({ status: 503, body: 'busy' });
        const [input, inputKind] = i % 2 === 0 ? [API, 'string'] : [new URL(API), 'URL'];
        const res = await c.fetch(input, { method: 'PUT', body });
        assert.deepEqual([res.status, (await res.json()).method], [200, 'PUT'], kind);
        assert.equal(mock.apiCount, 2, `${kind}: retried once`);
        for (const rec of mock.apiRequests) {
          assert.equal(rec.input, inputKind, `${kind}: no Request built`);
          assert.equal(rec.headers.authorization, 'Bearer tok-1', kind);
          if (text !== null) assert.equal(rec.body, text, kind);
          else assert.ok(rec.body.includes('name="field"') && rec.body.includes('\r\n\r\nform value\r\n'), `${kind}: ${rec.body}`);
          const sent = rec.headers['content-type'];
          if (type === null) assert.equal(sent, undefined, kind);
          else assert.ok(sent?.startsWith(type), `${kind}: content-type ${sent}`);
        }
      }
    },
  },
  {
    // A stream body is sent once: a PUT's 503 is returned although PUT is idempotent.
    name: 'a stream body is sent once, never retried',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, noDelay());
      await c.token();
      mock.scriptApi({ status: 503, body: { busy: true } });
      const res = await c.fetch(`${API}/upload`, { method: 'PUT', body: streamOf('streamed'), duplex: 'half' });
      assert.equal(res.status, 503);
      assert.deepEqual([mock.apiCount, mock.apiRequests[0].body], [1, 'streamed']);
    },
  },
  {
    // A Request input: its body is buffered and replayed after a 401 (also a Request built over
    // a stream), its headers and method kept, the caller's Request headers left as they were.
    name: 'a Request input is buffered and replayed; the caller Request is left unchanged',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, noDelay());
      const req = new Request(API, { method: 'POST', body: 'request body', headers: { 'x-test': '2', authorization: 'Basic caller' } });
      await c.token();
      mock.revokeAll();
      const res = await c.fetch(req);
      assert.deepEqual([res.status, (await res.json()).token], [200, 'tok-2']);
      for (const rec of mock.apiRequests) {
        assert.deepEqual([rec.input, rec.method, rec.body, rec.headers['x-test']], ['Request', 'POST', 'request body', '2']);
      }
      assert.deepEqual(mock.apiRequests.map((r) => r.headers.authorization), ['Bearer tok-1', 'Bearer tok-2']);
      assert.equal(req.headers.get('authorization'), 'Basic caller', 'the caller’s Request headers');
      // A Request over a stream is buffered too: its PUT's 503 is retried with the same body.
      mock.scriptApi({ status: 503, body: 'busy' });
      const streamed = new Request(API, { method: 'PUT', body: streamOf('from a stream'), duplex: 'half' });
      assert.equal((await c.fetch(streamed)).status, 200);
      assert.deepEqual(mock.apiRequests.slice(2).map((r) => r.body), ['from a stream', 'from a stream']);
      // A Request with an init: the init applies.
      const res2 = await c.fetch(new Request(API), { method: 'PUT', body: 'from init' });
      assert.deepEqual(await res2.json(), { method: 'PUT', body: 'from init', token: 'tok-2', url: API });
    },
  },
  {
    // init fields (redirect, cache, referrerPolicy, host-specific keys) reach fetch untouched;
    // a lower-case "post" is still POST; the caller's init and Headers are left unchanged.
    name: 'init fields pass through; the caller init and headers are left unchanged',
    async run({ MockProvider, client, assert }) {
      const mock = new MockProvider();
      const c = client(mock, noDelay());
      const headers = new Headers({ 'x-test': '1', authorization: 'Basic caller' });
      const init = { method: 'post', body: 'b', headers, redirect: 'error', cache: 'no-store', referrerPolicy: 'no-referrer', 'x-host-option': 'kept' };
      const keys = Object.keys(init);
      mock.scriptApi({ status: 503, body: { busy: true } });
      assert.equal((await c.fetch(API, init)).status, 503, 'POST: not retried');
      assert.equal(mock.apiCount, 1);
      const rec = mock.apiRequests[0];
      assert.deepEqual([rec.input, rec.method, rec.body, rec.redirect], ['string', 'POST', 'b', 'error']);
      assert.deepEqual([rec.init.cache, rec.init.referrerPolicy, rec.init['x-host-option']], ['no-store', 'no-referrer', 'kept']);
      assert.deepEqual([rec.headers['x-test'], rec.headers.authorization], ['1', 'Bearer tok-1']);
      assert.equal(headers.get('authorization'), 'Basic caller');
      assert.equal(init.headers, headers);
      assert.deepEqual(Object.keys(init), keys, 'no key added to the caller init (signal)');
      // Plain-object headers stay as they were too.
      const plain = { Authorization: 'Basic caller', 'x-test': '3' };
      const init2 = { headers: plain };
      await (await c.fetch(API, init2)).text();
      assert.deepEqual(plain, { Authorization: 'Basic caller', 'x-test': '3' });
      assert.deepEqual(Object.keys(init2), ['headers']);
      assert.equal(mock.apiRequests[1].headers.authorization, 'Bearer tok-1');
      // No init: a GET with our headers and signal only.
      const res = await c.fetch(new URL(API));
      assert.deepEqual([res.status, (await res.json()).method], [200, 'GET']);
      assert.deepEqual([mock.apiRequests[2].input, mock.apiRequests[2].initKeys], ['URL', ['headers', 'signal']]);
      assert.deepEqual(mock.apiRequests[2].init, {});
    },
  },
  {
    // A real network failure is TokenError `network` with what fetch threw as its cause; a
    // GET is retried, a POST is not.
    name: 'network failures: TokenError network with its cause; retried for a GET only',
    async run({ MockProvider, client, assert, isTokenError }) {
      const mock = new MockProvider();
      const c = client(mock, noDelay());
      await c.token();
      mock.scriptApi('network', 'refused');
      assert.equal((await c.fetch(API)).status, 200);
      assert.equal(mock.apiCount, 3);
      mock.scriptApi('refused');
      const e = await assert.rejects(c.fetch(API, { method: 'POST', body: 'x' }), isTokenError('network'));
      assert.equal(e.message, 'network: the API request failed: fetch failed (ECONNREFUSED)');
      assert.deepEqual([e.retryable, e.status, mock.apiCount], [true, null, 4]);
      assert.ok(e.cause instanceof TypeError && e.cause.cause.code === 'ECONNREFUSED', 'the cause is what fetch threw');
      const once = client(mock, { retry: { maxAttempts: 1 } });
      mock.scriptApi('network');
      const e1 = await assert.rejects(once.fetch(API), isTokenError('network'));
      assert.equal(e1.message, 'network: the API request failed: fetch failed');
    },
  },
  {
    // A token that cannot be had fails the call with the exchange's TokenError (the secret
    // scrubbed from a provider echo); the cooldown answers the next call without the provider.
    name: 'token errors are thrown by fetch; nothing reaches the API',
    async run({ MockProvider, client, assert, isTokenError, SECRET }) {
      const mock = new MockProvider();
      const c = client(mock, { authStyle: 'json_body' });
      mock.scriptToken({ status: 401, body: { error: 'invalid_client', error_description: `unknown client, secret ${SECRET}` } });
      const e = await assert.rejects(c.fetch(API), isTokenError('invalid_client'));
      assert.deepEqual([e.status, e.retryable, e.providerError], [401, false, 'invalid_client']);
      assert.ok(e.message.includes('[redacted]'), e.message);
      await assert.rejects(c.fetch(API), isTokenError('invalid_client'));
      assert.deepEqual([mock.tokenCount, mock.apiCount], [1, 0]);
    },
  },
];
