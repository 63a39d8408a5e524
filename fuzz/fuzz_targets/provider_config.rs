//! Fuzz target `provider_config`: the gateway's configuration parsers.
//!
//! Feeds the input bytes, as text, to `tokengate::callers::CallerRegistry::parse` (the
//! `TOKENGATE_CLIENTS` secret, which parses its own JSON) and, when they are JSON (anything else
//! is skipped), as a value to `tokengate::config::parse_providers` (`TOKENGATE_PROVIDERS`),
//! `ProviderConfig::parse` (each entry under its key, and the whole value as one entry),
//! `TokenSettings::parse_camel` (the npm `TokenClient` config, with and without a
//! `clientSecret`) and `ExpiryPolicy::parse_camel`.
//!
//! Invariants asserted (a panic is a finding):
//! - nothing panics, whatever the bytes;
//! - `parse_providers` accepts exactly when every entry parses alone, with the same result;
//! - every accepted provider has a valid id, an `api_base` that is https (http only for
//!   loopback) without credentials, query or fragment and whose path ends with `/`, a secret
//!   name of `[A-Za-z0-9_]`, `api_headers` that are valid, allowed and free of CR/LF/NUL, and
//!   token settings within the documented ranges (token URL rules, non-reserved
//!   `token_params`, expiry 1 ..= 31 622 400 s with default ≤ max, retry 1 ..= 10 attempts,
//!   base ≤ max ≤ 300 000 ms, timeout 1 ..= 300 000 ms); a `token_body` exactly with
//!   `auth_style = "token_api"`, holding at least one `METHOD:host/path` scope and a `ttl` of
//!   at most a year, and then no `scope`, `audience`, `resource` or `token_params`;
//! - the token request of accepted settings builds, goes to `token_url`, and sends the secret
//!   only in its body or `Authorization`; a token API's rotation and removal requests go one
//!   percent-encoded segment below `token_url`, whatever the token's characters;
//! - an accepted `api_base` takes a plain proxied path (`upstream_url(api_base, "x", "a=1")`
//!   is `Ok` and stays under it);
//! - the `clientSecret` of an npm config never appears in the error about that config;
//! - every accepted caller has a 1–128 character id without control characters, at least one
//!   valid scope (`tokengate::scope`) and a token TTL of 60 ..= 86 400 s, and a token can be issued
//!   to it whose record names it and its registration and expires after exactly that TTL, and
//!   whose tag verifies.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;
use tokengate::caller_tokens::{issue_token, verify_tag};
use tokengate::callers::CallerRegistry;
use tokengate::config::{parse_providers, validate_provider_id, ProviderConfig, RESERVED_IDS};
use tokengate::expiry::ExpiryPolicy;
use tokengate::keys::Keys;
use tokengate::scope::Scope;
use tokengate::secret::Secret;
use tokengate::TokenSettings;
use url::Url;

const NOW_MS: u64 = 1_700_000_000_000;
/// Stands for an npm config's client secret; inputs that already contain it are skipped for
/// that check.
const SENTINEL: &str = "Zq9-fuzz-client-secret-7Yw";

fuzz_target!(|data: &[u8]| fuzz_one(data));

