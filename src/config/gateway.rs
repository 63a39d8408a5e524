//! The Worker's settings beside the provider entries: the names of its binding, vars and
//! secrets, the rules for their values (`TOKENGATE_PROVIDERS` as a table or a JSON string,
//! `max_body_bytes`, `log_level`, a secret being set) and the list of secrets a configuration
//! needs. Values arrive as [`Value`]s (`None`: not set), so the Worker (from its `Env`) and the
//! configuration check (`tools/check-config`, from the wrangler TOML file) run the same code
//! and give the same messages.

use super::provider::parse_providers;
use super::settings::{ConfigError, ProviderConfig};
use crate::log_level::LogLevel;
use serde_json::Value;

/// KV namespace binding.
pub const KV_BINDING: &str = "TOKENGATE_KV";
/// The Durable Object namespace binding of the minter (`coordination = "durable_object"`).
pub const MINTER_BINDING: &str = "TOKENGATE_MINTER";
/// The minter's Durable Object class, exported by the Worker.
pub const MINTER_CLASS: &str = "TokenMinter";
/// The Durable Object namespace binding of the caller authority (required): exact limits,
/// managed callers, revocation, statistics ([`crate::authority`]).
pub const LIMITER_BINDING: &str = "TOKENGATE_LIMITER";
/// The caller authority's Durable Object class, exported by the Worker.
pub const LIMITER_CLASS: &str = "CallerAuthority";
/// The admin API's bearer token secret (optional: without it every `/admin/*` route is 404).
pub const ADMIN_TOKEN_SECRET: &str = "TOKENGATE_ADMIN_TOKEN";
/// The shortest admin token accepted: 32 characters (a random one has well over 128 bits).
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;
/// Provider map variable.
pub const PROVIDERS_VAR: &str = "TOKENGATE_PROVIDERS";
/// Caller registry secret.
pub const CLIENTS_SECRET: &str = "TOKENGATE_CLIENTS";
/// At-rest encryption key secret.
pub const KEY_SECRET: &str = "TOKENGATE_KEY";
/// Request body limit variable.
pub const MAX_BODY_VAR: &str = "max_body_bytes";
/// Log level variable.
pub const LOG_LEVEL_VAR: &str = "log_level";
/// Every variable (`[vars]` key) tokengate reads.
pub const VARS: &[&str] = &[PROVIDERS_VAR, MAX_BODY_VAR, LOG_LEVEL_VAR];
/// Largest `max_body_bytes`: 100 MiB, the Workers request body limit.
pub const MAX_BODY_CAP: u64 = 100 * 1024 * 1024;
/// Default request body limit: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// The error for a missing `TOKENGATE_KV` binding.
pub fn kv_binding_missing() -> ConfigError {
    ConfigError::global(
        KV_BINDING,
        "KV namespace binding is missing (kv_namespaces in wrangler.toml)",
    )
}

/// The error for a provider whose `mtls_certificate` names binding `name`, which is not bound
/// (the deployed Worker at start-up, `make check-config` before a deploy).
pub fn mtls_binding_missing(provider: &str, name: &str) -> ConfigError {
    ConfigError {
        provider: Some(provider.to_string()),
        key: "mtls_certificate".into(),
        message: format!(
            "names the binding `{name}`, which is not bound: add an [[mtls_certificates]] entry \
             with binding = \"{name}\" and your certificate_id"
        ),
    }
}

/// The error for a missing `TOKENGATE_LIMITER` binding.
pub fn limiter_binding_missing() -> ConfigError {
    ConfigError::global(
        LIMITER_BINDING,
        "Durable Object namespace binding is missing (bind it to class_name = \"CallerAuthority\" \
         under [[durable_objects.bindings]] and declare the class in [[migrations]])",
    )
}

/// The admin token (`TOKENGATE_ADMIN_TOKEN`), if it is set: at least
/// [`MIN_ADMIN_TOKEN_LEN`] characters, printable ASCII without spaces (it travels in an
/// `Authorization` header).
pub fn admin_token(value: Option<&Value>) -> Result<Option<String>, ConfigError> {
    let bad = |m: &str| ConfigError::global(ADMIN_TOKEN_SECRET, m);
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            if s.len() < MIN_ADMIN_TOKEN_LEN {
                Err(bad(
                    "must be at least 32 characters (e.g. `openssl rand -base64 32`)",
                ))
            } else if !s.bytes().all(|b| b.is_ascii_graphic()) {
                Err(bad("must be printable ASCII without spaces"))
            } else {
                Ok(Some(s.clone()))
            }
        }
        Some(_) => Err(bad("must be a string (a Worker secret)")),
    }
}

