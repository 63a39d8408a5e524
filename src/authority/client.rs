//! The authority over one managed caller (in the Worker, the caller authority object
//! `client:<client id>`): its record and secret hash, the tokens issued to it, its limits and
//! its counts. Every decision about the caller is made here, one request at a time, so it is
//! exact across isolates and locations: a token is checked, counted and refused in one step,
//! and a revocation, rotation, narrowing or deletion holds for every request that reaches the
//! object after it.
//!
//! The object keeps its state under three kinds of storage keys — [`RECORD_KEY`] (the
//! [`ClientState`] minus counters), [`COUNTERS_KEY`] and one [`token_key`] per live token —
//! so that a request writes only its counters and its token's entry.

use super::stats::ClientStats;
use crate::caller_tokens::IssuedToken;
use crate::gateway_error::{CallerLimit, GatewayError};
use crate::grant::GrantError;
use crate::limits::{TokenEndpointRefusal, DEFAULT_TOKEN_REQUESTS_PER_MINUTE};
use crate::managed::ClientRecord;
use crate::scope::{effective, narrow, permits};
use crate::secret::ct_eq_bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Storage key of the record and secret hash.
pub const RECORD_KEY: &str = "client";
/// Storage key of the [`Counters`].
pub const COUNTERS_KEY: &str = "counters";
/// Prefix of the storage keys of tokens.
pub const TOKEN_KEY_PREFIX: &str = "token:";
/// The most live tokens one caller may hold: past it, expired entries are pruned and, if
/// still full, issuing is refused (each live token is a storage entry).
pub const MAX_LIVE_TOKENS: usize = 10_000;
/// The window of `requests_per_minute`, ms.
pub const MINUTE_MS: u64 = 60_000;

/// The caller's record and the SHA-256 of its secret (never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientState {
    /// The record the admin API shows.
    pub record: ClientRecord,
    /// SHA-256 of the current secret.
    pub secret_sha256: [u8; 32],
}

impl ClientState {
    /// The stored form: the record's JSON plus `secret_sha256` (hex).
    pub fn to_stored(&self) -> String {
        let mut v = self.record.to_json();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "secret_sha256".into(),
                Value::String(hex::encode(self.secret_sha256)),
            );
        }
        v.to_string()
    }

    /// The state [`ClientState::to_stored`] wrote.
    pub fn from_stored(text: &str) -> Option<ClientState> {
        let v: Value = serde_json::from_str(text).ok()?;
        let mut secret_sha256 = [0u8; 32];
        hex::decode_to_slice(v.get("secret_sha256")?.as_str()?, &mut secret_sha256).ok()?;
        Some(ClientState {
            record: ClientRecord::from_json(&v)?,
            secret_sha256,
        })
    }
}

/// What a caller's requests have used up, and its counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Start of the current `requests_per_minute` window, ms.
    pub minute_start_ms: u64,
    /// Requests admitted in it.
    pub minute_count: u32,
    /// Requests admitted since the caller was created (`total_requests`).
    pub total: u64,
    /// Start of the current token-issuing window, ms.
    pub issued_start_ms: u64,
    /// Tokens issued in it.
    pub issued_count: u32,
    /// Live token entries in storage (an upper bound: expired ones are pruned lazily).
    pub live_tokens: usize,
    /// The caller's statistics.
    pub stats: ClientStats,
}

/// One issued token, under [`token_key`] of its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Its public id (see [`token_id`]).
    pub id: String,
    /// The scopes it carries.
    pub scopes: Vec<String>,
    /// Issue time, ms since the epoch.
    pub issued_at_ms: u64,
    /// Expiry, ms since the epoch.
    pub expires_at_ms: u64,
    /// Requests admitted with it.
    pub requests: u64,
}

impl TokenEntry {
    /// The entry as `GET /admin/tokens` lists it: `{id, client_id, scopes, issued_at,
    /// expires_at, requests}` (times in seconds since the epoch; `id` is [`public_token_id`]).
    /// Never the token.
    pub fn to_public(&self, client_id: &str) -> Value {
        json!({
            "id": public_token_id(client_id, &self.id),
            "client_id": client_id,
            "scopes": self.scopes,
            "issued_at": self.issued_at_ms / 1000,
            "expires_at": self.expires_at_ms / 1000,
            "requests": self.requests,
        })
    }

