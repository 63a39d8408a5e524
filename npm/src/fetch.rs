//! `TokenClient.fetch`: the caller's request sent through [`crate::flow::call_api`] with a bearer
//! token per attempt.
//!
//! Two ways to send it ([`Plan`]):
//!
//! - **Direct** (the common case: a string or `URL` input that parses on its own, a plain
//!   `init`, no stream body; `Attempt.direct` in `glue.js` says which requests qualify): every
//!   attempt is `fetch(input, {...init, headers, signal})`, with no `Request` built. The headers
//!   are copied once from `init.headers` (a plain object stays a plain object, anything else
//!   becomes a `Headers`) and get the attempt's `Authorization`. A body that is not a stream
//!   (string, `ArrayBuffer`, typed array, `DataView`, `Blob`, `FormData`, `URLSearchParams`) is
//!   passed as it is on every attempt: `fetch` reads it afresh each time, so it is replayable
//!   without buffering. With a fresh token, `fetch` itself validates the URL, header values and
//!   the other `init` fields; if it fails, the host's `Request` is asked whether the request
//!   was invalid (the caller's mistake, rethrown as is) or the network failed. Without one (the
//!   call starts with an exchange) the URL and headers are parsed first, so a mistake throws
//!   before any token request. The steps that shape the request run in
//!   `glue.js` (one crossing per call, one per attempt): on this path each value crossing
//!   between wasm and JavaScript costs more than the work it carries.
//! - **Normalised** (a `Request` input, a stream body, a relative URL, anything unusual): the
//!   request is normalised once with the host's `Request` constructor (which throws the caller's
//!   mistakes before a token is fetched) and rebuilt per attempt. A `Request`'s body is buffered
//!   so it can be replayed; a `ReadableStream` or async-iterable `init.body` is sent once and
//!   never replayed.
//!
//! Each attempt runs under the configured `timeoutMs` until the response headers are in (the
//! body may then take as long as it needs). How the timeout ends the attempt depends on what it
//! costs ([`FetchState`]):
//!
//! - Normally the attempt carries no `AbortSignal` of ours: a timer reports the timeout
//!   ([`Watch`]). Node's `fetch` spends about 15 µs handling a request's signal, ~5 % of a
//!   round trip to a local server, on every request that carries one. A request that times
//!   out this way is left to finish: its body is cancelled when its response arrives, and the
//!   host's own limits bound the wait (Node's `fetch` gives up after 300 s without headers).
//! - After an attempt of the client has timed out, its attempts carry an `AbortController`'s
//!   signal for [`ABORT_WINDOW_MS`]: while the upstream hangs, each timed-out request is torn
//!   down at its deadline instead of holding a connection.
//! - A caller's own `init.signal` (or a `Request` input, which always has one) is combined with
//!   the deadline's by `AbortSignal.any`; a caller's abort is rethrown as is and never retried.
//!
//! In the package, a warm direct call's first attempt is usually sent by the fast lane in
//! `glue.js` (see `lane.rs`); [`Start::Resume`] continues such a call here.

use crate::core::error::{ErrorCode, TokenError};
use crate::core::secret::Secret;
use crate::flow::{call_api, ApiError, ApiReply, Runtime, TransportError};
use crate::npm::error::{set, token_error, Scrubber};
use crate::npm::host::{get, network_message, Deadline, Fetcher};
use crate::npm::lane::Lane;
use crate::npm::Source;
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Request, Response};

#[wasm_bindgen]
extern "C" {
    /// A `Headers`, built from any `HeadersInit` (object, pairs, `Headers`, `undefined`).
    #[wasm_bindgen(js_name = Headers)]
    type JsHeaders;
    #[wasm_bindgen(constructor, js_class = "Headers", catch)]
    fn new(init: &JsValue) -> Result<JsHeaders, JsValue>;
    #[wasm_bindgen(method, structural, catch)]
    fn set(this: &JsHeaders, name: &str, value: &JsValue) -> Result<(), JsValue>;
}

