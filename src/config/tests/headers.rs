//! Configured headers (`api_headers`, `token_headers`): names the gateway sets, invalid names
//! and line breaks in values are refused, each error naming its key.

use super::*;

#[test]
fn api_headers_authorization_refused() {
    let e = parse_err("p", json!({"api_headers": {"Authorization": "Bearer x"}}));
    assert_err(
        &e,
        "p",
        "api_headers",
        "`Authorization` is set by the gateway",
    );
    let e = parse_err("p", json!({"api_headers": {"cookie": "a=b"}}));
    assert_err(&e, "p", "api_headers", "`cookie`");
    let e = parse_err(
        "p",
        json!({"token_headers": {"content-type": "text/plain"}}),
    );
    assert_err(
        &e,
        "p",
        "token_headers",
        "`content-type` is set by the gateway",
    );
    // A DPoP proof is made by the gateway for each request (RFC 9449), never configured.
    for key in ["api_headers", "token_headers"] {
        let e = parse_err("p", json!({key: {"DPoP": "eyJ.x.y"}}));
        assert_err(&e, "p", key, "`DPoP` is set by the gateway");
    }
    let e = parse_err("p", json!({"api_headers": {"Bad Name": "v"}}));
    assert_err(&e, "p", "api_headers", "not a valid header name");
}

#[test]
fn header_value_with_crlf_refused() {
    let e = parse_err(
        "p",
        json!({"api_headers": {"X-Optiturn-Api-Version": "1\r\nX-Injected: yes"}}),
    );
    assert_err(&e, "p", "api_headers", "control character");
    let e = parse_err("p", json!({"token_headers": {"X-A": "a\nb"}}));
    assert_err(&e, "p", "token_headers", "control character");
}
