//! Golden, byte-exact token requests for each documented provider's dialect (`docs/providers.md`).

use super::*;
use crate::config::ProviderConfig;
use serde_json::json;

/// Token settings from a wrangler.toml-style (snake_case) provider entry.
fn provider(id: &str, mut entry: Value) -> TokenSettings {
    let obj = entry.as_object_mut().unwrap();
    obj.entry("api_base")
        .or_insert_with(|| json!("https://api.example.com/v1/"));
    obj.entry("client_secret_name")
        .or_insert_with(|| json!("CLIENT_SECRET"));
    ProviderConfig::parse(id, &entry).unwrap().token
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn body_str(req: &HttpRequest) -> &str {
    std::str::from_utf8(&req.body).unwrap()
}

/// Optoro (Auth API): JSON body with exactly grant_type, client_id and client_secret
/// (`additionalProperties: false`), with the sample credentials of Optoro's API guide
/// (`docs/providers.md#optoro-token-request`).
#[test]
fn optoro_json_body_golden() {
    let s = provider(
        "optoro",
        json!({
            "token_url": "https://auth.optiturn.com/oauth/token",
            "client_id": "f2449833d49b9646a701d2423bef8ec9a49",
            "auth_style": "json_body",
            "api_headers": {"X-Optiturn-Api-Version": "1"},
        }),
    );
    let secret = Secret::new("1d98065fc19939c10d26909f9aa58d2b5ef");
    let req = build_token_request(&s, &secret);
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://auth.optiturn.com/oauth/token");
    assert_eq!(
        req.headers,
        headers(&[
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ])
    );
    assert_eq!(
        body_str(&req),
        r#"{"client_id":"f2449833d49b9646a701d2423bef8ec9a49","client_secret":"1d98065fc19939c10d26909f9aa58d2b5ef","grant_type":"client_credentials"}"#
    );
    // Exactly the three keys of the schema, nothing else.
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["client_id", "client_secret", "grant_type"]);
    assert!(req.header("authorization").is_none());
}

/// Optimum Automotive: client_id, client_secret and grant_type as form parameters
/// (`docs/providers.md#optimum-token-request`).
#[test]
fn optimum_client_secret_post_golden() {
    let s = provider(
        "optimum",
        json!({
            "token_url": "https://identityserver.optimum-automotive.com/connect/token",
            "client_id": "optimum-client",
            "auth_style": "client_secret_post",
        }),
    );
    let req = build_token_request(&s, &Secret::new("pa ss&word=+/é"));
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.url,
        "https://identityserver.optimum-automotive.com/connect/token"
    );
    assert_eq!(
        req.headers,
        headers(&[
            ("Accept", "application/json"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ])
    );
    assert_eq!(
        body_str(&req),
        "grant_type=client_credentials&client_id=optimum-client&client_secret=pa+ss%26word%3D%2B%2F%C3%A9"
    );
    // The form decodes back to exactly the documented parameters.
    let params: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    assert_eq!(
        params,
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), "optimum-client".to_string()),
            ("client_secret".to_string(), "pa ss&word=+/é".to_string()),
        ]
    );
    assert!(req.header("authorization").is_none());
}

/// The partner API: `Accept: application/json`, `Content-Type: application/json`, JSON body
/// `{grant_type, client_id, client_secret}` (`docs/providers.md#partner-token-request`).
#[test]
fn partner_json_body_golden() {
    let s = provider(
        "partner",
        json!({
            "token_url": "https://partner.example.com/api/oauth/token",
            "client_id": "9b1e82a7-0a59-4e7e-add5-b9ffa37aade1",
            "auth_style": "json_body",
        }),
    );
    let req = build_token_request(&s, &Secret::new("pt\"secret\\1"));
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://partner.example.com/api/oauth/token");
    assert_eq!(req.header("accept"), Some("application/json"));
    assert_eq!(
        req.headers,
        headers(&[
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ])
    );
    // JSON string escaping of the secret.
    assert_eq!(
        body_str(&req),
        r#"{"client_id":"9b1e82a7-0a59-4e7e-add5-b9ffa37aade1","client_secret":"pt\"secret\\1","grant_type":"client_credentials"}"#
    );
}