/// The providers of `TOKENGATE_PROVIDERS`: a table of provider tables, or the same as a JSON
/// string.
pub fn providers(value: Option<&Value>) -> Result<Vec<ProviderConfig>, ConfigError> {
    let name = PROVIDERS_VAR;
    let table = match value {
        None => {
            return Err(ConfigError::global(
                name,
                "is not set (add it under [vars] in wrangler.toml)",
            ))
        }
        Some(Value::String(s)) => &serde_json::from_str(s)
            .map_err(|e| ConfigError::global(name, format!("is not valid JSON ({e})")))?,
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(ConfigError::global(name, "must be a table of providers")),
    };
    parse_providers(table)
}

/// `max_body_bytes`: a whole number of bytes from 1 to [`MAX_BODY_CAP`] (a number, or a string
/// holding one); [`DEFAULT_MAX_BODY_BYTES`] when not set.
pub fn max_body_bytes(value: Option<&Value>) -> Result<u64, ConfigError> {
    let n = match value {
        None => return Ok(DEFAULT_MAX_BODY_BYTES),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => serde_json::from_str::<f64>(s.trim()).ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= MAX_BODY_CAP as f64 => Ok(n as u64),
        _ => Err(ConfigError::global(
            MAX_BODY_VAR,
            format!("must be a whole number of bytes from 1 to {MAX_BODY_CAP} (100 MiB, the Workers request limit)"),
        )),
    }
}

/// `log_level`: `info` (when not set), `warn` or `error`.
pub fn log_level(value: Option<&Value>) -> Result<LogLevel, ConfigError> {
    match value {
        None => Ok(LogLevel::Info),
        Some(v) => v.as_str().and_then(LogLevel::parse).ok_or_else(|| {
            ConfigError::global(LOG_LEVEL_VAR, "must be \"info\", \"warn\" or \"error\"")
        }),
    }
}

/// The value of Worker secret `name` (of `provider`, for a provider's client secret): a
/// non-empty string. The error names the secret, never its value.
pub fn secret(
    name: &str,
    provider: Option<&str>,
    value: Option<&Value>,
) -> Result<String, ConfigError> {
    let error = |message: String| ConfigError {
        provider: provider.map(String::from),
        key: name.to_string(),
        message,
    };
    match value {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        None | Some(Value::String(_)) => Err(error(format!(
            "Worker secret `{name}` is not set (wrangler secret put {name})"
        ))),
        Some(_) => Err(error("must be a string secret".into())),
    }
}

/// A Worker secret a configuration needs, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredSecret {
    /// The secret's name (`wrangler secret put NAME`).
    pub name: String,
    /// What it holds, in one line.
    pub note: String,
}

/// The Worker secrets a configuration may add: [`ADMIN_TOKEN_SECRET`] (the admin API).
pub fn optional_secrets() -> Vec<RequiredSecret> {
    vec![RequiredSecret {
        name: ADMIN_TOKEN_SECRET.into(),
        note: "optional: the admin API's bearer token (32+ characters); without it /admin/* is 404"
            .into(),
    }]
}

/// The Worker secrets `providers` need: [`KEY_SECRET`], [`CLIENTS_SECRET`], then each
/// provider's `client_secret_name`, `client_key_name` and `dpop_key_name` in provider order,
/// each name once (one secret shared by several providers names them all).
pub fn required_secrets(providers: &[ProviderConfig]) -> Vec<RequiredSecret> {
    let mut out = vec![
        RequiredSecret {
            name: KEY_SECRET.into(),
            note: "32 random bytes, base64: seals what KV holds and tags caller tokens".into(),
        },
        RequiredSecret {
            name: CLIENTS_SECRET.into(),
            note: "the callers, JSON: each client id's secret_sha256, scopes and token_ttl_s"
                .into(),
        },
    ];
    let mut users: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for p in providers {
        for (name, what) in p.secret_names() {
            match users.iter_mut().find(|(n, w, _)| *n == name && *w == what) {
                Some((_, _, ids)) => ids.push(&p.id),
                None => users.push((name, what, vec![&p.id])),
            }
        }
    }
    for (name, what, ids) in users {
        if out.iter().any(|s| s.name == name) {
            continue;
        }
        let ids: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
        let s = if ids.len() > 1 { "s" } else { "" };
        out.push(RequiredSecret {
            name: name.into(),
            note: format!("the {what} of provider{s} {}", ids.join(", ")),
        });
    }
    out
}
