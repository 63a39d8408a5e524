//! Errors at the JS edge: every failure becomes an instance of the façade's `TokenError` class
//! (registered once with [`set_error_class`]) with a stable `code`, the provider's `status` and
//! `providerError`, and `retryable`. A message never holds the client secret or a token: the
//! core scrubbed every provider answer before it made the error (`tokengate::scrub`), so this
//! file passes its text on as it is; the raw response body of a failed exchange stays in Rust.

use crate::host::set;
use js_sys::{Array, Function, Object, Reflect};
use std::cell::RefCell;
use tokengate::error::{ErrorCode, TokenError};
use tokengate::ConfigError;
use wasm_bindgen::prelude::*;

thread_local! {
    static ERROR_CLASS: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Registers the class every error is constructed with: `new cls(code, message, details)`.
/// The façade calls it once, before anything else.
#[wasm_bindgen(js_name = setErrorClass)]
pub fn set_error_class(cls: Function) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = Some(cls));
}

/// `new TokenError(code, message, details)`, or a plain `Error` with the same properties if no
/// class was registered.
fn construct(code: &str, message: &str, details: &Object) -> JsValue {
    let class = ERROR_CLASS.with(|c| c.borrow().clone());
    let args = Array::of3(&code.into(), &message.into(), details);
    if let Some(Ok(e)) = class.map(|cls| Reflect::construct(&cls, &args)) {
        return e;
    }
    let e = js_sys::Error::new(message);
    set(&e, "code", &code.into());
    Object::assign(&e, details).into()
}

/// A JS `TokenError` for a core [`TokenError`]; `cause`, when given, becomes its `cause`.
pub(crate) fn token_error(e: &TokenError, cause: Option<&JsValue>) -> JsValue {
    let details = Object::new();
    set(
        &details,
        "status",
        &e.status.map_or(JsValue::NULL, JsValue::from),
    );
    set(&details, "retryable", &JsValue::from_bool(e.retryable()));
    set(
        &details,
        "providerError",
        &e.provider_error
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str),
    );
    set(
        &details,
        "retryAfterMs",
        &e.retry_after_ms
            .map_or(JsValue::NULL, |ms| JsValue::from_f64(ms as f64)),
    );
    if let Some(c) = cause {
        set(&details, "cause", c);
    }
    construct(e.code.as_str(), &e.to_string(), &details)
}

/// A `config` `TokenError` for an invalid configuration; the message names the key (never a
/// value).
pub(crate) fn config_error(e: &ConfigError) -> JsValue {
    let details = Object::new();
    set(&details, "retryable", &JsValue::FALSE);
    let message = format!("invalid TokenClient config: `{}` {}", e.key, e.message);
    construct(ErrorCode::Config.as_str(), &message, &details)
}

/// `v` as JSON data (see [`crate::js_json`]); otherwise a `config` error about `key`.
pub(crate) fn plain_json(v: &JsValue, key: &str) -> Result<serde_json::Value, JsValue> {
    crate::js_json::json_of(v).map_err(|e| config_key_error(key, e.message()))
}

/// A `config` error about `key`.
pub(crate) fn config_key_error(key: &str, message: &str) -> JsValue {
    config_error(&ConfigError::global(key, message))
}

/// The `config` `TokenError` about `key` (for the options the façade validates): one wording
/// for every configuration error.
#[wasm_bindgen(js_name = configError)]
pub fn config_error_js(key: &str, message: &str) -> JsValue {
    config_key_error(key, message)
}
