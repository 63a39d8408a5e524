//! The gateway's own OAuth endpoints besides the token endpoint ([`crate::grant`]):
//! revocation (RFC 7009), introspection (RFC 7662) and the authorization server metadata
//! (RFC 8414), plus the scope catalogue `GET /admin/scopes` lists.

use crate::grant::{basic_credentials, GrantError};
use crate::scope::INTROSPECT_SCOPE;
use crate::secret::Secret;
use serde_json::{json, Value};

/// A revocation or introspection request (RFC 7009 §2.1, RFC 7662 §2.1): a form body with
/// `token` and, optionally, `token_type_hint`; the client authenticated by HTTP Basic or by
/// `client_id` and `client_secret` in the body (RFC 6749 §2.3.1), or — introspection by an
/// operator — by the admin token as a bearer (`bearer`).
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The token asked about.
    pub token: String,
    /// The client's credentials, when it sent any; `basic` when by HTTP Basic.
    pub client: Option<(String, Secret, bool)>,
    /// A bearer token in `Authorization`, when that is how the request authenticated.
    pub bearer: Option<String>,
}

/// Parses a revocation or introspection request. Errors are RFC 6749 §5.2's: 400
/// `invalid_request` for a body that is not a form or names a parameter twice, or has no
/// `token`; 401 `invalid_client` for credentials sent two ways or half of them.
pub fn parse_token_request(
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<TokenRequest, GrantError> {
    let invalid = |d: &str| GrantError::OAuth("invalid_request", d.into());
    let media = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "application/x-www-form-urlencoded" {
        return Err(GrantError::Malformed(
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ));
    }
    let params = crate::grant::form_params(body)?;
    let token = params
        .get("token")
        .filter(|t| !t.is_empty())
        .cloned()
        .ok_or_else(|| invalid("token is required"))?;
    let (scheme, rest) = authorization
        .map(str::trim)
        .and_then(|a| a.split_once(' '))
        .unwrap_or(("", ""));
    let body_id = params.get("client_id").cloned();
    let body_secret = params.get("client_secret").cloned();
    let mut out = TokenRequest {
        token,
        client: None,
        bearer: None,
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        if body_id.is_some() || body_secret.is_some() {
            return Err(invalid(
                "use one authentication method, not two (RFC 6749 §2.3)",
            ));
        }
        out.bearer = Some(rest.trim().to_string());
        return Ok(out);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let (id, secret) = basic_credentials(authorization.unwrap_or_default())?;
        if body_secret.is_some() || body_id.as_ref().is_some_and(|b| *b != id) {
            return Err(invalid(
                "use one client authentication method, not two (RFC 6749 §2.3)",
            ));
        }
        if id.is_empty() || secret.expose().is_empty() {
            return Err(GrantError::InvalidClient { basic: true });
        }
        out.client = Some((id, secret, true));
        return Ok(out);
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            out.client = Some((id, Secret::new(secret), false));
            Ok(out)
        }
        _ => Err(GrantError::InvalidClient { basic: false }),
    }
}

/// One provider as the metadata and the scope catalogue describe it.
#[derive(Clone, Copy, Debug)]
pub struct ProviderScope<'a> {
    /// Its id.
    pub id: &'a str,
    /// The host of its `api_base`.
    pub api_host: &'a str,
    /// Its `auth_style`.
    pub auth_style: &'a str,
}

