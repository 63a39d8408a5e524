//! A managed client's record, what creates it and what changes it.

use super::cidr::Cidr;
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// A managed client's request limits; `None` is no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Proxied requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Proxied requests over the client's life.
    pub total_requests: Option<u64>,
}

impl Limits {
    /// `{"requests_per_minute": n|null, "total_requests": n|null}`.
    pub fn to_json(&self) -> Value {
        json!({
            "requests_per_minute": self.requests_per_minute,
            "total_requests": self.total_requests,
        })
    }
}

/// A change of [`Limits`] (RFC 7396 merge patch): `None` keeps a limit, `Some(None)` removes
/// it, `Some(Some(n))` sets it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitsPatch {
    /// The change of `requests_per_minute`.
    pub requests_per_minute: Option<Option<u32>>,
    /// The change of `total_requests`.
    pub total_requests: Option<Option<u64>>,
}

impl LimitsPatch {
    /// `limits` with this patch merged in.
    pub fn merged(&self, limits: &Limits) -> Limits {
        Limits {
            requests_per_minute: self
                .requests_per_minute
                .unwrap_or(limits.requests_per_minute),
            total_requests: self.total_requests.unwrap_or(limits.total_requests),
        }
    }
}

/// A managed client as the admin API shows it and storage keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    /// Its client id.
    pub client_id: String,
    /// A name for people (1–200 characters, no control characters).
    pub name: String,
    /// What it may do ([`crate::scope`]).
    pub scopes: Vec<String>,
    /// Lifetime of tokens issued to it, seconds (60 ..= 86400).
    pub token_ttl_s: u64,
    /// Its request limits.
    pub limits: Limits,
    /// The networks it may be used from; empty: anywhere.
    pub ip_allowlist: Vec<Cidr>,
    /// A disabled client gets no tokens and its tokens are refused.
    pub disabled: bool,
    /// Creation time, seconds since the epoch.
    pub created_at: u64,
    /// Last change, seconds since the epoch.
    pub updated_at: u64,
}

