//! The npm package (feature `npm`, built with wasm-pack): a client-credentials token manager for
//! JavaScript, over the same core and flow as the Worker.
//!
//! - [`TokenClient`]: `token()`, `authorizationHeader()`, `fetch()`, `invalidate()`.
//! - Pure helpers for tooling: [`build_token_request_js`], [`parse_token_response_js`],
//!   [`cache_policy_js`], [`decode_jwt_claims_js`].
//! - Every error is a JS `TokenError` (see `glue.js`) with `code`, `status`, `retryable` and
//!   `providerError`.
//!
//! The TypeScript interfaces of the package are in `types.rs`.

mod error;
mod fetch;
mod helpers;
mod host;
mod lane;
mod types;

pub use helpers::{
    build_token_request_js, cache_policy_js, decode_jwt_claims_js, parse_token_response_js,
};

use crate::core::cache_key::token_cache_key;
use crate::core::proxy::TokenOrigin;
use crate::core::response::Token;
use crate::core::secret::Secret;
use crate::core::TokenSettings;
use crate::flow::TokenSource;
use error::{config_error, config_key_error, plain_json, set, token_error, Scrubber};
use host::{get, Fetcher, JsRuntime, JsStore, JsTransport};
use js_sys::{Function, Object, Promise};
use serde_json::Value;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Cache-key namespace of npm clients (the Worker uses its provider ids).
const CACHE_KEY_PROVIDER: &str = "npm";

type Source = TokenSource<JsTransport, JsStore, JsRuntime>;

/// Client-credentials tokens for one provider configuration: cached in memory (and in
/// `options.cache`), refreshed `refreshSkewS` before expiry, one exchange at a time.
#[wasm_bindgen]
pub struct TokenClient {
    source: Source,
    fetcher: Fetcher,
    scrub: Scrubber,
    last: Rc<RefCell<Option<JsToken>>>,
    fetch_state: fetch::FetchState,
}

#[wasm_bindgen]
impl TokenClient {
    /// Validates `config` (the Worker's provider entry, camelCase, plus `clientSecret`) and
    /// `options`; throws a `TokenError` with code `config` naming the offending key.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "TokenClientConfig")] config: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "TokenClientOptions")] options: JsValue,
    ) -> Result<TokenClient, JsValue> {
        let (settings, secret) = parse_config(&config)?;
        let mut opts = Options::parse(&options)?;
        opts.store.timeout_ms = settings.timeout_ms;
        let key = token_cache_key(CACHE_KEY_PROVIDER, &settings, &secret, b"");
        let name = settings
            .token_url
            .host_str()
            .unwrap_or("provider")
            .to_string();
        let scrub = Scrubber::new(&settings.client_id, &secret);
        let fetch_state =
            fetch::FetchState::new(lane::Lane::new(&settings, &opts.runtime, &opts.fetcher));
        let transport = JsTransport {
            fetcher: opts.fetcher.clone(),
        };
        let source = TokenSource::new(
            &name,
            settings,
            secret,
            key,
            transport,
            opts.store,
            opts.runtime,
        );
        Ok(TokenClient {
            source,
            fetcher: opts.fetcher,
            scrub,
            last: Rc::default(),
            fetch_state,
        })
    }

    /// A fresh token `{accessToken, tokenType, expiresAt, scope}` (`expiresAt` in epoch ms).
    /// Concurrent callers share one exchange.
    #[wasm_bindgen(unchecked_return_type = "Promise<Token>")]
    pub fn token(&self) -> Promise {
        self.serve(|c| Object::assign(&Object::new(), &c.object).into())
    }

    /// `"Bearer <access token>"`, for an `Authorization` header.
    #[wasm_bindgen(js_name = authorizationHeader, unchecked_return_type = "Promise<string>")]
    pub fn authorization_header(&self) -> Promise {
        self.serve(|c| c.header.clone())
    }

    /// `fetch(input, init)` with `Authorization: Bearer …`: a 401 drops the token and replays
    /// once with a new one; 429/5xx and timeouts are retried with backoff for idempotent
    /// methods. String, `ArrayBuffer`, typed-array, `Blob`, `FormData` and `URLSearchParams`
    /// bodies are replayed as they are (a `Request`'s body is buffered); a `ReadableStream` body
    /// is sent once. In the package this method sits behind the fast lane (`glue.js`), which
    /// sends a warm call's first attempt itself.
    #[wasm_bindgen(unchecked_return_type = "Promise<Response>")]
    pub fn fetch(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | URL | Request")] input: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "RequestInit")] init: JsValue,
    ) -> Promise {
        self.run_fetch(fetch::Start::Call { input, init })
    }

    /// The fast lane's view of this client (see `lane.rs`); not part of the typed API.
    #[wasm_bindgen(js_name = _lane, skip_typescript)]
    pub fn lane(&self) -> Object {
        self.fetch_state.lane().object().clone()
    }

    /// Continues a call whose first attempt the fast lane made (see `lane.rs`); not part of
    /// the typed API.
    #[wasm_bindgen(js_name = _resume, skip_typescript)]
    pub fn resume(&self, req: JsValue, kind: u32, value: JsValue, bearer: JsValue) -> Promise {
        self.run_fetch(fetch::Start::Resume {
            req,
            bearer,
            kind,
            value,
        })
    }

    /// Forgets the cached token (memory and `options.cache`); the next call exchanges anew.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn invalidate(&self) -> Promise {
        let source = self.source.clone();
        let state = self.fetch_state.clone();
        let out = promise(async move {
            source.invalidate(None).await;
            state.sync_lane(&source);
            Ok(JsValue::UNDEFINED)
        });
        // Memory is cleared before the store is: the lane stops using the token at once.
        self.fetch_state.sync_lane(&self.source);
        out
    }
}

