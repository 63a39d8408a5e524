//! `ANY /{provider}/{path}`: authenticate the caller's tokengate token, then forward to the
//! provider's `api_base` with the provider's bearer token, streaming bodies both ways. Every
//! rule (scope, path, headers, retries, errors) is the core's; this file moves bytes.

use crate::client_auth::{hex, unavailable};
use crate::config::{Gateway, Provider};
use crate::js;
use crate::kv::caller_record;
use crate::respond::{error, Result};
use crate::runtime::{log_event, now_ms, LogLine};
use crate::stats;
use crate::transport::{send_with_timeout, Outgoing};
use futures::{FutureExt, StreamExt};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use tokengate::api_call::CallError;
use tokengate::authority::client::{CheckRequest, Refusal};
use tokengate::authority::stats::Proxied;
use tokengate::authority::{client_object, sha256, Op};
use tokengate::caller_tokens::{
    authorize, caller_token_key, parse_bearer, verify_tag, CallerTokenRecord,
};
use tokengate::credentials::{self, Checked, Kind};
use tokengate::flow::{call_api_token, ApiReply, DpopServer, Runtime, TokenOrigin, TransportError};
use tokengate::gateway_error::GatewayError;
use tokengate::jose;
use tokengate::proxy::{
    downstream_headers, forwards_method, has_null_body, passes_on, upstream_headers, upstream_url,
    RedirectContext,
};
use tokengate::proxy::{plan_body, BodyPlan, ReplayBudget};
use tokengate::response::Token;
use tokengate::Secret;
use wasm_bindgen::JsValue;

/// How long a request waits for another's load of the same caller-token record before
/// loading it itself.
const CALLER_LOAD_WAIT_MS: u64 = 10_000;

enum Body {
    None,
    /// Held for replays: one JavaScript copy, sent by every attempt.
    Bytes(js_sys::Uint8Array),
    /// Sent once, under its own controller, which the byte counter aborts when the body runs
    /// over `max_body_bytes` (made only for a streamed body).
    Stream(web_sys::ReadableStream, web_sys::AbortController),
}

/// The record of caller token `token`: from this isolate's memo (keyed by the token's hash: a
/// hit is a token this gateway issued), else its tag is checked (a made-up bearer costs no KV
/// read) and the record read from KV (sealed: a record KV holds in clear, or under another
/// token's key, does not open).
pub(crate) async fn caller(
    gw: &Gateway,
    token: &str,
) -> std::result::Result<CallerTokenRecord, GatewayError> {
    let key = caller_token_key(token);
    if let Some(r) = gw.caller_cache.borrow().get(&key) {
        return Ok(r.clone());
    }
    let unknown = GatewayError::InvalidToken("the token is unknown or expired");
    if !verify_tag(token, &gw.keys) {
        return Err(unknown);
    }
    let flight = gw
        .caller_loads
        .borrow_mut()
        .entry(key.clone())
        .or_default()
        .clone();
    let ready = || {
        gw.caller_cache
            .borrow()
            .get(&key)
            .cloned()
            .map(|r| Ok(Some(r)))
    };
    let start = || {
        let (kv, keys, cache, key) = (
            gw.kv.clone(),
            gw.keys.clone(),
            gw.caller_cache.clone(),
            key.clone(),
        );
        async move {
            // An outage of the store is not the caller's fault: 503, not 401.
            let record = caller_record(&kv, &key, &keys).await.map_err(|e| {
                log_event("store_error", json!({"op": "get_caller_token", "error": e}));
                GatewayError::Unavailable("the token store is unavailable")
            })?;
            if let Some(r) = &record {
                cache.borrow_mut().insert(key, r.clone());
            }
            Ok(record)
        }
        .boxed_local()
    };
    let loaded = flight.run(&gw.rt, CALLER_LOAD_WAIT_MS, ready, start).await;
    if !flight.is_running() {
        gw.caller_loads.borrow_mut().remove(&key);
    }
    loaded?.ok_or(unknown)
}

/// Bytes reserved from the isolate's [`ReplayBudget`] for one request's replay buffer, given
/// back when the request ends (dropped).
struct Reservation {
    budget: Rc<RefCell<ReplayBudget>>,
    bytes: u64,
}

impl Reservation {
    /// Gives back what is reserved beyond `bytes` (the body turned out shorter).
    fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget.borrow_mut().release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.borrow_mut().release(self.bytes);
    }
}

