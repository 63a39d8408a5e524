//! The provider settings types and their small impls: the client authentication method
//! ([`AuthStyle`]), the token settings shared by both shells ([`TokenSettings`]), a Worker
//! provider entry ([`ProviderConfig`]), the key spelling of each configuration source
//! ([`Naming`]) and the error every rule reports ([`ConfigError`]).

use crate::expiry::ExpiryPolicy;
use crate::jose::JwsAlg;
use crate::retry::RetryPolicy;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use url::Url;

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthStyle {
    /// HTTP Basic with form-urlencoded id and secret (RFC 6749 §2.3.1); the default.
    ClientSecretBasic,
    /// `client_id` and `client_secret` as form parameters (RFC 6749 §2.3.1; Optimum Automotive:
    /// `docs/providers.md#optimum-token-request`).
    ClientSecretPost,
    /// A JSON body `{grant_type, client_id, client_secret}` (Optoro and the partner API:
    /// `docs/providers.md#optoro-token-request`, `docs/providers.md#partner-token-request`).
    JsonBody,
    /// A token-management API rather than an OAuth token endpoint (openapi.com Oauth v2:
    /// `docs/providers.md#openapi-token-api`): `POST {token_url}` with HTTP Basic as RFC 7617
    /// encodes it and `token_body` as JSON creates a token; `PATCH {token_url}/{token}` with
    /// its refresh token rotates it; `DELETE {token_url}/{token}` removes it.
    TokenApi,
    /// A JWT client assertion signed with the client's private key (RFC 7523 §2.2, OpenID
    /// Connect Core §9 `private_key_jwt`): no shared secret crosses the network.
    PrivateKeyJwt,
    /// Mutual TLS (RFC 8705 §2.1.1 `tls_client_auth`): the client id in the form, the client's
    /// certificate in the TLS handshake, no secret.
    TlsClientAuth,
}

impl AuthStyle {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthStyle::ClientSecretBasic => "client_secret_basic",
            AuthStyle::ClientSecretPost => "client_secret_post",
            AuthStyle::JsonBody => "json_body",
            AuthStyle::TokenApi => "token_api",
            AuthStyle::PrivateKeyJwt => "private_key_jwt",
            AuthStyle::TlsClientAuth => "tls_client_auth",
        }
    }

    /// Whether tokens are rotated with their refresh token and removed when replaced (the
    /// token-management dialect), rather than left to expire.
    pub fn manages_tokens(self) -> bool {
        self == AuthStyle::TokenApi
    }

    /// Whether the client authenticates with a shared secret (every style but
    /// `private_key_jwt` and `tls_client_auth`).
    pub fn uses_secret(self) -> bool {
        !matches!(self, AuthStyle::PrivateKeyJwt | AuthStyle::TlsClientAuth)
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(AuthStyle::ClientSecretBasic),
            "client_secret_post" => Some(AuthStyle::ClientSecretPost),
            "json_body" => Some(AuthStyle::JsonBody),
            "token_api" => Some(AuthStyle::TokenApi),
            "private_key_jwt" => Some(AuthStyle::PrivateKeyJwt),
            "tls_client_auth" => Some(AuthStyle::TlsClientAuth),
            _ => None,
        }
    }
}