    /// The token response for `access_token`, the token this entry records (Optoro's 200
    /// schema, as for every caller).
    pub fn issued(&self, access_token: String) -> IssuedToken {
        IssuedToken {
            access_token,
            token_type: "Bearer",
            expires_in: self.expires_at_ms.saturating_sub(self.issued_at_ms) / 1000,
            scope: self.scopes.join(" "),
            created_at: self.issued_at_ms / 1000,
        }
    }

    /// When it stops being good for `record`: its expiry, or its issue time plus the caller's
    /// current `token_ttl_s` if that is sooner (lowering the TTL shortens issued tokens).
    pub fn good_until(&self, record: &ClientRecord) -> u64 {
        self.issued_at_ms
            .saturating_add(record.token_ttl_s * 1000)
            .min(self.expires_at_ms)
    }
}

/// A token's public id: 32 hex digits of a SHA-256 of its SHA-256 (the token cannot be
/// recovered from it, nor its hash).
pub fn token_id(token_sha256: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"tokengate/v1/token-id\0");
    h.update(token_sha256);
    hex::encode(&h.finalize()[..16])
}

/// The id `GET /admin/tokens` shows and `DELETE /admin/tokens/{id}` takes:
/// `<client id>.<token id>`, so that the token's caller is known without a lookup.
pub fn public_token_id(client_id: &str, id: &str) -> String {
    format!("{client_id}.{id}")
}

/// The caller and token id of a [`public_token_id`], if it is one.
pub fn split_public_token_id(public: &str) -> Option<(&str, &str)> {
    let (client, id) = public.rsplit_once('.')?;
    let hex_id = id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    (hex_id && !client.is_empty()).then_some((client, id))
}

/// The storage key of the token with id `id`.
pub fn token_key(id: &str) -> String {
    format!("{TOKEN_KEY_PREFIX}{id}")
}

/// Whether `secret_sha256` is the caller's secret (constant time). A missing or disabled
/// caller authenticates no one, at the same cost.
pub fn authenticate(state: Option<&ClientState>, secret_sha256: &[u8; 32]) -> bool {
    let expected = state.map_or([0u8; 32], |s| s.secret_sha256);
    let matches = ct_eq_bytes(&expected, secret_sha256);
    matches && state.is_some_and(|s| !s.record.disabled)
}

/// Why a token request of an authenticated managed caller was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantRefusal {
    /// 403: the request came from outside the caller's `ip_allowlist`.
    AccessDenied,
    /// 429: the caller asked for too many tokens this minute.
    TooManyTokenRequests {
        /// Ms until it may ask again.
        retry_after_ms: u64,
    },
    /// 429: the caller holds [`MAX_LIVE_TOKENS`] live tokens.
    TooManyLiveTokens,
    /// 400 `invalid_scope`: a requested scope the caller does not hold.
    InvalidScope {
        /// The scope.
        scope: String,
    },
}

impl GrantRefusal {
    /// The gateway error it answers with.
    pub fn to_gateway_error(&self) -> GatewayError {
        match self {
            GrantRefusal::AccessDenied => GatewayError::AccessDenied,
            GrantRefusal::TooManyTokenRequests { retry_after_ms } => {
                GatewayError::TokenEndpointLimit(TokenEndpointRefusal::TooManyTokenRequests {
                    retry_after_ms: *retry_after_ms,
                })
            }
            GrantRefusal::TooManyLiveTokens => GatewayError::CallerLimit(CallerLimit::LiveTokens {
                limit: MAX_LIVE_TOKENS as u64,
            }),
            GrantRefusal::InvalidScope { scope } => GatewayError::Grant(GrantError::OAuth(
                "invalid_scope",
                format!("scope `{scope}` is not granted to this client"),
            )),
        }
    }
}