/// Reads the request body as the core's [`plan_body`] says: `Err(())` means it is too large
/// and nothing has been sent. A held body (up to [`tokengate::proxy::REPLAY_LIMIT`], within the isolate's replay
/// budget) is copied into JavaScript once and replayable; any other streams. A body of unknown
/// length streams through a byte counter that errors the stream (so the upstream request is
/// aborted) once it exceeds `limit`: it sets `exceeded` and aborts the stream's controller
/// (the upstream request's, [`Body::Stream`]), so the provider sees a torn-down request, never a truncated one that
/// looks complete. The [`Reservation`] returned lives as long as the request.
async fn read_body(
    gw: &Gateway,
    req: &web_sys::Request,
    declared: Option<u64>,
    method: &str,
    exceeded: &Rc<Cell<bool>>,
) -> Result<std::result::Result<(Body, Option<Reservation>), ()>> {
    let limit = gw.max_body_bytes;
    let raw = req.body();
    let plan = plan_body(
        method,
        raw.is_some(),
        declared,
        limit,
        &mut gw.replay_budget.borrow_mut(),
    );
    if let BodyPlan::Stream {
        over_budget: true, ..
    } = plan
    {
        log_event(
            "replay_budget_spent",
            json!({"method": method, "reason": "the body streams and is not replayed"}),
        );
    }
    let (hold, raw) = match (plan, raw) {
        (BodyPlan::Hold { hold }, Some(raw)) => (hold, raw),
        (BodyPlan::Stream { counted, .. }, Some(raw)) => {
            let abort = web_sys::AbortController::new()?;
            let body = if counted {
                counted_stream(Vec::new(), js::chunks(raw), limit, exceeded, &abort)
            } else {
                raw
            };
            return Ok(Ok((Body::Stream(body, abort), None)));
        }
        (BodyPlan::TooLarge, _) => return Ok(Err(())),
        _ => return Ok(Ok((Body::None, None))),
    };
    let mut reservation = Reservation {
        budget: gw.replay_budget.clone(),
        bytes: hold,
    };
    let mut stream = Box::pin(js::chunks(raw));
    let mut head = Vec::new();
    while let Some(chunk) = stream.next().await {
        head.extend_from_slice(&chunk.map_err(|e| JsValue::from_str(&e))?);
        if head.len() as u64 > hold {
            break;
        }
    }
    let seen = head.len() as u64;
    if seen > limit {
        return Ok(Err(()));
    }
    if seen <= hold {
        // One copy into JavaScript, sent by every attempt; the WebAssembly buffer is freed.
        reservation.shrink_to(seen);
        let bytes = js_sys::Uint8Array::from(head.as_slice());
        return Ok(Ok((Body::Bytes(bytes), Some(reservation))));
    }
    // Longer than it may hold: the head, then the rest as it arrives, counted. (The head stays
    // reserved until the request ends.)
    let abort = web_sys::AbortController::new()?;
    let counted = counted_stream(head, stream, limit, exceeded, &abort);
    Ok(Ok((Body::Stream(counted, abort), Some(reservation))))
}

/// `head`, then the chunks of `rest`, as one stream that errors (setting `exceeded` and
/// aborting `abort`) once more than `limit` bytes went through.
fn counted_stream(
    head: Vec<u8>,
    rest: impl futures::Stream<Item = std::result::Result<Vec<u8>, String>> + 'static,
    limit: u64,
    exceeded: &Rc<Cell<bool>>,
    abort: &web_sys::AbortController,
) -> web_sys::ReadableStream {
    let exceeded = exceeded.clone();
    let abort = abort.clone();
    let mut total = 0u64;
    let first = (!head.is_empty()).then_some(Ok::<Vec<u8>, String>(head));
    let counted = futures::stream::iter(first).chain(rest).map(move |chunk| {
        let chunk = chunk.map_err(|e| JsValue::from_str(&e))?;
        total += chunk.len() as u64;
        if total > limit {
            exceeded.set(true);
            abort.abort();
            return Err(JsValue::from_str("the request body exceeds max_body_bytes"));
        }
        Ok(js_sys::Uint8Array::from(chunk.as_slice()).into())
    });
    wasm_streams::ReadableStream::from_stream(counted).into_raw()
}

/// Handles a proxied request: `path` (from its first `/`) and `query` are the request URL's.
pub async fn handle(
    gw: &Gateway,
    req: web_sys::Request,
    request_url: &str,
    method: String,
    path: &str,
    query: Option<&str>,
) -> Result<web_sys::Response> {
    match proxy(gw, req, request_url, method, path, query).await? {
        Ok(resp) => Ok(resp),
        Err(e) => error(&e),
    }
}

