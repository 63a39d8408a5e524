//! Token-response parsing (RFC 6749 §5.1 success, §5.2 errors) with the documented providers'
//! variations: Optoro's `created_at` (`docs/providers.md#optoro-token-response`), `expires_in` as
//! a string, JWT-only expiry (the partner API's JWTs carry `exp`:
//! `docs/providers.md#partner-token-response`), Optoro's `{message, errors[]}` error bodies
//! (`docs/providers.md#optoro-errors-and-retries`), and non-JSON error pages.

use crate::error::{ErrorCode, TokenError};
use crate::expiry::ExpiryPolicy;
use crate::http::HttpResponse;
use crate::jwt;
use crate::retry::parse_retry_after;
use crate::scrub::Scrubber;
use crate::secret::Secret;
use serde_json::Value;

/// A provider access token with its validity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The bearer token.
    pub access_token: Secret,
    /// `Bearer`, or `DPoP` for a DPoP-bound token (normalised): the `Authorization` scheme it
    /// is sent with.
    pub token_type: String,
    /// When the provider issued it (response `created_at` when sane, else receipt time), ms.
    pub issued_at_ms: u64,
    /// When it expires, ms since the epoch.
    pub expires_at_ms: u64,
    /// Granted scope, if the provider said.
    pub scope: Option<String>,
    /// The token's refresh token, for a token API that rotates tokens
    /// (`docs/providers.md#openapi-token-api`); `None` for OAuth token endpoints.
    pub refresh_token: Option<Secret>,
}

impl Token {
    /// Whether `other` carries the same access token (compared in constant time).
    pub fn same_token(&self, other: &Token) -> bool {
        self.access_token.ct_eq(other.access_token.expose())
    }

    /// The `Authorization` header value it is sent with: `Bearer …`, or `DPoP …` for a
    /// DPoP-bound token (RFC 9449 §7.1).
    pub fn authorization(&self) -> String {
        format!("{} {}", self.token_type, self.access_token.expose())
    }

    /// The token as the shared store keeps it: `{access_token, token_type, issued_at_ms,
    /// expires_at_ms, scope?, refresh_token?}` (JSON; sealed by the shell that stores it).
    pub fn to_stored(&self) -> String {
        let mut v = serde_json::json!({
            "access_token": self.access_token.expose(),
            "token_type": self.token_type,
            "issued_at_ms": self.issued_at_ms,
            "expires_at_ms": self.expires_at_ms,
        });
        if let Some(obj) = v.as_object_mut() {
            if let Some(scope) = &self.scope {
                obj.insert("scope".into(), Value::from(scope.as_str()));
            }
            if let Some(refresh) = &self.refresh_token {
                obj.insert("refresh_token".into(), Value::from(refresh.expose()));
            }
        }
        v.to_string()
    }

    /// A token written by [`Token::to_stored`]; `None` for anything else. (Read by hand from a
    /// JSON tree rather than derived: the wasm builds carry no deserializer of their own for it.)
    pub fn from_stored(s: &str) -> Option<Token> {
        let v: Value = serde_json::from_str(s).ok()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let ms = |k: &str| v.get(k).and_then(Value::as_u64);
        let optional = |k: &str| match v.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        };
        Some(Token {
            access_token: Secret::new(text("access_token")?),
            token_type: text("token_type")?,
            issued_at_ms: ms("issued_at_ms")?,
            expires_at_ms: ms("expires_at_ms")?,
            scope: optional("scope")?,
            refresh_token: optional("refresh_token")?.map(Secret::new),
        })
    }
}

const RAW_BODY_LIMIT: usize = 512;

/// Parses a token-endpoint response received at `now_ms`.
///
/// Lifetime: `expires_in` (number or numeric string) counted from `created_at` when that is
/// sane (not in the future, not older than the lifetime), else from `now_ms`; without
/// `expires_in`, the `exp` of a JWT access token; else `default_lifetime_s`. When both
/// `expires_in` and a JWT `exp` exist the earlier wins. The result is capped at
/// `max_lifetime_s`.
///
/// What an error keeps of the answer has gone through `scrub` (the secrets of the exchange).
pub fn parse_token_response(
    resp: &HttpResponse,
    now_ms: u64,
    policy: &ExpiryPolicy,
    scrub: &Scrubber,
) -> Result<Token, TokenError> {
    parse_token_response_of(resp, now_ms, policy, scrub, false)
}

