//! Token-response fixtures from the providers' documentation (`docs/providers.md`), lifetime
//! rules and error shapes.

use super::*;
use crate::scrub::REDACTED;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

const S: u64 = 1000;
const NOW: u64 = 1_700_000_000_000;

fn ok(body: &str) -> HttpResponse {
    resp(200, &[("content-type", "application/json")], body)
}

fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse::fixture(status, headers, body)
}

fn policy() -> ExpiryPolicy {
    ExpiryPolicy::default()
}

/// The parsers with no secret to scrub (the tests of scrubbing give theirs).
fn parse_token_response(
    resp: &HttpResponse,
    now_ms: u64,
    policy: &ExpiryPolicy,
) -> Result<Token, TokenError> {
    super::parse_token_response(resp, now_ms, policy, &Scrubber::none())
}

fn parse_token_record(
    resp: &HttpResponse,
    now_ms: u64,
    policy: &ExpiryPolicy,
) -> Result<Token, TokenError> {
    super::parse_token_record(resp, now_ms, policy, &Scrubber::none())
}

/// An unsigned-looking compact JWS with the given claims.
fn jwt(claims: Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{p}.c2lnbmF0dXJl")
}

/// The partner API's example JWT (`docs/providers.md#partner-token-response`).
const PARTNER_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiI5YjFlODJhNy0wYTU5LTRlN2UtYWRkNS1iOWZmYTM3YWFkZTEiLCJqdGkiOiI4MTc1NWE2YTdkYWYwMzgyZjBmMjcyM2EyY2M5NTFmODMwZjUzM2FmYjQ2Yjc1ZDliOWE0Y2VhN2QyMTVlZTk5MjZhOTMyNTk1NjdjYmY3OCIsImlhdCI6MTcxMDIyMDAzMS41ODMxMTIsIm5iZiI6MTcxMDIyMDAzMS41ODMxMTQsImV4cCI6MTcxMDIyMzYzMS41Nzc0NzgsInN1YiI6IiIsInNjb3BlcyI6WyJib29raW5nczpjcmVhdGUiLCJib29raW5nczpkZWxldGUiXSwidXNlcl9pZCI6Ijg0MjkwMmRiLTU0ZTUtNDYxNC1iMzQ4LTAwMmU4Y2U1ZGExMiIsInBhcnRuZXJfaWQiOiJmMzExMjBlZS1iNWNiLTQxYzQtOTUyOS0yODhkMDJlOTFjZDYiLCJpc190ZXN0IjpmYWxzZX0.Lk-68XAooy_B7hKuJwlNciIIlYjcL550iBVVUk6MW6dS36BCwCRJlSU7HuRjhTL1RSE0U4G3uM4bY4gdK0vdQESY2GuXUi8VkjpfV9WOUuwNBw8-PT5TXLFtAHGkWBoYNRTDJKw0KVcvplbLFONeGh5H-xfhHpSbxTPlpGhpHqv5K7QLIaQzSX5L6JGXreDhyS47d9PGmOnaEuRCJTVM-UCZ9lydv7iKmZX2_2osfNUGnb8NVGhchLY_S1dGWRnwQFng0_MlAHgriylzbAWXgXz9fQmAcnlfTKnMuVXrBU0Cm7WwOZDlMXr44cYAOSO1ed_Evq6DEqj_ebDXZhm0j_QXFrcbogxZiPttBiefalUHXqs_ZtGIDlvCz7C4ukDAf2_UMbLXOwuUMwFIfPzhge1cZ-5O6yQRl6CUJJqwHXBD_gt8IlBQnRECNfG5QQDjIxBh0S7WjCVRDjulrZ4t7WHLEIudeF64_StI0wZf6PNaNl62chFaVI7NNiGIY6vRxfLI-7ifzWjDcFY7d_883_CtSCd6srKW1bBIIHfLCQI5xijfZu3TCZLqDINWBoQAHQrxmMpp0-IJEL1y5cuzIjv01g1KxBRrvuOt_LYVW95IeuLSVB97T6t06bzj9M4a5GFusWlMO_CuBZ_O7TqjiFir9BnKe42wVmAHyVlpVRg";

// ---------------------------------------------------------------- provider fixtures

