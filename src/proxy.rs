//! Proxy rules: where a proxied request may go and which headers cross the gateway.

use crate::flow::TokenOrigin;
use std::collections::BTreeMap;
use url::Url;

/// Why a proxied path was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `.`/`..` segment (literal, percent-encoded, or with `;` parameters), an encoded slash
    /// or backslash, or a control character.
    #[error("path contains a dot segment, an encoded separator or a control character")]
    DotSegment,
    /// The result would leave the configured `api_base`.
    #[error("path escapes the provider's api_base")]
    Escapes,
}

/// The upstream URL for `rest` (the raw, still percent-encoded path after `/{provider}/`) and
/// the raw `query`, under `api_base` (whose path ends with `/`).
///
/// Rejects any segment that decodes to `.` or `..` (RFC 3986 §5.2.4 would remove them and climb
/// out of the base), any encoded `/` or `\` (which some servers decode into separators), and a
/// literal `\`. The joined URL is then re-parsed and must keep the base's origin and path prefix.
pub fn upstream_url(api_base: &Url, rest: &str, query: Option<&str>) -> Result<Url, PathError> {
    for seg in rest.split('/') {
        let lower = seg.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || seg.contains('\\') {
            return Err(PathError::DotSegment);
        }
        let decoded = percent_decode(seg);
        // `..;x` is `..` to servers that strip path parameters (Tomcat, Jetty, Spring); a NUL
        // or other control character ends a segment early in others.
        let bare = decoded.split(';').next().unwrap_or("");
        if bare == "." || bare == ".." || decoded.chars().any(char::is_control) {
            return Err(PathError::DotSegment);
        }
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

fn percent_decode(s: &str) -> String {
    // Decode repeatedly so double-encoding (`%252e`) cannot hide a dot.
    let mut cur = s.to_string();
    for _ in 0..3 {
        let next = percent_encoding::percent_decode_str(&cur)
            .decode_utf8_lossy()
            .into_owned();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
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

/// Whether a caller's request header is forwarded upstream. Never the caller's credentials
/// (`Authorization`, `Cookie`), never hop-by-hop headers or those `Connection` names, and not
/// headers the edge sets itself (`Host`, `Content-Length`, `cf-*`, `x-forwarded-*`,
/// `x-real-ip`).
pub fn forward_request_header(name: &str, connection: Option<&str>) -> bool {
    let n = name.to_ascii_lowercase();
    !(HOP_BY_HOP.contains(&n.as_str())
        || matches!(
            n.as_str(),
            "authorization" | "cookie" | "host" | "content-length" | "x-real-ip"
        )
        || n.starts_with("cf-")
        || n.starts_with("x-forwarded-")
        || connection_listed(&n, connection))
}

/// Whether an upstream response header is returned to the caller: not hop-by-hop, and no
/// `Set-Cookie` (the provider's cookies are for the gateway's upstream session, not callers).
pub fn forward_response_header(name: &str, connection: Option<&str>) -> bool {
    let n = name.to_ascii_lowercase();
    !(HOP_BY_HOP.contains(&n.as_str())
        || n == "set-cookie"
        || n == "content-length"
        || connection_listed(&n, connection))
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
/// ([`forward_response_header`]) and a `Server-Timing` saying where the provider token came
/// from.
pub fn downstream_headers(
    upstream: Vec<(String, String)>,
    origin: TokenOrigin,
) -> Vec<(String, String)> {
    let connection = connection_of(&upstream);
    let mut out: Vec<(String, String)> = upstream
        .into_iter()
        .filter(|(k, _)| forward_response_header(k, connection.as_deref()))
        .collect();
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
    fn refuses_escapes() {
        for p in [
            "..",
            "../admin",
            "a/../../x",
            "./x",
            "%2e%2e/x",
            "%2E%2e/x",
            ".%2e/x",
            "%252e%252e/x",
            "a%2f..%2fb",
            "a%5cb",
            "a\\..\\b",
            "%2e",
            "..;/admin",
            "%2e%2e;x/y",
            ".;/x",
            "..%00/x",
            "a%0a/b",
        ] {
            assert_eq!(
                upstream_url(&base(), p, None),
                Err(PathError::DotSegment),
                "{p}"
            );
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
        assert!(!forward_response_header("set-cookie", None));
        assert!(forward_response_header("content-type", None));
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
        let got = downstream_headers(
            pairs(&[
                ("content-type", "application/json"),
                ("set-cookie", "upstream=1"),
                ("transfer-encoding", "chunked"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("content-length", "10"),
                ("etag", "\"v1\""),
            ]),
            TokenOrigin::Store,
        );
        assert_eq!(
            got,
            pairs(&[
                ("content-type", "application/json"),
                ("etag", "\"v1\""),
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