#[wasm_bindgen(module = "/src/npm/glue.js")]
extern "C" {
    type Attempt;
    /// The direct plan of `fetch(input, init)`, or `null` (see `glue.js`).
    #[wasm_bindgen(static_method_of = Attempt)]
    fn direct(input: &JsValue, init: &JsValue, strict: bool) -> JsValue;
    /// Sends one attempt of a direct request and reports how it settles to `settle(id, …)`.
    #[wasm_bindgen(static_method_of = Attempt, catch)]
    fn send(
        req: &DirectRequest,
        fetch: &JsValue,
        bearer: &JsValue,
        signal: Option<&AbortSignal>,
        ms: f64,
        id: u32,
        settle: &Function,
    ) -> Result<(), JsValue>;
    /// Reports how `sent` settles, or that `ms` (when ≥ 0) passed first, to `settle(id, …)`.
    #[wasm_bindgen(static_method_of = Attempt)]
    fn watch(sent: &Promise, ms: f64, id: u32, settle: &Function);
    /// Whether a body is a `ReadableStream` or an async iterable (sent once, never replayed).
    #[wasm_bindgen(static_method_of = Attempt, js_name = isStream)]
    fn is_stream(body: &JsValue) -> bool;
    /// Whether the host's `Request` refuses a direct request.
    #[wasm_bindgen(static_method_of = Attempt)]
    fn invalid(req: &DirectRequest) -> bool;

    /// What `Attempt.direct` returns: `{input, init, headers, method, signal}`.
    type DirectRequest;
    #[wasm_bindgen(method, getter, structural)]
    fn method(this: &DirectRequest) -> String;
    #[wasm_bindgen(method, getter, structural)]
    fn signal(this: &DirectRequest) -> Option<AbortSignal>;
}

/// How a watched `fetch` promise settled.
enum Settled {
    Response(JsValue),
    Error(JsValue),
    TimedOut,
}

enum Slot {
    /// Not settled yet; the waker of the last poll.
    Waiting(Option<Waker>),
    Settled(Settled),
    /// Settled and taken: a later report (a response after the timeout) finds nobody waiting.
    Taken,
}

#[derive(Default)]
struct Watches {
    next: u32,
    slots: BTreeMap<u32, Slot>,
}

thread_local! {
    static WATCHES: RefCell<Watches> = RefCell::default();
    /// The one callback of every [`Watch`]: no closure is allocated per attempt (a closure per
    /// awaited promise, as `JsFuture` makes, was a tenth of a warm `fetch`'s own cost).
    static SETTLE: Closure<dyn FnMut(u32, u32, JsValue) -> bool> = Closure::new(settle);
}

/// `Attempt.watch`'s report: kind 0 a response, 1 an error, 2 the timeout. Returns whether a
/// [`Watch`] was waiting for it.
fn settle(id: u32, kind: u32, value: JsValue) -> bool {
    let waker = WATCHES.with(|w| {
        let mut w = w.borrow_mut();
        let slot = w.slots.get_mut(&id)?;
        let Slot::Waiting(waker) = slot else {
            return None;
        };
        let waker = waker.take();
        *slot = Slot::Settled(match kind {
            0 => Settled::Response(value),
            1 => Settled::Error(value),
            _ => Settled::TimedOut,
        });
        Some(waker)
    });
    match waker {
        Some(waker) => {
            if let Some(w) = waker {
                w.wake();
            }
            true
        }
        None => false,
    }
}

/// A future of how an attempt's `fetch` promise settles, within an optional timeout.
struct Watch {
    id: u32,
}

impl Watch {
    /// A watch whose `id` and callback are handed to `start` (which calls `Attempt.send` or
    /// `Attempt.watch` with them). An error from `start` drops the watch.
    fn start(start: impl FnOnce(u32, &Function) -> Result<(), JsValue>) -> Result<Self, JsValue> {
        let id = WATCHES.with(|w| {
            let mut w = w.borrow_mut();
            let id = w.next;
            w.next = w.next.wrapping_add(1);
            w.slots.insert(id, Slot::Waiting(None));
            id
        });
        let watch = Watch { id };
        SETTLE.with(|f| start(id, f.as_ref().unchecked_ref()))?;
        Ok(watch)
    }
}

