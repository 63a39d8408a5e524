//! [`TokenSource`]: the tokens of one provider configuration — memory → store → exchange with
//! retries, one exchange at a time however many callers wait, a cooldown after
//! `invalid_client`, and what an API's 401 does to the cached token.
//!
//! With a token API (`auth_style = "token_api"`, `docs/providers.md#openapi-token-api`) a token
//! past its refresh point — or one the API refused, or one `invalidate` dropped — is rotated
//! (`PATCH` with its refresh token) rather than replaced; an expired one, or one the service
//! will not rotate (a 4xx), is replaced by a new one. Every token replaced other than by
//! rotation is removed from the service in the background, and a token this instance created
//! gives way to one another instance stored meanwhile, so instances that race settle on one
//! token. Creation and rotation are not resent after a timeout (they may have taken effect).

use super::flight::SingleFlight;
use super::{Runtime, TokenStore, Transport, TransportError};
use crate::api_call::RefusedToken;
use crate::dialect::{build_token_request, parse_reply, revoke_request, rotate_request};
use crate::error::{ErrorCode, TokenError};
use crate::expiry::{is_fresh, kv_ttl_s, kv_ttl_until_expiry_s, KV_MIN_TTL_S};
use crate::http::HttpRequest;
use crate::pressure::{Pressure, PressurePolicy};
use crate::response::{error_from_response, Token};
use crate::retry::{Decision, Outcome};
use crate::scrub::Scrubber;
use crate::secret::Secret;
use crate::TokenSettings;
use futures::future::FutureExt;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;

/// How long a provider that answered `invalid_client` is left alone, milliseconds.
pub const INVALID_CLIENT_COOLDOWN_MS: u64 = 30_000;

/// Where a token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOrigin {
    /// This isolate's (or process's) memory.
    Memory,
    /// The shared store: Workers KV, or the npm cache adapter.
    Store,
    /// A fresh client-credentials exchange that took `ms`.
    Exchange {
        /// Exchange time, milliseconds.
        ms: u64,
    },
}

impl TokenOrigin {
    /// Short name, for logs and `Server-Timing`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenOrigin::Memory => "memory",
            TokenOrigin::Store => "kv",
            TokenOrigin::Exchange { .. } => "exchange",
        }
    }
}

type Acquired = Result<(Token, TokenOrigin), TokenError>;

struct State {
    /// The token in use; an `Rc` so a shell can hold it and tell it from a replacement.
    memory: Option<Rc<Token>>,
    cooldown: Option<(u64, TokenError)>,
    /// A token the API refused: a store read returning it (KV deletes propagate slowly) is a
    /// miss. Cleared by the next successful exchange.
    rejected: Option<Secret>,
    /// When an API 401 last caused a refresh.
    refreshed_on_401_at: Option<u64>,
    /// A token API's token that was dropped from memory (refused by the API, or invalidated)
    /// but still exists at the service: the next exchange rotates it.
    replaced: Option<Rc<Token>>,
    /// Whether the token endpoint may be called ([`crate::pressure`]).
    pressure: Pressure,
}

impl Default for State {
    fn default() -> Self {
        State {
            memory: None,
            cooldown: None,
            rejected: None,
            refreshed_on_401_at: None,
            replaced: None,
            pressure: Pressure::new(PressurePolicy::default()),
        }
    }
}

