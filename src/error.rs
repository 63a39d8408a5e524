//! The typed error of token acquisition, shared by the Worker and the npm package.

use std::fmt;

/// A stable, machine-readable error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The provider refused the client credentials (RFC 6749 §5.2 `invalid_client`, or 401).
    InvalidClient,
    /// The provider refused the request (400/403/422 and other RFC 6749 §5.2 codes).
    InvalidRequest,
    /// The provider rate-limited us (429) and retries ran out.
    RateLimited,
    /// The provider failed (5xx) and retries ran out.
    ServerError,
    /// The provider answered something that is not a usable token response.
    InvalidResponse,
    /// A call timed out.
    Timeout,
    /// A call failed below HTTP.
    Network,
    /// The configuration is invalid.
    Config,
    /// The provider is not being called right now: it asked for a pause (a long `Retry-After`)
    /// or kept failing (see [`crate::pressure`]); `retry_after_ms` says for how long.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::InvalidClient,
        ErrorCode::InvalidRequest,
        ErrorCode::RateLimited,
        ErrorCode::ServerError,
        ErrorCode::InvalidResponse,
        ErrorCode::Timeout,
        ErrorCode::Network,
        ErrorCode::Config,
        ErrorCode::TemporarilyUnavailable,
    ];

    /// The code spelled `s` ([`ErrorCode::as_str`]).
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The snake_case spelling used in JSON bodies and JS errors.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ServerError => "server_error",
            ErrorCode::InvalidResponse => "invalid_response",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Network => "network",
            ErrorCode::Config => "config",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// Why a token could not be obtained. Holds no secret and no token. `raw_body` keeps the first
/// bytes of an unparseable or error response for diagnosis; it is not part of `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenError {
    /// The error code.
    pub code: ErrorCode,
    /// The provider's HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The provider's own error code (`error` of RFC 6749 §5.2, or the `message` of Optoro's
    /// validation body: `docs/providers.md#optoro-errors-and-retries`).
    pub provider_error: Option<String>,
    /// Human-readable description.
    pub description: String,
    /// The provider's `Retry-After`, milliseconds, when it sent one.
    pub retry_after_ms: Option<u64>,
    /// Up to 512 bytes of the provider's response body.
    pub raw_body: Option<String>,
}

impl TokenError {
    /// An error with a code and description only.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        TokenError {
            code,
            status: None,
            provider_error: None,
            description: description.into(),
            retry_after_ms: None,
            raw_body: None,
        }
    }

    /// Whether trying again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::RateLimited
                | ErrorCode::ServerError
                | ErrorCode::Timeout
                | ErrorCode::Network
                | ErrorCode::TemporarilyUnavailable
        )
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code.as_str())?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if let Some(p) = &self.provider_error {
            write!(f, " [{p}]")?;
        }
        write!(f, ": {}", self.description)
    }
}

/// Like `Display`, without `raw_body`.
impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenError({self})")
    }
}

impl std::error::Error for TokenError {}