/// `timeoutMs` for `Attempt.send`/`watch`: `None` (a deadline aborts instead) is no timer.
fn timer_ms(timeout_ms: Option<u64>) -> f64 {
    timeout_ms.map_or(-1.0, |ms| ms as f64)
}

impl Future for Watch {
    type Output = Settled;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Settled> {
        WATCHES.with(|w| {
            let mut w = w.borrow_mut();
            let Some(slot) = w.slots.get_mut(&self.id) else {
                unreachable!("a watch's slot lives as long as the watch")
            };
            match std::mem::replace(slot, Slot::Taken) {
                Slot::Settled(s) => Poll::Ready(s),
                Slot::Waiting(_) => {
                    *slot = Slot::Waiting(Some(cx.waker().clone()));
                    Poll::Pending
                }
                Slot::Taken => unreachable!("a watch is not polled after it is ready"),
            }
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        WATCHES.with(|w| w.borrow_mut().slots.remove(&self.id));
    }
}

/// How long after a timed-out attempt a client's attempts carry an abort signal (see the module
/// documentation).
pub(crate) const ABORT_WINDOW_MS: u64 = 5 * 60 * 1000;

/// A client's state across `fetch` calls. Cheap to clone.
#[derive(Clone)]
pub(crate) struct FetchState(Rc<FetchStateInner>);

struct FetchStateInner {
    /// `"Bearer <access token>"` as a JS string, kept while the token stays the same: encoding
    /// it for every call is a measurable part of a fetch's overhead.
    bearer: RefCell<Option<(Secret, JsValue)>>,
    /// Until when (epoch ms, the client's clock) attempts carry an abort signal: set to
    /// [`ABORT_WINDOW_MS`] after the last timed-out attempt.
    abort_until_ms: Cell<u64>,
    /// The fast lane's view of this client (see `lane.rs`).
    lane: Lane,
}

impl FetchState {
    pub(crate) fn new(lane: Lane) -> Self {
        FetchState(Rc::new(FetchStateInner {
            bearer: RefCell::default(),
            abort_until_ms: Cell::new(0),
            lane,
        }))
    }

    pub(crate) fn lane(&self) -> &Lane {
        &self.0.lane
    }

    /// `"Bearer <token>"` as a JS string.
    pub(crate) fn bearer(&self, token: &Secret) -> JsValue {
        let mut cached = self.0.bearer.borrow_mut();
        match &*cached {
            Some((t, v)) if t.ct_eq(token.expose()) => v.clone(),
            _ => {
                let v = JsValue::from(format!("Bearer {}", token.expose()));
                *cached = Some((token.clone(), v.clone()));
                v
            }
        }
    }

    /// Brings the fast lane up to date with the token in memory.
    pub(crate) fn sync_lane(&self, source: &Source) {
        self.0.lane.sync(source, |t| self.bearer(t));
    }

    /// Whether an attempt starting now carries an abort signal (the clock is read only after
    /// a timeout).
    fn aborting(&self, rt: &impl Runtime) -> bool {
        let until = self.0.abort_until_ms.get();
        until > 0 && rt.now_ms() < until
    }

    /// Records a timed-out attempt.
    fn timed_out(&self, rt: &impl Runtime) {
        let until = rt.now_ms().saturating_add(ABORT_WINDOW_MS);
        self.0.abort_until_ms.set(until);
        self.0.lane.set_abort_until(until);
    }
}

/// How each attempt sends the caller's request (see the module documentation).
enum Plan {
    /// `Attempt.direct`'s request: the caller's `input`, a copy of `init` with copied headers.
    Direct(DirectRequest),
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

/// Where a `client.fetch` call starts.
pub(crate) enum Start {
    /// `fetch(input, init)`, from the beginning.
    Call { input: JsValue, init: JsValue },
    /// The fast lane's first attempt (`glue.js`), handed over because its outcome needs the
    /// token, retry or 401 logic: its direct request, the bearer it carried and how it settled
    /// (kind 0 a response, 1 an error, 2 the timeout).
    Resume {
        req: JsValue,
        bearer: JsValue,
        kind: u32,
        value: JsValue,
    },
}

/// Runs `client.fetch(input, init)`, or continues the fast lane's first attempt.
pub(crate) async fn api_fetch(
    source: Source,
    fetcher: Fetcher,
    scrub: Scrubber,
    state: FetchState,
    start: Start,
) -> Result<JsValue, JsValue> {
    let out = run_fetch(&source, &fetcher, &scrub, &state, start).await;
    state.sync_lane(&source);
    out
}

async fn run_fetch(
    source: &Source,
    fetcher: &Fetcher,
    scrub: &Scrubber,
    state: &FetchState,
    start: Start,
) -> Result<JsValue, JsValue> {
    let (plan, method, replayable, resumed) = match start {
        Start::Call { input, init } => {
            // Without a fresh token the call starts with an exchange: a request `fetch` would
            // refuse is caught first (strict), so it throws before any token request.
            let direct = Attempt::direct(&input, &init, !source.has_fresh_token());
            let (plan, method, replayable) = if direct.is_null() {
                normalised_plan(&input, &init).await?
            } else {
                let req: DirectRequest = direct.unchecked_into();
                let method = req.method();
                (Plan::Direct(req), method, true)
            };
            (plan, method, replayable, None)
        }
        Start::Resume {
            req,
            bearer,
            kind,
            value,
        } => {
            let req: DirectRequest = req.unchecked_into();
            let method = req.method();
            let token = bearer
                .as_string()
                .and_then(|b| b.strip_prefix("Bearer ").map(Secret::new))
                .ok_or_else(|| js_sys::TypeError::new("not a bearer this client issued"))?;
            let settled = match kind {
                0 => Settled::Response(value),
                1 => Settled::Error(value),
                _ => Settled::TimedOut,
            };
            (Plan::Direct(req), method, true, Some((token, settled)))
        }
    };
    let timeout_ms = source.settings().timeout_ms;
    let last_error: RefCell<Option<JsValue>> = RefCell::default();

    let (plan, last_error) = (&plan, &last_error);
    let attempt = move |token: Secret| async move {
        let bearer = state.bearer(&token);
        let caller = plan.caller_signal();
        let mut deadline = if caller.is_some() || state.aborting(source.runtime()) {
            match Deadline::new() {
                Ok(d) => Some(d),
                Err(e) => return Ok(stopped(e)),
            }
        } else {
            None
        };
        // With a deadline the controller aborts the request; without one a timer reports it.
        let timer = timer_ms(deadline.is_none().then_some(timeout_ms));
        let watch = match plan {
            Plan::Direct(req) => {
                let signal = deadline.as_ref().map(|d| d.signal(caller.as_ref()));
                Watch::start(|id, settle| {
                    Attempt::send(
                        req,
                        &fetcher.function(),
                        &bearer,
                        signal.as_ref(),
                        timer,
                        id,
                        settle,
                    )
                })
            }
            Plan::Normalised { ctor, base, body } => Watch::start(|id, settle| {
                let req = attempt_request(ctor, base, body, &bearer, deadline.as_ref())?;
                Attempt::watch(&fetcher.call(&req, None)?, timer, id, settle);
                Ok(())
            }),
        };
        let watch = match watch {
            Ok(w) => w,
            // Failures before the request leaves (a bad header value) are the caller's.
            Err(e) => return Ok(stopped(e)),
        };
        // Armed once the request is on its way: setting the timer overlaps the wait for the
        // answer instead of delaying the request.
        if let Some(d) = deadline.as_mut() {
            d.arm(timeout_ms);
        }
        let settled = watch.await;
        let fired = deadline.as_ref().is_some_and(Deadline::fired);
        drop(deadline); // headers are in (or never will be): the body may take its time
        let sent = Sent {
            token: &token,
            fired,
            caller: caller.as_ref(),
        };
        outcome(settled, &sent, plan, state, source, last_error)
    };
    let first = resumed.map(|(token, settled)| {
        let sent = Sent {
            token: &token,
            fired: false,
            caller: None,
        };
        let result = outcome(settled, &sent, plan, state, source, last_error);
        (token, result)
    });

    // The caller's signal covers the whole call — the token exchange and any backoff too, not
    // only the API request.
    let signal = plan.caller_signal();
    if let Some(s) = signal.as_ref().filter(|s| s.aborted()) {
        return Err(s.reason());
    }
    let call = call_api(source, &method, replayable, first, attempt);
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
        Err(ApiError::Token(e)) => Err(token_error(&e, scrub, None)),
        Err(ApiError::Transport(TransportError::Timeout)) => {
            let e = TokenError::new(
                ErrorCode::Timeout,
                format!("API did not answer within {timeout_ms} ms"),
            );
            Err(token_error(&e, scrub, None))
        }
        Err(ApiError::Transport(TransportError::Network(m))) => {
            let e = TokenError::new(ErrorCode::Network, format!("API request failed: {m}"));
            Err(token_error(&e, scrub, last_error.borrow().as_ref()))
        }
    }
}

/// A reply with status 0: it stops `call_api`, and `api_fetch` rethrows `e` as it is (the
/// caller's own mistake, or the caller's abort).
fn stopped(e: JsValue) -> ApiReply<Reply> {
    ApiReply {
        status: 0,
        retry_after: None,
        response: Reply(Some(Err(e))),
    }
}

/// How an attempt was sent.
struct Sent<'a> {
    /// The token it carried.
    token: &'a Secret,
    /// Whether our deadline aborted it.
    fired: bool,
    /// The caller's own signal.
    caller: Option<&'a AbortSignal>,
}

/// What an attempt that settled as `settled` means to `call_api`.
fn outcome(
    settled: Settled,
    sent: &Sent<'_>,
    plan: &Plan,
    state: &FetchState,
    source: &Source,
    last_error: &RefCell<Option<JsValue>>,
) -> Result<ApiReply<Reply>, TransportError> {
    match settled {
        Settled::Response(resp) => {
            let resp: Response = resp.unchecked_into();
            let status = resp.status();
            if status == 401 {
                // Concurrent warm calls wait for the refresh in Rust instead of presenting
                // the refused token again.
                state.lane().forget(sent.token);
            }
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
        Settled::TimedOut => {
            state.timed_out(source.runtime());
            Err(TransportError::Timeout)
        }
        Settled::Error(_) if sent.fired => {
            state.timed_out(source.runtime());
            Err(TransportError::Timeout)
        }
        Settled::Error(e) if sent.caller.is_some_and(AbortSignal::aborted) => Ok(stopped(e)),
        // The direct plan leaves validating the request to `fetch`: a request the host's
        // `Request` refuses (an invalid `init` field) is the caller's mistake, not a network
        // failure.
        Settled::Error(e) if matches!(plan, Plan::Direct(req) if Attempt::invalid(req)) => {
            Ok(stopped(e))
        }
        Settled::Error(e) => {
            let m = network_message(&e);
            *last_error.borrow_mut() = Some(e);
            Err(TransportError::Network(m))
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
    /// The caller's own signal, if any (a `Request` always has one).
    fn caller_signal(&self) -> Option<AbortSignal> {
        match self {
            Plan::Direct(req) => req.signal(),
            Plan::Normalised { base, .. } => Some(base.signal()),
        }
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
    let body = if Attempt::is_stream(&get(init, "body")) {
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
/// buffered body, and a signal that aborts on the caller's signal or the deadline (a
/// `Request` always has a signal, so a normalised attempt always has a deadline).
fn attempt_request(
    ctor: &Function,
    base: &Request,
    body: &Body,
    bearer: &JsValue,
    deadline: Option<&Deadline>,
) -> Result<JsValue, JsValue> {
    let headers = JsHeaders::new(&base.headers())?;
    headers.set("authorization", bearer)?;
    let init = Object::new();
    set(&init, "headers", &headers);
    let signal = match deadline {
        Some(d) => d.signal(Some(&base.signal())),
        None => base.signal(),
    };
    set(&init, "signal", &signal);
    if let Body::Bytes(b) = body {
        set(&init, "body", b);
    }
    construct(ctor, &[base, &init])
}
