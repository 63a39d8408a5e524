//! The provider-token lifecycle as a sans-IO state machine, in the manner of [`crate::api_call`]:
//! whoever drives it — an isolate's [`crate::flow::TokenSource`], the npm package through the
//! same source, a coordinator that mints for many isolates — performs the I/O it asks for and
//! reports back; the machine never reads a clock, sleeps, sends or stores.
//!
//! Two parts:
//!
//! - [`TokenMachine`], one per provider configuration (one cache key): what outlives an
//!   acquisition — the token in use, a token the API refused, a token API's token dropped from
//!   memory but still live at the service, the cooldown after `invalid_client`, the time of the
//!   last 401-caused refresh, and the [`Pressure`] on the token endpoint. Its answers to a 401
//!   ([`TokenMachine::refused`], [`TokenMachine::forget_refused`]) and to an invalidation need
//!   no acquisition.
//! - [`Acquisition`], one run from a memory miss to a token or an error, through explicit phases:
//!   read the store → read the pause other instances learnt → exchange (create, or rotate a
//!   token API's token), with retries → for a token API's creation, read the store again →
//!   done. Each step returns a [`Next`]: [`Effect`]s to perform as they come (store writes,
//!   removals of superseded tokens in the background, log lines) and one [`Need`] whose result
//!   is the next input (a store read, an HTTP answer, the end of a backoff), or the outcome.
//!
//! The rules (each tested in `tests.rs` as a table of inputs and the needs and effects they
//! cause):
//!
//! - **Store first.** A fresh token in the store is served whatever state the provider is in; a
//!   token the API refused is a miss even when the store still returns it (KV deletes propagate
//!   slowly), and a store that fails or holds what cannot be read is a logged miss.
//! - **Cooldown.** After `invalid_client` — or, with a token API, an answer that cannot be read
//!   (it may have minted a token all the same) — the token endpoint is left alone for
//!   [`INVALID_CLIENT_COOLDOWN_MS`]: callers get that error again, unasked.
//! - **Pressure.** A long `Retry-After` (learnt here, or by another instance through the store),
//!   an open circuit ([`crate::pressure`]) and a spent budget (`token_rate_limit_per_minute`:
//!   an exchange is not started once that many requests went to the token endpoint this minute)
//!   stop an exchange from starting; a pause learnt here is written to the store for the other
//!   instances.
//! - **A valid token while the provider is in trouble.** When an exchange fails for the
//!   provider's reasons (5xx, 429, a timeout, a lost connection, a pause, the circuit, the
//!   budget), a token past its refresh point that has not expired is served instead of the
//!   error, and memory keeps serving it for [`STALE_GRACE_MS`] before the next try; an expired
//!   token never is.
//! - **Refresh-ahead** ([`TokenMachine::acquire_ahead`]): a coordinator replaces a token past a
//!   share of its lifetime before anyone has to wait for it; memory serves the old one
//!   meanwhile. A provider that answers with the token it already gave pins it: it is used
//!   until it expires and not asked for again early.
//! - **Rotation, then creation** (token API, `docs/providers.md#openapi-token-api`): the token
//!   being replaced — the store's, else the one in memory or dropped from it — is rotated with
//!   its refresh token unless it has expired (an expired token is never sent); when the service
//!   will not rotate it (any 4xx but 429), a new one is created.
//! - **No resend after a timeout**: a token API's creation or rotation is not sent again after
//!   a timeout or a dropped connection (it may have taken effect); every other exchange follows
//!   the retry policy ([`crate::retry`]).
//! - **Superseded tokens are removed.** With a token API, every token replaced other than by
//!   rotation — the previous one after a creation, one memory held that another instance
//!   replaced, one minted in an answer that cannot be read — is removed (`DELETE`) in the
//!   background; an expired one is left alone.
//! - **Yield to the store.** A token API's token created here gives way to a fresh one another
//!   instance stored meanwhile (the one created here is removed), so instances that race settle
//!   on one token.
//! - **Nothing failed is kept.** A failed exchange stores no token; a successful one clears the
//!   cooldown, the refused token and the dropped one, and is stored for as long as the
//!   provider's expiry policy allows (a token API's until it expires, so the next reader rotates
//!   it).

