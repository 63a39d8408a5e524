//! `POST /oauth/revoke` (RFC 7009), `POST /oauth/introspect` (RFC 7662), the authorization
//! server metadata (RFC 8414) and `GET /openapi.json`. Client authentication is the token
//! endpoint's: the address's failed-authentication limit first, then the credentials.

use crate::client_auth::{
    admin_token, authenticate, hex, unavailable, Authenticated, Gate, Refused,
};
use crate::config::Gateway;
use crate::js;
use crate::proxy::caller;
use crate::respond::{error, json_response, Result};
use crate::runtime::log_event;
use serde_json::{json, Value};
use tokengate::authority::{client_object, sha256, Op};
use tokengate::caller_tokens::{check_record, verify_tag};
use tokengate::credentials::{self, Checked, Kind};
use tokengate::flow::Runtime;
use tokengate::gateway_error::GatewayError;
use tokengate::grant::{check_transport, GrantError};
use tokengate::limits::client_address;
use tokengate::oauth_server::{self, parse_token_request, ProviderScope, TokenRequest};
use tokengate::scope::{effective, INTROSPECT_SCOPE};
use wasm_bindgen::JsValue;

/// Largest revocation or introspection body read.
const MAX_BODY: usize = 16 * 1024;

/// What kind of token a request names, by its form alone.
enum Named {
    /// A managed caller's token (bound to its id).
    Managed(String),
    /// A static caller's token, well-formed and ours.
    Static,
    /// Anything else: not a token this gateway issued.
    Unknown,
}

fn named(gw: &Gateway, token: &str) -> Named {
    match credentials::check(token, Kind::Token, &gw.keys) {
        Ok(Checked { client: Some(id) }) => Named::Managed(id),
        _ if verify_tag(token, &gw.keys) => Named::Static,
        _ => Named::Unknown,
    }
}

/// Reads and parses a revocation or introspection request.
async fn read(
    url: &str,
    req: &web_sys::Request,
) -> std::result::Result<TokenRequest, GatewayError> {
    check_transport(url).map_err(GatewayError::Grant)?;
    let headers = req.headers();
    let body = match js::read_limited(req.body(), MAX_BODY).await {
        Ok(Some(b)) => b,
        Ok(None) => return Err(GatewayError::GrantTooLarge),
        Err(_) => {
            return Err(GatewayError::Grant(GrantError::OAuth(
                "invalid_request",
                "the request body could not be read".into(),
            )))
        }
    };
    parse_token_request(
        js::header(&headers, "content-type").as_deref(),
        js::header(&headers, "authorization").as_deref(),
        &body,
    )
    .map_err(GatewayError::Grant)
}

/// Authenticates the client of `request` through its address's gate.
async fn client<'a>(
    gw: &'a Gateway,
    req: &web_sys::Request,
    request: &TokenRequest,
    route: &str,
) -> std::result::Result<Authenticated<'a>, GatewayError> {
    let Some((id, secret, basic)) = &request.client else {
        return Err(GatewayError::Grant(GrantError::InvalidClient {
            basic: false,
        }));
    };
    let connecting_ip = js::header(&req.headers(), "cf-connecting-ip");
    let address = client_address(connecting_ip.as_deref());
    let gate = Gate::open(gw, &address, route).await?;
    let authenticated = authenticate(gw, id, secret, connecting_ip.as_deref()).await;
    gate.close(gw, matches!(authenticated, Err(Refused::Failed)))
        .await;
    match authenticated {
        Ok(a) => Ok(a),
        Err(Refused::Failed) => {
            let client_id: String = id.chars().take(128).collect();
            log_event(
                "caller_auth_failed",
                json!({"route": route, "client_id": client_id, "address": address}),
            );
            Err(GatewayError::Grant(GrantError::InvalidClient {
                basic: *basic,
            }))
        }
        Err(Refused::Other(e)) => Err(e),
    }
}

