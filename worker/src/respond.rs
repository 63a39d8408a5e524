//! Responses the gateway writes itself: JSON bodies, never cached, and every
//! [`GatewayError`] in one place.

use crate::js;
use serde_json::Value;
use tokengate::gateway_error::GatewayError;
use wasm_bindgen::JsValue;

/// What the handlers return: a response, or what the platform threw while one was built (the
/// fetch handler turns that into a 500).
pub type Result<T> = std::result::Result<T, JsValue>;

/// A JSON response with `Cache-Control: no-store` (RFC 6749 §5.1 for token responses; no
/// gateway answer should be cached) and the extra headers `extra`.
pub fn json_response(
    status: u16,
    body: &Value,
    extra: &[(&str, String)],
) -> Result<web_sys::Response> {
    let mut pairs: Vec<(&str, String)> = vec![
        ("Content-Type", "application/json".into()),
        ("Cache-Control", "no-store".into()),
        ("Pragma", "no-cache".into()),
    ];
    pairs.extend(extra.iter().cloned());
    js::text_response(status, &js::headers(&pairs)?, &body.to_string())
}

/// The response for a gateway error.
pub fn error(e: &GatewayError) -> Result<web_sys::Response> {
    json_response(e.status(), &e.body(), &e.headers())
}