/// [`parse_token_response`] for a client that asked for DPoP-bound tokens (`dpop`): a
/// `token_type` of `DPoP` is accepted too (RFC 9449 §5), and kept, so the token is sent as
/// `Authorization: DPoP …`; a server that issued a Bearer token anyway gets it back as one
/// (§7.1).
pub fn parse_token_response_of(
    resp: &HttpResponse,
    now_ms: u64,
    policy: &ExpiryPolicy,
    scrub: &Scrubber,
    dpop: bool,
) -> Result<Token, TokenError> {
    let invalid = |d: &str| invalid_response(resp, d);
    let body = success_object(resp, now_ms, "token response", scrub)?;
    let obj = &body;
    let access_token = bearer_text(obj.get("access_token"))
        .map_err(|why| invalid(&format!("access_token {why}")))?
        .ok_or_else(|| invalid("token response has no access_token"))?;
    // RFC 6749 §7.1 / RFC 6750: only bearer tokens are usable; the type is case-insensitive.
    let mut token_type = "Bearer";
    match obj.get("token_type") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(t)) if dpop && t.eq_ignore_ascii_case("dpop") => token_type = "DPoP",
        // The value is named only when it looks like a token type (RFC 6749 §7.1: a short
        // name), never as arbitrary provider text.
        Some(Value::String(t))
            if t.len() <= 20
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            return Err(invalid(
                &scrub.scrub(&format!("token_type `{t}` is not supported; only Bearer")),
            ))
        }
        Some(Value::String(_)) => return Err(invalid("token_type is not supported; only Bearer")),
        Some(_) => return Err(invalid("token_type is not a string")),
    }
    let expires_in_s = match obj.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => Some(number(v).ok_or_else(|| invalid("expires_in is not a number"))?),
    };
    let scope = obj.get("scope").and_then(Value::as_str).map(str::to_string);
    let jwt_exp_ms = jwt::expiry_ms(&access_token);

    let mut issued_at_ms = now_ms;
    let mut expires_at_ms = match expires_in_s {
        Some(secs) => {
            let life_ms = (secs * 1000.0) as u64;
            if let Some(created_ms) = obj
                .get("created_at")
                .and_then(number)
                .map(|c| (c * 1000.0) as u64)
            {
                if created_ms <= now_ms && now_ms - created_ms < life_ms {
                    issued_at_ms = created_ms;
                }
            }
            let from_expires_in = issued_at_ms.saturating_add(life_ms);
            jwt_exp_ms.map_or(from_expires_in, |j| j.min(from_expires_in))
        }
        None => jwt_exp_ms.unwrap_or(now_ms + policy.default_lifetime_s * 1000),
    };
    expires_at_ms = expires_at_ms.min(now_ms + policy.max_lifetime_s * 1000);
    if expires_at_ms <= now_ms {
        return Err(invalid("token is already expired"));
    }
    Ok(Token {
        access_token: Secret::new(access_token),
        token_type: token_type.into(),
        issued_at_ms,
        expires_at_ms,
        scope,
        refresh_token: None,
    })
}

/// An `invalid_response` error about `resp`.
fn invalid_response(resp: &HttpResponse, description: &str) -> TokenError {
    let mut e = TokenError::new(ErrorCode::InvalidResponse, description);
    e.status = Some(resp.status);
    e
}

/// The JSON object of a 2xx answer (`what` names it in errors); a non-2xx answer is its
/// [`error_from_response`].
fn success_object(
    resp: &HttpResponse,
    now_ms: u64,
    what: &str,
    scrub: &Scrubber,
) -> Result<serde_json::Map<String, Value>, TokenError> {
    if !(200..=299).contains(&resp.status) {
        return Err(error_from_response(resp, now_ms, scrub));
    }
    match crate::json_from_bytes(&resp.body) {
        Some(Value::Object(obj)) => Ok(obj),
        Some(_) => Err(invalid_response(
            resp,
            &format!("{what} is not a JSON object"),
        )),
        None => Err(invalid_response(resp, &format!("{what} is not JSON"))),
    }
}

/// A credential's text: `Ok(None)` when absent, an error (what is wrong) when it is not a
/// non-empty string of visible ASCII — RFC 6750 §2.1: anything else cannot go in a header, and
/// a CR/LF in it would be header injection.
fn bearer_text(v: Option<&Value>) -> Result<Option<String>, &'static str> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => {
            if s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                Ok(Some(s.clone()))
            } else {
                Err("has characters a bearer token cannot have")
            }
        }
        Some(_) => Err("is not a non-empty string"),
    }
}