async fn proxy(
    gw: &Gateway,
    req: web_sys::Request,
    request_url: &str,
    method: String,
    path: &str,
    query: Option<&str>,
) -> Result<std::result::Result<web_sys::Response, GatewayError>> {
    let started = gw.rt.now_ms();
    let path = path.trim_start_matches('/');
    let (provider_id, rest) = path.split_once('/').unwrap_or((path, ""));
    if provider_id.is_empty() {
        return Ok(Err(GatewayError::NotFound(
            "no such route; proxied paths are /{provider}/{path}".into(),
        )));
    }
    // The caller's headers cross into WebAssembly once, as one string; the few the gateway
    // reads are found in that copy.
    let incoming_text = js::HeaderText::of(&req);
    let incoming = incoming_text.pairs();
    let authorization = js::find_header(&incoming, "authorization");
    let Some(token) = parse_bearer(authorization) else {
        return Ok(Err(GatewayError::InvalidToken(
            "a tokengate bearer token is required (POST /oauth/token)",
        )));
    };
    let connecting_ip = js::find_header(&incoming, "cf-connecting-ip").map(str::to_string);
    // Routed by shape: a managed caller's token is checked in full (checksum, tag) and then by
    // its client's authority; anything else takes the static path, whose memo of checked tokens
    // spares the cached path an HMAC per request.
    let managed = credentials::looks_bound(token);
    // A managed caller's authority counts what it admits: a path the gateway refuses anyway is
    // refused before, so that it is never counted as a request (the URL is built once).
    let checked_early = match gw.providers.get(provider_id).filter(|_| managed) {
        Some(p) => match upstream_url(&p.config.api_base, rest, query) {
            Ok(u) => Some(u),
            Err(e) => return Ok(Err(GatewayError::Path(e))),
        },
        None => None,
    };
    let authorized = if managed {
        match credentials::check(token, Kind::Token, &gw.keys) {
            Ok(Checked { client: Some(id) }) => {
                let checked =
                    check_managed(gw, &id, token, provider_id, &method, connecting_ip).await;
                checked.map(|p| (id, p))
            }
            _ => Err(GatewayError::InvalidToken(
                "the token is unknown or expired",
            )),
        }
    } else {
        authorize_static(gw, token, provider_id, &method, started).await
    };
    let (client_id, provider) = match authorized {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let upstream = match checked_early {
        Some(u) => u,
        None => match upstream_url(&provider.config.api_base, rest, query) {
            Ok(u) => u,
            Err(e) => return Ok(Err(GatewayError::Path(e))),
        },
    };
    let method = method.to_ascii_uppercase();
    if !forwards_method(&method) {
        return Ok(Err(GatewayError::MethodNotForwarded(method)));
    }
    let exceeded = Rc::new(Cell::new(false));
    let declared =
        js::find_header(&incoming, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let read = read_body(gw, &req, declared, &method, &exceeded).await?;
    // The reservation of a held body lives until the response is on its way.
    let (body, _reservation) = match read {
        Ok(b) => b,
        Err(()) => {
            return Ok(Err(GatewayError::BodyTooLarge {
                limit: gw.max_body_bytes,
            }))
        }
    };
    let forwarded = upstream_headers(&incoming, &provider.config.api_headers);

    let result = forward(provider, &method, upstream.as_str(), &forwarded, body).await;
    let ended = gw.rt.now_ms();
    let elapsed = ended.saturating_sub(started);
    let count = |status: u16, origin: Option<TokenOrigin>, error: Option<(&str, Option<&str>)>| {
        stats::proxied(
            &Proxied {
                provider: provider_id,
                status,
                token_source: origin.map(|o| o.as_str()),
                client_id: Some(&client_id),
                managed,
                error,
            },
            ended,
        )
    };
    let line = |event: &'static str, status: u16| {
        LogLine::new(event)
            .str("provider", provider_id)
            .str("method", &method)
            .num("status", status.into())
    };
    match result {
        Ok(((resp, status, got), origin, token)) => {
            if !passes_on(status) {
                // A Workers Response cannot carry it (and a 1xx is no final answer): the body
                // is cancelled, the caller gets a 502.
                if let Some(body) = resp.body() {
                    let _ = body.cancel();
                }
                line("proxy_error", 502)
                    .num("upstream_status", status.into())
                    .str("error", "invalid_response")
                    .num("ms", elapsed)
                    .str("client_id", &client_id)
                    .write();
                count(502, Some(origin), Some(("invalid_response", None)));
                return Ok(Err(GatewayError::UpstreamStatus {
                    provider: provider_id.to_string(),
                    status,
                }));
            }
            line("proxy", status)
                .str("token_source", origin.as_str())
                .num("ms", elapsed)
                .str("client_id", &client_id)
                .write();
            count(status, Some(origin), None);
            let redirect = RedirectContext {
                api_base: &provider.config.api_base,
                upstream: &upstream,
                request_url,
                provider: provider_id,
            };
            respond(resp, status, got, origin, &token, &redirect).map(Ok)
        }
        Err(_) if exceeded.get() => {
            // The counted body stopped the upstream request part way.
            line("proxy_error", 413)
                .str("error", "request_too_large")
                .num("ms", elapsed)
                .str("client_id", &client_id)
                .write();
            count(413, None, None);
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
            line("proxy_error", e.status())
                .str("error", e.code())
                .num("ms", elapsed)
                .str("client_id", &client_id)
                .write();
            let provider_error = match &e {
                GatewayError::Upstream { error, .. } => match error.as_ref() {
                    CallError::Token(t) => t.provider_error.clone(),
                    CallError::Transport(_) => None,
                },
                _ => None,
            };
            count(
                e.status(),
                None,
                Some((e.code(), provider_error.as_deref())),
            );
            Ok(Err(e))
        }
    }
}

/// A managed caller's request, decided by its authority object (one round trip): the
/// provider, or the refusal.
async fn check_managed<'a>(
    gw: &'a Gateway,
    client_id: &str,
    token: &str,
    provider_id: &str,
    method: &str,
    address: Option<String>,
) -> std::result::Result<&'a Provider, GatewayError> {
    let provider = gw.providers.get(provider_id);
    let req = CheckRequest {
        token_sha256: hex(&sha256(token.as_bytes())),
        provider: provider_id.to_string(),
        provider_known: provider.is_some(),
        method: method.to_string(),
        address,
    };
    let answer = gw
        .authority
        .call(&client_object(client_id), &Op::Check(req))
        .await;
    let refusal = match answer {
        Ok((200, _)) => {
            return provider
                .ok_or_else(|| GatewayError::NotFound(format!("unknown provider `{provider_id}`")))
        }
        Ok((status, v)) => match serde_json::from_value::<Refusal>(v) {
            Ok(r) => r,
            Err(_) => return Err(unavailable("check", format!("status {status}"))),
        },
        Err(e) => return Err(unavailable("check", e)),
    };
    let e = refusal.to_gateway_error(provider_id);
    log_event(
        "caller_rejected",
        json!({"client_id": client_id, "status": e.status(), "error": e.code(), "managed": true}),
    );
    Err(e)
}

