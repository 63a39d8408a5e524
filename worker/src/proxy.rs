//! `ANY /{provider}/{path}`: authenticate the caller's tokengate token, then forward to the
//! provider's `api_base` with the provider's bearer token, streaming bodies both ways.

use super::config::{Gateway, Provider};
use super::respond::{error_json, with_header};
use super::runtime::{log_event, read_limited, send_with_timeout, Outgoing};
use crate::core::callers::{
    caller_token_key, looks_like_issued_token, parse_bearer, CallerTokenRecord,
};
use crate::core::proxy::{
    forward_request_header, forward_response_header, upstream_url, TokenOrigin,
};
use crate::core::{ErrorCode, Secret};
use crate::flow::{call_api, ApiError, ApiReply, Runtime, TransportError};
use serde_json::json;
use wasm_bindgen::JsValue;
use worker::{Headers, Request, Response, Result};

/// Bodies up to this size are buffered so a 401 or a retry can replay them.
pub const REPLAY_LIMIT: u64 = 1024 * 1024;
/// Caller tokens remembered per isolate.
const CALLER_CACHE_LIMIT: usize = 10_000;
/// Methods never forwarded: TRACE/TRACK echo the request — with the provider token in it —
/// back to the caller (RFC 9110 §9.3.8); CONNECT opens a tunnel.
const REFUSED_METHODS: &[&str] = &["TRACE", "TRACK", "CONNECT"];

enum Body {
    None,
    Bytes(Vec<u8>),
    Stream(web_sys::ReadableStream),
}

fn unauthorized(description: &str) -> Result<Response> {
    Ok(with_header(
        error_json(401, "invalid_token", description)?,
        "WWW-Authenticate",
        "Bearer realm=\"tokengate\", error=\"invalid_token\"",
    ))
}

/// The record of a caller token: `Ok(None)` when unknown or expired, `Err(())` when KV failed
/// (an outage of the store is not the caller's fault: 503, not 401).
async fn caller_record(
    gw: &Gateway,
    token: &str,
    now: u64,
) -> std::result::Result<Option<CallerTokenRecord>, ()> {
    if !looks_like_issued_token(token) {
        return Ok(None);
    }
    let key = caller_token_key(token);
    let cached = gw.caller_cache.borrow().get(&key).cloned();
    let record = match cached {
        Some(r) => r,
        None => {
            let text = match gw.kv.get(&key).text().await {
                Ok(Some(t)) => t,
                Ok(None) => return Ok(None),
                Err(e) => {
                    log_event(
                        "store_error",
                        json!({"op": "get_caller_token", "error": e.to_string()}),
                    );
                    return Err(());
                }
            };
            let Ok(r) = serde_json::from_str::<CallerTokenRecord>(&text) else {
                return Ok(None);
            };
            let mut cache = gw.caller_cache.borrow_mut();
            if cache.len() >= CALLER_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key.clone(), r.clone());
            r
        }
    };
    if record.expires_at_ms <= now {
        gw.caller_cache.borrow_mut().remove(&key);
        return Ok(None);
    }
    Ok(Some(record))
}

/// Reads the request body within `limit`: `Err(())` means it is too large. A declared length
/// over [`REPLAY_LIMIT`] streams; anything else is buffered (a body of unknown length must be
/// counted before anything is sent, to honour the limit).
async fn read_body(
    req: &mut Request,
    method: &str,
    limit: u64,
) -> Result<std::result::Result<Body, ()>> {
    if matches!(method, "GET" | "HEAD") || req.inner().body().is_none() {
        return Ok(Ok(Body::None));
    }
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => return Ok(Err(())),
        Some(n) if n > REPLAY_LIMIT => {
            return Ok(Ok(req.inner().body().map_or(Body::None, Body::Stream)));
        }
        _ => {}
    }
    Ok(read_limited(req.stream().ok(), limit as usize)
        .await?
        .map(Body::Bytes)
        .ok_or(()))
}

fn status_for(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Timeout => 504,
        _ => 502,
    }
}

