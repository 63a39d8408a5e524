//! One acquisition: from a memory miss to a token or an error (see the module documentation of
//! [`super`] for the rules).

use super::{Effect, Need, Next, Slot, TokenMachine, TokenOrigin, INVALID_CLIENT_COOLDOWN_MS};
use crate::dialect::{build_token_request, parse_reply, rotate_request};
use crate::error::{ErrorCode, TokenError};
use crate::expiry::{kv_ttl_s, kv_ttl_until_expiry_s, KV_MIN_TTL_S};
use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::response::{error_from_response, minted_token, Token};
use crate::retry::{Decision, Outcome};
use serde_json::json;

/// Where an acquisition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the store's token.
    ReadToken,
    /// Waiting for the pause other instances learnt.
    ReadHold,
    /// Waiting for the answer to an exchange attempt.
    Exchange,
    /// Waiting out a backoff before the next attempt.
    Backoff,
    /// Waiting for the store's token again, after a token API's creation.
    Recheck,
    /// Over.
    Done,
}

/// Which exchange is under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Rotate,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Rotate => "rotate",
        }
    }
}

/// One run of the token lifecycle, from a memory miss to a token or an error. Inputs that
/// arrive in a phase that does not expect them end it with an error (a driver bug, never a
/// provider's doing).
pub struct Acquisition {
    phase: Phase,
    /// The token this acquisition replaces, as memory held it at the start (the one in use
    /// past its refresh point, or a token API's dropped one).
    in_memory: Option<Token>,
    /// A token the store held that may no longer be served (past its refresh point).
    in_store: Option<Token>,
    /// The token being replaced (rotated, or removed after a creation).
    previous: Option<Token>,
    /// A token memory held that the store no longer does: another instance replaced it.
    orphan: Option<Token>,
    op: Op,
    request: Option<HttpRequest>,
    attempt: u32,
    /// When the exchange (the first attempt) started.
    started_ms: u64,
    /// A token API's token created here, waiting for the second store read.
    created: Option<Token>,
    /// Refresh-ahead: tokens past this percentage of their lifetime are replaced, not served.
    ahead: Option<u64>,
    /// A token past its refresh point but not expired (memory's, else the store's), served
    /// rather than an error when the provider is in trouble.
    stale: Option<(Token, TokenOrigin)>,
}

impl Acquisition {
    pub(super) fn start(
        m: &mut TokenMachine,
        now_ms: u64,
        ahead: Option<u64>,
    ) -> (Acquisition, Next) {
        let stale = m
            .memory
            .as_ref()
            .filter(|t| now_ms < t.expires_at_ms)
            .map(|t| (Token::clone(t), TokenOrigin::Memory));
        let in_memory = m
            .memory
            .as_ref()
            .or(m.replaced.as_ref())
            .map(|t| Token::clone(t));
        let run = Acquisition {
            phase: Phase::ReadToken,
            in_memory,
            in_store: None,
            previous: None,
            orphan: None,
            op: Op::Create,
            request: None,
            attempt: 0,
            started_ms: now_ms,
            created: None,
            ahead,
            stale,
        };
        (run, next(Vec::new(), Need::Read(Slot::Token)))
    }

    /// The store's answer to [`Need::Read`], read at `now_ms`.
    pub fn stored(
        &mut self,
        m: &mut TokenMachine,
        now_ms: u64,
        read: Result<Option<String>, String>,
    ) -> Next {
        match self.phase {
            Phase::ReadToken => self.token_read(m, now_ms, read),
            Phase::ReadHold => self.hold_read(m, now_ms, read),
            Phase::Recheck => self.rechecked(m, now_ms, read),
            _ => self.out_of_order("a store read"),
        }
    }