/// A static caller's request, decided in this isolate: its token's record (memory, else KV),
/// the registry and the ledger.
async fn authorize_static<'a>(
    gw: &'a Gateway,
    token: &str,
    provider_id: &str,
    method: &str,
    now: u64,
) -> std::result::Result<(String, &'a Provider), GatewayError> {
    let record = caller(gw, token).await?;
    let ledger = match gw.loaded_ledger() {
        Some(l) => l,
        None => gw.ledger().await?,
    };
    let authorized = authorize(
        &gw.callers,
        &ledger,
        &record,
        now,
        provider_id,
        method,
        &gw.providers,
    );
    match authorized {
        Ok(p) => Ok((record.client_id, p)),
        Err(e) => {
            if matches!(e, GatewayError::InvalidToken(_)) {
                gw.caller_cache
                    .borrow_mut()
                    .remove(&caller_token_key(token));
            }
            log_event(
                "caller_rejected",
                json!({"client_id": record.client_id, "status": e.status(), "error": e.code()}),
            );
            Err(e)
        }
    }
}

async fn forward(
    provider: &Provider,
    method: &str,
    url: &str,
    forwarded: &[(&str, &str)],
    body: Body,
) -> std::result::Result<
    (
        (web_sys::Response, u16, js::HeaderText),
        TokenOrigin,
        Secret,
    ),
    CallError,
