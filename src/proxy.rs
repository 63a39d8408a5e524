//! Proxy rules: where a proxied request may go and which headers cross the gateway.

use crate::flow::TokenOrigin;
use crate::secret::Secret;
use std::collections::BTreeMap;
use url::Url;

/// Why a proxied path was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A segment that some server could read as a step up or a separator: see
    /// [`upstream_url`].
    #[error(
        "path has a segment that decodes to a dot segment, a separator or a control character, \
         or is encoded more than once"
    )]
    Unsafe,
    /// The result would leave the configured `api_base`.
    #[error("path escapes the provider's api_base")]
    Escapes,
}

/// Characters that servers normalise to `.` (Unicode compatibility forms: FULLWIDTH FULL STOP,
/// ONE DOT LEADER, SMALL FULL STOP) or to a separator (FULLWIDTH SOLIDUS and REVERSE SOLIDUS).
const DOT_LOOKALIKES: &[char] = &['\u{FF0E}', '\u{2024}', '\u{FE52}'];
const SEPARATOR_LOOKALIKES: &[char] = &['\u{FF0F}', '\u{FF3C}', '\u{2215}', '\u{29F8}'];

/// The upstream URL for `rest` (the raw, still percent-encoded path after `/{provider}/`) and
/// the raw `query`, under `api_base` (whose path ends with `/`).
///
/// Each segment is percent-decoded and refused if it was encoded more than once (an encoded
/// `%`, or an escape a second decoding reveals: a server that decodes twice would see what
/// this check did not; so one decoding is the fixpoint of every segment let through),
/// if it is not UTF-8 (overlong forms such as `%C0%AE` are how some servers are tricked into
/// a `.`), or if it holds a `/` or `\` (or a Unicode look-alike of either), a NUL or other
/// control character, or is a dot segment: only dots (or their look-alikes) before any `;`
/// path parameters (`..;x` is `..` to Tomcat, Jetty and Spring) and trailing spaces. RFC 3986
/// §5.2.4 would remove a dot segment and climb out of the base. The joined URL is then
/// re-parsed and must keep the base's origin and path prefix.
pub fn upstream_url(api_base: &Url, rest: &str, query: Option<&str>) -> Result<Url, PathError> {
    // `rest` is a path: a raw `?` or `#` would move what follows out of it when the joined URL
    // is parsed, past the segment checks below.
    if rest.contains(['?', '#']) {
        return Err(PathError::Unsafe);
    }
    for seg in rest.split('/') {
        check_segment(seg)?;
    }
    let mut s = format!(
        "{}{}",
        api_base.as_str().split(['?', '#']).next().unwrap_or(""),
        rest.trim_start_matches('/')
    );
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        s.push('?');
        s.push_str(q);
    }
    let url = Url::parse(&s).map_err(|_| PathError::Escapes)?;
    if url.origin() != api_base.origin() || !url.path().starts_with(api_base.path()) {
        return Err(PathError::Escapes);
    }
    Ok(url)
}

/// The path (still percent-encoded, from its first `/`) and the query (without `?`) of a
/// request URL as the platform serialises it (WHATWG URL: a special scheme, `//`, the host, a
/// path that is never empty, `?` and `#` encoded everywhere but where they start the query and
/// the fragment) — read off the string, without parsing it again.
pub fn split_request_url(url: &str) -> (&str, Option<&str>) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let rest = rest.split('#').next().unwrap_or("");
    let Some(slash) = rest.find(['/', '?']) else {
        return ("/", None);
    };
    let target = &rest[slash..];
    match target.split_once('?') {
        Some((path, query)) => (if path.is_empty() { "/" } else { path }, Some(query)),
        None => (target, None),
    }
}

fn check_segment(seg: &str) -> Result<(), PathError> {
    // An encoded `%` (`%25`), or an escape that only a second decoding reveals (`%%32e` is
    // `%2e` once decoded): a server that decodes twice would see what this check did not.
    let once: Vec<u8> = percent_encoding::percent_decode_str(seg).collect();
    let twice: Vec<u8> = percent_encoding::percent_decode(&once).collect();
    if seg.to_ascii_lowercase().contains("%25") || twice != once {
        return Err(PathError::Unsafe);
    }
    let cur = once;
    let decoded = std::str::from_utf8(&cur).map_err(|_| PathError::Unsafe)?;
    let separator = |c: char| c == '/' || c == '\\' || SEPARATOR_LOOKALIKES.contains(&c);
    if decoded.chars().any(|c| separator(c) || c.is_control()) {
        return Err(PathError::Unsafe);
    }
    let bare = decoded
        .split(';')
        .next()
        .unwrap_or("")
        .trim_end_matches(' ');
    let dot = |c: char| c == '.' || DOT_LOOKALIKES.contains(&c);
    if !bare.is_empty() && bare.chars().all(dot) {
        return Err(PathError::Unsafe);
    }
    Ok(())
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the proxy's own credentials.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn connection_listed(name: &str, connection: Option<&str>) -> bool {
    connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case(name)))
}

