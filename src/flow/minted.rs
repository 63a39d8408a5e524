//! [`MintedSource`]: a provider's tokens in an isolate whose provider is coordinated by a
//! minter ([`crate::mint`]; in the Worker, a Durable Object per cache key): memory, then the
//! shared store, then the minter — which obtains tokens for every isolate, so that isolates
//! missing at the same moment cause one exchange. This isolate never exchanges on its own
//! unless the minter cannot be reached; then its own [`TokenSource`] takes over for that call.
//!
//! A token the API refused is reported to the minter by its SHA-256: the minter replaces the
//! token at most once per token (an isolate that reports a token already replaced gets the
//! current one), or says the token stands (the refusal was not the token's fault: a 401 within
//! 30 s of a 401-caused refresh, or a token API that still lists the token), and the API's 401
//! is then returned as it is.

use super::flight::SingleFlight;
use super::{Runtime, TokenSource, TokenStore, Tokens, Transport};
use crate::api_call::RefusedToken;
use crate::error::TokenError;
use crate::expiry::is_fresh;
use crate::mint::{token_sha256, MintAnswer, MintReason, MintRequest};
use crate::response::Token;
use crate::secret::Secret;
use crate::token_machine::{TokenOrigin, STALE_GRACE_MS};
use crate::TokenSettings;
use futures::future::FutureExt;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;

/// The coordinator that mints a provider's tokens for every isolate.
#[allow(async_fn_in_trait)] // single-threaded runtimes: no Send bound wanted
pub trait Minter {
    /// Sends `request` and reads the answer, within a deadline of its own. `Err` (what went
    /// wrong, no secret) when the minter could not be reached or answered what is not a
    /// [`MintAnswer`]: the isolate then obtains the token itself.
    async fn mint(&self, request: &MintRequest) -> Result<MintAnswer, String>;
}

type Acquired = Result<(Token, TokenOrigin), TokenError>;

#[derive(Default)]
struct State {
    /// The token in use.
    memory: Option<Rc<Token>>,
    /// When to ask the minter to replace it ahead of time (its refresh-ahead point, a little
    /// later for some isolates than others), and whether this isolate asked already.
    ahead_at: Option<u64>,
    ahead_asked: bool,
    /// Until when memory may serve its token past the refresh point: the minter answered with
    /// it because the provider could not give another (see
    /// [`crate::token_machine::STALE_GRACE_MS`]).
    stale_until: Option<u64>,
    /// A token the API refused: a store read returning it is a miss (KV lags).
    rejected: Option<Secret>,
    /// A token the minter said stands although the API refused it, and when.
    vouched: Option<(Secret, u64)>,
}

struct Inner<T, S, R, M> {
    provider: String,
    /// Refresh-ahead: the percentage of a token's lifetime after which the minter is asked, in
    /// the background, to replace it.
    ahead_percent: u64,
    key: String,
    store: S,
    minter: M,
    /// This isolate's own source: the settings, the runtime, and the fallback.
    local: TokenSource<T, S, R>,
    state: RefCell<State>,
    flight: SingleFlight<Acquired>,
    /// The report of a refused token under way.
    reports: SingleFlight<Result<MintAnswer, String>>,
}

/// Tokens of one provider configuration coordinated by a minter. Cheap to clone.
pub struct MintedSource<T, S, R, M> {
    inner: Rc<Inner<T, S, R, M>>,
}

impl<T, S, R, M> Clone for MintedSource<T, S, R, M> {
    fn clone(&self) -> Self {
        MintedSource {
            inner: self.inner.clone(),
        }
    }
}

