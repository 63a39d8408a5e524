//! `POST /oauth/token`: the gateway's own token endpoint (Optoro's token contract,
//! `docs/providers.md#optoro-token-request`, plus the RFC 6749 §4.4 forms). Only the SHA-256 of
//! an issued token is stored.

use crate::config::Gateway;
use crate::kv::put_caller_record;
use crate::respond::{error, json_response};
use crate::runtime::{log_event, random_bytes};
use crate::transport::read_limited;
use serde_json::json;
use tokengate::callers::{check_transport, issue_token, parse_grant, GrantError};
use tokengate::flow::Runtime;
use tokengate::gateway_error::GatewayError;
use worker::{Request, Response, Result};

/// Largest token request body read.
const MAX_GRANT_BODY: usize = 16 * 1024;

/// Handles the token request.
pub async fn handle(gw: &Gateway, mut req: Request) -> Result<Response> {
    if let Err(e) = check_transport(&req.url()?) {
        log_event("token_refused", json!({"reason": "plain http"}));
        return error(&GatewayError::Grant(e));
    }
    let content_type = req.headers().get("content-type")?;
    let authorization = req.headers().get("authorization")?;
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_GRANT_BODY) {
        return error(&GatewayError::GrantTooLarge);
    }
    // Read at most MAX_GRANT_BODY bytes: an unauthenticated caller must not make the isolate
    // buffer an arbitrarily large body.
    let Some(body) = read_limited(req.stream().ok(), MAX_GRANT_BODY).await? else {
        return error(&GatewayError::GrantTooLarge);
    };
    let grant = match parse_grant(content_type.as_deref(), authorization.as_deref(), &body) {
        Ok(g) => g,
        Err(e) => return error(&GatewayError::Grant(e)),
    };
    let Some(caller) = gw
        .callers
        .authenticate(&grant.client_id, &grant.client_secret)
    else {
        log_event("caller_auth_failed", json!({"route": "token"}));
        let refused = GrantError::InvalidClient { basic: grant.basic };
        return error(&GatewayError::Grant(refused));
    };
    let Some(random) = random_bytes() else {
        return error(&GatewayError::Unavailable("no randomness to issue a token"));
    };
    let now = gw.rt.now_ms();
    let (issued, record) = match issue_token(caller, grant.scope.as_deref(), random, now) {
        Ok(x) => x,
        Err(e) => return error(&GatewayError::Grant(e)),
    };
    let key =
        match put_caller_record(&gw.kv, &issued.access_token, &record, caller.token_ttl_s).await {
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