mod acquire;

pub use acquire::Acquisition;

use crate::api_call::RefusedToken;
use crate::config::{AuthStyle, TokenSettings};
use crate::dialect::revoke_request;
use crate::expiry::is_fresh;
use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::limits::WindowCounter;
use crate::pressure::{Pressure, PressurePolicy};
use crate::response::{error_from_response, Token};
use crate::scrub::Scrubber;
use crate::secret::Secret;
use serde_json::{json, Value};
use std::fmt;
use std::rc::Rc;

/// How long a provider that answered `invalid_client` is left alone, milliseconds.
pub const INVALID_CLIENT_COOLDOWN_MS: u64 = 30_000;

/// After a token past its refresh point (but not expired) was served because the provider is
/// in trouble, memory serves it for this long before the next acquisition asks again.
pub const STALE_GRACE_MS: u64 = 5_000;

/// Where a token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOrigin {
    /// This isolate's (or process's) memory.
    Memory,
    /// The shared store: Workers KV, or the npm cache adapter.
    Store,
    /// The minter that coordinates this provider's tokens for every isolate, which held it
    /// already (see [`crate::mint`]).
    Minter,
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
            TokenOrigin::Minter => "minter",
            TokenOrigin::Exchange { .. } => "exchange",
        }
    }
}

/// The two things the machine keeps in the shared store, each under its own key (the driver
/// knows the keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The token ([`Token::to_stored`]).
    Token,
    /// The end of a pause the provider asked for (epoch ms, as text).
    Hold,
}

/// Something to do as soon as it is handed out, reporting nothing back.
pub enum Effect {
    /// Write `value` under `slot` for `ttl_s` seconds (a failure is the driver's to log).
    Write {
        /// Which key.
        slot: Slot,
        /// What to store.
        value: String,
        /// Its lifetime in the store, seconds (at least KV's 60).
        ttl_s: u64,
    },
    /// Remove a superseded token from a token API, in the background: nothing waits for it.
    Remove(Removal),
    /// After a creation or rotation that may have taken effect unanswered, list the account's
    /// tokens and remove the ones this machine made and does not use, in the background.
    Sweep(Box<Sweep>),
    /// Write one log line: `event` with `fields` (no secret, no token).
    Log(&'static str, Value),
}

impl fmt::Debug for Effect {
    // The stored value holds the token: only its slot and lifetime are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Write { slot, ttl_s, .. } => write!(f, "Write({slot:?}, {ttl_s} s)"),
            Effect::Remove(r) => write!(f, "Remove({:?})", r.request),
            Effect::Sweep(s) => write!(f, "Sweep({:?})", s.request),
            Effect::Log(event, fields) => write!(f, "Log({event}, {fields})"),
        }
    }
}

/// A token API's `DELETE` of a superseded token, with what its answer is read through.
pub struct Removal {
    /// The request to send.
    pub request: HttpRequest,
    name: String,
    scrub: Scrubber,
}

impl Removal {
    /// The `token_revoked` log fields of the removal's outcome, `ms` after it was sent: a 2xx,
    /// or a 404 (the token is gone already: rotated away by another instance, or expired), is
    /// success; anything else is logged with the service's scrubbed words, never fatal.
    pub fn outcome(
        &self,
        now_ms: u64,
        ms: u64,
        result: &Result<HttpResponse, TransportError>,
    ) -> Value {
        let (status, ok, provider_error, error) = match result {
            Ok(resp) if (200..=299).contains(&resp.status) || resp.status == 404 => {
                (Some(resp.status), true, None, None)
            }
            Ok(resp) => {
                let e = error_from_response(resp, now_ms, &self.scrub);
                (
                    Some(resp.status),
                    false,
                    e.provider_error,
                    Some(e.description),
                )
            }
            Err(TransportError::Timeout) => (None, false, None, Some("timeout".to_string())),
            Err(TransportError::Network(m)) => (None, false, None, Some(self.scrub.scrub(m))),
        };
        json!({"provider": self.name, "status": status, "ms": ms, "ok": ok,
               "provider_error": provider_error, "error": error})
    }
}

