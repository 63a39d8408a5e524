//! The header names and values a configuration may set (`token_headers`, `api_headers`): valid
//! header names, none the gateway sets itself, no line breaks in values.

use std::collections::BTreeMap;

/// Header names `token_headers` may not set (compared ignoring case).
pub(super) const TOKEN_HEADER_DENY: &[&str] = &[
    "accept",
    "authorization",
    "dpop",
    "content-type",
    "content-length",
    "host",
];
/// Header names `api_headers` may not set (compared ignoring case).
pub(super) const API_HEADER_DENY: &[&str] = &[
    "authorization",
    "dpop",
    "host",
    "cookie",
    "content-length",
    "connection",
    "transfer-encoding",
];

/// Checks configured `headers`: each name a valid header name (an RFC 9110 §5.6.2 token) and
/// not in `deny`, no CR, LF or NUL in a value.
pub(super) fn check_header_names(
    headers: &BTreeMap<String, String>,
    deny: &[&str],
) -> Result<(), String> {
    for (name, value) in headers {
        let token_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token_ok {
            return Err(format!("`{name}` is not a valid header name"));
        }
        if deny.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            return Err(format!(
                "`{name}` is set by the gateway and cannot be configured"
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("value of `{name}` contains a control character"));
        }
    }
    Ok(())
}
