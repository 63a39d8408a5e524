//! The JavaScript host behind the flow's traits, as the façade provides it (`npm/js/client.js`):
//!
//! - [`JsTransport`]: `host.send({url, method, headers, body, timeoutMs, limit})`, the façade's
//!   `fetch` of a token request (redirects not followed, body capped at `limit`), resolving to
//!   `{status, headers, body}`, `{error: "timeout" | "too_large"}` or
//!   `{error: "network", cause}` with what `fetch` threw.
//! - [`JsStore`]: `host.cache`, the user's `TokenCache` already bounded by `timeoutMs` by the
//!   façade; each method returns a promise, and a rejection's message holds no token.
//! - [`JsRuntime`]: `host.now()` (or `Date.now`), `Math.random`, `setTimeout`, `host.log`.

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use serde_json::Value;
use tokengate::flow::{Runtime, TokenStore, Transport, TransportError};
use tokengate::http::{HttpRequest, HttpResponse, MAX_TOKEN_RESPONSE_BYTES};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: f64) -> JsValue;
}

/// Property `key` of `obj` (`undefined` when absent or when `obj` is not an object).
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    if !obj.is_object() && !obj.is_function() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Sets `key` on `obj` (plain data objects only: cannot fail).
pub(crate) fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// The `message` of a thrown value, for diagnostics that must not carry anything else.
pub(crate) fn message_of(e: &JsValue) -> String {
    let m = get(e, "message")
        .as_string()
        .unwrap_or_else(|| "unknown error".into());
    m.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// A network failure's message plus its `cause.code` (Node: `fetch failed (ECONNREFUSED)`).
pub(crate) fn message_with_cause(e: &JsValue) -> String {
    let base = message_of(e);
    match get(&get(e, "cause"), "code").as_string() {
        Some(code) => format!("{base} ({})", code.chars().take(40).collect::<String>()),
        None => base,
    }
}

/// What the façade hands to `new Core(config, host)`.
pub(crate) struct Host {
    pub(crate) transport: JsTransport,
    pub(crate) store: JsStore,
    pub(crate) runtime: JsRuntime,
    /// `host.keys`: signing with WebCrypto (see `pop.rs`).
    pub(crate) keys: JsValue,
}

impl Host {
    pub(crate) fn from_js(host: &JsValue) -> Host {
        let function = |key: &str| get(host, key).dyn_into::<Function>().ok();
        let cache = get(host, "cache");
        Host {
            transport: JsTransport {
                send: function("send"),
            },
            store: JsStore {
                cache: (!cache.is_undefined() && !cache.is_null()).then_some(cache),
            },
            runtime: JsRuntime {
                now: function("now"),
                log: function("log"),
            },
            keys: get(host, "keys"),
        }
    }
}

/// Sends token requests through the façade's `send`.
pub(crate) struct JsTransport {
    send: Option<Function>,
}

impl Transport for JsTransport {
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, TransportError> {
        let send = self
            .send
            .as_ref()
            .ok_or_else(|| TransportError::Network("no transport".into()))?;
        let headers: Array = req
            .headers
            .iter()
            .map(|(k, v)| JsValue::from(Array::of2(&k.into(), &v.into())))
            .collect();
        let o = Object::new();
        set(&o, "url", &JsValue::from_str(&req.url));
        set(&o, "method", &JsValue::from_str(&req.method));
        set(&o, "headers", &headers);
        let body = match String::from_utf8(req.body) {
            Ok(s) => JsValue::from(s),
            Err(e) => Uint8Array::from(e.as_bytes()).into(),
        };
        set(&o, "body", &body);
        set(&o, "timeoutMs", &JsValue::from_f64(timeout_ms as f64));
        set(
            &o,
            "limit",
            &JsValue::from_f64(MAX_TOKEN_RESPONSE_BYTES as f64),
        );
        let sent = send
            .call1(&JsValue::UNDEFINED, &o)
            .map_err(|e| TransportError::Network(message_of(&e)))?;
        let r = JsFuture::from(Promise::resolve(&sent))
            .await
            .map_err(|e| TransportError::Network(message_with_cause(&e)))?;
        match get(&r, "error").as_string().as_deref() {
            Some("timeout") => return Err(TransportError::Timeout),
            Some("too_large") => {
                return Err(TransportError::Network(format!(
                    "the token response exceeds {MAX_TOKEN_RESPONSE_BYTES} bytes"
                )))
            }
            Some(_) => {
                return Err(TransportError::Network(message_with_cause(&get(
                    &r, "cause",
                ))))
            }
            None => {}
        }
        let status = get(&r, "status").as_f64().unwrap_or(0.0);
        let body = get(&r, "body")
            .dyn_into::<Uint8Array>()
            .map(|b| b.to_vec())
            .map_err(|_| TransportError::Network("the response has no body".into()))?;
        Ok(HttpResponse {
            status: status.clamp(0.0, f64::from(u16::MAX)) as u16,
            headers: header_pairs(&get(&r, "headers")),
            body,
        })
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

/// The user's `TokenCache` as the façade bounds it, or none.
pub(crate) struct JsStore {
    cache: Option<JsValue>,
}

impl JsStore {
    async fn call(&self, op: &str, args: &[JsValue]) -> Result<JsValue, String> {
        let Some(cache) = &self.cache else {
            return Ok(JsValue::UNDEFINED);
        };
        let method: Function = get(cache, op)
            .dyn_into()
            .map_err(|_| format!("cache.{op} is not a function"))?;
        let args: Array = args.iter().collect();
        let ret = method.apply(cache, &args).map_err(|e| message_of(&e))?;
        JsFuture::from(Promise::resolve(&ret))
            .await
            .map_err(|e| message_of(&e))
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
#[derive(Clone)]
pub(crate) struct JsRuntime {
    /// A function returning epoch milliseconds (`options.now`).
    now: Option<Function>,
    /// `options.log(event, fields)`.
    log: Option<Function>,
}

impl Runtime for JsRuntime {
    fn now_ms(&self) -> u64 {
        let ms = self
            .now
            .as_ref()
            .and_then(|f| f.call0(&JsValue::UNDEFINED).ok())
            .and_then(|v| v.as_f64())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or_else(js_sys::Date::now);
        ms as u64
    }

    fn jitter(&self) -> f64 {
        js_sys::Math::random()
    }

    async fn sleep(&self, ms: u64) {
        let p = Promise::new(&mut |resolve, _| {
            set_timeout(&resolve, ms as f64);
        });
        let _ = JsFuture::from(p).await;
    }

    fn background(&self, task: futures::future::LocalBoxFuture<'static, ()>) {
        wasm_bindgen_futures::spawn_local(task);
    }

    fn log(&self, event: &str, fields: Value) {
        if let Some(f) = &self.log {
            let fields = js_sys::JSON::parse(&fields.to_string()).unwrap_or(JsValue::NULL);
            // A throwing logger must not break token acquisition.
            let _ = f.call2(&JsValue::UNDEFINED, &JsValue::from_str(event), &fields);
        }
    }
}
