// An in-process provider for the façade tests (tests/npm_cases/): a `fetch` function serving a
// token endpoint (https://auth.test/token) and an API (https://api.test/...), recording every
// request as it arrived. Given to a client as `options.fetch`, with `now` as its clock. Standard
// web APIs only, so the same module runs in Node and in Chromium. Adapted from
// npm/tests/common/mock.js: every scripted body is a stream that counts its cancellation, and
// hanging requests are counted by whether a signal ended them.

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
    this.hanging = 0; // 'hang' requests sent without a signal: nothing can ever end them
    this.aborted = 0; // 'hang' requests ended by their signal
    this.cancelled = 0; // response bodies cancelled by the client (see `respond`)
    this.tokenDelayMs = 0; // how long the token endpoint takes to issue a token
    this.fetch = (input, init) => this.handle(input, init);
    this.now = () => this.clock;
  }

  /**
   * Queues replies for the next token requests: `{status, body, headers, bodyDelayMs, chunks}`, or
   * 'hang' (never answers; ends when the request's signal aborts), 'network' (a TypeError
   * like a failed connection) or 'refused' (Node's ECONNREFUSED shape).
   */
  scriptToken(...entries) { this.tokenScript.push(...entries); }
  /** Queues replies for the next API requests (same forms). */
  scriptApi(...entries) { this.apiScript.push(...entries); }
  /** The API refuses every token issued so far (401). */
  revokeAll() { this.valid.clear(); }
  advance(ms) { this.clock += ms; }
  get tokenCount() { return this.tokenRequests.length; }
  get apiCount() { return this.apiRequests.length; }

  /**
   * A response whose body is a stream of `text` (in `chunks` pieces) that counts a
   * cancellation; with `bodyDelayMs` the body comes that long after the headers.
   */
  respond(status, text, headers = { 'content-type': 'application/json' }, bodyDelayMs = 0, signal = undefined, chunks = 1) {
    const all = new TextEncoder().encode(text);
    const size = Math.ceil(all.byteLength / chunks);
    const parts = Array.from({ length: chunks }, (_, i) => all.subarray(i * size, (i + 1) * size));
    const mock = this;
    let timer;
    const body = new ReadableStream({
      start(ctl) {
        // A real fetch errors the body when the request's signal aborts meanwhile.
        if (bodyDelayMs && signal) {
          signal.addEventListener('abort', () => { clearTimeout(timer); ctl.error(signal.reason); }, { once: true });
        }
      },
      pull(ctl) {
        if (parts.length === 0) return ctl.close();
        const bytes = parts.shift();
        if (!bodyDelayMs) return ctl.enqueue(bytes);
        return new Promise((resolve) => {
          timer = setTimeout(() => { ctl.enqueue(bytes); resolve(); }, bodyDelayMs);
        });
      },
      cancel() { mock.cancelled += 1; },
    });
    return new Response(body, { status, headers });
  }

  async handle(input, init) {
    // `new Request` refuses what `fetch` refuses: the host's own TypeError, as fetch throws it.
    const req = input instanceof Request && init === undefined ? input : new Request(input, init);
    // The signal `fetch` was handed (a Request input always has one; an init may have none).
    const signal = init === undefined ? req.signal : init.signal;
    if (signal?.aborted) throw signal.reason;
    const rec = {
      url: req.url,
      method: req.method,
      headers: Object.fromEntries(req.headers),
      redirect: init?.redirect ?? req.redirect,
      // What `fetch` itself was handed: the input's kind, init's plain fields and keys.
      input: typeof input === 'string' ? 'string' : input instanceof URL ? 'URL' : input instanceof Request ? 'Request' : typeof input,
      init: init === undefined ? null : Object.fromEntries(Object.entries(init)
        .filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v))),
      initKeys: init === undefined ? null : Object.keys(init).sort(),
      signal, // the AbortSignal object itself (not JSON)
      body: await req.text(),
    };
    const isToken = new URL(req.url).pathname === '/token';
    (isToken ? this.tokenRequests : this.apiRequests).push(rec);
    const entry = (isToken ? this.tokenScript : this.apiScript).shift();
    if (entry === 'hang') {
      return new Promise((resolve, reject) => {
        if (!signal) {
          this.hanging += 1;
          return;
        }
        signal.addEventListener('abort', () => {
          this.aborted += 1;
          reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
        }, { once: true });
      });
    }
    if (entry === 'network') throw new TypeError('fetch failed');
    if (entry === 'refused') throw refusedConnection();
    if (entry) {
      const text = typeof entry.body === 'string' ? entry.body : JSON.stringify(entry.body ?? {});
      return this.respond(entry.status, text, entry.headers, entry.bodyDelayMs, signal, entry.chunks);
    }
    if (isToken) {
      if (this.tokenDelayMs) await new Promise((r) => setTimeout(r, this.tokenDelayMs));
      this.issued += 1;
      const token = `tok-${this.issued}`;
      this.valid.add(token);
      return Response.json({ access_token: token, token_type: 'Bearer', expires_in: this.lifetime, scope: 'read' });
    }
    const auth = /^Bearer (.+)$/.exec(rec.headers.authorization ?? '');
    if (!auth || !this.valid.has(auth[1])) return this.respond(401, '{"error":"invalid_token"}');
    return this.respond(200, JSON.stringify({ method: rec.method, body: rec.body, token: auth[1], url: rec.url }));
  }
}

/** A TokenCache over a Map, logging calls: {get, set, delete, map, log}. */
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

/** Resolves once `cond()` holds (checked every 5 ms); rejects after `ms`. */
export async function until(cond, what, ms = 2000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A network failure as Node's fetch reports one. */
export function refusedConnection() {
  return new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) });
}
