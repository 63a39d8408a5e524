//! tokengate's core — an edge auth gateway for APIs that use the OAuth 2.0 client-credentials
//! grant (RFC 6749 §4.4), as a pure library that two thin shells drive: the Cloudflare Worker
//! (`worker/`) and the npm package (`npm/`).
//!
//! Everything here is deterministic: time, randomness and I/O are inputs. This crate depends on
//! no JavaScript or Workers crate, so it builds and tests natively and on wasm32 alike.
//!
//! - Provider configuration and its validation: [`config`]; the token request of each dialect:
//!   [`dialect`]; token-response parsing: [`response`]; expiry and cache TTLs: [`expiry`].
//! - Retries of token exchanges: [`retry`]; when not to call a provider at all (a long
//!   `Retry-After`, a circuit breaker): [`pressure`]; what to do after each attempt of an API
//!   call: [`api_call`], a sans-IO state machine both shells drive; the provider-token
//!   lifecycle (store, cooldown, pressure, rotation, creation, removal of superseded tokens):
//!   [`token_machine`], another.
//! - The gateway's HTTP rules: where a proxied request may go and which headers cross
//!   ([`proxy`]), its callers ([`callers`]), their token requests ([`grant`]) and the tokens
//!   it issues them ([`caller_tokens`]), the format of every secret it issues
//!   ([`credentials`]), what a caller and its tokens may do ([`scope`]), every error it answers
//!   with ([`gateway_error`]).
//! - [`managed`]: clients created through the admin API (their records, the validation of
//!   what the API is given, address allowlists, pagination); [`authority`]: what must be exact
//!   across isolates about callers (their tokens, limits, revocations, statistics) and the
//!   protocol an isolate speaks to it; [`oauth_server`]: revocation, introspection and the
//!   server metadata.
//! - Bounded per-isolate memory and the failed-authentication limiter ([`limits`]); the level
//!   of each logged event and the `log_level` setting ([`log_level`]).
//! - The subkeys of `TOKENGATE_KEY` ([`keys`]), cache keys ([`cache_key`]), sealing of what KV
//!   holds ([`seal`]), secrets that never print ([`secret`]), unverified JWT claims ([`jwt`]).
//! - [`mint`]: the protocol between an isolate and the minter that obtains a provider's tokens
//!   for every isolate (a Durable Object in the Worker).
//! - [`scrub`]: every spelling of every secret of an exchange, removed from whatever a provider
//!   answers before any of it is kept.
//! - [`flow`]: the async wiring — memory cache → store → exchange with retries, and API calls
//!   driven by [`api_call`] — generic over the [`flow::Transport`], [`flow::TokenStore`] and
//!   [`flow::Runtime`] traits each shell implements.
//!
//! Provider rules cite `docs/providers.md`, which records what each provider's documentation
//! specifies.

#![deny(missing_docs)]

pub mod api_call;
pub mod authority;
pub mod cache_key;
pub mod caller_tokens;
pub mod callers;
pub mod config;
pub mod credentials;
pub mod dialect;
pub mod error;
pub mod expiry;
pub mod flow;
pub mod gateway_error;
pub mod grant;
pub mod http;
pub mod jose;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod log_level;
pub mod managed;
pub mod mint;
pub mod oauth_server;
pub mod pressure;
pub mod proxy;
pub mod response;
pub mod retry;
pub mod rfc3339;
pub mod scope;
pub mod scrub;
pub mod seal;
pub mod secret;
pub mod token_machine;

pub use config::{AuthStyle, ConfigError, ProviderConfig, TokenSettings};
pub use error::{ErrorCode, TokenError};
pub use http::{HttpRequest, HttpResponse};
pub use response::Token;
pub use secret::Secret;

/// A JSON document from bytes, `None` if they are not one. Every byte input is read through
/// this one text reader (JSON is UTF-8, RFC 8259 §8.1): a second, byte-slice reader would be a
/// second copy of the JSON parser in the wasm builds.
pub(crate) fn json_from_bytes<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()
}
