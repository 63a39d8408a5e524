//! Which headers cross the gateway: the caller's request headers going upstream, the upstream
//! response's headers coming back, and the headers the gateway adds itself (`Cache-Control`,
//! `Server-Timing`).

use super::location::{rewrite_location, RedirectContext};
use crate::flow::TokenOrigin;
use crate::scrub::spellings;
use crate::secret::Secret;
use std::borrow::Cow;
use std::collections::BTreeMap;

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
/// (`Authorization`, `Cookie`, a `DPoP` proof: the gateway sends its own), never hop-by-hop headers or those `Connection` names, not
/// headers the edge sets itself (`Host`, `Content-Length`, `cf-*`, `x-forwarded-*`) and none of
/// the headers a server could take as the client's address or as another method or URL.
pub fn forward_request_header(name: &str, connection: Option<&str>) -> bool {
    !(is_any(name, HOP_BY_HOP)
        || is_any(
            name,
            &["authorization", "cookie", "dpop", "host", "content-length"],
        )
        || is_any(name, SPOOFABLE_REQUEST)
        || has_prefix(name, "cf-")
        || has_prefix(name, "x-forwarded-")
        || connection_listed(name, connection))
}

/// Whether `name` is one of `list` (lower-case), in any case — without a lower-cased copy.
fn is_any(name: &str, list: &[&str]) -> bool {
    list.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether `name` starts with `prefix` (lower-case), in any case.
fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether an upstream response header is returned to the caller: not hop-by-hop, and none
/// that would act on the gateway's origin in the caller's browser rather than on the
/// provider's: `Set-Cookie` (the provider's cookies are for the gateway's upstream session),
/// `Alt-Svc`, `Strict-Transport-Security`, `Clear-Site-Data` and CORS (`Access-Control-*`).
pub fn forward_response_header(name: &str, connection: Option<&str>) -> bool {
    !(is_any(name, HOP_BY_HOP)
        || is_any(
            name,
            &[
                "set-cookie",
                "content-length",
                "alt-svc",
                "strict-transport-security",
                "clear-site-data",
            ],
        )
        || has_prefix(name, "access-control-")
        || connection_listed(name, connection))
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
/// header of the same name. The provider token is added by whoever sends the request. Nothing
/// is copied: the result borrows from `incoming` and `api_headers`.
pub fn upstream_headers<'a>(
    incoming: &[(&'a str, &'a str)],
    api_headers: &'a BTreeMap<String, String>,
) -> Vec<(&'a str, &'a str)> {
    let connection = connection_of(incoming);
    let mut out: Vec<(&str, &str)> = incoming
        .iter()
        .copied()
        .filter(|(k, _)| forward_request_header(k, connection))
        .filter(|(k, _)| !api_headers.keys().any(|a| a.eq_ignore_ascii_case(k)))
        .collect();
    out.extend(api_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    out
}

/// The headers of the caller's response: the upstream response's headers that may cross
/// ([`forward_response_header`]) except any whose value holds the provider token in any
/// spelling ([`crate::scrub::spellings`]: as is, percent-encoded, base64…; an API that echoes
/// the bearer must not hand it to the caller), a `Location` rewritten for the caller
/// ([`rewrite_location`], in the context `redirect`), a private `Cache-Control`
/// ([`private_cache_control`]), and a `Server-Timing` saying where the provider token came from.
/// Only the values the gateway writes are new strings; the others borrow from `upstream`.
pub fn downstream_headers<'a>(
    upstream: &[(&'a str, &'a str)],
    origin: TokenOrigin,
    provider_token: &Secret,
    redirect: &RedirectContext<'_>,
) -> Vec<(&'a str, Cow<'a, str>)> {
    let connection = connection_of(upstream);
    let echo = TokenEcho::new(provider_token.expose());
    let mut cache_control: Option<Cow<'a, str>> = None;
    let mut out: Vec<(&'a str, Cow<'a, str>)> = Vec::with_capacity(upstream.len() + 2);
    for &(k, v) in upstream {
        if k.eq_ignore_ascii_case("cache-control") {
            cache_control = Some(match cache_control {
                Some(c) => Cow::Owned(format!("{c}, {v}")),
                None => Cow::Borrowed(v),
            });
        } else if forward_response_header(k, connection) && !echo.found_in(v) {
            if k.eq_ignore_ascii_case("location") {
                if let Some(to) = rewrite_location(v, redirect) {
                    out.push((k, Cow::Owned(to)));
                }
            } else {
                out.push((k, Cow::Borrowed(v)));
            }
        }
    }
    out.push((
        "Cache-Control",
        Cow::Owned(private_cache_control(cache_control.as_deref())),
    ));
    out.push(("Server-Timing", Cow::Owned(server_timing(origin))));
    out
}

/// Finds the provider token in header values. Every spelling of a value is at least as long as
/// the value, so a header value shorter than the token cannot hold one, and the spellings are
/// computed only for a value long enough to (which typical API headers are not).
struct TokenEcho<'a> {
    token: &'a str,
    spellings: std::cell::OnceCell<Vec<String>>,
}

impl<'a> TokenEcho<'a> {
    fn new(token: &'a str) -> Self {
        TokenEcho {
            token,
            spellings: std::cell::OnceCell::new(),
        }
    }

    fn found_in(&self, value: &str) -> bool {
        if self.token.is_empty() || value.len() < self.token.len() {
            return false;
        }
        value.contains(self.token)
            || self
                .spellings
                .get_or_init(|| spellings(self.token))
                .iter()
                .any(|f| value.contains(f.as_str()))
    }
}

fn connection_of<'a>(headers: &[(&str, &'a str)]) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .map(|&(_, v)| v)
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
mod tests;