    /// The answer to [`Need::Send`], received at `now_ms` for an attempt sent at `sent_ms`;
    /// `jitter` is a uniform sample in `[0, 1)` for the backoff, should there be one.
    pub fn answered(
        &mut self,
        m: &mut TokenMachine,
        now_ms: u64,
        sent_ms: u64,
        result: Result<HttpResponse, TransportError>,
        jitter: f64,
    ) -> Next {
        if self.phase != Phase::Exchange {
            return self.out_of_order("an exchange answer");
        }
        let manages = m.settings.auth_style.manages_tokens();
        let rotating = match self.op {
            Op::Rotate => self.previous.as_ref(),
            Op::Create => None,
        };
        // What a provider's text must not show: the secret, and the token being rotated (its
        // URL names it, which a network error may quote) with its refresh token.
        let scrub = match rotating {
            Some(t) => m.scrub.with_token(t),
            None => m.scrub.clone(),
        };
        let ms = now_ms.saturating_sub(sent_ms);
        let mut effects = Vec::new();
        let (err, outcome) = match result {
            Ok(resp) if (200..=299).contains(&resp.status) => {
                // A 2xx the core cannot use names what was wrong (read through the scrubber);
                // its body is not kept: it may carry a token just minted, which no scrubber
                // knows yet.
                let parsed = parse_reply(&m.settings, &resp, now_ms, &scrub).map_err(|mut e| {
                    e.raw_body = None;
                    e
                });
                if parsed.is_err() && manages {
                    // A token it minted all the same is removed rather than left live.
                    if let Some(minted) = minted_token(&resp) {
                        effects.extend(m.removal(&minted, now_ms));
                    }
                }
                let mut fields = json!({"provider": m.name, "attempt": self.attempt,
                    "status": resp.status, "ms": ms, "ok": parsed.is_ok(),
                    "error_description": parsed.as_ref().err().map(|e| &e.description)});
                self.tag_op(m, &mut fields);
                effects.push(Effect::Log("token_exchange", fields));
                return self.exchanged(m, now_ms, parsed, effects);
            }
            Ok(resp) => {
                let e = error_from_response(&resp, now_ms, &scrub);
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
                        m.settings.timeout_ms
                    ),
                ),
                Outcome::Timeout,
            ),
            Err(TransportError::Network(msg)) => (
                TokenError::new(
                    ErrorCode::Network,
                    format!("token endpoint unreachable: {}", scrub.scrub(&msg)),
                ),
                Outcome::Network,
            ),
        };
        // A token API's creation or rotation that ended without a readable answer may have
        // taken effect (a 5xx may come from a proxy in front): the account is swept later.
        if manages
            && matches!(
                outcome,
                Outcome::Timeout
                    | Outcome::Network
                    | Outcome::Status {
                        status: 500..=599,
                        ..
                    }
            )
        {
            m.sweep_due = m.marker.is_some();
        }
        let mut fields = json!({"provider": m.name, "attempt": self.attempt,
            "status": err.status, "ms": ms, "ok": false, "error": err.code.as_str(),
            "provider_error": err.provider_error, "error_description": err.description});
        self.tag_op(m, &mut fields);
        effects.push(Effect::Log("token_exchange", fields));
        // A token API's creation or rotation may have taken effect without an answer: it is
        // not sent again.
        if manages && matches!(outcome, Outcome::Timeout | Outcome::Network) {
            return self.exchanged(m, now_ms, Err(err), effects);
        }
        match m
            .settings
            .retry
            .token_decision(self.attempt, outcome, || jitter)
        {
            Decision::Retry { delay_ms } => {
                m.spend(now_ms);
                self.phase = Phase::Backoff;
                next(effects, Need::Sleep(delay_ms))
            }
            Decision::Stop => self.exchanged(m, now_ms, Err(err), effects),
        }
    }

    /// The backoff of [`Need::Sleep`] is over: the same request goes again.
    pub fn slept(&mut self, _m: &mut TokenMachine) -> Next {
        if self.phase != Phase::Backoff {
            return self.out_of_order("the end of a backoff");
        }
        self.send(Vec::new())
    }

    fn token_read(
        &mut self,
        m: &mut TokenMachine,
        now_ms: u64,
        read: Result<Option<String>, String>,
    ) -> Next {
        let mut effects = Vec::new();
        match read {
            Ok(Some(v)) => match Token::from_stored(&v) {
                Some(t)
                    if m.rejected
                        .as_ref()
                        .is_some_and(|r| r.ct_eq(t.access_token.expose())) => {}
                Some(t) if m.fresh(&t, now_ms) && self.before_ahead_point(&t, now_ms) => {
                    m.memory = Some(std::rc::Rc::new(t.clone()));
                    // Another instance replaced the token this one held.
                    if let Some(old) = self.in_memory.take().filter(|o| !o.same_token(&t)) {
                        effects.extend(m.removal(&old, now_ms));
                    }
                    return self.done(effects, Ok((t, TokenOrigin::Store)));
                }
                Some(t) => {
                    if self.stale.is_none() && now_ms < t.expires_at_ms {
                        self.stale = Some((t.clone(), TokenOrigin::Store));
                    }
                    self.in_store = Some(t);
                }
                None => effects.push(m.store_error("decode", "stored token is unreadable")),
            },
            Ok(None) => {}
            Err(e) => effects.push(m.store_error("get", &e)),
        }
        if let Some((until, err)) = &m.cooldown {
            if now_ms < *until {
                let err = err.clone();
                return self.fail(m, now_ms, effects, err);
            }
        }
        self.phase = Phase::ReadHold;
        next(effects, Need::Read(Slot::Hold))
    }

    fn hold_read(
        &mut self,
        m: &mut TokenMachine,
        now_ms: u64,
        read: Result<Option<String>, String>,
    ) -> Next {
        // A pause another instance learnt counts here too.
        if let Ok(Some(v)) = read {
            if let Ok(until) = v.trim().parse::<u64>() {
                m.pressure.hold(until);
            }
        }
        if let Err(e) = m
            .within_budget(now_ms)
            .and_then(|()| m.pressure.admit(now_ms))
        {
            let held = Effect::Log(
                "token_exchange_held",
                json!({"provider": m.name, "reason": e.description,
                       "retry_after_ms": e.retry_after_ms}),
            );
            return self.fail(m, now_ms, vec![held], e);
        }
        // The shared store's view first: the token every instance reads.
        let (previous, orphan) = match (self.in_store.take(), self.in_memory.take()) {
            (Some(s), Some(mem)) if !mem.same_token(&s) => (Some(s), Some(mem)),
            (Some(s), _) => (Some(s), None),
            (None, mem) => (mem, None),
        };
        self.previous = previous;
        self.orphan = orphan;
        self.started_ms = now_ms;
        // An expired token is never sent, not even to be rotated.
        let rotation = self
            .previous
            .as_ref()
            .filter(|p| now_ms < p.expires_at_ms)
            .and_then(|p| rotate_request(&m.settings, p));
        m.spend(now_ms);
        match rotation {
            Some(req) => self.begin_exchange(Op::Rotate, req, Vec::new()),
            None => {
                let req = build_token_request(&m.create_settings, &m.secret);
                self.begin_exchange(Op::Create, req, Vec::new())
            }
        }
    }

    /// An exchange (all its attempts) ended with `result` at `now_ms`.
    fn exchanged(
        &mut self,
        m: &mut TokenMachine,
        now_ms: u64,
        result: Result<Token, TokenError>,
        mut effects: Vec<Effect>,
    ) -> Next {
        let token = match result {
            Ok(t) => t,
            // The service no longer knows the token or will not rotate it: create one.
            Err(e)
                if self.op == Op::Rotate
                    && matches!(e.status, Some(400..=499))
                    && e.status != Some(429) =>
            {
                let req = build_token_request(&m.create_settings, &m.secret);
                m.spend(now_ms);
                return self.begin_exchange(Op::Create, req, effects);
            }
            Err(e) => {
                // A token API that answers what cannot be read has minted a token all the
                // same (removed above): it is left alone for a while too.
                let unreadable =
                    e.code == ErrorCode::InvalidResponse && m.settings.auth_style.manages_tokens();
                if e.code == ErrorCode::InvalidClient || unreadable {
                    m.cooldown = Some((now_ms + INVALID_CLIENT_COOLDOWN_MS, e.clone()));
                }
                let max_delay = m.settings.retry.max_delay_ms;
                if let Some(until) = m.pressure.failed(&e, now_ms, max_delay) {
                    // Shared with the other instances; KV keeps nothing under 60 s.
                    let ttl_s = until
                        .saturating_sub(now_ms)
                        .div_ceil(1000)
                        .max(KV_MIN_TTL_S);
                    effects.push(Effect::Write {
                        slot: Slot::Hold,
                        value: until.to_string(),
                        ttl_s,
                    });
                }
                return self.fail(m, now_ms, effects, e);
            }
        };
        m.pressure.succeeded();
        // The provider gave the token being replaced again: it is used until it expires (its
        // real expiry, the one just stated), counted from when it was first issued, and not
        // asked for again before — asking would only loop.
        let mut token = token;
        let again = self
            .previous
            .as_ref()
            .or(self.stale.as_ref().map(|(t, _)| t));
        if let Some(prev) = again.filter(|p| p.same_token(&token)) {
            token.issued_at_ms = prev.issued_at_ms.min(token.issued_at_ms);
            m.pinned = Some(token.access_token.clone());
            self.previous = None;
        }
        let rotated = self.op == Op::Rotate;
        // Rotation removed the previous token at the service; creation did not.
        // (Never the token just obtained, whatever the service answered.)
        if let Some(prev) = self
            .previous
            .take()
            .filter(|p| !rotated && !p.same_token(&token))
        {
            effects.extend(m.removal(&prev, now_ms));
        }
        if let Some(orphan) = self.orphan.take().filter(|o| !o.same_token(&token)) {
            effects.extend(m.removal(&orphan, now_ms));
        }
        if !rotated && m.settings.auth_style.manages_tokens() {
            self.created = Some(token);
            self.phase = Phase::Recheck;
            return next(effects, Need::Read(Slot::Token));
        }
        self.install(m, now_ms, token, effects)
    }

    /// The store's token after a token API's creation: a fresh one another instance stored
    /// meanwhile wins, and the one created here is removed.
    fn rechecked(
        &mut self,
        m: &mut TokenMachine,
        now_ms: u64,
        read: Result<Option<String>, String>,
    ) -> Next {
        let Some(created) = self.created.take() else {
            return self.out_of_order("a second store read");
        };
        let stored = match read {
            Ok(Some(v)) => {
                Token::from_stored(&v).filter(|t| !t.same_token(&created) && m.fresh(t, now_ms))
            }
            _ => None,
        };
        // (Time passed while the store answered: a token that expired meanwhile is not served.)
        if now_ms >= created.expires_at_ms {
            return self.done(
                Vec::new(),
                Err(TokenError::new(
                    ErrorCode::InvalidResponse,
                    "the token created expired before it could be served",
                )),
            );
        }
        match stored {
            Some(stored) => {
                let mut effects: Vec<Effect> = m.removal(&created, now_ms).into_iter().collect();
                m.install(&stored);
                effects.extend(m.sweep(&stored));
                self.done(effects, Ok((stored, TokenOrigin::Store)))
            }
            None => self.install(m, now_ms, created, Vec::new()),
        }
    }

    /// Installs `token` obtained by an exchange, stores it for as long as the expiry policy
    /// allows (a token API's until it expires, so that the next reader rotates it), and ends.
    fn install(
        &mut self,
        m: &mut TokenMachine,
        now_ms: u64,
        token: Token,
        mut effects: Vec<Effect>,
    ) -> Next {
        m.install(&token);
        effects.extend(m.sweep(&token));
        let ttl = if m.settings.auth_style.manages_tokens() {
            kv_ttl_until_expiry_s(token.expires_at_ms, now_ms)
        } else {
            kv_ttl_s(
                &m.settings.expiry,
                token.issued_at_ms,
                token.expires_at_ms,
                now_ms,
            )
        };
        if let Some(ttl_s) = ttl {
            effects.push(Effect::Write {
                slot: Slot::Token,
                value: token.to_stored(),
                ttl_s,
            });
        }
        let ms = now_ms.saturating_sub(self.started_ms);
        self.done(effects, Ok((token, TokenOrigin::Exchange { ms })))
    }

    /// Whether `t` is before the refresh-ahead point of this acquisition (always, when it is
    /// not a refresh-ahead).
    fn before_ahead_point(&self, t: &Token, now_ms: u64) -> bool {
        self.ahead.is_none_or(|percent| {
            now_ms < crate::expiry::ahead_at_ms(t.issued_at_ms, t.expires_at_ms, percent)
        })
    }

    /// Ends with `err` — unless the provider is in trouble (it failed, asked for a pause, or
    /// is held) and a token that has not expired is at hand: that token is served instead, for
    /// [`super::STALE_GRACE_MS`] before the next try. A refresh-ahead just ends: the token in
    /// use is fresh.
    fn fail(
        &mut self,
        m: &mut TokenMachine,
        now_ms: u64,
        mut effects: Vec<Effect>,
        err: TokenError,
    ) -> Next {
        let trouble = matches!(
            err.code,
            ErrorCode::ServerError
                | ErrorCode::RateLimited
                | ErrorCode::Timeout
                | ErrorCode::Network
                | ErrorCode::TemporarilyUnavailable
        );
        let stale = self
            .stale
            .take()
            .filter(|(t, _)| trouble && self.ahead.is_none() && now_ms < t.expires_at_ms);
        let Some((token, origin)) = stale else {
            return self.done(effects, Err(err));
        };
        effects.push(Effect::Log(
            "token_served_stale",
            json!({"provider": m.name, "error": err.code.as_str(),
                   "expires_in_ms": token.expires_at_ms - now_ms}),
        ));
        if !m.memory.as_ref().is_some_and(|t| t.same_token(&token)) {
            m.memory = Some(std::rc::Rc::new(token.clone()));
        }
        m.stale_until = Some(now_ms + super::STALE_GRACE_MS);
        self.done(effects, Ok((token, origin)))
    }

    fn begin_exchange(&mut self, op: Op, req: HttpRequest, effects: Vec<Effect>) -> Next {
        self.op = op;
        self.request = Some(req);
        self.attempt = 0;
        self.send(effects)
    }

    fn send(&mut self, effects: Vec<Effect>) -> Next {
        let Some(req) = self.request.clone() else {
            return self.out_of_order("an exchange without a request");
        };
        self.attempt += 1;
        self.phase = Phase::Exchange;
        next(effects, Need::Send(req))
    }

    /// Names the operation in a token API's exchange lines (`create` or `rotate`); the OAuth
    /// dialects have only one.
    fn tag_op(&self, m: &TokenMachine, fields: &mut serde_json::Value) {
        if let (true, Some(obj)) = (
            m.settings.auth_style.manages_tokens(),
            fields.as_object_mut(),
        ) {
            obj.insert("op".into(), self.op.as_str().into());
        }
    }

    fn done(
        &mut self,
        effects: Vec<Effect>,
        outcome: Result<(Token, TokenOrigin), TokenError>,
    ) -> Next {
        self.phase = Phase::Done;
        next(effects, Need::Done(outcome))
    }

    fn out_of_order(&mut self, what: &str) -> Next {
        self.phase = Phase::Done;
        next(
            Vec::new(),
            Need::Done(Err(TokenError::new(
                ErrorCode::Network,
                format!("token acquisition was given {what} it did not ask for"),
            ))),
        )
    }
}

fn next(effects: Vec<Effect>, need: Need) -> Next {
    Next { effects, need }
}