/// Handles a proxied request.
pub async fn handle(gw: &Gateway, mut req: Request) -> Result<Response> {
    let started = gw.rt.now_ms();
    let url = req.url()?;
    let path = url.path().trim_start_matches('/').to_string();
    let (provider_id, rest) = path.split_once('/').unwrap_or((path.as_str(), ""));
    if provider_id.is_empty() {
        return error_json(
            404,
            "not_found",
            "no such route; proxied paths are /{provider}/{path}",
        );
    }
    let authorization = req.headers().get("authorization")?;
    let Some(token) = parse_bearer(authorization.as_deref()) else {
        return unauthorized("a tokengate bearer token is required (POST /oauth/token)");
    };
    let record = match caller_record(gw, token, started).await {
        Ok(Some(r)) => r,
        Ok(None) => return unauthorized("the token is unknown or expired"),
        Err(()) => {
            return Ok(with_header(
                error_json(
                    503,
                    "temporarily_unavailable",
                    "the token store is unavailable; try again",
                )?,
                "Retry-After",
                "1",
            ))
        }
    };
    // A caller removed from TOKENGATE_CLIENTS, or narrowed, loses access at once.
    let Some(caller) = gw.callers.get(&record.client_id) else {
        return unauthorized("the client is no longer registered");
    };
    let Some(provider) = gw.providers.get(provider_id) else {
        return error_json(
            404,
            "not_found",
            &format!("unknown provider `{provider_id}`"),
        );
    };
    let granted = |scopes: &[String]| scopes.iter().any(|s| s == provider_id);
    if !granted(&record.scopes) || !granted(&caller.scopes) {
        return Ok(with_header(
            error_json(
                403,
                "insufficient_scope",
                &format!("the token does not grant provider `{provider_id}`"),
            )?,
            "WWW-Authenticate",
            "Bearer realm=\"tokengate\", error=\"insufficient_scope\"",
        ));
    }
    let upstream = match upstream_url(&provider.config.api_base, rest, url.query()) {
        Ok(u) => u,
        Err(e) => return error_json(400, "invalid_request", &e.to_string()),
    };
    let method = req.inner().method().to_ascii_uppercase();
    if REFUSED_METHODS.contains(&method.as_str()) {
        return Ok(with_header(
            error_json(
                405,
                "invalid_request",
                &format!("{method} is not forwarded"),
            )?,
            "Allow",
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        ));
    }
    let body = match read_body(&mut req, &method, gw.max_body_bytes).await? {
        Ok(b) => b,
        Err(()) => {
            return error_json(
                413,
                "request_too_large",
                &format!("request body exceeds {} bytes", gw.max_body_bytes),
            )
        }
    };
    let connection = req.headers().get("connection")?;
    let mut forwarded: Vec<(String, String)> = req
        .headers()
        .entries()
        .filter(|(k, _)| forward_request_header(k, connection.as_deref()))
        .collect();
    forwarded.retain(|(k, _)| {
        !provider
            .config
            .api_headers
            .keys()
            .any(|a| a.eq_ignore_ascii_case(k))
    });
    forwarded.extend(
        provider
            .config
            .api_headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );

    let result = forward(provider, &method, upstream.as_str(), &forwarded, body).await;
    let elapsed = gw.rt.now_ms().saturating_sub(started);
    match result {
        Ok((resp, origin)) => {
            let status = resp.status_code();
            log_event(
                "proxy",
                json!({"provider": provider_id, "method": method, "status": status,
                       "token_source": origin.as_str(), "ms": elapsed, "client_id": record.client_id}),
            );
            respond(resp, origin)
        }
        Err(e) => {
            let retry_after_s = match &e {
                ApiError::Token(t) => t.retry_after_ms.map(|ms| ms.div_ceil(1000)),
                ApiError::Transport(_) => None,
            };
            let (status, code, description) = match e {
                ApiError::Token(e) => (
                    status_for(e.code),
                    e.code.as_str(),
                    format!("provider `{provider_id}` token endpoint: {e}"),
                ),
                ApiError::Transport(TransportError::Timeout) => (
                    504,
                    "timeout",
                    format!(
                        "provider `{provider_id}` did not answer within {} ms",
                        provider.config.token.timeout_ms
                    ),
                ),
                ApiError::Transport(TransportError::Network(m)) => (
                    502,
                    "network",
                    format!("provider `{provider_id}` is unreachable: {m}"),
                ),
            };
            log_event(
                "proxy_error",
                json!({"provider": provider_id, "method": method, "status": status,
                       "error": code, "ms": elapsed, "client_id": record.client_id}),
            );
            let resp = error_json(status, code, &description)?;
            Ok(match retry_after_s {
                Some(s) => with_header(resp, "Retry-After", &s.to_string()),
                None => resp,
            })
        }
    }
}

async fn forward(
    provider: &Provider,
    method: &str,
    url: &str,
    forwarded: &[(String, String)],
    body: Body,
) -> std::result::Result<(Response, TokenOrigin), ApiError> {
    let replayable = !matches!(body, Body::Stream(_));
    let (bytes, mut stream) = match body {
        Body::None => (None, None),
        Body::Bytes(b) => (Some(b), None),
        Body::Stream(s) => (None, Some(s)),
    };
    let timeout = provider.config.token.timeout_ms;
    call_api(
        &provider.source,
        method,
        replayable,
        None,
        |token: Secret| {
            let headers = Headers::new();
            for (k, v) in forwarded {
                let _ = headers.append(k, v);
            }
            let _ = headers.set("Authorization", &format!("Bearer {}", token.expose()));
            let body: Option<JsValue> = match (&bytes, stream.take()) {
                (Some(b), _) => Some(js_sys::Uint8Array::from(b.as_slice()).into()),
                (None, Some(s)) => Some(s.into()),
                (None, None) => None,
            };
            async move {
                let out = Outgoing {
                    method,
                    url,
                    headers: &headers,
                    body,
                };
                let resp = send_with_timeout(out, timeout).await?;
                let retry_after = resp.headers().get("retry-after").ok().flatten();
                Ok(ApiReply {
                    status: resp.status_code(),
                    retry_after,
                    response: resp,
                })
            }
        },
    )
    .await
}

/// The caller's response: upstream status and body (streamed), upstream headers minus
/// hop-by-hop and `Set-Cookie`, plus `Server-Timing`.
fn respond(resp: Response, origin: TokenOrigin) -> Result<Response> {
    let status = resp.status_code();
    let connection = resp.headers().get("connection").ok().flatten();
    let out = Headers::new();
    for (k, v) in resp.headers().entries() {
        if forward_response_header(&k, connection.as_deref()) {
            out.append(&k, &v)?;
        }
    }
    out.set("Server-Timing", &origin.server_timing())?;
    let sys: web_sys::Response = resp.into();
    let builder = Response::builder().with_status(status).with_headers(out);
    Ok(match sys.body() {
        Some(b) if !matches!(status, 101 | 204 | 205 | 304) => builder.stream(b),
        _ => builder.empty(),
    })
}