> {
    let replayable = !matches!(body, Body::Stream(..));
    let (bytes, mut stream) = match body {
        Body::None => (None, None),
        Body::Bytes(b) => (Some(b), None),
        Body::Stream(s, abort) => (None, Some((s, abort))),
    };
    let timeout = provider.config.token.timeout_ms;
    let forwarded = js::HeaderLines::from_pairs(forwarded);
    let base = forwarded.as_ref().ok();
    let dpop = provider.proofs.dpop.as_deref();
    let via = provider.transport.via.as_ref();
    let id = provider.config.id.as_str();
    call_api_token(&provider.tokens, method, replayable, |token: Token| {
        // A stream is sent once, under the controller its byte counter aborts.
        let (body, abort): (Option<JsValue>, _) = match (&bytes, stream.take()) {
            (Some(b), _) => (Some(b.clone().into()), None),
            (None, Some((s, abort))) => (Some(s.into()), Some(abort)),
            (None, None) => (None, None),
        };
        async move {
            let base =
                base.ok_or_else(|| TransportError::Network("Headers is unavailable".into()))?;
            // `Bearer …`, or `DPoP …` for a DPoP-bound token (the token is visible ASCII,
            // checked when it was received).
            let authorization = token.authorization();
            let mut nonce_asked = false;
            loop {
                // Names and values came from the platform's own Headers or a checked
                // configuration.
                let mut lines = base.clone();
                let pushed = lines.push("authorization", &authorization);
                if let Some(dpop) = dpop {
                    // A new proof for each request, bound to the token, with the API's nonce.
                    let proof = dpop
                        .proof(
                            DpopServer::Api,
                            method,
                            url,
                            now_ms(),
                            Some(&token.access_token),
                        )
                        .await
                        .map_err(|e| {
                            TransportError::Network(format!(
                                "the DPoP proof could not be signed: {e}"
                            ))
                        })?;
                    lines
                        .push("dpop", &proof)
                        .map_err(|_| TransportError::Network("invalid DPoP proof".into()))?;
                }
                pushed.map_err(|_| {
                    TransportError::Network("the provider token cannot be a header".into())
                })?;
                let out = Outgoing {
                    method,
                    url,
                    headers: &lines,
                    body: body.clone(),
                    via,
                };
                let resp = send_with_timeout(out, timeout, abort.clone()).await?;
                let status = resp.status();
                // The response's headers cross into WebAssembly once: the call's rules, the
                // nonce and the caller's response all read this copy.
                let got = js::HeaderText::of(&resp);
                let mut step = jose::NonceStep::Proceed;
                if let Some(dpop) = dpop {
                    // The API's nonce is kept for the next proof (RFC 9449 §9).
                    let nonce = jose::nonce_value(got.get("dpop-nonce"));
                    step = jose::api_nonce_step(
                        status,
                        got.get("www-authenticate"),
                        nonce.is_some(),
                        nonce_asked,
                        replayable,
                    );
                    dpop.set_nonce(DpopServer::Api, nonce);
                    if step == jose::NonceStep::Resend {
                        nonce_asked = true;
                        if let Some(b) = resp.body() {
                            let _ = b.cancel();
                        }
                        log_event(
                            "dpop_nonce",
                            json!({"server": "api", "provider": id, "status": status}),
                        );
                        continue;
                    }
                }
                let retry_after = got.get("retry-after").map(str::to_string);
                // A nonce request the caller must have is about the proof, not the token: the
                // call's rules see a final client error, so the token is neither dropped nor
                // reported as refused (to the minter, for the fleet). The caller gets the 401;
                // the next request carries the nonce.
                let callers = step == jose::NonceStep::CallersAnswer;
                return Ok(ApiReply {
                    status: if callers { 400 } else { status },
                    retry_after,
                    response: (resp, status, got),
                });
            }
        }
    })
    .await
}

/// The caller's response: upstream status and body (streamed), of the upstream `headers` those
/// the core lets through (none that echoes `token`, a `Location` rewritten in `redirect`), a
/// private `Cache-Control` and `Server-Timing`.
fn respond(
    resp: web_sys::Response,
    status: u16,
    headers: js::HeaderText,
    origin: TokenOrigin,
    token: &Secret,
    redirect: &RedirectContext<'_>,
) -> Result<web_sys::Response> {
    let out = js::HeaderLines::from_pairs(&downstream_headers(
        &headers.pairs(),
        origin,
        token,
        redirect,
    ))?;
    // The upstream body stream itself, not a rebuilt Response around it.
    js::response_with(&resp, status, &out, !has_null_body(status))
}