/// The `demoClientExample` of Optoro's token endpoint spec
/// (`docs/providers.md#optoro-token-response`): created_at is sane, so it is the base time; the
/// 25 h lifetime is capped at max_lifetime_s (86400 s) counted from receipt.
#[test]
fn optoro_demo_client_example() {
    let created = 1_656_518_368 * S;
    let now = created + 100 * S;
    let body = r#"{
        "access_token": "G0ybScDl_7CA3tWVou",
        "token_type": "Bearer",
        "expires_in": 90000,
        "scope": "read write",
        "created_at": 1656518368
    }"#;
    let t = parse_token_response(&ok(body), now, &policy()).unwrap();
    assert_eq!(t.access_token.expose(), "G0ybScDl_7CA3tWVou");
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.scope.as_deref(), Some("read write"));
    assert_eq!(t.issued_at_ms, created);
    assert_eq!(t.expires_at_ms, now + 86_400 * S);

    // With a cap above 25 h, the expiry counts from created_at, not from receipt.
    let wide = ExpiryPolicy {
        max_lifetime_s: 100_000,
        ..policy()
    };
    let t = parse_token_response(&ok(body), now, &wide).unwrap();
    assert_eq!(t.issued_at_ms, created);
    assert_eq!(t.expires_at_ms, created + 90_000 * S);
}

/// The sample response of Optoro's API guide (also 25 h, with created_at;
/// `docs/providers.md#optoro-token-response`).
#[test]
fn optoro_sample_response() {
    let created = 1_683_235_103 * S;
    let now = created + 5 * S;
    let body = r#"{"access_token":"8xB2vvU4ytrl1zYQ_EdGUQrdFJmuCMck","token_type":"Bearer","expires_in":90000,"scope":"read write","created_at":1683235103}"#;
    let wide = ExpiryPolicy {
        max_lifetime_s: 90_000,
        ..policy()
    };
    let t = parse_token_response(&ok(body), now, &wide).unwrap();
    assert_eq!(t.access_token.expose(), "8xB2vvU4ytrl1zYQ_EdGUQrdFJmuCMck");
    assert_eq!(t.issued_at_ms, created);
    assert_eq!(t.expires_at_ms, created + 90_000 * S);
    let t = parse_token_response(&ok(body), now, &policy()).unwrap();
    assert_eq!(t.expires_at_ms, now + 86_400 * S);
}

/// Optimum Automotive's ~355-day token, capped by the default max_lifetime_s (86400 s). Its
/// example token is truncated (`...`), so it is not a JWT and gives no `exp`
/// (`docs/providers.md#optimum-token-response`).
#[test]
fn optimum_long_lived_token_is_capped() {
    let body = r#"{
      "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiNotyEt1dCI6Ikd9S2Vo2SFE4S1M2aXBVWjJ5...",
      "expires_in": 30734400,
      "token_type": "Bearer"
    }"#;
    let t = parse_token_response(&ok(body), NOW, &policy()).unwrap();
    assert_eq!(t.issued_at_ms, NOW);
    assert_eq!(t.expires_at_ms, NOW + 86_400 * S);
    assert_eq!(t.scope, None);
    let uncapped = ExpiryPolicy {
        max_lifetime_s: 31_622_400,
        ..policy()
    };
    let t = parse_token_response(&ok(body), NOW, &uncapped).unwrap();
    assert_eq!(t.expires_at_ms, NOW + 30_734_400 * S);
}

/// The partner API's example: `expires_in: 3600` and a JWT whose `exp` (1710223631.577478) is
/// 6 ms earlier than iat + 3600 s: the earlier wins (`docs/providers.md#partner-token-response`).
#[test]
fn partner_jwt_and_expires_in_earlier_wins() {
    let body = json!({
        "token_type": "Bearer",
        "expires_in": 3600,
        "access_token": PARTNER_TOKEN,
    })
    .to_string();
    let now = 1_710_220_031_583; // the token's iat
    let t = parse_token_response(&ok(&body), now, &policy()).unwrap();
    assert_eq!(t.access_token.expose(), PARTNER_TOKEN);
    assert_eq!(t.issued_at_ms, now);
    assert_eq!(t.expires_at_ms, 1_710_223_631_577);
    // Received later, expires_in from receipt is later still: the JWT exp stands.
    let t = parse_token_response(&ok(&body), now + 10 * S, &policy()).unwrap();
    assert_eq!(t.expires_at_ms, 1_710_223_631_577);
    // Received 100 s before iat (clock skew): expires_in from receipt is now the earlier one.
    let t = parse_token_response(&ok(&body), now - 100 * S, &policy()).unwrap();
    assert_eq!(t.expires_at_ms, now - 100 * S + 3_600 * S);
}

// ---------------------------------------------------------------- lifetime rules

