//! `ANY /{provider}/{path}`: authenticate the caller's tokengate token, then forward to the
//! provider's `api_base` with the provider's bearer token, streaming bodies both ways. Every
//! rule (scope, path, headers, retries, errors) is the core's; this file moves bytes.

use crate::config::{Gateway, Provider};
use crate::kv::caller_record;
use crate::respond::{error, headers};
use crate::runtime::log_event;
use crate::transport::{send_with_timeout, Outgoing};
use futures::StreamExt;
use serde_json::json;
use std::cell::Cell;
use std::rc::Rc;
use tokengate::api_call::CallError;
use tokengate::caller_tokens::{
    authorize, caller_token_key, parse_bearer, verify_tag, CallerTokenRecord,
};
use tokengate::flow::{call_api, ApiReply, Runtime, TokenOrigin};
use tokengate::gateway_error::GatewayError;
use tokengate::proxy::{downstream_headers, upstream_headers, upstream_url};
use tokengate::Secret;
use wasm_bindgen::JsValue;
use worker::{Headers, Request, Response, ResponseBody, Result};

/// Bodies up to this size are buffered so a 401 or a retry can replay them.
pub const REPLAY_LIMIT: u64 = 1024 * 1024;
/// Methods never forwarded: TRACE/TRACK echo the request — with the provider token in it —
/// back to the caller (RFC 9110 §9.3.8); CONNECT opens a tunnel.
const REFUSED_METHODS: &[&str] = &["TRACE", "TRACK", "CONNECT"];

enum Body {
    None,
    Bytes(Vec<u8>),
    Stream(web_sys::ReadableStream),
}

/// The record of caller token `token`: its tag checked first (a made-up bearer costs no KV
/// read), then from this isolate's memo or KV (sealed: a record KV holds in clear, or under
/// another token's key, does not open).
async fn caller(gw: &Gateway, token: &str) -> std::result::Result<CallerTokenRecord, GatewayError> {
    let unknown = GatewayError::InvalidToken("the token is unknown or expired");
    if !verify_tag(token, &gw.keys) {
        return Err(unknown);
    }
    let key = caller_token_key(token);
    if let Some(r) = gw.caller_cache.borrow().get(&key) {
        return Ok(r.clone());
    }
    // An outage of the store is not the caller's fault: 503, not 401.
    let record = caller_record(&gw.kv, &key, &gw.keys).await.map_err(|e| {
        log_event("store_error", json!({"op": "get_caller_token", "error": e}));
        GatewayError::Unavailable("the token store is unavailable")
    })?;
    let record = record.ok_or(unknown)?;
    gw.caller_cache.borrow_mut().insert(key, record.clone());
    Ok(record)
}

/// Reads the request body within `limit`: `Err(())` means it is too large and nothing has
/// been sent. A body of up to [`REPLAY_LIMIT`] bytes is buffered (it can be replayed after a
/// 401 or a retry); a longer one streams. A declared length is checked before anything is
/// read; a body of unknown length (chunked) is buffered up to [`REPLAY_LIMIT`], and past that
/// streams through a byte counter that errors the stream (so the upstream request is aborted)
/// once it exceeds `limit`: it sets `exceeded` and aborts `abort` (the upstream request's
/// controller), so the provider sees a torn-down request, never a truncated one that looks
/// complete. At most [`REPLAY_LIMIT`] bytes are ever held.
async fn read_body(
    req: &mut Request,
    method: &str,
    limit: u64,
    exceeded: &Rc<Cell<bool>>,
    abort: &web_sys::AbortController,
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
    let mut stream = req.stream()?;
    let mut head = Vec::new();
    let hold = REPLAY_LIMIT.min(limit);
    while let Some(chunk) = stream.next().await {
        head.extend_from_slice(&chunk?);
        if head.len() as u64 > hold {
            break;
        }
    }
    let seen = head.len() as u64;
    if seen > limit {
        return Ok(Err(()));
    }
    if seen <= REPLAY_LIMIT {
        return Ok(Ok(Body::Bytes(head)));
    }
    // The head, then the rest as it arrives, counted.
    let exceeded = exceeded.clone();
    let abort = abort.clone();
    let mut total = 0u64;
    let counted = futures::stream::once(async move { Ok::<Vec<u8>, worker::Error>(head) })
        .chain(stream)
        .map(move |chunk| {
            let chunk = chunk.map_err(|e| JsValue::from_str(&e.to_string()))?;
            total += chunk.len() as u64;
            if total > limit {
                exceeded.set(true);
                abort.abort();
                return Err(JsValue::from_str("the request body exceeds max_body_bytes"));
            }
            Ok(js_sys::Uint8Array::from(chunk.as_slice()).into())
        });
    Ok(Ok(Body::Stream(
        wasm_streams::ReadableStream::from_stream(counted).into_raw(),
    )))
}

