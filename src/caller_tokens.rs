//! The tokens the gateway issues to its callers, what Workers KV holds for each, and when one
//! is still good.
//!
//! - **The token**: a [`crate::credentials`] token, `tgt_`, 32 random bytes and a 16-byte tag
//!   (an HMAC under the token-MAC subkey of `TOKENGATE_KEY`, [`crate::keys`]) in base62, and
//!   a CRC-32 checksum, so secret scanners recognise a leaked one. A bearer that is mistyped
//!   or whose tag does not verify is refused before any KV read, so a flood of made-up tokens
//!   costs no KV reads (RFC 6750 §5.2 wants tokens unguessable; the tag makes them checkable).
//!   Tokens of the previous format, `tg_` and base64url of the random bytes and their tag,
//!   are still accepted ([`verify_tag`]): those issued before an upgrade keep working until
//!   they expire, at most [`MAX_TOKEN_LIFE_MS`] (24 h) later.
//! - **The record**: under `tg:v2:ctok:` and the token's SHA-256 (never the token), sealed with
//!   AES-256-GCM under the seal subkey with the KV key as associated data ([`crate::seal`]).
//!   Write access to the KV namespace alone cannot mint a token, extend one, or move a record
//!   to another token.
//! - **Validity** ([`authorize`]), on every use: the caller is still registered, under the
//!   registration the token was issued to (rotating its secret revokes its tokens), it has
//!   not been removed since the token was issued (the [`CallerLedger`] remembers removals, so
//!   removing a caller and adding it back revokes its earlier tokens), and the token is not
//!   past its expiry nor past its issue time plus the caller's current `token_ttl_s`.

use crate::callers::{Caller, CallerRegistry};
use crate::credentials::{self, Kind};
use crate::gateway_error::GatewayError;
use crate::grant::GrantError;
use crate::keys::Keys;
use crate::scope::{narrow, permits};
use crate::secret::ct_eq_bytes;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// KV key prefix of issued caller tokens (followed by the token's SHA-256, hex).
pub const CALLER_TOKEN_PREFIX: &str = "tg:v2:ctok:";
/// Prefix of every issued token, so leaked ones are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = crate::credentials::TOKEN_PREFIX;
/// Prefix of the tokens issued before [`crate::credentials`] (`tg_` and base64url of 32 random
/// bytes and a 16-byte tag), still accepted until the last of them expires.
pub const LEGACY_TOKEN_PREFIX: &str = "tg_";
/// The longest life of a caller token, ms (`token_ttl_s` is at most 86400).
pub const MAX_TOKEN_LIFE_MS: u64 = 86_400_000;

const RANDOM_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// base64url, unpadded, of random ‖ tag: a legacy token after its prefix.
const ENCODED_LEN: usize = (RANDOM_LEN + TAG_LEN) * 4 / 3;

/// What KV holds (sealed) for an issued token, under [`caller_token_key`]: JSON
/// `{client_id, registration, scopes, issued_at_ms, expires_at_ms}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerTokenRecord {
    /// The caller it was issued to.
    pub client_id: String,
    /// The caller's registration fingerprint then ([`crate::callers::registration_fingerprint`]).
    pub registration: String,
    /// Its scopes ([`crate::scope`]), narrowed at issue.
    pub scopes: Vec<String>,
    /// Issue time, ms since the epoch.
    pub issued_at_ms: u64,
    /// Expiry, ms since the epoch.
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
    /// Granted scopes, space-separated.
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

/// The tag of a legacy (`tg_`) token.
fn legacy_tag(keys: &Keys, random: &[u8]) -> [u8; TAG_LEN] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(keys.token_mac()).expect("HMAC takes any key");
    mac.update(b"tokengate/v1/caller-token\0");
    mac.update(random);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full[..TAG_LEN]);
    out
}

