//! The one async piece: obtaining a provider token (memory → store → exchange with retries,
//! single-flight, cooldown after `invalid_client`) and calling an API with it (401 → refresh and
//! replay once; 429/5xx → the core's backoff). Generic over [`Transport`], [`TokenStore`] and
//! [`Runtime`], so the Worker, the npm package and native tests share it.
//!
//! Everything is single-threaded (`Rc`, no `Send`): a Worker isolate and a JS realm each run one
//! thread.

use crate::core::dialect::build_token_request;
use crate::core::error::{ErrorCode, TokenError};
use crate::core::expiry::{is_fresh, kv_ttl_s, refresh_at_ms};
use crate::core::http::{HttpRequest, HttpResponse};
use crate::core::proxy::TokenOrigin;
use crate::core::response::{error_from_response, parse_token_response, Token};
use crate::core::retry::{parse_retry_after, Decision, Outcome, RetryPolicy};
use crate::core::secret::Secret;
use crate::core::TokenSettings;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

/// How long a provider that answered `invalid_client` is left alone, milliseconds.
pub const INVALID_CLIENT_COOLDOWN_MS: u64 = 30_000;

/// After an API 401 has caused a token refresh, further 401s within this window are passed
/// through without another exchange: an API that answers 401 for a permission problem must not
/// let callers trigger an exchange per request (seed 000 asks that tokens be reused).
pub const REFRESH_ON_401_WINDOW_MS: u64 = 30_000;

/// A transport-level failure (no HTTP response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// No answer within the timeout.
    Timeout,
    /// Connection, DNS or TLS failure; the message holds no secret.
    Network(String),
}

/// Sends one HTTP request without following redirects (a token endpoint must never redirect
/// credentials elsewhere).
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

type SharedAcquire = Shared<LocalBoxFuture<'static, Result<(Token, TokenOrigin), TokenError>>>;

#[derive(Default)]
struct State {
    memory: Option<Token>,
    inflight: Option<SharedAcquire>,
    cooldown: Option<(u64, TokenError)>,
    /// A token the API refused: a store read returning it (KV deletes propagate slowly) is a
    /// miss. Cleared by the next successful exchange.
    rejected: Option<Secret>,
    /// When an API 401 last caused a refresh.
    refreshed_on_401_at: Option<u64>,
}

/// Held by the request that runs an exchange: if that request is cancelled before the exchange
/// ends, the abandoned flight is released so a waiting request starts a new one at once.
struct FlightGuard<'a> {
    state: &'a RefCell<State>,
    flight: &'a SharedAcquire,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if self.flight.peek().is_some() {
            return;
        }
        if let Ok(mut st) = self.state.try_borrow_mut() {
            if st.inflight.as_ref().is_some_and(|f| f.ptr_eq(self.flight)) {
                st.inflight = None;
            }
        }
    }
}

struct Inner<T, S, R> {
    name: String,
    settings: TokenSettings,
    secret: Secret,
    secret_forms: Vec<String>,
    key: String,
    transport: T,
    store: S,
    rt: R,
    state: RefCell<State>,
}

/// Tokens of one provider configuration. Cheap to clone; clones share the cache.
pub struct TokenSource<T, S, R> {
    inner: Rc<Inner<T, S, R>>,
}

