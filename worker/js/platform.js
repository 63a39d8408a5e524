// The few platform calls the Worker makes per proxied request, each done in one step on the
// JavaScript side so that the request crosses between WebAssembly and JavaScript a handful of
// times rather than once per header or per timer callback.

const TIMEOUT = Symbol('tokengate.timeout');

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
export function fetchWithin(request, ms, controller, via) {
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

/** Whether fetchWithin rejected because its deadline passed. */
export function isTimeout(error) {
  return error === TIMEOUT;
}

/**
 * Every header of `headers` as one string: name, LF, value, LF, and so on (names lower-case,
 * as Headers iterates them). Neither a name nor a value can hold a LF (Fetch: a header value
 * has no CR, LF or NUL), so the string splits back unambiguously.
 */
export function headerLines(headers) {
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