/// Request headers that carry the caller's identity or address as seen by some proxy
/// (`Forwarded`, RFC 7239, and its unofficial spellings), or that make some servers route or
/// dispatch differently from the request line (the `X-HTTP-Method-Override` family, the
/// rewrite headers of IIS and some frameworks).
const SPOOFABLE_REQUEST: &[&str] = &[
    "forwarded",
    "true-client-ip",
    "x-real-ip",
    "x-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether a caller's request header is forwarded upstream. Never the caller's credentials
/// (`Authorization`, `Cookie`), never hop-by-hop headers or those `Connection` names, not
/// headers the edge sets itself (`Host`, `Content-Length`, `cf-*`, `x-forwarded-*`) and none of
/// the headers a server could take as the client's address or as another method or URL.
pub fn forward_request_header(name: &str, connection: Option<&str>) -> bool {
    let n = name.to_ascii_lowercase();
    !(HOP_BY_HOP.contains(&n.as_str())
        || matches!(
            n.as_str(),
            "authorization" | "cookie" | "host" | "content-length"
        )
        || SPOOFABLE_REQUEST.contains(&n.as_str())
        || n.starts_with("cf-")
        || n.starts_with("x-forwarded-")
        || connection_listed(&n, connection))
}

/// Whether an upstream response header is returned to the caller: not hop-by-hop, and none
/// that would act on the gateway's origin in the caller's browser rather than on the
/// provider's: `Set-Cookie` (the provider's cookies are for the gateway's upstream session),
/// `Alt-Svc`, `Strict-Transport-Security`, `Clear-Site-Data` and CORS (`Access-Control-*`).
pub fn forward_response_header(name: &str, connection: Option<&str>) -> bool {
    let n = name.to_ascii_lowercase();
    !(HOP_BY_HOP.contains(&n.as_str())
        || matches!(
            n.as_str(),
            "set-cookie"
                | "content-length"
                | "alt-svc"
                | "strict-transport-security"
                | "clear-site-data"
        )
        || n.starts_with("access-control-")
        || connection_listed(&n, connection))
}

/// The caller's `Cache-Control`: the upstream's, never publicly cacheable. `public` and
/// `s-maxage` (shared caches) are dropped, and `private` is added unless `private` or
/// `no-store` is there already: a response fetched with the gateway's token is not for
/// shared caches (RFC 9111 §5.2.2.7).
pub fn private_cache_control(upstream: Option<&str>) -> String {
    let kept: Vec<&str> = upstream
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| {
            let name = d.split('=').next().unwrap_or("").trim();
            !(name.eq_ignore_ascii_case("public") || name.eq_ignore_ascii_case("s-maxage"))
        })
        .collect();
    let restricted = kept.iter().any(|d| {
        let name = d.split('=').next().unwrap_or("").trim();
        name.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store")
    });
    let mut out = if restricted { vec![] } else { vec!["private"] };
    out.extend(kept);
    out.join(", ")
}

/// The headers of the upstream request: the caller's headers that may cross
/// ([`forward_request_header`]), then the provider's `api_headers`, which replace any caller
/// header of the same name. The provider token is added by whoever sends the request.
pub fn upstream_headers(
    incoming: Vec<(String, String)>,
    api_headers: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let connection = connection_of(&incoming);
    let mut out: Vec<(String, String)> = incoming
        .iter()
        .filter(|(k, _)| forward_request_header(k, connection.as_deref()))
        .filter(|(k, _)| !api_headers.keys().any(|a| a.eq_ignore_ascii_case(k)))
        .cloned()
        .collect();
    out.extend(api_headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// The headers of the caller's response: the upstream response's headers that may cross
/// ([`forward_response_header`]) except any whose value holds `provider_token` (an API that
/// echoes the bearer must not hand it to the caller), a private `Cache-Control`
/// ([`private_cache_control`]), and a `Server-Timing` saying where the provider token came from.
pub fn downstream_headers(
    upstream: Vec<(String, String)>,
    origin: TokenOrigin,
    provider_token: &Secret,
) -> Vec<(String, String)> {
    let connection = connection_of(&upstream);
    let token = provider_token.expose();
    let mut cache_control: Option<String> = None;
    let mut out: Vec<(String, String)> = Vec::with_capacity(upstream.len() + 2);
    for (k, v) in upstream {
        if k.eq_ignore_ascii_case("cache-control") {
            cache_control = Some(match cache_control {
                Some(c) => format!("{c}, {v}"),
                None => v,
            });
        } else if forward_response_header(&k, connection.as_deref())
            && (token.is_empty() || !v.contains(token))
        {
            out.push((k, v));
        }
    }
    out.push((
        "Cache-Control".into(),
        private_cache_control(cache_control.as_deref()),
    ));
    out.push(("Server-Timing".into(), server_timing(origin)));
    out
}

fn connection_of(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .map(|(_, v)| v.clone())
}

/// The `Server-Timing` value (W3C Server Timing) of a proxied response: the token's origin and,
/// after an exchange, how long it took.
pub fn server_timing(origin: TokenOrigin) -> String {
    match origin {
        TokenOrigin::Exchange { ms } => format!("token;desc=\"exchange\", exchange;dur={ms}"),
        other => format!("token;desc=\"{}\"", other.as_str()),
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn header_rules() {
        for h in [
            "Authorization",
            "cookie",
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

    #[test]
    fn upstream_headers_filter_and_merge() {
        let api: BTreeMap<String, String> =
            [("X-Optiturn-Api-Version".to_string(), "1".to_string())].into();
        let got = upstream_headers(
            pairs(&[
                ("accept", "application/json"),
                ("authorization", "Bearer tg_caller"),
                ("cookie", "session=1"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
                ("cf-connecting-ip", "203.0.113.9"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-optiturn-api-version", "99"),
                ("x-request-id", "abc"),
            ]),
            &api,
        );
        assert_eq!(
            got,
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
            pairs(&[
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
            ]),
            TokenOrigin::Store,
            &token,
        );
        assert_eq!(
            got,
            pairs(&[
                ("content-type", "application/json"),
                ("etag", "\"v1\""),
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
}
