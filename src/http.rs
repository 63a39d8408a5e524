//! Plain HTTP request/response values exchanged between the core and the IO layers.

use std::fmt;

/// The largest token-endpoint response body a shell reads: a token endpoint that floods must
/// not make an isolate or a process buffer without bound. Real responses are well under 8 KiB.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// Whether a request to `request_url` (as the platform serialises it) arrived in a way
/// credentials may travel: over https, or over plain http to a loopback host (127.0.0.1,
/// `localhost`, `::1`: the same machine, for local development). RFC 6749 §2.3.1 and RFC 6750
/// §5.3 require TLS for client secrets and bearer tokens; a request that sent one in the clear
/// is refused rather than served, so the caller learns its credential crossed the network.
pub fn secure_transport(request_url: &str) -> bool {
    // The common cases without parsing the URL again: https, and the platform's serialisation
    // of a loopback host (local development, and the benchmarks).
    request_url.starts_with("https://")
        || plain_loopback(request_url)
        || url::Url::parse(request_url)
            .is_ok_and(|u| u.scheme() == "https" || crate::config::is_loopback(&u))
}

/// Whether `url` is `http://` and a loopback host as the URL parser serialises it, then an
/// optional port of digits, then the path's `/`. Anything else (userinfo, another spelling)
/// is left to the parser: in `http://127.0.0.1:1@example.com/` the host is `example.com`,
/// because the authority runs to the first `/` and an `@` in it ends the userinfo.
fn plain_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|host| {
        rest.strip_prefix(host).is_some_and(|after| {
            let path = match after.strip_prefix(':') {
                Some(port) => {
                    let path = port.trim_start_matches(|c: char| c.is_ascii_digit());
                    let digits = &port[..port.len() - path.len()];
                    // A port the parser takes: none (the default) or at most 65535.
                    if !digits.is_empty() && digits.parse::<u16>().is_err() {
                        return false;
                    }
                    path
                }
                None => after,
            };
            path.starts_with('/')
        })
    })
}

/// A transport-level failure: no HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// No answer within the timeout.
    Timeout,
    /// Connection, DNS or TLS failure (or a response too large to read); the message holds no
    /// secret.
    Network(String),
}

/// An outgoing HTTP request, fully built by the core.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, upper case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header names (as sent) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Redacted: header values, the body and the URL's path and query (a token API's URLs name a
/// token) may hold credentials, so only their shape prints, and the URL up to its host.
impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        let after_scheme = self.url.find("://").map_or(0, |i| i + 3);
        let origin_end = self.url[after_scheme..]
            .find(['/', '?', '#'])
            .map_or(self.url.len(), |i| after_scheme + i);
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("origin", &&self.url[..origin_end])
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A received HTTP response with its whole body.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

#[cfg(test)]
impl HttpResponse {
    /// A response for tests: `status`, header pairs, a text body.
    pub(crate) fn fixture(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Redacted: a token response body holds the token.
impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut of [`secure_transport`] decides as the URL parser does.
    #[test]
    fn the_loopback_shortcut_agrees_with_the_parser() {
        let parsed = |u: &str| {
            url::Url::parse(u)
                .is_ok_and(|u| u.scheme() == "https" || crate::config::is_loopback(&u))
        };
        for url in [
            "http://127.0.0.1:8787/oauth/token",
            "http://127.0.0.1/",
            "http://localhost:1/x?y",
            "http://[::1]:8787/optoro/x",
            "http://[::1]/",
            "http://127.0.0.1:1@example.com/",
            "http://127.0.0.1:@example.com/",
            "http://127.0.0.1@example.com/",
            "http://localhost.example.com/",
            "http://localhost:80x/",
            "http://127.0.0.10/",
            "http://127.0.0.1:8787",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:65535/",
            "http://127.0.0.1:/",
            "http://[::1]:8787@[::2]/",
            "http://example.com/127.0.0.1/",
        ] {
            assert_eq!(secure_transport(url), parsed(url), "{url}");
            if plain_loopback(url) {
                assert!(parsed(url), "{url}");
            }
        }
        assert!(plain_loopback("http://127.0.0.1:8787/oauth/token"));
        assert!(!plain_loopback("http://127.0.0.1:1@example.com/"));
        assert!(!secure_transport("http://127.0.0.1:1@example.com/"));
    }
}
