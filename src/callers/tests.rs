//! The gateway's own callers: registry, `POST /oauth/token` forms, issued tokens.

use super::*;

/// SHA-256 of `caller-secret` (computed independently).
const CALLER_SECRET_SHA256: &str =
    "ef463420edc797e78fe3cdfcaddb67f822b4482788cb1009d0467eea8694736f";

const NOW: u64 = 1_700_000_000_123;

fn registry() -> CallerRegistry {
    let json = format!(
        r#"{{
            "svc-a": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro", "partner"], "token_ttl_s": 600}},
            "svc-b": {{"secret_sha256": "{}", "scopes": ["optimum"]}}
        }}"#,
        "AB".repeat(32)
    );
    CallerRegistry::parse("TOKENGATE_CLIENTS", &json).unwrap()
}

fn reg_err(json: &str) -> ConfigError {
    CallerRegistry::parse("TOKENGATE_CLIENTS", json).unwrap_err()
}

// ---------------------------------------------------------------- registry

#[test]
fn registry_good_entry() {
    let r = registry();
    let ids: Vec<&str> = r.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(ids, ["svc-a", "svc-b"]);
    let a = r.iter().next().unwrap();
    assert_eq!(a.scopes, ["optoro", "partner"]);
    assert_eq!(a.token_ttl_s, 600);
    let b = r.iter().nth(1).unwrap();
    assert_eq!(b.token_ttl_s, DEFAULT_CALLER_TTL_S);
}

#[test]
fn registry_bad_hex() {
    for bad in ["zz".repeat(32), "ab".repeat(31), "ab".repeat(33)] {
        let e = reg_err(&format!(
            r#"{{"svc": {{"secret_sha256": "{bad}", "scopes": ["optoro"]}}}}"#
        ));
        assert_eq!(e.key, "TOKENGATE_CLIENTS.svc");
        assert_eq!(e.message, "secret_sha256 must be 64 hex digits");
        assert!(!e.to_string().contains(&bad));
    }
}

#[test]
fn registry_empty_scopes() {
    let e = reg_err(&format!(
        r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": []}}}}"#
    ));
    assert_eq!(
        e.to_string(),
        "TOKENGATE_CLIENTS.svc: scopes must name at least one provider"
    );
    let e = reg_err(&format!(
        r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["Bad_Id"]}}}}"#
    ));
    assert_eq!(e.key, "TOKENGATE_CLIENTS.svc");
    assert!(e.message.contains("scope `Bad_Id`"), "{e}");
}

#[test]
fn registry_ttl_out_of_range() {
    for ttl in [0, 59, 86_401] {
        let e = reg_err(&format!(
            r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "token_ttl_s": {ttl}}}}}"#
        ));
        assert_eq!(
            e.to_string(),
            "TOKENGATE_CLIENTS.svc: token_ttl_s must be from 60 to 86400",
            "{ttl}"
        );
    }
    for ttl in [60, 86_400] {
        let ok = CallerRegistry::parse(
            "C",
            &format!(
                r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "token_ttl_s": {ttl}}}}}"#
            ),
        )
        .unwrap();
        assert_eq!(ok.iter().next().unwrap().token_ttl_s, ttl);
    }
}

#[test]
fn registry_unknown_key() {
    let e = reg_err(&format!(
        r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "secret": "plain"}}}}"#
    ));
    assert_eq!(e.key, "TOKENGATE_CLIENTS.svc");
    assert!(e.message.contains("unknown field `secret`"), "{e}");
    assert!(!e.to_string().contains("plain"), "{e}");
    let e = reg_err("[1, 2]");
    assert_eq!(
        e.to_string(),
        "TOKENGATE_CLIENTS: must be a JSON object keyed by client id"
    );
    let e = reg_err("not json");
    assert_eq!(e.key, "TOKENGATE_CLIENTS");
}

// ---------------------------------------------------------------- authenticate

