//! JSON responses.

use serde_json::{json, Value};
use worker::{Headers, Response, Result};

/// Headers from pairs.
pub fn headers(pairs: &[(&str, &str)]) -> Headers {
    let h = Headers::new();
    for (k, v) in pairs {
        let _ = h.set(k, v);
    }
    h
}

/// A JSON response with `Cache-Control: no-store` (RFC 6749 §5.1 for token responses; no
/// gateway answer should be cached).
pub fn json_response(status: u16, body: &Value) -> Result<Response> {
    Ok(Response::from_json(body)?
        .with_status(status)
        .with_headers(headers(&[
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
        ])))
}

/// A gateway error `{"error", "error_description"}`.
pub fn error_json(status: u16, error: &str, description: &str) -> Result<Response> {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// Adds a header to a response.
pub fn with_header(resp: Response, name: &str, value: &str) -> Response {
    let h = resp.headers().clone();
    let _ = h.set(name, value);
    resp.with_headers(h)
}