/// A configuration error: which provider, which key, what is wrong. Never holds a secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{key}: {message}", provider.as_ref().map(|p| format!("provider `{p}`: ")).unwrap_or_default())]
pub struct ConfigError {
    /// The provider id, when the error is inside one provider's entry.
    pub provider: Option<String>,
    /// The key (or secret name) at fault.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error about `key` outside any provider entry.
    pub fn global(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            provider: None,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Key spelling of the configuration source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// `token_url` (wrangler.toml).
    Snake,
    /// `tokenUrl` (JavaScript).
    Camel,
}

impl Naming {
    /// The spelling of the canonical snake_case `key` in this naming.
    pub fn key(self, key: &str) -> String {
        match self {
            Naming::Snake => key.to_string(),
            Naming::Camel => {
                let mut out = String::with_capacity(key.len());
                let mut upper = false;
                for c in key.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.push(c.to_ascii_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// Everything needed to obtain a token from one provider (the secret is held separately).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// Token endpoint (https; http only for loopback hosts).
    pub token_url: Url,
    /// Client identifier.
    pub client_id: String,
    /// Client authentication method.
    pub auth_style: AuthStyle,
    /// Optional `scope` parameter (RFC 6749 §3.3).
    pub scope: Option<String>,
    /// Optional `audience` parameter.
    pub audience: Option<String>,
    /// Optional `resource` parameter (RFC 8707).
    pub resource: Option<String>,
    /// Extra token-request body parameters, sorted by name.
    pub token_params: BTreeMap<String, String>,
    /// Extra token-request headers.
    pub token_headers: BTreeMap<String, String>,
    /// The JSON body that creates a token (`auth_style = "token_api"` only, and required
    /// there): `scopes`, optional `ttl`, `name` and `limits`.
    pub token_body: Option<Map<String, Value>>,
    /// Expiry policy.
    pub expiry: ExpiryPolicy,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP call, milliseconds.
    pub timeout_ms: u64,
    /// At most this many requests to the token endpoint per minute, if set
    /// (`token_rate_limit_per_minute`): a budget shared by every instance that mints through one
    /// coordinator, kept by that coordinator (and by each instance that mints itself).
    pub token_rate_limit_per_minute: Option<u32>,
    /// The client assertion's algorithm (`client_key_alg`, `private_key_jwt` only; ES256 by
    /// default).
    pub client_key_alg: JwsAlg,
    /// The client assertion's `kid` header, if configured (`private_key_jwt` only).
    pub kid: Option<String>,
    /// The client assertion's `aud` (`assertion_audience`; the token endpoint by default).
    pub assertion_audience: Option<String>,
    /// Whether tokens are DPoP-bound (RFC 9449): every token request and API call carries a
    /// proof made with the DPoP key.
    pub dpop: bool,
}

impl TokenSettings {
    /// The `aud` of a client assertion: `assertion_audience`, else the token endpoint (RFC 7523
    /// §3 item 3).
    pub fn assertion_audience(&self) -> &str {
        self.assertion_audience
            .as_deref()
            .unwrap_or(self.token_url.as_str())
    }
}

/// Default timeout for one token or API call.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// The longest `ttl` a token API grants: one year, in seconds
/// (`docs/providers.md#openapi-token-api`).
pub const TOKEN_API_MAX_TTL_S: u64 = 31_536_000;

/// A Worker provider entry from `TOKENGATE_PROVIDERS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Provider id: the first path segment of proxied requests.
    pub id: String,
    /// Token settings.
    pub token: TokenSettings,
    /// The only base URL proxied requests may reach; its path ends with `/`.
    pub api_base: Url,
    /// Name of the Worker secret holding the client secret (the styles that use one).
    pub client_secret_name: Option<String>,
    /// Name of the Worker secret holding the client's private key (`private_key_jwt`): a
    /// private JWK or a PKCS#8 PEM.
    pub client_key_name: Option<String>,
    /// Name of the Worker secret holding the DPoP key (same forms); without it each isolate
    /// generates an ES256 key and keeps it in memory.
    pub dpop_key_name: Option<String>,
    /// Name of the `[[mtls_certificates]]` binding whose client certificate the token endpoint
    /// and API calls present (RFC 8705; required by `tls_client_auth`).
    pub mtls_certificate: Option<String>,
    /// Headers added to every proxied request (e.g. Optoro's `X-Optiturn-Api-Version`:
    /// `docs/providers.md#optoro-rate-limits-and-api-version`).
    pub api_headers: BTreeMap<String, String>,
    /// Who obtains this provider's tokens: each isolate, or one minter for all of them.
    pub coordination: Coordination,
    /// With a minter: the percentage of a token's lifetime after which it is replaced ahead
    /// of its refresh point, in the background (`refresh_ahead_percent`, 50–95, default 80).
    pub refresh_ahead_percent: u64,
}

/// The default of `refresh_ahead_percent`.
pub const DEFAULT_REFRESH_AHEAD_PERCENT: u64 = 80;

/// Who obtains a provider's tokens (`coordination`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Coordination {
    /// Each isolate on its own, one exchange at a time per isolate (`"isolate"`, the default).
    #[default]
    Isolate,
    /// One minter per token for every isolate, a Durable Object (`"durable_object"`): the
    /// provider sees one exchange however many isolates miss at once. Without the binding the
    /// Worker falls back to `Isolate` and says so in its log.
    DurableObject,
}

impl Coordination {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Coordination::Isolate => "isolate",
            Coordination::DurableObject => "durable_object",
        }
    }
}