/// RFC 6749 §2.3.1: id and secret are each application/x-www-form-urlencoded, then
/// `id:secret` is base64-encoded.
///
/// Hand computation:
/// - id `svc:büro 1`      → `svc%3Ab%C3%BCro+1` (`:` → %3A, ü → UTF-8 C3 BC, space → `+`)
/// - secret `p+ss w%rd:é` → `p%2Bss+w%25rd%3A%C3%A9`
/// - base64(`svc%3Ab%C3%BCro+1:p%2Bss+w%25rd%3A%C3%A9`)
///   = `c3ZjJTNBYiVDMyVCQ3JvKzE6cCUyQnNzK3clMjVyZCUzQSVDMyVBOQ==`
#[test]
fn client_secret_basic_form_encodes_before_base64() {
    let s = provider(
        "basic",
        json!({
            "token_url": "https://auth.example.com/oauth2/token?tenant=a",
            "client_id": "svc:büro 1",
        }),
    );
    assert_eq!(s.auth_style, AuthStyle::ClientSecretBasic, "the default");
    let req = build_token_request(&s, &Secret::new("p+ss w%rd:é"));
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://auth.example.com/oauth2/token?tenant=a");
    assert_eq!(
        req.headers,
        headers(&[
            ("Accept", "application/json"),
            (
                "Authorization",
                "Basic c3ZjJTNBYiVDMyVCQ3JvKzE6cCUyQnNzK3clMjVyZCUzQSVDMyVBOQ=="
            ),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ])
    );
    let b64 = req
        .header("Authorization")
        .unwrap()
        .strip_prefix("Basic ")
        .unwrap();
    assert_eq!(
        STANDARD.decode(b64).unwrap(),
        b"svc%3Ab%C3%BCro+1:p%2Bss+w%25rd%3A%C3%A9"
    );
    // Not the naive (unencoded) pair.
    assert_ne!(b64, STANDARD.encode("svc:büro 1:p+ss w%rd:é"));
    // Neither the id nor the secret travel in the body.
    assert_eq!(body_str(&req), "grant_type=client_credentials");
}

