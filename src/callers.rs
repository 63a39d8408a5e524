//! The gateway's own callers: the `TOKENGATE_CLIENTS` registry, the `POST /oauth/token`
//! request forms, and the opaque tokens the gateway issues.
//!
//! `POST /oauth/token` accepts Optoro's token-endpoint contract
//! (`docs/providers.md#optoro-token-request`) — a JSON body with exactly `grant_type`,
//! `client_id` and `client_secret` (400 for malformed JSON, 422 with Optoro's validation body
//! `{"message": "Validation Failed", "errors": [{field, code}]}` for bad fields, 401
//! `invalid_client` for wrong credentials; `docs/providers.md#optoro-errors-and-retries`) — and
//! the RFC 6749 §4.4 forms: a form body with credentials in HTTP Basic (§2.3.1) or in the body,
//! errors per §5.2.
//!
//! Issued tokens are 256 random bits (RFC 6750 §5.2 wants them unguessable); only their SHA-256
//! is ever stored.

use crate::config::{validate_provider_id, ConfigError};
use crate::gateway_error::GatewayError;
use crate::secret::{ct_eq_bytes, Secret};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// KV key prefix of issued caller tokens (followed by the token's SHA-256, hex).
pub const CALLER_TOKEN_PREFIX: &str = "tg:v1:ctok:";
/// Prefix of every issued token, so leaked ones are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "tg_";
/// Default lifetime of an issued token, seconds.
pub const DEFAULT_CALLER_TTL_S: u64 = 3600;

/// One registered caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's client id.
    pub client_id: String,
    secret_sha256: [u8; 32],
    /// Provider ids this caller may call.
    pub scopes: Vec<String>,
    /// Lifetime of tokens issued to it, seconds (60 ..= 86400: KV's minimum TTL is 60 s).
    pub token_ttl_s: u64,
}

/// The parsed `TOKENGATE_CLIENTS` secret.
#[derive(Clone, Debug, Default)]
pub struct CallerRegistry {
    callers: BTreeMap<String, Caller>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaller {
    secret_sha256: String,
    scopes: Vec<String>,
    token_ttl_s: Option<u64>,
}

impl CallerRegistry {
    /// Parses the JSON object `{ "<client_id>": { secret_sha256, scopes, token_ttl_s } }`.
    pub fn parse(name: &str, json: &str) -> Result<Self, ConfigError> {
        let map: Map<String, Value> = serde_json::from_str(json)
            .map_err(|_| ConfigError::global(name, "must be a JSON object keyed by client id"))?;
        let mut callers = BTreeMap::new();
        for (id, v) in map {
            let err = |m: String| ConfigError::global(format!("{name}.{id}"), m);
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                return Err(err("client id must be 1-128 printable characters".into()));
            }
            let raw: RawCaller = serde_json::from_value(v).map_err(|e| err(e.to_string()))?;
            let mut secret_sha256 = [0u8; 32];
            hex::decode_to_slice(raw.secret_sha256.trim(), &mut secret_sha256)
                .map_err(|_| err("secret_sha256 must be 64 hex digits".into()))?;
            if raw.scopes.is_empty() {
                return Err(err("scopes must name at least one provider".into()));
            }
            for s in &raw.scopes {
                validate_provider_id(s).map_err(|m| err(format!("scope `{s}` {m}")))?;
            }
            let token_ttl_s = raw.token_ttl_s.unwrap_or(DEFAULT_CALLER_TTL_S);
            if !(60..=86_400).contains(&token_ttl_s) {
                return Err(err("token_ttl_s must be from 60 to 86400".into()));
            }
            callers.insert(
                id.clone(),
                Caller {
                    client_id: id,
                    secret_sha256,
                    scopes: raw.scopes,
                    token_ttl_s,
                },
            );
        }
        Ok(CallerRegistry { callers })
    }

    /// The caller registered as `client_id`.
    pub fn get(&self, client_id: &str) -> Option<&Caller> {
        self.callers.get(client_id)
    }

    /// Every registered caller.
    pub fn iter(&self) -> impl Iterator<Item = &Caller> {
        self.callers.values()
    }

