//! The async wiring: obtaining a provider token ([`TokenSource`], which drives the
//! [`crate::token_machine`]: memory → store → exchange with retries, single-flight, cooldown
//! after `invalid_client`) and calling an API with it
//! ([`call_api`], which performs the actions of [`crate::api_call`]). Generic over
//! [`Transport`], [`TokenStore`] and [`Runtime`], which each shell implements; native tests use
//! fakes.
//!
//! Everything is single-threaded (`Rc`, no `Send`): a Worker isolate and a JS realm each run one
//! thread.

mod api;
mod flight;
mod minted;
mod proof;
mod token;
mod tokens;

pub use crate::http::TransportError;
pub use crate::token_machine::{TokenOrigin, INVALID_CLIENT_COOLDOWN_MS};
pub use api::{call_api, call_api_token, decide, ApiReply};
pub use flight::SingleFlight;
pub use minted::{MintedSource, Minter};
pub use proof::{Dpop, DpopServer, JwsSigner, ProofTransport, Proofs};
pub use token::TokenSource;
pub use tokens::Tokens;

use crate::http::{HttpRequest, HttpResponse};
use futures::future::LocalBoxFuture;
use serde_json::Value;
use std::rc::Rc;

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
    /// Runs `task` in the background, keeping the host alive until it ends: the npm package
    /// spawns it at once; a Worker hands it to `ctx.waitUntil` when the request being handled
    /// ends, and it starts then. Used for housekeeping nothing waits for, such as removing a
    /// token a token API no longer needs to hold.
    fn background(&self, task: LocalBoxFuture<'static, ()>);

    /// How callers that find another caller's exchange in flight wait for it. `None` (the
    /// default): they await the shared exchange, which any of them may drive. `Some`: a
    /// [`FlightSignal`] made by the caller that starts the exchange (in its context), which it
    /// raises when the exchange ends; the others wait for the signal and never poll the
    /// exchange. Workers need the latter: a waker fired by the request that ran the exchange
    /// would resume a waiting request inside the other request's I/O context.
    fn flight_signal(&self) -> Option<Rc<dyn FlightSignal>> {
        None
    }
}

/// The wake-up of an exchange's waiters (see [`Runtime::flight_signal`]).
pub trait FlightSignal {
    /// Wakes every waiter, now and later.
    fn raise(&self);
    /// Waits until the signal is raised, `max_ms` pass, or it can never be raised (the
    /// request that made it is gone); the waiter then looks at the exchange itself.
    fn wait(&self, max_ms: u64) -> LocalBoxFuture<'static, ()>;
}

#[cfg(test)]
mod tests;
