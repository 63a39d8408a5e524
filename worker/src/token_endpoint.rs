//! `POST /oauth/token`: the gateway's own token endpoint (Optoro's token contract,
//! `docs/providers.md#optoro-token-request`, plus the RFC 6749 §4.4 forms), for static and
//! managed callers alike. Only the SHA-256 of an issued token is stored.

use crate::client_auth::{hex, unavailable, Gate, Refused};
use crate::config::Gateway;
use crate::js;
use crate::kv::put_caller_record;
use crate::respond::{error, json_response, Result};
use crate::runtime::{log_event, random_bytes};
use serde_json::{json, Value};
use tokengate::authority::client::{GrantRefusal, TokenEntry};
use tokengate::authority::{client_object, sha256, Op};
use tokengate::caller_tokens::{issue_token, IssuedToken};
use tokengate::credentials::{self, Kind};
use tokengate::flow::Runtime;
use tokengate::gateway_error::GatewayError;
use tokengate::grant::{check_transport, parse_grant, GrantError, GrantRequest};
use tokengate::limits::{client_address, TokenEndpointRefusal};

/// Largest token request body read.
const MAX_GRANT_BODY: usize = 16 * 1024;

/// Handles the token request.
pub async fn handle(gw: &Gateway, url: &str, req: web_sys::Request) -> Result<web_sys::Response> {
    if let Err(e) = check_transport(url) {
        log_event("token_refused", json!({"reason": "plain http"}));
        return error(&GatewayError::Grant(e));
    }
    let headers = req.headers();
    let connecting_ip = js::header(&headers, "cf-connecting-ip");
    let address = client_address(connecting_ip.as_deref());
    let content_type = js::header(&headers, "content-type");
    let authorization = js::header(&headers, "authorization");
    let declared =
        js::header(&headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_GRANT_BODY) {
        return error(&GatewayError::GrantTooLarge);
    }
    // Read at most MAX_GRANT_BODY bytes: an unauthenticated caller must not make the isolate
    // buffer an arbitrarily large body.
    let body = match js::read_limited(req.body(), MAX_GRANT_BODY).await {
        Ok(Some(body)) => body,
        Ok(None) => return error(&GatewayError::GrantTooLarge),
        Err(_) => {
            return error(&GatewayError::Grant(GrantError::OAuth(
                "invalid_request",
                "the request body could not be read".into(),
            )))
        }
    };
    let grant = match parse_grant(content_type.as_deref(), authorization.as_deref(), &body) {
        Ok(g) => g,
        Err(e) => return error(&GatewayError::Grant(e)),
    };
    // An address that failed to authenticate too often is not looked at (whatever id it
    // names: the answer tells nothing about which ids exist).
    let gate = match Gate::open(gw, &address, "token").await {
        Ok(g) => g,
        Err(e) => return error(&e),
    };
    let issued = issue(gw, &grant, connecting_ip.as_deref()).await;
    let failed = matches!(issued, Err(Refused::Failed));
    gate.close(gw, failed).await;
    match issued {
        Ok(issued) => json_response(200, &issued.to_json(), &[]),
        Err(Refused::Failed) => {
            let client_id: String = grant.client_id.chars().take(128).collect();
            let registered = gw.callers.get(&grant.client_id).is_some();
            log_event(
                "caller_auth_failed",
                json!({"route": "token", "client_id": client_id, "registered": registered,
                       "address": address}),
            );
            let refused = GrantError::InvalidClient { basic: grant.basic };
            error(&GatewayError::Grant(refused))
        }
        Err(Refused::Other(e)) => error(&e),
    }
}

