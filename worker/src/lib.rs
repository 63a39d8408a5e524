//! The tokengate Cloudflare Worker: `POST /oauth/token`, `/oauth/revoke` and
//! `/oauth/introspect`, the server metadata, the admin API (`/admin/*`), `GET /healthz`,
//! `GET /openapi.json` and `ANY /{provider}/{path}`, around the `tokengate` core. Configuration is parsed once per
//! isolate; a bad configuration answers every request with a 500 naming the key at fault.
//!
//! One file per binding, in the workers-rs manner: `js.rs` (the platform's KV, `fetch`,
//! headers, responses and streams, bound directly), `kv.rs` (the store on Workers KV),
//! `transport.rs` (`fetch` with a timeout), `runtime.rs` (clock, timers, randomness, logs);
//! `config.rs` reads `Env`; the handlers are `token_endpoint.rs` and `proxy.rs`; `respond.rs`
//! writes every gateway error. Requests and responses stay the platform's own objects
//! (`web_sys`): nothing is converted that a handler does not read.

mod admin;
mod authority;
mod client_auth;
mod config;
mod js;
mod kv;
mod minter;
mod oauth;
mod pop;
mod proxy;
mod respond;
mod runtime;
mod stats;
mod token_endpoint;
mod transport;

pub use authority::CallerAuthority;

use config::Gateway;
use respond::json_response;
use serde_json::json;
use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;
use tokengate::config::ConfigError;
use tokengate::gateway_error::GatewayError;
use tokengate::http::secure_transport;
use tokengate::proxy::split_request_url;
use worker::{event, Context, Env};

thread_local! {
    static GATEWAY: RefCell<Option<Rc<std::result::Result<Gateway, ConfigError>>>> = const { RefCell::new(None) };
}

pub(crate) fn gateway(env: &Env) -> Rc<std::result::Result<Gateway, ConfigError>> {
    GATEWAY.with(|g| {
        g.borrow_mut()
            .get_or_insert_with(|| {
                let loaded = config::load(env);
                if let Err(e) = &loaded {
                    runtime::log_event("config_error", json!({"error": e.to_string()}));
                }
                Rc::new(loaded)
            })
            .clone()
    })
}

/// Reads the test clock, when one is bound, into the runtime (test builds only).
#[cfg(feature = "test-clock")]
pub(crate) async fn sync_clock(gw: &Gateway) {
    let Some(clock) = &gw.clock else { return };
    match clock.fetch("http://clock/now", None).await {
        Ok(mut r) => {
            if let Some(ms) = r
                .text()
                .await
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
            {
                gw.rt.set_now(ms);
            }
        }
        Err(e) => runtime::log_event("clock_error", json!({"error": e.to_string()})),
    }
}

#[event(start)]
fn start() {
    // A panic message names no secret: code never formats one (see tokengate::secret).
    std::panic::set_hook(Box::new(|info| {
        worker::console_error!("{}", json!({"event": "panic", "message": info.to_string()}));
    }));
}

/// The fetch handler. It cannot fail: what the platform throws while a response is built
/// becomes a logged 500 with the gateway's JSON error body.
#[event(fetch)]
async fn fetch(
    req: web_sys::Request,
    env: Env,
    ctx: Context,
) -> Result<web_sys::Response, Infallible> {
    let answered = match handle(req, &env).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            runtime::log_event("internal_error", json!({"error": js::message(&e)}));
            respond::error(&GatewayError::Internal)
        }
    };
    // Housekeeping the handling started (removing a token a token API no longer needs) runs
    // on after the response, kept alive by this request.
    for task in runtime::take_background() {
        ctx.wait_until(task);
    }
    // Counts this request made travel with the isolate's next flush, which it keeps alive.
    if let Some(flush) = stats::flush(&gateway(&env)) {
        ctx.wait_until(flush);
    }
    // Even the 500 could not be built: a bare one (`new Response(null, {status: 500})` cannot
    // throw; if the platform could not make a response at all, there is nothing to answer).
    Ok(answered.unwrap_or_else(|_| {
        let init = web_sys::ResponseInit::new();
        init.set_status(500);
        web_sys::Response::new_with_opt_str_and_init(None, &init)
            .unwrap_or_else(|_| std::process::abort())
    }))
}

async fn handle(req: web_sys::Request, env: &Env) -> respond::Result<web_sys::Response> {
    let gw = gateway(env);
    let gw = match &*gw {
        Ok(gw) => gw,
        Err(e) => return respond::error(&GatewayError::Config(e.clone())),
    };
    #[cfg(feature = "test-clock")]
    sync_clock(gw).await;
    // Every isolate reconciles the caller ledger before anything else, so that a caller missing
    // from this configuration is remembered as removed (its earlier tokens stay revoked if it
    // comes back). A failure is logged; static callers' requests then answer 503 until it
    // loads.
    if gw.loaded_ledger().is_none() {
        let _ = gw.ledger().await;
    }
    let url = req.url();
    let (path, query) = split_request_url(&url);
    let method = req.method();
    match (method.as_str(), path) {
        ("GET", "/healthz") => json_response(
            200,
            &json!({"status": "ok", "providers": gw.providers.len()}),
            &[],
        ),
        ("POST", "/oauth/token") => token_endpoint::handle(gw, &url, req).await,
        (_, "/oauth/token") => respond::error(&GatewayError::TokenEndpointMethod),
        ("POST", "/oauth/revoke") => oauth::revoke(gw, &url, req).await,
        ("POST", "/oauth/introspect") => oauth::introspect(gw, &url, req).await,
        (_, "/oauth/revoke" | "/oauth/introspect") => {
            respond::error(&GatewayError::TokenEndpointMethod)
        }
        ("GET", "/.well-known/oauth-authorization-server") => oauth::metadata(gw, &url),
        ("GET", "/openapi.json") => oauth::openapi(gw, &url).await,
        // Never a provider's path (no provider id is `healthz` or has a dot): another method is
        // the wrong method for the gateway's own route, not a proxied request without a token.
        (_, "/healthz" | "/openapi.json" | "/.well-known/oauth-authorization-server") => {
            respond::error(&GatewayError::MethodNotAllowed("GET"))
        }
        // A caller token sent in the clear is refused before anything is sent anywhere.
        _ if !secure_transport(&url) => respond::error(&GatewayError::PlainHttp),
        _ if path == "/admin" || path.starts_with("/admin/") => {
            admin::handle(gw, req, &method, path, query).await
        }
        _ => proxy::handle(gw, req, &url, method, path, query).await,
    }
}
