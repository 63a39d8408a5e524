//! The Worker's runtime for the flow: the clock, backoff jitter from the platform's CSPRNG,
//! sleeping on a Workers timer, the wake-up of requests waiting for another's token exchange,
//! and structured logs (one JSON line per event).

use futures::future::LocalBoxFuture;
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::Duration;
use tokengate::flow::{FlightSignal, Runtime};
use tokengate::log_level::LogLevel;
use worker::Delay;

/// Clock, jitter, sleep and logs. The clock is `Date.now()`; a test build (feature
/// `test-clock`) adds an offset that the test suites set through the `TOKENGATE_CLOCK` service
/// binding.
#[derive(Clone, Default)]
pub struct WorkerRuntime;

#[cfg(feature = "test-clock")]
thread_local! {
    static OFFSET_MS: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

impl WorkerRuntime {
    /// Makes `now_ms()` read `now_ms` at this instant (test builds only).
    #[cfg(feature = "test-clock")]
    pub fn set_now(&self, now_ms: u64) {
        OFFSET_MS.with(|o| o.set(now_ms as i64 - js_sys::Date::now() as i64));
    }
}

/// The isolate's clock, ms since the epoch (the runtime's `now_ms`).
pub fn now_ms() -> u64 {
    #[cfg(feature = "test-clock")]
    let offset = OFFSET_MS.with(|o| o.get());
    #[cfg(not(feature = "test-clock"))]
    let offset = 0i64;
    (js_sys::Date::now() as i64 + offset).max(0) as u64
}

/// Uniform random bytes from the platform's CSPRNG (`crypto.getRandomValues`), or `None` if
/// the platform refused.
pub fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).ok()?;
    Some(buf)
}

impl Runtime for WorkerRuntime {
    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn jitter(&self) -> f64 {
        // Without randomness the backoff is its full ceiling (jitter 1): still bounded.
        random_bytes::<8>().map_or(1.0, |b| {
            (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
        })
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await
    }

    fn log(&self, event: &str, fields: Value) {
        log_event(event, fields);
    }

    fn flight_signal(&self) -> Option<Rc<dyn FlightSignal>> {
        JsSignal::new().map(|s| Rc::new(s) as Rc<dyn FlightSignal>)
    }

    fn background(&self, task: LocalBoxFuture<'static, ()>) {
        BACKGROUND.with(|b| b.borrow_mut().push(task));
    }
}

thread_local! {
    /// Background tasks the flow made while requests were being handled; the fetch handler
    /// hands them to `ctx.waitUntil` as each request ends ([`take_background`]).
    static BACKGROUND: std::cell::RefCell<Vec<LocalBoxFuture<'static, ()>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The background tasks made so far, for the ending request to keep alive with `waitUntil`.
pub fn take_background() -> Vec<LocalBoxFuture<'static, ()>> {
    BACKGROUND.with(|b| std::mem::take(&mut *b.borrow_mut()))
}

/// The wake-up of an exchange's waiters: a JavaScript promise made by the request that starts
/// the exchange (in its I/O context) and resolved by it when the exchange ends. Each waiter
/// awaits it with its own `then` (so it resumes in its own context, as workerd requires)
/// beside its own timer (so a waiter is never without I/O of its own). If the leader's request
/// is torn down, the promise can never settle: the waiter's timer or the promise's rejection
/// ends the wait, and the waiter starts a new exchange.
struct JsSignal {
    promise: js_sys::Promise,
    resolve: js_sys::Function,
}

impl JsSignal {
    fn new() -> Option<Self> {
        let mut resolve = None;
        let promise = js_sys::Promise::new(&mut |res, _| resolve = Some(res));
        Some(JsSignal {
            promise,
            resolve: resolve?,
        })
    }
}

impl FlightSignal for JsSignal {
    fn raise(&self) {
        let _ = self.resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
    }

    fn wait(&self, max_ms: u64) -> LocalBoxFuture<'static, ()> {
        let promise = self.promise.clone();
        Box::pin(async move { crate::js::settled_within(&promise, max_ms).await })
    }
}

thread_local! {
    static LOG_LEVEL: std::cell::Cell<LogLevel> = const { std::cell::Cell::new(LogLevel::Info) };
}

/// Sets the level below which events are not written (from the configuration); the level of
/// each event is the core's ([`LogLevel::of`]).
pub fn set_log_level(level: LogLevel) {
    LOG_LEVEL.with(|l| l.set(level));
}

/// Writes one JSON line: `{"event": …, …fields}`, unless the event is below the configured
/// level. Callers pass no secret or token.
pub fn log_event(event: &str, fields: Value) {
    crate::stats::observe(event, &fields);
    if LogLevel::of_fields(event, &fields) < LOG_LEVEL.with(|l| l.get()) {
        return;
    }
    let mut line = json!({ "event": event });
    if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), fields) {
        obj.extend(extra);
    }
    web_sys::console::log_1(&line.to_string().into());
}

/// The line of a proxied request, written field by field (no JSON tree is built for the line
/// every request writes), or not at all below the configured level. Callers pass no secret or
/// token.
pub struct LogLine(Option<String>);

impl LogLine {
    /// A line for `event` (`proxy` is info, `proxy_error` an error: [`LogLevel::of`]; the line
    /// holds no `ok`).
    pub fn new(event: &'static str) -> LogLine {
        if LogLevel::of(event, false) < LOG_LEVEL.with(|l| l.get()) {
            return LogLine(None);
        }
        LogLine(Some(format!("{{\"event\":\"{event}\"")))
    }

    /// Adds `"key": "value"` (JSON-escaped).
    pub fn str(mut self, key: &'static str, value: &str) -> LogLine {
        if let Some(line) = &mut self.0 {
            line.push_str(",\"");
            line.push_str(key);
            line.push_str("\":");
            line.push_str(&serde_json::to_string(value).unwrap_or_default());
        }
        self
    }

    /// Adds `"key": n`.
    pub fn num(mut self, key: &'static str, n: u64) -> LogLine {
        if let Some(line) = &mut self.0 {
            line.push_str(",\"");
            line.push_str(key);
            line.push_str("\":");
            line.push_str(&n.to_string());
        }
        self
    }

    /// Writes the line.
    pub fn write(self) {
        if let Some(mut line) = self.0 {
            line.push('}');
            web_sys::console::log_1(&line.into());
        }
    }
}
