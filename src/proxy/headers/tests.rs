//! The header rules: what crosses the gateway in each direction, `Cache-Control`,
//! `Server-Timing`.

use super::*;
use url::Url;

#[test]
fn header_rules() {
    for h in [
        "Authorization",
        "cookie",
        "DPoP",
        "Connection",
        "Transfer-Encoding",
        "Host",
        "CF-Connecting-IP",
        "X-Forwarded-For",
        "Proxy-Authorization",
        "TE",
        "Upgrade",
        "Forwarded",
        "True-Client-IP",
        "X-Real-IP",
        "X-Original-URL",
        "x-rewrite-url",
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        assert!(!forward_request_header(h, None), "{h}");
    }
    for h in [
        "Accept",
        "Content-Type",
        "X-Optiturn-Api-Version",
        "If-None-Match",
    ] {
        assert!(forward_request_header(h, None), "{h}");
    }
    assert!(!forward_request_header(
        "X-Custom",
        Some("keep-alive, x-custom")
    ));
    for h in [
        "set-cookie",
        "Alt-Svc",
        "Strict-Transport-Security",
        "Clear-Site-Data",
        "Access-Control-Allow-Origin",
        "access-control-allow-credentials",
    ] {
        assert!(!forward_response_header(h, None), "{h}");
    }
    for h in [
        "content-type",
        "etag",
        "retry-after",
        "x-ratelimit-remaining",
    ] {
        assert!(forward_response_header(h, None), "{h}");
    }
}

#[test]
fn cache_control_is_never_public() {
    for (upstream, want) in [
        (None, "private"),
        (Some(""), "private"),
        (Some("public, max-age=60"), "private, max-age=60"),
        (Some("max-age=60, s-maxage=600"), "private, max-age=60"),
        (Some("PUBLIC"), "private"),
        (Some("private, max-age=5"), "private, max-age=5"),
        (Some("no-store"), "no-store"),
        (Some("no-cache, public"), "private, no-cache"),
    ] {
        assert_eq!(private_cache_control(upstream), want, "{upstream:?}");
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Headers as the functions under test return them, owned, to compare with [`pairs`].
fn owned<K: AsRef<str>, V: AsRef<str>>(v: &[(K, V)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
        .collect()
}

#[test]
fn upstream_headers_filter_and_merge() {
    let api: BTreeMap<String, String> =
        [("X-Optiturn-Api-Version".to_string(), "1".to_string())].into();
    let got = upstream_headers(
        &[
            ("accept", "application/json"),
            ("authorization", "Bearer tg_caller"),
            ("cookie", "session=1"),
            ("dpop", "eyJ0eXAiOiJkcG9wK2p3dCJ9.the-callers-own.proof"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("cf-connecting-ip", "203.0.113.9"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-optiturn-api-version", "99"),
            ("x-request-id", "abc"),
        ],
        &api,
    );
    assert_eq!(
        owned(&got),
        pairs(&[
            ("accept", "application/json"),
            ("x-request-id", "abc"),
            ("X-Optiturn-Api-Version", "1"),
        ])
    );
}

#[test]
fn downstream_headers_filter_and_time() {
    let token = Secret::new("provider-token-XYZ");
    let got = downstream_headers(
        &[
            ("content-type", "application/json"),
            ("set-cookie", "upstream=1"),
            ("transfer-encoding", "chunked"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("content-length", "10"),
            ("etag", "\"v1\""),
            ("cache-control", "public"),
            ("cache-control", "max-age=9"),
            ("x-debug-auth", "Bearer provider-token-XYZ"),
            ("x-echo", "token=provider-token-XYZ;"),
            ("location", "/v1/rmas/2"),
        ],
        TokenOrigin::Store,
        &token,
        &redirect(),
    );
    assert_eq!(
        owned(&got),
        pairs(&[
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("location", "https://gateway.example/optoro/rmas/2"),
            ("Cache-Control", "private, max-age=9"),
            ("Server-Timing", "token;desc=\"kv\""),
        ])
    );
    assert_eq!(server_timing(TokenOrigin::Memory), "token;desc=\"memory\"");
    assert_eq!(
        server_timing(TokenOrigin::Exchange { ms: 12 }),
        "token;desc=\"exchange\", exchange;dur=12"
    );
}

fn redirect() -> RedirectContext<'static> {
    use std::sync::OnceLock;
    static URLS: OnceLock<(Url, Url)> = OnceLock::new();
    let (base, upstream) = URLS.get_or_init(|| {
        (
            Url::parse("https://api.example.com/v1/").unwrap(),
            Url::parse("https://api.example.com/v1/rmas/1").unwrap(),
        )
    });
    RedirectContext {
        api_base: base,
        upstream: upstream.as_str(),
        request_url: "https://gateway.example/optoro/rmas/1",
        provider: "optoro",
    }
}

/// The provider token echoed in a header in an encoded form (written here by hand) is dropped
/// like the raw form; headers that merely share characters with it are kept.
#[test]
fn the_provider_token_is_dropped_in_every_spelling() {
    let token = Secret::new("pt/abc+def=ghi_0123456789");
    let echoes = [
        "Bearer pt/abc+def=ghi_0123456789",
        "token=pt%2Fabc%2Bdef%3Dghi_0123456789",
        "token=pt%2fabc%2bdef%3dghi_0123456789",
        "t=pt%2Fabc%2Bdef%3Dghi_0123456789&x=1",
        // base64 of the token, standalone and inside a longer encoded text (Basic-like).
        "cHQvYWJjK2RlZj1naGlfMDEyMzQ1Njc4OQ==",
        "Basic dXNlcjpwdC9hYmMrZGVmPWdoaV8wMTIzNDU2Nzg5",
        // base64url, unpadded.
        "cHQvYWJjK2RlZj1naGlfMDEyMzQ1Njc4OQ",
        // JSON-escaped.
        r#"{"t":"pt\/abc+def=ghi_0123456789"}"#,
    ];
    for echo in echoes {
        let got = downstream_headers(
            &[("x-echo", echo), ("x-ok", "pt/abc")],
            TokenOrigin::Memory,
            &token,
            &redirect(),
        );
        assert_eq!(owned(&got)[0], pairs(&[("x-ok", "pt/abc")])[0], "{echo}");
        assert_eq!(got.len(), 3, "{echo}: {got:?}");
    }
}
