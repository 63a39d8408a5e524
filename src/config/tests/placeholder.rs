//! The production template's placeholders (`<…>` in a string value): refused in any key of a
//! provider entry, nested keys by their dotted path, before any other rule, never echoed.

use super::*;

#[test]
fn is_placeholder_is_text_between_angle_brackets() {
    for s in [
        "<your Optimum client id>",
        "https://<partner host>/api/oauth/token",
        "<x>",
        "a <b> c",
    ] {
        assert!(is_placeholder(s), "{s:?}");
    }
    for s in [
        "",
        "demo-client",
        "<>",
        "a < b",
        "b > a",
        "> x <",
        "https://api.example.com/",
    ] {
        assert!(!is_placeholder(s), "{s:?}");
    }
}

#[test]
fn a_placeholder_in_any_key_is_named_by_its_path() {
    let cases = [
        (json!({"client_id": "<your client id>"}), "client_id"),
        (
            json!({"token_url": "https://<partner host>/api/oauth/token"}),
            "token_url",
        ),
        (
            json!({"api_base": "https://<partner host>/api/v1/"}),
            "api_base",
        ),
        (
            json!({"client_secret_name": "<SECRET_NAME>"}),
            "client_secret_name",
        ),
        (json!({"scope": "<scope>"}), "scope"),
        (
            json!({"api_headers": {"X-Api-Version": "<version>"}}),
            "api_headers.X-Api-Version",
        ),
        (
            json!({"token_params": {"tenant": "<tenant id>"}}),
            "token_params.tenant",
        ),
        (
            json!({"auth_style": "token_api", "client_id": "me@example.com",
                   "token_body": {"scopes": ["GET:<api host>/IT-start"], "ttl": 60}}),
            "token_body.scopes",
        ),
        (
            json!({"auth_style": "token_api", "client_id": "me@example.com",
                   "token_body": {"scopes": ["GET:a.b/"], "ttl": 60, "name": "<name>"}}),
            "token_body.name",
        ),
        // Even in a key no rule knows, and before the unknown key is reported.
        (json!({"colour": "<x>"}), "colour"),
    ];
    for (extra, key) in cases {
        let e = parse_err("partner", extra.clone());
        assert_err(&e, "partner", key, PLACEHOLDER_MESSAGE);
        assert_eq!(e.message, PLACEHOLDER_MESSAGE, "{extra}");
    }
}

#[test]
fn placeholder_comes_before_other_rules_and_is_not_echoed() {
    // `https://<host>/` alone would be refused as a URL; the placeholder is what is told.
    let e = parse_err(
        "optimum",
        json!({"token_url": "<token url>", "client_id": 5}),
    );
    assert_err(&e, "optimum", "token_url", "placeholder");
    assert_eq!(
        e.to_string(),
        "provider `optimum`: token_url: still holds a placeholder (`<…>`); fill it in"
    );
    let e = parse_err("p", json!({"client_id": "<secret-looking text 7f3a>"}));
    assert!(!e.to_string().contains("7f3a"), "{e}");
    // An entry that is not an object is still told that.
    let e = ProviderConfig::parse("p", &json!("<entry>")).unwrap_err();
    assert_err(&e, "p", "entry", "must be an object");
    // The id rule comes first.
    let e = parse_err("Bad_Id", json!({"client_id": "<x>"}));
    assert_eq!(e.key, "id");
}

#[test]
fn whole_providers_name_the_provider_with_the_placeholder() {
    let e = parse_providers(&json!({
        "a": entry(json!({})),
        "b": entry(json!({"api_base": "https://<b host>/"})),
    }))
    .unwrap_err();
    assert_err(&e, "b", "api_base", PLACEHOLDER_MESSAGE);
}