/// Every scope a caller can hold, in order: each provider, its `:read` form, then
/// `introspect`.
pub fn scopes_supported(providers: &[ProviderScope<'_>]) -> Vec<String> {
    providers
        .iter()
        .flat_map(|p| [p.id.to_string(), format!("{}:read", p.id)])
        .chain([INTROSPECT_SCOPE.to_string()])
        .collect()
}

/// `GET /admin/scopes`: `{items: [{scope, provider, api_host, auth_style}]}` (`introspect`
/// names no provider). Nothing secret: no client id, no secret name.
pub fn scope_catalogue(providers: &[ProviderScope<'_>]) -> Value {
    let mut items: Vec<Value> = Vec::new();
    for p in providers {
        for scope in [p.id.to_string(), format!("{}:read", p.id)] {
            items.push(
                json!({"scope": scope, "provider": p.id, "api_host": p.api_host,
                              "auth_style": p.auth_style}),
            );
        }
    }
    items.push(
        json!({"scope": INTROSPECT_SCOPE, "provider": null, "api_host": null,
                      "auth_style": null}),
    );
    json!({ "items": items })
}

/// RFC 8414 §2: the authorization server metadata of the gateway at `origin`
/// (`https://host`), served at `/.well-known/oauth-authorization-server`.
pub fn metadata(origin: &str, providers: &[ProviderScope<'_>]) -> Value {
    let methods = ["client_secret_basic", "client_secret_post"];
    json!({
        "issuer": origin,
        "token_endpoint": format!("{origin}/oauth/token"),
        "revocation_endpoint": format!("{origin}/oauth/revoke"),
        "introspection_endpoint": format!("{origin}/oauth/introspect"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "scopes_supported": scopes_supported(providers),
        "service_documentation": format!("{origin}/openapi.json"),
    })
}

/// The origin (`scheme://host[:port]`) of a request URL.
pub fn origin(request_url: &str) -> String {
    match url::Url::parse(request_url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn credentials_come_one_way() {
        let r = parse_token_request(FORM, None, b"token=t&client_id=a&client_secret=s").unwrap();
        let (id, secret, basic) = r.client.unwrap();
        assert_eq!((id.as_str(), secret.expose(), basic), ("a", "s", false));
        let basic_auth = "Basic YTpz"; // a:s
        let r = parse_token_request(FORM, Some(basic_auth), b"token=t").unwrap();
        assert!(r.client.unwrap().2);
        let r = parse_token_request(FORM, Some("Bearer admin"), b"token=t").unwrap();
        assert_eq!(r.bearer.as_deref(), Some("admin"));
        assert!(r.client.is_none());
        for (auth, body) in [
            (Some(basic_auth), &b"token=t&client_secret=s"[..]),
            (Some("Bearer admin"), &b"token=t&client_id=a"[..]),
        ] {
            assert!(matches!(
                parse_token_request(FORM, auth, body),
                Err(GrantError::OAuth("invalid_request", _))
            ));
        }
        for body in [
            &b"token=t"[..],
            b"token=t&client_id=a",
            b"token=t&client_id=a&client_secret=",
        ] {
            assert!(matches!(
                parse_token_request(FORM, None, body),
                Err(GrantError::InvalidClient { basic: false })
            ));
        }
    }

    #[test]
    fn the_body_is_a_form_with_one_token() {
        assert!(matches!(
            parse_token_request(Some("application/json"), None, b"{}"),
            Err(GrantError::Malformed(_))
        ));
        for body in [
            &b"client_id=a&client_secret=s"[..],
            b"token=&client_id=a&client_secret=s",
            b"token=a&token=b&client_id=a&client_secret=s",
        ] {
            assert!(
                matches!(
                    parse_token_request(FORM, None, body),
                    Err(GrantError::OAuth("invalid_request", _))
                ),
                "{body:?}"
            );
        }
        let r = parse_token_request(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            None,
            b"token=tgt_x&token_type_hint=access_token&client_id=a&client_secret=s",
        )
        .unwrap();
        assert_eq!(r.token, "tgt_x");
    }

    #[test]
    fn metadata_and_catalogue() {
        let providers = [ProviderScope {
            id: "optoro",
            api_host: "api.optoro.com",
            auth_style: "json_body",
        }];
        let m = metadata("https://gw.example", &providers);
        assert_eq!(m["issuer"], "https://gw.example");
        assert_eq!(m["revocation_endpoint"], "https://gw.example/oauth/revoke");
        assert_eq!(
            m["scopes_supported"],
            json!(["optoro", "optoro:read", "introspect"])
        );
        assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
        let c = scope_catalogue(&providers);
        assert_eq!(c["items"].as_array().unwrap().len(), 3);
        assert_eq!(c["items"][1]["scope"], "optoro:read");
        assert_eq!(c["items"][2]["provider"], Value::Null);
        assert_eq!(
            origin("https://gw.example:8443/x?y"),
            "https://gw.example:8443"
        );
    }
}
