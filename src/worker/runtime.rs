//! The Worker's implementations of the flow traits: a `fetch` transport that never follows
//! redirects, a KV token store that encrypts at rest, and the runtime (clock, jitter, sleep,
//! structured logs).

use crate::core::http::{HttpRequest, HttpResponse};
use crate::core::seal::SealKey;
use crate::flow::{Runtime, TokenStore, Transport, TransportError};
use futures::future::{select, Either};
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use worker::kv::KvStore;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response,
};

/// Clock, jitter, sleep and logs. The clock is `Date.now()` plus an offset that tests set via
/// the `TOKENGATE_CLOCK` service binding; production never has one.
#[derive(Clone, Default)]
pub struct WorkerRuntime {
    offset_ms: Rc<Cell<i64>>,
}

impl WorkerRuntime {
    /// Makes `now_ms()` read `now_ms` at this instant.
    pub fn set_now(&self, now_ms: u64) {
        self.offset_ms
            .set(now_ms as i64 - js_sys::Date::now() as i64);
    }
}

/// Uniform random bytes from the platform's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("crypto.getRandomValues is available in Workers");
    buf
}

impl Runtime for WorkerRuntime {
    fn now_ms(&self) -> u64 {
        (js_sys::Date::now() as i64 + self.offset_ms.get()).max(0) as u64
    }

    fn jitter(&self) -> f64 {
        let b = random_bytes::<8>();
        (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await
    }

    fn log(&self, event: &str, fields: Value) {
        log_event(event, fields);
    }

    fn flight_poll_ms(&self) -> Option<u64> {
        // Each request waits on its own timer, in its own I/O context (see the trait).
        Some(5)
    }
}

/// Writes one JSON line: `{"event": …, …fields}`. Callers pass no secret or token.
pub fn log_event(event: &str, fields: Value) {
    let mut line = json!({ "event": event });
    if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), fields) {
        obj.extend(extra);
    }
    worker::console_log!("{}", line);
}

/// `fetch` with a timeout and `redirect: "manual"`.
#[derive(Clone, Copy, Default)]
pub struct FetchTransport;

/// Sends a prepared request, racing it against `timeout_ms`. Redirects are returned, never
/// followed.
pub async fn send_with_timeout(
    url: &str,
    init: &mut RequestInit,
    timeout_ms: u64,
) -> Result<Response, TransportError> {
    init.with_redirect(RequestRedirect::Manual);
    let req = Request::new_with_init(url, init)
        .map_err(|e| TransportError::Network(format!("invalid request: {e}")))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let call = Box::pin(fetch.send_with_signal(&signal));
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    let outcome = select(call, timer).await;
    match outcome {
        Either::Left((Ok(resp), _)) => Ok(resp),
        Either::Left((Err(e), _)) => Err(TransportError::Network(e.to_string())),
        Either::Right(_) => {
            controller.abort();
            Err(TransportError::Timeout)
        }
    }
}

impl Transport for FetchTransport {
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, TransportError> {
        let headers = Headers::new();
        for (k, v) in &req.headers {
            headers
                .append(k, v)
                .map_err(|_| TransportError::Network(format!("invalid header `{k}`")))?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(req.method.clone()))
            .with_headers(headers)
            .with_body(Some(js_sys::Uint8Array::from(req.body.as_slice()).into()));
        let mut resp = send_with_timeout(&req.url, &mut init, timeout_ms).await?;
        let status = resp.status_code();
        let headers = resp
            .headers()
            .entries()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::Network(format!("reading the response failed: {e}")))?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// Workers KV, with values sealed by `TOKENGATE_KEY` (AES-256-GCM, the KV key as associated
/// data). A value that does not open (rotated key, tampering) is a miss.
#[derive(Clone)]
pub struct KvTokenStore {
    /// The namespace.
    pub kv: KvStore,
    /// The at-rest key.
    pub key: Rc<SealKey>,
}

impl TokenStore for KvTokenStore {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        let sealed = self.kv.get(key).text().await.map_err(|e| e.to_string())?;
        Ok(sealed
            .and_then(|s| self.key.open(key.as_bytes(), &s))
            .and_then(|b| String::from_utf8(b).ok()))
    }

    async fn put(&self, key: &str, value: String, ttl_s: u64) -> Result<(), String> {
        let sealed = self
            .key
            .seal(random_bytes(), key.as_bytes(), value.as_bytes());
        self.kv
            .put(key, sealed)
            .map_err(|e| e.to_string())?
            .expiration_ttl(ttl_s)
            .execute()
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.kv.delete(key).await.map_err(|e| e.to_string())
    }
}
