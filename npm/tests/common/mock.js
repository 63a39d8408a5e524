// An in-process token endpoint for the wasm-bindgen tests of the npm crate's `Core`: a `fetch`
// serving https://auth.test/token and recording every request exactly as it arrived, reached
// through the host protocol the package's façade speaks (`hostFor`). Standard JavaScript only,
// so it runs in Node and Chromium. (The façade's own tests, with an API as well, use
// tests/npm_cases/mock.mjs.)

export class MockProvider {
  constructor() {
    this.tokenRequests = [];
    this.tokenScript = [];
    this.issued = 0;
    this.clock = 1_700_000_000_000;
    this.fetch = (input, init) => this.handle(input, init);
  }

  /** Queues replies for the next token requests: {status, body, headers}. */
  scriptToken(entry) { this.tokenScript.push(entry); }
  advance(ms) { this.clock += ms; }
  tokenCount() { return this.tokenRequests.length; }
  tokenRequest(i) { return this.tokenRequests[i]; }

  async handle(input, init) {
    const req = new Request(input, init);
    this.tokenRequests.push({
      url: req.url,
      method: req.method,
      headers: Object.fromEntries(req.headers),
      redirect: init?.redirect ?? req.redirect,
      body: await req.text(),
    });
    const entry = this.tokenScript.shift();
    if (entry) {
      const body = typeof entry.body === 'string' ? entry.body : JSON.stringify(entry.body ?? {});
      return new Response(body, { status: entry.status, headers: entry.headers ?? { 'content-type': 'application/json' } });
    }
    this.issued += 1;
    return Response.json({ access_token: `tok-${this.issued}`, token_type: 'Bearer', expires_in: 3600, scope: 'read' });
  }
}

/**
 * What the package's façade hands to `new Core(config, host)`, over `mock.fetch`: `send` speaks
 * the core's transport protocol (see npm/src/host.rs), `now` is the mock's clock. `extra` adds
 * `cache` or `log`.
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

/** A TokenCache over a Map, recording calls: {get, set, delete, map, log}. */
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

/** What a thrown value looks like: class, name, code, details, and its message and stack. */
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