impl<T, S, R> Clone for TokenSource<T, S, R> {
    fn clone(&self) -> Self {
        TokenSource {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Transport + 'static, S: TokenStore + 'static, R: Runtime + 'static> TokenSource<T, S, R> {
    /// A source for `settings`, named `name` in logs, caching under `key`.
    pub fn new(
        name: &str,
        settings: TokenSettings,
        secret: Secret,
        key: String,
        transport: T,
        store: S,
        rt: R,
    ) -> Self {
        TokenSource {
            inner: Rc::new(Inner {
                name: name.to_string(),
                secret_forms: crate::core::secret::secret_forms(&settings.client_id, &secret),
                settings,
                secret,
                key,
                transport,
                store,
                rt,
                state: RefCell::default(),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TokenSettings {
        &self.inner.settings
    }

    /// The runtime.
    pub fn runtime(&self) -> &R {
        &self.inner.rt
    }

    /// A fresh token and where it came from. Concurrent callers share one store lookup and one
    /// exchange (single-flight). A failed exchange caches nothing.
    pub async fn token(&self) -> Result<(Token, TokenOrigin), TokenError> {
        loop {
            let (fut, joined) = {
                let mut st = self.inner.state.borrow_mut();
                let now = self.inner.rt.now_ms();
                if let Some(t) = st.memory.as_ref().filter(|t| self.fresh(t, now)) {
                    return Ok((t.clone(), TokenOrigin::Memory));
                }
                match &st.inflight {
                    Some(f) => (f.clone(), true),
                    None => {
                        let inner = self.inner.clone();
                        let f = async move {
                            let r = inner.acquire().await;
                            inner.state.borrow_mut().inflight = None;
                            r
                        }
                        .boxed_local()
                        .shared();
                        st.inflight = Some(f.clone());
                        (f, false)
                    }
                }
            };
            let poll_ms = match self.inner.rt.flight_poll_ms() {
                Some(ms) if joined => ms.max(1),
                // In polling mode only the leader drives the flight: if its request is cancelled
                // the guard releases the flight. Otherwise every waiter drives it.
                Some(_) => {
                    let _guard = FlightGuard {
                        state: &self.inner.state,
                        flight: &fut,
                    };
                    return fut.clone().await;
                }
                None => return fut.await,
            };
            // Poll the flight's result without ever polling the flight. A flight released by
            // its cancelled request, or one that outlived every attempt it could make, is
            // replaced by a new one.
            let s = &self.inner.settings;
            let bound_ms = u64::from(s.retry.max_attempts.max(1))
                * (s.timeout_ms + s.retry.max_delay_ms)
                + 1_000;
            let mut waited_ms = 0;
            loop {
                if let Some(r) = fut.peek() {
                    return r.clone();
                }
                let abandoned = !self
                    .inner
                    .state
                    .borrow()
                    .inflight
                    .as_ref()
                    .is_some_and(|f| f.ptr_eq(&fut));
                if abandoned {
                    break;
                }
                if waited_ms > bound_ms {
                    let mut st = self.inner.state.borrow_mut();
                    if st.inflight.as_ref().is_some_and(|f| f.ptr_eq(&fut)) {
                        st.inflight = None;
                    }
                    break;
                }
                self.inner.rt.sleep(poll_ms).await;
                waited_ms += poll_ms;
            }
        }
    }

    /// After the API answered 401 with `rejected`: whether to replay with a new token. Drops
    /// `rejected` (memory and store) and remembers it so a stale store read cannot bring it
    /// back — unless a 401 already caused a refresh within [`REFRESH_ON_401_WINDOW_MS`], in
    /// which case the 401 stands. A token already replaced by a concurrent request is not
    /// refreshed again: the replay uses the replacement.
    pub async fn refresh_after_401(&self, rejected: &Secret) -> bool {
        let now = self.inner.rt.now_ms();
        {
            let mut st = self.inner.state.borrow_mut();
            // Memory no longer holds the rejected token: a concurrent request already dropped
            // it (its refresh is in flight or done), so replay with whatever token() gives.
            let superseded = st
                .memory
                .as_ref()
                .is_none_or(|t| !t.access_token.ct_eq(rejected.expose()));
            if superseded {
                return true;
            }
            if st
                .refreshed_on_401_at
                .is_some_and(|at| now < at + REFRESH_ON_401_WINDOW_MS)
            {
                drop(st);
                self.inner.rt.log(
                    "api_401_not_refreshed",
                    json!({"provider": self.inner.name, "reason": "a 401 refreshed the token less than 30 s ago"}),
                );
                return false;
            }
            st.refreshed_on_401_at = Some(now);
            st.rejected = Some(rejected.clone());
        }
        self.invalidate(Some(rejected)).await;
        true
    }

    /// Drops `rejected` from memory and the store. A newer token fetched meanwhile by a
    /// concurrent request is kept.
    pub async fn invalidate(&self, rejected: Option<&Secret>) {
        let drop_it = {
            let mut st = self.inner.state.borrow_mut();
            let current = st.memory.as_ref().map(|t| &t.access_token);
            let same = match (current, rejected) {
                (Some(c), Some(r)) => c.ct_eq(r.expose()),
                _ => true,
            };
            if same {
                st.memory = None;
            }
            same
        };
        if drop_it {
            if let Err(e) = self.inner.store.delete(&self.inner.key).await {
                self.inner.log_store_error("delete", &e);
            }
        }
    }

    /// Whether [`TokenSource::token`] would answer from memory right now, without any I/O.
    pub fn has_fresh_token(&self) -> bool {
        let now = self.inner.rt.now_ms();
        let st = self.inner.state.borrow();
        st.memory.as_ref().is_some_and(|t| self.fresh(t, now))
    }

    /// Calls `f` with the access token in memory and the time (epoch ms) from which
    /// [`TokenSource::token`] no longer serves it, if memory holds one.
    pub fn peek_memory<Out>(&self, f: impl FnOnce(Option<(&Secret, u64)>) -> Out) -> Out {
        let st = self.inner.state.borrow();
        f(st.memory.as_ref().map(|t| {
            let refresh_at =
                refresh_at_ms(&self.inner.settings.expiry, t.issued_at_ms, t.expires_at_ms);
            (&t.access_token, refresh_at)
        }))
    }

    fn fresh(&self, t: &Token, now: u64) -> bool {
        is_fresh(
            &self.inner.settings.expiry,
            t.issued_at_ms,
            t.expires_at_ms,
            now,
        )
    }
}

impl<T: Transport, S: TokenStore, R: Runtime> Inner<T, S, R> {
    async fn acquire(&self) -> Result<(Token, TokenOrigin), TokenError> {
        let now = self.rt.now_ms();
        if let Some((until, err)) = &self.state.borrow().cooldown {
            if now < *until {
                return Err(err.clone());
            }
        }
        match self.store.get(&self.key).await {
            Ok(Some(v)) => match serde_json::from_str::<Token>(&v) {
                Ok(t)
                    if self
                        .state
                        .borrow()
                        .rejected
                        .as_ref()
                        .is_some_and(|r| r.ct_eq(t.access_token.expose())) => {}
                Ok(t) if is_fresh(&self.settings.expiry, t.issued_at_ms, t.expires_at_ms, now) => {
                    self.state.borrow_mut().memory = Some(t.clone());
                    return Ok((t, TokenOrigin::Store));
                }
                Ok(_) => {}
                Err(_) => self.log_store_error("decode", "stored token is unreadable"),
            },
            Ok(None) => {}
            Err(e) => self.log_store_error("get", &e),
        }
        let started = self.rt.now_ms();
        let token = match self.exchange().await {
            Ok(t) => t,
            Err(e) => {
                if e.code == ErrorCode::InvalidClient {
                    let until = self.rt.now_ms() + INVALID_CLIENT_COOLDOWN_MS;
                    self.state.borrow_mut().cooldown = Some((until, e.clone()));
                }
                return Err(e);
            }
        };
        let now = self.rt.now_ms();
        let ms = now.saturating_sub(started);
        {
            let mut st = self.state.borrow_mut();
            st.memory = Some(token.clone());
            st.cooldown = None;
            st.rejected = None;
        }
        if let Some(ttl) = kv_ttl_s(
            &self.settings.expiry,
            token.issued_at_ms,
            token.expires_at_ms,
            now,
        ) {
            let value = serde_json::to_string(&token).expect("a token serialises");
            if let Err(e) = self.store.put(&self.key, value, ttl).await {
                self.log_store_error("put", &e);
            }
        }
        Ok((token, TokenOrigin::Exchange { ms }))
    }

    async fn exchange(&self) -> Result<Token, TokenError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = build_token_request(&self.settings, &self.secret);
            let started = self.rt.now_ms();
            let result = self.transport.send(req, self.settings.timeout_ms).await;
            let now = self.rt.now_ms();
            let (err, outcome) = match result {
                Ok(resp) if (200..=299).contains(&resp.status) => {
                    let parsed = parse_token_response(&resp, now, &self.settings.expiry);
                    self.rt.log(
                        "token_exchange",
                        json!({"provider": self.name, "attempt": attempt, "status": resp.status,
                               "ms": now.saturating_sub(started), "ok": parsed.is_ok()}),
                    );
                    return parsed;
                }
                Ok(resp) => {
                    let e = error_from_response(&resp, now, &self.secret_forms);
                    let o = Outcome::Status {
                        status: resp.status,
                        retry_after_ms: e.retry_after_ms,
                    };
                    (e, o)
                }
                Err(TransportError::Timeout) => (
                    TokenError::new(
                        ErrorCode::Timeout,
                        format!(
                            "token endpoint did not answer within {} ms",
                            self.settings.timeout_ms
                        ),
                    ),
                    Outcome::Timeout,
                ),
                Err(TransportError::Network(m)) => (
                    TokenError::new(
                        ErrorCode::Network,
                        format!("token endpoint unreachable: {m}"),
                    ),
                    Outcome::Network,
                ),
            };
            self.rt.log(
                "token_exchange",
                json!({"provider": self.name, "attempt": attempt, "status": err.status,
                       "ms": now.saturating_sub(started), "ok": false, "error": err.code.as_str(),
                       "provider_error": err.provider_error}),
            );
            match self
                .settings
                .retry
                .token_decision(attempt, outcome, self.rt.jitter())
            {
                Decision::Retry { delay_ms } => self.rt.sleep(delay_ms).await,
                Decision::Stop => return Err(err),
            }
        }
    }

    fn log_store_error(&self, op: &str, error: &str) {
        self.rt.log(
            "store_error",
            json!({"provider": self.name, "op": op, "error": error}),
        );
    }
}

/// What one API attempt returned, as seen by [`call_api`].
pub struct ApiReply<Resp> {
    /// HTTP status.
    pub status: u16,
    /// The raw `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The response itself, handed back to the caller untouched.
    pub response: Resp,
}

/// Why an API call produced no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// No provider token could be obtained.
    Token(TokenError),
    /// The API call failed below HTTP on the last attempt.
    Transport(TransportError),
}

/// An API attempt made outside [`call_api`] with a token from memory: the token it carried and
/// what it returned.
pub type FirstAttempt<Resp> = (Secret, Result<ApiReply<Resp>, TransportError>);

/// Calls an API with a bearer token from `source`. `send(token)` performs one attempt. A 401
/// drops the token and, when `replayable`, replays once with a fresh one; 429/5xx/timeouts
/// follow [`crate::core::retry::RetryPolicy::api_decision`]. Returns the last response and the
/// origin of the token it carried.
///
/// `first`: an attempt already made outside (the npm package's fast lane), which the call
/// continues from as if `send` had made it; a reply [`first_reply_is_final`] says is final
/// comes back as it is.
pub async fn call_api<T, S, R, Resp, F, Fut>(
    source: &TokenSource<T, S, R>,
    method: &str,
    replayable: bool,
    mut first: Option<FirstAttempt<Resp>>,
    mut send: F,
) -> Result<(Resp, TokenOrigin), ApiError>
where
    T: Transport + 'static,
    S: TokenStore + 'static,
    R: Runtime + 'static,
    F: FnMut(Secret) -> Fut,
    Fut: Future<Output = Result<ApiReply<Resp>, TransportError>>,
{
    let (mut token, mut origin) = match &first {
        Some((token, _)) => (token.clone(), TokenOrigin::Memory),
        None => {
            let (t, origin) = source.token().await.map_err(ApiError::Token)?;
            (t.access_token, origin)
        }
    };
    let mut refreshed = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match first.take() {
            Some((_, result)) => result,
            None => send(token.clone()).await,
        };
        let outcome = match &result {
            Ok(reply) if reply.status == 401 && !refreshed => {
                refreshed = true;
                let replay = source.refresh_after_401(&token).await;
                if !replayable || !replay {
                    return Ok((result.expect("matched Ok").response, origin));
                }
                let (t, o) = source.token().await.map_err(ApiError::Token)?;
                (token, origin) = (t.access_token, o);
                attempt -= 1; // the replay is not a retry
                continue;
            }
            Ok(reply) => Outcome::Status {
                status: reply.status,
                retry_after_ms: reply
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, source.runtime().now_ms())),
            },
            Err(TransportError::Timeout) => Outcome::Timeout,
            Err(TransportError::Network(_)) => Outcome::Network,
        };
        let decision = source.settings().retry.api_decision(
            attempt,
            method,
            replayable,
            outcome,
            source.runtime().jitter(),
        );
        match decision {
            Decision::Retry { delay_ms } => source.runtime().sleep(delay_ms).await,
            Decision::Stop => {
                return result
                    .map(|r| (r.response, origin))
                    .map_err(ApiError::Transport)
            }
        }
    }
}

/// Whether a first attempt's reply with `status` ends [`call_api`] at once, whatever its
/// `Retry-After`: it is not a 401 (which drops the token and replays) and the retry policy
/// stops after it. A caller may return such a reply without entering `call_api` at all.
pub fn first_reply_is_final(retry: &RetryPolicy, method: &str, status: u16) -> bool {
    status != 401
        && retry.api_decision(
            1,
            method,
            true,
            Outcome::Status {
                status,
                retry_after_ms: None,
            },
            0.0,
        ) == Decision::Stop
}

#[cfg(test)]
mod tests;
