//! The field reader's errors, each naming its key: a required key missing, empty or mistyped
//! values, an entry that is not an object, unknown keys (inside `retry` too), `retry`'s bounds.

use super::*;

#[test]
fn missing_token_url() {
    let e = parse_err("optoro", json!({"token_url": null}));
    assert_err(&e, "optoro", "token_url", "is required");
    assert_eq!(e.to_string(), "provider `optoro`: token_url: is required");
}

#[test]
fn unknown_key_is_named() {
    let e = parse_err("p", json!({"tokne_url_typo": "x"}));
    assert_err(&e, "p", "tokne_url_typo", "is not a known key");
    let e = parse_err("p", json!({"retry": {"max_attempts": 2, "jitter": true}}));
    assert_err(&e, "p", "retry.jitter", "is not a known key");
}

#[test]
fn retry_base_delay_above_max_delay() {
    let e = parse_err(
        "p",
        json!({"retry": {"base_delay_ms": 2000, "max_delay_ms": 1000}}),
    );
    assert_err(
        &e,
        "p",
        "retry.base_delay_ms",
        "must not exceed max_delay_ms",
    );
    let e = parse_err("p", json!({"retry": {"max_attempts": 0}}));
    assert_err(&e, "p", "retry.max_attempts", "from 1 to 10");
    let e = parse_err("p", json!({"retry": {"retry_unsafe_methods": "yes"}}));
    assert_err(&e, "p", "retry.retry_unsafe_methods", "true or false");
    let e = parse_err("p", json!({"retry": 3}));
    assert_err(&e, "p", "retry", "must be an object");
}

#[test]
fn other_field_errors() {
    let e = parse_err("p", json!({"client_id": ""}));
    assert_err(&e, "p", "client_id", "must not be empty");
    let e = parse_err("p", json!({"client_id": 12}));
    assert_err(&e, "p", "client_id", "must be a string");
    let e = parse_err("p", json!({"client_secret_name": "MY-SECRET"}));
    assert_err(&e, "p", "client_secret_name", "letters, digits");
    let e = parse_err("p", json!({"api_base": "https://api.example.com/v1/?k=v"}));
    assert_err(&e, "p", "api_base", "query");
    let e = ProviderConfig::parse("p", &json!("not an object")).unwrap_err();
    assert_err(&e, "p", "entry", "must be an object");
}
