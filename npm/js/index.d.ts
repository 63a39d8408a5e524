// Types of the tokengate npm package (hand-written beside npm/js/client.js).

/**
 * How the client authenticates at the token endpoint; `"token_api"` is a token-management API
 * (openapi.com Oauth v2) rather than an OAuth token endpoint. `"private_key_jwt"` signs a JWT
 * client assertion with `clientKey` (RFC 7523); `"tls_client_auth"` sends the client id only,
 * the client certificate being presented by `options.fetch` (RFC 8705).
 */
export type AuthStyle =
  | "client_secret_basic"
  | "client_secret_post"
  | "json_body"
  | "token_api"
  | "private_key_jwt"
  | "tls_client_auth";

/** A JWS algorithm of a client or DPoP key. */
export type KeyAlg = "ES256" | "RS256" | "PS256";

/**
 * The JSON body that creates a token at a token API (`authStyle: "token_api"`), e.g.
 * `{ scopes: ["GET:company.openapi.com/IT-start"], ttl: 3600, name: "tokengate" }`.
 */
export interface TokenBody {
  /** `METHOD:host/path-prefix` scopes, at least one. */
  scopes: string[];
  /** Lifetime of a token, seconds: required, at most `maxLifetimeS` (default 86400). */
  ttl: number;
  name?: string;
  /** Passed to the service as given (total requests, IP allowlist, ...). */
  limits?: Record<string, unknown>;
}

/** Retry policy of token exchanges and `client.fetch` calls. */
export interface RetryConfig {
  /** Total attempts including the first (1-10, default 4). */
  maxAttempts?: number;
  /** Backoff base in ms (default 200); full-jitter exponential backoff. */
  baseDelayMs?: number;
  /** Cap on one delay and on an honoured Retry-After, ms (default 5000). */
  maxDelayMs?: number;
  /** Also retry POST/PATCH on 429/5xx (default false). */
  retryUnsafeMethods?: boolean;
}

/** Expiry policy keys, accepted by `parseTokenResponse` and `cachePolicy`. */
export interface ExpiryPolicyConfig {
  /** Stop serving a token this many seconds before it expires (0-86400, default 60). */
  refreshSkewS?: number;
  /** Lifetime when the response states none, seconds (default 300). */
  defaultLifetimeS?: number;
  /** Upper bound on any lifetime, seconds (default 86400). */
  maxLifetimeS?: number;
}

/**
 * A provider configuration: the Worker's provider entry in camelCase, plus the client's
 * credential — `clientSecret` for the styles that send a secret, `clientKey` for
 * `private_key_jwt`, nothing for `tls_client_auth` (the certificate is in `options.fetch`).
 */
export type TokenClientConfig = TokenClientSettings &
  (
    | {
        /** Default "client_secret_basic". */
        authStyle?: "client_secret_basic" | "client_secret_post" | "json_body" | "token_api";
        clientSecret: string;
        clientKey?: never;
      }
    | {
        authStyle: "private_key_jwt";
        /**
         * The private key that signs each client assertion — a private JWK, a PKCS#8 PEM
         * (`-----BEGIN PRIVATE KEY-----`) or a private `CryptoKey`.
         */
        clientKey: JsonWebKey | string | CryptoKey;
        /** The assertion's algorithm (default "ES256"). */
        clientKeyAlg?: KeyAlg;
        /** The assertion's `kid` header. */
        kid?: string;
        /** The assertion's `aud` (default: `tokenUrl`). */
        assertionAudience?: string;
        clientSecret?: never;
      }
    | { authStyle: "tls_client_auth"; clientSecret?: never; clientKey?: never }
  );

/** The settings every auth style shares. */
export interface TokenClientSettings extends ExpiryPolicyConfig {
  /** Token endpoint; https (http only for 127.0.0.1 / localhost). */
  tokenUrl: string;
  clientId: string;
  /**
   * DPoP-bound tokens (RFC 9449): every token request and `client.fetch` attempt carries a
   * proof; nonces asked for are supplied; tokens are sent as `Authorization: DPoP …`.
   */
  dpop?: boolean;
  /**
   * The DPoP key: a private JWK, a PKCS#8 PEM or a `CryptoKeyPair` (EC keys sign ES256, RSA
   * keys PS256). Without it each client generates an ES256 key and keeps it in memory.
   */
  dpopKey?: JsonWebKey | string | CryptoKeyPair;
  scope?: string;
  audience?: string;
  /** RFC 8707 resource indicator. */
  resource?: string;
  /** Extra token-request parameters. */
  tokenParams?: Record<string, string | number>;
  /** Extra token-request headers (not Accept, Authorization, Content-Type, Content-Length, Host). */
  tokenHeaders?: Record<string, string>;
  /**
   * With `authStyle: "token_api"` (and only then, where it is required): the creation body.
   * `clientId` is the account e-mail, `clientSecret` the API key; tokens are rotated with their
   * refresh token before they expire, and a token replaced by a new one is deleted.
   */
  tokenBody?: TokenBody;
  retry?: RetryConfig;
  /** Timeout of one HTTP call, ms (default 10000). */
  timeoutMs?: number;
  /**
   * At most this many requests to the token endpoint a minute (1–100000). While the budget is
   * spent a token that has not expired is served; without one, `token()` throws a
   * `temporarily_unavailable` `TokenError` with `retryAfterMs`.
   */
  tokenRateLimitPerMinute?: number;
}

