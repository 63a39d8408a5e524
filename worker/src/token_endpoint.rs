//! `POST /oauth/token`: the gateway's own token endpoint (seed 001's contract plus the RFC 6749
//! §4.4 forms). Only the SHA-256 of an issued token is stored.

use super::config::Gateway;
use super::respond::{error_json, json_response, with_header};
use super::runtime::{log_event, random_bytes, read_limited};
use crate::core::callers::{caller_token_key, issue_token, parse_grant, GrantError};
use crate::flow::Runtime;
use serde_json::json;
use worker::{Request, Response, Result};

/// Largest token request body read.
const MAX_GRANT_BODY: usize = 16 * 1024;

fn grant_error(e: &GrantError) -> Result<Response> {
    let mut resp = json_response(e.status(), &e.body())?;
    for (k, v) in e.headers() {
        resp = with_header(resp, k, v);
    }
    Ok(resp)
}

/// Handles the token request.
pub async fn handle(gw: &Gateway, mut req: Request) -> Result<Response> {
    let content_type = req.headers().get("content-type")?;
    let authorization = req.headers().get("authorization")?;
    let too_large = || error_json(413, "invalid_request", "token request body is too large");
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_GRANT_BODY) {
        return too_large();
    }
    // Read at most MAX_GRANT_BODY bytes: an unauthenticated caller must not make the isolate
    // buffer an arbitrarily large body.
    let Some(body) = read_limited(req.stream().ok(), MAX_GRANT_BODY).await? else {
        return too_large();
    };
    let grant = match parse_grant(content_type.as_deref(), authorization.as_deref(), &body) {
        Ok(g) => g,
        Err(e) => return grant_error(&e),
    };
    let Some(caller) = gw
        .callers
        .authenticate(&grant.client_id, &grant.client_secret)
    else {
        log_event("caller_auth_failed", json!({"route": "token"}));
        return grant_error(&GrantError::InvalidClient { basic: grant.basic });
    };
    let now = gw.rt.now_ms();
    let (issued, record) = match issue_token(caller, grant.scope.as_deref(), random_bytes(), now) {
        Ok(x) => x,
        Err(e) => return grant_error(&e),
    };
    let key = caller_token_key(&issued.access_token);
    let stored = serde_json::to_string(&record).expect("record serialises");
    let put = gw
        .kv
        .put(&key, stored)
        .map(|p| p.expiration_ttl(caller.token_ttl_s));
    let result = match put {
        Ok(p) => p.execute().await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        log_event(
            "store_error",
            json!({"op": "put_caller_token", "error": e.to_string()}),
        );
        return error_json(
            503,
            "temporarily_unavailable",
            "could not record the token; try again",
        );
    }
    gw.caller_cache.borrow_mut().insert(key, record);
    log_event(
        "token_issued",
        json!({"client_id": caller.client_id, "scope": issued.scope, "expires_in": issued.expires_in}),
    );
    json_response(200, &serde_json::to_value(&issued).expect("serialises"))
}