#[test]
fn expires_in_as_numeric_string() {
    let t = parse_token_response(
        &ok(r#"{"access_token":"abc","token_type":"Bearer","expires_in":"3600"}"#),
        NOW,
        &policy(),
    )
    .unwrap();
    assert_eq!(t.expires_at_ms, NOW + 3_600 * S);
    let t = parse_token_response(
        &ok(r#"{"access_token":"abc","expires_in":" 120 "}"#),
        NOW,
        &policy(),
    )
    .unwrap();
    assert_eq!(t.expires_at_ms, NOW + 120 * S);
    for bad in [r#""soon""#, r#""-5""#, "-5", "true", r#"{"s":1}"#] {
        let body = format!(r#"{{"access_token":"abc","expires_in":{bad}}}"#);
        let e = parse_token_response(&ok(&body), NOW, &policy()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse, "{bad}");
        assert_eq!(e.status, Some(200), "{bad}");
    }
}

#[test]
fn jwt_only_expiry() {
    let exp_s = NOW / 1000 + 1_800;
    let token = jwt(json!({"sub": "x", "exp": exp_s}));
    let body = json!({"access_token": token, "token_type": "Bearer"}).to_string();
    let t = parse_token_response(&ok(&body), NOW, &policy()).unwrap();
    assert_eq!(t.issued_at_ms, NOW);
    assert_eq!(t.expires_at_ms, exp_s * 1000);
    // A JWT beyond the cap is capped.
    let far = jwt(json!({"exp": NOW / 1000 + 10 * 86_400}));
    let body = json!({"access_token": far}).to_string();
    let t = parse_token_response(&ok(&body), NOW, &policy()).unwrap();
    assert_eq!(t.expires_at_ms, NOW + 86_400 * S);
    // A JWT that already expired is refused.
    let old = jwt(json!({"exp": NOW / 1000 - 1}));
    let body = json!({"access_token": old}).to_string();
    let e = parse_token_response(&ok(&body), NOW, &policy()).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidResponse);
}

#[test]
fn neither_expires_in_nor_jwt_uses_default_lifetime() {
    let body = r#"{"access_token":"opaque-token","token_type":"Bearer"}"#;
    let t = parse_token_response(&ok(body), NOW, &policy()).unwrap();
    assert_eq!(t.expires_at_ms, NOW + 300 * S);
    let custom = ExpiryPolicy {
        default_lifetime_s: 1_234,
        ..policy()
    };
    let t = parse_token_response(&ok(body), NOW, &custom).unwrap();
    assert_eq!(t.expires_at_ms, NOW + 1_234 * S);
    // `expires_in: null` is "not given".
    let t = parse_token_response(
        &ok(r#"{"access_token":"x","expires_in":null}"#),
        NOW,
        &policy(),
    )
    .unwrap();
    assert_eq!(t.expires_at_ms, NOW + 300 * S);
}

#[test]
fn created_at_future_old_and_sane() {
    let body = |created_s: u64| {
        format!(
            r#"{{"access_token":"t","token_type":"Bearer","expires_in":3600,"created_at":{created_s}}}"#
        )
    };
    // In the future: ignored, receipt time is the base.
    let t = parse_token_response(&ok(&body(NOW / 1000 + 600)), NOW, &policy()).unwrap();
    assert_eq!(t.issued_at_ms, NOW);
    assert_eq!(t.expires_at_ms, NOW + 3_600 * S);
    // Older than the lifetime: ignored.
    let t = parse_token_response(&ok(&body(NOW / 1000 - 3_600)), NOW, &policy()).unwrap();
    assert_eq!(t.issued_at_ms, NOW);
    assert_eq!(t.expires_at_ms, NOW + 3_600 * S);
    // Sane (10 minutes ago): it is the base time.
    let created = NOW - 600 * S;
    let t = parse_token_response(&ok(&body(created / 1000)), NOW, &policy()).unwrap();
    assert_eq!(t.issued_at_ms, created);
    assert_eq!(t.expires_at_ms, created + 3_600 * S);
    // As a string too.
    let s = format!(
        r#"{{"access_token":"t","expires_in":3600,"created_at":"{}"}}"#,
        created / 1000
    );
    let t = parse_token_response(&ok(&s), NOW, &policy()).unwrap();
    assert_eq!(t.issued_at_ms, created);
}

#[test]
fn absurd_expires_in_is_capped_not_overflowed() {
    let body = r#"{"access_token":"t","token_type":"Bearer","expires_in":1e30}"#;
    let t = parse_token_response(&ok(body), NOW, &policy()).unwrap();
    assert_eq!(t.expires_at_ms, NOW + 86_400 * S);
}

#[test]
fn any_2xx_is_a_success() {
    let t = parse_token_response(
        &resp(201, &[], r#"{"access_token":"t","expires_in":60}"#),
        NOW,
        &policy(),
    )
    .unwrap();
    assert_eq!(t.access_token.expose(), "t");
}

// ---------------------------------------------------------------- refusals

#[test]
fn token_type_bearer_any_case_accepted_others_refused() {
    for tt in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let body = json!({"access_token": "t", "token_type": tt, "expires_in": 60}).to_string();
        let t = parse_token_response(&ok(&body), NOW, &policy()).unwrap();
        assert_eq!(t.token_type, "Bearer", "{tt}");
    }
    for body in [
        r#"{"access_token":"t","token_type":"mac","expires_in":60}"#,
        r#"{"access_token":"t","token_type":"N_A","expires_in":60}"#,
        r#"{"access_token":"t","token_type":7,"expires_in":60}"#,
    ] {
        let e = parse_token_response(&ok(body), NOW, &policy()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse, "{body}");
        assert!(!e.retryable());
    }
    let e = parse_token_response(
        &ok(r#"{"access_token":"t","token_type":"mac"}"#),
        NOW,
        &policy(),
    )
    .unwrap_err();
    assert!(e.description.contains("mac"), "{e}");
}

#[test]
fn missing_access_token_refused() {
    for body in [
        r#"{"token_type":"Bearer","expires_in":3600}"#,
        r#"{"access_token":"","token_type":"Bearer"}"#,
        r#"{"access_token":42}"#,
        r#"["access_token"]"#,
    ] {
        let e = parse_token_response(&ok(body), NOW, &policy()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse, "{body}");
        assert_eq!(e.status, Some(200));
    }
}

#[test]
fn non_json_200_refused() {
    let e = parse_token_response(
        &resp(200, &[("content-type", "text/html")], "<html>login</html>"),
        NOW,
        &policy(),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidResponse);
    assert_eq!(e.status, Some(200));
    assert!(!e.retryable());
    assert!(!e.to_string().contains("<html>"));
}

#[test]
fn success_debug_never_shows_the_token() {
    let t = parse_token_response(
        &ok(r#"{"access_token":"SECRET-TOKEN-123","expires_in":60}"#),
        NOW,
        &policy(),
    )
    .unwrap();
    assert!(!format!("{t:?}").contains("SECRET-TOKEN-123"));
    // Serialisation (the cached form) round-trips it.
    let v = t.to_stored();
    assert_eq!(Token::from_stored(&v).unwrap(), t);
    let scoped = Token {
        scope: Some("read write".into()),
        ..t.clone()
    };
    assert_eq!(Token::from_stored(&scoped.to_stored()).unwrap(), scoped);
    // The stored shape (a store filled by an earlier release reads the same way).
    let stored: Value = serde_json::from_str(&scoped.to_stored()).unwrap();
    assert_eq!(
        stored,
        json!({"access_token": "SECRET-TOKEN-123", "token_type": "Bearer",
               "issued_at_ms": t.issued_at_ms, "expires_at_ms": t.expires_at_ms,
               "scope": "read write"})
    );
    for bad in [
        "",
        "[]",
        r#"{"access_token":1,"token_type":"Bearer","issued_at_ms":1,"expires_at_ms":2}"#,
        r#"{"access_token":"a","token_type":"Bearer","issued_at_ms":-1,"expires_at_ms":2}"#,
        r#"{"access_token":"a","token_type":"Bearer","issued_at_ms":1}"#,
        r#"{"access_token":"a","token_type":"Bearer","issued_at_ms":1,"expires_at_ms":2,"scope":3}"#,
    ] {
        assert_eq!(Token::from_stored(bad), None, "{bad}");
    }
}

// ---------------------------------------------------------------- error bodies

/// Display and Debug never carry the raw body; raw_body does (for diagnosis).
fn assert_no_raw(e: &TokenError, raw: &str) {
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(raw), "{shown}");
    assert_eq!(e.raw_body.as_deref(), Some(raw));
}

#[test]
fn rfc6749_invalid_client_401() {
    let raw = r#"{"error":"invalid_client","error_description":"Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."}"#;
    let e = parse_token_response(
        &resp(401, &[("content-type", "application/json")], raw),
        NOW,
        &policy(),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidClient);
    assert_eq!(e.status, Some(401));
    assert_eq!(e.provider_error.as_deref(), Some("invalid_client"));
    assert!(e.description.starts_with("Client authentication failed"));
    assert!(!e.retryable());
    assert_eq!(e.retry_after_ms, None);
    assert!(e
        .to_string()
        .starts_with("invalid_client (HTTP 401) [invalid_client]: Client"));
    assert_no_raw(&e, raw);
}

#[test]
fn rfc6749_invalid_grant_400() {
    let raw = r#"{"error":"invalid_grant","error_description":"grant expired"}"#;
    let e = error_from_response(&resp(400, &[], raw), NOW, &Scrubber::none());
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert_eq!(e.status, Some(400));
    assert_eq!(e.provider_error.as_deref(), Some("invalid_grant"));
    assert_eq!(e.description, "grant expired");
    assert!(!e.retryable());
    assert_eq!(
        e.to_string(),
        "invalid_request (HTTP 400) [invalid_grant]: grant expired"
    );
    assert_no_raw(&e, raw);
    // invalid_client on a 400 (RFC 6749 §5.2 allows it) is still invalid_client.
    let e = error_from_response(
        &resp(400, &[], r#"{"error":"invalid_client"}"#),
        NOW,
        &Scrubber::none(),
    );
    assert_eq!(e.code, ErrorCode::InvalidClient);
}

#[test]
fn optoro_validation_failed_422() {
    let raw = r#"{
"message": "Validation Failed",
"errors":[
{
"field": "rma_identifier",
"code": "missing_field"
}
]
}"#;
    let e = error_from_response(&resp(422, &[], raw), NOW, &Scrubber::none());
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert_eq!(e.status, Some(422));
    assert_eq!(e.provider_error.as_deref(), Some("Validation Failed"));
    assert_eq!(e.description, "rma_identifier: missing_field");
    assert!(!e.retryable());
    assert_no_raw(&e, raw);
}

#[test]
fn rate_limited_429_with_retry_after_seconds_and_date() {
    let e = error_from_response(
        &resp(429, &[("retry-after", "120")], r#"{"error":"slow_down"}"#),
        NOW,
        &Scrubber::none(),
    );
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(e.status, Some(429));
    assert_eq!(e.provider_error.as_deref(), Some("slow_down"));
    assert_eq!(e.retry_after_ms, Some(120_000));
    assert!(e.retryable());

    let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
    let e = error_from_response(
        &resp(
            429,
            &[("Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT")],
            "Too Many Requests",
        ),
        now,
        &Scrubber::none(),
    );
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(e.retry_after_ms, Some(30_000));
    assert_eq!(e.provider_error, None);
    assert_eq!(e.description, "token endpoint answered HTTP 429");
    assert!(e.retryable());
    assert_no_raw(&e, "Too Many Requests");
}

#[test]
fn html_503_page() {
    let raw = "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>\
               <body><h1>upstream connect error marker-7f3a</h1></body></html>";
    let e = error_from_response(
        &resp(503, &[("content-type", "text/html")], raw),
        NOW,
        &Scrubber::none(),
    );
    assert_eq!(e.code, ErrorCode::ServerError);
    assert_eq!(e.status, Some(503));
    assert_eq!(e.provider_error, None);
    assert_eq!(e.description, "token endpoint answered HTTP 503");
    assert!(e.retryable());
    assert_eq!(
        e.to_string(),
        "server_error (HTTP 503): token endpoint answered HTTP 503"
    );
    assert!(!format!("{e} {e:?}").contains("marker-7f3a"));
    assert_no_raw(&e, raw);
}

#[test]
fn redirect_302_is_invalid_response() {
    let raw = "<html>Moved</html>";
    let e = parse_token_response(
        &resp(302, &[("location", "https://evil.example/steal")], raw),
        NOW,
        &policy(),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidResponse);
    assert_eq!(e.status, Some(302));
    assert_eq!(e.provider_error, None);
    assert!(!e.retryable());
    assert!(e.description.contains("redirect"), "{e}");
    assert!(!e.to_string().contains("evil.example"));
    assert_no_raw(&e, raw);
}

#[test]
fn raw_body_is_bounded_and_empty_body_is_none() {
    let big = "x".repeat(2_000);
    let e = error_from_response(&resp(500, &[], &big), NOW, &Scrubber::none());
    assert_eq!(e.raw_body.as_deref().map(str::len), Some(512));
    let e = error_from_response(&resp(500, &[], ""), NOW, &Scrubber::none());
    assert_eq!(e.raw_body, None);
    // Overlong provider fields are truncated.
    let long = json!({"error": "e".repeat(500)}).to_string();
    let e = error_from_response(&resp(400, &[], &long), NOW, &Scrubber::none());
    assert_eq!(
        e.provider_error.as_deref().map(|s| s.chars().count()),
        Some(201)
    );
}

#[test]
fn an_echoed_secret_is_scrubbed_before_truncation() {
    // A secret straddling the 200-character cut must not leave its prefix behind.
    let secret = crate::secret::Secret::new("S3cr3t-abcdefghijklmnopqrstuvwxyz0123456789");
    let forms = Scrubber::for_client("cid", &secret);
    let pad = "x".repeat(200 - secret.expose().len() + 1);
    let body = format!(
        r#"{{"error":"{s}","error_description":"{pad}{s}"}}"#,
        s = secret.expose()
    );
    let e = error_from_response(&resp(400, &[], &body), NOW, &forms);
    let all = format!(
        "{} {:?} {:?} {}",
        e.description, e.provider_error, e.raw_body, e
    );
    assert!(!all.contains("S3cr3t-abc"), "{all}");
    assert_eq!(e.provider_error.as_deref(), Some("[redacted]"));
    assert!(e.description.ends_with("[redacted]"), "{}", e.description);
}

#[test]
fn a_secret_spelled_with_json_escapes_is_scrubbed_after_decoding() {
    let secret = crate::secret::Secret::new("pa/ss+word-42");
    let forms = Scrubber::for_client("cid", &secret);
    // `\/` and `\uXXXX` spellings, in the fields tokengate reads and elsewhere.
    let escaped = r#"pa\/ss+word-42"#;
    let unicode = r#"\u0070\u0061/ss+word-42"#;
    for spelled in [escaped, unicode] {
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"bad secret {spelled}","debug":{{"sent":"{spelled}","{spelled}":1}}}}"#
        );
        let e = error_from_response(&resp(401, &[], &body), NOW, &forms);
        let all = format!(
            "{} {:?} {:?} {e}",
            e.description, e.provider_error, e.raw_body
        );
        assert!(!all.contains("ss+word-42"), "{spelled}: {all}");
        assert_eq!(e.description, "bad secret [redacted]");
        let raw: serde_json::Value = serde_json::from_str(e.raw_body.as_deref().unwrap()).unwrap();
        assert_eq!(raw["debug"]["sent"], "[redacted]");
        assert_eq!(raw["debug"]["[redacted]"], 1);
    }
    // Optoro's validation body: its field names and codes are scrubbed too.
    let body = format!(
        r#"{{"message":"Validation Failed","errors":[{{"field":"{escaped}","code":"x"}}]}}"#
    );
    let e = error_from_response(&resp(422, &[], &body), NOW, &forms);
    assert_eq!(e.description, "[redacted]: x");
}

#[test]
fn a_secret_split_by_controls_or_across_strings_is_still_scrubbed() {
    let secret = crate::secret::Secret::new("k3y: v4l, x");
    let forms = Scrubber::for_client("cid", &secret);
    // A control character inside the echo, dropped for display: the secret is whole again
    // and must be scrubbed then.
    let body = r#"{"error":"invalid_client","error_description":"secret k3y: v\u0001\u00014l, x is wrong"}"#;
    let e = error_from_response(&resp(401, &[], body), NOW, &forms);
    assert_eq!(e.description, "secret [redacted] is wrong");
    // Optoro's `errors[]` pairs, each harmless alone, joined into the secret.
    let body = r#"{"message":"Validation Failed","errors":[{"field":"k3y","code":"v4l, x"}]}"#;
    let e = error_from_response(&resp(422, &[], body), NOW, &forms);
    assert_eq!(e.description, "[redacted]");
    assert_eq!(e.provider_error.as_deref(), Some("Validation Failed"));
}

#[test]
fn an_unsupported_token_type_is_named_only_when_it_looks_like_one() {
    let parse = |t: &str| {
        let body = json!({"access_token": "AT", "token_type": t, "expires_in": 60});
        parse_token_response(
            &resp(200, &[], &body.to_string()),
            NOW,
            &ExpiryPolicy::default(),
        )
        .unwrap_err()
        .description
    };
    assert_eq!(
        parse("mac"),
        "token_type `mac` is not supported; only Bearer"
    );
    assert_eq!(
        parse("N_A"),
        "token_type `N_A` is not supported; only Bearer"
    );
    for odd in [
        "a secret with spaces",
        "x".repeat(21).as_str(),
        "a\u{1}b",
        "é",
    ] {
        assert_eq!(
            parse(odd),
            "token_type is not supported; only Bearer",
            "{odd:?}"
        );
    }
}

#[test]
fn access_tokens_must_be_header_safe() {
    for bad in ["AT-1\nX-Injected: 1", "AT 1", "AT\u{0}1", "AT-é"] {
        let body =
            serde_json::json!({"access_token": bad, "token_type": "Bearer", "expires_in": 60});
        let e = parse_token_response(
            &resp(200, &[], &body.to_string()),
            NOW,
            &ExpiryPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse, "{bad:?}");
        assert!(!e.to_string().contains("AT-1") && !format!("{e:?}").contains("Injected"));
    }
}

// ---------------------------------------------------------------- token API records

/// An openapi.com token record (`docs/providers.md#openapi-token-api`).
fn record(token: &str, expire_at: &str) -> Value {
    json!({
        "token": token, "expireAt": expire_at, "refreshToken": "refresh-1",
        "scopes": ["GET:company.openapi.com/IT-start", "GET:sms.openapi.com/"],
        "createdAt": "2023-11-14T22:13:20Z", "updatedAt": "2023-11-14T22:13:20Z",
        "limits": {}, "stats": {"requests": 0},
    })
}

const REC_NOW: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

fn long_policy() -> ExpiryPolicy {
    ExpiryPolicy {
        max_lifetime_s: 31_622_400,
        ..policy()
    }
}

#[test]
fn token_record_both_shapes() {
    let plain = record("tok-1", "2023-11-15T22:13:20.000Z");
    let wrapped = json!({"success": true, "message": "", "error": null, "data": plain.clone()});
    for body in [plain, wrapped] {
        let t =
            parse_token_record(&ok(&body.to_string()), REC_NOW + 5_000, &long_policy()).unwrap();
        assert_eq!(t.access_token.expose(), "tok-1");
        assert_eq!(
            t.refresh_token.as_ref().map(|r| r.expose()),
            Some("refresh-1")
        );
        assert_eq!(t.issued_at_ms, REC_NOW, "createdAt counts");
        assert_eq!(t.expires_at_ms, REC_NOW + 86_400_000);
        assert_eq!(
            t.scope.as_deref(),
            Some("GET:company.openapi.com/IT-start GET:sms.openapi.com/")
        );
        // The stored form keeps the refresh token, so another instance can rotate.
        assert_eq!(Token::from_stored(&t.to_stored()), Some(t));
    }
}

#[test]
fn token_record_lifetime_rules() {
    // An offset is honoured; the cap applies as for every provider.
    let r = record("t", "2023-11-15T23:13:20+01:00");
    let t = parse_token_record(&ok(&r.to_string()), REC_NOW, &long_policy()).unwrap();
    assert_eq!(t.expires_at_ms, REC_NOW + 86_400_000);
    let capped = parse_token_record(&ok(&r.to_string()), REC_NOW, &policy()).unwrap();
    assert_eq!(
        capped.expires_at_ms,
        REC_NOW + policy().max_lifetime_s * 1000
    );
    // A createdAt in the future is not believed.
    let mut future = record("t", "2023-11-15T22:13:20Z");
    future["createdAt"] = json!("2023-11-14T23:00:00Z");
    let t = parse_token_record(&ok(&future.to_string()), REC_NOW, &long_policy()).unwrap();
    assert_eq!(t.issued_at_ms, REC_NOW);
    // Without expireAt: the default lifetime.
    let mut none = record("t", "x");
    none.as_object_mut().unwrap().remove("expireAt");
    let t = parse_token_record(&ok(&none.to_string()), REC_NOW, &long_policy()).unwrap();
    assert_eq!(
        t.expires_at_ms,
        REC_NOW + policy().default_lifetime_s * 1000
    );
}

#[test]
fn token_record_refused() {
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not JSON"),
        ("[]".into(), "not a JSON object"),
        (
            json!({"success": false, "message": "no", "error": 1, "data": null}).to_string(),
            "success: false",
        ),
        (
            json!({"success": true, "data": null}).to_string(),
            "without a data object",
        ),
        (
            json!({"expireAt": "2023-11-15T22:13:20Z"}).to_string(),
            "has no token",
        ),
        (
            record("", "2023-11-15T22:13:20Z").to_string(),
            "token is not a non-empty string",
        ),
        (
            record("a b", "2023-11-15T22:13:20Z").to_string(),
            "characters a bearer token cannot have",
        ),
        (
            record("t", "2023-11-15T22:13:20").to_string(),
            "expireAt is not an RFC 3339 date-time",
        ),
        (
            record("t", "2023-11-14T22:13:19Z").to_string(),
            "already expired",
        ),
        (
            {
                let mut r = record("t", "2023-11-15T22:13:20Z");
                r["refreshToken"] = json!("a\r\nb");
                r.to_string()
            },
            "refreshToken has characters",
        ),
        (
            {
                let mut r = record("t", "2023-11-15T22:13:20Z");
                r["expireAt"] = json!(1_700_086_400);
                r.to_string()
            },
            "expireAt is not a date-time string",
        ),
    ];
    for (body, part) in cases {
        let e = parse_token_record(&ok(&body), REC_NOW, &long_policy()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse, "{body}");
        assert!(e.description.contains(part), "{body}: {e}");
    }
}

/// The service's error body: the message and the numeric code both reach the error.
#[test]
fn token_api_error_body() {
    let body = json!({"success": false, "message": "Invalid scopes specified or API not enabled",
                      "error": 90, "data": null})
    .to_string();
    let e = error_from_response(&resp(422, &[], &body), REC_NOW, &Scrubber::none());
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert_eq!(e.provider_error.as_deref(), Some("error 90"));
    assert_eq!(e.description, "Invalid scopes specified or API not enabled");
    let unauthorized =
        json!({"success": false, "message": "Unauthorized: key s3cret", "error": 1, "data": null});
    let e = error_from_response(
        &resp(401, &[], &unauthorized.to_string()),
        REC_NOW,
        &Scrubber::for_client("me@example.com", &crate::secret::Secret::new("s3cret")),
    );
    assert_eq!(e.code, ErrorCode::InvalidClient);
    assert!(
        !e.description.contains("s3cret") && e.description.starts_with("Unauthorized"),
        "{e}"
    );
}

/// A refusal that comes as HTTP 200 (`success: false`) is read through the same scrubber as
/// any other answer: the API key, the token being rotated and its refresh token, however they
/// are spelled, stay out of the error — its description, its provider error and the cooldown
/// that repeats it.
#[test]
fn a_refusal_in_a_2xx_is_scrubbed() {
    use crate::secret::Secret;
    let key = "api-key-0123456789abcdef";
    let old = Token {
        access_token: Secret::new("old-token-abcdefghijkl"),
        token_type: "Bearer".into(),
        issued_at_ms: 0,
        expires_at_ms: u64::MAX,
        scope: None,
        refresh_token: Some(Secret::new("refresh/token+0123456789")),
    };
    let scrub = Scrubber::for_client("me@example.com", &Secret::new(key)).with_token(&old);
    for quoted in [
        key.to_string(),
        "refresh/token+0123456789".to_string(),
        "refresh%2Ftoken%2B0123456789".to_string(),
        "refresh%2ftoken%2b0123456789".to_string(),
        "PATCH /tokens/old-token-abcdefghijkl".to_string(),
        base64::engine::general_purpose::STANDARD.encode(format!("me@example.com:{key}")),
    ] {
        // The service's numeric code with its message, and a code of text.
        let numeric = json!({"success": false, "message": format!("cannot rotate: {quoted}"),
                             "error": 90, "data": null})
        .to_string();
        let text = json!({"success": false, "message": "no", "error": quoted}).to_string();
        for body in [&numeric, &text] {
            for parse in [super::parse_token_record, super::parse_token_response] {
                let e = parse(&ok(body), REC_NOW, &long_policy(), &scrub).unwrap_err();
                let all = format!("{e} {:?} {:?}", e.provider_error, e.raw_body);
                assert!(!scrub.reveals(&all), "{quoted}: {all}");
                assert!(!all.contains("0123456789"), "{quoted}: {all}");
            }
        }
        let e =
            super::parse_token_record(&ok(&numeric), REC_NOW, &long_policy(), &scrub).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidResponse);
        assert!(
            e.description.contains("cannot rotate: ") && e.description.ends_with(REDACTED),
            "{e}"
        );
    }
}

/// A token API's list of live tokens, bare or wrapped; anything else is no list.
#[test]
fn listed_tokens_of_a_token_api() {
    let names = |status: u16, body: &str| {
        listed_tokens(&resp(status, &[], body))
            .map(|l| l.iter().map(|s| s.expose().to_string()).collect::<Vec<_>>())
    };
    let bare =
        r#"[{"token":"t1","expireAt":"2030-01-01T00:00:00Z"},{"token":"t2"},{"name":"no token"}]"#;
    assert_eq!(names(200, bare), Some(vec!["t1".into(), "t2".into()]));
    let wrapped = r#"{"success":true,"message":"","error":null,"data":[{"token":"t3"}]}"#;
    assert_eq!(names(200, wrapped), Some(vec!["t3".into()]));
    assert_eq!(names(200, "[]"), Some(vec![]));
    for (status, body) in [
        (401, bare),
        (200, "{}"),
        (200, "nope"),
        (200, r#"{"data":{}}"#),
    ] {
        assert_eq!(names(status, body), None, "{status} {body}");
    }
}
