//! Errors at the JS edge: every failure becomes a `TokenError` (defined in `glue.js`) with a
//! stable `code`, the provider's `status` and `providerError`, and `retryable`. A message never
//! holds the client secret (it is scrubbed even from provider-supplied descriptions) and never a
//! token; the raw response body of a failed exchange stays in Rust.

use crate::core::error::{ErrorCode, TokenError};
use crate::core::secret::Secret;
use crate::core::ConfigError;
use js_sys::{Object, Reflect};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/src/npm/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = TokenError)]
    type JsTokenError;

    #[wasm_bindgen(constructor, js_class = "TokenError")]
    fn new(code: &str, message: &str, details: &Object) -> JsTokenError;
}

/// Removes a secret from text that may echo it (a provider's `error_description`). Cheap to
/// clone.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    forms: Rc<Vec<String>>,
}

impl Scrubber {
    /// Scrubs every spelling of `secret` a provider could echo (see
    /// [`crate::core::secret::secret_forms`]).
    pub(crate) fn new(client_id: &str, secret: &Secret) -> Self {
        Scrubber {
            forms: Rc::new(crate::core::secret::secret_forms(client_id, secret)),
        }
    }

    fn apply(&self, text: &str) -> String {
        crate::core::secret::scrub(text, &self.forms)
    }
}

/// Sets `key` on `obj` (plain data objects only: cannot fail).
pub(crate) fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// A JS `TokenError` for a core [`TokenError`].
pub(crate) fn token_error(e: &TokenError, scrub: &Scrubber, cause: Option<&JsValue>) -> JsValue {
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
            .map_or(JsValue::NULL, |p| JsValue::from_str(&scrub.apply(p))),
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
    JsTokenError::new(e.code.as_str(), &scrub.apply(&e.to_string()), &details).into()
}

/// A JS `TokenError` with code `config` for an invalid `TokenClient` configuration; the message
/// names the key (never a value).
pub(crate) fn config_error(e: &ConfigError) -> JsValue {
    let details = Object::new();
    set(&details, "retryable", &JsValue::FALSE);
    let message = format!("invalid TokenClient config: `{}` {}", e.key, e.message);
    JsTokenError::new(ErrorCode::Config.as_str(), &message, &details).into()
}

/// `v` as JSON data (see [`crate::js_json`]); otherwise a `config` error about `key`.
pub(crate) fn plain_json(v: &JsValue, key: &str) -> Result<serde_json::Value, JsValue> {
    crate::js_json::json_of(v).map_err(|e| config_key_error(key, e.message()))
}

/// A `config` error about `key`.
pub(crate) fn config_key_error(key: &str, message: &str) -> JsValue {
    config_error(&ConfigError::global(key, message))
}