/// Issues a token for `caller` from 32 random bytes at `now_ms`. `requested` narrows the scope
/// ([`narrow`]: `optoro:read` from a caller granted `optoro`); asking for a scope the caller's
/// scopes do not cover is `invalid_scope` (RFC 6749 §5.2).
pub fn issue_token(
    caller: &Caller,
    requested: Option<&[String]>,
    random: [u8; RANDOM_LEN],
    now_ms: u64,
    keys: &Keys,
) -> Result<(IssuedToken, CallerTokenRecord), GrantError> {
    let scopes = narrow(&caller.scopes, requested).map_err(|bad| {
        GrantError::OAuth(
            "invalid_scope",
            format!("scope `{bad}` is not granted to this client"),
        )
    })?;
    let access_token = credentials::issue(Kind::Token, None, random, keys);
    let record = CallerTokenRecord {
        client_id: caller.client_id.clone(),
        registration: caller.registration.clone(),
        scopes: scopes.clone(),
        issued_at_ms: now_ms,
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

/// Whether `token` is one this deployment issued to a caller of `TOKENGATE_CLIENTS`, by its
/// shape, checksum and tag alone (constant-time comparison; no I/O): a [`TOKEN_PREFIX`] token
/// bound to no managed client ([`credentials::check`]), or a legacy [`LEGACY_TOKEN_PREFIX`]
/// token, accepted so that tokens issued before an upgrade keep working until they expire (at
/// most 24 h). A mistyped, made-up or altered bearer fails here, before any KV read.
pub fn verify_tag(token: &str, keys: &Keys) -> bool {
    if token.starts_with(TOKEN_PREFIX) {
        return credentials::check(token, Kind::Token, keys).is_ok_and(|c| c.client.is_none());
    }
    let Some(rest) = token.strip_prefix(LEGACY_TOKEN_PREFIX) else {
        return false;
    };
    if rest.len() != ENCODED_LEN {
        return false;
    }
    let Ok(raw) = URL_SAFE_NO_PAD.decode(rest) else {
        return false;
    };
    let (random, given) = raw.split_at(RANDOM_LEN);
    ct_eq_bytes(&legacy_tag(keys, random), given)
}

/// The KV key of an issued token: its SHA-256, never the token.
pub fn caller_token_key(token: &str) -> String {
    format!(
        "{CALLER_TOKEN_PREFIX}{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// The sealed KV value of `record` under `kv_key` (`nonce`: 12 random bytes).
pub fn seal_record(
    record: &CallerTokenRecord,
    kv_key: &str,
    keys: &Keys,
    nonce: [u8; 12],
) -> String {
    let plain = json!({
        "client_id": record.client_id,
        "registration": record.registration,
        "scopes": record.scopes,
        "issued_at_ms": record.issued_at_ms,
        "expires_at_ms": record.expires_at_ms,
    })
    .to_string();
    keys.seal().seal(nonce, kv_key.as_bytes(), plain.as_bytes())
}

/// The record sealed under `kv_key`, or `None` when it does not open (another key, another
/// KV key, tampering, the old unsealed format) or does not parse.
pub fn open_record(sealed: &str, kv_key: &str, keys: &Keys) -> Option<CallerTokenRecord> {
    let plain = keys.seal().open(kv_key.as_bytes(), sealed)?;
    let v: Value = crate::json_from_bytes(&plain)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let ms = |k: &str| v.get(k).and_then(Value::as_u64);
    Some(CallerTokenRecord {
        client_id: text("client_id")?,
        registration: text("registration")?,
        scopes: v
            .get("scopes")?
            .as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<_>>()?,
        issued_at_ms: ms("issued_at_ms")?,
        expires_at_ms: ms("expires_at_ms")?,
    })
}

/// Whether the holder of a token with `record` may send a `method` request to provider
/// `provider_id`, one of `providers`, at `now_ms`; returns the provider. In this order: the
/// token must still be good (401 `invalid_token`: see the module documentation), the provider
/// must exist (404), and both the token's scopes and the caller's current ones must permit the
/// request ([`permits`]: a `<provider>:read` scope only reads; narrowing a caller's scopes
/// applies to tokens already issued: 403).
pub fn authorize<'a, P>(
    registry: &CallerRegistry,
    ledger: &CallerLedger,
    record: &CallerTokenRecord,
    now_ms: u64,
    provider_id: &str,
    method: &str,
    providers: &'a BTreeMap<String, P>,
) -> Result<&'a P, GatewayError> {
    let caller = check_record(registry, ledger, record, now_ms)?;
    let provider = providers
        .get(provider_id)
        .ok_or_else(|| GatewayError::NotFound(format!("unknown provider `{provider_id}`")))?;
    let granted = |scopes: &[String]| permits(scopes, provider_id, method);
    if granted(&record.scopes) && granted(&caller.scopes) {
        Ok(provider)
    } else {
        Err(GatewayError::InsufficientScope {
            provider: provider_id.to_string(),
        })
    }
}

/// The caller of a still-good token, or why it is no longer good.
pub fn check_record<'a>(
    registry: &'a CallerRegistry,
    ledger: &CallerLedger,
    record: &CallerTokenRecord,
    now_ms: u64,
) -> Result<&'a Caller, GatewayError> {
    let caller = registry
        .get(&record.client_id)
        .ok_or(GatewayError::InvalidToken(
            "the client is no longer registered",
        ))?;
    if !ct_eq_bytes(
        caller.registration.as_bytes(),
        record.registration.as_bytes(),
    ) {
        return Err(GatewayError::InvalidToken(
            "the client's secret has changed since the token was issued",
        ));
    }
    if ledger
        .removed_at(&record.client_id)
        .is_some_and(|removed| record.issued_at_ms <= removed)
    {
        return Err(GatewayError::InvalidToken(
            "the client was removed after the token was issued",
        ));
    }
    let capped = record
        .issued_at_ms
        .saturating_add(caller.token_ttl_s * 1000)
        .min(record.expires_at_ms);
    if now_ms >= capped {
        return Err(GatewayError::InvalidToken(
            "the token is unknown or expired",
        ));
    }
    Ok(caller)
}