/// The sweep of a token API account after an ambiguous creation or rotation: the list request
/// to send, and which of the listed tokens to remove — every live token whose name carries this
/// machine's tag ([`TokenMachine::tag_created_tokens`]) except the one in use.
pub struct Sweep {
    /// The list request (`GET {token_url}`).
    pub request: HttpRequest,
    marker: String,
    keep: Secret,
    settings: TokenSettings,
    secret: Secret,
    name: String,
    scrub: Scrubber,
}

impl Sweep {
    /// The removals the list answer `resp` calls for.
    pub fn removals(&self, resp: &HttpResponse) -> Vec<Removal> {
        let Some(records) = crate::response::listed_records(resp) else {
            return Vec::new();
        };
        records
            .into_iter()
            .filter(|(t, name)| {
                !t.ct_eq(self.keep.expose())
                    && name.as_deref().is_some_and(|n| n.ends_with(&self.marker))
            })
            .filter_map(|(t, _)| {
                let token = Token {
                    access_token: t,
                    token_type: "Bearer".into(),
                    issued_at_ms: 0,
                    expires_at_ms: u64::MAX,
                    scope: None,
                    refresh_token: None,
                };
                Some(Removal {
                    request: revoke_request(&self.settings, &self.secret, &token)?,
                    name: self.name.clone(),
                    scrub: self.scrub.with_token(&token),
                })
            })
            .collect()
    }
}

/// What the driver must do before the next step, or the outcome.
#[derive(Debug)]
pub enum Need {
    /// Read the store's `slot`; report with [`Acquisition::stored`].
    Read(Slot),
    /// Send this request (within the provider's `timeout_ms`); report with
    /// [`Acquisition::answered`].
    Send(HttpRequest),
    /// Wait this many milliseconds; report with [`Acquisition::slept`].
    Sleep(u64),
    /// The acquisition is over: the token and where it came from, or why there is none.
    Done(Result<(Token, TokenOrigin), crate::error::TokenError>),
}

/// The effects of one step, then what it needs.
#[derive(Debug)]
pub struct Next {
    /// Perform these first, in order.
    pub effects: Vec<Effect>,
    /// Then this.
    pub need: Need,
}

/// What to do with the store after a token was dropped from memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// Nothing: memory held another token (a newer one, fetched meanwhile).
    Keep,
    /// Delete the stored token.
    Delete,
    /// Read the store first, and delete its token only if [`keep_stored`] says not to keep
    /// it: the API refused this token, and another instance may have stored a newer one.
    DeleteUnlessReplaced(Secret),
}

/// After an [`Invalidation::DeleteUnlessReplaced`] of `rejected`: whether the store's token
/// (`read`) stays — when the store holds nothing, or a token other than the rejected one.
pub fn keep_stored(read: &Result<Option<String>, String>, rejected: &Secret) -> bool {
    match read {
        Ok(None) => true,
        Ok(Some(v)) => {
            Token::from_stored(v).is_some_and(|t| !t.access_token.ct_eq(rejected.expose()))
        }
        Err(_) => false,
    }
}

