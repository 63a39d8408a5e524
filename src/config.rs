//! Provider configuration: parsing and validation, shared by the Worker (`snake_case` keys in
//! `wrangler.toml`) and the npm package (`camelCase` keys in JS). Every error names the provider
//! and the offending key; no error ever contains a secret value.

use crate::expiry::ExpiryPolicy;
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
}

impl AuthStyle {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthStyle::ClientSecretBasic => "client_secret_basic",
            AuthStyle::ClientSecretPost => "client_secret_post",
            AuthStyle::JsonBody => "json_body",
            AuthStyle::TokenApi => "token_api",
        }
    }

    /// Whether tokens are rotated with their refresh token and removed when replaced (the
    /// token-management dialect), rather than left to expire.
    pub fn manages_tokens(self) -> bool {
        self == AuthStyle::TokenApi
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(AuthStyle::ClientSecretBasic),
            "client_secret_post" => Some(AuthStyle::ClientSecretPost),
            "json_body" => Some(AuthStyle::JsonBody),
            "token_api" => Some(AuthStyle::TokenApi),
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
}

/// Default timeout for one token or API call.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// A Worker provider entry from `TOKENGATE_PROVIDERS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Provider id: the first path segment of proxied requests.
    pub id: String,
    /// Token settings.
    pub token: TokenSettings,
    /// The only base URL proxied requests may reach; its path ends with `/`.
    pub api_base: Url,
    /// Name of the Worker secret holding the client secret.
    pub client_secret_name: String,
    /// Headers added to every proxied request (e.g. Optoro's `X-Optiturn-Api-Version`:
    /// `docs/providers.md#optoro-rate-limits-and-api-version`).
    pub api_headers: BTreeMap<String, String>,
}

/// Provider ids that would shadow gateway routes.
pub const RESERVED_IDS: &[&str] = &["oauth", "admin", "healthz", "metrics", "well-known"];

/// Checks a provider id: `^[a-z0-9][a-z0-9-]{0,62}$`, not reserved.
pub fn validate_provider_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-');
    if !ok {
        return Err("must match ^[a-z0-9][a-z0-9-]{0,62}$".into());
    }
    if RESERVED_IDS.contains(&id) {
        return Err("is reserved for a gateway route".into());
    }
    Ok(())
}

/// Parses the whole `TOKENGATE_PROVIDERS` object.
pub fn parse_providers(value: &Value) -> Result<Vec<ProviderConfig>, ConfigError> {
    let map = value.as_object().ok_or_else(|| {
        ConfigError::global(
            "TOKENGATE_PROVIDERS",
            "must be an object keyed by provider id",
        )
    })?;
    if map.is_empty() {
        return Err(ConfigError::global(
            "TOKENGATE_PROVIDERS",
            "defines no provider",
        ));
    }
    map.iter()
        .map(|(id, entry)| ProviderConfig::parse(id, entry))
        .collect()
}

impl ProviderConfig {
    /// Parses and validates one provider entry (snake_case keys).
    pub fn parse(id: &str, entry: &Value) -> Result<Self, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            provider: Some(id.to_string()),
            key: key.to_string(),
            message,
        };
        validate_provider_id(id).map_err(|m| err("id", format!("`{id}` {m}")))?;
        let mut fields = Fields::new(entry, Naming::Snake).map_err(|m| err("entry", m))?;
        let wrap = |e: FieldError| err(&e.key, e.message);
        let api_base = fields.required_str("api_base").map_err(wrap)?;
        let api_base = parse_endpoint(&api_base)
            .map_err(|m| err("api_base", m))
            .map(|mut u| {
                if !u.path().ends_with('/') {
                    let p = format!("{}/", u.path());
                    u.set_path(&p);
                }
                u
            })?;
        if api_base.query().is_some() {
            return Err(err("api_base", "must not have a query".into()));
        }
        let client_secret_name = fields.required_str("client_secret_name").map_err(wrap)?;
        if !client_secret_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(err(
                "client_secret_name",
                "must be a secret name of letters, digits and `_`".into(),
            ));
        }
        let api_headers = fields.headers("api_headers").map_err(wrap)?;
        check_header_names(&api_headers, API_HEADER_DENY).map_err(|m| err("api_headers", m))?;
        let token = TokenSettings::from_fields(&mut fields).map_err(wrap)?;
        fields.finish().map_err(wrap)?;
        Ok(ProviderConfig {
            id: id.to_string(),
            token,
            api_base,
            client_secret_name,
            api_headers,
        })
    }
}

