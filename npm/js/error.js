// The package's error class. Its own module, so that the WebAssembly tests of npm/src can
// construct the same class without the rest of the façade.

/** Every error the package throws. Never holds the client secret or a token. */
export class TokenError extends Error {
  /**
   * @param {string} code  one of the TokenErrorCode values
   * @param {string} message
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
