//! Which request methods the proxy forwards: every method verbatim (WebDAV's `PROPFIND`
//! included), except those that could hand the provider token back to the caller or open a
//! tunnel.

/// Methods never forwarded: `TRACE` and `TRACK` echo the request — with the provider token in
/// it — back to the caller (RFC 9110 §9.3.8); `CONNECT` opens a tunnel (RFC 9110 §9.3.6).
const NEVER_FORWARDED: &[&str] = &["TRACE", "TRACK", "CONNECT"];

/// The `Allow` header of the 405 that refuses one of them.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Whether a request with `method` is forwarded (methods are case-sensitive, RFC 9110 §9.1,
/// but a server that upper-cases them would read `trace` as `TRACE`: the check ignores case).
pub fn forwards_method(method: &str) -> bool {
    !NEVER_FORWARDED
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        for m in ["TRACE", "TRACK", "CONNECT", "trace", "Connect"] {
            assert!(!forwards_method(m), "{m}");
        }
        for m in [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "MKCOL",
            "QUERY", "TRACEX",
        ] {
            assert!(forwards_method(m), "{m}");
        }
    }
}
