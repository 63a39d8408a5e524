// An in-process provider for the wasm-bindgen tests of the npm package: a `fetch` function
// serving a token endpoint (https://auth.test/token) and an API (https://api.test/...), recording
// every request exactly as it arrived. Standard JavaScript only, so it runs in Node and Chromium.

export class MockProvider {
  constructor() {
    this.tokenRequests = [];
    this.apiRequests = [];
    this.tokenScript = [];
    this.apiScript = [];
    this.lifetime = 3600;
    this.issued = 0;
    this.valid = new Set();
    this.clock = 1_700_000_000_000;
    this.hanging = []; // resolvers of 'hang' requests that were sent without a signal
    this.aborted = 0; // 'hang' requests ended by their signal
    this.cancelled = 0; // response bodies cancelled by the client
    this.tokenDelayMs = 0; // how long the token endpoint takes to issue a token
    this.fetch = (input, init) => this.handle(input, init);
    this.now = () => this.clock;
  }

  /** Queues replies for the next token requests: {status, body, headers} or 'hang' or 'network'. */
  scriptToken(entry) { this.tokenScript.push(entry); }
  /** Queues replies for the next API requests. */
  scriptApi(entry) { this.apiScript.push(entry); }
  revokeAll() { this.valid.clear(); }
  /** Answers every 'hang' request still pending (sent without a signal) with a 200. */
  releaseHanging() {
    const mock = this;
    for (const resolve of this.hanging.splice(0)) {
      resolve(new Response(new ReadableStream({
        pull(ctl) { ctl.enqueue(new TextEncoder().encode('{"late":true}')); },
        cancel() { mock.cancelled += 1; },
      }), { status: 200 }));
    }
  }
  hangingCount() { return this.hanging.length; }
  setTokenDelay(ms) { this.tokenDelayMs = ms; }
  abortedCount() { return this.aborted; }
  cancelledCount() { return this.cancelled; }
  advance(ms) { this.clock += ms; }
  tokenCount() { return this.tokenRequests.length; }
  apiCount() { return this.apiRequests.length; }
  tokenRequest(i) { return this.tokenRequests[i]; }
  apiRequest(i) { return this.apiRequests[i]; }

  async handle(input, init) {
    const req = input instanceof Request && init === undefined ? input : new Request(input, init);
    // The signal `fetch` was handed (a Request input always has one; an init may have none).
    const signal = init === undefined ? req.signal : init.signal;
    if (signal?.aborted) throw signal.reason;
    const rec = {
      url: req.url,
      method: req.method,
      headers: Object.fromEntries(req.headers),
      redirect: init?.redirect ?? req.redirect,
      // What `fetch` itself was handed: the input's kind and init's plain fields.
      input: typeof input === 'string' ? 'string' : input instanceof URL ? 'URL' : input instanceof Request ? 'Request' : typeof input,
      init: init === undefined ? null : Object.fromEntries(Object.entries(init)
        .filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v))),
      initKeys: init === undefined ? null : Object.keys(init).sort(),
      body: await req.text(),
    };
    const isToken = new URL(req.url).pathname === '/token';
    (isToken ? this.tokenRequests : this.apiRequests).push(rec);
    const entry = (isToken ? this.tokenScript : this.apiScript).shift();
    if (entry === 'hang') {
      // Never answers on its own: ends when the signal `fetch` was handed aborts, or, without
      // one, when the test calls releaseHanging().
      return new Promise((resolve, reject) => {
        if (!signal) return this.hanging.push(resolve);
        signal.addEventListener('abort', () => {
          this.aborted += 1;
          reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
        });
      });
    }
    if (entry === 'network') throw new TypeError('fetch failed');
    if (entry) {
      let body = typeof entry.body === 'string' ? entry.body : JSON.stringify(entry.body ?? {});
      if (entry.bodyDelayMs) {
        // Headers now, the body `bodyDelayMs` later; like a real fetch, an abort of the
        // request's signal meanwhile errors the body.
        const bytes = new TextEncoder().encode(body);
        body = new ReadableStream({
          start(ctl) {
            const timer = setTimeout(() => { ctl.enqueue(bytes); ctl.close(); }, entry.bodyDelayMs);
            signal?.addEventListener('abort', () => { clearTimeout(timer); ctl.error(signal.reason); });
          },
        });
      }
      return new Response(body, { status: entry.status, headers: entry.headers ?? { 'content-type': 'application/json' } });
    }
    if (isToken) {
      if (this.tokenDelayMs) await new Promise((r) => setTimeout(r, this.tokenDelayMs));
      this.issued += 1;
      const token = `tok-${this.issued}`;
      this.valid.add(token);
      return Response.json({ access_token: token, token_type: 'Bearer', expires_in: this.lifetime, scope: 'read' });
    }
    const auth = /^Bearer (.+)$/.exec(rec.headers.authorization ?? '');
    if (!auth || !this.valid.has(auth[1])) return Response.json({ error: 'invalid_token' }, { status: 401 });
    return Response.json({ method: rec.method, body: rec.body, token: auth[1] });
  }
}