/// Authenticates the grant's caller and issues its token: a static caller here (its token's
/// record sealed in KV), a managed caller by its authority object (which records the token's
/// hash); both within the caller's token-request allowance, counted by its object.
async fn issue(
    gw: &Gateway,
    grant: &GrantRequest,
    connecting_ip: Option<&str>,
) -> std::result::Result<IssuedToken, Refused> {
    let Some(random) = random_bytes::<32>() else {
        return Err(Refused::Other(GatewayError::Unavailable(
            "no randomness to issue a token",
        )));
    };
    let now = gw.rt.now_ms();
    if credentials::is_managed_client_id(&grant.client_id) {
        return issue_managed(gw, grant, connecting_ip, random).await;
    }
    let Some(caller) = gw
        .callers
        .authenticate(&grant.client_id, &grant.client_secret)
    else {
        return Err(Refused::Failed);
    };
    // Each issued token is a KV write: a caller asks at most its per-minute allowance.
    let op = Op::IssueStatic {
        per_minute: caller.token_requests_per_minute,
    };
    match gw
        .authority
        .call(&client_object(&caller.client_id), &op)
        .await
    {
        Ok((200, _)) => {}
        Ok((429, v)) => {
            log_event(
                "token_requests_limited",
                json!({"client_id": caller.client_id,
                       "per_minute": caller.token_requests_per_minute}),
            );
            let retry_after_ms = v
                .get("retry_after_ms")
                .and_then(Value::as_u64)
                .unwrap_or(60_000);
            return Err(Refused::Other(GatewayError::TokenEndpointLimit(
                TokenEndpointRefusal::TooManyTokenRequests { retry_after_ms },
            )));
        }
        Ok((status, _)) => {
            return Err(Refused::Other(unavailable(
                "issue_static",
                format!("status {status}"),
            )))
        }
        Err(e) => return Err(Refused::Other(unavailable("issue_static", e))),
    }
    let (issued, record) = issue_token(caller, grant.scope.as_deref(), random, now, &gw.keys)
        .map_err(|e| Refused::Other(GatewayError::Grant(e)))?;
    let stored = put_caller_record(
        &gw.kv,
        &issued.access_token,
        &record,
        &gw.keys,
        caller.token_ttl_s,
    )
    .await;
    let key = match stored {
        Ok(key) => key,
        Err(e) => {
            log_event("store_error", json!({"op": "put_caller_token", "error": e}));
            return Err(Refused::Other(GatewayError::Unavailable(
                "could not record the token",
            )));
        }
    };
    gw.caller_cache.borrow_mut().insert(key, record);
    log_event(
        "token_issued",
        json!({"client_id": caller.client_id, "scope": issued.scope, "expires_in": issued.expires_in}),
    );
    Ok(issued)
}

/// A managed caller's token: its secret is checked for shape, checksum and tag here (a
/// mistyped or made-up one costs no round trip), then by its object, which records the new
/// token's hash — never the token.
async fn issue_managed(
    gw: &Gateway,
    grant: &GrantRequest,
    connecting_ip: Option<&str>,
    random: [u8; 32],
) -> std::result::Result<IssuedToken, Refused> {
    let secret = grant.client_secret.expose();
    if credentials::check(secret, Kind::Secret, &gw.keys).is_err() {
        return Err(Refused::Failed);
    }
    let token = credentials::issue(Kind::Token, Some(&grant.client_id), random, &gw.keys);
    let op = Op::Grant {
        secret_sha256: hex(&sha256(secret.as_bytes())),
        scope: grant.scope.clone(),
        address: connecting_ip.map(str::to_string),
        token_sha256: hex(&sha256(token.as_bytes())),
    };
    let answer = gw
        .authority
        .call(&client_object(&grant.client_id), &op)
        .await;
    match answer {
        Ok((200, v)) => {
            let entry: TokenEntry = serde_json::from_value(v)
                .map_err(|_| Refused::Other(unavailable("grant", "not an entry".into())))?;
            let issued = entry.issued(token);
            log_event(
                "token_issued",
                json!({"client_id": grant.client_id, "scope": issued.scope,
                       "expires_in": issued.expires_in, "managed": true}),
            );
            Ok(issued)
        }
        Ok((401, _)) => Err(Refused::Failed),
        Ok((status, v)) => match serde_json::from_value::<GrantRefusal>(v) {
            Ok(r) => {
                log_event(
                    "token_refused",
                    json!({"client_id": grant.client_id, "status": status}),
                );
                Err(Refused::Other(r.to_gateway_error()))
            }
            Err(_) => Err(Refused::Other(unavailable(
                "grant",
                format!("status {status}"),
            ))),
        },
        Err(e) => Err(Refused::Other(unavailable("grant", e))),
    }
}