fn fuzz_one(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_callers(text);
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };

    let all = parse_providers(&value);
    if let Some(map) = value.as_object() {
        let one_by_one: Result<Vec<ProviderConfig>, _> = map
            .iter()
            .map(|(id, entry)| ProviderConfig::parse(id, entry))
            .collect();
        match (&all, one_by_one) {
            (Ok(a), Ok(b)) => assert_eq!(a, &b),
            (Err(_), Ok(b)) => assert!(b.is_empty(), "entries parse alone but not together"),
            (Ok(_), Err(e)) => panic!("parse_providers accepted an entry that fails alone: {e}"),
            (Err(_), Err(_)) => {}
        }
    } else {
        assert!(all.is_err(), "a non-object was accepted");
    }
    match &all {
        Ok(providers) => providers.iter().for_each(check_provider),
        Err(e) => drop(e.to_string()),
    }
    match ProviderConfig::parse("optoro", &value) {
        Ok(p) => check_provider(&p),
        Err(e) => assert_eq!(e.provider.as_deref(), Some("optoro"), "{e}"),
    }

    match TokenSettings::parse_camel(&value, &[]) {
        Ok(s) => check_settings(&s),
        Err(e) => drop(e.to_string()),
    }
    if let Some(map) = value.as_object() {
        if !String::from_utf8_lossy(data).contains(SENTINEL) {
            let mut with_secret = map.clone();
            with_secret.insert("clientSecret".into(), Value::String(SENTINEL.into()));
            match TokenSettings::parse_camel(&Value::Object(with_secret), &["clientSecret"]) {
                Ok(s) => {
                    check_settings(&s);
                    assert!(!format!("{s:?}").contains(SENTINEL));
                }
                Err(e) => {
                    let shown = format!("{e} {e:?}");
                    assert!(!shown.contains(SENTINEL), "clientSecret in {shown}");
                }
            }
        }
    }
    match ExpiryPolicy::parse_camel(&value) {
        Ok(p) => check_expiry(&p),
        Err(e) => drop(e.to_string()),
    }
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::derive(&[7; 32]))
}

fn check_callers(text: &str) {
    let keys = keys();
    let Ok(registry) = CallerRegistry::parse("TOKENGATE_CLIENTS", text, keys) else {
        return;
    };
    for caller in registry.iter() {
        let id = &caller.client_id;
        assert!(!id.is_empty() && id.len() <= 128, "client id {id:?}");
        assert!(!id.chars().any(char::is_control), "client id {id:?}");
        assert!(!caller.scopes.is_empty());
        for s in &caller.scopes {
            assert!(Scope::parse(s).is_ok(), "scope {s:?}");
        }
        assert!((60..=86_400).contains(&caller.token_ttl_s));
        assert_eq!(registry.get(id), Some(caller));
        assert!(registry
            .authenticate(id, &Secret::new("not the secret"))
            .is_none_or(|c| c.client_id == *id));
        let (issued, record) = issue_token(caller, None, [7; 32], NOW_MS, keys).expect("issue");
        assert_eq!(record.client_id, *id);
        assert_eq!(record.registration, caller.registration);
        assert_eq!(record.issued_at_ms, NOW_MS);
        assert_eq!(record.expires_at_ms, NOW_MS + caller.token_ttl_s * 1000);
        assert_eq!(record.scopes, caller.scopes);
        assert!(
            verify_tag(&issued.access_token, keys),
            "issued token fails its tag"
        );
    }
}

fn check_endpoint(url: &Url, what: &str) {
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    assert!(
        url.scheme() == "https" || (url.scheme() == "http" && loopback),
        "{what} {url}"
    );
    assert!(
        url.host_str().is_some_and(|h| !h.is_empty()),
        "{what} {url}"
    );
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{what} {url}"
    );
    assert!(url.fragment().is_none(), "{what} {url}");
}

fn check_headers(headers: &std::collections::BTreeMap<String, String>, deny: &[&str]) {
    for (name, value) in headers {
        assert!(!name.is_empty(), "empty header name");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
            "header name {name:?}"
        );
        assert!(
            !deny.iter().any(|d| name.eq_ignore_ascii_case(d)),
            "header {name:?}"
        );
        assert!(
            !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "header value {value:?}"
        );
    }
}

