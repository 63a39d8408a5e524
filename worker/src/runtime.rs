//! The Worker's implementations of the flow traits: a `fetch` transport that never follows
//! redirects, a KV token store that encrypts at rest, and the runtime (clock, jitter, sleep,
//! structured logs).

use crate::core::http::{HttpRequest, HttpResponse};
use crate::core::seal::SealKey;
use crate::flow::{Runtime, TokenStore, Transport, TransportError};
use futures::future::{select, Either};
use futures::StreamExt;
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::kv::KvStore;
use worker::{ByteStream, Delay, Fetch, Headers, Response};

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

/// Largest token-endpoint response read.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// One outgoing request. The method is sent verbatim (not mapped through an enum).
pub struct Outgoing<'a> {
    /// Method.
    pub method: &'a str,
    /// Absolute URL.
    pub url: &'a str,
    /// Headers.
    pub headers: &'a Headers,
    /// Body, if any.
    pub body: Option<JsValue>,
}

async fn fetch_once(
    out: &Outgoing<'_>,
    signal: &web_sys::AbortSignal,
) -> Result<Response, TransportError> {
    let init = web_sys::RequestInit::new();
    init.set_method(out.method);
    init.set_headers(&out.headers.0);
    if let Some(b) = &out.body {
        init.set_body(b);
    }
    init.set_redirect(web_sys::RequestRedirect::Manual);
    init.set_signal(Some(signal));
    let req = web_sys::Request::new_with_str_and_init(out.url, &init)
        .map_err(|_| TransportError::Network("the request could not be built".into()))?;
    Fetch::Request(req.into())
        .send()
        .await
        .map_err(|e| TransportError::Network(e.to_string()))
}

/// Runs `work` (which passes the signal to its fetch) within `timeout_ms`, aborting it on
/// timeout.
async fn timed<T, F, Fut>(timeout_ms: u64, work: F) -> Result<T, TransportError>
where
    F: FnOnce(web_sys::AbortSignal) -> Fut,
    Fut: std::future::Future<Output = Result<T, TransportError>>,
{
    let controller = web_sys::AbortController::new()
        .map_err(|_| TransportError::Network("AbortController is unavailable".into()))?;
    let work = Box::pin(work(controller.signal()));
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    let outcome = select(work, timer).await;
    match outcome {
        Either::Left((r, _)) => r,
        Either::Right(_) => {
            controller.abort();
            Err(TransportError::Timeout)
        }
    }
}

/// Sends `out`, waiting at most `timeout_ms` for the response headers. Redirects are returned,
/// never followed.
pub async fn send_with_timeout(
    out: Outgoing<'_>,
    timeout_ms: u64,
) -> Result<Response, TransportError> {
    timed(timeout_ms, |signal| async move {
        fetch_once(&out, &signal).await
    })
    .await
}

/// Reads a body stream, giving up past `limit` bytes (`None`).
pub async fn read_limited(
    stream: Option<ByteStream>,
    limit: usize,
) -> worker::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    if let Some(mut stream) = stream {
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
            if buf.len() > limit {
                return Ok(None);
            }
        }
    }
    Ok(Some(buf))
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
        let out = Outgoing {
            method: &req.method,
            url: &req.url,
            headers: &headers,
            body: Some(js_sys::Uint8Array::from(req.body.as_slice()).into()),
        };
        // The timeout covers the whole exchange, body included, and the body is capped: a
        // token endpoint that trickles or floods cannot hold an exchange (and its waiters).
        timed(timeout_ms, |signal| async move {
            let mut resp = fetch_once(&out, &signal).await?;
            let status = resp.status_code();
            let headers = resp
                .headers()
                .entries()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            let body = read_limited(resp.stream().ok(), MAX_TOKEN_RESPONSE_BYTES)
                .await
                .map_err(|e| TransportError::Network(format!("reading the response failed: {e}")))?
                .ok_or_else(|| {
                    TransportError::Network(format!(
                        "token response exceeds {MAX_TOKEN_RESPONSE_BYTES} bytes"
                    ))
                })?;
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        })
        .await
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