/// The token of an `Authorization: Bearer` header (RFC 6750 §2.1; scheme case-insensitive).
pub fn parse_bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// What tokengate remembers about its callers across deployments, kept by the caller
/// authority's directory object (Durable Object storage: nothing in KV can change it): each
/// registration it has seen, and when a caller was seen removed. A token issued before its
/// caller's removal stays revoked when the caller is added back.
///
/// Each isolate reconciles the ledger with the registry it loaded ([`CallerLedger::reconcile`])
/// before serving a caller. A removal is noticed only by an isolate that starts while the
/// caller is absent, i.e. when a configuration without it was deployed and served a request.
///
/// Stored as JSON: `{"callers": {"<client id>": {registration, removed_at_ms?, present}}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerLedger {
    callers: BTreeMap<String, LedgerEntry>,
}

/// One caller in the [`CallerLedger`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its registration fingerprint when last seen registered.
    pub registration: String,
    /// When it was last seen removed, ms since the epoch.
    pub removed_at_ms: Option<u64>,
    /// Whether it is registered now.
    pub present: bool,
}

impl CallerLedger {
    /// The ledger after loading `registry` at `now_ms`, and whether it changed (and must be
    /// written back). A caller missing from the registry is marked removed (once); a caller
    /// present again keeps its removal time, which revokes what was issued before it. Entries
    /// of callers removed longer ago than any token lives are dropped.
    pub fn reconcile(&self, registry: &CallerRegistry, now_ms: u64) -> (CallerLedger, bool) {
        self.reconcile_registrations(&registry.registrations(), now_ms)
    }

    /// [`CallerLedger::reconcile`] with the registry as `{client id: registration
    /// fingerprint}` (what an isolate sends the authority that keeps the ledger).
    pub fn reconcile_registrations(
        &self,
        registrations: &BTreeMap<String, String>,
        now_ms: u64,
    ) -> (CallerLedger, bool) {
        let mut next = BTreeMap::new();
        for (id, e) in &self.callers {
            if registrations.contains_key(id) {
                continue;
            }
            let removed_at_ms = if e.present {
                now_ms
            } else {
                e.removed_at_ms.unwrap_or(now_ms)
            };
            if now_ms.saturating_sub(removed_at_ms) > MAX_TOKEN_LIFE_MS {
                continue; // everything it was issued has expired
            }
            next.insert(
                id.clone(),
                LedgerEntry {
                    registration: e.registration.clone(),
                    removed_at_ms: Some(removed_at_ms),
                    present: false,
                },
            );
        }
        for (id, registration) in registrations {
            let removed_at_ms = self
                .callers
                .get(id)
                .and_then(|e| e.removed_at_ms)
                .filter(|at| now_ms.saturating_sub(*at) <= MAX_TOKEN_LIFE_MS);
            next.insert(
                id.clone(),
                LedgerEntry {
                    registration: registration.clone(),
                    removed_at_ms,
                    present: true,
                },
            );
        }
        let next = CallerLedger { callers: next };
        let changed = next != *self;
        (next, changed)
    }

    /// When `client_id` was last seen removed.
    pub fn removed_at(&self, client_id: &str) -> Option<u64> {
        self.callers.get(client_id).and_then(|e| e.removed_at_ms)
    }

    /// The ledger as JSON: `{"callers": {"<client id>": {registration, removed_at_ms?,
    /// present}}}`.
    pub fn to_json(&self) -> String {
        let mut callers = serde_json::Map::new();
        for (id, e) in &self.callers {
            let mut entry = json!({"registration": e.registration, "present": e.present});
            if let (Some(at), Some(obj)) = (e.removed_at_ms, entry.as_object_mut()) {
                obj.insert("removed_at_ms".into(), Value::from(at));
            }
            callers.insert(id.clone(), entry);
        }
        json!({ "callers": callers }).to_string()
    }

    /// The ledger [`CallerLedger::to_json`] wrote, or `None` when it does not parse.
    pub fn from_json(text: &str) -> Option<CallerLedger> {
        let v: Value = crate::json_from_bytes(text.as_bytes())?;
        let mut callers = BTreeMap::new();
        for (id, e) in v.get("callers")?.as_object()? {
            let removed_at_ms = match e.get("removed_at_ms") {
                None | Some(Value::Null) => None,
                Some(at) => Some(at.as_u64()?),
            };
            let entry = LedgerEntry {
                registration: e.get("registration")?.as_str()?.to_string(),
                removed_at_ms,
                present: e.get("present")?.as_bool()?,
            };
            callers.insert(id.clone(), entry);
        }
        Some(CallerLedger { callers })
    }
}

#[cfg(test)]
mod tests;