fn check_provider(p: &ProviderConfig) {
    assert!(validate_provider_id(&p.id).is_ok(), "id {:?}", p.id);
    assert!(!RESERVED_IDS.contains(&p.id.as_str()));
    check_endpoint(&p.api_base, "api_base");
    assert!(p.api_base.path().ends_with('/'), "api_base {}", p.api_base);
    assert!(p.api_base.query().is_none(), "api_base {}", p.api_base);
    assert!(
        p.client_secret_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "client_secret_name {:?}",
        p.client_secret_name
    );
    check_headers(
        &p.api_headers,
        &[
            "authorization",
            "host",
            "cookie",
            "content-length",
            "connection",
            "transfer-encoding",
        ],
    );
    check_settings(&p.token);
    match tokengate::proxy::upstream_url(&p.api_base, "x", Some("a=1")) {
        Ok(s) => {
            let u = url::Url::parse(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(u.origin(), p.api_base.origin());
            assert!(
                u.path().starts_with(p.api_base.path()),
                "{u} under {}",
                p.api_base
            );
        }
        Err(e) => panic!("accepted api_base {} refuses a plain path: {e}", p.api_base),
    }
    let _ = format!("{p:?}");
}

fn check_settings(s: &TokenSettings) {
    check_endpoint(&s.token_url, "token_url");
    assert!(!s.client_id.trim().is_empty());
    for key in [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "audience",
        "resource",
    ] {
        assert!(!s.token_params.contains_key(key), "token_params {key}");
    }
    check_headers(
        &s.token_headers,
        &[
            "accept",
            "authorization",
            "content-type",
            "content-length",
            "host",
        ],
    );
    check_expiry(&s.expiry);
    let r = &s.retry;
    assert!((1..=10).contains(&r.max_attempts), "{r:?}");
    assert!(
        r.base_delay_ms <= r.max_delay_ms && r.max_delay_ms <= 300_000,
        "{r:?}"
    );
    assert!((1..=300_000).contains(&s.timeout_ms));
    check_requests(s);
}

fn check_requests(s: &TokenSettings) {
    use tokengate::config::AuthStyle;
    use tokengate::dialect::{build_token_request, revoke_request, rotate_request};
    let api = s.auth_style == AuthStyle::TokenApi;
    assert_eq!(s.token_body.is_some(), api);
    if let Some(body) = &s.token_body {
        let scopes = body["scopes"].as_array().expect("scopes");
        assert!(!scopes.is_empty());
        for sc in scopes {
            let (m, rest) = sc
                .as_str()
                .and_then(|x| x.split_once(':'))
                .expect("METHOD:");
            assert!(!m.is_empty() && rest.contains('/'), "{sc}");
        }
        if let Some(ttl) = body.get("ttl") {
            assert!((1..=31_536_000).contains(&ttl.as_u64().expect("ttl")));
        }
        assert!(s.scope.is_none() && s.audience.is_none() && s.resource.is_none());
        assert!(s.token_params.is_empty());
    }
    let secret = Secret::new("fuzz-secret-Zq9");
    let req = build_token_request(s, &secret);
    assert_eq!(req.url, s.token_url.as_str());
    assert_eq!(req.method, "POST");
    for (name, value) in &req.headers {
        if !name.eq_ignore_ascii_case("authorization") {
            assert!(!value.contains("fuzz-secret-Zq9"), "{name}");
        }
    }
    let token = tokengate::response::Token {
        access_token: Secret::new("a/b?c#d%2F.."),
        token_type: "Bearer".into(),
        issued_at_ms: 0,
        expires_at_ms: 1,
        scope: None,
        refresh_token: Some(Secret::new("r")),
    };
    let rotate = rotate_request(s, &token);
    let revoke = revoke_request(s, &secret, &token);
    assert_eq!(rotate.is_some(), api);
    assert_eq!(revoke.is_some(), api);
    for r in rotate.iter().chain(revoke.iter()) {
        let base = s.token_url.as_str().trim_end_matches('/');
        assert_eq!(r.url, format!("{base}/a%2Fb%3Fc%23d%252F.."));
    }
}

fn check_expiry(e: &ExpiryPolicy) {
    assert!(e.refresh_skew_s <= 86_400, "{e:?}");
    assert!((1..=31_622_400).contains(&e.max_lifetime_s), "{e:?}");
    assert!(
        (1..=e.max_lifetime_s).contains(&e.default_lifetime_s),
        "{e:?}"
    );
}