/**
 * A shared token cache (Redis, a file, ...). Values are opaque strings holding the token (and,
 * with `authStyle: "token_api"`, its refresh token, with which a token can be rotated): keep
 * the cache as secret as the client secret. `ttlSeconds` (>= 60) is how long the entry may
 * live. Methods may be sync or async.
 */
export interface TokenCache {
  get(key: string): Promise<string | null | undefined> | string | null | undefined;
  set(key: string, value: string, ttlSeconds: number): Promise<unknown> | unknown;
  delete(key: string): Promise<unknown> | unknown;
}

/** Options of a TokenClient. */
export interface TokenClientOptions {
  /** The fetch to use (default: globalThis.fetch, looked up on every call). */
  fetch?: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  /** A shared cache in addition to the in-memory one. */
  cache?: TokenCache;
  /** A clock in epoch milliseconds (default Date.now), for tests. */
  now?: (() => number) | { now(): number };
  /** Structured events (token_exchange, store_error, ...); never secrets or tokens. */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

/** An access token. */
export interface Token {
  accessToken: string;
  /** "DPoP" for a DPoP-bound token. */
  tokenType: "Bearer" | "DPoP";
  /** Expiry, epoch milliseconds. */
  expiresAt: number;
  scope: string | null;
}

/** A parsed token response (`parseTokenResponse`). */
export interface ParsedToken extends Token {
  /** Issue time, epoch milliseconds (the response's created_at when sane). */
  issuedAt: number;
}

/** The exact token request of a configuration (`buildTokenRequest`). */
export interface TokenRequest {
  method: "POST";
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** Cache timing of a token (`cachePolicy`). */
export interface CachePolicy {
  expiresAt: number;
  /** From this time on the token is refreshed instead of served. */
  refreshAt: number;
  /** TTL for a shared cache, seconds; null when under 60 s (memory only). */
  ttlSeconds: number | null;
  /** Whether the token may be served now. */
  fresh: boolean;
}

/** Machine-readable error codes. */
export type TokenErrorCode =
  | "invalid_client" | "invalid_request" | "rate_limited" | "server_error"
  | "invalid_response" | "timeout" | "network" | "config" | "temporarily_unavailable";

/** Every error the package throws. Never holds the client secret or a token. */
export declare class TokenError extends Error {
  constructor(code: TokenErrorCode, message: string, details?: {
    status?: number | null; retryable?: boolean; providerError?: string | null;
    retryAfterMs?: number | null; cause?: unknown;
  });
  readonly name: "TokenError";
  readonly code: TokenErrorCode;
  /** The provider's HTTP status, when it answered. */
  readonly status: number | null;
  /** Whether trying again later may succeed. */
  readonly retryable: boolean;
  /** The provider's own error code (RFC 6749 section 5.2 `error`). */
  readonly providerError: string | null;
  /** The provider's Retry-After, ms. */
  readonly retryAfterMs: number | null;
}

/**
 * Client-credentials tokens for one provider configuration: cached in memory (and in
 * `options.cache`), refreshed `refreshSkewS` before expiry, one exchange at a time.
 */
export declare class TokenClient {
  /** Throws a `config` TokenError naming the offending key. */
  constructor(config: TokenClientConfig, options?: TokenClientOptions);
  /** A fresh token; concurrent callers share one exchange. */
  token(): Promise<Token>;
  /** `"Bearer <access token>"` (`"DPoP <access token>"` when DPoP-bound), for an `Authorization` header. */
  authorizationHeader(): Promise<string>;
  /**
   * A new DPoP proof for a `method` request to `url` with this client's current token, for a
   * request sent without `client.fetch` (config `dpop: true` only).
   */
  dpopProof(method: string, url: string | URL): Promise<string>;
  /**
   * `fetch` with `Authorization: Bearer …`: a 401 drops the token and replays once with a new
   * one; 429/5xx and timeouts are retried with backoff for idempotent methods. Each attempt is
   * aborted if its response headers take longer than `timeoutMs`.
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** Forgets the cached token (memory and `options.cache`). */
  invalidate(): Promise<void>;
  /** Releases the client's WebAssembly memory now instead of at garbage collection. */
  free(): void;
}

/** The exact token request `config` produces; the secret only where its auth style puts it. */
export declare function buildTokenRequest(config: TokenClientConfig): TokenRequest;

/** Parses a token-endpoint response received at `nowMs`; throws the TokenError a client would. */
export declare function parseTokenResponse(
  status: number,
  headers: Headers | Record<string, string> | [string, string][] | null | undefined,
  body: string | Uint8Array | ArrayBuffer,
  nowMs: number,
  policy?: ExpiryPolicyConfig,
): ParsedToken;

/** When a token stops being served and how long a shared cache may keep it. */
export declare function cachePolicy(
  token: { expiresAt: number; issuedAt?: number },
  nowMs: number,
  policy?: ExpiryPolicyConfig,
): CachePolicy;

/** The claims of a JWT access token, unverified (display only), or null. */
export declare function decodeJwtClaims(token: string): Record<string, unknown> | null;
