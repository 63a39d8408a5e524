//! The JS host behind the flow traits: [`JsTransport`] over `fetch` (the global one, looked up
//! on `globalThis` — no `window` — or `options.fetch`), [`JsStore`] over a user's `TokenCache`,
//! and [`JsRuntime`] over `Date.now` (or `options.now`), `Math.random`, `setTimeout` and
//! `options.log`. Only APIs that exist in Node ≥ 20, browsers, Deno and Workers are used.

use crate::core::http::{HttpRequest, HttpResponse};
use crate::flow::{Runtime, TokenStore, Transport, TransportError};
use crate::npm::error::set;
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, Headers, Response};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: f64) -> JsValue;
    /// `setTimeout(handler, ms, arg)`: `handler(arg)` after `ms`.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout_with(handler: &Function, ms: f64, arg: &JsValue) -> JsValue;
    /// `globalThis`, for its `fetch`.
    type Global;
    #[wasm_bindgen(method, getter, structural)]
    fn fetch(this: &Global) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
    /// `AbortSignal.any` (Node ≥ 20.3, every current browser); throws where missing.
    #[wasm_bindgen(js_namespace = AbortSignal, js_name = any, catch)]
    fn abort_signal_any(signals: &Array) -> Result<AbortSignal, JsValue>;
}

/// Property `key` of `obj` (`undefined` when absent or when `obj` is not an object).
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    if !obj.is_object() && !obj.is_function() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// The `message` of a thrown value, for diagnostics that must not carry anything else.
pub(crate) fn message_of(e: &JsValue) -> String {
    let m = get(e, "message")
        .as_string()
        .unwrap_or_else(|| "unknown error".into());
    m.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Awaits a value that may be a promise (or a plain value, as a sync cache adapter returns).
pub(crate) async fn settle(v: JsValue) -> Result<JsValue, JsValue> {
    if v.has_type::<Promise>() || get(&v, "then").is_function() {
        JsFuture::from(Promise::resolve(&v)).await
    } else {
        Ok(v)
    }
}

/// Waits `ms` milliseconds on the host's `setTimeout`.
pub(crate) async fn sleep(ms: u64) {
    let p = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms as f64);
    });
    let _ = JsFuture::from(p).await;
}

/// Which `fetch` to call.
#[derive(Clone)]
pub(crate) enum Fetcher {
    /// `globalThis.fetch`, looked up on every call (so a test may patch it later).
    Global,
    /// `options.fetch`.
    Injected(Function),
}

impl Fetcher {
    /// The injected function, or `undefined` for the global `fetch`.
    pub(crate) fn function(&self) -> JsValue {
        match self {
            Fetcher::Global => JsValue::UNDEFINED,
            Fetcher::Injected(f) => f.clone().into(),
        }
    }

    /// Calls fetch with `input` and optional `init`, returning its promise.
    pub(crate) fn call(&self, input: &JsValue, init: Option<&JsValue>) -> Result<Promise, JsValue> {
        let global: JsValue = js_sys::global().into();
        let (f, this) = match self {
            Fetcher::Injected(f) => (f.clone(), JsValue::UNDEFINED),
            Fetcher::Global => match global
                .unchecked_ref::<Global>()
                .fetch()
                .dyn_into::<Function>()
            {
                Ok(f) => (f, global),
                Err(_) => {
                    return Err(
                        js_sys::TypeError::new("no global fetch; pass options.fetch").into(),
                    )
                }
            },
        };
        let ret = match init {
            Some(i) => f.call2(&this, input, i)?,
            None => f.call1(&this, input)?,
        };
        Ok(Promise::resolve(&ret))
    }
}

thread_local! {
    /// The one timer callback of every [`Deadline`]: `setTimeout` hands it the controller to
    /// abort, so arming a deadline allocates no closure.
    static ABORT: Closure<dyn Fn(AbortController)> = Closure::new(|c: AbortController| c.abort());
}

/// A timeout that aborts an `AbortController` from `setTimeout`. Dropping it disarms the timer,
/// so a response body read after the drop is not cut short.
pub(crate) struct Deadline {
    controller: AbortController,
    handle: Option<JsValue>,
}

impl Deadline {
    /// A deadline not armed yet: its signal can be handed to `fetch` before [`Deadline::arm`].
    pub(crate) fn new() -> Result<Self, JsValue> {
        Ok(Deadline {
            controller: AbortController::new()?,
            handle: None,
        })
    }

