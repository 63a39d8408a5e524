//! The endpoint URL policy, through the keys that use it (`token_url`, `api_base`, `tokenUrl`)
//! and alone (`parse_endpoint`).

use super::*;

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
