//! The gateway's own callers: the `TOKENGATE_CLIENTS` registry, constant-time authentication
//! against it, and each registration's fingerprint (which the tokens issued to it carry, so
//! rotating its secret revokes them). How a token request is parsed is [`crate::grant`]; the
//! tokens themselves are [`crate::caller_tokens`].

use crate::config::ConfigError;
use crate::credentials::{is_managed_client_id, CLIENT_ID_PREFIX};
use crate::keys::Keys;
use crate::limits::DEFAULT_TOKEN_REQUESTS_PER_MINUTE;
use crate::scope::Scope;
use crate::secret::{ct_eq_bytes, Secret};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Default lifetime of an issued token, seconds.
pub const DEFAULT_CALLER_TTL_S: u64 = 3600;

/// SHA-256 of the empty string (FIPS 180-4; `sha256sum < /dev/null`).
const EMPTY_SHA256: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// One registered caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's client id.
    pub client_id: String,
    secret_sha256: [u8; 32],
    /// What this caller may do: each a valid [`Scope`] (a provider id, `<provider>:read` or
    /// `introspect`).
    pub scopes: Vec<String>,
    /// Lifetime of tokens issued to it, seconds (60 ..= 86400: KV's minimum TTL is 60 s).
    pub token_ttl_s: u64,
    /// How many tokens it may ask for per minute (counted by its authority object: [`crate::authority::client::count_issue`]).
    pub token_requests_per_minute: u32,
    /// This registration's fingerprint (see [`registration_fingerprint`]).
    pub registration: String,
}

/// A registration's fingerprint: an HMAC, under the token-MAC subkey, of the client id and its
/// secret's hash. A token carries the fingerprint of the registration it was issued under;
/// rotating the caller's secret changes it, which revokes every token issued before.
pub fn registration_fingerprint(keys: &Keys, client_id: &str, secret_sha256: &[u8; 32]) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(keys.token_mac()).expect("HMAC takes any key");
    mac.update(b"tokengate/v1/caller-registration\0");
    mac.update(client_id.as_bytes());
    mac.update(b"\0");
    mac.update(secret_sha256);
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The parsed `TOKENGATE_CLIENTS` secret.
#[derive(Clone, Debug, Default)]
pub struct CallerRegistry {
    callers: BTreeMap<String, Caller>,
}

/// One entry of the registry as written: `{secret_sha256, scopes, token_ttl_s?,
/// token_requests_per_minute?}`, nothing else (a misspelt key, or a plain `secret`, is refused
/// rather than ignored).
struct RawCaller {
    secret_sha256: String,
    scopes: Vec<String>,
    token_ttl_s: Option<u64>,
    token_requests_per_minute: Option<u64>,
}

/// The largest `token_requests_per_minute`: one token a second per caller is already more than
/// KV's one write per key per second spread over distinct keys needs; a hundred times that
/// still bounds a compromised caller.
pub const MAX_TOKEN_REQUESTS_PER_MINUTE: u32 = 6_000;

impl RawCaller {
    fn parse(v: &Value) -> Result<RawCaller, String> {
        let obj = v.as_object().ok_or("must be an object")?;
        if let Some(k) = obj.keys().find(|k| {
            !matches!(
                k.as_str(),
                "secret_sha256" | "scopes" | "token_ttl_s" | "token_requests_per_minute"
            )
        }) {
            return Err(format!(
                "unknown field `{k}`, expected `secret_sha256`, `scopes`, `token_ttl_s` or \
                 `token_requests_per_minute`"
            ));
        }
        let secret_sha256 = match obj.get("secret_sha256") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("secret_sha256 must be a string".into()),
            None => return Err("missing field `secret_sha256`".into()),
        };
        let scopes = match obj.get("scopes") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or("scopes must be an array of scope strings")?,
            Some(_) => return Err("scopes must be an array of scope strings".into()),
            None => return Err("missing field `scopes`".into()),
        };
        let whole = |key: &str, what: &str| match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("{key} must be a whole number of {what}")),
        };
        Ok(RawCaller {
            secret_sha256,
            scopes,
            token_ttl_s: whole("token_ttl_s", "seconds")?,
            token_requests_per_minute: whole("token_requests_per_minute", "requests")?,
        })
    }
}

