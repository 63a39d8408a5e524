//! `TokenClient.fetch`: the caller's request sent through [`crate::flow::call_api`] with a bearer
//! token per attempt.
//!
//! Two ways to send it ([`Plan`]):
//!
//! - **Direct** (the common case: a string or `URL` input that parses on its own, a plain
//!   `init`, no stream body): every attempt is `fetch(input, {...init, headers, signal})`, with
//!   no `Request` built. The `Headers` are built once from `init.headers` (which validates them
//!   before a token is fetched) and get the attempt's `Authorization`. A body that is not a
//!   stream (string, `ArrayBuffer`, typed array, `DataView`, `Blob`, `FormData`,
//!   `URLSearchParams`) is passed as it is on every attempt: `fetch` reads it afresh each time,
//!   so it is replayable without buffering. `fetch` itself validates the other `init` fields; if
//!   it fails, the host's `Request` is asked whether the request was invalid (the caller's
//!   mistake, rethrown as is) or the network failed.
//! - **Normalised** (a `Request` input, a stream body, a relative URL, anything unusual): the
//!   request is normalised once with the host's `Request` constructor (which throws the caller's
//!   mistakes before a token is fetched) and rebuilt per attempt. A `Request`'s body is buffered
//!   so it can be replayed; a `ReadableStream` or async-iterable `init.body` is sent once and
//!   never replayed.
//!
//! Each attempt runs under the configured `timeoutMs` until the response headers are in (then
//! the timer is cleared, so the body may take as long as it needs), combined with the caller's
//! `signal` by `AbortSignal.any` only when there is one; a caller's abort is rethrown as is and
//! never retried. The timer callback is one shared closure, handed its controller by
//! `setTimeout`.

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
use web_sys::{AbortSignal, Request, Response};

// Plain property access through generated glue (`init.method`, …): no property-name strings
// cross from wasm on the hot path.
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = URL)]
    type JsUrl;
    #[wasm_bindgen(constructor, js_class = "URL", catch)]
    fn new(input: &JsValue) -> Result<JsUrl, JsValue>;
    #[wasm_bindgen(method, getter, structural)]
    fn username(this: &JsUrl) -> JsValue;
    #[wasm_bindgen(method, getter, structural)]
    fn password(this: &JsUrl) -> JsValue;

    /// A `Headers`, built from any `HeadersInit` (object, pairs, `Headers`, `undefined`).
    #[wasm_bindgen(js_name = Headers)]
    type JsHeaders;
    #[wasm_bindgen(constructor, js_class = "Headers", catch)]
    fn new(init: &JsValue) -> Result<JsHeaders, JsValue>;
    #[wasm_bindgen(method, structural, catch)]
    fn set(this: &JsHeaders, name: &JsValue, value: &JsValue) -> Result<(), JsValue>;

    /// A `RequestInit`: the caller's, or one built here.
    #[wasm_bindgen(extends = Object)]
    type Init;
    #[wasm_bindgen(method, getter, structural)]
    fn method(this: &Init) -> JsValue;
    #[wasm_bindgen(method, getter, structural)]
    fn body(this: &Init) -> JsValue;
    #[wasm_bindgen(method, getter, structural)]
    fn signal(this: &Init) -> JsValue;
    #[wasm_bindgen(method, getter, structural)]
    fn headers(this: &Init) -> JsValue;
    #[wasm_bindgen(method, setter, structural)]
    fn set_headers(this: &Init, value: &JsHeaders);
    #[wasm_bindgen(method, setter, structural)]
    fn set_signal(this: &Init, value: &AbortSignal);
}

thread_local! {
    static AUTHORIZATION: JsValue = JsValue::from_str("authorization");
    static OBJECT_PROTOTYPE: JsValue = Object::get_prototype_of(&Object::new()).into();
}

/// `"Bearer <access token>"` as a JS string, kept while the token stays the same: encoding it
/// for every call is a measurable part of a fetch's overhead.
#[derive(Clone, Default)]
pub(crate) struct BearerCache(Rc<RefCell<Option<(Secret, JsValue)>>>);

impl BearerCache {
    fn header(&self, token: &Secret) -> JsValue {
        let mut cached = self.0.borrow_mut();
        match &*cached {
            Some((t, v)) if t.ct_eq(token.expose()) => v.clone(),
            _ => {
                let v = JsValue::from(format!("Bearer {}", token.expose()));
                *cached = Some((token.clone(), v.clone()));
                v
            }
        }
    }
}

/// How each attempt sends the caller's request (see the module documentation).
enum Plan {
    Direct {
        /// The caller's string or `URL`, passed to `fetch` as it is.
        input: JsValue,
        /// A copy of the caller's `init` with `headers` replaced by [`Plan::Direct::headers`]
        /// and `signal` by the attempt's.
        init: Init,
        /// The caller's headers; `authorization` is set on them before each attempt (`fetch`
        /// copies them when called).
        headers: JsHeaders,
        /// The caller's `init.signal`.
        caller: Option<AbortSignal>,
    },
    Normalised {
        ctor: Function,
        base: Request,
        body: Body,
    },
}