impl ClientRecord {
    /// The public record: exactly `client_id`, `name`, `scopes`, `token_ttl_s`, `limits`
    /// ([`Limits::to_json`]), `ip_allowlist` (canonical CIDR strings), `disabled`,
    /// `created_at` and `updated_at`.
    pub fn to_json(&self) -> Value {
        json!({
            "client_id": self.client_id,
            "name": self.name,
            "scopes": self.scopes,
            "token_ttl_s": self.token_ttl_s,
            "limits": self.limits.to_json(),
            "ip_allowlist": self
                .ip_allowlist
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            "disabled": self.disabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// The record [`ClientRecord::to_json`] gave (storage), `None` when a field is missing or
    /// of the wrong type. Values are not validated again: storage holds what the API accepted.
    pub fn from_json(v: &Value) -> Option<ClientRecord> {
        let obj = v.as_object()?;
        let text = |k: &str| obj.get(k)?.as_str().map(str::to_string);
        let whole = |k: &str| obj.get(k)?.as_u64();
        let limits = obj.get("limits")?.as_object()?;
        let limit = |k: &str| match limits.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(n) => n.as_u64().map(Some),
        };
        Some(ClientRecord {
            client_id: text("client_id")?,
            name: text("name")?,
            scopes: strings(obj, "scopes")?,
            token_ttl_s: whole("token_ttl_s")?,
            limits: Limits {
                requests_per_minute: match limit("requests_per_minute")? {
                    Some(n) => Some(u32::try_from(n).ok()?),
                    None => None,
                },
                total_requests: limit("total_requests")?,
            },
            ip_allowlist: strings(obj, "ip_allowlist")?
                .iter()
                .map(|s| Cidr::parse(s).ok())
                .collect::<Option<_>>()?,
            disabled: obj.get("disabled")?.as_bool()?,
            created_at: whole("created_at")?,
            updated_at: whole("updated_at")?,
        })
    }

    /// Whether a request from `address` (CF-Connecting-IP text; None/unparsable: unknown) may
    /// use this client: an empty allowlist allows all; otherwise the address must parse and fall
    /// in one CIDR.
    pub fn allows_address(&self, address: Option<&str>) -> bool {
        if self.ip_allowlist.is_empty() {
            return true;
        }
        let Some(ip) = address.and_then(|a| a.trim().parse::<IpAddr>().ok()) else {
            return false;
        };
        self.ip_allowlist.iter().any(|net| net.contains(ip))
    }

    /// Applies `patch` (each member given replaces the field; `limits` merges) and sets
    /// `updated_at` to `now_s`.
    pub fn apply(&mut self, patch: &ClientPatch, now_s: u64) {
        if let Some(name) = &patch.name {
            self.name = name.clone();
        }
        if let Some(scopes) = &patch.scopes {
            self.scopes = scopes.clone();
        }
        if let Some(ttl) = patch.token_ttl_s {
            self.token_ttl_s = ttl;
        }
        if let Some(limits) = &patch.limits {
            self.limits = limits.merged(&self.limits);
        }
        if let Some(list) = &patch.ip_allowlist {
            self.ip_allowlist = list.clone();
        }
        if let Some(disabled) = patch.disabled {
            self.disabled = disabled;
        }
        self.updated_at = now_s;
    }
}

/// The strings of array member `k` of `obj`.
fn strings(obj: &Map<String, Value>, k: &str) -> Option<Vec<String>> {
    obj.get(k)?
        .as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// A valid `POST /admin/clients` body, defaults filled in ([`super::parse_new_client`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewClient {
    /// The name.
    pub name: String,
    /// The scopes.
    pub scopes: Vec<String>,
    /// Token lifetime, seconds (default 3600).
    pub token_ttl_s: u64,
    /// The limits (default: none).
    pub limits: Limits,
    /// The allowlist (default: empty, anywhere).
    pub ip_allowlist: Vec<Cidr>,
    /// Whether it starts disabled (default false).
    pub disabled: bool,
}

impl NewClient {
    /// The record of the client created as `client_id` at `now_s`.
    pub fn into_record(self, client_id: String, now_s: u64) -> ClientRecord {
        ClientRecord {
            client_id,
            name: self.name,
            scopes: self.scopes,
            token_ttl_s: self.token_ttl_s,
            limits: self.limits,
            ip_allowlist: self.ip_allowlist,
            disabled: self.disabled,
            created_at: now_s,
            updated_at: now_s,
        }
    }
}

/// A valid `PATCH /admin/clients/{id}` body ([`super::parse_patch`]): `None` keeps a field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientPatch {
    /// A new name.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// A new token lifetime.
    pub token_ttl_s: Option<u64>,
    /// Changes of the limits (merged, RFC 7396).
    pub limits: Option<LimitsPatch>,
    /// A new allowlist.
    pub ip_allowlist: Option<Vec<Cidr>>,
    /// Disables or enables the client.
    pub disabled: Option<bool>,
}

impl ClientPatch {
    /// Whether applying the patch may take away something the client's tokens already issued
    /// could do: disabling it, or setting its scopes, token lifetime, a limit or its allowlist
    /// (judged without the record, so any new value of those counts). A new name, enabling it,
    /// emptying its allowlist or removing limits only ever widens it.
    pub fn narrows_or_disables(&self) -> bool {
        let sets_limit = self.limits.as_ref().is_some_and(|l| {
            matches!(l.requests_per_minute, Some(Some(_)))
                || matches!(l.total_requests, Some(Some(_)))
        });
        self.disabled == Some(true)
            || self.scopes.is_some()
            || self.token_ttl_s.is_some()
            || sets_limit
            || self.ip_allowlist.as_ref().is_some_and(|l| !l.is_empty())
    }
}
