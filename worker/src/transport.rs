//! `fetch`: one outgoing request with a timeout, redirects returned and never followed; the
//! token-endpoint transport of the flow on top of it; bounded body reads.

use futures::future::{select, Either};
use futures::StreamExt;
use std::time::Duration;
use tokengate::flow::{Transport, TransportError};
use tokengate::http::{HttpRequest, HttpResponse, MAX_TOKEN_RESPONSE_BYTES};
use wasm_bindgen::JsValue;
use worker::{ByteStream, Delay, Fetch, Headers, Response};

/// `fetch` with a timeout and `redirect: "manual"`, for token requests.
#[derive(Clone, Copy, Default)]
pub struct FetchTransport;

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
/// timeout. `controller`: one the caller may abort too (else a new one).
async fn timed<T, F, Fut>(
    timeout_ms: u64,
    controller: Option<web_sys::AbortController>,
    work: F,
) -> Result<T, TransportError>
where
    F: FnOnce(web_sys::AbortSignal) -> Fut,
    Fut: std::future::Future<Output = Result<T, TransportError>>,
{
    let controller = match controller {
        Some(c) => c,
        None => web_sys::AbortController::new()
            .map_err(|_| TransportError::Network("AbortController is unavailable".into()))?,
    };
    let work = Box::pin(work(controller.signal()));
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    match select(work, timer).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => {
            controller.abort();
            Err(TransportError::Timeout)
        }
    }
}

/// Sends `out`, waiting at most `timeout_ms` for the response headers. Redirects are returned,
/// never followed. `abort`: a controller that also aborts the request (the proxy's body
/// counter uses it to tear the request down when the body runs over its limit).
pub async fn send_with_timeout(
    out: Outgoing<'_>,
    timeout_ms: u64,
    abort: Option<web_sys::AbortController>,
) -> Result<Response, TransportError> {
    timed(timeout_ms, abort, |signal| async move {
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
        timed(timeout_ms, None, |signal| async move {
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