/// Parses a token API's token record (`docs/providers.md#openapi-token-api`) received at
/// `now_ms`: `{token, expireAt, refreshToken, scopes, createdAt, …}`, bare or wrapped as
/// `{"success": true, "message": "", "error": null, "data": {…}}`.
///
/// Lifetime: `expireAt` (an RFC 3339 date-time) counted from `createdAt` when that is sane
/// (not in the future, before `expireAt`), else from `now_ms`; without `expireAt`, a JWT's
/// `exp`, else `default_lifetime_s`; capped at `max_lifetime_s` as for every provider.
///
/// A refusal that comes as a 2xx (`{"success": false, "message": …, "error": …}`) is read
/// like any refusal, through `scrub`: the service may quote the API key or the refresh token.
pub fn parse_token_record(
    resp: &HttpResponse,
    now_ms: u64,
    policy: &ExpiryPolicy,
    scrub: &Scrubber,
) -> Result<Token, TokenError> {
    let invalid = |d: &str| invalid_response(resp, d);
    let outer = success_object(resp, now_ms, "token record", scrub)?;
    let record = match (outer.get("success"), outer.get("data")) {
        // A refusal in a 2xx: the service's message and code, as for any refusal.
        (Some(Value::Bool(false)), _) => {
            let refusal = error_from_response(resp, now_ms, scrub);
            let mut e = invalid("token service answered success: false");
            if refusal.provider_error.is_some() {
                e.description = format!("{}: {}", e.description, refusal.description);
                e.provider_error = refusal.provider_error;
            }
            return Err(e);
        }
        (Some(_), Some(Value::Object(data))) => data,
        (Some(_), _) => return Err(invalid("token service answered without a data object")),
        (None, _) => &outer,
    };
    let token = bearer_text(record.get("token"))
        .map_err(|why| invalid(&format!("token {why}")))?
        .ok_or_else(|| invalid("token record has no token"))?;
    let refresh_token = bearer_text(record.get("refreshToken"))
        .map_err(|why| invalid(&format!("refreshToken {why}")))?;
    let date = |key: &str| match record.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => crate::rfc3339::parse_ms(s)
            .map(Some)
            .ok_or_else(|| invalid(&format!("{key} is not an RFC 3339 date-time"))),
        Some(_) => Err(invalid(&format!("{key} is not a date-time string"))),
    };
    let expire_at_ms = date("expireAt")?;
    let created_at_ms = date("createdAt")?;
    let scope = match record.get("scopes") {
        Some(Value::Array(items)) => {
            let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            (!names.is_empty()).then(|| names.join(" "))
        }
        _ => None,
    };
    let cap = now_ms.saturating_add(policy.max_lifetime_s * 1000);
    let expires_at_ms = match expire_at_ms {
        Some(at) => at,
        None => jwt::expiry_ms(&token).unwrap_or(now_ms + policy.default_lifetime_s * 1000),
    }
    .min(cap);
    if expires_at_ms <= now_ms {
        return Err(invalid("token is already expired"));
    }
    let issued_at_ms = created_at_ms
        .filter(|c| *c <= now_ms && *c < expires_at_ms)
        .unwrap_or(now_ms);
    Ok(Token {
        access_token: Secret::new(token),
        token_type: "Bearer".into(),
        issued_at_ms,
        expires_at_ms,
        scope,
        refresh_token: refresh_token.map(Secret::new),
    })
}

/// The token in a token API's 2xx answer that [`parse_token_record`] could not read (its
/// `token`, in the record where that function looks for it), so that it can be removed rather
/// than left at the service. Its expiry is unknown: the end of time, so nothing skips it.
pub fn minted_token(resp: &HttpResponse) -> Option<Token> {
    // (Read as a `Value`, as everything else is: a map-typed read would be a second JSON
    // deserializer in the wasm builds.)
    let body: Value = crate::json_from_bytes(&resp.body)?;
    let outer = body.as_object()?;
    let record = if outer.contains_key("success") {
        outer.get("data")?.as_object()?
    } else {
        outer
    };
    Some(Token {
        access_token: Secret::new(bearer_text(record.get("token")).ok()??),
        token_type: "Bearer".into(),
        issued_at_ms: 0,
        expires_at_ms: u64::MAX,
        scope: None,
        refresh_token: None,
    })
}

/// The records a token API lists as live in its answer to [`crate::dialect::list_request`]:
/// each record's `token` and `name` (when it has one), the list bare or wrapped. `None` for
/// anything else.
pub fn listed_records(resp: &HttpResponse) -> Option<Vec<(Secret, Option<String>)>> {
    if !(200..=299).contains(&resp.status) {
        return None;
    }
    let body: Value = crate::json_from_bytes(&resp.body)?;
    let items = match &body {
        Value::Array(items) => items,
        Value::Object(outer) => outer.get("data")?.as_array()?,
        _ => return None,
    };
    Some(
        items
            .iter()
            .filter_map(|r| {
                let token = bearer_text(r.get("token")).ok().flatten()?;
                let name = r.get("name").and_then(Value::as_str).map(str::to_string);
                Some((Secret::new(token), name))
            })
            .collect(),
    )
}

