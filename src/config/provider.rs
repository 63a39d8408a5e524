//! Provider entry parsing: a Worker entry of `TOKENGATE_PROVIDERS` (snake_case) and the token
//! settings of an npm config (camelCase), with the rules that tie their keys together (provider
//! ids, placeholders left unfilled, reserved token parameters, the token API's requirements,
//! expiry bounds).

use super::endpoint::parse_endpoint;
use super::fields::{FieldError, Fields};
use super::headers::{check_header_names, API_HEADER_DENY, TOKEN_HEADER_DENY};
use super::settings::{
    AuthStyle, ConfigError, Coordination, Naming, ProviderConfig, TokenSettings,
    DEFAULT_REFRESH_AHEAD_PERCENT, DEFAULT_TIMEOUT_MS,
};
use crate::expiry::ExpiryPolicy;
use crate::jose::JwsAlg;
use serde_json::Value;

/// What a placeholder left in a configuration is told (the value itself is never repeated).
pub const PLACEHOLDER_MESSAGE: &str = "still holds a placeholder (`<…>`); fill it in";

/// Whether `s` is, or holds, a placeholder of the production template (`wrangler.toml`): text
/// between `<` and `>`, e.g. `<your Optimum client id>` or `https://<partner host>/api/`.
pub fn is_placeholder(s: &str) -> bool {
    s.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .is_some_and(|(inside, _)| !inside.is_empty())
}

/// The first string value of a provider entry that holds a placeholder, as the key naming it
/// (a dotted path inside tables: `token_body.name`; an array's items are named by its key).
/// An entry that is not a table has no key to name: `None` (its own rule reports it).
fn find_placeholder(value: &Value, path: &str) -> Option<String> {
    let join = |k: &str| match path {
        "" => k.to_string(),
        _ => format!("{path}.{k}"),
    };
    match value {
        Value::String(s) if !path.is_empty() && is_placeholder(s) => Some(path.to_string()),
        Value::Object(map) => map.iter().find_map(|(k, v)| find_placeholder(v, &join(k))),
        Value::Array(items) => items.iter().find_map(|v| find_placeholder(v, path)),
        _ => None,
    }
}

/// Provider ids that would shadow gateway routes (`ui`: the console's static assets), or a scope
/// ([`crate::scope::INTROSPECT_SCOPE`]).
pub const RESERVED_IDS: &[&str] = &[
    "oauth",
    "admin",
    "healthz",
    "metrics",
    "well-known",
    "introspect",
    "ui",
];

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
        return Err("is reserved for a gateway route or scope".into());
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
        // Before any other rule: an unfilled template entry is told so, not that its
        // `<…>` is an invalid URL.
        if let Some(key) = find_placeholder(entry, "") {
            return Err(err(&key, PLACEHOLDER_MESSAGE.into()));
        }
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
        let client_secret_name = secret_name(&mut fields, "client_secret_name").map_err(wrap)?;
        let client_key_name = secret_name(&mut fields, "client_key_name").map_err(wrap)?;
        let dpop_key_name = secret_name(&mut fields, "dpop_key_name").map_err(wrap)?;
        let mtls_certificate = fields.optional_str("mtls_certificate").map_err(wrap)?;
        if let Some(name) = &mtls_certificate {
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || name.is_empty() {
                return Err(err(
                    "mtls_certificate",
                    "must be a binding name of letters, digits and `_`".into(),
                ));
            }
        }
        let api_headers = fields.headers("api_headers").map_err(wrap)?;
        check_header_names(&api_headers, API_HEADER_DENY).map_err(|m| err("api_headers", m))?;
        let token = TokenSettings::from_fields(&mut fields).map_err(wrap)?;
        // Which secrets the auth style reads, and the ones it would silently ignore.
        let style = token.auth_style.as_str();
        match (token.auth_style.uses_secret(), &client_secret_name) {
            (true, None) => return Err(err("client_secret_name", "is required".into())),
            (false, Some(_)) => {
                return Err(err(
                    "client_secret_name",
                    format!("is not used with auth_style {style}, which sends no secret"),
                ))
            }
            _ => {}
        }
        match (
            token.auth_style == AuthStyle::PrivateKeyJwt,
            &client_key_name,
        ) {
            (true, None) => return Err(err(
                "client_key_name",
                "is required with auth_style private_key_jwt (the secret holding the private key)"
                    .into(),
            )),
            (false, Some(_)) => {
                return Err(err(
                    "client_key_name",
                    "is used only with auth_style private_key_jwt".into(),
                ))
            }
            _ => {}
        }
        if dpop_key_name.is_some() && !token.dpop {
            return Err(err("dpop_key_name", "is used only with dpop = true".into()));
        }
        if token.auth_style == AuthStyle::TlsClientAuth && mtls_certificate.is_none() {
            return Err(err(
                "mtls_certificate",
                "is required with auth_style tls_client_auth (the binding whose certificate \
                 authenticates the client)"
                    .into(),
            ));
        }
        let coordination = match fields
            .optional_str("coordination")
            .map_err(wrap)?
            .as_deref()
        {
            None | Some("isolate") => Coordination::Isolate,
            Some("durable_object") => Coordination::DurableObject,
            Some(_) => {
                return Err(err(
                    "coordination",
                    "must be \"isolate\" or \"durable_object\"".into(),
                ))
            }
        };
        if token.dpop && dpop_key_name.is_none() && coordination == Coordination::DurableObject {
            return Err(err(
                "dpop_key_name",
                "is required with dpop and coordination = \"durable_object\": a DPoP key generated \
                 in one isolate cannot prove possession in another (set dpop_key_name, or \
                 coordination = \"isolate\")"
                    .into(),
            ));
        }
        let refresh_ahead_percent = fields
            .optional_u64("refresh_ahead_percent", 50, 95)
            .map_err(wrap)?
            .unwrap_or(DEFAULT_REFRESH_AHEAD_PERCENT);
        fields.finish().map_err(wrap)?;
        Ok(ProviderConfig {
            id: id.to_string(),
            token,
            api_base,
            client_secret_name,
            client_key_name,
            dpop_key_name,
            mtls_certificate,
            api_headers,
            coordination,
            refresh_ahead_percent,
        })
    }
}