/// Handles a proxied request.
pub async fn handle(gw: &Gateway, req: Request) -> Result<Response> {
    match proxy(gw, req).await? {
        Ok(resp) => Ok(resp),
        Err(e) => error(&e),
    }
}

async fn proxy(
    gw: &Gateway,
    mut req: Request,
) -> Result<std::result::Result<Response, GatewayError>> {
    let started = gw.rt.now_ms();
    let url = req.url()?;
    let path = url.path().trim_start_matches('/').to_string();
    let (provider_id, rest) = path.split_once('/').unwrap_or((path.as_str(), ""));
    if provider_id.is_empty() {
        return Ok(Err(GatewayError::NotFound(
            "no such route; proxied paths are /{provider}/{path}".into(),
        )));
    }
    let authorization = req.headers().get("authorization")?;
    let Some(token) = parse_bearer(authorization.as_deref()) else {
        return Ok(Err(GatewayError::InvalidToken(
            "a tokengate bearer token is required (POST /oauth/token)",
        )));
    };
    let record = match caller(gw, token).await {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let ledger = match gw.ledger().await {
        Ok(l) => l,
        Err(e) => return Ok(Err(e)),
    };
    let authorized = authorize(
        &gw.callers,
        &ledger,
        &record,
        started,
        provider_id,
        &gw.providers,
    );
    let provider = match authorized {
        Ok(p) => p,
        Err(e) => {
            if matches!(e, GatewayError::InvalidToken(_)) {
                gw.caller_cache
                    .borrow_mut()
                    .remove(&caller_token_key(token));
            }
            return Ok(Err(e));
        }
    };
    let upstream = match upstream_url(&provider.config.api_base, rest, url.query()) {
        Ok(u) => u,
        Err(e) => return Ok(Err(GatewayError::Path(e))),
    };
    let method = req.inner().method().to_ascii_uppercase();
    if REFUSED_METHODS.contains(&method.as_str()) {
        return Ok(Err(GatewayError::MethodNotForwarded(method)));
    }
    let exceeded = Rc::new(Cell::new(false));
    let body_abort = web_sys::AbortController::new()?;
    let read = read_body(&mut req, &method, gw.max_body_bytes, &exceeded, &body_abort).await?;
    let body = match read {
        Ok(b) => b,
        Err(()) => {
            return Ok(Err(GatewayError::BodyTooLarge {
                limit: gw.max_body_bytes,
            }))
        }
    };
    let incoming: Vec<(String, String)> = req.headers().entries().collect();
    let forwarded = upstream_headers(incoming, &provider.config.api_headers);

    let result = forward(
        provider,
        &method,
        upstream.as_str(),
        &forwarded,
        body,
        &body_abort,
    )
    .await;
    let elapsed = gw.rt.now_ms().saturating_sub(started);
    match result {
        Ok((resp, origin, token)) => {
            let status = resp.status_code();
            if !(200..=599).contains(&status) {
                // A Workers Response cannot carry it (and a 1xx is no final answer): the body
                // is cancelled, the caller gets a 502.
                if let ResponseBody::Stream(body) = resp.body() {
                    let _ = body.cancel();
                }
                log_event(
                    "proxy_error",
                    json!({"provider": provider_id, "method": method, "status": 502,
                           "upstream_status": status, "error": "invalid_response",
                           "ms": elapsed, "client_id": record.client_id}),
                );
                return Ok(Err(GatewayError::UpstreamStatus {
                    provider: provider_id.to_string(),
                    status,
                }));
            }
            log_event(
                "proxy",
                json!({"provider": provider_id, "method": method, "status": status,
                       "token_source": origin.as_str(), "ms": elapsed, "client_id": record.client_id}),
            );
            respond(resp, origin, &token).map(Ok)
        }
        Err(_) if exceeded.get() => {
            // The counted body stopped the upstream request part way.
            log_event(
                "proxy_error",
                json!({"provider": provider_id, "method": method, "status": 413,
                       "error": "request_too_large", "ms": elapsed, "client_id": record.client_id}),
            );
            Ok(Err(GatewayError::BodyTooLarge {
                limit: gw.max_body_bytes,
            }))
        }
        Err(e) => {
            let e = GatewayError::Upstream {
                provider: provider_id.to_string(),
                error: Box::new(e),
                timeout_ms: provider.config.token.timeout_ms,
            };
            log_event(
                "proxy_error",
                json!({"provider": provider_id, "method": method, "status": e.status(),
                       "error": e.code(), "ms": elapsed, "client_id": record.client_id}),
            );
            Ok(Err(e))
        }
    }
}

async fn forward(
    provider: &Provider,
    method: &str,
    url: &str,
    forwarded: &[(String, String)],
    body: Body,
    body_abort: &web_sys::AbortController,
) -> std::result::Result<(Response, TokenOrigin, Secret), CallError> {
    let replayable = !matches!(body, Body::Stream(_));
    let (bytes, mut stream) = match body {
        Body::None => (None, None),
        Body::Bytes(b) => (Some(b), None),
        Body::Stream(s) => (None, Some(s)),
    };
    let timeout = provider.config.token.timeout_ms;
    call_api(&provider.source, method, replayable, |token: Secret| {
        let headers = Headers::new();
        for (k, v) in forwarded {
            let _ = headers.append(k, v);
        }
        let _ = headers.set("Authorization", &format!("Bearer {}", token.expose()));
        // A stream is sent once, under the controller its byte counter aborts.
        let (body, abort): (Option<JsValue>, _) = match (&bytes, stream.take()) {
            (Some(b), _) => (Some(js_sys::Uint8Array::from(b.as_slice()).into()), None),
            (None, Some(s)) => (Some(s.into()), Some(body_abort.clone())),
            (None, None) => (None, None),
        };
        async move {
            let out = Outgoing {
                method,
                url,
                headers: &headers,
                body,
            };
            let resp = send_with_timeout(out, timeout, abort).await?;
            let retry_after = resp.headers().get("retry-after").ok().flatten();
            Ok(ApiReply {
                status: resp.status_code(),
                retry_after,
                response: resp,
            })
        }
    })
    .await
}

/// The caller's response: upstream status and body (streamed), the headers the core lets
/// through (none that echoes `token`), a private `Cache-Control` and `Server-Timing`.
fn respond(resp: Response, origin: TokenOrigin, token: &Secret) -> Result<Response> {
    let status = resp.status_code();
    let upstream = resp.headers().entries().collect();
    let out = headers(&downstream_headers(upstream, origin, token))?;
    let builder = Response::builder().with_status(status).with_headers(out);
    // The upstream body stream itself, not a rebuilt Response around it.
    Ok(match resp.body() {
        ResponseBody::Stream(b) if !matches!(status, 204 | 205 | 304) => builder.stream(b.clone()),
        _ => builder.empty(),
    })
}