struct Inner<T, S, R> {
    name: String,
    settings: TokenSettings,
    secret: Secret,
    /// The client secret's spellings ([`Scrubber::for_client`]).
    scrub: Scrubber,
    key: String,
    transport: T,
    store: S,
    rt: R,
    state: RefCell<State>,
    /// The store lookup and exchange under way, shared by every caller (single-flight).
    flight: SingleFlight<Acquired>,
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
                scrub: Scrubber::for_client(&settings.client_id, &secret),
                settings,
                secret,
                key,
                transport,
                store,
                rt,
                state: RefCell::default(),
                flight: SingleFlight::new(),
            }),
        }
    }

    /// The name it has in logs.
    pub fn name(&self) -> &str {
        &self.inner.name
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
        let s = &self.inner.settings;
        // A waiter gives up on an exchange that outlived every attempt it could make.
        // (A token API may rotate, then create: two exchanges.)
        let exchanges = if s.auth_style.manages_tokens() { 2 } else { 1 };
        let bound_ms = exchanges
            * u64::from(s.retry.max_attempts.max(1))
            * (s.timeout_ms + s.retry.max_delay_ms)
            + 1_000;
        let memory = || {
            let st = self.inner.state.borrow();
            let now = self.inner.rt.now_ms();
            st.memory
                .as_ref()
                .filter(|t| self.inner.fresh(t, now))
                .map(|t| Ok((Token::clone(t), TokenOrigin::Memory)))
        };
        let start = || {
            let inner = self.inner.clone();
            async move { Inner::acquire(&inner).await }.boxed_local()
        };
        self.inner
            .flight
            .run(&self.inner.rt, bound_ms, memory, start)
            .await
    }

    /// What memory says about `token`, which the API has just refused with 401 (see
    /// [`crate::api_call::RefusedToken`]).
    pub fn refused(&self, token: &Secret) -> RefusedToken {
        let st = self.inner.state.borrow();
        let current = st
            .memory
            .as_ref()
            .is_some_and(|t| t.access_token.ct_eq(token.expose()));
        if current {
            RefusedToken::Current {
                last_refresh_ms: st.refreshed_on_401_at,
            }
        } else {
            RefusedToken::Replaced
        }
    }

    /// Forgets `token`, which the API refused: drops it from memory and the store, remembers it
    /// so that a stale store read (KV deletes propagate slowly) cannot bring it back, and
    /// records the time for the 401 window.
    pub async fn forget_refused(&self, token: &Secret) {
        {
            let mut st = self.inner.state.borrow_mut();
            st.refreshed_on_401_at = Some(self.inner.rt.now_ms());
            st.rejected = Some(token.clone());
        }
        self.invalidate(Some(token)).await;
    }

    /// Drops `rejected` (any token, when `None`) from memory, and from the store unless the
    /// store holds another token by now (another instance's newer one). A newer token fetched
    /// meanwhile by a concurrent request is kept. A token API's dropped token is rotated by the
    /// next exchange rather than left behind at the service.
    pub async fn invalidate(&self, rejected: Option<&Secret>) {
        let inner = &self.inner;
        let drop_it = {
            let mut st = inner.state.borrow_mut();
            let current = st.memory.as_ref().map(|t| &t.access_token);
            let same = match (current, rejected) {
                (Some(c), Some(r)) => c.ct_eq(r.expose()),
                _ => true,
            };
            if same {
                let dropped = st.memory.take();
                if inner.settings.auth_style.manages_tokens() && dropped.is_some() {
                    st.replaced = dropped;
                }
            }
            same
        };
        if !drop_it {
            return;
        }
        if let Some(r) = rejected {
            match inner.store.get(&inner.key).await {
                Ok(Some(v))
                    if Token::from_stored(&v)
                        .is_some_and(|t| !t.access_token.ct_eq(r.expose())) =>
                {
                    return;
                }
                Ok(None) => return,
                _ => {}
            }
        }
        if let Err(e) = inner.store.delete(&inner.key).await {
            inner.log_store_error("delete", &e);
        }
    }

    /// The token [`TokenSource::token`] would answer from memory right now, without any I/O.
    /// The same `Rc` until memory holds another token: [`Rc::ptr_eq`] tells a replacement.
    pub fn memory_token(&self) -> Option<Rc<Token>> {
        let now = self.inner.rt.now_ms();
        let st = self.inner.state.borrow();
        st.memory
            .as_ref()
            .filter(|t| self.inner.fresh(t, now))
            .cloned()
    }
}

