//! What the admin API is given: the bodies of `POST /admin/clients` and
//! `PATCH /admin/clients/{id}`, the query of `GET /admin/clients`, and the errors it answers
//! with.
//!
//! Bodies are checked in one order, and the first fault is the answer: the body is a JSON
//! object (400), no member is repeated (400), no member is unknown (422 naming it), required
//! members are present, then each member in the order `name`, `scopes`, `token_ttl_s`,
//! `limits`, `ip_allowlist`, `disabled` (422 naming the field, `scopes[1]` for an item).

use super::cidr::Cidr;
use super::record::{ClientPatch, Limits, LimitsPatch, NewClient};
use crate::callers::DEFAULT_CALLER_TTL_S;
use crate::grant::repeated_member;
use crate::scope::Scope;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

/// The members a client body may hold (`additionalProperties: false`).
const MEMBERS: &[&str] = &[
    "name",
    "scopes",
    "token_ttl_s",
    "limits",
    "ip_allowlist",
    "disabled",
];
/// The members `limits` may hold.
const LIMIT_MEMBERS: &[&str] = &["requests_per_minute", "total_requests"];
/// The longest name, characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The most scopes a client may hold.
pub const MAX_SCOPES: usize = 64;
/// The shortest and longest token lifetime, seconds (KV's minimum TTL is 60 s).
pub const TOKEN_TTL_RANGE_S: std::ops::RangeInclusive<u64> = 60..=86_400;
/// The range of `limits.requests_per_minute`.
pub const REQUESTS_PER_MINUTE_RANGE: std::ops::RangeInclusive<u64> = 1..=100_000;
/// The range of `limits.total_requests`.
pub const TOTAL_REQUESTS_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000_000_000;
/// The most networks an allowlist may hold.
pub const MAX_ALLOWLIST: usize = 100;
/// The default page size of `GET /admin/clients`.
pub const DEFAULT_PAGE_LIMIT: usize = 50;
/// The largest page size of `GET /admin/clients`.
pub const MAX_PAGE_LIMIT: usize = 100;

/// An admin API error: status, `error` code, description and the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminError {
    /// HTTP status.
    pub status: u16,
    /// The body's `error`.
    pub code: &'static str,
    /// The body's `error_description`.
    pub description: String,
    /// The field at fault (`scopes[1]`, `limits.total_requests`), for a 422.
    pub field: Option<String>,
}

impl AdminError {
    /// 400 `invalid_request`: the body cannot be read as a client body.
    pub fn malformed(description: impl Into<String>) -> Self {
        AdminError {
            status: 400,
            code: "invalid_request",
            description: description.into(),
            field: None,
        }
    }

    /// 422 `invalid_request`: `field` holds an invalid value; the description is
    /// `<field>: <message>`.
    pub fn invalid(field: impl Into<String>, message: &str) -> Self {
        let field = field.into();
        AdminError {
            status: 422,
            code: "invalid_request",
            description: format!("{field}: {message}"),
            field: Some(field),
        }
    }

    /// 404 `not_found`.
    pub fn not_found(description: impl Into<String>) -> Self {
        AdminError {
            status: 404,
            code: "not_found",
            description: description.into(),
            field: None,
        }
    }