impl TokenSettings {
    /// Parses the token settings of an npm `TokenClient` config (`camelCase`); `clientSecret`
    /// and any key in `extra_allowed` are left for the caller to read.
    pub fn parse_camel(value: &Value, extra_allowed: &[&str]) -> Result<Self, ConfigError> {
        let mut fields =
            Fields::new(value, Naming::Camel).map_err(|m| ConfigError::global("config", m))?;
        for k in extra_allowed {
            fields.seen.push(k.to_string());
        }
        let wrap = |e: FieldError| ConfigError::global(e.key, e.message);
        let settings = Self::from_fields(&mut fields).map_err(wrap)?;
        fields.finish().map_err(wrap)?;
        Ok(settings)
    }

    fn from_fields(f: &mut Fields<'_>) -> Result<Self, FieldError> {
        let token_url = f.required_str("token_url")?;
        let token_url = parse_endpoint(&token_url).map_err(|m| f.error("token_url", m))?;
        let client_id = f.required_str("client_id")?;
        let auth_style = match f.optional_str("auth_style")? {
            None => AuthStyle::ClientSecretBasic,
            Some(s) => AuthStyle::parse(&s).ok_or_else(|| {
                f.error(
                    "auth_style",
                    "unknown value; expected client_secret_basic, client_secret_post, json_body or token_api",
                )
            })?,
        };
        let scope = f.optional_str("scope")?;
        let audience = f.optional_str("audience")?;
        let resource = f.optional_str("resource")?;
        let token_params = f.string_map("token_params")?;
        const RESERVED_PARAMS: &[&str] = &[
            "grant_type",
            "client_id",
            "client_secret",
            "scope",
            "audience",
            "resource",
        ];
        if let Some(k) = token_params
            .keys()
            .find(|k| RESERVED_PARAMS.contains(&k.as_str()))
        {
            return Err(f.error(
                "token_params",
                format!("`{k}` is set by the gateway; use its own key"),
            ));
        }
        let token_headers = f.headers("token_headers")?;
        check_header_names(&token_headers, TOKEN_HEADER_DENY)
            .map_err(|m| f.error("token_headers", m))?;
        let token_body = f.token_body("token_body")?;
        if auth_style == AuthStyle::TokenApi {
            if token_body.is_none() {
                return Err(f.error(
                    "token_body",
                    "is required with auth_style token_api (its scopes, ttl, name, limits)",
                ));
            }
            // Parameters of an OAuth token request mean nothing to a token API: refused
            // rather than silently ignored.
            let oauth_only = [
                ("scope", scope.is_some()),
                ("audience", audience.is_some()),
                ("resource", resource.is_some()),
                ("token_params", !token_params.is_empty()),
            ];
            if let Some((key, _)) = oauth_only.iter().find(|(_, set)| *set) {
                return Err(f.error(
                    key,
                    "is not used with auth_style token_api; scopes go in token_body",
                ));
            }
            if token_url.query().is_some() {
                return Err(f.error(
                    "token_url",
                    "must not have a query with auth_style token_api (tokens are addressed below it)",
                ));
            }
            // RFC 7617 §2: the user-id of HTTP Basic cannot contain a colon.
            if client_id.contains(':') {
                return Err(f.error(
                    "client_id",
                    "must not contain `:` with auth_style token_api (HTTP Basic user)",
                ));
            }
        } else if token_body.is_some() {
            return Err(f.error("token_body", "is used only with auth_style token_api"));
        }
        let expiry = expiry_fields(f)?;
        if let Some(body) = &token_body {
            // A token lives `ttl` and is rotated before then; one the gateway stopped using
            // earlier (at `max_lifetime_s`) could outlive every record of it.
            let ttl = body.get("ttl").and_then(Value::as_u64);
            if ttl.is_none_or(|t| t > expiry.max_lifetime_s) {
                return Err(f.error(
                    "token_body.ttl",
                    format!(
                        "is required with auth_style token_api, at most max_lifetime_s ({} s)",
                        expiry.max_lifetime_s
                    ),
                ));
            }
        }
        let retry = f.retry("retry")?;
        let timeout_ms = f
            .optional_u64("timeout_ms", 1, 300_000)?
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        Ok(TokenSettings {
            token_url,
            client_id,
            auth_style,
            scope,
            audience,
            resource,
            token_params,
            token_headers,
            token_body,
            expiry,
            retry,
            timeout_ms,
        })
    }
}

/// The longest `ttl` a token API grants: one year, in seconds
/// (`docs/providers.md#openapi-token-api`).
pub const TOKEN_API_MAX_TTL_S: u64 = 31_536_000;

