//! `TokenClient.fetch`: the caller's request, normalised once with the host's `Request`
//! constructor, sent through [`crate::flow::call_api`] with a bearer token per attempt.
//!
//! Replay needs the body more than once, so every body that is already in memory (string,
//! `ArrayBuffer`, typed array, `Blob`, `FormData`, `URLSearchParams`, a `Request`'s body) is
//! buffered; a `ReadableStream` or async-iterable `init.body` is sent once and never replayed.
//! Each attempt runs under the configured `timeoutMs` (until response headers), combined with
//! the caller's `signal`; a caller's abort is rethrown as is and never retried.

use crate::core::error::{ErrorCode, TokenError};
use crate::core::secret::Secret;
use crate::flow::{call_api, ApiError, ApiReply, TransportError};
use crate::npm::error::{set, token_error, Scrubber};
use crate::npm::host::{get, network_message, Deadline, Fetcher};
use crate::npm::Source;
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, Response};

/// The body of the caller's request.
enum Body {
    /// No body (GET, HEAD, or none given).
    None,
    /// Buffered bytes: replayable.
    Bytes(Uint8Array),
    /// A stream left inside the base request: sent once.
    Stream,
}

/// One attempt's result. A response that `call_api` discards (before a retry or a replay) has
/// its body cancelled on drop, so the connection is released instead of waiting for GC.
struct Reply(Option<Result<Response, JsValue>>);

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(Ok(resp)) = &self.0 {
            if let Some(body) = resp.body() {
                ignore_rejection(&body.cancel());
            }
        }
    }
}

thread_local! {
    static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_: JsValue| {});
}

/// Marks `p`'s rejection as handled (an unhandled one would end a Node process).
fn ignore_rejection(p: &Promise) {
    IGNORE.with(|f| {
        let _ = p.catch(f);
    });
}

fn construct(ctor: &Function, args: &[&JsValue]) -> Result<JsValue, JsValue> {
    let args: Array = args.iter().copied().collect();
    Reflect::construct(ctor, &args)
}

/// True for a `ReadableStream` or an async iterable (Node streams).
fn is_stream(v: &JsValue) -> bool {
    v.is_object()
        && (get(v, "getReader").is_function() || js_sys::Symbol::async_iterator().js_in(v))
}

/// Runs `client.fetch(input, init)`.
pub(crate) async fn api_fetch(
    source: Source,
    fetcher: Fetcher,
    scrub: Scrubber,
    input: JsValue,
    init: JsValue,
) -> Result<JsValue, JsValue> {
    let request_ctor: Function = get(&js_sys::global(), "Request")
        .dyn_into()
        .map_err(|_| js_sys::TypeError::new("no global Request constructor"))?;
    let base = if init.is_undefined() || init.is_null() {
        construct(&request_ctor, &[&input])
    } else {
        construct(&request_ctor, &[&input, &init])
    };
    let base: Request = base?.unchecked_into();
    let body = if is_stream(&get(&init, "body")) {
        Body::Stream
    } else if base.body().is_none() {
        Body::None
    } else {
        let buf = JsFuture::from(base.array_buffer()?).await?;
        Body::Bytes(Uint8Array::new(&buf))
    };
    let replayable = !matches!(body, Body::Stream);
    let method = base.method();
    let timeout_ms = source.settings().timeout_ms;
    let last_error: Rc<RefCell<Option<JsValue>>> = Rc::default();

    let attempt = |token: Secret| {
        let (base, ctor, fetcher, last_error) = (
            Clone::clone(&base), // not Request.clone(), which tees the body
            request_ctor.clone(),
            fetcher.clone(),
            last_error.clone(),
        );
        let body = match &body {
            Body::Bytes(b) => Some(b.clone()),
            _ => None,
        };
        async move {
            // Failures before the request leaves (a bad header value) are the caller's: status
            // 0 stops call_api and the error is rethrown below.
            let stop = |e: JsValue| -> Result<ApiReply<Reply>, TransportError> {
                Ok(ApiReply {
                    status: 0,
                    retry_after: None,
                    response: Reply(Some(Err(e))),
                })
            };
            let deadline = match Deadline::start(timeout_ms) {
                Ok(d) => d,
                Err(e) => return stop(e),
            };
            let req = match attempt_request(&ctor, &base, body.as_ref(), &token, &deadline) {
                Ok(r) => r,
                Err(e) => return stop(e),
            };
            let promise = match fetcher.call(&req, None) {
                Ok(p) => p,
                Err(e) => return stop(e),
            };
            match JsFuture::from(promise).await {
                Ok(resp) => {
                    drop(deadline); // headers are in: the body may take as long as it needs
                    let resp: Response = resp.unchecked_into();
                    Ok(ApiReply {
                        status: resp.status(),
                        retry_after: resp.headers().get("retry-after").ok().flatten(),
                        response: Reply(Some(Ok(resp))),
                    })
                }
                Err(_) if deadline.fired() => Err(TransportError::Timeout),
                Err(e) if base.signal().aborted() => stop(e),
                Err(e) => {
                    let m = network_message(&e);
                    *last_error.borrow_mut() = Some(e);
                    Err(TransportError::Network(m))
                }
            }
        }
    };

    match call_api(&source, &method, replayable, attempt).await {
        Ok((mut reply, _origin)) => match reply.0.take() {
            Some(Ok(resp)) => Ok(resp.into()),
            Some(Err(e)) => Err(e),
            None => unreachable!("a reply is taken once"),
        },
        Err(ApiError::Token(e)) => Err(token_error(&e, &scrub, None)),
        Err(ApiError::Transport(TransportError::Timeout)) => {
            let e = TokenError::new(
                ErrorCode::Timeout,
                format!("API did not answer within {timeout_ms} ms"),
            );
            Err(token_error(&e, &scrub, None))
        }
        Err(ApiError::Transport(TransportError::Network(m))) => {
            let e = TokenError::new(ErrorCode::Network, format!("API request failed: {m}"));
            Err(token_error(&e, &scrub, last_error.borrow().as_ref()))
        }
    }
}

/// The request of one attempt: the base request with `Authorization: Bearer …`, the buffered
/// body, and a signal that aborts on the caller's signal or the deadline.
fn attempt_request(
    ctor: &Function,
    base: &Request,
    body: Option<&Uint8Array>,
    token: &Secret,
    deadline: &Deadline,
) -> Result<JsValue, JsValue> {
    let headers = Headers::new_with_headers(&base.headers())?;
    headers.set("authorization", &format!("Bearer {}", token.expose()))?;
    let init = Object::new();
    set(&init, "headers", &headers);
    set(&init, "signal", &deadline.signal(Some(&base.signal())));
    if let Some(b) = body {
        set(&init, "body", b);
    }
    construct(ctor, &[base, &init])
}