/** A TokenCache over a Map, counting calls: {get, set, delete, map, log}. */
export function mapCache() {
  const map = new Map();
  const log = [];
  return {
    map,
    log,
    async get(key) { log.push(['get', key]); return map.get(key) ?? null; },
    async set(key, value, ttl) { log.push(['set', key, ttl]); map.set(key, value); },
    async delete(key) { log.push(['delete', key]); map.delete(key); },
  };
}

/** A cache adapter whose calls never settle (a Redis client queueing while disconnected). */
export function hangingCache() {
  const never = () => new Promise(() => {});
  return { get: never, set: never, delete: never };
}

/**
 * A request body of every kind `client.fetch` replays as it is: {kind, body, text, type} with
 * the text the server must receive (null for FormData, whose boundary varies) and the
 * content-type prefix `fetch` derives from the body (null: none).
 */
export function replayableBodies() {
  const form = new FormData();
  form.append('field', 'form value');
  const bytes = (s) => new TextEncoder().encode(s);
  return [
    { kind: 'string', body: 'plain text', text: 'plain text', type: 'text/plain' },
    { kind: 'ArrayBuffer', body: bytes('array buffer').buffer, text: 'array buffer', type: null },
    { kind: 'Uint8Array', body: bytes('typed array'), text: 'typed array', type: null },
    { kind: 'DataView', body: new DataView(bytes('data view').buffer), text: 'data view', type: null },
    { kind: 'Blob', body: new Blob(['a blob'], { type: 'application/x-blob' }), text: 'a blob', type: 'application/x-blob' },
    { kind: 'FormData', body: form, text: null, type: 'multipart/form-data' },
    { kind: 'URLSearchParams', body: new URLSearchParams({ a: '1', b: 'two' }), text: 'a=1&b=two', type: 'application/x-www-form-urlencoded' },
  ];
}

/** A ReadableStream of one chunk, `text`. */
export function streamOf(text) {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({ start(ctl) { ctl.enqueue(bytes); ctl.close(); } });
}

/** Waits `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sets globalThis.fetch, returning the previous value (to restore it). */
export function swapGlobalFetch(fetch) {
  const saved = globalThis.fetch;
  globalThis.fetch = fetch;
  return saved;
}

/** Whether `e` is a TokenError (by class name and Error ancestry) and its stack/message lack `s`. */
export function errorShape(e) {
  return {
    isError: e instanceof Error,
    name: e?.name,
    ctor: e?.constructor?.name,
    code: e?.code,
    status: e?.status,
    retryable: e?.retryable,
    providerError: e?.providerError,
    text: `${e?.message}\n${e?.stack}`,
  };
}

/**
 * What the package's façade hands to `new Core(config, host)`, over `mock.fetch`: `send` speaks
 * the core's transport protocol (see npm/src/host.rs), `now` is the mock's clock. `extra`
 * adds `cache` or `log`.
 */
export function hostFor(mock, extra = {}) {
  return {
    async send(req) {
      try {
        const res = await mock.fetch(req.url, { method: req.method, headers: req.headers, body: req.body, redirect: 'manual' });
        const body = new Uint8Array(await res.arrayBuffer());
        if (body.byteLength > req.limit) return { error: 'too_large' };
        return { status: res.status, headers: [...res.headers], body };
      } catch (error) {
        return { error: 'network', cause: error };
      }
    },
    now: () => mock.clock,
    ...extra,
  };
}

/** A host whose `send` answers every token request with `reply` (a protocol object). */
export function hostReplying(reply) {
  return { send: async () => reply };
}

/** A network failure as Node's fetch reports one. */
export function refusedConnection() {
  return new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) });
}