/// The lifecycle state of one provider configuration's tokens.
pub struct TokenMachine {
    name: String,
    settings: TokenSettings,
    secret: Secret,
    scrub: Scrubber,
    /// The token in use; an `Rc` so a shell can hold it and tell it from a replacement.
    memory: Option<Rc<Token>>,
    /// Until when, and with what error, the token endpoint is left alone.
    cooldown: Option<(u64, crate::error::TokenError)>,
    /// A token the API refused: a store read returning it is a miss. Cleared by the next
    /// successful exchange.
    rejected: Option<Secret>,
    /// When an API 401 last caused a refresh.
    refreshed_on_401_at: Option<u64>,
    /// A token API's token dropped from memory (refused, or invalidated) but still live at the
    /// service: the next acquisition rotates it.
    replaced: Option<Rc<Token>>,
    /// Whether the token endpoint may be called.
    pressure: Pressure,
    /// Until when memory may serve its token past the refresh point (it has not expired, and
    /// the provider could not give another: [`STALE_GRACE_MS`]).
    stale_until: Option<u64>,
    /// A token the provider gave again when asked for a new one: it is used until it expires,
    /// never refreshed early (asking again would only loop).
    pinned: Option<Secret>,
    /// Requests sent to the token endpoint in the current minute, against
    /// `token_rate_limit_per_minute`.
    budget: WindowCounter,
    /// The settings creations are sent with: a token API's token name carries the tag of
    /// [`TokenMachine::tag_created_tokens`], when set.
    create_settings: TokenSettings,
    /// The end of that name (` [tokengate:<tag>]`), when tokens are tagged.
    marker: Option<String>,
    /// A creation or rotation may have taken effect without an answer: the next token
    /// installed after an exchange sweeps the account.
    sweep_due: bool,
}

impl TokenMachine {
    /// The machine of `settings` with client secret `secret`, named `name` in logs.
    pub fn new(name: &str, settings: TokenSettings, secret: Secret) -> Self {
        let settings_clone = settings.clone();
        TokenMachine {
            name: name.to_string(),
            scrub: Scrubber::for_client(&settings.client_id, &secret),
            settings,
            secret,
            memory: None,
            cooldown: None,
            rejected: None,
            refreshed_on_401_at: None,
            replaced: None,
            pressure: Pressure::new(PressurePolicy::default()),
            stale_until: None,
            pinned: None,
            budget: WindowCounter::new(60_000, 1),
            create_settings: settings_clone,
            marker: None,
            sweep_due: false,
        }
    }

    /// Names every token API token this machine creates with `tag` (` [tokengate:<tag>]` after
    /// the configured name), so that one a creation or rotation made without an answer (a
    /// timeout, a lost connection, a 5xx from a proxy in front) can be found in the account's
    /// list and removed rather than left live for up to a year. Only for a sole minter of the
    /// token: with a tag, every tagged token but the one in use is removed after such an
    /// answer, which would take the tokens of other instances minting on their own.
    pub fn tag_created_tokens(&mut self, tag: &str) {
        if !self.settings.auth_style.manages_tokens() {
            return;
        }
        let marker = format!(" [tokengate:{tag}]");
        let mut settings = self.settings.clone();
        let body = settings.token_body.get_or_insert_with(Default::default);
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("tokengate")
            .to_string();
        body.insert("name".into(), Value::String(format!("{name}{marker}")));
        self.create_settings = settings;
        self.marker = Some(marker);
    }

    /// The name it has in logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Whether `t` may be served at `now_ms`: before its refresh point — or, for a token the
    /// provider gave again when asked to replace it (pinned), before a second ahead of its
    /// expiry.
    pub fn fresh(&self, t: &Token, now_ms: u64) -> bool {
        if self
            .pinned
            .as_ref()
            .is_some_and(|p| p.ct_eq(t.access_token.expose()))
        {
            return now_ms.saturating_add(1_000) < t.expires_at_ms;
        }
        is_fresh(
            &self.settings.expiry,
            t.issued_at_ms,
            t.expires_at_ms,
            now_ms,
        )
    }

