//! The Cloudflare Worker: `POST /oauth/token`, `GET /healthz` and `ANY /{provider}/{path}`.
//! Configuration is parsed once per isolate; a bad configuration answers every request with a
//! 500 naming the key at fault.

mod config;
mod proxy;
mod respond;
mod runtime;
mod token_endpoint;

use crate::core::config::ConfigError;
use config::Gateway;
use respond::{error_json, json_response};
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
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

/// Reads the test clock, when one is bound, into the runtime.
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
    // A panic message names no secret: code never formats one (see core::secret).
    std::panic::set_hook(Box::new(|info| {
        worker::console_error!("{}", json!({"event": "panic", "message": info.to_string()}));
    }));
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let gw = gateway(&env);
    let path = req.path();
    let gw = match &*gw {
        Ok(gw) => gw,
        Err(e) => {
            let body = json!({
                "error": "config_error",
                "error_description": e.to_string(),
                "provider": e.provider,
                "key": e.key,
            });
            return json_response(500, &body);
        }
    };
    sync_clock(gw).await;
    match (req.method(), path.as_str()) {
        (Method::Get, "/healthz") => json_response(
            200,
            &json!({"status": "ok", "providers": gw.providers.len()}),
        ),
        (Method::Post, "/oauth/token") => token_endpoint::handle(gw, req).await,
        (_, "/oauth/token") => Ok(error_json(405, "invalid_request", "use POST")?
            .with_headers(respond::headers(&[("Allow", "POST")]))),
        _ => proxy::handle(gw, req).await,
    }
}
