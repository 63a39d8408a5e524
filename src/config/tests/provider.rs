//! Provider entries: one valid entry per documented provider (Optoro, Optimum Automotive, the
//! partner API; `docs/providers.md`), `TOKENGATE_PROVIDERS` as a whole, ids, expiry bounds and
//! token parameters, the npm camelCase settings and the token API (openapi.com).

use super::*;
use crate::expiry::ExpiryPolicy;
use crate::retry::RetryPolicy;
use std::collections::BTreeMap;

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
    assert_eq!(
        p.client_secret_name.as_deref(),
        Some("OPTORO_CLIENT_SECRET")
    );
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
fn unknown_auth_style() {
    let e = parse_err("p", json!({"auth_style": "client_secret_jwt"}));
    assert_err(&e, "p", "auth_style", "unknown value; expected");
    assert!(
        !e.to_string().contains("client_secret_jwt"),
        "the value is not echoed"
    );
}

#[test]
fn private_key_jwt_reads_a_key_secret_and_no_client_secret() {
    let pk = json!({"auth_style": "private_key_jwt", "client_secret_name": null,
                    "client_key_name": "PARTNER_KEY", "client_key_alg": "PS256", "kid": "k-1",
                    "assertion_audience": "https://idp.example/"});
    let p = ProviderConfig::parse("p", &entry(pk.clone())).unwrap();
    assert_eq!(p.token.auth_style, AuthStyle::PrivateKeyJwt);
    assert_eq!(p.token.client_key_alg, crate::jose::JwsAlg::Ps256);
    assert_eq!(p.token.assertion_audience(), "https://idp.example/");
    assert_eq!(
        p.secret_names(),
        vec![("PARTNER_KEY", "private key (private_key_jwt)")]
    );
    let with = |extra: Value| {
        let mut v = pk.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    for (extra, key, part) in [
        (
            json!({"client_key_name": null}),
            "client_key_name",
            "is required with auth_style private_key_jwt",
        ),
        (
            json!({"client_secret_name": "S"}),
            "client_secret_name",
            "which sends no secret",
        ),
        (
            json!({"client_key_alg": "HS256"}),
            "client_key_alg",
            "ES256, RS256 or PS256",
        ),
        (
            json!({"client_key_name": "TOKENGATE_KEY"}),
            "client_key_name",
            "tokengate's own settings",
        ),
    ] {
        assert_err(&parse_err("p", with(extra)), "p", key, part);
    }
    // The assertion's keys mean nothing to a secret style: refused, not ignored.
    for key in [
        "client_key_alg",
        "kid",
        "assertion_audience",
        "client_key_name",
    ] {
        let v = if key == "client_key_alg" {
            "ES256"
        } else {
            "X"
        };
        assert_err(
            &parse_err("p", json!({ key: v })),
            "p",
            key,
            "only with auth_style private_key_jwt",
        );
    }
}

#[test]
fn dpop_and_tls_client_auth_rules() {
    let p = ProviderConfig::parse(
        "p",
        &entry(json!({"dpop": true, "dpop_key_name": "DPOP_KEY"})),
    )
    .unwrap();
    assert!(p.token.dpop);
    assert_eq!(
        p.secret_names(),
        vec![
            ("EXAMPLE_SECRET", "client secret"),
            ("DPOP_KEY", "DPoP key")
        ]
    );
    assert!(
        ProviderConfig::parse("p", &entry(json!({"dpop": true}))).is_ok(),
        "a generated key"
    );
    assert_err(
        &parse_err("p", json!({"dpop": true, "coordination": "durable_object"})),
        "p",
        "dpop_key_name",
        "cannot prove possession in another",
    );
    assert_err(
        &parse_err("p", json!({"dpop_key_name": "K"})),
        "p",
        "dpop_key_name",
        "only with dpop = true",
    );
    assert_err(
        &parse_err("p", json!({"dpop": "yes"})),
        "p",
        "dpop",
        "true or false",
    );
    let tls = json!({"auth_style": "tls_client_auth", "client_secret_name": null, "mtls_certificate": "PARTNER_CERT"});
    let p = ProviderConfig::parse("p", &entry(tls)).unwrap();
    assert_eq!(p.mtls_certificate.as_deref(), Some("PARTNER_CERT"));
    assert!(p.secret_names().is_empty());
    assert_err(
        &parse_err(
            "p",
            json!({"auth_style": "tls_client_auth", "client_secret_name": null}),
        ),
        "p",
        "mtls_certificate",
        "is required with auth_style tls_client_auth",
    );
    assert_err(
        &parse_err("p", json!({"mtls_certificate": "bad-name"})),
        "p",
        "mtls_certificate",
        "letters, digits",
    );
}

#[test]
fn reserved_id_oauth() {
    let e = parse_err("oauth", json!({}));
    assert_err(&e, "oauth", "id", "reserved");
    for id in ["admin", "healthz", "introspect", "ui"] {
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

/// A provider's client secret cannot be one of the gateway's own settings: TOKENGATE_KEY would
/// be sent to the provider as its client secret.
#[test]
fn client_secret_name_cannot_name_the_gateway_s_own_settings() {
    for name in [
        "TOKENGATE_KEY",
        "TOKENGATE_CLIENTS",
        "TOKENGATE_PROVIDERS",
        "TOKENGATE_KV",
        "TOKENGATE_ANYTHING",
        "max_body_bytes",
        "log_level",
    ] {
        let e = parse_err("optoro", json!({"client_secret_name": name}));
        assert_err(
            &e,
            "optoro",
            "client_secret_name",
            "tokengate's own settings",
        );
    }
    for name in ["OPTORO_CLIENT_SECRET", "TOKENGATE", "MY_TOKENGATE_KEY"] {
        assert!(
            ProviderConfig::parse("optoro", &entry(json!({"client_secret_name": name}))).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn coordination_is_isolate_or_durable_object() {
    let p = ProviderConfig::parse("optoro", &entry(json!({}))).unwrap();
    assert_eq!(p.coordination, Coordination::Isolate);
    for (v, want) in [
        ("isolate", Coordination::Isolate),
        ("durable_object", Coordination::DurableObject),
    ] {
        let p = ProviderConfig::parse("optoro", &entry(json!({"coordination": v}))).unwrap();
        assert_eq!((p.coordination, p.coordination.as_str()), (want, v));
    }
    for bad in [json!("durable-object"), json!("DO"), json!(true)] {
        let e = parse_err("optoro", json!({"coordination": bad}));
        assert_eq!(e.key, "coordination", "{bad}");
    }
}
