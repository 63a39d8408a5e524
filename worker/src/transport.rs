//! `fetch`: one outgoing request with a timeout, redirects returned and never followed; the
//! token-endpoint transport of the flow on top of it. A provider with an `mtls_certificate`
//! sends through that binding's `fetch` (which presents its client certificate) instead of the
//! global one.

use crate::js;
use futures::future::{select, Either};
use std::time::Duration;
use tokengate::flow::{Transport, TransportError};
use tokengate::http::{HttpRequest, HttpResponse, MAX_TOKEN_RESPONSE_BYTES};
use wasm_bindgen::JsValue;
use worker::Delay;

/// `fetch` with a timeout and `redirect: "manual"`, for token requests: the global `fetch`, or
/// the provider's mTLS certificate binding's.
#[derive(Clone, Default)]
pub struct FetchTransport {
    /// The binding whose `fetch` sends the requests, if any.
    pub via: Option<js::Fetcher>,
}

/// One outgoing request: a proxied request to a provider's API, or a token request. The method
/// is sent verbatim (not mapped through an enum).
pub struct Outgoing<'a> {
    /// Method.
    pub method: &'a str,
    /// Absolute URL.
    pub url: &'a str,
    /// Headers.
    pub headers: &'a js::HeaderLines,
    /// Body, if any.
    pub body: Option<JsValue>,
    /// The binding whose `fetch` sends it (an mTLS certificate), else the global `fetch`.
    pub via: Option<&'a js::Fetcher>,
}

/// Sends `out`, waiting at most `timeout_ms` for the response headers. Redirects are returned,
/// never followed. `abort`: a controller that also aborts the request (the proxy's body
/// counter uses it to tear the request down when the body runs over its limit; a token request
/// aborts it when the whole exchange runs out of time).
pub async fn send_with_timeout(
    out: Outgoing<'_>,
    timeout_ms: u64,
    abort: Option<web_sys::AbortController>,
) -> Result<web_sys::Response, TransportError> {
    js::send_within(
        out.url,
        out.method,
        out.headers,
        out.body,
        timeout_ms,
        abort,
        out.via,
    )
    .await
    .map_err(|f| match f {
        js::SendFailure::Timeout => TransportError::Timeout,
        js::SendFailure::Unbuildable => {
            TransportError::Network("the request could not be built".into())
        }
        js::SendFailure::Failed(e) => TransportError::Network(js::message(&e)),
    })
}

/// Runs `work` within `timeout_ms`; past that, aborts `controller` (whose signal `work`'s
/// request carries) and fails with a timeout.
async fn within<T>(
    timeout_ms: u64,
    controller: &web_sys::AbortController,
    work: impl std::future::Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    match select(Box::pin(work), timer).await {
        Either::Left((r, _)) => r,
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
        // Names and values come from the core; one holding a line break is no header.
        let headers = js::HeaderLines::from_pairs(&req.headers).map_err(|_| {
            TransportError::Network("a token request header holds a line break".into())
        })?;
        let controller = web_sys::AbortController::new()
            .map_err(|_| TransportError::Network("AbortController is unavailable".into()))?;
        let out = Outgoing {
            method: &req.method,
            url: &req.url,
            headers: &headers,
            // No body at all when there is none: `fetch` refuses even an empty one on a GET
            // (a token API's list).
            body: (!req.body.is_empty())
                .then(|| js_sys::Uint8Array::from(req.body.as_slice()).into()),
            via: self.via.as_ref(),
        };
        // The timeout covers the whole exchange, body included, and the body is capped: a
        // token endpoint that trickles or floods cannot hold an exchange (and its waiters).
        let exchange = async {
            let resp = send_with_timeout(out, timeout_ms, Some(controller.clone())).await?;
            let status = resp.status();
            let headers = js::HeaderText::of(&resp)
                .pairs()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect();
            let body = js::read_limited(resp.body(), MAX_TOKEN_RESPONSE_BYTES)
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
        };
        within(timeout_ms, &controller, exchange).await
    }
}
