//! Statistics and the error log, counted in the isolate ([`tokengate::authority::stats::Tally`])
//! and sent to the caller authority's objects after the responses: each request that counted
//! something keeps the next flush alive with `ctx.waitUntil`, and one flush — at most
//! [`FLUSH_DELAY_MS`] later — carries everything the isolate counted meanwhile, one op per
//! object. A provider object's answer names the provider tokens an operator dropped; an
//! isolate holding one of them forgets it there.

use crate::config::{Gateway, ProviderTokens};
use crate::runtime::{log_event, now_ms};
use futures::future::{FutureExt, LocalBoxFuture};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use tokengate::authority::stats::{Proxied, Tally};
use tokengate::authority::{parse_sha256, Op};
use tokengate::config::ConfigError;
use tokengate::mint::token_sha256;
use worker::Delay;

/// How long counts wait in the isolate before they are sent, ms.
pub const FLUSH_DELAY_MS: u64 = 1_000;

thread_local! {
    static TALLY: RefCell<Tally> = RefCell::new(Tally::default());
    /// Whether a flush is waiting to send (the request that started it keeps it alive).
    static FLUSH_PENDING: Cell<bool> = const { Cell::new(false) };
}

/// Counts what a logged event says (see [`Tally::observe`]); most events count nothing.
pub fn observe(event: &str, fields: &Value) {
    if matches!(event, "token_exchange" | "api_retry" | "caller_rejected") {
        TALLY.with(|t| t.borrow_mut().observe(event, fields, now_ms()));
    }
}

/// Counts a proxied request that ended at `now_ms`.
pub fn proxied(request: &Proxied<'_>, now_ms: u64) {
    TALLY.with(|t| t.borrow_mut().proxied(request, now_ms));
}

/// A flush that will send what was counted so far, if none is waiting yet: for the ending
/// request to keep alive (`ctx.waitUntil`). `None` when nothing was counted, or when an earlier
/// request's flush will send this one's counts too — a request never waits on a future another
/// request drives (the runtime would cancel it as hung).
pub fn flush(gw: &Rc<Result<Gateway, ConfigError>>) -> Option<LocalBoxFuture<'static, ()>> {
    if TALLY.with(|t| t.borrow().is_empty()) || FLUSH_PENDING.with(|p| p.replace(true)) {
        return None;
    }
    Some(send_later(gw.clone()).boxed_local())
}

/// Clears [`FLUSH_PENDING`] when dropped: after the wait, or if the flush is cancelled during it
/// (the counts then go with the next one).
struct Pending;

impl Drop for Pending {
    fn drop(&mut self) {
        FLUSH_PENDING.with(|p| p.set(false));
    }
}

async fn send_later(gw: Rc<Result<Gateway, ConfigError>>) {
    let pending = Pending;
    Delay::from(Duration::from_millis(FLUSH_DELAY_MS)).await;
    // Counted from now on goes with the next flush.
    drop(pending);
    let deltas = TALLY.with(|t| t.borrow_mut().take());
    let Ok(gw) = &*gw else { return };
    let sends = deltas.into_iter().map(|(object, delta)| {
        let op = match delta.client {
            Some(stats) if delta.provider.is_none() => Op::Count { stats },
            _ => Op::Flush { delta },
        };
        async move {
            let answer = gw.authority.call(&object, &op).await;
            match answer {
                Ok((200, v)) => {
                    if let Some(provider) = object.strip_prefix("provider:") {
                        forget_dropped(gw, provider, &v).await;
                    }
                }
                Ok((status, _)) => log_event(
                    "stats_flush_failed",
                    json!({"object_kind": object.split(':').next(), "status": status}),
                ),
                Err(e) => log_event(
                    "stats_flush_failed",
                    json!({"object_kind": object.split(':').next(), "error": e}),
                ),
            }
        }
    });
    futures::future::join_all(sends).await;
}

/// Forgets `provider`'s token in this isolate's memory if the answer lists it as dropped.
async fn forget_dropped(gw: &Gateway, provider: &str, answer: &Value) {
    let Some(p) = gw.providers.get(provider) else {
        return;
    };
    let Some(current) = p.tokens.memory_token() else {
        return;
    };
    let hash = token_sha256(&current.access_token);
    let dropped = answer
        .get("dropped")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str().and_then(parse_sha256))
        .any(|h| h == hash);
    if dropped {
        p.tokens.forget_memory(&current.access_token);
        log_event(
            "provider_token_dropped",
            json!({"provider": provider, "where": "memory"}),
        );
    }
}

impl ProviderTokens {
    /// The token memory serves right now, if any.
    pub fn memory_token(&self) -> Option<Rc<tokengate::response::Token>> {
        match self {
            ProviderTokens::Isolate(s) => s.memory_token(),
            ProviderTokens::Minted(s) => s.memory_token(),
        }
    }

    /// Drops the token everywhere (memory, KV, the minter's storage): the SHA-256 of each
    /// token dropped.
    pub async fn drop_token(&self) -> Result<Vec<[u8; 32]>, String> {
        match self {
            ProviderTokens::Isolate(s) => Ok(s.drop_token().await),
            ProviderTokens::Minted(s) => s.drop_token().await,
        }
    }

    /// Forgets `token` from memory (the store is the dropping isolate's business).
    pub fn forget_memory(&self, token: &tokengate::Secret) {
        let _ = match self {
            ProviderTokens::Isolate(s) => s.forget_memory(token),
            ProviderTokens::Minted(s) => s.forget_memory(token),
        };
    }
}