impl TokenClient {
    /// A promise of `source.token()`'s token in the JS form `form` picks. The fast lane is
    /// brought up to date unless the token came from memory (which the lane already holds: a
    /// warm `token()` stays cheap).
    fn serve(&self, form: impl FnOnce(&JsToken) -> JsValue + 'static) -> Promise {
        let (source, scrub, last) = (self.source.clone(), self.scrub.clone(), self.last.clone());
        let state = self.fetch_state.clone();
        promise(async move {
            let out = source.token().await;
            if !matches!(out, Ok((_, TokenOrigin::Memory))) {
                state.sync_lane(&source);
            }
            match out {
                Ok((t, _)) => Ok(JsToken::of(&last, t, form)),
                Err(e) => Err(token_error(&e, &scrub, None)),
            }
        })
    }

    fn run_fetch(&self, start: fetch::Start) -> Promise {
        let (source, fetcher, scrub, state) = (
            self.source.clone(),
            self.fetcher.clone(),
            self.scrub.clone(),
            self.fetch_state.clone(),
        );
        // Polled at once, like token(): the request leaves within this call.
        promise(fetch::api_fetch(source, fetcher, scrub, state, start))
    }
}

/// Parses a camelCase config object into token settings and the client secret.
pub(crate) fn parse_config(config: &JsValue) -> Result<(TokenSettings, Secret), JsValue> {
    let value: Value = plain_json(config, "config")?;
    let settings =
        TokenSettings::parse_camel(&value, &["clientSecret"]).map_err(|e| config_error(&e))?;
    let secret = match value.get("clientSecret") {
        Some(Value::String(s)) if !s.is_empty() => Secret::new(s.clone()),
        None | Some(Value::Null) => return Err(config_key_error("clientSecret", "is required")),
        Some(_) => {
            return Err(config_key_error(
                "clientSecret",
                "must be a non-empty string",
            ))
        }
    };
    Ok((settings, secret))
}

/// The parsed `TokenClientOptions`.
struct Options {
    fetcher: Fetcher,
    store: JsStore,
    runtime: JsRuntime,
}