/// The body of a normalised request.
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
    bearer: BearerCache,
    input: JsValue,
    init: JsValue,
) -> Result<JsValue, JsValue> {
    let (plan, method, replayable) = match direct_plan(&input, &init) {
        Some(direct) => direct,
        None => normalised_plan(&input, &init).await?,
    };
    let timeout_ms = source.settings().timeout_ms;
    let last_error: RefCell<Option<JsValue>> = RefCell::default();

    let (plan, fetcher, bearer, last_error) = (&plan, &fetcher, &bearer, &last_error);
    let attempt = move |token: Secret| async move {
        // Failures before the request leaves (a bad header value) are the caller's: status 0
        // stops call_api and the error is rethrown below.
        let stop = |e: JsValue| -> Result<ApiReply<Reply>, TransportError> {
            Ok(ApiReply {
                status: 0,
                retry_after: None,
                response: Reply(Some(Err(e))),
            })
        };
        let bearer = bearer.header(&token);
        let mut deadline = match Deadline::new() {
            Ok(d) => d,
            Err(e) => return stop(e),
        };
        let sent = match plan {
            Plan::Direct {
                input,
                init,
                headers,
                caller,
            } => AUTHORIZATION
                .with(|name| headers.set(name, &bearer))
                .and_then(|()| {
                    // `fetch` reads `init` when called, and attempts run one after the other:
                    // the same object serves every attempt, with that attempt's signal.
                    init.set_signal(&deadline.signal(caller.as_ref()));
                    fetcher.call(input, Some(init)).map(|p| (p, true))
                }),
            Plan::Normalised { ctor, base, body } => {
                attempt_request(ctor, base, body, &bearer, &deadline)
                    .and_then(|req| fetcher.call(&req, None))
                    .map(|p| (p, false))
            }
        };
        let (promise, direct) = match sent {
            Ok(sent) => sent,
            Err(e) => return stop(e),
        };
        // Armed once the request is on its way: setting the timer overlaps the wait for the
        // answer instead of delaying the request.
        deadline.arm(timeout_ms);
        match JsFuture::from(promise).await {
            Ok(resp) => {
                drop(deadline); // headers are in: the body may take as long as it needs
                let resp: Response = resp.unchecked_into();
                let status = resp.status();
                // Retry-After only informs the retry of an error status (429, 5xx).
                let retry_after = if status >= 400 {
                    resp.headers().get("retry-after").ok().flatten()
                } else {
                    None
                };
                Ok(ApiReply {
                    status,
                    retry_after,
                    response: Reply(Some(Ok(resp))),
                })
            }
            Err(_) if deadline.fired() => Err(TransportError::Timeout),
            Err(e) if plan.caller_aborted() => stop(e),
            // The direct plan leaves validating the request to `fetch`: a request the host's
            // `Request` refuses (an invalid `init` field) is the caller's mistake, not a network
            // failure.
            Err(e) if direct && invalid_request(plan) => stop(e),
            Err(e) => {
                let m = network_message(&e);
                *last_error.borrow_mut() = Some(e);
                Err(TransportError::Network(m))
            }
        }
    };

    // The caller's signal covers the whole call — the token exchange and any backoff too, not
    // only the API request.
    let signal = plan.caller_signal();
    if let Some(s) = signal.as_ref().filter(|s| s.aborted()) {
        return Err(s.reason());
    }
    let call = call_api(&source, &method, replayable, attempt);
    let outcome = match &signal {
        None => call.await,
        Some(s) => race_abort(s, call).await?,
    };
    match outcome {
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

/// Runs `fut` until it ends or `signal` aborts (then `Err(signal.reason)`; `fut` is dropped,
/// which leaves a shared token exchange running for its other callers).
async fn race_abort<F: std::future::Future>(
    signal: &AbortSignal,
    fut: F,
) -> Result<F::Output, JsValue> {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let tx = RefCell::new(Some(tx));
    let on_abort = Closure::<dyn FnMut()>::new(move || {
        if let Some(t) = tx.borrow_mut().take() {
            let _ = t.send(());
        }
    });
    let callback: &Function = on_abort.as_ref().unchecked_ref();
    let _ = signal.add_event_listener_with_callback("abort", callback);
    let out = futures::future::select(Box::pin(fut), rx).await;
    let _ = signal.remove_event_listener_with_callback("abort", callback);
    match out {
        futures::future::Either::Left((v, _)) => Ok(v),
        futures::future::Either::Right(_) => Err(signal.reason()),
    }
}

impl Plan {
    /// The caller's own signal, if any.
    fn caller_signal(&self) -> Option<AbortSignal> {
        match self {
            Plan::Direct { caller, .. } => caller.clone(),
            Plan::Normalised { base, .. } => Some(base.signal()),
        }
    }

    /// Whether the caller's own signal has aborted.
    fn caller_aborted(&self) -> bool {
        match self {
            Plan::Direct { caller, .. } => caller.as_ref().is_some_and(AbortSignal::aborted),
            Plan::Normalised { base, .. } => base.signal().aborted(),
        }
    }
}

/// The direct plan with the request's method and replayability, when the request qualifies:
/// `input` a string or `URL` that parses on its own (no base URL) and has no credentials;
/// `init` absent or a plain object whose `method` is a valid, allowed method (GET by default),
/// whose `body` is absent or not a stream (and not on GET/HEAD), whose `signal` is absent or an
/// `AbortSignal` and whose `headers` are valid. Anything else takes the normalised plan, where
/// the host's `Request` decides (and throws its own error for a mistake).
fn direct_plan(input: &JsValue, init: &JsValue) -> Option<(Plan, String, bool)> {
    // `Request` refuses credentials in URLs; a relative URL needs the host's base URL.
    let parsed;
    let url = if input.is_string() {
        parsed = JsUrl::new(input).ok()?;
        &parsed
    } else {
        input.dyn_ref::<JsUrl>()?
    };
    if url.username().is_truthy() || url.password().is_truthy() {
        return None;
    }
    let absent = |v: &JsValue| v.is_undefined() || v.is_null();
    let init: Init = if absent(init) {
        Object::new().unchecked_into()
    } else if init.is_object()
        && OBJECT_PROTOTYPE.with(|p| {
            let proto: JsValue = Object::get_prototype_of(init).into();
            proto == *p || proto.is_null()
        })
    {
        // A plain object: its own properties are all of it, so a copy passes everything on.
        Object::assign(&Object::new(), init.unchecked_ref()).unchecked_into()
    } else {
        return None;
    };
    let method = init.method();
    let method = if method.is_undefined() {
        "GET".to_string()
    } else {
        let m = method.as_string()?;
        if !is_allowed_method(&m) {
            return None;
        }
        m.to_ascii_uppercase()
    };
    let body = init.body();
    if !absent(&body) && (method == "GET" || method == "HEAD" || is_stream(&body)) {
        return None;
    }
    let signal = init.signal();
    let caller = if absent(&signal) {
        None
    } else {
        Some(signal.dyn_into::<AbortSignal>().ok()?)
    };
    let headers = JsHeaders::new(&init.headers()).ok()?;
    init.set_headers(&headers);
    let plan = Plan::Direct {
        input: input.clone(),
        init,
        headers,
        caller,
    };
    Some((plan, method, true))
}

/// An HTTP method `Request` accepts: a token (RFC 9110 §5.6.2) other than CONNECT, TRACE and
/// TRACK.
fn is_allowed_method(m: &str) -> bool {
    !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !["CONNECT", "TRACE", "TRACK"]
            .iter()
            .any(|f| m.eq_ignore_ascii_case(f))
}

/// Whether the host's `Request` refuses the direct plan's `(input, init)` — asked only after
/// `fetch` failed, to tell the caller's mistake (an invalid `init` field) from a network error.
fn invalid_request(plan: &Plan) -> bool {
    let Plan::Direct { input, init, .. } = plan else {
        return false;
    };
    match get(&js_sys::global(), "Request").dyn_into::<Function>() {
        Ok(ctor) => construct(&ctor, &[input, init]).is_err(),
        Err(_) => false,
    }
}

/// The normalised plan: the caller's request built once with the host's `Request`, its body
/// buffered unless it is a stream.
async fn normalised_plan(input: &JsValue, init: &JsValue) -> Result<(Plan, String, bool), JsValue> {
    let ctor: Function = get(&js_sys::global(), "Request")
        .dyn_into()
        .map_err(|_| js_sys::TypeError::new("no global Request constructor"))?;
    let base = if init.is_undefined() || init.is_null() {
        construct(&ctor, &[input])
    } else {
        construct(&ctor, &[input, init])
    };
    let base: Request = base?.unchecked_into();
    let body = if is_stream(&get(init, "body")) {
        Body::Stream
    } else if base.body().is_none() {
        Body::None
    } else {
        let buf = JsFuture::from(base.array_buffer()?).await?;
        Body::Bytes(Uint8Array::new(&buf))
    };
    let replayable = !matches!(body, Body::Stream);
    let method = base.method();
    Ok((Plan::Normalised { ctor, base, body }, method, replayable))
}

/// The request of one normalised attempt: the base request with `Authorization: Bearer …`, the
/// buffered body, and a signal that aborts on the caller's signal or the deadline.
fn attempt_request(
    ctor: &Function,
    base: &Request,
    body: &Body,
    bearer: &JsValue,
    deadline: &Deadline,
) -> Result<JsValue, JsValue> {
    let headers = JsHeaders::new(&base.headers())?;
    AUTHORIZATION.with(|name| headers.set(name, bearer))?;
    let init = Object::new();
    set(&init, "headers", &headers);
    set(&init, "signal", &deadline.signal(Some(&base.signal())));
    if let Body::Bytes(b) = body {
        set(&init, "body", b);
    }
    construct(ctor, &[base, &init])
}
