//! [`TokenSource`]: the tokens of one provider configuration — memory, else one acquisition at a
//! time however many callers wait (single-flight). Every decision is the
//! [`crate::token_machine`]'s; this file performs the I/O it asks for (store reads and writes,
//! token requests, backoff sleeps, removals in the background, log lines) and hands the results
//! back.

use super::flight::SingleFlight;
use super::{Runtime, TokenStore, Transport};
use crate::api_call::RefusedToken;
use crate::error::TokenError;
use crate::response::Token;
use crate::secret::Secret;
use crate::token_machine::{
    keep_stored, Acquisition, Effect, Invalidation, Need, Next, Slot, TokenMachine, TokenOrigin,
};
use crate::TokenSettings;
use futures::future::FutureExt;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;

type Acquired = Result<(Token, TokenOrigin), TokenError>;

struct Inner<T, S, R> {
    /// The name and settings, as the machine has them (kept here to be lent out).
    name: String,
    settings: TokenSettings,
    key: String,
    transport: T,
    store: S,
    rt: R,
    machine: RefCell<TokenMachine>,
    /// The acquisition under way, shared by every caller (single-flight).
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
                machine: RefCell::new(TokenMachine::new(name, settings.clone(), secret)),
                name: name.to_string(),
                settings,
                key,
                transport,
                store,
                rt,
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

    /// Names the token API tokens this source creates with `tag`, for the sweep after an
    /// ambiguous creation (see [`TokenMachine::tag_created_tokens`]): only for the sole minter of
    /// a token.
    pub fn tag_created_tokens(&self, tag: &str) {
        self.inner.machine.borrow_mut().tag_created_tokens(tag);
    }

    /// The longest one acquisition can take (see
    /// [`crate::token_machine::TokenMachine::acquisition_bound_ms`]).
    pub fn acquisition_bound_ms(&self) -> u64 {
        self.inner.machine.borrow().acquisition_bound_ms()
    }