impl ProviderConfig {
    /// The Worker secrets this provider reads, with what each holds: its client secret, its
    /// private key, its DPoP key.
    pub fn secret_names(&self) -> Vec<(&str, &'static str)> {
        [
            (&self.client_secret_name, "client secret"),
            (&self.client_key_name, "private key (private_key_jwt)"),
            (&self.dpop_key_name, "DPoP key"),
        ]
        .into_iter()
        .filter_map(|(n, what)| n.as_deref().map(|n| (n, what)))
        .collect()
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
                    "unknown value; expected client_secret_basic, client_secret_post, json_body, \
                     token_api, private_key_jwt or tls_client_auth",
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
            "client_assertion",
            "client_assertion_type",
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
        let alg_given = f.optional_str("client_key_alg")?;
        let client_key_alg = match &alg_given {
            None => JwsAlg::default(),
            Some(a) => JwsAlg::parse(a)
                .ok_or_else(|| f.error("client_key_alg", "must be ES256, RS256 or PS256"))?,
        };
        let kid = f.optional_str("kid")?;
        let assertion_audience = f.optional_str("assertion_audience")?;
        if auth_style != AuthStyle::PrivateKeyJwt {
            for (key, set) in [
                ("client_key_alg", alg_given.is_some()),
                ("kid", kid.is_some()),
                ("assertion_audience", assertion_audience.is_some()),
            ] {
                if set {
                    return Err(f.error(key, "is used only with auth_style private_key_jwt"));
                }
            }
        }
        let dpop = f.optional_bool("dpop")?.unwrap_or(false);
        if dpop && auth_style == AuthStyle::TokenApi {
            return Err(f.error(
                "dpop",
                "is not used with auth_style token_api (a token API is not an OAuth server)",
            ));
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
        let token_rate_limit_per_minute = f
            .optional_u64("token_rate_limit_per_minute", 1, 100_000)?
            .map(|n| n as u32);
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
            token_rate_limit_per_minute,
            client_key_alg,
            kid,
            assertion_audience,
            dpop,
        })
    }
}

/// An optional Worker secret name: letters, digits and `_`, and none of the gateway's own
/// settings (naming one would send, say, TOKENGATE_KEY to the provider).
fn secret_name(f: &mut Fields<'_>, key: &str) -> Result<Option<String>, FieldError> {
    let Some(name) = f.optional_str(key)? else {
        return Ok(None);
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(f.error(key, "must be a secret name of letters, digits and `_`"));
    }
    if name.starts_with("TOKENGATE_") || super::gateway::VARS.contains(&name.as_str()) {
        return Err(f.error(
            key,
            "names one of tokengate's own settings (TOKENGATE_*, max_body_bytes, log_level); \
             give the provider's secret a name of its own",
        ));
    }
    Ok(Some(name))
}

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
