//! `POST /oauth/token`: the gateway's own token endpoint (Optoro's token contract,
//! `docs/providers.md#optoro-token-request`, plus the RFC 6749 §4.4 forms). Only the SHA-256 of
//! an issued token is stored.

use crate::config::Gateway;
use crate::js;
use crate::kv::put_caller_record;
use crate::respond::{error, json_response, Result};
use crate::runtime::{log_event, random_bytes};
use serde_json::json;
use tokengate::caller_tokens::issue_token;
use tokengate::flow::Runtime;
use tokengate::gateway_error::GatewayError;
use tokengate::grant::{check_transport, parse_grant, GrantError};
use tokengate::limits::client_address;

/// Largest token request body read.
const MAX_GRANT_BODY: usize = 16 * 1024;

/// Handles the token request.
pub async fn handle(gw: &Gateway, url: &str, req: web_sys::Request) -> Result<web_sys::Response> {
    if let Err(e) = check_transport(url) {
        log_event("token_refused", json!({"reason": "plain http"}));
        return error(&GatewayError::Grant(e));
    }
    let headers = req.headers();
    // An address that failed to authenticate too often is not looked at (whatever id it
    // names: the answer tells nothing about which ids exist).
    let address = client_address(js::header(&headers, "cf-connecting-ip").as_deref());
    if let Err(refusal) = gw.token_limits.borrow().admit(&address, gw.rt.now_ms()) {
        log_event(
            "caller_auth_refused",
            json!({"reason": "too many failures from this address", "address": address}),
        );
        return error(&GatewayError::TokenEndpointLimit(refusal));
    }
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
    let now = gw.rt.now_ms();
    let Some(caller) = gw
        .callers
        .authenticate(&grant.client_id, &grant.client_secret)
    else {
        gw.token_limits.borrow_mut().failed(&address, now);
        let client_id: String = grant.client_id.chars().take(128).collect();
        let registered = gw.callers.get(&grant.client_id).is_some();
        log_event(
            "caller_auth_failed",
            json!({"route": "token", "client_id": client_id, "registered": registered,
                   "address": address}),
        );
        let refused = GrantError::InvalidClient { basic: grant.basic };
        return error(&GatewayError::Grant(refused));
    };
    // Each issued token is a KV write: a caller asks at most its per-minute allowance.
    let allowed = gw.token_limits.borrow_mut().issue(
        &caller.client_id,
        caller.token_requests_per_minute,
        now,
    );
    if let Err(refusal) = allowed {
        log_event(
            "token_requests_limited",
            json!({"client_id": caller.client_id,
                   "per_minute": caller.token_requests_per_minute}),
        );
        return error(&GatewayError::TokenEndpointLimit(refusal));
    }
    let Some(random) = random_bytes() else {
        return error(&GatewayError::Unavailable("no randomness to issue a token"));
    };
    let (issued, record) = match issue_token(caller, grant.scope.as_deref(), random, now, &gw.keys)
    {
        Ok(x) => x,
        Err(e) => return error(&GatewayError::Grant(e)),
    };
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
            return error(&GatewayError::Unavailable("could not record the token"));
        }
    };
    gw.caller_cache.borrow_mut().insert(key, record);
    log_event(
        "token_issued",
        json!({"client_id": caller.client_id, "scope": issued.scope, "expires_in": issued.expires_in}),
    );
    json_response(200, &issued.to_json(), &[])
}