/// `POST /oauth/revoke`: a managed caller revokes one of its own tokens (200, also for a
/// token that is unknown, expired or revoked already: RFC 7009 §2.2). A token issued to
/// another caller is refused (400 `unauthorized_client`, §2.1); a static caller's token cannot
/// be revoked one by one (400 `unsupported_token_type`, §2.2.1: rotating its secret in
/// `TOKENGATE_CLIENTS` revokes them all).
pub async fn revoke(gw: &Gateway, url: &str, req: web_sys::Request) -> Result<web_sys::Response> {
    let request = match read(url, &req).await {
        Ok(r) => r,
        Err(e) => return error(&e),
    };
    if request.bearer.is_some() {
        return error(&GatewayError::Grant(GrantError::InvalidClient {
            basic: false,
        }));
    }
    let caller = match client(gw, &req, &request, "revoke").await {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    match named(gw, &request.token) {
        Named::Managed(owner) if owner != caller.client_id() => {
            error(&GatewayError::Grant(GrantError::OAuth(
                "unauthorized_client",
                "the token was not issued to this client".into(),
            )))
        }
        Named::Managed(owner) => {
            let op = Op::Revoke {
                token_sha256: hex(&sha256(request.token.as_bytes())),
            };
            match gw.authority.call(&client_object(&owner), &op).await {
                Ok((200, _)) => {
                    log_event(
                        "admin",
                        json!({"action": "token_revoked", "client_id": owner,
                                              "by": "client"}),
                    );
                    json_response(200, &json!({}), &[])
                }
                Ok((status, _)) => error(&unavailable("revoke", format!("status {status}"))),
                Err(e) => error(&unavailable("revoke", e)),
            }
        }
        Named::Static => error(&GatewayError::Grant(GrantError::OAuth(
            "unsupported_token_type",
            "tokens of callers configured in TOKENGATE_CLIENTS are revoked by rotating the \
             caller's secret"
                .into(),
        ))),
        Named::Unknown => json_response(200, &json!({}), &[]),
    }
}

/// `POST /oauth/introspect`: for the admin token (as a bearer) or a caller holding the
/// `introspect` scope. RFC 7662 §2.2: `{active, client_id, scope, exp, iat, token_type}` for
/// a live token, else `{active: false}` and nothing more.
pub async fn introspect(
    gw: &Gateway,
    url: &str,
    req: web_sys::Request,
) -> Result<web_sys::Response> {
    let request = match read(url, &req).await {
        Ok(r) => r,
        Err(e) => return error(&e),
    };
    if let Some(bearer) = &request.bearer {
        // The admin token, under the failed-authentication limit of the client address.
        match admin_token(gw, &req.headers(), Some(bearer), "introspect").await {
            Ok(true) => {}
            Ok(false) => {
                return error(&GatewayError::InvalidToken(
                    "introspection takes the admin token or client credentials",
                ))
            }
            Err(e) => return error(&e),
        }
    } else {
        match client(gw, &req, &request, "introspect").await {
            Ok(c) if c.scopes().iter().any(|s| s == INTROSPECT_SCOPE) => {}
            Ok(_) => return error(&GatewayError::MissingScope(INTROSPECT_SCOPE)),
            Err(e) => return error(&e),
        }
    }
    let inactive = json!({"active": false});
    let answer = match named(gw, &request.token) {
        Named::Managed(owner) => {
            let op = Op::Introspect {
                token_sha256: hex(&sha256(request.token.as_bytes())),
            };
            match gw.authority.call(&client_object(&owner), &op).await {
                Ok((200, v)) => v,
                Ok((status, _)) => {
                    return error(&unavailable("introspect", format!("status {status}")))
                }
                Err(e) => return error(&unavailable("introspect", e)),
            }
        }
        Named::Static => match static_introspection(gw, &request.token).await {
            Ok(v) => v,
            Err(e) => return error(&e),
        },
        Named::Unknown => inactive,
    };
    json_response(200, &answer, &[])
}

/// The introspection of a static caller's token: its record, the registry and the ledger.
async fn static_introspection(
    gw: &Gateway,
    token: &str,
) -> std::result::Result<Value, GatewayError> {
    let record = match caller(gw, token).await {
        Ok(r) => r,
        Err(GatewayError::InvalidToken(_)) => return Ok(json!({"active": false})),
        Err(e) => return Err(e),
    };
    let ledger = match gw.loaded_ledger() {
        Some(l) => l,
        None => gw.ledger().await?,
    };
    let now = gw.rt.now_ms();
    Ok(match check_record(&gw.callers, &ledger, &record, now) {
        Ok(caller) => {
            let exp = record
                .issued_at_ms
                .saturating_add(caller.token_ttl_s * 1000)
                .min(record.expires_at_ms);
            json!({
                "active": true,
                "client_id": record.client_id,
                // What the token still allows: its caller may have been narrowed since.
                "scope": effective(&record.scopes, &caller.scopes).join(" "),
                "exp": exp / 1000,
                "iat": record.issued_at_ms / 1000,
                "token_type": "Bearer",
            })
        }
        Err(_) => json!({"active": false}),
    })
}

/// The providers as the metadata and the scope catalogue describe them.
pub fn provider_scopes(gw: &Gateway) -> Vec<ProviderScope<'_>> {
    gw.providers
        .values()
        .map(|p| ProviderScope {
            id: &p.config.id,
            api_host: p.config.api_base.host_str().unwrap_or_default(),
            auth_style: p.config.token.auth_style.as_str(),
        })
        .collect()
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3).
pub fn metadata(gw: &Gateway, url: &str) -> Result<web_sys::Response> {
    let origin = oauth_server::origin(url);
    json_response(
        200,
        &oauth_server::metadata(&origin, &provider_scopes(gw)),
        &[],
    )
}

/// `GET /openapi.json`: `docs/openapi.json`, which `make console` puts among the Worker's
/// static assets, read through the `ASSETS` binding (the document is not compiled into the
/// Worker: 90 KB of its wasm). Without the binding, or when the assets lack the file, a 404
/// that says so.
pub async fn openapi(gw: &Gateway, url: &str) -> Result<web_sys::Response> {
    let missing = || {
        error(&GatewayError::NotFound(
            "the OpenAPI document is served from the Worker's static assets: [assets] with \
             binding = \"ASSETS\" and build-console/openapi.json (make console)"
                .into(),
        ))
    };
    let Some(assets) = &gw.assets else {
        return missing();
    };
    let asset = format!("{}/openapi.json", oauth_server::origin(url));
    let request = web_sys::Request::new_with_str(&asset)?;
    let resp = match js::fetch(&request, Some(assets)).await {
        Ok(r) if r.status() == 200 => r,
        Ok(r) => {
            if let Some(body) = r.body() {
                let _ = body.cancel();
            }
            return missing();
        }
        Err(_) => return missing(),
    };
    let headers = js::headers(&[
        ("Content-Type", "application/json"),
        ("Cache-Control", "public, max-age=300"),
    ])?;
    js::response(200, &headers, resp.body().map(JsValue::from).as_ref())
}