#[test]
fn form_placement_of_scope_audience_resource_params_and_headers() {
    let s = provider(
        "optimum",
        json!({
            "token_url": "https://id.example.com/token",
            "client_id": "cid",
            "auth_style": "client_secret_post",
            "scope": "read write",
            "audience": "https://api.example.com",
            "resource": "urn:r 1",
            "token_params": {"tenant": "t&1", "account": "7"},
            "token_headers": {"X-Tenant": "t1", "X-Api-Key": "k"},
        }),
    );
    let req = build_token_request(&s, &Secret::new("sec"));
    assert_eq!(
        body_str(&req),
        "grant_type=client_credentials&client_id=cid&client_secret=sec&scope=read+write\
         &audience=https%3A%2F%2Fapi.example.com&resource=urn%3Ar+1&account=7&tenant=t%261"
    );
    // Configured headers follow the gateway's own, sorted by name.
    assert_eq!(
        req.headers,
        headers(&[
            ("Accept", "application/json"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Api-Key", "k"),
            ("X-Tenant", "t1"),
        ])
    );
}

#[test]
fn basic_placement_of_optional_params() {
    let s = provider(
        "basic",
        json!({
            "token_url": "https://id.example.com/token",
            "client_id": "cid",
            "scope": "a b",
            "resource": "https://r.example/",
            "token_params": {"x": "1"},
            "token_headers": {"X-Trace": "on"},
        }),
    );
    let req = build_token_request(&s, &Secret::new("sec"));
    assert_eq!(
        body_str(&req),
        "grant_type=client_credentials&scope=a+b&resource=https%3A%2F%2Fr.example%2F&x=1"
    );
    assert_eq!(
        req.headers,
        headers(&[
            ("Accept", "application/json"),
            (
                "Authorization",
                &format!("Basic {}", STANDARD.encode("cid:sec"))
            ),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Trace", "on"),
        ])
    );
}

#[test]
fn json_placement_of_scope_audience_resource_params_and_headers() {
    let s = provider(
        "partner",
        json!({
            "token_url": "https://id.example.com/token",
            "client_id": "cid",
            "auth_style": "json_body",
            "scope": "bookings:create bookings:delete",
            "audience": "aud",
            "resource": "res",
            "token_params": {"partner_id": "f311", "zone": "eu"},
            "token_headers": {"X-Partner": "p"},
        }),
    );
    let req = build_token_request(&s, &Secret::new("sec"));
    assert_eq!(
        body_str(&req),
        r#"{"audience":"aud","client_id":"cid","client_secret":"sec","grant_type":"client_credentials","partner_id":"f311","resource":"res","scope":"bookings:create bookings:delete","zone":"eu"}"#
    );
    assert_eq!(
        req.headers,
        headers(&[
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("X-Partner", "p"),
        ])
    );
}

#[test]
fn secret_only_in_authorization_or_body_never_in_debug() {
    let secret = "Zz9-very-secret-value-Qq";
    for style in ["client_secret_basic", "client_secret_post", "json_body"] {
        let s = provider(
            "p",
            json!({
                "token_url": "https://id.example.com/token",
                "client_id": "cid",
                "auth_style": style,
                "token_headers": {"X-Extra": "v"},
            }),
        );
        let req = build_token_request(&s, &Secret::new(secret));
        let dbg = format!("{req:?}");
        assert!(!dbg.contains(secret), "{style}: {dbg}");
        assert!(
            !dbg.contains(&STANDARD.encode(format!("cid:{secret}"))),
            "{style}"
        );
        // Debug still says what it is: the method and where to (not the path, which names a
        // token in a token API's URLs).
        assert!(
            dbg.contains("POST") && dbg.contains("\"https://id.example.com\""),
            "{style}: {dbg}"
        );
        let body = body_str(&req);
        let in_body = body.contains(secret);
        let in_auth = req
            .header("authorization")
            .is_some_and(|a| a == format!("Basic {}", STANDARD.encode(format!("cid:{secret}"))));
        match style {
            "client_secret_basic" => assert!(in_auth && !in_body, "{style}"),
            _ => assert!(in_body && !in_auth, "{style}"),
        }
        for (name, value) in &req.headers {
            if !name.eq_ignore_ascii_case("authorization") {
                assert!(!value.contains(secret), "{style}: header {name}");
            }
        }
        assert!(!req.url.contains(secret), "{style}");
    }
}

/// openapi.com Oauth v2 (`docs/providers.md#openapi-token-api`): the e-mail and API key go
/// into HTTP Basic exactly as RFC 7617 §2 encodes them — `+`, `@` and `:` in the password
/// unchanged, not form-encoded first — and `token_body` is the JSON body.
fn openapi() -> TokenSettings {
    provider(
        "openapi",
        json!({
            "token_url": "https://test.oauth.openapi.com/tokens",
            "client_id": "dev+tokengate@example.com",
            "auth_style": "token_api",
            "token_body": {
                "scopes": ["GET:company.openapi.com/IT-start", "*:sms.openapi.com/"],
                "ttl": 86400,
                "name": "tokengate",
                "limits": {"total": 1000},
            },
            "token_headers": {"X-Trace": "t1"},
        }),
    )
}

#[test]
fn openapi_create_request() {
    let secret = Secret::new("k3y+/=:x");
    let req = build_token_request(&openapi(), &secret);
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://test.oauth.openapi.com/tokens");
    let basic = format!(
        "Basic {}",
        STANDARD.encode("dev+tokengate@example.com:k3y+/=:x")
    );
    assert_eq!(
        req.headers,
        headers(&[
            ("Accept", "application/json"),
            ("Authorization", &basic),
            ("Content-Type", "application/json"),
            ("X-Trace", "t1"),
        ])
    );
    assert_eq!(
        body_str(&req),
        r#"{"limits":{"total":1000},"name":"tokengate","scopes":["GET:company.openapi.com/IT-start","*:sms.openapi.com/"],"ttl":86400}"#
    );
}

fn record_token(token: &str, refresh: Option<&str>) -> Token {
    Token {
        access_token: Secret::new(token),
        token_type: "Bearer".into(),
        issued_at_ms: 0,
        expires_at_ms: 1,
        scope: None,
        refresh_token: refresh.map(Secret::new),
    }
}

#[test]
fn openapi_rotate_and_revoke_requests() {
    let s = openapi();
    let secret = Secret::new("k3y+/=:x");
    let t = record_token("tok/en?#", Some("refresh-1"));
    let rotate = rotate_request(&s, &t).unwrap();
    assert_eq!(rotate.method, "PATCH");
    // The token is one percent-encoded path segment: it cannot add a segment or a query.
    assert_eq!(
        rotate.url,
        "https://test.oauth.openapi.com/tokens/tok%2Fen%3F%23"
    );
    assert_eq!(rotate.header("authorization"), Some("Bearer refresh-1"));
    assert_eq!(rotate.header("content-type"), Some("application/json"));
    assert_eq!(body_str(&rotate), r#"{"ttl":86400}"#);

    let revoke = revoke_request(&s, &secret, &t).unwrap();
    assert_eq!(revoke.method, "DELETE");
    assert_eq!(revoke.url, rotate.url);
    let basic = format!(
        "Basic {}",
        STANDARD.encode("dev+tokengate@example.com:k3y+/=:x")
    );
    assert_eq!(
        revoke.headers,
        headers(&[
            ("Accept", "application/json"),
            ("Authorization", &basic),
            ("X-Trace", "t1"),
        ])
    );
    assert!(revoke.body.is_empty());
    let dbg = format!("{rotate:?} {revoke:?}");
    assert!(!dbg.contains("tok") && !dbg.contains("refresh-1"), "{dbg}");
    // The token as the URLs spell it, and its refresh token, are among what is scrubbed.
    let scrub = crate::scrub::Scrubber::none().with_token(&t);
    for spelling in ["tok/en?#", "tok%2Fen%3F%23", "refresh-1"] {
        assert_eq!(scrub.scrub(spelling), crate::scrub::REDACTED, "{spelling}");
    }
    // A token minted in an answer that cannot be read is still found, to be removed.
    let minted = |body: &str| {
        crate::response::minted_token(&HttpResponse {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        })
    };
    assert_eq!(
        minted(r#"{"token":"abc","expireAt":"soon"}"#)
            .unwrap()
            .access_token
            .expose(),
        "abc"
    );
    assert_eq!(
        minted(r#"{"success":true,"data":{"token":"abc"}}"#)
            .unwrap()
            .expires_at_ms,
        u64::MAX
    );
    assert!(minted(r#"{"token":"a b"}"#).is_none());
    assert!(minted(r#"{"data":{"token":7}}"#).is_none());
    assert!(minted("not json").is_none());

    // Without a ttl the rotation body is `{}`; a trailing slash on the collection is not
    // doubled.
    let mut bare = openapi();
    bare.token_url = "https://oauth.openapi.com/tokens/".parse().unwrap();
    bare.token_body.as_mut().unwrap().remove("ttl");
    let r = rotate_request(&bare, &record_token("abc", Some("r"))).unwrap();
    assert_eq!(r.url, "https://oauth.openapi.com/tokens/abc");
    assert_eq!(body_str(&r), "{}");

    // A token of only dots would be a dot segment however it is encoded: not addressed.
    for dots in [".", ".."] {
        assert!(rotate_request(&s, &record_token(dots, Some("r"))).is_none());
        assert!(revoke_request(&s, &secret, &record_token(dots, None)).is_none());
    }
    assert!(rotate_request(&s, &record_token("...a", Some("r"))).is_some());

    // No refresh token, no rotation; the OAuth dialects neither rotate nor revoke.
    assert!(rotate_request(&s, &record_token("abc", None)).is_none());
    let oauth = provider(
        "optoro",
        json!({"token_url": "https://auth.example.com/token", "client_id": "c", "auth_style": "json_body"}),
    );
    assert!(rotate_request(&oauth, &t).is_none());
    assert!(revoke_request(&oauth, &secret, &t).is_none());
}

#[test]
fn a_token_api_lists_its_tokens_with_basic() {
    let s = TokenSettings::parse_camel(
        &serde_json::json!({"tokenUrl": "https://oauth.example.com/tokens", "clientId": "me+x@example.com",
            "authStyle": "token_api", "tokenBody": {"scopes": ["GET:a.example/x"], "ttl": 60}}),
        &[],
    )
    .unwrap();
    let secret = Secret::new("k:ey");
    let r = list_request(&s, &secret).unwrap();
    assert_eq!(
        (r.method.as_str(), r.url.as_str()),
        ("GET", "https://oauth.example.com/tokens")
    );
    assert!(r.body.is_empty());
    let basic = base64::engine::general_purpose::STANDARD.encode("me+x@example.com:k:ey");
    assert!(r
        .headers
        .contains(&("Authorization".to_string(), format!("Basic {basic}"))));
    let oauth = TokenSettings::parse_camel(
        &serde_json::json!({"tokenUrl": "https://auth.example.com/token", "clientId": "c"}),
        &[],
    )
    .unwrap();
    assert!(list_request(&oauth, &secret).is_none());
}