impl CallerRegistry {
    /// Parses the JSON object `{ "<client_id>": { secret_sha256, scopes, token_ttl_s } }`
    /// (each scope parsed by [`Scope::parse`]); `keys` fingerprint each registration.
    pub fn parse(name: &str, json: &str, keys: &Keys) -> Result<Self, ConfigError> {
        let map: Map<String, Value> = serde_json::from_str(json)
            .map_err(|_| ConfigError::global(name, "must be a JSON object keyed by client id"))?;
        let mut callers = BTreeMap::new();
        for (id, v) in map {
            let err = |m: String| ConfigError::global(format!("{name}.{id}"), m);
            if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
                return Err(err("client id must be 1-128 printable characters".into()));
            }
            if is_managed_client_id(&id) {
                return Err(err(format!(
                    "a client id of `{CLIENT_ID_PREFIX}` and 22 base62 characters is reserved for \
                     clients created with the admin API"
                )));
            }
            let raw = RawCaller::parse(&v).map_err(err)?;
            let mut secret_sha256 = [0u8; 32];
            hex::decode_to_slice(raw.secret_sha256.trim(), &mut secret_sha256)
                .map_err(|_| err("secret_sha256 must be 64 hex digits".into()))?;
            // Empty credentials are refused before they are checked (RFC 6749 §2.3.1): a
            // registration that only the empty secret matches could never authenticate.
            if secret_sha256 == EMPTY_SHA256 {
                return Err(err(
                    "secret_sha256 is the SHA-256 of the empty string; register a real secret"
                        .into(),
                ));
            }
            if raw.scopes.is_empty() {
                return Err(err("scopes must hold at least one scope".into()));
            }
            for s in &raw.scopes {
                Scope::parse(s).map_err(|m| err(format!("scope `{s}` {m}")))?;
            }
            let token_ttl_s = raw.token_ttl_s.unwrap_or(DEFAULT_CALLER_TTL_S);
            if !(60..=86_400).contains(&token_ttl_s) {
                return Err(err("token_ttl_s must be from 60 to 86400".into()));
            }
            let per_minute = raw
                .token_requests_per_minute
                .unwrap_or(DEFAULT_TOKEN_REQUESTS_PER_MINUTE.into());
            if !(1..=u64::from(MAX_TOKEN_REQUESTS_PER_MINUTE)).contains(&per_minute) {
                return Err(err(format!(
                    "token_requests_per_minute must be from 1 to {MAX_TOKEN_REQUESTS_PER_MINUTE}"
                )));
            }
            callers.insert(
                id.clone(),
                Caller {
                    registration: registration_fingerprint(keys, &id, &secret_sha256),
                    client_id: id,
                    secret_sha256,
                    scopes: raw.scopes,
                    token_ttl_s,
                    token_requests_per_minute: per_minute as u32,
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

    /// Each caller's registration fingerprint, by client id (what the ledger is reconciled
    /// with).
    pub fn registrations(&self) -> BTreeMap<String, String> {
        self.callers
            .values()
            .map(|c| (c.client_id.clone(), c.registration.clone()))
            .collect()
    }

    /// Checks that the provider part of every caller's scopes names a configured provider
    /// (`is_provider` says which ids are configured; `introspect` names none): a scope naming an
    /// unknown one is a mistake in one of the two settings, found at start rather than as a 403
    /// later. The error is about `<name>.<client id>.scopes`.
    pub fn check_scopes(
        &self,
        name: &str,
        is_provider: impl Fn(&str) -> bool,
    ) -> Result<(), ConfigError> {
        for caller in self.callers.values() {
            let unknown = caller
                .scopes
                .iter()
                .filter_map(|s| Scope::parse(s).ok())
                .find(|s| s.provider().is_some_and(|p| !is_provider(p)));
            if let Some(p) = unknown.as_ref().and_then(Scope::provider) {
                return Err(ConfigError::global(
                    format!("{name}.{}.scopes", caller.client_id),
                    format!("names unknown provider `{p}`"),
                ));
            }
        }
        Ok(())
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

#[cfg(test)]
pub(crate) mod tests;