/// One token allowed per window: `Err(ms until the window ends)` when `per_minute` tokens were
/// issued in the window under way at `now_ms`; else counts this one.
pub fn count_issue(counters: &mut Counters, per_minute: u32, now_ms: u64) -> Result<(), u64> {
    let end = counters.issued_start_ms.saturating_add(MINUTE_MS);
    if now_ms < end && counters.issued_count >= per_minute {
        return Err((end - now_ms).min(MINUTE_MS));
    }
    if now_ms >= end {
        counters.issued_start_ms = now_ms;
        counters.issued_count = 0;
    }
    counters.issued_count += 1;
    Ok(())
}

/// Issues a token to the authenticated caller of `state`: the entry to store under
/// [`token_key`] of its id, for the token with SHA-256 `token_sha256` (made by the isolate,
/// which alone ever sees it). `requested` narrows the scopes (RFC 6749 §3.3); `address` is
/// the request's `CF-Connecting-IP`.
pub fn grant(
    state: &ClientState,
    counters: &mut Counters,
    requested: Option<&[String]>,
    address: Option<&str>,
    token_sha256: &[u8; 32],
    now_ms: u64,
) -> Result<TokenEntry, GrantRefusal> {
    let record = &state.record;
    if !record.allows_address(address) {
        return Err(GrantRefusal::AccessDenied);
    }
    let scopes =
        narrow(&record.scopes, requested).map_err(|scope| GrantRefusal::InvalidScope { scope })?;
    if counters.live_tokens >= MAX_LIVE_TOKENS {
        return Err(GrantRefusal::TooManyLiveTokens);
    }
    count_issue(counters, DEFAULT_TOKEN_REQUESTS_PER_MINUTE, now_ms)
        .map_err(|retry_after_ms| GrantRefusal::TooManyTokenRequests { retry_after_ms })?;
    counters.live_tokens += 1;
    Ok(TokenEntry {
        id: token_id(token_sha256),
        scopes,
        issued_at_ms: now_ms,
        expires_at_ms: now_ms + record.token_ttl_s * 1000,
        requests: 0,
    })
}

/// A proxied request as the caller's authority sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// SHA-256 (hex) of the bearer token.
    pub token_sha256: String,
    /// The provider the path names.
    pub provider: String,
    /// Whether that provider is configured.
    pub provider_known: bool,
    /// The request method.
    pub method: String,
    /// `CF-Connecting-IP`.
    pub address: Option<String>,
}

/// Why the authority refused a proxied request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// 401: the token is unknown, revoked, expired, or its caller is gone or disabled.
    InvalidToken {
        /// Why, for the error description.
        reason: String,
    },
    /// 403 `access_denied`: outside the caller's `ip_allowlist`.
    AccessDenied,
    /// 404: no such provider.
    UnknownProvider,
    /// 403 `insufficient_scope`.
    InsufficientScope,
    /// 429: `requests_per_minute` spent.
    PerMinute {
        /// The limit.
        limit: u32,
        /// Ms until the window ends.
        retry_after_ms: u64,
    },
    /// 429: `total_requests` spent.
    Total {
        /// The limit.
        limit: u64,
    },
}