    /// The caller whose id and secret match, comparing hashes in constant time; an unknown id
    /// costs the same hash and comparison as a known one.
    pub fn authenticate(&self, client_id: &str, secret: &Secret) -> Option<&Caller> {
        let digest: [u8; 32] = Sha256::digest(secret.expose().as_bytes()).into();
        let found = self.callers.get(client_id);
        let expected = found.map_or([0u8; 32], |c| c.secret_sha256);
        let ok = ct_eq_bytes(&digest, &expected);
        found.filter(|_| ok)
    }
}

/// How the credentials arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantForm {
    /// Optoro's JSON body (`docs/providers.md#optoro-token-request`).
    Json,
    /// RFC 6749 form body (credentials in the body or in HTTP Basic).
    Form,
}

/// A well-formed client-credentials grant request.
#[derive(Clone, Debug)]
pub struct GrantRequest {
    /// Body flavour (decides the error format).
    pub form: GrantForm,
    /// Whether HTTP Basic carried the credentials.
    pub basic: bool,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// Requested scope (form flavour only), space-separated provider ids.
    pub scope: Option<Vec<String>>,
}

/// One entry of Optoro's validation error body (`docs/providers.md#optoro-errors-and-retries`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldIssue {
    /// The field at fault.
    pub field: String,
    /// `missing_field`, `invalid_type`, `invalid_value` or `unexpected_field`.
    pub code: &'static str,
}

/// Why `POST /oauth/token` failed, with its HTTP mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// 400: the body could not be read (Optoro's "Malformed request").
    Malformed(String),
    /// 422: Optoro's validation error body (`docs/providers.md#optoro-errors-and-retries`).
    Validation(Vec<FieldIssue>),
    /// 400: an RFC 6749 §5.2 error for the form flavour.
    OAuth(&'static str, String),
    /// 401 `invalid_client`; `basic` adds `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    InvalidClient {
        /// Credentials came by HTTP Basic.
        basic: bool,
    },
}

impl GrantError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            GrantError::Malformed(_) | GrantError::OAuth(..) => 400,
            GrantError::Validation(_) => 422,
            GrantError::InvalidClient { .. } => 401,
        }
    }

    /// JSON body.
    pub fn body(&self) -> Value {
        match self {
            GrantError::Malformed(d) => json!({"error": "invalid_request", "error_description": d}),
            GrantError::Validation(errors) => {
                json!({"message": "Validation Failed", "errors": errors})
            }
            GrantError::OAuth(code, d) => json!({"error": code, "error_description": d}),
            GrantError::InvalidClient { .. } => json!({
                "error": "invalid_client",
                "error_description": "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method."
            }),
        }
    }

    /// Extra response headers.
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            GrantError::InvalidClient { basic: true } => {
                vec![("WWW-Authenticate", "Basic realm=\"tokengate\"")]
            }
            _ => vec![],
        }
    }
}

fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Credentials from an `Authorization: Basic` header (RFC 6749 §2.3.1: each part is
/// form-urlencoded before base64).
fn basic_credentials(authorization: &str) -> Result<(String, Secret), GrantError> {
    let bad = || GrantError::InvalidClient { basic: true };
    let (scheme, rest) = authorization.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    // application/x-www-form-urlencoded: `+` is a space, then percent-decoding.
    let dec = |s: &str| -> String {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok((dec(id), Secret::new(dec(secret))))
}

/// Refuses a token request that arrived over plain http from anywhere but this machine: the
/// client secret has crossed the network in the clear (RFC 6749 §2.3.1 requires TLS), and a
/// token issued in answer would too. The caller must rotate that secret; the gateway answers
/// 400 `invalid_request` without looking at the credentials.
pub fn check_transport(request_url: &url::Url) -> Result<(), GrantError> {
    if request_url.scheme() == "https" || crate::config::is_loopback(request_url) {
        Ok(())
    } else {
        Err(GrantError::OAuth(
            "invalid_request",
            "the token endpoint takes credentials over https only".into(),
        ))
    }
}

/// Parses a `POST /oauth/token` request.
pub fn parse_grant(
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<GrantRequest, GrantError> {
    // Only HTTP Basic authenticates a client here; any other scheme (a stale Bearer token a
    // client library still sends) is ignored rather than refused.
    let basic = authorization
        .filter(|a| {
            a.split_whitespace()
                .next()
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic"))
        })
        .map(basic_credentials)
        .transpose()?;
    match media_type(content_type).as_str() {
        "application/json" => parse_json_grant(body, basic),
        "application/x-www-form-urlencoded" => parse_form_grant(body, basic),
        _ => Err(GrantError::Malformed(
            "Content-Type must be application/json or application/x-www-form-urlencoded".into(),
        )),
    }
}

fn parse_json_grant(
    body: &[u8],
    basic: Option<(String, Secret)>,
) -> Result<GrantRequest, GrantError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        GrantError::Malformed("Malformed request. Check structure of JSON payload.".into())
    })?;
    let obj = value.as_object().ok_or_else(|| {
        GrantError::Malformed("Malformed request. The JSON payload must be an object.".into())
    })?;
    let mut issues = Vec::new();
    // additionalProperties: false (docs/providers.md#optoro-token-request)
    for k in obj.keys() {
        if !["grant_type", "client_id", "client_secret"].contains(&k.as_str()) {
            issues.push(FieldIssue {
                field: k.clone(),
                code: "unexpected_field",
            });
        }
    }
    // The schema's checks (422): each key present when required, and a string. What the
    // strings say is judged after: an empty or unknown grant_type is RFC 6749 §5.2's
    // `unsupported_grant_type` (400), empty credentials a failed authentication (401).
    let mut get = |k: &str, required: bool| -> Option<String> {
        match obj.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            None if !required => None,
            None => {
                issues.push(FieldIssue {
                    field: k.into(),
                    code: "missing_field",
                });
                None
            }
            Some(_) => {
                issues.push(FieldIssue {
                    field: k.into(),
                    code: "invalid_type",
                });
                None
            }
        }
    };
    let grant_type = get("grant_type", true);
    let id = get("client_id", basic.is_none());
    let secret = get("client_secret", basic.is_none());
    if basic.is_some() && (id.is_some() || secret.is_some()) {
        issues.push(FieldIssue {
            field: if id.is_some() {
                "client_id"
            } else {
                "client_secret"
            }
            .into(),
            code: "unexpected_field",
        });
    }
    if !issues.is_empty() {
        return Err(GrantError::Validation(issues));
    }
    if grant_type.as_deref() != Some("client_credentials") {
        return Err(unsupported_grant_type());
    }
    let is_basic = basic.is_some();
    let (client_id, client_secret) = match basic {
        Some(b) => b,
        None => (
            id.unwrap_or_default(),
            Secret::new(secret.unwrap_or_default()),
        ),
    };
    if client_id.is_empty() || client_secret.expose().is_empty() {
        return Err(GrantError::InvalidClient { basic: is_basic });
    }
    Ok(GrantRequest {
        form: GrantForm::Json,
        basic: is_basic,
        client_id,
        client_secret,
        scope: None,
    })
}

fn unsupported_grant_type() -> GrantError {
    GrantError::OAuth(
        "unsupported_grant_type",
        "only client_credentials is supported".into(),
    )
}

fn parse_form_grant(
    body: &[u8],
    basic: Option<(String, Secret)>,
) -> Result<GrantRequest, GrantError> {
    let invalid = |d: &str| GrantError::OAuth("invalid_request", d.into());
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        // RFC 6749 §3.2: parameters MUST NOT be included more than once.
        if params
            .insert(k.clone().into_owned(), v.into_owned())
            .is_some()
        {
            return Err(invalid(&format!("parameter `{k}` is repeated")));
        }
    }
    match params.get("grant_type").map(String::as_str) {
        None => return Err(invalid("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => return Err(unsupported_grant_type()),
    }
    let scope = params.get("scope").map(|s| {
        s.split(' ')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    });
    let body_id = params.get("client_id").filter(|s| !s.is_empty()).cloned();
    let body_secret = params.get("client_secret").cloned();
    let is_basic = basic.is_some();
    let (client_id, client_secret) = match (basic, body_id, body_secret) {
        (Some(b), None, None) => b,
        (Some((id, s)), Some(bid), None) if bid == id => (id, s),
        (Some(_), _, _) => {
            return Err(invalid(
                "use one client authentication method, not two (RFC 6749 §2.3)",
            ))
        }
        (None, Some(id), Some(secret)) if !secret.is_empty() => (id, Secret::new(secret)),
        (None, _, _) => return Err(GrantError::InvalidClient { basic: false }),
    };
    Ok(GrantRequest {
        form: GrantForm::Form,
        basic: is_basic,
        client_id,
        client_secret,
        scope,
    })
}

/// What KV holds for an issued token, under [`caller_token_key`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerTokenRecord {
    /// The caller it was issued to.
    pub client_id: String,
    /// Provider ids it may call.
    pub scopes: Vec<String>,
    /// Expiry, ms since the epoch; checked on every use.
    pub expires_at_ms: u64,
}