impl ExpiryPolicy {
    /// Parses the expiry keys of an npm config (`refreshSkewS`, `defaultLifetimeS`,
    /// `maxLifetimeS`) with the rules of a full config; other keys are ignored, so a whole
    /// `TokenClient` config is accepted too.
    pub fn parse_camel(value: &Value) -> Result<Self, ConfigError> {
        let mut fields =
            Fields::new(value, Naming::Camel).map_err(|m| ConfigError::global("policy", m))?;
        expiry_fields(&mut fields).map_err(|e| ConfigError::global(e.key, e.message))
    }
}

fn expiry_fields(f: &mut Fields<'_>) -> Result<ExpiryPolicy, FieldError> {
    let d = ExpiryPolicy::default();
    let expiry = ExpiryPolicy {
        refresh_skew_s: f
            .optional_u64("refresh_skew_s", 0, 86_400)?
            .unwrap_or(d.refresh_skew_s),
        default_lifetime_s: f
            .optional_u64("default_lifetime_s", 1, 31_622_400)?
            .unwrap_or(d.default_lifetime_s),
        max_lifetime_s: f
            .optional_u64("max_lifetime_s", 1, 31_622_400)?
            .unwrap_or(d.max_lifetime_s),
    };
    if expiry.default_lifetime_s > expiry.max_lifetime_s {
        return Err(f.error(
            "default_lifetime_s",
            "must not exceed max_lifetime_s".to_string(),
        ));
    }
    Ok(expiry)
}

/// Whether `url`'s host is this machine (127.0.0.1, localhost, [::1]): the one place plain
/// http may carry credentials.
pub fn is_loopback(url: &Url) -> bool {
    matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
    )
}

