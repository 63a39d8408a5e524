//! Provider configuration: one valid entry per documented provider (Optoro, Optimum Automotive,
//! the partner API; `docs/providers.md`), one test per error (each naming its key).

use super::*;
use serde_json::json;

/// A minimal valid snake_case entry, extended/overridden by `extra` (a `null` removes a key).
fn entry(extra: Value) -> Value {
    let mut v = json!({
        "token_url": "https://auth.example.com/oauth/token",
        "api_base": "https://api.example.com/v1/",
        "client_id": "cid",
        "client_secret_name": "EXAMPLE_SECRET",
    });
    let obj = v.as_object_mut().unwrap();
    for (k, val) in extra.as_object().unwrap() {
        if val.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

fn parse_err(id: &str, extra: Value) -> ConfigError {
    ProviderConfig::parse(id, &entry(extra)).unwrap_err()
}

fn assert_err(e: &ConfigError, provider: &str, key: &str, message_part: &str) {
    assert_eq!(e.provider.as_deref(), Some(provider), "{e}");
    assert_eq!(e.key, key, "{e}");
    assert!(e.message.contains(message_part), "{e}");
    assert_eq!(
        e.to_string(),
        format!("provider `{provider}`: {key}: {}", e.message)
    );
}

// ---------------------------------------------------------------- valid provider entries

#[test]
fn optoro_entry() {
    let p = ProviderConfig::parse(
        "optoro",
        &json!({
            "token_url": "https://auth.optiturn.com/oauth/token",
            "api_base": "https://api.optiturn.com/v1",
            "client_id": "f2449833d49b9646a701d2423bef8ec9a49",
            "client_secret_name": "OPTORO_CLIENT_SECRET",
            "auth_style": "json_body",
            "api_headers": {"X-Optiturn-Api-Version": "1"},
            "retry": {"max_attempts": 4, "base_delay_ms": 250},
        }),
    )
    .unwrap();
    assert_eq!(p.id, "optoro");
    assert_eq!(
        p.token.token_url.as_str(),
        "https://auth.optiturn.com/oauth/token"
    );
    // A trailing slash is added so paths join under the base.
    assert_eq!(p.api_base.as_str(), "https://api.optiturn.com/v1/");
    assert_eq!(p.token.auth_style, AuthStyle::JsonBody);
    assert_eq!(p.client_secret_name, "OPTORO_CLIENT_SECRET");
    assert_eq!(
        p.api_headers,
        BTreeMap::from([("X-Optiturn-Api-Version".to_string(), "1".to_string())])
    );
    assert_eq!(p.token.retry.max_attempts, 4);
    assert_eq!(p.token.retry.base_delay_ms, 250);
    assert_eq!(
        p.token.retry.max_delay_ms,
        RetryPolicy::default().max_delay_ms
    );
    assert_eq!(p.token.expiry, ExpiryPolicy::default());
    assert_eq!(p.token.timeout_ms, DEFAULT_TIMEOUT_MS);
}

#[test]
fn optimum_entry() {
    let p = ProviderConfig::parse(
        "optimum",
        &json!({
            "token_url": "https://identityserver.optimum-automotive.com/connect/token",
            "api_base": "https://public-api.optimum-automotive.com/",
            "client_id": "optimum-client",
            "client_secret_name": "OPTIMUM_SECRET",
            "auth_style": "client_secret_post",
            "max_lifetime_s": 86400,
        }),
    )
    .unwrap();
    assert_eq!(p.token.auth_style, AuthStyle::ClientSecretPost);
    assert_eq!(p.token.expiry.max_lifetime_s, 86_400);
    assert_eq!(
        p.api_base.as_str(),
        "https://public-api.optimum-automotive.com/"
    );
    assert!(p.api_headers.is_empty());
}

#[test]
fn partner_entry() {
    let p = ProviderConfig::parse(
        "partner-1",
        &json!({
            "token_url": "https://partner.example.com/api/oauth/token",
            "api_base": "https://partner.example.com/api/",
            "client_id": "9b1e82a7",
            "client_secret_name": "PARTNER_SECRET",
            "auth_style": "json_body",
            "scope": "bookings:create",
            "refresh_skew_s": 120,
            "default_lifetime_s": 600,
            "timeout_ms": 5000,
            "token_headers": {"X-Partner": "yes"},
        }),
    )
    .unwrap();
    assert_eq!(p.token.auth_style, AuthStyle::JsonBody);
    assert_eq!(p.token.scope.as_deref(), Some("bookings:create"));
    assert_eq!(p.token.expiry.refresh_skew_s, 120);
    assert_eq!(p.token.expiry.default_lifetime_s, 600);
    assert_eq!(p.token.timeout_ms, 5_000);
    assert_eq!(p.token.token_headers["X-Partner"], "yes");
}

#[test]
fn default_auth_style_is_basic_and_loopback_http_allowed() {
    for url in [
        "http://127.0.0.1:8787/token",
        "http://localhost/token",
        "http://[::1]:9000/token",
    ] {
        let p = ProviderConfig::parse("local", &entry(json!({"token_url": url}))).unwrap();
        assert_eq!(p.token.auth_style, AuthStyle::ClientSecretBasic, "{url}");
        assert_eq!(p.token.token_url.scheme(), "http");
    }
}

#[test]
fn parse_providers_whole_object() {
    let all = parse_providers(&json!({"a": entry(json!({})), "b": entry(json!({}))})).unwrap();
    assert_eq!(
        all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let e = parse_providers(&json!({})).unwrap_err();
    assert_eq!(e.to_string(), "TOKENGATE_PROVIDERS: defines no provider");
    let e = parse_providers(&json!([1])).unwrap_err();
    assert_eq!(e.provider, None);
    assert_eq!(e.key, "TOKENGATE_PROVIDERS");
    let e = parse_providers(
        &json!({"good": entry(json!({})), "bad": entry(json!({"token_url": null}))}),
    )
    .unwrap_err();
    assert_eq!(e.provider.as_deref(), Some("bad"));
}

// ---------------------------------------------------------------- errors, each naming the key

#[test]
fn missing_token_url() {
    let e = parse_err("optoro", json!({"token_url": null}));
    assert_err(&e, "optoro", "token_url", "is required");
    assert_eq!(e.to_string(), "provider `optoro`: token_url: is required");
}

#[test]
fn http_token_url_on_public_host() {
    let e = parse_err(
        "optoro",
        json!({"token_url": "http://auth.optiturn.com/oauth/token"}),
    );
    assert_err(&e, "optoro", "token_url", "must use https");
    // Loopback look-alikes are public hosts.
    let e = parse_err(
        "optoro",
        json!({"token_url": "http://localhost.evil.com/token"}),
    );
    assert_err(&e, "optoro", "token_url", "must use https");
    let e = parse_err(
        "optoro",
        json!({"token_url": "ftp://auth.example.com/token"}),
    );
    assert_err(&e, "optoro", "token_url", "unsupported scheme");
    let e = parse_err(
        "optoro",
        json!({"token_url": "https://u:p@auth.example.com/t"}),
    );
    assert_err(&e, "optoro", "token_url", "credentials");
    assert!(!e.to_string().contains("u:p"));
    let e = parse_err("optoro", json!({"api_base": "http://api.example.com/"}));
    assert_err(&e, "optoro", "api_base", "must use https");
}

#[test]
fn unknown_auth_style() {
    let e = parse_err("p", json!({"auth_style": "private_key_jwt"}));
    assert_err(&e, "p", "auth_style", "unknown value; expected");
    assert!(
        !e.to_string().contains("private_key_jwt"),
        "the value is not echoed"
    );
}

#[test]
fn unknown_key_is_named() {
    let e = parse_err("p", json!({"tokne_url_typo": "x"}));
    assert_err(&e, "p", "tokne_url_typo", "is not a known key");
    let e = parse_err("p", json!({"retry": {"max_attempts": 2, "jitter": true}}));
    assert_err(&e, "p", "retry.jitter", "is not a known key");
}

#[test]
fn reserved_id_oauth() {
    let e = parse_err("oauth", json!({}));
    assert_err(&e, "oauth", "id", "reserved");
    for id in ["admin", "healthz"] {
        assert_err(&parse_err(id, json!({})), id, "id", "reserved");
    }
}

#[test]
fn bad_id() {
    let e = parse_err("Opt_oro", json!({}));
    assert_err(&e, "Opt_oro", "id", "^[a-z0-9][a-z0-9-]{0,62}$");
    let long = "a".repeat(64);
    for id in ["", "-optoro", ".well-known", long.as_str(), "opt oro"] {
        let e = parse_err(id, json!({}));
        assert_eq!(e.key, "id", "{id:?}");
    }
    assert!(ProviderConfig::parse(&"a".repeat(63), &entry(json!({}))).is_ok());
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
fn default_lifetime_above_max_lifetime() {
    let e = parse_err(
        "p",
        json!({"default_lifetime_s": 7200, "max_lifetime_s": 3600}),
    );
    assert_err(
        &e,
        "p",
        "default_lifetime_s",
        "must not exceed max_lifetime_s",
    );
    // Against the default cap (86400).
    let e = parse_err("p", json!({"default_lifetime_s": 90000}));
    assert_err(
        &e,
        "p",
        "default_lifetime_s",
        "must not exceed max_lifetime_s",
    );
    let e = parse_err("p", json!({"max_lifetime_s": 0}));
    assert_err(&e, "p", "max_lifetime_s", "whole number");
    let e = parse_err("p", json!({"timeout_ms": "5000"}));
    assert_err(&e, "p", "timeout_ms", "whole number");
}

#[test]
fn token_params_reserved_key() {
    for k in ["grant_type", "client_secret", "scope"] {
        let e = parse_err("p", json!({"token_params": {k: "x"}}));
        assert_err(
            &e,
            "p",
            "token_params",
            &format!("`{k}` is set by the gateway"),
        );
    }
    let e = parse_err("p", json!({"token_params": {"nested": {"a": 1}}}));
    assert_err(
        &e,
        "p",
        "token_params",
        "value of `nested` must be a string",
    );
}

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

// ---------------------------------------------------------------- camelCase (npm)

#[test]
fn camel_case_parses_and_names_camel_keys() {
    let s = TokenSettings::parse_camel(
        &json!({
            "tokenUrl": "https://auth.example.com/token",
            "clientId": "cid",
            "clientSecret": "handled by the caller",
            "authStyle": "client_secret_post",
            "tokenParams": {"a": "b"},
            "retry": {"maxAttempts": 2, "retryUnsafeMethods": true},
            "timeoutMs": 1234,
        }),
        &["clientSecret"],
    )
    .unwrap();
    assert_eq!(s.auth_style, AuthStyle::ClientSecretPost);
    assert_eq!(s.retry.max_attempts, 2);
    assert!(s.retry.retry_unsafe_methods);
    assert_eq!(s.timeout_ms, 1_234);
    assert_eq!(s.token_params["a"], "b");

    let e = TokenSettings::parse_camel(&json!({"clientId": "cid"}), &[]).unwrap_err();
    assert_eq!(e.provider, None);
    assert_eq!(e.key, "tokenUrl");
    assert_eq!(e.to_string(), "tokenUrl: is required");

    let base = json!({"tokenUrl": "https://auth.example.com/token", "clientId": "cid"});
    let with = |k: &str, v: Value| {
        let mut o = base.clone();
        o.as_object_mut().unwrap().insert(k.into(), v);
        TokenSettings::parse_camel(&o, &[]).unwrap_err()
    };
    assert_eq!(
        with("retry", json!({"maxAttempts": 11})).key,
        "retry.maxAttempts"
    );
    assert_eq!(
        with("retry", json!({"baseDelayMs": 9, "maxDelayMs": 1})).key,
        "retry.baseDelayMs"
    );
    assert_eq!(
        with("retry", json!({"max_attempts": 2})).key,
        "retry.max_attempts"
    );
    assert_eq!(with("authStyle", json!("nope")).key, "authStyle");
    assert_eq!(
        with("defaultLifetimeS", json!(100_000)).key,
        "defaultLifetimeS"
    );
    // The snake spelling is an unknown key in camelCase config.
    let e = with("token_url", json!("https://x.example/"));
    assert_eq!(e.key, "token_url");
    assert!(e.message.contains("not a known key"));
    // clientSecret is only allowed when the caller says so.
    let e = with("clientSecret", json!("s3cr3t-value"));
    assert_eq!(e.key, "clientSecret");
    assert!(!e.to_string().contains("s3cr3t-value"));
    assert_eq!(
        Naming::Camel.key("retry_unsafe_methods"),
        "retryUnsafeMethods"
    );
    assert_eq!(
        Naming::Snake.key("retry_unsafe_methods"),
        "retry_unsafe_methods"
    );
}

#[test]
fn config_error_display_format() {
    let e = ConfigError {
        provider: Some("x".into()),
        key: "token_url".into(),
        message: "is required".into(),
    };
    assert_eq!(e.to_string(), "provider `x`: token_url: is required");
    assert_eq!(
        ConfigError::global("TOKENGATE_KEY", "is missing").to_string(),
        "TOKENGATE_KEY: is missing"
    );
}

#[test]
fn host_names_must_be_ascii() {
    // IDNA is not compiled in (size); international names are given in their xn-- form.
    let e = TokenSettings::parse_camel(
        &json!({"tokenUrl": "https://bücher.example/token", "clientId": "c"}),
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "tokenUrl");
    let ok = TokenSettings::parse_camel(
        &json!({"tokenUrl": "https://xn--bcher-kva.example/token", "clientId": "c"}),
        &[],
    )
    .unwrap();
    assert_eq!(ok.token_url.host_str(), Some("xn--bcher-kva.example"));
}

#[test]
fn expiry_policy_alone_or_in_a_whole_config() {
    use crate::expiry::ExpiryPolicy;
    assert_eq!(
        ExpiryPolicy::parse_camel(&json!({})).unwrap(),
        ExpiryPolicy::default()
    );
    let p = ExpiryPolicy::parse_camel(&json!({"refreshSkewS": 5, "maxLifetimeS": 90000})).unwrap();
    assert_eq!((p.refresh_skew_s, p.max_lifetime_s), (5, 90_000));
    // A whole config: the other keys are not the policy's business.
    let p = ExpiryPolicy::parse_camel(
        &json!({"tokenUrl": "not even a URL", "clientId": 7, "defaultLifetimeS": 10}),
    )
    .unwrap();
    assert_eq!(p.default_lifetime_s, 10);
    let e = ExpiryPolicy::parse_camel(&json!({"refreshSkewS": -1})).unwrap_err();
    assert_eq!(e.key, "refreshSkewS");
    let e =
        ExpiryPolicy::parse_camel(&json!({"defaultLifetimeS": 10, "maxLifetimeS": 5})).unwrap_err();
    assert_eq!(e.key, "defaultLifetimeS");
    assert_eq!(
        ExpiryPolicy::parse_camel(&json!([])).unwrap_err().key,
        "policy"
    );
}

#[test]
fn hosts_are_plain_ascii() {
    for bad in [
        "http:D%bd",
        "https://DD%DD/x",
        "https://a%2eexample.com/",
        "https://bücher.example/token",
        "https://user@exa%6dple.com/",
    ] {
        let e = parse_endpoint(bad).unwrap_err();
        assert!(e.contains("not plain ASCII"), "{bad}: {e}");
    }
    for good in [
        "https://xn--bcher-kva.example/token",
        "https://auth.example.com/oauth/token?x=%41",
        "http://127.0.0.1:8788/optoro/oauth/token",
        "https://API.Example.com/a%20b",
    ] {
        assert!(parse_endpoint(good).is_ok(), "{good}");
    }
}

#[test]
fn endpoints_with_whitespace_or_controls_are_refused() {
    // The URL parser would drop the tab and read `https://d%bd/` (or trim the space): the
    // value would not say what is used.
    for bad in [
        "https:\t//D%bd/",
        "https://auth.example.com/\ttoken",
        " https://auth.example.com/token",
        "https://auth.example.com/token\n",
        "https://auth.exa mple.com/token",
        "https://auth.example.com/\u{0}",
    ] {
        let e = parse_endpoint(bad).unwrap_err();
        assert_eq!(
            e, "must not contain whitespace or control characters",
            "{bad:?}"
        );
    }
}

// ---------------------------------------------------------------- token API (openapi.com)

fn token_api(body: Value) -> Value {
    json!({"auth_style": "token_api", "token_url": "https://test.oauth.openapi.com/tokens",
           "client_id": "dev+tg@example.com", "token_body": body})
}

#[test]
fn token_api_entry() {
    let p = ProviderConfig::parse(
        "openapi",
        &entry({
            let mut e = token_api(json!({
                "scopes": ["GET:company.openapi.com/IT-start", "*:sms.openapi.com/"],
                "ttl": 31_536_000, "name": "tokengate", "limits": {"total": 10},
            }));
            e["max_lifetime_s"] = json!(31_536_000);
            e
        }),
    )
    .unwrap();
    assert_eq!(p.token.auth_style, AuthStyle::TokenApi);
    assert!(p.token.auth_style.manages_tokens());
    let body = p.token.token_body.unwrap();
    assert_eq!(body["ttl"], json!(31_536_000));
    assert_eq!(body["limits"], json!({"total": 10}));
    // The npm spelling is the same table under `tokenBody`.
    let camel = TokenSettings::parse_camel(
        &json!({"authStyle": "token_api", "tokenUrl": "https://oauth.openapi.com/tokens",
                "clientId": "a@b.c", "tokenBody": {"scopes": ["POST:sms.openapi.com/send"], "ttl": 3600}}),
        &[],
    )
    .unwrap();
    assert_eq!(
        camel.token_body.unwrap().get("scopes"),
        Some(&json!(["POST:sms.openapi.com/send"]))
    );
}

#[test]
fn token_api_errors() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"auth_style": "token_api"}),
            "token_body",
            "is required",
        ),
        (token_api(json!({})), "token_body.scopes", "non-empty array"),
        (
            token_api(json!({"scopes": []})),
            "token_body.scopes",
            "non-empty array",
        ),
        (
            token_api(json!({"scopes": "GET:a.b/"})),
            "token_body.scopes",
            "non-empty array",
        ),
        (
            token_api(json!({"scopes": ["company.openapi.com/IT-start"]})),
            "token_body.scopes",
            "METHOD:host/path",
        ),
        (
            token_api(json!({"scopes": ["get:company.openapi.com/x"]})),
            "token_body.scopes",
            "METHOD:host/path",
        ),
        (
            token_api(json!({"scopes": ["GET:company.openapi.com"]})),
            "token_body.scopes",
            "METHOD:host/path",
        ),
        (
            token_api(json!({"scopes": ["GET:/x"]})),
            "token_body.scopes",
            "METHOD:host/path",
        ),
        (
            token_api(json!({"scopes": ["GET:a.b/x y"]})),
            "token_body.scopes",
            "METHOD:host/path",
        ),
        (
            token_api(json!({"scopes": [7]})),
            "token_body.scopes",
            "METHOD:host/path",
        ),
        (
            token_api(json!({"scopes": ["GET:a.b/"], "ttl": 31_536_001})),
            "token_body.ttl",
            "1 to 31536000",
        ),
        (
            token_api(json!({"scopes": ["GET:a.b/"], "ttl": 0})),
            "token_body.ttl",
            "1 to 31536000",
        ),
        (
            token_api(json!({"scopes": ["GET:a.b/"], "name": 3})),
            "token_body.name",
            "string",
        ),
        (
            token_api(json!({"scopes": ["GET:a.b/"], "limits": [1]})),
            "token_body.limits",
            "object",
        ),
        (
            token_api(json!({"scopes": ["GET:a.b/"], "expire": 5})),
            "token_body.expire",
            "not a known key",
        ),
        (
            token_api(json!("scopes")),
            "token_body",
            "must be an object",
        ),
        (
            json!({"token_body": {"scopes": ["GET:a.b/"]}}),
            "token_body",
            "only with auth_style token_api",
        ),
    ];
    for (extra, key, part) in cases {
        let e = parse_err("openapi", extra.clone());
        assert_err(&e, "openapi", key, part);
    }
    // OAuth token-request parameters are refused, not ignored.
    for (k, v) in [
        ("scope", json!("a")),
        ("audience", json!("a")),
        ("resource", json!("https://r.example")),
        ("token_params", json!({"x": "1"})),
    ] {
        let mut extra = token_api(json!({"scopes": ["GET:a.b/"], "ttl": 60}));
        extra[k] = v;
        assert_err(
            &parse_err("openapi", extra),
            "openapi",
            k,
            "not used with auth_style token_api",
        );
    }
}
