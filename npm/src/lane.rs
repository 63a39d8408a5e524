//! The fast lane of `client.fetch`: the JavaScript side (`Attempt.install` in `glue.js`) sends a
//! warm call's first attempt without entering wasm, from a view of this client that Rust keeps
//! up to date here. The lane only acts on what Rust put in the view:
//!
//! - `bearer` (`"Bearer …"` or `null`) and `refreshAt`: the token in memory and the time
//!   (epoch ms, the client's clock) from which [`crate::flow::TokenSource::token`] no longer
//!   serves it. Updated after every call that can change memory (`token()`,
//!   `authorizationHeader()`, `fetch()`, `invalidate()`), and cleared as soon as the API
//!   answers 401 to that token.
//! - `abortUntil`: while a timeout is recent, attempts carry an abort signal (see `fetch.rs`):
//!   the lane steps aside.
//! - `final`: per method, which statuses of a first attempt end the call as they are
//!   ([`first_reply_is_final`]). Any other outcome (a 401, a retryable status, an error, the
//!   timeout) is handed to Rust (`TokenClient._resume`), which continues the call through
//!   [`crate::flow::call_api`] exactly as if Rust had made the first attempt.
//! - `timeoutMs`, `now` (the injected clock, if any), `fetch` (the injected `fetch`, if any).
//! - `hits`: how many calls the lane sent (the lane counts them).
//!
//! Why: every entry into wasm after waiting on the network costs microseconds of cold code and
//! memory, and a warm `fetch` made two of them (one to send, one for the response); plain
//! `fetch` to a local server takes ~300 µs, and the budget for tokengate's overhead is 3 % of
//! that.

use crate::core::retry::RetryPolicy;
use crate::core::secret::Secret;
use crate::core::TokenSettings;
use crate::flow::first_reply_is_final;
use crate::npm::host::{Fetcher, JsRuntime};
use crate::npm::Source;
use js_sys::{Map, Object, Reflect, Uint8Array};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

/// The methods the lane serves (those `Attempt.direct` can return, upper-cased); any other
/// method takes the Rust path.
const LANE_METHODS: [&str; 7] = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH"];

/// Statuses covered by the `final` tables; a response outside `0..STATUS_LIMIT` takes the Rust
/// path.
const STATUS_LIMIT: u16 = 600;

/// How many retry policies' `final` tables are kept for new clients.
const FINAL_TABLES_KEPT: usize = 8;

thread_local! {
    /// `final` tables by retry policy: computing them is most of a client's construction
    /// time, and clients with the same policy share them (the lane only reads them).
    static FINAL_TABLES: RefCell<Vec<(RetryPolicy, Map)>> = const { RefCell::new(Vec::new()) };
}

/// The `final` tables for `retry`: method → `Uint8Array`, 1 where a first attempt's status
/// ends the call as it is.
fn final_tables(retry: &RetryPolicy) -> Map {
    FINAL_TABLES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, tables)) = cache.iter().find(|(p, _)| p == retry) {
            return tables.clone();
        }
        let tables = Map::new();
        for method in LANE_METHODS {
            let table: Vec<u8> = (0..STATUS_LIMIT)
                .map(|status| u8::from(first_reply_is_final(retry, method, status)))
                .collect();
            tables.set(
                &JsValue::from_str(method),
                &Uint8Array::from(table.as_slice()),
            );
        }
        if cache.len() == FINAL_TABLES_KEPT {
            cache.remove(0);
        }
        cache.push((*retry, tables.clone()));
        tables
    })
}

/// A client's lane view (a plain JS object) and what was last written to it.
pub(crate) struct Lane {
    object: Object,
    /// The token whose bearer the view holds, and its refresh point.
    synced: RefCell<Option<(Secret, u64)>>,
}

fn put(o: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(key), value);
}

impl Lane {
    pub(crate) fn new(settings: &TokenSettings, runtime: &JsRuntime, fetcher: &Fetcher) -> Self {
        let object = Object::new();
        put(&object, "bearer", &JsValue::NULL);
        put(&object, "refreshAt", &JsValue::from_f64(0.0));
        put(&object, "abortUntil", &JsValue::from_f64(0.0));
        put(
            &object,
            "timeoutMs",
            &JsValue::from_f64(settings.timeout_ms as f64),
        );
        put(&object, "final", &final_tables(&settings.retry));
        let now = match &runtime.now {
            Some((f, this)) => f.bind0(this).into(),
            None => JsValue::UNDEFINED,
        };
        put(&object, "now", &now);
        put(&object, "fetch", &fetcher.function());
        put(&object, "hits", &JsValue::from_f64(0.0));
        Lane {
            object,
            synced: RefCell::default(),
        }
    }

    /// The view, for `TokenClient._lane()`.
    pub(crate) fn object(&self) -> &Object {
        &self.object
    }

    /// Writes the token in `source`'s memory (or its absence) to the view, if it changed.
    pub(crate) fn sync(&self, source: &Source, bearer: impl FnOnce(&Secret) -> JsValue) {
        let mut synced = self.synced.borrow_mut();
        source.peek_memory(|current| {
            let same = match (&*synced, current) {
                (Some((a, at_a)), Some((b, at_b))) => *at_a == at_b && a.ct_eq(b.expose()),
                (None, None) => true,
                _ => false,
            };
            if same {
                return;
            }
            let (value, refresh_at) = match current {
                Some((token, refresh_at)) => (bearer(token), refresh_at as f64),
                None => (JsValue::NULL, 0.0),
            };
            put(&self.object, "bearer", &value);
            put(&self.object, "refreshAt", &JsValue::from_f64(refresh_at));
            *synced = current.map(|(t, at)| (t.clone(), at));
        });
    }

    /// Stops the lane using `token` (the API has just refused it) until the next sync, so
    /// concurrent calls wait for the refresh in Rust instead of presenting it again.
    pub(crate) fn forget(&self, token: &Secret) {
        let mut synced = self.synced.borrow_mut();
        if synced
            .as_ref()
            .is_some_and(|(t, _)| t.ct_eq(token.expose()))
        {
            put(&self.object, "bearer", &JsValue::NULL);
            put(&self.object, "refreshAt", &JsValue::from_f64(0.0));
            *synced = None;
        }
    }

    /// Sets `abortUntil` (epoch ms).
    pub(crate) fn set_abort_until(&self, until_ms: u64) {
        put(
            &self.object,
            "abortUntil",
            &JsValue::from_f64(until_ms as f64),
        );
    }
}