impl<T: Transport + 'static, S: TokenStore + 'static, R: Runtime + 'static> Inner<T, S, R> {
    async fn acquire(this: &Rc<Self>) -> Result<(Token, TokenOrigin), TokenError> {
        // A valid token in the store is served whatever state the provider is in.
        let now = this.rt.now_ms();
        // The token this one replaces (past its refresh point, or dropped): a token API rotates
        // it.
        let in_memory = {
            let st = this.state.borrow();
            st.memory
                .as_ref()
                .or(st.replaced.as_ref())
                .map(|t| Token::clone(t))
        };
        let mut in_store = None;
        match this.store.get(&this.key).await {
            Ok(Some(v)) => match Token::from_stored(&v).ok_or(()) {
                Ok(t)
                    if this
                        .state
                        .borrow()
                        .rejected
                        .as_ref()
                        .is_some_and(|r| r.ct_eq(t.access_token.expose())) => {}
                Ok(t) if this.fresh(&t, now) => {
                    this.state.borrow_mut().memory = Some(Rc::new(t.clone()));
                    // Another instance replaced the token this one held.
                    if let Some(old) = in_memory.filter(|m| !m.same_token(&t)) {
                        Self::retire(this, &old);
                    }
                    return Ok((t, TokenOrigin::Store));
                }
                Ok(t) => in_store = Some(t),
                Err(_) => this.log_store_error("decode", "stored token is unreadable"),
            },
            Ok(None) => {}
            Err(e) => this.log_store_error("get", &e),
        }
        if let Some((until, err)) = &this.state.borrow().cooldown {
            if now < *until {
                return Err(err.clone());
            }
        }
        // A pause another isolate learnt (through the store) counts here too.
        if let Ok(Some(v)) = this.store.get(&this.hold_key()).await {
            if let Ok(until) = v.trim().parse::<u64>() {
                this.state.borrow_mut().pressure.hold(until);
            }
        }
        let admitted = this.state.borrow_mut().pressure.admit(this.rt.now_ms());
        if let Err(e) = admitted {
            this.rt.log(
                "token_exchange_held",
                json!({"provider": this.name, "reason": e.description,
                       "retry_after_ms": e.retry_after_ms}),
            );
            return Err(e);
        }
        // The shared store's view first: the token every instance reads.
        let (previous, orphan) = match (in_store, in_memory) {
            (Some(s), Some(m)) if !m.same_token(&s) => (Some(s), Some(m)),
            (Some(s), _) => (Some(s), None),
            (None, m) => (m, None),
        };
        let started = this.rt.now_ms();
        // An expired token is never sent, not even to be rotated.
        let rotation = previous
            .as_ref()
            .filter(|p| started < p.expires_at_ms)
            .and_then(|p| Some((p, rotate_request(&this.settings, p)?)));
        let (result, rotated) = match rotation {
            Some((p, req)) => match Self::exchange(this, &req, "rotate", Some(p)).await {
                Ok(t) => (Ok(t), true),
                // The service no longer knows the token or will not rotate it: create one.
                Err(e) if matches!(e.status, Some(400..=499)) && e.status != Some(429) => (
                    Self::exchange(this, &this.create_request(), "create", None).await,
                    false,
                ),
                Err(e) => (Err(e), false),
            },
            None => (
                Self::exchange(this, &this.create_request(), "create", None).await,
                false,
            ),
        };
        let token = match result {
            Ok(t) => t,
            Err(e) => {
                let now = this.rt.now_ms();
                // A token API that answers what cannot be read has minted a token all the same
                // (removed again by `exchange`): it is left alone for a while too.
                let unreadable = e.code == ErrorCode::InvalidResponse
                    && this.settings.auth_style.manages_tokens();
                if e.code == ErrorCode::InvalidClient || unreadable {
                    let until = now + INVALID_CLIENT_COOLDOWN_MS;
                    this.state.borrow_mut().cooldown = Some((until, e.clone()));
                }
                let max_delay = this.settings.retry.max_delay_ms;
                let held = this.state.borrow_mut().pressure.failed(&e, now, max_delay);
                if let Some(until) = held {
                    // Shared with the other isolates; KV keeps nothing under 60 s.
                    let ttl = until.saturating_sub(now).div_ceil(1000).max(KV_MIN_TTL_S);
                    if let Err(se) = this
                        .store
                        .put(&this.hold_key(), until.to_string(), ttl)
                        .await
                    {
                        this.log_store_error("put_hold", &se);
                    }
                }
                return Err(e);
            }
        };
        this.state.borrow_mut().pressure.succeeded();
        // Rotation removed the previous token at the service; creation did not.
        for old in previous.iter().filter(|_| !rotated).chain(orphan.iter()) {
            Self::retire(this, old);
        }
        // A token API's token created here gives way to one another instance stored while this
        // one was creating (it rotated the token this one could not, or created one too): one
        // token for every instance, the other removed.
        if !rotated && this.settings.auth_style.manages_tokens() {
            if let Ok(Some(v)) = this.store.get(&this.key).await {
                let now = this.rt.now_ms();
                if let Some(stored) =
                    Token::from_stored(&v).filter(|t| !t.same_token(&token) && this.fresh(t, now))
                {
                    Self::retire(this, &token);
                    this.install(&stored);
                    return Ok((stored, TokenOrigin::Store));
                }
            }
        }
        let now = this.rt.now_ms();
        let ms = now.saturating_sub(started);
        this.install(&token);
        let ttl = if this.settings.auth_style.manages_tokens() {
            // Kept until it expires, so that the next reader rotates it.
            kv_ttl_until_expiry_s(token.expires_at_ms, now)
        } else {
            kv_ttl_s(
                &this.settings.expiry,
                token.issued_at_ms,
                token.expires_at_ms,
                now,
            )
        };
        if let Some(ttl) = ttl {
            let value = token.to_stored();
            if let Err(e) = this.store.put(&this.key, value, ttl).await {
                this.log_store_error("put", &e);
            }
        }
        Ok((token, TokenOrigin::Exchange { ms }))
    }

    /// Sends `req` (a creation, or a rotation of `rotating`: `op`, for the logs) until it
    /// yields a token or the retry policy stops. A token API's creation or rotation is not
    /// resent after a timeout or a lost connection (it may have taken effect), and a token it
    /// minted in an answer that cannot be read is removed again.
    async fn exchange(
        this: &Rc<Self>,
        req: &HttpRequest,
        op: &'static str,
        rotating: Option<&Token>,
    ) -> Result<Token, TokenError> {
        let manages = this.settings.auth_style.manages_tokens();
        // What a provider's text must not show: the secret, and the token being rotated (it
        // is in the URL, which a network error may quote) with its refresh token.
        let scrub = this.scrubber(rotating);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = req.clone();
            let started = this.rt.now_ms();
            let result = this.transport.send(req, this.settings.timeout_ms).await;
            let now = this.rt.now_ms();
            let (err, outcome) = match result {
                Ok(resp) if (200..=299).contains(&resp.status) => {
                    // A 2xx the core cannot use names what was wrong (read through the
                    // scrubber); its body is not kept: it may carry a token just minted,
                    // which no scrubber knows yet.
                    let parsed =
                        parse_reply(&this.settings, &resp, now, &scrub).map_err(|mut e| {
                            e.raw_body = None;
                            e
                        });
                    if let (true, Err(_), Some(minted)) =
                        (manages, &parsed, crate::response::minted_token(&resp))
                    {
                        Self::retire(this, &minted);
                    }
                    let mut fields = json!({"provider": this.name, "attempt": attempt,
                        "status": resp.status, "ms": now.saturating_sub(started),
                        "ok": parsed.is_ok(),
                        "error_description": parsed.as_ref().err().map(|e| &e.description)});
                    this.tag_op(&mut fields, op);
                    this.rt.log("token_exchange", fields);
                    return parsed;
                }
                Ok(resp) => {
                    let e = error_from_response(&resp, now, &scrub);
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
                            this.settings.timeout_ms
                        ),
                    ),
                    Outcome::Timeout,
                ),
                Err(TransportError::Network(m)) => (
                    TokenError::new(
                        ErrorCode::Network,
                        format!("token endpoint unreachable: {}", scrub.scrub(&m)),
                    ),
                    Outcome::Network,
                ),
            };
            let mut fields = json!({"provider": this.name, "attempt": attempt,
                "status": err.status, "ms": now.saturating_sub(started), "ok": false,
                "error": err.code.as_str(), "provider_error": err.provider_error,
                "error_description": err.description});
            this.tag_op(&mut fields, op);
            this.rt.log("token_exchange", fields);
            if manages && matches!(outcome, Outcome::Timeout | Outcome::Network) {
                return Err(err);
            }
            match this
                .settings
                .retry
                .token_decision(attempt, outcome, || this.rt.jitter())
            {
                Decision::Retry { delay_ms } => this.rt.sleep(delay_ms).await,
                Decision::Stop => return Err(err),
            }
        }
    }

    /// Removes `token` from a token API in the background (`DELETE`), unless it has expired
    /// already or the dialect keeps no tokens; a failure is logged, never fatal.
    fn retire(this: &Rc<Self>, token: &Token) {
        if this.rt.now_ms() >= token.expires_at_ms {
            return;
        }
        let Some(req) = revoke_request(&this.settings, &this.secret, token) else {
            return;
        };
        let inner = this.clone();
        let scrub = this.scrubber(Some(token));
        this.rt.background(Box::pin(async move {
            let started = inner.rt.now_ms();
            let result = inner.transport.send(req, inner.settings.timeout_ms).await;
            let now = inner.rt.now_ms();
            let ms = now.saturating_sub(started);
            // (status, ok, the provider's error code, what went wrong); a 404 means the token
            // is gone already (rotated away by another instance, or expired): as good.
            let (status, ok, provider_error, error) = match result {
                Ok(resp) if (200..=299).contains(&resp.status) || resp.status == 404 => {
                    (Some(resp.status), true, None, None)
                }
                Ok(resp) => {
                    let e = error_from_response(&resp, now, &scrub);
                    (
                        Some(resp.status),
                        false,
                        e.provider_error,
                        Some(e.description),
                    )
                }
                Err(TransportError::Timeout) => (None, false, None, Some("timeout".to_string())),
                Err(TransportError::Network(m)) => (None, false, None, Some(scrub.scrub(&m))),
            };
            let fields = json!({"provider": inner.name, "status": status, "ms": ms, "ok": ok,
                                "provider_error": provider_error, "error": error});
            inner.rt.log("token_revoked", fields);
        }));
    }
}

