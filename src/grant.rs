//! `POST /oauth/token` requests: Optoro's token-endpoint contract
//! (`docs/providers.md#optoro-token-request`) — a JSON body with exactly `grant_type`,
//! `client_id` and `client_secret` (400 for malformed JSON, 422 with Optoro's validation body
//! `{"message": "Validation Failed", "errors": [{field, code}]}` for bad fields;
//! `docs/providers.md#optoro-errors-and-retries`) — and the RFC 6749 §4.4 forms: a form body
//! with credentials in HTTP Basic (§2.3.1) or in the body, errors per §5.2. Schema-valid but
//! wrong input: an empty `client_id` or `client_secret` is a failed authentication (401
//! `invalid_client`); an empty or unknown `grant_type` is `unsupported_grant_type` (400).

use crate::secret::Secret;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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
    /// Requested scope (form flavour only), space-separated scopes ([`crate::scope`]).
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
pub(crate) fn basic_credentials(authorization: &str) -> Result<(String, Secret), GrantError> {
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
pub fn check_transport(request_url: &str) -> Result<(), GrantError> {
    if crate::http::secure_transport(request_url) {
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
    let value: Value = crate::json_from_bytes(body).ok_or_else(|| {
        GrantError::Malformed("Malformed request. Check structure of JSON payload.".into())
    })?;
    let obj = value.as_object().ok_or_else(|| {
        GrantError::Malformed("Malformed request. The JSON payload must be an object.".into())
    })?;
    // A member given twice means whatever each reader makes of it (the last one wins here, the
    // first elsewhere): refused, as RFC 6749 §3.2 refuses a repeated form parameter.
    if let Some(k) = repeated_member(body) {
        return Err(GrantError::OAuth(
            "invalid_request",
            format!("member `{k}` is repeated"),
        ));
    }
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

/// The first top-level member name of the JSON object `body` that occurs twice.
pub(crate) fn repeated_member(body: &[u8]) -> Option<String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Names;
    impl<'de> Visitor<'de> for Names {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = std::collections::BTreeSet::new();
            let mut repeated = None;
            while let Some(k) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if !seen.insert(k.clone()) && repeated.is_none() {
                    repeated = Some(k);
                }
            }
            Ok(repeated)
        }
    }
    serde_json::Deserializer::from_str(std::str::from_utf8(body).ok()?)
        .deserialize_map(Names)
        .ok()
        .flatten()
}

fn unsupported_grant_type() -> GrantError {
    GrantError::OAuth(
        "unsupported_grant_type",
        "only client_credentials is supported".into(),
    )
}

/// The parameters of a form body; 400 `invalid_request` for one named twice (RFC 6749 §3.2
/// for the token endpoint, and so for revocation and introspection, RFC 7009 §2.1 and RFC 7662
/// §2.1, which take the same encoding).
pub(crate) fn form_params(body: &[u8]) -> Result<BTreeMap<String, String>, GrantError> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if params
            .insert(k.clone().into_owned(), v.into_owned())
            .is_some()
        {
            return Err(GrantError::OAuth(
                "invalid_request",
                format!("parameter `{k}` is repeated"),
            ));
        }
    }
    Ok(params)
}

fn parse_form_grant(
    body: &[u8],
    basic: Option<(String, Secret)>,
) -> Result<GrantRequest, GrantError> {
    let invalid = |d: &str| GrantError::OAuth("invalid_request", d.into());
    let params = form_params(body)?;
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
        // RFC 6749 §2.3.1: a Basic client id or secret that is empty authenticates no one
        // (the JSON body answers the same).
        (Some((id, s)), _, None) if id.is_empty() || s.expose().is_empty() => {
            return Err(GrantError::InvalidClient { basic: true })
        }
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

#[cfg(test)]
mod tests;
