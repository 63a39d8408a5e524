// The pieces of the npm package written in JavaScript: the `TokenError` class, because a
// wasm-bindgen export cannot extend `Error`, and `Attempt`: the request-shaping steps of
// `client.fetch`'s direct plan (see src/npm/fetch.rs) and its fast lane (see src/npm/lane.rs),
// which sends a warm call's first attempt without entering wasm. Every decision about tokens,
// retries and timeouts stays in Rust: the lane acts only on the view Rust keeps for it, and
// hands any outcome that needs a decision back to Rust. Standard JavaScript only (no Node or
// DOM APIs).
//
// Keep the exports to `export class` declarations: .ci/build-npm turns this file into CommonJS
// for the `nodejs` target by dropping the `export ` keywords and appending `module.exports`.

export class TokenError extends Error {
  /**
   * @param {string} code  one of the TokenErrorCode values
   * @param {string} message  never contains a secret or a token
   * @param {{status?: number|null, retryable?: boolean, providerError?: string|null,
   *          retryAfterMs?: number|null, cause?: unknown}} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'TokenError';
    this.code = code;
    this.status = details.status ?? null;
    this.retryable = Boolean(details.retryable);
    this.providerError = details.providerError ?? null;
    this.retryAfterMs = details.retryAfterMs ?? null;
  }
}

/**
 * An absolute http(s) URL string with a non-empty authority right after `//` that holds no
 * `@`, backslash, space or control character (so no credentials, however the URL parser
 * reads it): `fetch` takes it as it is. Only a filter: `fetch` parses the URL itself, and anything this does not
 * match goes to the normalised plan, where the host's `Request` parses it (and throws for a
 * mistake).
 */
const PLAIN_HTTP_URL = /^https?:\/\/[^/?#@\\\x00-\x20\x7f]+(?:[/?#]|$)/i;

/** An HTTP method `fetch` accepts: a token (RFC 9110 §5.6.2) other than CONNECT, TRACE, TRACK. */
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);

function isPlainObject(v) {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A `ReadableStream` or an async iterable (Node streams): sent once, never replayed. */
function isStream(v) {
  return typeof v === 'object' && v !== null
    && (typeof v.getReader === 'function' || Symbol.asyncIterator in v);
}

/**
 * The headers of a direct request: a plain-object `init.headers` (or none) is copied as a plain
 * object without any `authorization` key, since `fetch` converts that as cheaply as the
 * caller's own; anything else becomes a `Headers`. `null` when they are invalid: always for a
 * `Headers`, and for a plain object only when `strict` (otherwise `fetch` validates them).
 */
function copyHeaders(given, strict) {
  if (given === undefined || given === null) return {};
  if (isPlainObject(given)) {
    const copy = {};
    for (const name of Object.keys(given)) {
      if (name.length === 13 && name.toLowerCase() === 'authorization') continue;
      copy[name] = given[name];
    }
    if (strict) {
      try {
        new Headers(copy); // eslint-disable-line no-new
      } catch {
        return null;
      }
    }
    return copy;
  }
  try {
    return new Headers(given);
  } catch {
    return null;
  }
}

/** Where an instance caches its lane view (`TokenClient._lane()`). */
const LANE = Symbol('tokengate.lane');

/** The lane's clock: the injected one or `Date.now()`; NaN when the injected one fails. */
function laneNow(lane) {
  if (lane.now === undefined) return Date.now();
  try {
    const t = lane.now();
    return typeof t === 'number' && t >= 0 ? t : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Sends a fast-lane call's first attempt with the lane's token. A response whose status is
 * final for its method is the call's result; any other outcome goes to `client._resume`, which
 * continues the call in Rust as if Rust had made this attempt.
 */
function fastAttempt(client, lane, req, final) {
  const bearer = lane.bearer;
  lane.hits += 1;
  return new Promise((resolve, reject) => {
    let reported = false;
    Attempt.send(req, lane.fetch, bearer, undefined, lane.timeoutMs, 0, (_id, kind, value) => {
      if (reported) return false; // a response after the timeout: nobody waits for it
      reported = true;
      if (kind === 0 && final[value?.status] === 1) {
        resolve(value);
        return true;
      }
      try {
        resolve(client._resume(req, kind, value, bearer));
      } catch (error) {
        // `_resume` throws only when the client was freed meanwhile.
        reject(error);
        return false;
      }
      return true;
    });
  });
}

/** Cancels the body of a response nobody will read, so its connection is released. */
function discard(response) {
  const body = response?.body;
  if (body && typeof body.cancel === 'function') body.cancel().catch(() => {});
}

export class Attempt {
  /**
   * Puts the fast lane in front of `cls.prototype.fetch` (the wasm-bindgen `TokenClient`): a
   * call takes it when the client holds a fresh token, no timeout is recent, the request
   * qualifies for the direct plan without a signal of its own, and its method has a `final`
   * table. Anything else calls the Rust method as it is.
   */
  static install(cls) {
    const slow = cls.prototype.fetch;
    if (slow[LANE]) return; // installed already
    const fetch = function fetch(input, init) {
      let lane = this[LANE];
      if (lane === undefined) {
        // Not enumerable: the view holds the bearer, and logging the client must not show it.
        lane = this._lane();
        Object.defineProperty(this, LANE, { value: lane });
      }
      if (lane.bearer !== null) {
        const now = laneNow(lane);
        if (now < lane.refreshAt && now >= lane.abortUntil) {
          const req = Attempt.direct(input, init, false);
          if (req !== null && req.signal === undefined) {
            const final = lane.final.get(req.method);
            if (final !== undefined) return fastAttempt(this, lane, req, final);
          }
        }
      }
      return slow.call(this, input, init);
    };
    fetch[LANE] = true;
    Object.defineProperty(cls.prototype, 'fetch', { configurable: true, writable: true, value: fetch });
    // A freed client's lane stops too: its calls go to the Rust method, which refuses them.
    for (const key of ['free', Symbol.dispose]) {
      const release = key === undefined ? undefined : cls.prototype[key];
      if (typeof release !== 'function') continue;
      Object.defineProperty(cls.prototype, key, {
        configurable: true,
        writable: true,
        value: function release_() {
          const lane = this[LANE];
          if (lane !== undefined) lane.bearer = null;
          return release.call(this);
        },
      });
    }
  }

  /**
   * The direct plan of `fetch(input, init)`, or `null` when the request does not qualify (the
   * normalised plan, built with the host's `Request`, takes it). It qualifies when `input` is
   * an absolute http(s) URL string without credentials (see PLAIN_HTTP_URL) or a `URL` without
   * credentials, and `init` is absent or a plain object whose `method` is an allowed method
   * (GET by default), whose `body` is absent or not a stream (and not on GET/HEAD), whose
   * `signal` is absent or an `AbortSignal`, and whose `headers` are valid.
   *
   * With `strict` (the client has no fresh token, so the call starts with an exchange) the URL
   * string and the headers are also parsed here, so a request `fetch` would refuse goes to the
   * normalised plan and throws before any token request. Otherwise `fetch` is left to refuse
   * it (rethrown as is), which saves parsing them twice on every warm call.
   * @param {unknown} input
   * @param {unknown} init
   * @param {boolean} strict
   * @returns {{input: string|URL, init: object, headers: object|Headers, method: string,
   *            signal: AbortSignal|undefined} | null}
   */
  static direct(input, init, strict) {
    if (typeof input === 'string') {
      if (!PLAIN_HTTP_URL.test(input)) return null;
      if (strict) {
        let url;
        try {
          url = new URL(input);
        } catch {
          return null;
        }
        if (url.username !== '' || url.password !== '') return null;
      }
    } else if (!(input instanceof URL) || input.username !== '' || input.password !== '') {
      return null;
    }
    let copy;
    if (init === undefined || init === null) copy = {};
    else if (isPlainObject(init)) copy = Object.assign({}, init);
    else return null;
    let method = 'GET';
    if (copy.method !== undefined) {
      if (typeof copy.method !== 'string' || !METHOD_TOKEN.test(copy.method)) return null;
      method = copy.method.toUpperCase();
      if (FORBIDDEN_METHODS.has(method)) return null;
    }
    const body = copy.body;
    if (body !== undefined && body !== null
      && (method === 'GET' || method === 'HEAD' || isStream(body))) return null;
    const signal = copy.signal ?? undefined;
    if (signal !== undefined && !(signal instanceof AbortSignal)) return null;
    const headers = copyHeaders(copy.headers, strict);
    if (headers === null) return null;
    copy.headers = headers;
    return { input, init: copy, headers, method, signal };
  }

  /**
   * Sends one attempt of a direct request: `authorization` set to `bearer`, `init.signal` set to
   * `signal` (none: no signal), with `fetchFn` (`undefined`: the global `fetch`, looked up now).
   * How it settles is reported to `settle(id, kind, value)`: kind 0 with the response, 1 with
   * the error, or 2 (no value) when `ms` passes first (`ms` < 0: no timer). `settle` returns
   * whether anybody still waits for `id`; a response nobody waits for (it came after the
   * timeout, or the call was abandoned) has its body cancelled, so its connection is not held
   * until garbage collection. A request without a signal cannot be aborted: an attempt that
   * must not linger after its timeout carries a signal. Throws what `fetch` throws at once.
   */
  static send(req, fetchFn, bearer, signal, ms, id, settle) {
    const { headers, init } = req;
    if (headers instanceof Headers) headers.set('authorization', bearer);
    else headers.authorization = bearer;
    if (signal !== undefined || init.signal !== undefined) init.signal = signal;
    const sent = fetchFn === undefined ? fetch(req.input, init) : fetchFn(req.input, init);
    Attempt.watch(sent, ms, id, settle);
  }

  /** `Attempt.send`'s report of how `sent` settles, for a promise sent any other way. */
  static watch(sent, ms, id, settle) {
    const timer = ms < 0 ? undefined : setTimeout(settle, ms, id, 2);
    Promise.resolve(sent).then(
      (response) => {
        clearTimeout(timer);
        if (!settle(id, 0, response)) discard(response);
      },
      (error) => {
        clearTimeout(timer);
        settle(id, 1, error);
      },
    );
  }

  /** Whether a body is a stream (`isStream`), for the normalised plan. */
  static isStream(body) {
    return isStream(body);
  }

  /**
   * Whether the host's `Request` refuses a direct request: asked only after `fetch` failed, to
   * tell the caller's mistake (an invalid `init` field) from a network failure.
   */
  static invalid(req) {
    try {
      new Request(req.input, req.init); // eslint-disable-line no-new
      return false;
    } catch {
      return true;
    }
  }
}
