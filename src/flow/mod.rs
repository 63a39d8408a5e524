//! The async wiring: obtaining a provider token ([`TokenSource`]: memory → store → exchange
//! with retries, single-flight, cooldown after `invalid_client`) and calling an API with it
//! ([`call_api`], which performs the actions of [`crate::api_call`]). Generic over
//! [`Transport`], [`TokenStore`] and [`Runtime`], which each shell implements; native tests use
//! fakes.
//!
//! Everything is single-threaded (`Rc`, no `Send`): a Worker isolate and a JS realm each run one
//! thread.

mod api;
mod token;

pub use crate::http::TransportError;
pub use api::{call_api, decide, ApiReply};
pub use token::{TokenOrigin, TokenSource, INVALID_CLIENT_COOLDOWN_MS};

use crate::http::{HttpRequest, HttpResponse};
use serde_json::Value;

/// Sends one HTTP request without following redirects (a token endpoint must never redirect
/// credentials elsewhere), reading at most [`crate::http::MAX_TOKEN_RESPONSE_BYTES`] of the
/// response body.
#[allow(async_fn_in_trait)] // single-threaded runtimes: no Send bound wanted
pub trait Transport {
    /// Sends `req`, giving up after `timeout_ms`.
    async fn send(&self, req: HttpRequest, timeout_ms: u64)
        -> Result<HttpResponse, TransportError>;
}

/// A shared token cache (Workers KV, or an npm cache adapter). Errors are strings holding no
/// secret; the flow logs them and treats them as a miss.
#[allow(async_fn_in_trait)]
pub trait TokenStore {
    /// The value under `key`.
    async fn get(&self, key: &str) -> Result<Option<String>, String>;
    /// Stores `value` under `key` for `ttl_s` seconds (≥ 60).
    async fn put(&self, key: &str, value: String, ttl_s: u64) -> Result<(), String>;
    /// Removes `key`.
    async fn delete(&self, key: &str) -> Result<(), String>;
}

/// No shared cache: memory only.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStore;

impl TokenStore for NoStore {
    async fn get(&self, _: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
    async fn put(&self, _: &str, _: String, _: u64) -> Result<(), String> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Time, randomness, sleeping and logging: everything the flow needs from its host.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// A uniform sample in `[0, 1)` for backoff jitter.
    fn jitter(&self) -> f64;
    /// Waits `ms` milliseconds.
    async fn sleep(&self, ms: u64);
    /// Emits one structured event; `fields` never hold secrets or tokens.
    fn log(&self, event: &str, fields: Value);

    /// How a caller that finds another caller's exchange in flight waits for it. `None` (the
    /// default): it awaits the shared future. `Some(ms)`: it checks the shared result every
    /// `ms` milliseconds with [`Runtime::sleep`] and never registers a waker. Workers need the
    /// latter: a waker fired by the request that ran the exchange resumes the waiting request
    /// inside the other request's I/O context, and workerd cancels a request that waits on no
    /// I/O of its own as hung.
    fn flight_poll_ms(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests;
