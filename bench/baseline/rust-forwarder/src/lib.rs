//! The Rust floor of tokengate's Worker benchmark: bench/baseline/passthrough.js in Rust. Adds a
//! fixed provider bearer (`env.TOKEN`) and forwards the request to `env.API_BASE` with the
//! global `fetch`, the `/optoro/` prefix of the path dropped and the query kept. No caller
//! check, no token cache, no header hygiene: only what every proxy Worker in Rust costs — the
//! request crossing into WebAssembly, a few platform calls, the response crossing back.
//!
//! The export has the shape `#[event(fetch)]` gives a handler on `web_sys` types
//! (`async fn fetch(req, env, ctx) -> Result<JsValue, JsValue>`), without the worker crate.
//! With the feature `worker-build` it is that handler, built by worker-build.

use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, RequestRedirect};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch(url, init)` (bound through `globalThis`: this module's own export is
    /// also called `fetch`).
    #[wasm_bindgen(js_namespace = globalThis, js_name = fetch)]
    fn global_fetch(url: &str, init: &RequestInit) -> Promise;
}

/// `env[name]` as a string (a missing binding reads as empty).
fn binding(env: &JsValue, name: &str) -> String {
    Reflect::get(env, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// The path and the search of an absolute request URL, as `URL.pathname` and `URL.search` give
/// them (the platform hands the Worker a normalised URL; a lone `?` is an empty search).
fn path_and_search(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let rest = &rest[rest.find('/').unwrap_or(rest.len())..];
    let rest = &rest[..rest.find('#').unwrap_or(rest.len())];
    let (path, search) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    (
        if path.is_empty() { "/" } else { path },
        if search == "?" { "" } else { search },
    )
}

/// The forwarder itself.
async fn forward(req: Request, env: &JsValue) -> Result<JsValue, JsValue> {
    let url = req.url();
    let (path, search) = path_and_search(&url);
    let rest = path.strip_prefix("/optoro/").unwrap_or(path);
    let upstream = format!("{}{rest}{search}", binding(env, "API_BASE"));
    let headers = Headers::new_with_headers(&req.headers())?;
    headers.set(
        "authorization",
        &format!("Bearer {}", binding(env, "TOKEN")),
    )?;
    let init = RequestInit::new();
    init.set_method(&req.method());
    init.set_headers(&headers);
    init.set_body(&req.body().map_or(JsValue::NULL, JsValue::from));
    init.set_redirect(RequestRedirect::Manual);
    JsFuture::from(global_fetch(&upstream, &init)).await
}

/// The export `make bench-forwarder` links with shim.js (the row "rust forwarder").
#[cfg(not(feature = "worker-build"))]
#[wasm_bindgen]
pub async fn fetch(req: Request, env: JsValue, _ctx: JsValue) -> Result<JsValue, JsValue> {
    forward(req, &env).await
}

/// With feature `worker-build`: the same forwarder behind the worker crate's `#[event(fetch)]`
/// on `web_sys` types, built by worker-build with its own JavaScript entry — the way tokengate's
/// Worker is built (the row "rust forwarder, worker-build").
#[cfg(feature = "worker-build")]
#[worker::event(fetch)]
async fn fetch(
    req: Request,
    env: worker::Env,
    _ctx: worker::Context,
) -> worker::Result<web_sys::Response> {
    let env: JsValue = env.into();
    Ok(forward(req, &env).await?.into())
}