impl<T, S, R, M> MintedSource<T, S, R, M>
where
    T: Transport + 'static,
    S: TokenStore + Clone + 'static,
    R: Runtime + 'static,
    M: Minter + 'static,
{
    /// Tokens of provider `provider` (its id, which the minter is told), read from `store`
    /// under `key` and asked of `minter`; `local` (on the same store and key) is used when the
    /// minter cannot be reached. A token served past `ahead_percent` % of its lifetime (plus up
    /// to 5 points, at random per token) makes the isolate ask the minter, in the background,
    /// to replace it.
    pub fn new(
        provider: &str,
        key: String,
        store: S,
        minter: M,
        local: TokenSource<T, S, R>,
        ahead_percent: u64,
    ) -> Self {
        MintedSource {
            inner: Rc::new(Inner {
                provider: provider.to_string(),
                ahead_percent,
                key,
                store,
                minter,
                local,
                state: RefCell::default(),
                flight: SingleFlight::new(),
                reports: SingleFlight::new(),
            }),
        }
    }

    /// Drops the token everywhere: the minter forgets its token (its storage and KV), this
    /// isolate its memory (`DELETE /admin/providers/{id}/token`). The SHA-256 of each token
    /// dropped, or why the minter could not be told.
    pub async fn drop_token(&self) -> Result<Vec<[u8; 32]>, String> {
        let mut dropped = Vec::new();
        if let Some(t) = self.memory_token() {
            dropped.push(token_sha256(&t.access_token));
            self.forget_memory(&t.access_token);
        }
        let request = MintRequest {
            provider: self.inner.provider.clone(),
            reason: MintReason::Drop,
        };
        match self.inner.minter.mint(&request).await? {
            MintAnswer::Dropped(hashes) => {
                for h in hashes {
                    if !dropped.contains(&h) {
                        dropped.push(h);
                    }
                }
            }
            _ => return Err("the minter did not answer the drop".into()),
        }
        for h in self.inner.local.drop_token().await {
            if !dropped.contains(&h) {
                dropped.push(h);
            }
        }
        Ok(dropped)
    }

    /// Forgets `token` from memory (and this isolate's own source) if it is the one there; a
    /// store read returning it is a miss from now on. Whether memory held it.
    pub fn forget_memory(&self, token: &Secret) -> bool {
        let held = {
            let mut st = self.inner.state.borrow_mut();
            let held = st
                .memory
                .as_ref()
                .is_some_and(|t| t.access_token.ct_eq(token.expose()));
            if held {
                st.memory = None;
                st.stale_until = None;
                st.ahead_at = None;
                st.rejected = Some(token.clone());
            }
            held
        };
        self.inner.local.forget_memory(token) || held
    }

    /// The minter it asks.
    pub fn minter(&self) -> &M {
        &self.inner.minter
    }

    /// The token memory serves right now, without any I/O: fresh, or — while the minter could
    /// give no other — not yet expired.
    pub fn memory_token(&self) -> Option<Rc<Token>> {
        let now = self.inner.local.runtime().now_ms();
        let st = self.inner.state.borrow();
        let grace = st.stale_until.is_some_and(|u| now < u);
        st.memory
            .as_ref()
            .filter(|t| self.inner.fresh(t, now) || (grace && now < t.expires_at_ms))
            .cloned()
    }
}

