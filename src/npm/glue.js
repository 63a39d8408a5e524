// The one piece of the npm package written in JavaScript: the `TokenError` class, because a
// wasm-bindgen export cannot extend `Error`. Standard JavaScript only (no Node or DOM APIs).
//
// Keep this file to `export class` declarations: .ci/build-npm turns it into CommonJS for the
// `nodejs` target by dropping the `export ` keywords and appending `module.exports`.

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
