//! Every error the gateway answers with, and its HTTP form: status, JSON body and headers. The
//! Worker turns a [`GatewayError`] into a response in one place; nothing here names a secret or
//! a token.
//!
//! Bodies are `{"error": code, "error_description": text}` (RFC 6749 §5.2, RFC 6750 §3), except
//! the token endpoint's validation errors ([`crate::grant::GrantError`]) and configuration
//! errors, which add the provider and key at fault.

use crate::api_call::CallError;
use crate::config::ConfigError;
use crate::error::{ErrorCode, TokenError};
use crate::grant::GrantError;
use crate::limits::TokenEndpointRefusal;
use crate::managed::AdminError;
use crate::proxy::PathError;
use serde_json::{json, Value};

/// The `WWW-Authenticate` realm of the gateway's bearer challenges (RFC 6750 §3).
const REALM: &str = "tokengate";

/// A gateway error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayError {
    /// 404: no such route or provider.
    NotFound(String),
    /// 401 `invalid_token`: no caller token, or an unknown, expired or revoked one.
    InvalidToken(&'static str),
    /// 403 `insufficient_scope`: the caller's token does not grant `provider`.
    InsufficientScope {
        /// The provider asked for.
        provider: String,
    },
    /// 400: a proxied path the gateway refuses.
    Path(PathError),
    /// 405: a method the proxy never forwards (TRACE, TRACK, CONNECT).
    MethodNotForwarded(String),
    /// 405: `/oauth/token` with a method other than POST.
    TokenEndpointMethod,
    /// 413: a proxied request body over `max_body_bytes`.
    BodyTooLarge {
        /// The limit, bytes.
        limit: u64,
    },
    /// 413: a token request body over the token endpoint's limit.
    GrantTooLarge,
    /// 503: the gateway cannot serve the request right now (Workers KV failed); the text says
    /// what failed.
    Unavailable(&'static str),
    /// 500: the configuration is invalid.
    Config(ConfigError),
    /// 502 or 504: the provider's token endpoint or API failed (`timeout_ms`: the provider's
    /// timeout, for the message).
    Upstream {
        /// The provider id.
        provider: String,
        /// What failed.
        error: Box<CallError>,
        /// The provider's `timeout_ms`.
        timeout_ms: u64,
    },
    /// 502: the API answered with a status no HTTP response to the caller can carry (below
    /// 200 or above 599, e.g. 999).
    UpstreamStatus {
        /// The provider id.
        provider: String,
        /// The status it sent.
        status: u16,
    },
    /// 429: `POST /oauth/token` refused the request before looking at it (its address failed
    /// too often) or before issuing (its caller asked too often): see
    /// [`crate::authority::address`] and [`crate::authority::client::count_issue`].
    TokenEndpointLimit(TokenEndpointRefusal),
    /// 400: a request carrying credentials (a caller token) over plain http from anywhere but
    /// loopback, refused before anything is sent.
    PlainHttp,
    /// `POST /oauth/token` refused the request.
    Grant(GrantError),
    /// 500 `server_error` (RFC 6749 §4.1.2.1): the platform failed while the gateway built its
    /// answer (the Worker logs what it threw).
    Internal,
    /// 403 `access_denied`: the request came from an address outside the caller's
    /// `ip_allowlist`.
    AccessDenied,
    /// 429: one of the caller's limits is spent.
    CallerLimit(CallerLimit),
    /// 403 `insufficient_scope`: the endpoint needs a scope the caller does not hold.
    MissingScope(&'static str),
    /// An admin API error: 400 malformed body, 404 no such client, 422 an invalid field
    /// (`{"error", "error_description", "field"}`).
    Admin(AdminError),
    /// 405: one of the gateway's own routes (`/healthz`, `/openapi.json`, the metadata, the
    /// admin API) with a method it does not take (`Allow` lists those it does).
    MethodNotAllowed(&'static str),
}

/// A managed caller's limit that refused a request (HTTP 429 `too_many_requests`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerLimit {
    /// `requests_per_minute`: the window under way is full.
    PerMinute {
        /// The limit.
        limit: u32,
        /// Ms until the window ends (`Retry-After`).
        retry_after_ms: u64,
    },
    /// `total_requests`: spent for good (no `Retry-After`: waiting does not help).
    Total {
        /// The limit.
        limit: u64,
    },
    /// The caller holds as many live tokens as one caller may.
    LiveTokens {
        /// The limit.
        limit: u64,
    },
}

/// The status of an upstream failure with `code`: 504 for a timeout, 503 while the provider is
/// not being called ([`crate::pressure`]), 502 for anything else (RFC 9110 §15.6.3–§15.6.5).
pub fn upstream_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Timeout => 504,
        ErrorCode::TemporarilyUnavailable => 503,
        _ => 502,
    }
}