/// The successful token response (Optoro's 200 schema, `docs/providers.md#optoro-token-response`).
#[derive(Clone, Debug, Serialize)]
pub struct IssuedToken {
    /// The opaque token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until expiry.
    pub expires_in: u64,
    /// Granted provider ids, space-separated.
    pub scope: String,
    /// Issue time, seconds since the epoch.
    pub created_at: u64,
}

impl IssuedToken {
    /// The response body.
    pub fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "scope": self.scope,
            "created_at": self.created_at,
        })
    }
}

/// Issues a token for `caller` from 32 random bytes at `now_ms`. `requested` narrows the scope;
/// asking for a provider the caller may not use is `invalid_scope` (RFC 6749 §5.2).
pub fn issue_token(
    caller: &Caller,
    requested: Option<&[String]>,
    random: [u8; 32],
    now_ms: u64,
) -> Result<(IssuedToken, CallerTokenRecord), GrantError> {
    let scopes = match requested {
        None => caller.scopes.clone(),
        Some(req) => {
            if let Some(bad) = req.iter().find(|s| !caller.scopes.contains(s)) {
                return Err(GrantError::OAuth(
                    "invalid_scope",
                    format!("scope `{bad}` is not granted to this client"),
                ));
            }
            if req.is_empty() {
                caller.scopes.clone()
            } else {
                req.to_vec()
            }
        }
    };
    let access_token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let record = CallerTokenRecord {
        client_id: caller.client_id.clone(),
        scopes: scopes.clone(),
        expires_at_ms: now_ms + caller.token_ttl_s * 1000,
    };
    let issued = IssuedToken {
        access_token,
        token_type: "Bearer",
        expires_in: caller.token_ttl_s,
        scope: scopes.join(" "),
        created_at: now_ms / 1000,
    };
    Ok((issued, record))
}

/// Whether `token` has the shape of a token this gateway issues (`tg_` and 43 base64url
/// characters), so a made-up bearer costs no KV read.
pub fn looks_like_issued_token(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The KV key of an issued token: its SHA-256, never the token.
pub fn caller_token_key(token: &str) -> String {
    format!(
        "{CALLER_TOKEN_PREFIX}{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// Whether the holder of a token with `record` may call provider `provider_id`, one of
/// `providers`; returns the provider. In this order: the caller must still be registered
/// (removing a caller revokes its tokens at once: 401), the provider must exist (404), and both
/// the token and the caller's current registration must grant it (narrowing a caller's scopes
/// applies to tokens already issued: 403).
pub fn authorize<'a, P>(
    registry: &CallerRegistry,
    record: &CallerTokenRecord,
    provider_id: &str,
    providers: &'a BTreeMap<String, P>,
) -> Result<&'a P, GatewayError> {
    let caller = registry
        .get(&record.client_id)
        .ok_or(GatewayError::InvalidToken(
            "the client is no longer registered",
        ))?;
    let provider = providers
        .get(provider_id)
        .ok_or_else(|| GatewayError::NotFound(format!("unknown provider `{provider_id}`")))?;
    let granted = |scopes: &[String]| scopes.iter().any(|s| s == provider_id);
    if granted(&record.scopes) && granted(&caller.scopes) {
        Ok(provider)
    } else {
        Err(GatewayError::InsufficientScope {
            provider: provider_id.to_string(),
        })
    }
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1; scheme case-insensitive).
pub fn parse_bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

#[cfg(test)]
mod tests;