    /// The token memory serves at `now_ms`, without any I/O: the same `Rc` until memory holds
    /// another token ([`Rc::ptr_eq`] tells a replacement). Fresh, or — while the provider cannot
    /// give another ([`STALE_GRACE_MS`]) — not yet expired.
    pub fn memory(&self, now_ms: u64) -> Option<Rc<Token>> {
        let grace = self.stale_until.is_some_and(|u| now_ms < u);
        self.memory
            .as_ref()
            .filter(|t| self.fresh(t, now_ms) || (grace && now_ms < t.expires_at_ms))
            .cloned()
    }

    /// Whether the token in memory, fresh, has passed `percent` % of its lifetime and may be
    /// replaced ahead of time ([`TokenMachine::acquire_ahead`]): not a pinned token.
    pub fn ahead_due(&self, now_ms: u64, percent: u64) -> bool {
        self.memory.as_ref().is_some_and(|t| {
            self.fresh(t, now_ms)
                && now_ms >= crate::expiry::ahead_at_ms(t.issued_at_ms, t.expires_at_ms, percent)
                && !self
                    .pinned
                    .as_ref()
                    .is_some_and(|p| p.ct_eq(t.access_token.expose()))
        })
    }

    /// The longest an acquisition can take — every attempt of every exchange it may make (a
    /// token API may rotate, then create) at its timeout and longest backoff — plus a second:
    /// a caller waiting for another's acquisition gives up after this. An attempt with proof
    /// of possession may be sent up to twice more ([`crate::flow::ProofTransport`]: once with a
    /// DPoP nonce, once with a new client assertion), each under the timeout.
    pub fn acquisition_bound_ms(&self) -> u64 {
        let s = &self.settings;
        let exchanges = if s.auth_style.manages_tokens() { 2 } else { 1 };
        let sends = 1 + u64::from(s.dpop) + u64::from(s.auth_style == AuthStyle::PrivateKeyJwt);
        exchanges
            * u64::from(s.retry.max_attempts.max(1))
            * (sends * s.timeout_ms + s.retry.max_delay_ms)
            + 1_000
    }

    /// What memory says about `token`, which the API has just refused with 401 (see
    /// [`crate::api_call::RefusedToken`]).
    pub fn refused(&self, token: &Secret) -> RefusedToken {
        match &self.memory {
            Some(t) if t.access_token.ct_eq(token.expose()) => RefusedToken::Current {
                last_refresh_ms: self.refreshed_on_401_at,
            },
            _ => RefusedToken::Replaced,
        }
    }

    /// Forgets `token`, which the API refused at `now_ms`: remembers it (a stale store read
    /// cannot bring it back) and the time (for the 401 window), then invalidates it.
    pub fn forget_refused(&mut self, token: &Secret, now_ms: u64) -> Invalidation {
        self.refreshed_on_401_at = Some(now_ms);
        self.rejected = Some(token.clone());
        self.invalidate(Some(token))
    }

    /// Forgets `token` from memory if it is the one there (an operator dropped it: the shell
    /// learnt so from the caller authority); a store read returning it is a miss from now on,
    /// so a stale copy cannot bring it back. The store is left alone (the dropping isolate
    /// cleared it). Whether memory held it.
    pub fn forget_memory(&mut self, token: &Secret) -> bool {
        let held = self
            .memory
            .as_ref()
            .is_some_and(|t| t.access_token.ct_eq(token.expose()));
        if held {
            self.memory = None;
            self.stale_until = None;
            self.rejected = Some(token.clone());
        }
        held
    }

    /// Drops `rejected` (any token, when `None`) from memory — unless memory holds another
    /// token by now (a newer one a concurrent request fetched, kept). A token API's dropped
    /// token is rotated by the next acquisition rather than left behind at the service. Says
    /// what to do with the store.
    pub fn invalidate(&mut self, rejected: Option<&Secret>) -> Invalidation {
        let same = match (&self.memory, rejected) {
            (Some(c), Some(r)) => c.access_token.ct_eq(r.expose()),
            _ => true,
        };
        if !same {
            return Invalidation::Keep;
        }
        let dropped = self.memory.take();
        if self.settings.auth_style.manages_tokens() && dropped.is_some() {
            self.replaced = dropped;
        }
        match rejected {
            Some(r) => Invalidation::DeleteUnlessReplaced(r.clone()),
            None => Invalidation::Delete,
        }
    }

