//! `POST /oauth/token` request parsing: every form, every error shape.

use super::*;

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
    let e = parse_grant(
        FORM,
        None,
        b"grant_type=client_credentials&client_id=a&client_secret=",
    )
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
        "Basic //79",     // invalid UTF-8 after decoding
        "Basic c3ZqLWE6", // "svj-a:": an empty secret
        "Basic Og==",     // ":": empty id and secret
        "Basic OnM=",     // ":s": an empty id
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

#[test]
fn token_requests_need_https_except_on_this_machine() {
    for ok in [
        "https://gateway.example/oauth/token",
        "http://127.0.0.1:8787/oauth/token",
        "http://localhost/oauth/token",
        "http://[::1]:8787/oauth/token",
    ] {
        assert_eq!(check_transport(ok), Ok(()), "{ok}");
    }
    for refused in [
        "http://gateway.example/oauth/token",
        "http://127.0.0.2/oauth/token",
        "not a url",
    ] {
        let e = check_transport(refused).unwrap_err();
        assert_eq!(
            (e.status(), e.body()["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }
}

#[test]
fn a_json_member_given_twice_is_refused() {
    for body in [
        r#"{"grant_type":"client_credentials","client_id":"nobody","client_secret":"s","client_id":"svc-a"}"#,
        r#"{"grant_type":"password","grant_type":"client_credentials","client_id":"a","client_secret":"s"}"#,
        r#"{"grant_type":"client_credentials","client_id":"a","client_secret":"s","client_secret":"s"}"#,
    ] {
        let e = json_grant(body).unwrap_err();
        assert_eq!(e.status(), 400, "{body}");
        assert_eq!(e.body()["error"], "invalid_request", "{body}");
        assert!(e.body()["error_description"]
            .as_str()
            .unwrap()
            .contains("is repeated"));
    }
    // Nested repeats do not matter (the fields are strings anyway: a type error).
    assert_eq!(
        validation(
            r#"{"grant_type":"client_credentials","client_id":{"a":1,"a":2},"client_secret":"s"}"#
        ),
        [("client_id".to_string(), "invalid_type")]
    );
}
