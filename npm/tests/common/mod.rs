//! Test bodies of the npm crate's exports (`Core` and the pure helpers), shared by `node.rs`
//! (Node) and `browser.rs` (headless Chromium). The provider is `mock.js`, an in-process
//! `fetch`, reached through the same host protocol the package's façade speaks; the façade
//! itself (`npm/js/client.js`) is tested on the built package by tests/npm*.test.mjs.

use js_sys::{Array, Function, Object, Promise, Reflect};
use serde_json::{json, Value};
use tokengate_npm::{set_error_class, Core};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

#[wasm_bindgen(module = "/tests/common/mock.js")]
extern "C" {
    type MockProvider;
    #[wasm_bindgen(constructor)]
    fn new() -> MockProvider;
    #[wasm_bindgen(method, getter)]
    fn clock(this: &MockProvider) -> f64;
    #[wasm_bindgen(method, js_name = scriptToken)]
    fn script_token(this: &MockProvider, entry: JsValue);
    #[wasm_bindgen(method)]
    fn advance(this: &MockProvider, ms: f64);
    #[wasm_bindgen(method, js_name = tokenCount)]
    fn token_count(this: &MockProvider) -> u32;
    #[wasm_bindgen(method, js_name = tokenRequest)]
    fn token_request(this: &MockProvider, i: u32) -> JsValue;

    #[wasm_bindgen(js_name = hostFor)]
    fn host_for(mock: &MockProvider, extra: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = hostReplying)]
    fn host_replying(reply: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = refusedConnection)]
    fn refused_connection() -> JsValue;
    #[wasm_bindgen(js_name = mapCache)]
    fn map_cache() -> JsValue;
    #[wasm_bindgen(js_name = errorShape)]
    fn error_shape(e: &JsValue) -> JsValue;
}

#[wasm_bindgen(module = "/js/error.js")]
extern "C" {
    /// The package's error class.
    #[wasm_bindgen(thread_local_v2, js_name = TokenError)]
    static TOKEN_ERROR: Function;
}

const SECRET: &str = "s3cr:t+/ &%";

/// A JS value from JSON.
fn js(v: Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap()
}

/// A JS value as JSON (for comparisons).
fn json_of(v: &JsValue) -> Value {
    serde_json::from_str(&String::from(js_sys::JSON::stringify(v).unwrap())).unwrap()
}