    /// Starts an acquisition at `now_ms` (memory had no fresh token).
    pub fn acquire(&mut self, now_ms: u64) -> (Acquisition, Next) {
        Acquisition::start(self, now_ms, None)
    }

    /// Starts an acquisition at `now_ms` that replaces a token past `percent` % of its
    /// lifetime though it is still fresh (refresh-ahead): such a token, in memory or in the
    /// store, is not served but replaced (rotated, with a token API). Memory keeps serving it
    /// meanwhile; if the replacement fails, it stays the token in use.
    pub fn acquire_ahead(&mut self, now_ms: u64, percent: u64) -> (Acquisition, Next) {
        Acquisition::start(self, now_ms, Some(percent))
    }

    /// `Err` (503 `temporarily_unavailable` with the rest of the minute) when the token
    /// endpoint's budget (`token_rate_limit_per_minute`) is spent at `now_ms`.
    fn within_budget(&self, now_ms: u64) -> Result<(), crate::error::TokenError> {
        let Some(limit) = self.settings.token_rate_limit_per_minute else {
            return Ok(());
        };
        self.budget.check("", limit, now_ms).map_err(|ms| {
            let mut e = crate::error::TokenError::new(
                crate::error::ErrorCode::TemporarilyUnavailable,
                format!("the token endpoint's budget of {limit} requests a minute is spent"),
            );
            e.retry_after_ms = Some(ms);
            e
        })
    }

    /// Counts one request to the token endpoint at `now_ms` against the budget.
    fn spend(&mut self, now_ms: u64) {
        if self.settings.token_rate_limit_per_minute.is_some() {
            self.budget.record("", now_ms);
        }
    }

    /// A token API's `DELETE` of `token`, unless it has expired already or the dialect keeps no
    /// tokens.
    fn removal(&self, token: &Token, now_ms: u64) -> Option<Effect> {
        if now_ms >= token.expires_at_ms {
            return None;
        }
        let request = revoke_request(&self.settings, &self.secret, token)?;
        Some(Effect::Remove(Removal {
            request,
            name: self.name.clone(),
            scrub: self.scrub.with_token(token),
        }))
    }

    /// The sweep due after an ambiguous creation or rotation, now that `keep` is in use.
    fn sweep(&mut self, keep: &Token) -> Option<Effect> {
        if !std::mem::take(&mut self.sweep_due) {
            return None;
        }
        let marker = self.marker.clone()?;
        let request = crate::dialect::list_request(&self.settings, &self.secret)?;
        Some(Effect::Sweep(Box::new(Sweep {
            request,
            marker,
            keep: keep.access_token.clone(),
            settings: self.settings.clone(),
            secret: self.secret.clone(),
            name: self.name.clone(),
            scrub: self.scrub.clone(),
        })))
    }

    /// Makes `token`, just obtained, the one in use: what held the previous one back (a
    /// cooldown, a refused or dropped token) is over.
    fn install(&mut self, token: &Token) {
        if !self
            .pinned
            .as_ref()
            .is_some_and(|p| p.ct_eq(token.access_token.expose()))
        {
            self.pinned = None;
        }
        self.memory = Some(Rc::new(token.clone()));
        self.replaced = None;
        self.cooldown = None;
        self.rejected = None;
        self.stale_until = None;
    }

    fn store_error(&self, op: &str, error: &str) -> Effect {
        Effect::Log(
            "store_error",
            json!({"provider": self.name, "op": op, "error": error}),
        )
    }
}

#[cfg(test)]
mod tests;