#[test]
fn authenticate_right_wrong_unknown() {
    let r = registry();
    let c = r
        .authenticate("svc-a", &Secret::new("caller-secret"))
        .unwrap();
    assert_eq!(c.client_id, "svc-a");
    assert!(r
        .authenticate("svc-a", &Secret::new("caller-secreT"))
        .is_none());
    assert!(r.authenticate("svc-a", &Secret::new("")).is_none());
    // The right secret under another id does not authenticate.
    assert!(r
        .authenticate("svc-b", &Secret::new("caller-secret"))
        .is_none());
    assert!(r
        .authenticate("nobody", &Secret::new("caller-secret"))
        .is_none());
    // A secret whose hash is all zeros can't be forged for an unknown id either.
    assert!(r.authenticate("nobody", &Secret::new("")).is_none());
}

// ---------------------------------------------------------------- JSON grant (Optoro's)

const JSON: Option<&str> = Some("application/json");

fn json_grant(body: &str) -> Result<GrantRequest, GrantError> {
    parse_grant(JSON, None, body.as_bytes())
}

fn validation(body: &str) -> Vec<(String, &'static str)> {
    match json_grant(body).unwrap_err() {
        GrantError::Validation(v) => v.into_iter().map(|i| (i.field, i.code)).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn json_exact_body_ok() {
    let g = parse_grant(
        Some("application/json; charset=utf-8"),
        None,
        br#"{"grant_type":"client_credentials","client_id":"svc-a","client_secret":"caller-secret"}"#,
    )
    .unwrap();
    assert_eq!(g.form, GrantForm::Json);
    assert!(!g.basic);
    assert_eq!(g.client_id, "svc-a");
    assert_eq!(g.client_secret.expose(), "caller-secret");
    assert_eq!(g.scope, None);
    assert!(!format!("{g:?}").contains("caller-secret"));
}

#[test]
fn json_malformed_is_400() {
    let e = json_grant(r#"{"grant_type": "client_credentials","#).unwrap_err();
    assert!(matches!(e, GrantError::Malformed(_)), "{e:?}");
    assert_eq!(e.status(), 400);
    assert_eq!(
        e.body(),
        json!({"error": "invalid_request", "error_description": "Malformed request. Check structure of JSON payload."})
    );
    assert!(e.headers().is_empty());
}

#[test]
fn json_array_body_is_400() {
    let e = json_grant(r#"[{"grant_type":"client_credentials"}]"#).unwrap_err();
    assert!(matches!(e, GrantError::Malformed(_)), "{e:?}");
    assert_eq!(e.status(), 400);
}

#[test]
fn json_unknown_key_is_422_unexpected_field() {
    assert_eq!(
        validation(
            r#"{"grant_type":"client_credentials","client_id":"a","client_secret":"b","scope":"optoro"}"#
        ),
        [("scope".to_string(), "unexpected_field")]
    );
    let e = json_grant(
        r#"{"grant_type":"client_credentials","client_id":"a","client_secret":"b","scope":"optoro"}"#,
    )
    .unwrap_err();
    assert_eq!(e.status(), 422);
}

#[test]
fn json_missing_client_secret() {
    assert_eq!(
        validation(r#"{"grant_type":"client_credentials","client_id":"a"}"#),
        [("client_secret".to_string(), "missing_field")]
    );
    assert_eq!(
        validation("{}"),
        [
            ("grant_type".to_string(), "missing_field"),
            ("client_id".to_string(), "missing_field"),
            ("client_secret".to_string(), "missing_field"),
        ]
    );
    // null is present with the wrong type.
    assert_eq!(
        validation(r#"{"grant_type":"client_credentials","client_id":null,"client_secret":"b"}"#),
        [("client_id".to_string(), "invalid_type")]
    );
}

#[test]
fn json_empty_credentials_are_a_failed_authentication() {
    for body in [
        r#"{"grant_type":"client_credentials","client_id":"a","client_secret":""}"#,
        r#"{"grant_type":"client_credentials","client_id":"","client_secret":"b"}"#,
        r#"{"grant_type":"client_credentials","client_id":"","client_secret":""}"#,
    ] {
        let e = json_grant(body).unwrap_err();
        assert_eq!(e, GrantError::InvalidClient { basic: false }, "{body}");
        assert_eq!(e.status(), 401);
    }
    // Basic with an empty secret: the challenge is repeated.
    let auth = format!("Basic {}", STANDARD.encode("svc-a:"));
    let e = parse_grant(JSON, Some(&auth), br#"{"grant_type":"client_credentials"}"#).unwrap_err();
    assert_eq!(e, GrantError::InvalidClient { basic: true });
}

#[test]
fn json_number_client_id_is_invalid_type() {
    assert_eq!(
        validation(r#"{"grant_type":"client_credentials","client_id":42,"client_secret":"b"}"#),
        [("client_id".to_string(), "invalid_type")]
    );
}

#[test]
fn json_empty_or_unknown_grant_type_is_unsupported() {
    for grant in ["password", "", "CLIENT_CREDENTIALS", "client_credentials "] {
        let body = format!(r#"{{"grant_type":"{grant}","client_id":"a","client_secret":"b"}}"#);
        let e = json_grant(&body).unwrap_err();
        assert_eq!(e.status(), 400, "{grant:?}");
        assert_eq!(e.body()["error"], "unsupported_grant_type", "{grant:?}");
    }
    // A wrong type is still the schema's business.
    assert_eq!(
        validation(r#"{"grant_type":1,"client_id":"a","client_secret":"b"}"#),
        [("grant_type".to_string(), "invalid_type")]
    );
}

#[test]
fn validation_body_is_optoro_shape_exactly() {
    let e = json_grant(r#"{"grant_type":"client_credentials","client_id":"a"}"#).unwrap_err();
    assert_eq!(e.status(), 422);
    assert_eq!(
        e.body(),
        json!({
            "message": "Validation Failed",
            "errors": [{"field": "client_secret", "code": "missing_field"}]
        })
    );
    // Exactly these keys at every level: nothing more is serialised.
    let body = e.body();
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert_eq!(body["errors"][0].as_object().unwrap().len(), 2);
    assert!(e.headers().is_empty());
}

#[test]
fn json_with_basic_credentials() {
    let auth = format!("Basic {}", STANDARD.encode("svc-a:caller-secret"));
    let g = parse_grant(JSON, Some(&auth), br#"{"grant_type":"client_credentials"}"#).unwrap();
    assert!(g.basic);
    assert_eq!(g.client_id, "svc-a");
    assert_eq!(g.client_secret.expose(), "caller-secret");
    // Basic plus body credentials: the body ones are unexpected.
    let e = parse_grant(
        JSON,
        Some(&auth),
        br#"{"grant_type":"client_credentials","client_secret":"x"}"#,
    )
    .unwrap_err();
    assert_eq!(
        e,
        GrantError::Validation(vec![FieldIssue {
            field: "client_secret".into(),
            code: "unexpected_field"
        }])
    );
}

#[test]
fn unsupported_content_type_is_400() {
    for ct in [
        None,
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let e = parse_grant(ct, None, b"grant_type=client_credentials").unwrap_err();
        assert!(matches!(e, GrantError::Malformed(_)), "{ct:?}");
        assert_eq!(e.status(), 400);
    }
}

// ---------------------------------------------------------------- RFC 6749 forms

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

#[test]
fn form_body_with_credentials() {
    let g = parse_grant(
        FORM,
        None,
        b"grant_type=client_credentials&client_id=svc-a&client_secret=caller%2Dsecret&scope=optoro+partner",
    )
    .unwrap();
    assert_eq!(g.form, GrantForm::Form);
    assert!(!g.basic);
    assert_eq!(g.client_id, "svc-a");
    assert_eq!(g.client_secret.expose(), "caller-secret");
    assert_eq!(
        g.scope,
        Some(vec!["optoro".to_string(), "partner".to_string()])
    );
}

/// RFC 6749 §2.3.1: id `svc:büro 1`, secret `p+ss w%rd:é`, each form-urlencoded, then base64
/// (`svc%3Ab%C3%BCro+1:p%2Bss+w%25rd%3A%C3%A9`).
#[test]
fn form_with_basic_form_urlencoded_special_chars() {
    let auth = "Basic c3ZjJTNBYiVDMyVCQ3JvKzE6cCUyQnNzK3clMjVyZCUzQSVDMyVBOQ==";
    let g = parse_grant(FORM, Some(auth), b"grant_type=client_credentials").unwrap();
    assert!(g.basic);
    assert_eq!(g.client_id, "svc:büro 1");
    assert_eq!(g.client_secret.expose(), "p+ss w%rd:é");
    assert_eq!(g.scope, None);
    // The scheme is case-insensitive; the same client_id in the body is tolerated.
    let g = parse_grant(
        FORM,
        Some("basic c3ZjIGlkOjE="),
        b"grant_type=client_credentials&client_id=svc+id",
    )
    .unwrap();
    assert_eq!(g.client_id, "svc id");
    assert_eq!(g.client_secret.expose(), "1");
}

#[test]
fn form_basic_and_body_secret_is_invalid_request() {
    let auth = format!("Basic {}", STANDARD.encode("svc-a:caller-secret"));
    for body in [
        &b"grant_type=client_credentials&client_secret=caller-secret"[..],
        b"grant_type=client_credentials&client_id=other",
    ] {
        let e = parse_grant(FORM, Some(&auth), body).unwrap_err();
        match &e {
            GrantError::OAuth(code, _) => assert_eq!(*code, "invalid_request"),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.status(), 400);
        assert_eq!(e.body()["error"], "invalid_request");
    }
}

#[test]
fn form_repeated_parameter() {
    let e = parse_grant(
        FORM,
        None,
        b"grant_type=client_credentials&client_id=a&client_id=b&client_secret=s",
    )
    .unwrap_err();
    assert_eq!(
        e,
        GrantError::OAuth(
            "invalid_request",
            "parameter `client_id` is repeated".into()
        )
    );
    assert_eq!(e.status(), 400);
}

#[test]
fn form_unsupported_grant_type() {
    let e = parse_grant(
        FORM,
        None,
        b"grant_type=authorization_code&client_id=a&client_secret=s",
    )
    .unwrap_err();
    assert!(
        matches!(e, GrantError::OAuth("unsupported_grant_type", _)),
        "{e:?}"
    );
    assert_eq!(e.status(), 400);
    assert_eq!(e.body()["error"], "unsupported_grant_type");
    // Present but empty: unsupported as well; absent: a malformed request.
    let e = parse_grant(FORM, None, b"grant_type=&client_id=a&client_secret=s").unwrap_err();
    assert!(
        matches!(e, GrantError::OAuth("unsupported_grant_type", _)),
        "{e:?}"
    );
    let e = parse_grant(FORM, None, b"client_id=a&client_secret=s").unwrap_err();
    assert!(
        matches!(e, GrantError::OAuth("invalid_request", _)),
        "{e:?}"
    );
    // An empty secret in the body is a failed authentication.
    let e = parse_grant(FORM, None, b"grant_type=client_credentials&client_id=a&client_secret=")
        .unwrap_err();
    assert_eq!(e, GrantError::InvalidClient { basic: false });
}

#[test]
fn form_missing_credentials_is_401_without_challenge() {
    for body in [
        &b"grant_type=client_credentials"[..],
        b"grant_type=client_credentials&client_id=svc-a",
        b"grant_type=client_credentials&client_secret=x",
    ] {
        let e = parse_grant(FORM, None, body).unwrap_err();
        assert_eq!(e, GrantError::InvalidClient { basic: false });
        assert_eq!(e.status(), 401);
        assert!(e.headers().is_empty());
        assert_eq!(e.body()["error"], "invalid_client");
    }
}

#[test]
fn bad_basic_is_401_with_challenge() {
    for auth in [
        "Basic !!!not-base64!!!",
        "Basic bm9jb2xvbg==", // "nocolon"
        "Basic",
        "Basic //79", // invalid UTF-8 after decoding
    ] {
        let e = parse_grant(FORM, Some(auth), b"grant_type=client_credentials").unwrap_err();
        assert_eq!(e, GrantError::InvalidClient { basic: true }, "{auth}");
        assert_eq!(e.status(), 401);
        assert_eq!(
            e.headers(),
            vec![("WWW-Authenticate", "Basic realm=\"tokengate\"")]
        );
        assert_eq!(
            e.body(),
            json!({
                "error": "invalid_client",
                "error_description": "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."
            })
        );
    }
}

#[test]
fn other_authorization_schemes_are_ignored() {
    let body = br#"{"grant_type":"client_credentials","client_id":"svc","client_secret":"pw"}"#;
    let g = parse_grant(Some("application/json"), Some("Bearer stale-token"), body).unwrap();
    assert!(!g.basic);
    assert_eq!(g.client_id, "svc");
    assert!(g.client_secret.ct_eq("pw"));
    let e = parse_grant(FORM, Some("Bearer abc"), b"grant_type=client_credentials").unwrap_err();
    assert_eq!(e, GrantError::InvalidClient { basic: false });
    assert!(e.headers().is_empty());
}

// ---------------------------------------------------------------- issued tokens

fn caller_a() -> Caller {
    registry().iter().next().unwrap().clone()
}

#[test]
fn issue_token_shape_and_record() {
    let random: [u8; 32] = std::array::from_fn(|i| i as u8);
    let (issued, record) = issue_token(&caller_a(), None, random, NOW).unwrap();
    assert_eq!(
        issued.access_token,
        "tg_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    );
    let rest = issued.access_token.strip_prefix(TOKEN_PREFIX).unwrap();
    assert_eq!(rest.len(), 43);
    assert!(rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(issued.token_type, "Bearer");
    assert_eq!(issued.expires_in, 600);
    assert_eq!(issued.scope, "optoro partner");
    assert_eq!(issued.created_at, NOW / 1000);
    assert_eq!(
        record,
        CallerTokenRecord {
            client_id: "svc-a".into(),
            scopes: vec!["optoro".into(), "partner".into()],
            expires_at_ms: NOW + 600_000,
        }
    );
    // Different randomness, different token; base64url alphabet (no + or /).
    let (other, _) = issue_token(&caller_a(), None, [0xFB; 32], NOW).unwrap();
    assert_ne!(other.access_token, issued.access_token);
    assert!(!other.access_token.contains('+') && !other.access_token.contains('/'));
    assert!(other.access_token.contains('-') || other.access_token.contains('_'));
    // Optoro's 200 schema (docs/providers.md#optoro-token-response).
    let v = serde_json::to_value(&issued).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "created_at",
            "expires_in",
            "scope",
            "token_type"
        ]
    );
}

#[test]
fn issue_token_scope_narrowing() {
    let c = caller_a();
    let req = vec!["partner".to_string()];
    let (issued, record) = issue_token(&c, Some(&req), [1; 32], NOW).unwrap();
    assert_eq!(issued.scope, "partner");
    assert_eq!(record.scopes, ["partner"]);
    // An empty request means "everything granted".
    let (issued, _) = issue_token(&c, Some(&[]), [1; 32], NOW).unwrap();
    assert_eq!(issued.scope, "optoro partner");
    // Asking for more than granted is invalid_scope.
    let req = vec!["optoro".to_string(), "optimum".to_string()];
    let e = issue_token(&c, Some(&req), [1; 32], NOW).unwrap_err();
    match &e {
        GrantError::OAuth(code, d) => {
            assert_eq!(*code, "invalid_scope");
            assert!(d.contains("optimum"), "{d}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.status(), 400);
}

#[test]
fn caller_token_key_is_sha256_hex() {
    let token = "tg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let key = caller_token_key(token);
    assert_eq!(
        key,
        "tg:v1:ctok:83515edec92df1eb166052cdfcdd55c63e139dd5a356a26e0903e4b01e2fe11e"
    );
    assert!(!key.contains(token));
    assert!(!key.contains(token.strip_prefix("tg_").unwrap()));
    assert_ne!(caller_token_key("tg_B"), caller_token_key("tg_C"));
}

#[test]
fn parse_bearer_cases() {
    assert_eq!(parse_bearer(Some("Bearer tg_abc")), Some("tg_abc"));
    assert_eq!(parse_bearer(Some("bearer tg_abc")), Some("tg_abc"));
    assert_eq!(parse_bearer(Some("BEARER tg_abc")), Some("tg_abc"));
    assert_eq!(parse_bearer(Some("  Bearer   tg_abc  ")), Some("tg_abc"));
    assert_eq!(parse_bearer(None), None);
    assert_eq!(parse_bearer(Some("")), None);
    assert_eq!(parse_bearer(Some("Basic dXNlcjpwYXNz")), None);
    assert_eq!(parse_bearer(Some("Bearer")), None);
    assert_eq!(parse_bearer(Some("Bearer ")), None);
    assert_eq!(parse_bearer(Some("Bearer tg_a tg_b")), None);
    assert_eq!(parse_bearer(Some("Bearertg_abc")), None);
}

#[test]
fn issued_token_shape() {
    let c = CallerRegistry::parse(
        "C",
        &format!(
            r#"{{"svc":{{"secret_sha256":"{}","scopes":["optoro"]}}}}"#,
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let caller = c.get("svc").unwrap();
    assert!(c.get("other").is_none());
    let (issued, _) = issue_token(caller, None, [0xfb; 32], 0).unwrap();
    assert!(looks_like_issued_token(&issued.access_token));
    for bad in [
        "",
        "tg_",
        "tg_short",
        "xx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(!looks_like_issued_token(bad), "{bad}");
    }
    let plus = format!("tg_{}+", "A".repeat(42));
    assert!(!looks_like_issued_token(&plus));
    let long = format!("tg_{}", "A".repeat(44));
    assert!(!looks_like_issued_token(&long));
}

#[test]
fn authorize_checks_registration_provider_and_both_scopes() {
    let reg = registry(); // svc-a: optoro, partner
    let providers: BTreeMap<String, u8> = [
        ("optoro".to_string(), 1),
        ("partner".to_string(), 2),
        ("optimum".to_string(), 3),
    ]
    .into();
    let record = |client: &str, scopes: &[&str]| CallerTokenRecord {
        client_id: client.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires_at_ms: 0,
    };
    let both = record("svc-a", &["optoro", "partner"]);
    assert_eq!(authorize(&reg, &both, "partner", &providers), Ok(&2));
    // A caller no longer registered: 401, before anything else is looked at.
    assert_eq!(
        authorize(&reg, &record("gone", &["optoro"]), "nope", &providers),
        Err(GatewayError::InvalidToken(
            "the client is no longer registered"
        ))
    );
    // An unknown provider: 404.
    assert_eq!(
        authorize(&reg, &both, "nope", &providers),
        Err(GatewayError::NotFound("unknown provider `nope`".into()))
    );
    let denied = |provider: &str| {
        Err(GatewayError::InsufficientScope {
            provider: provider.into(),
        })
    };
    // Registered for partner, but the token was narrowed to optoro at issue: 403.
    let narrow = record("svc-a", &["optoro"]);
    assert_eq!(
        authorize(&reg, &narrow, "partner", &providers),
        denied("partner")
    );
    // The token names optimum, but the registration does not (any more): 403.
    let stale = record("svc-a", &["optoro", "optimum"]);
    assert_eq!(
        authorize(&reg, &stale, "optimum", &providers),
        denied("optimum")
    );
    assert_eq!(authorize(&reg, &stale, "optoro", &providers), Ok(&1));
}

#[test]
fn issued_token_json_is_its_serde_form() {
    let caller = caller_a();
    let (issued, _) = issue_token(&caller, None, [7; 32], NOW).unwrap();
    assert_eq!(issued.to_json(), serde_json::to_value(&issued).unwrap());
}

#[test]
fn token_requests_need_https_except_on_this_machine() {
    let url = |u: &str| url::Url::parse(u).unwrap();
    for ok in [
        "https://gateway.example/oauth/token",
        "http://127.0.0.1:8787/oauth/token",
        "http://localhost/oauth/token",
        "http://[::1]:8787/oauth/token",
    ] {
        assert_eq!(check_transport(&url(ok)), Ok(()), "{ok}");
    }
    for refused in ["http://gateway.example/oauth/token", "http://127.0.0.2/oauth/token"] {
        let e = check_transport(&url(refused)).unwrap_err();
        assert_eq!((e.status(), e.body()["error"].as_str()), (400, Some("invalid_request")));
    }
}