impl<T, S, R, M> Inner<T, S, R, M>
where
    T: Transport + 'static,
    S: TokenStore + Clone + 'static,
    R: Runtime + 'static,
    M: Minter + 'static,
{
    fn fresh(&self, t: &Token, now: u64) -> bool {
        let e = &self.local.settings().expiry;
        is_fresh(e, t.issued_at_ms, t.expires_at_ms, now)
    }

    /// Makes `token` the one in use, with its refresh-ahead point.
    fn install(&self, token: &Token) {
        let rt = self.local.runtime();
        let now = rt.now_ms();
        let mut st = self.state.borrow_mut();
        if st
            .rejected
            .as_ref()
            .is_some_and(|r| !token.access_token.ct_eq(r.expose()))
        {
            st.rejected = None;
        }
        let same = st.memory.as_ref().is_some_and(|t| t.same_token(token));
        if !same {
            let extra = (rt.jitter().clamp(0.0, 1.0) * 5.0) as u64;
            st.ahead_at = Some(crate::expiry::ahead_at_ms(
                token.issued_at_ms,
                token.expires_at_ms,
                self.ahead_percent + extra,
            ));
            st.ahead_asked = false;
        }
        st.stale_until = (!self.fresh(token, now)).then_some(now + STALE_GRACE_MS);
        st.memory = Some(Rc::new(token.clone()));
    }

    /// Asks the minter, once per token and in the background, to replace the token in use when
    /// it has passed its refresh-ahead point: by the time it would have to be replaced, the new
    /// one is in the store and no caller waits for an exchange.
    fn ahead_if_due(this: &Rc<Self>) {
        let rt = this.local.runtime();
        let now = rt.now_ms();
        {
            let mut st = this.state.borrow_mut();
            let due = !st.ahead_asked && st.ahead_at.is_some_and(|at| now >= at);
            if !due {
                return;
            }
            st.ahead_asked = true;
        }
        let inner = this.clone();
        rt.background(Box::pin(async move {
            let request = MintRequest {
                provider: inner.provider.clone(),
                reason: MintReason::Ahead,
            };
            match inner.minter.mint(&request).await {
                Ok(MintAnswer::Token { token, .. }) => inner.install(&token),
                Ok(MintAnswer::Error(e)) => inner.local.runtime().log(
                    "refresh_ahead_failed",
                    json!({"provider": inner.provider, "error": e.code.as_str(),
                           "error_description": e.description}),
                ),
                Ok(MintAnswer::Dropped(_)) => inner.unreachable("the minter answered a drop"),
                Err(why) => inner.unreachable(&why),
            }
        }));
    }

    /// The store, then the minter; this isolate's own source when the minter is out of reach.
    async fn acquire(this: &Rc<Self>) -> Acquired {
        let rt = this.local.runtime();
        match this.store.get(&this.key).await {
            Ok(Some(v)) => {
                if let Some(t) = Token::from_stored(&v) {
                    let refused = this
                        .state
                        .borrow()
                        .rejected
                        .as_ref()
                        .is_some_and(|r| r.ct_eq(t.access_token.expose()));
                    if !refused && this.fresh(&t, rt.now_ms()) {
                        this.install(&t);
                        Self::ahead_if_due(this);
                        return Ok((t, TokenOrigin::Store));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => rt.log(
                "store_error",
                json!({"provider": this.provider, "op": "get", "error": e}),
            ),
        }
        let request = MintRequest {
            provider: this.provider.clone(),
            reason: MintReason::Miss,
        };
        let why = match this.minter.mint(&request).await {
            Ok(MintAnswer::Token { token, origin }) => {
                this.install(&token);
                return Ok((token, origin));
            }
            Ok(MintAnswer::Error(e)) => return Err(e),
            Ok(MintAnswer::Dropped(_)) => "the minter answered a drop".to_string(),
            Err(why) => why,
        };
        this.unreachable(&why);
        let got = this.local.token().await;
        if let Ok((t, _)) = &got {
            this.install(t);
        }
        got
    }

    fn unreachable(&self, why: &str) {
        self.local.runtime().log(
            "minter_unreachable",
            json!({"provider": self.provider, "error": why,
                   "fallback": "this isolate obtains the token itself"}),
        );
    }
}

impl<T, S, R, M> Tokens for MintedSource<T, S, R, M>
where
    T: Transport + 'static,
    S: TokenStore + Clone + 'static,
    R: Runtime + 'static,
    M: Minter + 'static,
{
    type Rt = R;

    fn name(&self) -> &str {
        &self.inner.provider
    }

    fn settings(&self) -> &TokenSettings {
        self.inner.local.settings()
    }

    fn runtime(&self) -> &R {
        self.inner.local.runtime()
    }

    /// Memory, else one acquisition at a time for the isolate (single-flight): the store, then
    /// the minter.
    async fn token(&self) -> Result<(Token, TokenOrigin), TokenError> {
        let bound_ms = self.inner.local.acquisition_bound_ms();
        let memory = || {
            let t = self.memory_token()?;
            Inner::ahead_if_due(&self.inner);
            Some(Ok((Token::clone(&t), TokenOrigin::Memory)))
        };
        let start = || {
            let inner = self.inner.clone();
            async move { Inner::acquire(&inner).await }.boxed_local()
        };
        self.inner
            .flight
            .run(self.inner.local.runtime(), bound_ms, memory, start)
            .await
    }

    /// `Current` while memory holds `token` — with the time the minter vouched for it, if it
    /// did (a 401 within 30 s of that stands without asking again) — else `Replaced`.
    fn refused(&self, token: &Secret) -> RefusedToken {
        let st = self.inner.state.borrow();
        match &st.memory {
            Some(t) if t.access_token.ct_eq(token.expose()) => RefusedToken::Current {
                last_refresh_ms: st
                    .vouched
                    .as_ref()
                    .filter(|(v, _)| v.ct_eq(token.expose()))
                    .map(|(_, at)| *at),
            },
            _ => RefusedToken::Replaced,
        }
    }

    /// Reports `token` to the minter, which answers with the token to use: a new one (memory
    /// takes it; the refused one is a miss from now on), or the same one (it stands, vouched
    /// for). Without the minter, this isolate's own source forgets the token.
    async fn forget_refused(&self, token: &Secret) {
        let inner = &self.inner;
        // Reports of the same token made while one is under way share its answer.
        let replaced = || {
            let st = inner.state.borrow();
            st.memory
                .as_ref()
                .filter(|t| !t.access_token.ct_eq(token.expose()))
                .map(|t| {
                    Ok(MintAnswer::Token {
                        token: Token::clone(t),
                        origin: TokenOrigin::Memory,
                    })
                })
        };
        let report = || {
            let inner = inner.clone();
            let request = MintRequest {
                provider: inner.provider.clone(),
                reason: MintReason::Refused(token_sha256(token)),
            };
            async move { inner.minter.mint(&request).await }.boxed_local()
        };
        let bound_ms = inner.local.acquisition_bound_ms();
        let answer = inner
            .reports
            .run(inner.local.runtime(), bound_ms, replaced, report)
            .await;
        let now = inner.local.runtime().now_ms();
        match answer {
            Ok(MintAnswer::Token { token: t, .. }) if t.access_token.ct_eq(token.expose()) => {
                inner.state.borrow_mut().vouched = Some((token.clone(), now));
                inner.install(&t);
            }
            Ok(MintAnswer::Token { token: t, .. }) => {
                inner.state.borrow_mut().rejected = Some(token.clone());
                inner.install(&t);
            }
            Ok(MintAnswer::Error(_)) => inner.drop_refused(token),
            Ok(MintAnswer::Dropped(_)) => inner.drop_refused(token),
            Err(why) => {
                inner.unreachable(&why);
                inner.drop_refused(token);
                inner.local.forget_refused(token).await;
            }
        }
    }
}

impl<T, S, R, M> Inner<T, S, R, M> {
    /// Forgets `token` from memory (if it is the one there) and remembers it as refused.
    fn drop_refused(&self, token: &Secret) {
        let mut st = self.state.borrow_mut();
        if st
            .memory
            .as_ref()
            .is_some_and(|t| t.access_token.ct_eq(token.expose()))
        {
            st.memory = None;
        }
        st.rejected = Some(token.clone());
    }
}
