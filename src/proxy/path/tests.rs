//! The path rules: joining under `api_base`, splitting request URLs, refused segments.

use super::*;

fn base() -> Url {
    Url::parse("https://api.example.com/v1/").unwrap()
}

#[test]
fn joins_under_base() {
    let u = upstream_url(&base(), "rmas/42", Some("a=1&b=%20")).unwrap();
    assert_eq!(u.as_str(), "https://api.example.com/v1/rmas/42?a=1&b=%20");
    assert_eq!(
        upstream_url(&base(), "", None).unwrap().as_str(),
        "https://api.example.com/v1/"
    );
    // An absolute URL in the path stays a path under the base.
    let u = upstream_url(&base(), "https://evil.example/x", None).unwrap();
    assert_eq!(u.host_str(), Some("api.example.com"));
    assert!(u.path().starts_with("/v1/"));
    let u = upstream_url(&base(), "//evil.example/x", None).unwrap();
    assert_eq!(u.host_str(), Some("api.example.com"));
}

#[test]
fn request_urls_split_like_the_url_parser() {
    for url in [
        "https://gateway.test/optoro/v1/items?page=2&x=%20",
        "https://gateway.test/optoro/v1/items",
        "https://gateway.test/",
        "https://gateway.test",
        "https://gateway.test?q=1",
        "http://127.0.0.1:8787/optoro/a%2Fb/c?",
        "https://gateway.test/optoro/x?a=1#frag",
        "https://gateway.test/optoro/%3F/x?q=%23",
        "https://user:pw@gateway.test:8443/p/q;r?s=t",
    ] {
        let parsed = Url::parse(url).unwrap();
        let (path, query) = split_request_url(parsed.as_str());
        assert_eq!(path, parsed.path(), "{url}");
        assert_eq!(query, parsed.query(), "{url}");
    }
}

#[test]
fn refuses_escapes() {
    for p in [
        "..",
        "../admin",
        "a/../../x",
        "./x",
        "%2e%2e/x",
        "%2E%2e/x",
        ".%2e/x",
        "%2e",
        "...",
        ".. ",
        "%2e%2e%20/x",
        // Encoded more than once, however it is spelled.
        "%252e%252e/x",
        "%25",
        "a%25b",
        "%%32e%%32e/x",
        "%%32%65/x",
        // Separators, encoded or look-alike.
        "a%2f..%2fb",
        "a%2Fb",
        "a%5cb",
        "a\\..\\b",
        "a\u{FF0F}b",
        "%EF%BC%8F",
        "a%E2%88%95b",
        // Dot look-alikes and overlong UTF-8.
        "\u{FF0E}\u{FF0E}/x",
        "%EF%BC%8E%EF%BC%8E/x",
        "%E2%80%A4%E2%80%A4",
        "%C0%AE%C0%AE/x",
        "%C0%AE",
        "%E0%80%AE",
        "a%FFb",
        // Path parameters and control characters.
        "..;/admin",
        "%2e%2e;x/y",
        ".;/x",
        "..%00/x",
        "a%0a/b",
        "a%7fb",
        "a%c2%85b",
        // A raw `?` or `#` would end the path early when the URL is parsed (the query
        // has its own argument), leaving what is before it unchecked as a segment.
        "%EF%BC%8E%EF%BC%8E?x",
        "\0%EF%BC%8E%EF%BC%8E?x",
        "a?b",
        "a#b",
        "..#",
    ] {
        assert_eq!(
            upstream_url(&base(), p, None),
            Err(PathError::Unsafe),
            "{p}"
        );
    }
}

#[test]
fn lets_ordinary_segments_through() {
    for (p, path) in [
        ("rmas/42", "/v1/rmas/42"),
        ("a.b/c..d/.e/f.", "/v1/a.b/c..d/.e/f."),
        ("100%", "/v1/100%"),
        ("a%20b", "/v1/a%20b"),
        ("caf%C3%A9", "/v1/caf%C3%A9"),
        ("x;y=1", "/v1/x;y=1"),
        ("%41%42", "/v1/%41%42"),
    ] {
        let u = upstream_url(&base(), p, None).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(u.path(), path, "{p}");
    }
}
