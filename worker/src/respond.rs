//! Responses the gateway writes itself: JSON bodies, never cached, and every
//! [`GatewayError`] in one place.

use serde_json::Value;
use tokengate::gateway_error::GatewayError;
use worker::{Headers, Response, Result};

/// Headers from pairs.
pub fn headers<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<Headers> {
    let h = Headers::new();
    for (k, v) in pairs {
        h.append(k.as_ref(), v.as_ref())?;
    }
    Ok(h)
}

/// A JSON response with `Cache-Control: no-store` (RFC 6749 §5.1 for token responses; no
/// gateway answer should be cached) and the extra headers `extra`.
pub fn json_response(status: u16, body: &Value, extra: &[(&str, String)]) -> Result<Response> {
    let mut pairs: Vec<(&str, String)> = vec![
        ("Content-Type", "application/json".into()),
        ("Cache-Control", "no-store".into()),
        ("Pragma", "no-cache".into()),
    ];
    pairs.extend(extra.iter().cloned());
    Ok(Response::from_json(body)?
        .with_status(status)
        .with_headers(headers(&pairs)?))
}

/// The response for a gateway error.
pub fn error(e: &GatewayError) -> Result<Response> {
    json_response(e.status(), &e.body(), &e.headers())
}
