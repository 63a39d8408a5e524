//! The API's `Location` header on its way back to the caller, treated the way reverse proxies
//! treat it (nginx's `proxy_redirect`, Apache's `ProxyPassReverse`): rewritten so that it can
//! never send the caller's HTTP client — with its request body and its tokengate bearer — to a
//! gateway route the API chose.
//!
//! A `Location` is a URI reference resolved against the URL of the request it answers (RFC 9110
//! §10.2.2, RFC 3986 §5). Passed back unchanged, a relative one (`/optoro/rmas/1/cancel`) would
//! be resolved by the caller against the *gateway's* URL: a hostile or broken API could answer
//! `307` and have a caller re-send a POST to another provider's route on the gateway.

use url::Url;

/// Where the response being rewritten came from and went to.
#[derive(Clone, Copy, Debug)]
pub struct RedirectContext<'a> {
    /// The provider's `api_base`: what lies under it has a gateway route.
    pub api_base: &'a Url,
    /// The upstream request's URL ([`super::upstream_url`]), which a relative `Location` is
    /// resolved against (parsed only when a response has a `Location`).
    pub upstream: &'a str,
    /// The caller's request URL (the gateway's own origin).
    pub request_url: &'a str,
    /// The provider id: the first segment of the gateway's route for it.
    pub provider: &'a str,
}

/// The `Location` the caller gets for the API's `location`, or `None` to drop the header:
///
/// - resolved against the upstream request's URL; one that does not resolve, or is not http(s),
///   is dropped;
/// - one inside the provider's `api_base` (same origin, under its path) becomes the gateway's
///   route for it: `{gateway origin}/{provider}/{rest}`, query and fragment kept;
/// - any other is given as the absolute URL it resolved to — on the API's origin when it was
///   relative — so it can never resolve to a gateway route;
/// - an absolute one naming the gateway's own origin (outside `api_base`, so not a route the
///   API may point a caller at) is dropped.
pub fn rewrite_location(location: &str, cx: &RedirectContext<'_>) -> Option<String> {
    let resolved = Url::parse(cx.upstream).ok()?.join(location.trim()).ok()?;
    if !matches!(resolved.scheme(), "http" | "https") {
        return None;
    }
    let gateway = Url::parse(cx.request_url).ok()?;
    let base_path = cx.api_base.path();
    if resolved.origin() == cx.api_base.origin() && resolved.path().starts_with(base_path) {
        let rest = &resolved.path()[base_path.len()..];
        let mut out = format!(
            "{}/{}/{rest}",
            gateway.origin().ascii_serialization(),
            cx.provider
        );
        if let Some(q) = resolved.query() {
            out.push('?');
            out.push_str(q);
        }
        if let Some(f) = resolved.fragment() {
            out.push('#');
            out.push_str(f);
        }
        return Some(out);
    }
    if resolved.origin() == gateway.origin() {
        return None;
    }
    Some(resolved.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx<'a>(api_base: &'a Url, upstream: &'a Url) -> RedirectContext<'a> {
        RedirectContext {
            api_base,
            upstream: upstream.as_str(),
            request_url: "https://gateway.example/optoro/v1/rmas/1?x=1",
            provider: "optoro",
        }
    }

    #[test]
    fn locations() {
        let base = Url::parse("https://api.optiturn.com/v1/").unwrap();
        let upstream = Url::parse("https://api.optiturn.com/v1/rmas/1?x=1").unwrap();
        let cx = cx(&base, &upstream);
        for (location, want) in [
            // Inside api_base: the gateway's route, query and fragment kept.
            (
                "https://api.optiturn.com/v1/rmas/2?page=3#top",
                Some("https://gateway.example/optoro/rmas/2?page=3#top"),
            ),
            ("/v1/rmas/2", Some("https://gateway.example/optoro/rmas/2")),
            ("2", Some("https://gateway.example/optoro/rmas/2")),
            ("../items", Some("https://gateway.example/optoro/items")),
            (
                "?page=2",
                Some("https://gateway.example/optoro/rmas/1?page=2"),
            ),
            (
                "//api.optiturn.com/v1/x",
                Some("https://gateway.example/optoro/x"),
            ),
            (
                "https://api.optiturn.com/v1/",
                Some("https://gateway.example/optoro/"),
            ),
            // The attack: a path that would be a gateway route if resolved against the gateway.
            (
                "/optoro/rmas/1/cancel",
                Some("https://api.optiturn.com/optoro/rmas/1/cancel"),
            ),
            (
                "/partner/bookings",
                Some("https://api.optiturn.com/partner/bookings"),
            ),
            (
                "../../partner/x",
                Some("https://api.optiturn.com/partner/x"),
            ),
            // Elsewhere on the API's origin, or another origin: absolute, as resolved.
            ("/v2/rmas", Some("https://api.optiturn.com/v2/rmas")),
            (
                "https://login.optiturn.com/sso",
                Some("https://login.optiturn.com/sso"),
            ),
            (
                "http://api.optiturn.com/v1/x",
                Some("http://api.optiturn.com/v1/x"),
            ),
            // The gateway itself, named outright: dropped.
            ("https://gateway.example/partner/bookings", None),
            ("//gateway.example/optoro/x", None),
            // Not http(s), or not a URI reference at all: dropped.
            ("javascript:alert(1)", None),
            ("data:text/html,x", None),
            ("http://[::1", None),
        ] {
            assert_eq!(
                rewrite_location(location, &cx).as_deref(),
                want,
                "{location}"
            );
        }
    }

    #[test]
    fn the_route_keeps_the_api_base_path_out() {
        let base = Url::parse("http://127.0.0.1:8788/optoro/api/").unwrap();
        let upstream = Url::parse("http://127.0.0.1:8788/optoro/api/rmas").unwrap();
        let cx = RedirectContext {
            api_base: &base,
            upstream: upstream.as_str(),
            request_url: "http://127.0.0.1:8787/optoro/rmas",
            provider: "optoro",
        };
        assert_eq!(
            rewrite_location("/optoro/api/rmas/9", &cx).as_deref(),
            Some("http://127.0.0.1:8787/optoro/rmas/9")
        );
        // A sibling of the base path is not under it.
        assert_eq!(
            rewrite_location("/optoro/apix", &cx).as_deref(),
            Some("http://127.0.0.1:8788/optoro/apix")
        );
    }
}