impl Refusal {
    /// The gateway error it answers with, for a request to `provider`.
    pub fn to_gateway_error(&self, provider: &str) -> GatewayError {
        match self {
            Refusal::InvalidToken { reason } => GatewayError::InvalidToken(match reason.as_str() {
                "disabled" => "the client is disabled",
                "expired" => "the token is unknown or expired",
                _ => "the token is unknown, expired or revoked",
            }),
            Refusal::AccessDenied => GatewayError::AccessDenied,
            Refusal::UnknownProvider => {
                GatewayError::NotFound(format!("unknown provider `{provider}`"))
            }
            Refusal::InsufficientScope => GatewayError::InsufficientScope {
                provider: provider.to_string(),
            },
            Refusal::PerMinute {
                limit,
                retry_after_ms,
            } => GatewayError::CallerLimit(CallerLimit::PerMinute {
                limit: *limit,
                retry_after_ms: *retry_after_ms,
            }),
            Refusal::Total { limit } => {
                GatewayError::CallerLimit(CallerLimit::Total { limit: *limit })
            }
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> u16 {
        self.to_gateway_error("").status()
    }
}

/// Whether the token of `entry` is good now: its caller exists and is enabled, and the token
/// is live for the caller's current record.
fn live(
    state: Option<&ClientState>,
    entry: Option<&TokenEntry>,
    now_ms: u64,
) -> Result<(), Refusal> {
    let invalid = |reason: &str| Refusal::InvalidToken {
        reason: reason.into(),
    };
    let (Some(state), Some(entry)) = (state, entry) else {
        return Err(invalid("unknown"));
    };
    if state.record.disabled {
        return Err(invalid("disabled"));
    }
    if now_ms >= entry.good_until(&state.record) {
        return Err(invalid("expired"));
    }
    Ok(())
}

/// Decides a proxied request and counts it: the token must be live (401), the address in
/// the allowlist (403 `access_denied`), the provider configured (404, not counted), within
/// both the token's and the caller's current scopes (403 `insufficient_scope`), and within
/// `requests_per_minute` and `total_requests` (429). An admitted request counts towards both
/// limits and the token's `requests`; a refusal counts in the caller's statistics.
pub fn check(
    state: Option<&ClientState>,
    counters: &mut Counters,
    entry: Option<&mut TokenEntry>,
    req: &CheckRequest,
    now_ms: u64,
) -> Result<(), Refusal> {
    let verdict = decide(state, counters, entry, req, now_ms);
    if let Err(r) = &verdict {
        counters.stats.reject(r.status());
    }
    verdict
}

fn decide(
    state: Option<&ClientState>,
    counters: &mut Counters,
    entry: Option<&mut TokenEntry>,
    req: &CheckRequest,
    now_ms: u64,
) -> Result<(), Refusal> {
    live(state, entry.as_deref(), now_ms)?;
    let (Some(state), Some(entry)) = (state, entry) else {
        unreachable!("live() refuses a missing state or entry")
    };
    let record = &state.record;
    if !record.allows_address(req.address.as_deref()) {
        return Err(Refusal::AccessDenied);
    }
    if !req.provider_known {
        return Err(Refusal::UnknownProvider);
    }
    if !(permits(&entry.scopes, &req.provider, &req.method)
        && permits(&record.scopes, &req.provider, &req.method))
    {
        return Err(Refusal::InsufficientScope);
    }
    let window_end = counters.minute_start_ms.saturating_add(MINUTE_MS);
    if now_ms >= window_end {
        counters.minute_start_ms = now_ms;
        counters.minute_count = 0;
    }
    if let Some(limit) = record.limits.requests_per_minute {
        if counters.minute_count >= limit {
            let end = counters.minute_start_ms + MINUTE_MS;
            return Err(Refusal::PerMinute {
                limit,
                retry_after_ms: end.saturating_sub(now_ms).clamp(1, MINUTE_MS),
            });
        }
    }
    if let Some(limit) = record.limits.total_requests {
        if counters.total >= limit {
            return Err(Refusal::Total { limit });
        }
    }
    counters.minute_count += 1;
    counters.total += 1;
    counters.stats.requests += 1;
    entry.requests += 1;
    Ok(())
}

/// RFC 7662 §2.2: the introspection response for a token of this caller (`entry` its entry,
/// if it has one): `{active: true, client_id, scope, exp, iat, token_type}` for a live token,
/// else `{active: false}` and nothing more. `scope` is what the token still allows under the
/// caller's current scopes ([`effective`]), as [`check`] decides its requests.
pub fn introspect(state: Option<&ClientState>, entry: Option<&TokenEntry>, now_ms: u64) -> Value {
    match (live(state, entry, now_ms), state, entry) {
        (Ok(()), Some(state), Some(entry)) => json!({
            "active": true,
            "client_id": state.record.client_id,
            "scope": effective(&entry.scopes, &state.record.scopes).join(" "),
            "exp": entry.good_until(&state.record) / 1000,
            "iat": entry.issued_at_ms / 1000,
            "token_type": "Bearer",
        }),
        _ => json!({"active": false}),
    }
}

#[cfg(test)]
mod tests;