    /// Arms a deadline `ms` from now.
    pub(crate) fn start(ms: u64) -> Result<Self, JsValue> {
        let mut d = Deadline::new()?;
        d.arm(ms);
        Ok(d)
    }

    /// Starts the timer: the controller aborts `ms` from now.
    pub(crate) fn arm(&mut self, ms: u64) {
        let handle = ABORT
            .with(|f| set_timeout_with(f.as_ref().unchecked_ref(), ms as f64, &self.controller));
        self.handle = Some(handle);
    }

    /// The signal to pass to `fetch`; combined with the caller's own when there is one.
    pub(crate) fn signal(&self, caller: Option<&AbortSignal>) -> AbortSignal {
        let ours = self.controller.signal();
        match caller {
            None => ours,
            Some(theirs) => abort_signal_any(&Array::of2(theirs, &ours))
                // Without AbortSignal.any the caller's signal wins and the timeout is not applied.
                .unwrap_or_else(|_| theirs.clone()),
        }
    }

    /// Whether the timeout has fired (nothing else aborts the deadline's own controller).
    pub(crate) fn fired(&self) -> bool {
        self.controller.signal().aborted()
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            clear_timeout(handle);
        }
    }
}

/// Sends token requests with `fetch`, never following redirects.
#[derive(Clone)]
pub(crate) struct JsTransport {
    pub(crate) fetcher: Fetcher,
}

impl Transport for JsTransport {
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, TransportError> {
        let deadline =
            Deadline::start(timeout_ms).map_err(|e| TransportError::Network(message_of(&e)))?;
        let fail = |e: JsValue, d: &Deadline| {
            if d.fired() {
                TransportError::Timeout
            } else {
                TransportError::Network(network_message(&e))
            }
        };
        let headers = Headers::new().map_err(|e| fail(e, &deadline))?;
        for (name, value) in &req.headers {
            headers
                .append(name, value)
                .map_err(|e| fail(e, &deadline))?;
        }
        let init = Object::new();
        set(&init, "method", &JsValue::from_str(&req.method));
        set(&init, "headers", &headers);
        let body = match String::from_utf8(req.body) {
            Ok(s) => JsValue::from(s),
            Err(e) => Uint8Array::from(e.as_bytes()).into(),
        };
        set(&init, "body", &body);
        // RFC 6749 §3.2 says nothing about redirects; following one would send the client
        // credentials to wherever it points. `manual` hands the 3xx back instead.
        set(&init, "redirect", &JsValue::from_str("manual"));
        set(&init, "signal", &deadline.signal(None));
        let promise = self
            .fetcher
            .call(&JsValue::from_str(&req.url), Some(&init))
            .map_err(|e| fail(e, &deadline))?;
        let resp: Response = JsFuture::from(promise)
            .await
            .map_err(|e| fail(e, &deadline))?
            .unchecked_into();
        // Browsers answer `redirect: 'manual'` with an opaque response of status 0.
        let status = match resp.status() {
            0 if get(&resp, "type").as_string().as_deref() == Some("opaqueredirect") => 302,
            s => s,
        };
        let headers = header_pairs(&resp.headers());
        let buf = match resp.array_buffer() {
            Ok(p) => JsFuture::from(p).await.map_err(|e| fail(e, &deadline))?,
            Err(e) => return Err(fail(e, &deadline)),
        };
        drop(deadline);
        Ok(HttpResponse {
            status,
            headers,
            body: Uint8Array::new(&buf).to_vec(),
        })
    }
}

/// A network failure's message plus its `cause.code` (Node: `fetch failed (ECONNREFUSED)`).
pub(crate) fn network_message(e: &JsValue) -> String {
    let base = message_of(e);
    match get(&get(e, "cause"), "code").as_string() {
        Some(code) => format!("{base} ({})", code.chars().take(40).collect::<String>()),
        None => base,
    }
}

/// `[name, value]` pairs of a `Headers` (or any iterable of pairs); names lower-cased.
pub(crate) fn header_pairs(headers: &JsValue) -> Vec<(String, String)> {
    let Ok(Some(iter)) = js_sys::try_iter(headers) else {
        return Vec::new();
    };
    iter.filter_map(Result::ok)
        .filter_map(|pair| {
            let pair: Array = pair.dyn_into().ok()?;
            Some((
                pair.get(0).as_string()?.to_ascii_lowercase(),
                pair.get(1).as_string()?,
            ))
        })
        .collect()
}