impl<T: Transport, S: TokenStore, R: Runtime> Inner<T, S, R> {
    /// Whether `t` may be served at `now`.
    fn fresh(&self, t: &Token, now: u64) -> bool {
        is_fresh(&self.settings.expiry, t.issued_at_ms, t.expires_at_ms, now)
    }

    /// Makes `token`, just obtained, the one in use: what held the previous one back (a
    /// cooldown, a refused or replaced token) is over.
    fn install(&self, token: &Token) {
        let mut st = self.state.borrow_mut();
        st.memory = Some(Rc::new(token.clone()));
        st.replaced = None;
        st.cooldown = None;
        st.rejected = None;
    }

    fn create_request(&self) -> HttpRequest {
        build_token_request(&self.settings, &self.secret)
    }

    /// What a provider's answer must not show: the client secret's spellings, plus those of
    /// `token` (the one being rotated or removed, which its URL names) and its refresh token.
    fn scrubber(&self, token: Option<&Token>) -> Scrubber {
        match token {
            Some(t) => self.scrub.with_token(t),
            None => self.scrub.clone(),
        }
    }

    /// Names the operation in a token API's exchange lines (`create` or `rotate`); the
    /// OAuth dialects have only one.
    fn tag_op(&self, fields: &mut serde_json::Value, op: &'static str) {
        if let (true, Some(obj)) = (
            self.settings.auth_style.manages_tokens(),
            fields.as_object_mut(),
        ) {
            obj.insert("op".into(), op.into());
        }
    }

    /// Where the store keeps a pause the provider asked for (the time it ends, epoch ms).
    fn hold_key(&self) -> String {
        format!("{}:hold", self.key)
    }

    fn log_store_error(&self, op: &str, error: &str) {
        self.rt.log(
            "store_error",
            json!({"provider": self.name, "op": op, "error": error}),
        );
    }
}