/// The tokens a token API lists as live in its answer to [`crate::dialect::list_request`]:
/// the `token` of each record, the list bare or wrapped as `{"success": true, "data": […]}`.
/// `None` for anything else (an error, a body that is no such list).
pub fn listed_tokens(resp: &HttpResponse) -> Option<Vec<Secret>> {
    Some(listed_records(resp)?.into_iter().map(|(t, _)| t).collect())
}

/// A non-negative finite number, from a JSON number or a numeric string.
fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        // A number in a string, read by the JSON number parser (as strict as JSON's grammar,
        // and one float parser in the wasm builds rather than two).
        Value::String(s) => serde_json::from_str::<Value>(s.trim()).ok()?.as_f64()?,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then_some(n)
}

/// Turns a token endpoint's or a token API's refusal into a typed error: RFC 6749 §5.2
/// `{error, error_description}`, Optoro's `{message, errors[{field, code}]}`
/// (`docs/providers.md#optoro-errors-and-retries`), a token API's `{success: false, message,
/// error}` (of any status: `docs/providers.md#openapi-token-api`), or anything else (an HTML
/// error page) by status alone.
///
/// This is where every answer's text is read, and it is read through `scrub` before anything
/// is taken from it: the whole body first, then every JSON string after decoding (where `\/`
/// or `\u0073` may have spelled a secret), and each field cut only after that — so an echo of
/// a secret, a token or a refresh token cannot leave even a truncated piece of itself.
pub fn error_from_response(resp: &HttpResponse, now_ms: u64, scrub: &Scrubber) -> TokenError {
    let status = resp.status;
    let mut scrubbed = scrub.scrub(&String::from_utf8_lossy(&resp.body));
    let mut json: Option<Value> = serde_json::from_str(&scrubbed).ok();
    if let Some(j) = json.as_mut() {
        if scrub.scrub_json(j) {
            // The raw body spelled a secret in an escaped form: keep the decoded, scrubbed
            // document instead.
            scrubbed = j.to_string();
        }
    }
    let text = |k: &str| json.as_ref().and_then(|j| j.get(k)).and_then(Value::as_str);
    let field = |k: &str| text(k).map(|s| scrub.clean_text(s, 200));
    let mut provider_error = field("error");
    let mut description = field("error_description");
    // A token API's `{"success": false, "message": …, "error": 90}`
    // (`docs/providers.md#openapi-token-api`): the number is its code, the message the text.
    if let Some(n) = json
        .as_ref()
        .and_then(|j| j.get("error"))
        .and_then(Value::as_u64)
    {
        provider_error = Some(format!("error {n}"));
        if description.is_none() {
            description = field("message");
        }
    }
    if provider_error.is_none() {
        if let Some(message) = field("message") {
            // Optoro's `errors[{field, code}]`, joined before they are cleaned: a secret the
            // provider split across two strings is whole again in the joined text.
            let details: Vec<String> = json
                .as_ref()
                .and_then(|j| j.get("errors"))
                .and_then(Value::as_array)
                .map(|errs| {
                    errs.iter()
                        .take(5)
                        .map(|e| {
                            let f = e.get("field").and_then(Value::as_str).unwrap_or("?");
                            let c = e.get("code").and_then(Value::as_str).unwrap_or("?");
                            format!("{f}: {c}")
                        })
                        .collect()
                })
                .unwrap_or_default();
            if description.is_none() && !details.is_empty() {
                description = Some(scrub.clean_text(&details.join(", "), 400));
            }
            provider_error = Some(message);
        }
    }
    let code = match (status, provider_error.as_deref()) {
        (_, Some("invalid_client")) | (_, Some("unauthorized_client")) | (401, _) => {
            ErrorCode::InvalidClient
        }
        (429, _) => ErrorCode::RateLimited,
        (500..=599, _) => ErrorCode::ServerError,
        (300..=399, _) => ErrorCode::InvalidResponse,
        _ => ErrorCode::InvalidRequest,
    };
    let description = description.unwrap_or_else(|| match code {
        ErrorCode::InvalidResponse => {
            "token endpoint answered with a redirect; redirects are not followed".into()
        }
        _ => format!("token endpoint answered HTTP {status}"),
    });
    let raw: String = scrubbed.chars().take(RAW_BODY_LIMIT).collect();
    TokenError {
        code,
        status: Some(status),
        provider_error,
        description,
        retry_after_ms: resp
            .header("retry-after")
            .and_then(|v| parse_retry_after(v, now_ms)),
        raw_body: (!raw.is_empty()).then_some(raw),
    }
}

#[cfg(test)]
mod tests;