/// Validates an endpoint URL: https, or http for loopback hosts only; no credentials, no
/// fragment.
pub fn parse_endpoint(s: &str) -> Result<Url, String> {
    // Host names are plain ASCII (the IDNA tables are left out of the wasm): a percent-encoded
    // or non-ASCII host is refused before the URL parser would try to map it.
    // The URL parser silently drops tabs and newlines and trims spaces and controls: a value
    // holding any is refused rather than read as something other than what it says.
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let after_scheme = s.split_once(':').map_or(s, |(_, rest)| rest);
    let authority = after_scheme
        .trim_start_matches(['/', '\\'])
        .split(['/', '\\', '?', '#'])
        .next()
        .unwrap_or("");
    if authority.contains('%') || !authority.is_ascii() {
        return Err(
            "has a host that is not plain ASCII (give an international name in its xn-- form)"
                .into(),
        );
    }
    let url = Url::parse(s).map_err(|e| format!("is not a valid absolute URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err("must use https (http is allowed only for 127.0.0.1 and localhost)".into())
        }
        other => return Err(format!("has unsupported scheme `{other}`")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    Ok(url)
}

const TOKEN_HEADER_DENY: &[&str] = &[
    "accept",
    "authorization",
    "content-type",
    "content-length",
    "host",
];
const API_HEADER_DENY: &[&str] = &[
    "authorization",
    "host",
    "cookie",
    "content-length",
    "connection",
    "transfer-encoding",
];

fn check_header_names(headers: &BTreeMap<String, String>, deny: &[&str]) -> Result<(), String> {
    for (name, value) in headers {
        let token_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token_ok {
            return Err(format!("`{name}` is not a valid header name"));
        }
        if deny.iter().any(|d| name.eq_ignore_ascii_case(d)) {
            return Err(format!(
                "`{name}` is set by the gateway and cannot be configured"
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("value of `{name}` contains a control character"));
        }
    }
    Ok(())
}

struct FieldError {
    key: String,
    message: String,
}

/// Reads typed keys out of a JSON object, remembering which were read so unknown keys can be
/// reported by name.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    naming: Naming,
    prefix: String,
    seen: Vec<String>,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, naming: Naming) -> Result<Self, String> {
        let map = value.as_object().ok_or("must be an object")?;
        Ok(Fields {
            map,
            naming,
            prefix: String::new(),
            seen: Vec::new(),
        })
    }

    fn name(&self, key: &str) -> String {
        format!("{}{}", self.prefix, self.naming.key(key))
    }

    fn error(&self, key: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            key: self.name(key),
            message: message.into(),
        }
    }

    fn get(&mut self, key: &str) -> Option<&'a Value> {
        let k = self.naming.key(key);
        let v = self.map.get(&k).filter(|v| !v.is_null());
        self.seen.push(k);
        v
    }

    fn optional_str(&mut self, key: &str) -> Result<Option<String>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(self.error(key, "must not be empty")),
            Some(_) => Err(self.error(key, "must be a string")),
        }
    }

    fn required_str(&mut self, key: &str) -> Result<String, FieldError> {
        self.optional_str(key)?
            .ok_or_else(|| self.error(key, "is required"))
    }

    fn optional_u64(&mut self, key: &str, min: u64, max: u64) -> Result<Option<u64>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.error(key, format!("must be a whole number from {min} to {max}"))),
            },
        }
    }

    fn optional_bool(&mut self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.error(key, "must be true or false")),
        }
    }

    fn string_map(&mut self, key: &str) -> Result<BTreeMap<String, String>, FieldError> {
        let Some(v) = self.get(key) else {
            return Ok(BTreeMap::new());
        };
        let obj = v
            .as_object()
            .ok_or_else(|| self.error(key, "must be an object of strings"))?;
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(self.error(key, format!("value of `{k}` must be a string"))),
            };
            out.insert(k.clone(), value);
        }
        Ok(out)
    }

    /// A token API's creation body (`docs/providers.md#openapi-token-api`): `scopes` (required,
    /// each `METHOD:host/path-prefix`), `ttl` (seconds, at most a year), `name`, `limits` (an
    /// object, passed on as given). Unknown keys are refused by name.
    fn token_body(&mut self, key: &str) -> Result<Option<Map<String, Value>>, FieldError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let mut inner = Fields::new(v, self.naming).map_err(|m| self.error(key, m))?;
        inner.prefix = format!("{}.", self.name(key));
        let mut body = Map::new();
        let scopes = match inner.get("scopes") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => return Err(inner.error("scopes", "must be a non-empty array of scopes")),
        };
        for s in scopes {
            let ok = s
                .as_str()
                .and_then(|s| s.split_once(':'))
                .is_some_and(|(m, rest)| {
                    (m == "*" || (!m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase())))
                        && rest.contains('/')
                        && !rest.starts_with('/')
                        && rest.bytes().all(|b| b.is_ascii_graphic())
                });
            if !ok {
                return Err(inner.error(
                    "scopes",
                    "each scope must be a string METHOD:host/path, e.g. GET:company.openapi.com/IT-start",
                ));
            }
        }
        body.insert("scopes".into(), Value::Array(scopes.clone()));
        if let Some(ttl) = inner.optional_u64("ttl", 1, TOKEN_API_MAX_TTL_S)? {
            body.insert("ttl".into(), Value::from(ttl));
        }
        if let Some(name) = inner.optional_str("name")? {
            body.insert("name".into(), Value::String(name));
        }
        match inner.get("limits") {
            None => {}
            Some(Value::Object(limits)) => {
                body.insert("limits".into(), Value::Object(limits.clone()));
            }
            Some(_) => return Err(inner.error("limits", "must be an object")),
        }
        inner.finish()?;
        Ok(Some(body))
    }

    fn headers(&mut self, key: &str) -> Result<BTreeMap<String, String>, FieldError> {
        // Header names keep the spelling the user wrote; only the outer key is renamed.
        self.string_map(key)
    }

    fn retry(&mut self, key: &str) -> Result<RetryPolicy, FieldError> {
        let d = RetryPolicy::default();
        let Some(v) = self.get(key) else {
            return Ok(d);
        };
        let mut inner = Fields::new(v, self.naming).map_err(|m| self.error(key, m))?;
        inner.prefix = format!("{}.", self.name(key));
        let policy = RetryPolicy {
            max_attempts: inner
                .optional_u64("max_attempts", 1, 10)?
                .map(|n| n as u32)
                .unwrap_or(d.max_attempts),
            base_delay_ms: inner
                .optional_u64("base_delay_ms", 0, 60_000)?
                .unwrap_or(d.base_delay_ms),
            max_delay_ms: inner
                .optional_u64("max_delay_ms", 0, 300_000)?
                .unwrap_or(d.max_delay_ms),
            retry_unsafe_methods: inner
                .optional_bool("retry_unsafe_methods")?
                .unwrap_or(d.retry_unsafe_methods),
        };
        if policy.base_delay_ms > policy.max_delay_ms {
            return Err(inner.error("base_delay_ms", "must not exceed max_delay_ms"));
        }
        inner.finish()?;
        Ok(policy)
    }

    fn finish(self) -> Result<(), FieldError> {
        match self.map.keys().find(|k| !self.seen.contains(k)) {
            Some(k) => Err(FieldError {
                key: format!("{}{k}", self.prefix),
                message: "is not a known key".into(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
