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
    // (The common case without parsing the URL again.)
    request_url.starts_with("https://")
        || url::Url::parse(request_url)
            .is_ok_and(|u| u.scheme() == "https" || crate::config::is_loopback(&u))
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