/// The user's `TokenCache` (`get`, `set`, `delete`, sync or async), or none. Each call is
/// bounded by `timeout_ms` (a cache that never settles — a Redis client queueing commands while
/// disconnected — is a `store_error` and a miss, not a hang).
pub(crate) struct JsStore {
    pub(crate) cache: Option<Object>,
    pub(crate) timeout_ms: u64,
}

/// A promise resolved after `ms`; its timer is cleared on drop, so a settled race leaves no
/// timer keeping a Node process alive.
struct TimerPromise {
    handle: JsValue,
    promise: Promise,
}

impl TimerPromise {
    fn new(ms: u64) -> Self {
        let mut handle = JsValue::UNDEFINED;
        let promise = Promise::new(&mut |resolve, _| {
            handle = set_timeout(&resolve, ms as f64);
        });
        TimerPromise { handle, promise }
    }
}

impl Drop for TimerPromise {
    fn drop(&mut self) {
        clear_timeout(&self.handle);
    }
}

impl JsStore {
    async fn call(&self, op: &str, args: &[JsValue]) -> Result<JsValue, String> {
        let Some(cache) = &self.cache else {
            return Ok(JsValue::UNDEFINED);
        };
        let method: Function = get(cache, op).unchecked_into();
        let ret = match args {
            [a] => method.call1(cache, a),
            [a, b, c] => method.call3(cache, a, b, c),
            _ => unreachable!("TokenCache methods take one or three arguments"),
        };
        // An adapter's error text can quote its arguments; `set`'s carry the token, so only the
        // error's name is reported for it (the text ends up in a `store_error` log event).
        let describe = |e: &JsValue| {
            if args.len() == 3 {
                get(e, "name").as_string().unwrap_or_else(|| "error".into())
            } else {
                message_of(e)
            }
        };
        let ret = ret.map_err(|e| format!("cache.{op} threw: {}", describe(&e)))?;
        let timer = TimerPromise::new(self.timeout_ms);
        let raced =
            futures::future::select(Box::pin(settle(ret)), JsFuture::from(timer.promise.clone()))
                .await;
        match raced {
            futures::future::Either::Left((r, _)) => {
                r.map_err(|e| format!("cache.{op} rejected: {}", describe(&e)))
            }
            futures::future::Either::Right(_) => Err(format!(
                "cache.{op} did not settle within {} ms",
                self.timeout_ms
            )),
        }
    }
}

impl TokenStore for JsStore {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        let v = self.call("get", &[JsValue::from_str(key)]).await?;
        if v.is_null() || v.is_undefined() {
            return Ok(None);
        }
        v.as_string()
            .map(Some)
            .ok_or_else(|| "cache.get returned neither a string nor null".into())
    }

    async fn put(&self, key: &str, value: String, ttl_s: u64) -> Result<(), String> {
        let args = [
            JsValue::from_str(key),
            JsValue::from(value),
            JsValue::from_f64(ttl_s as f64),
        ];
        self.call("set", &args).await.map(drop)
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.call("delete", &[JsValue::from_str(key)])
            .await
            .map(drop)
    }
}

/// Clock, jitter, sleep and log of the JS host.
pub(crate) struct JsRuntime {
    /// `options.now`: a function returning epoch milliseconds, or an object with `now()`.
    pub(crate) now: Option<(Function, JsValue)>,
    /// `options.log(event, fields)`.
    pub(crate) log: Option<Function>,
}

impl Runtime for JsRuntime {
    fn now_ms(&self) -> u64 {
        let ms = self
            .now
            .as_ref()
            .and_then(|(f, this)| f.call0(this).ok())
            .and_then(|v| v.as_f64())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or_else(js_sys::Date::now);
        ms as u64
    }

    fn jitter(&self) -> f64 {
        js_sys::Math::random()
    }

    async fn sleep(&self, ms: u64) {
        sleep(ms).await
    }

    fn log(&self, event: &str, fields: Value) {
        if let Some(f) = &self.log {
            let fields = js_sys::JSON::parse(&fields.to_string()).unwrap_or(JsValue::NULL);
            // A throwing logger must not break token acquisition.
            let _ = f.call2(&JsValue::UNDEFINED, &JsValue::from_str(event), &fields);
        }
    }
}