impl GatewayError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NotFound(_) => 404,
            GatewayError::InvalidToken(_) => 401,
            GatewayError::InsufficientScope { .. } => 403,
            GatewayError::Path(_) => 400,
            GatewayError::MethodNotForwarded(_) | GatewayError::TokenEndpointMethod => 405,
            GatewayError::BodyTooLarge { .. } | GatewayError::GrantTooLarge => 413,
            GatewayError::Unavailable(_) => 503,
            GatewayError::Config(_) => 500,
            GatewayError::Upstream {
                error, timeout_ms, ..
            } => upstream_status(error.to_token_error(*timeout_ms).code),
            GatewayError::UpstreamStatus { .. } => 502,
            GatewayError::TokenEndpointLimit(_) => 429,
            GatewayError::PlainHttp => 400,
            GatewayError::Grant(g) => g.status(),
            GatewayError::Internal => 500,
            GatewayError::AccessDenied => 403,
            GatewayError::CallerLimit(_) => 429,
            GatewayError::MissingScope(_) => 403,
            GatewayError::Admin(e) => e.status,
            GatewayError::MethodNotAllowed(_) => 405,
        }
    }

    /// The `error` code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::NotFound(_) => "not_found",
            GatewayError::InvalidToken(_) => "invalid_token",
            GatewayError::InsufficientScope { .. } => "insufficient_scope",
            GatewayError::Path(_)
            | GatewayError::MethodNotForwarded(_)
            | GatewayError::TokenEndpointMethod
            | GatewayError::GrantTooLarge => "invalid_request",
            GatewayError::BodyTooLarge { .. } => "request_too_large",
            GatewayError::Unavailable(_) => "temporarily_unavailable",
            GatewayError::Config(_) => "config_error",
            GatewayError::Upstream {
                error, timeout_ms, ..
            } => error.to_token_error(*timeout_ms).code.as_str(),
            GatewayError::UpstreamStatus { .. } => "invalid_response",
            GatewayError::TokenEndpointLimit(TokenEndpointRefusal::AddressLocked { .. }) => {
                "too_many_attempts"
            }
            GatewayError::TokenEndpointLimit(TokenEndpointRefusal::TooManyTokenRequests {
                ..
            }) => "too_many_requests",
            GatewayError::PlainHttp => "invalid_request",
            GatewayError::Grant(_) => "invalid_request",
            GatewayError::Internal => "server_error",
            GatewayError::AccessDenied => "access_denied",
            GatewayError::CallerLimit(_) => "too_many_requests",
            GatewayError::MissingScope(_) => "insufficient_scope",
            GatewayError::Admin(e) => e.code,
            GatewayError::MethodNotAllowed(_) => "invalid_request",
        }
    }

    /// The human-readable description.
    pub fn description(&self) -> String {
        match self {
            GatewayError::NotFound(what) => what.clone(),
            GatewayError::InvalidToken(why) => (*why).to_string(),
            GatewayError::InsufficientScope { provider } => {
                format!("the token does not grant provider `{provider}`")
            }
            GatewayError::Path(e) => e.to_string(),
            GatewayError::MethodNotForwarded(m) => format!("{m} is not forwarded"),
            GatewayError::TokenEndpointMethod => "use POST".into(),
            GatewayError::BodyTooLarge { limit } => {
                format!("request body exceeds {limit} bytes")
            }
            GatewayError::GrantTooLarge => "token request body is too large".into(),
            GatewayError::Unavailable(what) => format!("{what}; try again"),
            GatewayError::Config(e) => e.to_string(),
            GatewayError::Upstream {
                provider,
                error,
                timeout_ms,
            } => {
                let stage = match error.as_ref() {
                    CallError::Token(_) => "token endpoint",
                    CallError::Transport(_) => "API",
                };
                format!(
                    "provider `{provider}` {stage}: {}",
                    error.to_token_error(*timeout_ms)
                )
            }
            GatewayError::UpstreamStatus { provider, status } => format!(
                "provider `{provider}` API answered with HTTP status {status}, which cannot be passed on"
            ),
            GatewayError::TokenEndpointLimit(TokenEndpointRefusal::AddressLocked {
                retry_after_ms,
            }) => format!(
                "too many failed authentications from this address; try again in {} s",
                retry_after_ms.div_ceil(1000)
            ),
            GatewayError::TokenEndpointLimit(TokenEndpointRefusal::TooManyTokenRequests {
                retry_after_ms,
            }) => format!(
                "this client asked for too many tokens this minute; reuse the one it has, or try \
                 again in {} s",
                retry_after_ms.div_ceil(1000)
            ),
            GatewayError::PlainHttp => {
                "tokengate takes bearer tokens over https only (plain http from 127.0.0.1/localhost only)"
                    .into()
            }
            GatewayError::Grant(g) => g
                .body()
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("the token request was refused")
                .to_string(),
            GatewayError::Internal => "the gateway failed to answer; try again".into(),
            GatewayError::AccessDenied => {
                "this address is not in the client's ip_allowlist".into()
            }
            GatewayError::CallerLimit(CallerLimit::PerMinute {
                limit,
                retry_after_ms,
            }) => format!(
                "the client's requests_per_minute ({limit}) is spent; try again in {} s",
                retry_after_ms.div_ceil(1000)
            ),
            GatewayError::CallerLimit(CallerLimit::Total { limit }) => format!(
                "the client's total_requests ({limit}) is spent; an operator can raise it"
            ),
            GatewayError::MissingScope(scope) => format!("this endpoint needs the `{scope}` scope"),
            GatewayError::Admin(e) => e.description.clone(),
            GatewayError::MethodNotAllowed(allow) => format!("this route takes {allow}"),
            GatewayError::CallerLimit(CallerLimit::LiveTokens { limit }) => format!(
                "the client holds {limit} live tokens; reuse one, or revoke some (POST /oauth/revoke)"
            ),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        match self {
            GatewayError::Grant(g) => g.body(),
            GatewayError::Admin(e) => e.body(),
            GatewayError::Config(e) => json!({
                "error": self.code(),
                "error_description": self.description(),
                "provider": e.provider,
                "key": e.key,
            }),
            _ => json!({"error": self.code(), "error_description": self.description()}),
        }
    }

    /// Headers the response carries besides `Content-Type` and `Cache-Control`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            GatewayError::InvalidToken(_) => vec![(
                "WWW-Authenticate",
                format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
            )],
            GatewayError::InsufficientScope { .. } => vec![(
                "WWW-Authenticate",
                format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\""),
            )],
            GatewayError::MethodNotForwarded(_) => {
                vec![("Allow", crate::proxy::ALLOWED_METHODS.into())]
            }
            GatewayError::TokenEndpointMethod => vec![("Allow", "POST".into())],
            GatewayError::MethodNotAllowed(allow) => vec![("Allow", (*allow).into())],
            GatewayError::Unavailable(_) => vec![("Retry-After", "1".into())],
            GatewayError::TokenEndpointLimit(
                TokenEndpointRefusal::AddressLocked { retry_after_ms }
                | TokenEndpointRefusal::TooManyTokenRequests { retry_after_ms },
            )
            | GatewayError::CallerLimit(CallerLimit::PerMinute { retry_after_ms, .. }) => {
                vec![("Retry-After", retry_after_ms.div_ceil(1000).to_string())]
            }
            GatewayError::Upstream { error, .. } => match error.as_ref() {
                CallError::Token(TokenError {
                    retry_after_ms: Some(ms),
                    ..
                }) => vec![("Retry-After", ms.div_ceil(1000).to_string())],
                _ => vec![],
            },
            GatewayError::Grant(g) => g
                .headers()
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect(),
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::TransportError;

    fn upstream(error: CallError) -> GatewayError {
        GatewayError::Upstream {
            provider: "optoro".into(),
            error: Box::new(error),
            timeout_ms: 10_000,
        }
    }

    /// An error, its status, code, description and headers.
    type Row = (
        GatewayError,
        u16,
        &'static str,
        &'static str,
        Vec<(&'static str, &'static str)>,
    );

    #[test]
    fn every_variant() {
        let mut refused =
            TokenError::new(ErrorCode::RateLimited, "token endpoint answered HTTP 429");
        refused.status = Some(429);
        refused.retry_after_ms = Some(1_500);
        let table: Vec<Row> = vec![
            (
                GatewayError::NotFound("unknown provider `x`".into()),
                404,
                "not_found",
                "unknown provider `x`",
                vec![],
            ),
            (
                GatewayError::InvalidToken("the token is unknown or expired"),
                401,
                "invalid_token",
                "the token is unknown or expired",
                vec![("WWW-Authenticate", "Bearer realm=\"tokengate\", error=\"invalid_token\"")],
            ),
            (
                GatewayError::InsufficientScope {
                    provider: "partner".into(),
                },
                403,
                "insufficient_scope",
                "the token does not grant provider `partner`",
                vec![(
                    "WWW-Authenticate",
                    "Bearer realm=\"tokengate\", error=\"insufficient_scope\"",
                )],
            ),
            (
                GatewayError::Path(PathError::Unsafe),
                400,
                "invalid_request",
                "path has a segment that decodes to a dot segment, a separator or a control character, or is encoded more than once",
                vec![],
            ),
            (
                GatewayError::MethodNotForwarded("TRACE".into()),
                405,
                "invalid_request",
                "TRACE is not forwarded",
                vec![("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")],
            ),
            (
                GatewayError::TokenEndpointMethod,
                405,
                "invalid_request",
                "use POST",
                vec![("Allow", "POST")],
            ),
            (
                GatewayError::MethodNotAllowed("GET, PATCH, DELETE"),
                405,
                "invalid_request",
                "this route takes GET, PATCH, DELETE",
                vec![("Allow", "GET, PATCH, DELETE")],
            ),
            (
                GatewayError::BodyTooLarge { limit: 10 },
                413,
                "request_too_large",
                "request body exceeds 10 bytes",
                vec![],
            ),
            (
                GatewayError::GrantTooLarge,
                413,
                "invalid_request",
                "token request body is too large",
                vec![],
            ),
            (
                GatewayError::Unavailable("the token store is unavailable"),
                503,
                "temporarily_unavailable",
                "the token store is unavailable; try again",
                vec![("Retry-After", "1")],
            ),
            (
                upstream(CallError::Token(refused)),
                502,
                "rate_limited",
                "provider `optoro` token endpoint: rate_limited (HTTP 429): token endpoint answered HTTP 429",
                vec![("Retry-After", "2")],
            ),
            (
                upstream(CallError::Transport(TransportError::Timeout)),
                504,
                "timeout",
                "provider `optoro` API: timeout: the API did not answer within 10000 ms",
                vec![],
            ),
            (
                GatewayError::UpstreamStatus {
                    provider: "optoro".into(),
                    status: 999,
                },
                502,
                "invalid_response",
                "provider `optoro` API answered with HTTP status 999, which cannot be passed on",
                vec![],
            ),
            (
                GatewayError::TokenEndpointLimit(TokenEndpointRefusal::AddressLocked {
                    retry_after_ms: 41_001,
                }),
                429,
                "too_many_attempts",
                "too many failed authentications from this address; try again in 42 s",
                vec![("Retry-After", "42")],
            ),
            (
                GatewayError::TokenEndpointLimit(TokenEndpointRefusal::TooManyTokenRequests {
                    retry_after_ms: 7_000,
                }),
                429,
                "too_many_requests",
                "this client asked for too many tokens this minute; reuse the one it has, or try again in 7 s",
                vec![("Retry-After", "7")],
            ),
            (
                GatewayError::PlainHttp,
                400,
                "invalid_request",
                "tokengate takes bearer tokens over https only (plain http from 127.0.0.1/localhost only)",
                vec![],
            ),
            (
                GatewayError::Internal,
                500,
                "server_error",
                "the gateway failed to answer; try again",
                vec![],
            ),
            (
                upstream(CallError::Transport(TransportError::Network("refused".into()))),
                502,
                "network",
                "provider `optoro` API: network: the API request failed: refused",
                vec![],
            ),
        ];
        for (e, status, code, description, headers) in table {
            assert_eq!(e.status(), status, "{e:?}");
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.description(), description, "{e:?}");
            let want: Vec<(&str, String)> =
                headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
            assert_eq!(e.headers(), want, "{e:?}");
            assert_eq!(
                e.body(),
                json!({"error": code, "error_description": description}),
                "{e:?}"
            );
        }
    }

    #[test]
    fn config_and_grant_bodies() {
        let e = GatewayError::Config(ConfigError {
            provider: Some("optoro".into()),
            key: "token_url".into(),
            message: "is required".into(),
        });
        assert_eq!(e.status(), 500);
        assert_eq!(
            e.body(),
            json!({"error": "config_error", "error_description": "provider `optoro`: token_url: is required",
                   "provider": "optoro", "key": "token_url"})
        );
        let g = GrantError::InvalidClient { basic: true };
        let e = GatewayError::Grant(g.clone());
        assert_eq!((e.status(), e.body()), (401, g.body()));
        assert_eq!(
            e.headers(),
            vec![("WWW-Authenticate", "Basic realm=\"tokengate\"".to_string())]
        );
    }
}