    /// `{"error", "error_description"}`, and `"field"` when one is at fault.
    pub fn body(&self) -> Value {
        let mut body = json!({"error": self.code, "error_description": self.description});
        if let (Some(field), Some(obj)) = (&self.field, body.as_object_mut()) {
            obj.insert("field".into(), Value::from(field.as_str()));
        }
        body
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// The JSON object of `body`, with no member repeated and none unknown.
fn object(body: &[u8]) -> Result<Map<String, Value>, AdminError> {
    let value: Value = crate::json_from_bytes(body)
        .ok_or_else(|| AdminError::malformed("the body must be a JSON object"))?;
    let Value::Object(obj) = value else {
        return Err(AdminError::malformed("the body must be a JSON object"));
    };
    // A member given twice means whatever each reader makes of it: refused (as the token
    // endpoint refuses one).
    if let Some(k) = repeated_member(body) {
        return Err(AdminError::malformed(format!("member `{k}` is repeated")));
    }
    if let Some(k) = obj.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
        return Err(AdminError::invalid(k.as_str(), "is not a client field"));
    }
    Ok(obj)
}

/// A name: a string of 1–200 characters, none a control character.
fn name(v: &Value) -> Result<String, AdminError> {
    let bad = || {
        AdminError::invalid(
            "name",
            "must be a string of 1 to 200 characters, none a control character",
        )
    };
    let s = v.as_str().ok_or_else(bad)?;
    let chars = s.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || s.chars().any(char::is_control) {
        return Err(bad());
    }
    Ok(s.to_string())
}

/// Scopes: a non-empty array of at most 64 distinct valid scopes, each provider part one
/// `is_provider` knows.
fn scopes(v: &Value, is_provider: &dyn Fn(&str) -> bool) -> Result<Vec<String>, AdminError> {
    let items = v
        .as_array()
        .filter(|a| !a.is_empty() && a.len() <= MAX_SCOPES)
        .ok_or_else(|| {
            AdminError::invalid("scopes", "must be an array of 1 to 64 scope strings")
        })?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("scopes[{i}]");
        let s = item
            .as_str()
            .ok_or_else(|| AdminError::invalid(field.as_str(), "must be a string"))?;
        let scope = Scope::parse(s).map_err(|m| AdminError::invalid(field.as_str(), &m))?;
        if let Some(p) = scope.provider().filter(|p| !is_provider(p)) {
            return Err(AdminError::invalid(
                field,
                &format!("names no configured provider (`{p}`)"),
            ));
        }
        if let Some(j) = out.iter().position(|seen| seen == s) {
            return Err(AdminError::invalid(field, &format!("repeats scopes[{j}]")));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// A token lifetime: a whole number of seconds from 60 to 86400.
fn token_ttl_s(v: &Value) -> Result<u64, AdminError> {
    v.as_u64()
        .filter(|n| TOKEN_TTL_RANGE_S.contains(n))
        .ok_or_else(|| {
            AdminError::invalid(
                "token_ttl_s",
                "must be a whole number of seconds from 60 to 86400",
            )
        })
}

/// A limit: null (no limit) or a whole number in `range`.
fn limit(
    v: &Value,
    member: &str,
    range: &std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, AdminError> {
    match v {
        Value::Null => Ok(None),
        _ => v
            .as_u64()
            .filter(|n| range.contains(n))
            .map(Some)
            .ok_or_else(|| {
                AdminError::invalid(
                    format!("limits.{member}"),
                    &format!(
                        "must be null or a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

/// `limits`: null (every limit removed) or an object of `requests_per_minute` and
/// `total_requests`, each null (removed) or a whole number in its range; a member left out is
/// left as it is (RFC 7396).
fn limits_patch(v: &Value) -> Result<LimitsPatch, AdminError> {
    let obj = match v {
        Value::Null => {
            return Ok(LimitsPatch {
                requests_per_minute: Some(None),
                total_requests: Some(None),
            })
        }
        Value::Object(obj) => obj,
        _ => {
            return Err(AdminError::invalid(
                "limits",
                "must be an object of requests_per_minute and total_requests",
            ))
        }
    };
    if let Some(k) = obj.keys().find(|k| !LIMIT_MEMBERS.contains(&k.as_str())) {
        return Err(AdminError::invalid(format!("limits.{k}"), "is not a limit"));
    }
    let requests_per_minute = obj
        .get("requests_per_minute")
        .map(|v| limit(v, "requests_per_minute", &REQUESTS_PER_MINUTE_RANGE))
        .transpose()?
        // The range is within u32.
        .map(|n| n.map(|n| n as u32));
    let total_requests = obj
        .get("total_requests")
        .map(|v| limit(v, "total_requests", &TOTAL_REQUESTS_RANGE))
        .transpose()?;
    Ok(LimitsPatch {
        requests_per_minute,
        total_requests,
    })
}

/// An allowlist: an array of at most 100 distinct CIDR strings ([`Cidr::parse`]).
fn ip_allowlist(v: &Value) -> Result<Vec<Cidr>, AdminError> {
    let items = v
        .as_array()
        .filter(|a| a.len() <= MAX_ALLOWLIST)
        .ok_or_else(|| {
            AdminError::invalid(
                "ip_allowlist",
                "must be an array of at most 100 CIDR strings",
            )
        })?;
    let mut out: Vec<Cidr> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("ip_allowlist[{i}]");
        let s = item
            .as_str()
            .ok_or_else(|| AdminError::invalid(field.as_str(), "must be a string"))?;
        let cidr = Cidr::parse(s).map_err(|m| AdminError::invalid(field.as_str(), &m))?;
        if let Some(j) = out.iter().position(|seen| *seen == cidr) {
            return Err(AdminError::invalid(
                field,
                &format!("repeats ip_allowlist[{j}]"),
            ));
        }
        out.push(cidr);
    }
    Ok(out)
}

/// `disabled`: a boolean.
fn disabled(v: &Value) -> Result<bool, AdminError> {
    v.as_bool()
        .ok_or_else(|| AdminError::invalid("disabled", "must be true or false"))
}

/// Parses a `POST /admin/clients` body: `{name, scopes, token_ttl_s?, limits?,
/// ip_allowlist?, disabled?}` (an optional member given as null is its default: 3600 s, no
/// limits, no allowlist, enabled). `is_provider` says which provider ids are configured.
pub fn parse_new_client(
    body: &[u8],
    is_provider: impl Fn(&str) -> bool,
) -> Result<NewClient, AdminError> {
    let obj = object(body)?;
    let required = |k: &str| {
        obj.get(k)
            .ok_or_else(|| AdminError::invalid(k, "is required"))
    };
    let (name_value, scopes_value) = (required("name")?, required("scopes")?);
    let name = name(name_value)?;
    let scopes = scopes(scopes_value, &is_provider)?;
    // An optional member given as null is the default.
    let optional = |k: &str| obj.get(k).filter(|v| !v.is_null());
    Ok(NewClient {
        name,
        scopes,
        token_ttl_s: optional("token_ttl_s")
            .map(token_ttl_s)
            .transpose()?
            .unwrap_or(DEFAULT_CALLER_TTL_S),
        limits: optional("limits")
            .map(limits_patch)
            .transpose()?
            .map(|p| p.merged(&Limits::default()))
            .unwrap_or_default(),
        ip_allowlist: optional("ip_allowlist")
            .map(ip_allowlist)
            .transpose()?
            .unwrap_or_default(),
        disabled: optional("disabled")
            .map(disabled)
            .transpose()?
            .unwrap_or(false),
    })
}

/// Parses a `PATCH /admin/clients/{id}` body: at least one of the client members; `limits`
/// merges (RFC 7396: null removes a limit, a member left out keeps it), and null for any
/// other member is refused (422: it cannot be removed).
pub fn parse_patch(
    body: &[u8],
    is_provider: impl Fn(&str) -> bool,
) -> Result<ClientPatch, AdminError> {
    let obj = object(body)?;
    if obj.is_empty() {
        return Err(AdminError::malformed(format!(
            "the body must set at least one of {}",
            MEMBERS.join(", ")
        )));
    }
    // Every member but limits must hold a value when given.
    let given = |k: &str| match obj.get(k) {
        Some(Value::Null) => Err(AdminError::invalid(k, "cannot be null")),
        v => Ok(v),
    };
    Ok(ClientPatch {
        name: given("name")?.map(name).transpose()?,
        scopes: given("scopes")?
            .map(|v| scopes(v, &is_provider))
            .transpose()?,
        token_ttl_s: given("token_ttl_s")?.map(token_ttl_s).transpose()?,
        limits: obj.get("limits").map(limits_patch).transpose()?,
        ip_allowlist: given("ip_allowlist")?.map(ip_allowlist).transpose()?,
        disabled: given("disabled")?.map(disabled).transpose()?,
    })
}

/// A page of `GET /admin/clients`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageQuery {
    /// The page starts after this key (the cursor's); `None`: at the first.
    pub after: Option<String>,
    /// The most items on the page (1 ..= 100).
    pub limit: usize,
}

/// Cursor pagination for `GET /admin/clients?cursor=&limit=`: items sorted by key; cursor is
/// opaque (base64url of the last key given). `query` is the URL's query, without `?`. `limit`
/// is 1 to 100 (default 50); an empty `cursor` is the first page; a bad `limit` or `cursor`,
/// or either given twice, is 422 naming it; other parameters are ignored.
pub fn parse_page_query(query: Option<&str>) -> Result<PageQuery, AdminError> {
    let mut limit = None;
    let mut cursor = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match k.as_ref() {
            "limit" => &mut limit,
            "cursor" => &mut cursor,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(AdminError::invalid(k, "is given more than once"));
        }
    }
    let limit = match limit {
        None => DEFAULT_PAGE_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| l.bytes().all(|b| b.is_ascii_digit()) && (1..=MAX_PAGE_LIMIT).contains(n))
            .ok_or_else(|| AdminError::invalid("limit", "must be a whole number from 1 to 100"))?,
    };
    let after = match cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| AdminError::invalid("cursor", "is not a cursor this API gave"))?,
        ),
    };
    Ok(PageQuery { after, limit })
}

/// The cursor of the page after the one whose last key is `last_key`.
pub fn next_cursor(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key)
}

/// The page `query` asks for of `sorted` (sorted by `key`, ascending, keys distinct), and the
/// cursor of the next page (`None` when this one reaches the end).
pub fn page<'a, T>(
    sorted: &'a [T],
    key: impl Fn(&T) -> &str,
    query: &PageQuery,
) -> (&'a [T], Option<String>) {
    let start = match &query.after {
        Some(after) => sorted.partition_point(|item| key(item) <= after.as_str()),
        None => 0,
    };
    let rest = &sorted[start..];
    let items = &rest[..rest.len().min(query.limit)];
    let next = match items.last() {
        Some(last) if rest.len() > items.len() => Some(next_cursor(key(last))),
        _ => None,
    };
    (items, next)
}
