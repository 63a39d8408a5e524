// The few platform calls the Worker makes per proxied request, each done in one step on the
// JavaScript side so that the request crosses between WebAssembly and JavaScript a handful of
// times rather than once per header or per timer callback.

const TIMEOUT = Symbol('tokengate.timeout');
const UNBUILDABLE = Symbol('tokengate.unbuildable');

// The Rust side's futures are run by wasm-bindgen's task queue, which schedules each batch of
// woken tasks with the global queueMicrotask. On workerd that call costs far more than a
// promise reaction (measured in bench/: about a tenth of the gateway's CPU per proxied
// request), so within this isolate it is replaced by one, with the same order — microtasks
// run first in, first out either way. A task that throws (a WebAssembly trap) is rethrown
// through the platform's own queueMicrotask, so it still reaches the global error handler that
// resets the WebAssembly instance.
const platformQueueMicrotask = globalThis.queueMicrotask;
if (typeof platformQueueMicrotask === 'function') {
  const resolved = Promise.resolve();
  globalThis.queueMicrotask = (task) => {
    resolved.then(() => {
      try {
        task();
      } catch (error) {
        platformQueueMicrotask(() => {
          throw error;
        });
      }
    });
  };
}

/**
 * Resolves with fetch(request)'s response — `via.fetch(request)` when a binding is given (an
 * mTLS certificate binding) — or rejects with what fetch rejected with; after `ms` without
 * response headers, aborts `controller` (whose signal the request carries) and rejects with the
 * timeout marker instead. The body is not under the deadline.
 */
function fetchWithin(request, ms, controller, via) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      controller.abort();
      reject(TIMEOUT);
    }, ms);
    (via ? via.fetch(request) : fetch(request)).then(
      (response) => {
        clearTimeout(timer);
        resolve(response);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * A proxied request, built and sent in one step: `new Request(url, …)` with `method`, the
 * headers of `lines` (headersFromLines' form), `body` (undefined: none), redirects returned
 * rather than followed and the signal of `controller` (a new controller when none is given),
 * sent by fetchWithin with deadline `ms`, through `via` when given. Rejects with the
 * unbuildable marker when the platform refuses to build the request (a header it refuses:
 * its error is dropped, as its message could quote the header's value).
 */
export function sendWithin(url, method, lines, body, ms, controller, via) {
  const abort = controller ?? new AbortController();
  let request;
  try {
    request = new Request(url, {
      method,
      headers: headersFromLines(lines),
      body,
      redirect: 'manual',
      signal: abort.signal,
    });
  } catch {
    return Promise.reject(UNBUILDABLE);
  }
  return fetchWithin(request, ms, abort, via);
}

/** Whether sendWithin rejected because the request could not be built. */
export function isUnbuildable(error) {
  return error === UNBUILDABLE;
}

/** headerLines of a Request's or a Response's headers. */
export function headerLinesOf(message) {
  return headerLines(message.headers);
}

/**
 * The caller's response in one step: `status`, the headers of `lines` (headersFromLines'
 * form) and `upstream`'s body stream itself (none when `withBody` is false). Throws
 * (TypeError) on a header the platform refuses.
 */
export function responseWith(upstream, status, lines, withBody) {
  return new Response(withBody ? upstream.body : null, {
    status,
    headers: headersFromLines(lines),
  });
}

/** Whether fetchWithin rejected because its deadline passed. */
export function isTimeout(error) {
  return error === TIMEOUT;
}

/**
 * Every header of `headers` as one string: name, LF, value, LF, and so on (names lower-case,
 * as Headers iterates them). Neither a name nor a value can hold a LF (Fetch: a header value
 * has no CR, LF or NUL), so the string splits back unambiguously.
 */
function headerLines(headers) {
  let out = '';
  for (const [name, value] of headers) out += `${name}\n${value}\n`;
  return out;
}

/** Headers from a string of headerLines' form; throws (TypeError) on a name or value Headers refuses. */
export function headersFromLines(lines) {
  const headers = new Headers();
  const parts = lines.split('\n');
  for (let i = 0; i + 1 < parts.length; i += 2) headers.append(parts[i], parts[i + 1]);
  return headers;
}

/**
 * Resolves (with nothing) when `promise` settles or `ms` pass, whichever is first; the timer
 * is cleared when the promise wins. A request waiting for another's token exchange awaits this.
 */
export function settledWithin(promise, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}
