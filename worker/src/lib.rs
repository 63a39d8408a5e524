//! The tokengate Cloudflare Worker: `POST /oauth/token`, `GET /healthz` and
//! `ANY /{provider}/{path}`, around the `tokengate` core. Configuration is parsed once per
//! isolate; a bad configuration answers every request with a 500 naming the key at fault.
//!
//! One file per binding, in the workers-rs manner: `kv.rs` (Workers KV), `transport.rs`
//! (`fetch`), `runtime.rs` (clock, timers, randomness, logs); `config.rs` reads `Env`; the
//! handlers are `token_endpoint.rs` and `proxy.rs`; `respond.rs` writes every gateway error.

mod config;
mod kv;
mod proxy;
mod respond;
mod runtime;
mod token_endpoint;
mod transport;

use config::Gateway;
use respond::json_response;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use tokengate::config::ConfigError;
use tokengate::gateway_error::GatewayError;
use worker::{event, Context, Env, Method, Request, Response, Result};

thread_local! {
    static GATEWAY: RefCell<Option<Rc<std::result::Result<Gateway, ConfigError>>>> = const { RefCell::new(None) };
}

fn gateway(env: &Env) -> Rc<std::result::Result<Gateway, ConfigError>> {
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
async fn sync_clock(gw: &Gateway) {
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

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let gw = gateway(&env);
    let gw = match &*gw {
        Ok(gw) => gw,
        Err(e) => return respond::error(&GatewayError::Config(e.clone())),
    };
    #[cfg(feature = "test-clock")]
    sync_clock(gw).await;
    // Every isolate reconciles the caller ledger before anything else, so that a caller missing
    // from this configuration is remembered as removed (its earlier tokens stay revoked if it
    // comes back). A KV failure is logged; the proxy then answers 503 until it loads.
    let _ = gw.ledger().await;
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Get, "/healthz") => json_response(
            200,
            &json!({"status": "ok", "providers": gw.providers.len()}),
            &[],
        ),
        (Method::Post, "/oauth/token") => token_endpoint::handle(gw, req).await,
        (_, "/oauth/token") => respond::error(&GatewayError::TokenEndpointMethod),
        _ => proxy::handle(gw, req).await,
    }
}