    /// A fresh token and where it came from. Concurrent callers share one acquisition
    /// (single-flight); a waiter gives up on one that outlived every attempt it could make. A
    /// failed exchange caches nothing.
    pub async fn token(&self) -> Result<(Token, TokenOrigin), TokenError> {
        let bound_ms = self.inner.machine.borrow().acquisition_bound_ms();
        let memory = || {
            self.memory_token()
                .map(|t| Ok((Token::clone(&t), TokenOrigin::Memory)))
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

    /// Replaces the token in memory ahead of its refresh point when it has passed `percent` %
    /// of its lifetime (refresh-ahead), while callers keep getting it from memory; concurrent
    /// asks share one replacement. The token in use afterwards (the new one, or the old one when
    /// it was not due or could not be replaced).
    pub async fn refresh_ahead(&self, percent: u64) -> Result<(Token, TokenOrigin), TokenError> {
        let now = self.inner.rt.now_ms();
        if !self.inner.machine.borrow().ahead_due(now, percent) {
            return self.token().await;
        }
        let bound_ms = self.inner.machine.borrow().acquisition_bound_ms();
        let done = || {
            let now = self.inner.rt.now_ms();
            let m = self.inner.machine.borrow();
            (!m.ahead_due(now, percent))
                .then(|| {
                    m.memory(now)
                        .map(|t| Ok((Token::clone(&t), TokenOrigin::Memory)))
                })
                .flatten()
        };
        let start = || {
            let inner = self.inner.clone();
            async move { Inner::acquire_ahead(&inner, percent).await }.boxed_local()
        };
        self.inner
            .flight
            .run(&self.inner.rt, bound_ms, done, start)
            .await
    }

    /// What memory says about `token`, which the API has just refused with 401 (see
    /// [`crate::api_call::RefusedToken`]).
    pub fn refused(&self, token: &Secret) -> RefusedToken {
        self.inner.machine.borrow().refused(token)
    }

    /// Forgets `token`, which the API refused: from memory and the store, remembered so that a
    /// stale store read cannot bring it back, and timed for the 401 window.
    pub async fn forget_refused(&self, token: &Secret) {
        let now = self.inner.rt.now_ms();
        let plan = self.inner.machine.borrow_mut().forget_refused(token, now);
        self.inner.invalidate_store(plan).await;
    }

    /// Drops `rejected` (any token, when `None`) from memory, and from the store unless the
    /// store holds another token by now (another instance's newer one). A newer token fetched
    /// meanwhile by a concurrent request is kept. A token API's dropped token is rotated by the
    /// next exchange rather than left behind at the service.
    pub async fn invalidate(&self, rejected: Option<&Secret>) {
        let plan = self.inner.machine.borrow_mut().invalidate(rejected);
        self.inner.invalidate_store(plan).await;
    }

    /// Drops the token everywhere this source keeps it — memory and the store — as an
    /// operator asks for an incident (`DELETE /admin/providers/{id}/token`): the SHA-256 of
    /// each token dropped (memory's and the store's, when they differ). The next request
    /// obtains a new token; a token API's dropped token is rotated away by that acquisition.
    pub async fn drop_token(&self) -> Vec<[u8; 32]> {
        let mut dropped = Vec::new();
        if let Some(t) = self.memory_token() {
            dropped.push(crate::mint::token_sha256(&t.access_token));
        }
        if let Ok(Some(v)) = self.inner.store.get(&self.inner.key).await {
            if let Some(t) = Token::from_stored(&v) {
                let h = crate::mint::token_sha256(&t.access_token);
                if !dropped.contains(&h) {
                    dropped.push(h);
                }
                // A stale read elsewhere must not bring it back either.
                self.inner
                    .machine
                    .borrow_mut()
                    .forget_memory(&t.access_token);
            }
        }
        self.invalidate(None).await;
        dropped
    }

    /// Forgets `token` from memory if it is the one there, and makes a store read returning
    /// it a miss ([`crate::token_machine::TokenMachine::forget_memory`]).
    pub fn forget_memory(&self, token: &Secret) -> bool {
        self.inner.machine.borrow_mut().forget_memory(token)
    }

    /// The token [`TokenSource::token`] would answer from memory right now, without any I/O.
    /// The same `Rc` until memory holds another token: [`Rc::ptr_eq`] tells a replacement.
    pub fn memory_token(&self) -> Option<Rc<Token>> {
        let now = self.inner.rt.now_ms();
        self.inner.machine.borrow().memory(now)
    }
}

impl<T: Transport + 'static, S: TokenStore + 'static, R: Runtime + 'static> Inner<T, S, R> {
    /// Drives one acquisition of the machine to its end.
    async fn acquire(this: &Rc<Self>) -> Acquired {
        let now = this.rt.now_ms();
        let (run, next) = this.machine.borrow_mut().acquire(now);
        Self::drive(this, run, next).await
    }

    /// Drives one refresh-ahead of the machine to its end.
    async fn acquire_ahead(this: &Rc<Self>, percent: u64) -> Acquired {
        let now = this.rt.now_ms();
        let (run, next) = this.machine.borrow_mut().acquire_ahead(now, percent);
        Self::drive(this, run, next).await
    }

    /// Performs what `run` asks until it is done.
    async fn drive(this: &Rc<Self>, mut run: Acquisition, mut next: Next) -> Acquired {
        loop {
            let Next { effects, need } = next;
            for effect in effects {
                Self::perform(this, effect).await;
            }
            next = match need {
                Need::Done(outcome) => return outcome,
                Need::Read(slot) => {
                    let read = this.store.get(&this.key_of(slot)).await;
                    let now = this.rt.now_ms();
                    run.stored(&mut this.machine.borrow_mut(), now, read)
                }
                Need::Send(req) => {
                    let sent = this.rt.now_ms();
                    let result = this.transport.send(req, this.settings.timeout_ms).await;
                    let now = this.rt.now_ms();
                    let jitter = this.rt.jitter();
                    run.answered(&mut this.machine.borrow_mut(), now, sent, result, jitter)
                }
                Need::Sleep(ms) => {
                    this.rt.sleep(ms).await;
                    run.slept(&mut this.machine.borrow_mut())
                }
            };
        }
    }

    /// Performs one effect: store writes are awaited (a failure logged), removals run in the
    /// background, log lines are written.
    async fn perform(this: &Rc<Self>, effect: Effect) {
        match effect {
            Effect::Write { slot, value, ttl_s } => {
                if let Err(e) = this.store.put(&this.key_of(slot), value, ttl_s).await {
                    let op = match slot {
                        Slot::Token => "put",
                        Slot::Hold => "put_hold",
                    };
                    this.log_store_error(op, &e);
                }
            }
            Effect::Remove(removal) => {
                let inner = this.clone();
                this.rt.background(Box::pin(async move {
                    let started = inner.rt.now_ms();
                    let result = inner
                        .transport
                        .send(removal.request.clone(), inner.settings.timeout_ms)
                        .await;
                    let now = inner.rt.now_ms();
                    let fields = removal.outcome(now, now.saturating_sub(started), &result);
                    inner.rt.log("token_revoked", fields);
                }));
            }
            Effect::Sweep(sweep) => {
                let inner = this.clone();
                this.rt.background(Box::pin(async move {
                    let timeout = inner.settings.timeout_ms;
                    let listed = inner.transport.send(sweep.request.clone(), timeout).await;
                    let removals = match &listed {
                        Ok(resp) => sweep.removals(resp),
                        Err(_) => Vec::new(),
                    };
                    inner.rt.log(
                        "token_swept",
                        json!({"provider": inner.name, "listed": listed.is_ok(),
                               "removing": removals.len()}),
                    );
                    for removal in removals {
                        let started = inner.rt.now_ms();
                        let result = inner.transport.send(removal.request.clone(), timeout).await;
                        let now = inner.rt.now_ms();
                        let fields = removal.outcome(now, now.saturating_sub(started), &result);
                        inner.rt.log("token_revoked", fields);
                    }
                }));
            }
            Effect::Log(event, fields) => this.rt.log(event, fields),
        }
    }

    /// Carries out what an invalidation asks of the store.
    async fn invalidate_store(&self, plan: Invalidation) {
        match plan {
            Invalidation::Keep => return,
            Invalidation::Delete => {}
            Invalidation::DeleteUnlessReplaced(rejected) => {
                let read = self.store.get(&self.key).await;
                if keep_stored(&read, &rejected) {
                    return;
                }
            }
        }
        if let Err(e) = self.store.delete(&self.key).await {
            self.log_store_error("delete", &e);
        }
    }

    /// The store key of `slot`: the token under the cache key, a pause the provider asked for
    /// beside it.
    fn key_of(&self, slot: Slot) -> String {
        match slot {
            Slot::Token => self.key.clone(),
            Slot::Hold => format!("{}:hold", self.key),
        }
    }

    fn log_store_error(&self, op: &str, error: &str) {
        self.rt.log(
            "store_error",
            json!({"provider": self.name, "op": op, "error": error}),
        );
    }
}

impl<T: Transport + 'static, S: TokenStore + 'static, R: Runtime + 'static> super::Tokens
    for TokenSource<T, S, R>
{
    type Rt = R;

    fn name(&self) -> &str {
        TokenSource::name(self)
    }

    fn settings(&self) -> &TokenSettings {
        TokenSource::settings(self)
    }

    fn runtime(&self) -> &R {
        TokenSource::runtime(self)
    }

    async fn token(&self) -> Result<(Token, TokenOrigin), TokenError> {
        TokenSource::token(self).await
    }

    fn refused(&self, token: &Secret) -> RefusedToken {
        TokenSource::refused(self, token)
    }

    async fn forget_refused(&self, token: &Secret) {
        TokenSource::forget_refused(self, token).await
    }
}