impl Options {
    fn parse(options: &JsValue) -> Result<Self, JsValue> {
        let mut o = Options {
            fetcher: Fetcher::Global,
            store: JsStore {
                cache: None,
                timeout_ms: crate::core::config::DEFAULT_TIMEOUT_MS,
            },
            runtime: JsRuntime {
                now: None,
                log: None,
            },
        };
        if options.is_undefined() || options.is_null() {
            return Ok(o);
        }
        if !options.is_object() {
            return Err(config_key_error("options", "must be an object"));
        }
        for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
            let key = key.as_string().unwrap_or_default();
            if !["fetch", "cache", "now", "log"].contains(&key.as_str()) {
                return Err(config_key_error(
                    &format!("options.{key}"),
                    "is not a known key",
                ));
            }
        }
        let absent = |v: &JsValue| v.is_undefined() || v.is_null();
        let f = get(options, "fetch");
        if !absent(&f) {
            o.fetcher = Fetcher::Injected(
                f.dyn_into::<Function>()
                    .map_err(|_| config_key_error("options.fetch", "must be a function"))?,
            );
        }
        let cache = get(options, "cache");
        if !absent(&cache) {
            for m in ["get", "set", "delete"] {
                if !get(&cache, m).is_function() {
                    return Err(config_key_error(
                        &format!("options.cache.{m}"),
                        "must be a function",
                    ));
                }
            }
            o.store.cache = Some(cache.unchecked_into());
        }
        let now = get(options, "now");
        if now.is_function() {
            o.runtime.now = Some((now.unchecked_into(), JsValue::UNDEFINED));
        } else if get(&now, "now").is_function() {
            o.runtime.now = Some((get(&now, "now").unchecked_into(), now));
        } else if !absent(&now) {
            return Err(config_key_error(
                "options.now",
                "must be a function returning epoch milliseconds, or an object with now()",
            ));
        }
        let log = get(options, "log");
        if !absent(&log) {
            o.runtime.log = Some(
                log.dyn_into::<Function>()
                    .map_err(|_| config_key_error("options.log", "must be a function"))?,
            );
        }
        Ok(o)
    }
}

/// `{accessToken, tokenType, expiresAt, scope}`.
pub(crate) fn token_to_js(t: &Token) -> Object {
    let o = Object::new();
    set(
        &o,
        "accessToken",
        &JsValue::from_str(t.access_token.expose()),
    );
    set(&o, "tokenType", &JsValue::from_str(&t.token_type));
    set(&o, "expiresAt", &JsValue::from_f64(t.expires_at_ms as f64));
    set(
        &o,
        "scope",
        &t.scope.as_deref().map_or(JsValue::NULL, JsValue::from_str),
    );
    o
}

/// The JS forms of the last token served. While the token stays the same, `token()` copies
/// `object` (`Object.assign`) and `authorizationHeader()` returns `header`: a warm call passes
/// no string between wasm and JS (decoding them dominated its cost).
struct JsToken {
    token: Token,
    object: Object,
    header: JsValue,
}

impl JsToken {
    fn of<R>(last: &RefCell<Option<JsToken>>, t: Token, f: impl FnOnce(&JsToken) -> R) -> R {
        let mut last = last.borrow_mut();
        if last.as_ref().is_none_or(|c| c.token != t) {
            *last = Some(JsToken {
                object: token_to_js(&t),
                header: JsValue::from(format!("Bearer {}", t.access_token.expose())),
                token: t,
            });
        }
        f(last.as_ref().expect("just set"))
    }
}

/// A promise of `fut`. The future is polled once right away: a memory hit settles without a
/// round through the task queue (`token()` on a warm cache must stay in the microsecond range).
fn promise<F>(fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    let mut fut = Box::pin(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(v)) => Promise::resolve(&v),
        Poll::Ready(Err(e)) => Promise::reject(&e),
        Poll::Pending => wasm_bindgen_futures::future_to_promise(fut),
    }
}