fn prop(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn str_prop(v: &JsValue, key: &str) -> String {
    prop(v, key).as_string().unwrap_or_default()
}

fn config(extra: Value) -> JsValue {
    let mut c = json!({"tokenUrl": "https://auth.test/token", "clientId": "client-1", "clientSecret": SECRET});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    js(c)
}

/// Registers the package's `TokenError` class, as the façade does before anything else.
fn register() {
    set_error_class(TOKEN_ERROR.with(Function::clone));
}

/// A `Core` over `mock` with `extra` config keys and `host` additions.
fn core_with(mock: &MockProvider, extra: Value, host: &JsValue) -> Core {
    register();
    Core::new(config(extra), host_for(mock, host)).unwrap()
}

fn core(mock: &MockProvider, extra: Value) -> Core {
    core_with(mock, extra, &JsValue::UNDEFINED)
}

async fn ok(p: Promise) -> JsValue {
    JsFuture::from(p).await.expect("promise resolved")
}

async fn err(p: Promise) -> JsValue {
    JsFuture::from(p).await.expect_err("promise rejected")
}

/// Asserts `e` is a TokenError with `code`, and that neither message nor stack holds the secret.
fn assert_token_error(e: &JsValue, code: &str) -> Value {
    let shape = json_of(&error_shape(e));
    assert_eq!(shape["isError"], true, "{shape}");
    assert_eq!(shape["name"], "TokenError", "{shape}");
    assert_eq!(shape["ctor"], "TokenError", "{shape}");
    assert_eq!(shape["code"], code, "{shape}");
    let text = shape["text"].as_str().unwrap();
    assert!(!text.contains(SECRET), "secret leaked: {text}");
    shape
}

mod decide;
mod pure;

#[wasm_bindgen_test]
async fn single_flight_and_memory_hit() {
    let mock = MockProvider::new();
    let c = core(&mock, json!({}));
    let all: Array = (0..100).map(|_| JsValue::from(c.token())).collect();
    let tokens: Array = ok(Promise::all(&all)).await.unchecked_into();
    assert_eq!(tokens.length(), 100);
    for t in tokens.iter() {
        assert_eq!(str_prop(&t, "accessToken"), "tok-1");
    }
    assert_eq!(
        mock.token_count(),
        1,
        "100 concurrent callers, one exchange"
    );
    let t = json_of(&ok(c.token()).await);
    assert_eq!(
        t,
        json!({"accessToken": "tok-1", "tokenType": "Bearer",
        "expiresAt": mock.clock() as u64 + 3_600_000, "scope": "read"})
    );
    assert_eq!(ok(c.authorization_header()).await, "Bearer tok-1");
    assert_eq!(mock.token_count(), 1);
    let req = json_of(&mock.token_request(0));
    assert_eq!(req["method"], "POST");
    assert_eq!(
        req["headers"]["authorization"],
        "Basic Y2xpZW50LTE6czNjciUzQXQlMkIlMkYrJTI2JTI1"
    );
    assert_eq!(req["body"], "grant_type=client_credentials");
}

#[wasm_bindgen_test]
async fn tokens_are_copies_the_caller_may_change() {
    let mock = MockProvider::new();
    let c = core(&mock, json!({}));
    let first = ok(c.token()).await;
    Reflect::set(&first, &"accessToken".into(), &"changed".into()).unwrap();
    assert_eq!(str_prop(&ok(c.token()).await, "accessToken"), "tok-1");
}

#[wasm_bindgen_test]
async fn injected_clock_drives_refresh_before_expiry() {
    let mock = MockProvider::new();
    let c = core(&mock, json!({"refreshSkewS": 60}));
    assert_eq!(str_prop(&ok(c.token()).await, "accessToken"), "tok-1");
    mock.advance(3_600_000.0 - 60_000.0 - 1.0);
    assert_eq!(str_prop(&ok(c.token()).await, "accessToken"), "tok-1");
    mock.advance(1.0); // 60 s before expiry: refreshed although the provider still accepts tok-1
    let t = ok(c.token()).await;
    assert_eq!(str_prop(&t, "accessToken"), "tok-2");
    assert_eq!(
        prop(&t, "expiresAt").as_f64().unwrap(),
        mock.clock() + 3_600_000.0
    );
    assert_eq!(mock.token_count(), 2);
}

#[wasm_bindgen_test]
async fn bearer_reads_memory_only() {
    let mock = MockProvider::new();
    let c = core(&mock, json!({}));
    assert!(c.bearer().is_undefined(), "nothing in memory: no exchange");
    assert_eq!(mock.token_count(), 0);
    ok(c.token()).await;
    let b = c.bearer();
    assert_eq!(b, "Bearer tok-1");
    assert!(
        Object::is(&b, &ok(c.authorization_header()).await),
        "one JS string per token"
    );
    mock.advance(3_600_000.0 - 60_000.0);
    assert!(c.bearer().is_undefined(), "past the refresh point");
    ok(c.invalidate()).await;
    assert!(c.bearer().is_undefined());
}

#[wasm_bindgen_test]
async fn invalid_client_error_shape() {
    let mock = MockProvider::new();
    let c = core(&mock, json!({"authStyle": "json_body"}));
    mock.script_token(js(
        json!({"status": 401, "body": {"error": "invalid_client",
        "error_description": "Client authentication failed due to unknown client"}}),
    ));
    let e = err(c.token()).await;
    let shape = assert_token_error(&e, "invalid_client");
    assert_eq!(
        (shape["status"].clone(), shape["retryable"].clone()),
        (json!(401), json!(false))
    );
    assert_eq!(shape["providerError"], "invalid_client");
    // Cooldown: the provider is not asked again right away.
    assert_token_error(&err(c.authorization_header()).await, "invalid_client");
    assert_eq!(mock.token_count(), 1);

    // A provider that echoes the secret in its description: scrubbed.
    let mock = MockProvider::new();
    let c = core(&mock, json!({}));
    mock.script_token(js(
        json!({"status": 400, "body": {"error": "invalid_request",
        "error_description": format!("bad secret {SECRET}")}}),
    ));
    let shape = assert_token_error(&err(c.token()).await, "invalid_request");
    assert!(shape["text"]
        .as_str()
        .unwrap()
        .contains("bad secret [redacted]"));

    // The same secret spelled with JSON escapes (`\uXXXX` for every character): scrubbed once
    // decoded.
    let escaped: String = SECRET
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let mock = MockProvider::new();
    let c = core(&mock, json!({}));
    let body =
        format!(r#"{{"error":"invalid_request","error_description":"bad secret {escaped}"}}"#);
    mock.script_token(js(json!({"status": 400, "body": body})));
    let shape = assert_token_error(&err(c.token()).await, "invalid_request");
    assert!(
        shape["text"]
            .as_str()
            .unwrap()
            .contains("bad secret [redacted]"),
        "{shape}"
    );
}

#[wasm_bindgen_test]
async fn cache_adapter_round_trip() {
    let mock = MockProvider::new();
    let cache = map_cache();
    let host = js_sys::Object::new();
    Reflect::set(&host, &"cache".into(), &cache).unwrap();
    let first = core_with(&mock, json!({}), &host);
    assert_eq!(str_prop(&ok(first.token()).await, "accessToken"), "tok-1");
    // The token, then (before exchanging) a pause another process may have recorded, then the
    // new token.
    let log = json_of(&prop(&cache, "log"));
    assert_eq!(
        [&log[0][0], &log[1][0], &log[2][0]],
        [&json!("get"), &json!("get"), &json!("set")]
    );
    assert_eq!(log[2][2], 3_540, "TTL: lifetime minus the refresh skew");
    let key = log[2][1].as_str().unwrap().to_string();
    assert!(key.starts_with("tg:v2:ptok:") && !key.contains(SECRET));
    assert_eq!(log[1][1], format!("{key}:hold"));

    // A second client (another process, in real life) finds the token in the cache.
    let second = core_with(&mock, json!({}), &host);
    assert_eq!(str_prop(&ok(second.token()).await, "accessToken"), "tok-1");
    assert_eq!(mock.token_count(), 1);

    ok(second.invalidate()).await;
    assert_eq!(prop(&prop(&cache, "map"), "size"), 0);
    assert_eq!(str_prop(&ok(second.token()).await, "accessToken"), "tok-2");
}

#[wasm_bindgen_test]
async fn transport_failures_are_token_errors() {
    register();
    let once = json!({"retry": {"maxAttempts": 1}});
    let c = Core::new(
        config(once.clone()),
        host_replying(&js(json!({"error": "timeout"}))),
    )
    .unwrap();
    let shape = assert_token_error(&err(c.token()).await, "timeout");
    assert_eq!(shape["retryable"], true);

    let refused = js_sys::Object::new();
    Reflect::set(&refused, &"error".into(), &"network".into()).unwrap();
    Reflect::set(&refused, &"cause".into(), &refused_connection()).unwrap();
    let c = Core::new(config(once.clone()), host_replying(&refused)).unwrap();
    let shape = assert_token_error(&err(c.token()).await, "network");
    assert_eq!(shape["status"], Value::Null);
    assert!(
        shape["text"]
            .as_str()
            .unwrap()
            .contains("fetch failed (ECONNREFUSED)"),
        "{shape}"
    );

    let c = Core::new(
        config(once),
        host_replying(&js(json!({"error": "too_large"}))),
    )
    .unwrap();
    let shape = assert_token_error(&err(c.token()).await, "network");
    assert!(
        shape["text"]
            .as_str()
            .unwrap()
            .contains("exceeds 65536 bytes"),
        "{shape}"
    );
}
