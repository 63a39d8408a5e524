//! Test bodies of the npm package's exported API, shared by `npm_web.rs` (Node) and
//! `npm_browser.rs` (headless Chromium). The provider is `mock.js`, an in-process `fetch`, so the
//! same bodies run in both hosts; the real-server tests are `npm.test.mjs`.

use js_sys::{Array, Function, Promise, Reflect};
use serde_json::{json, Value};
use tokengate::npm::TokenClient;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

#[wasm_bindgen(module = "/tests/npm_common/mock.js")]
extern "C" {
    type MockProvider;
    #[wasm_bindgen(constructor)]
    fn new() -> MockProvider;
    #[wasm_bindgen(method, getter)]
    fn fetch(this: &MockProvider) -> Function;
    #[wasm_bindgen(method, getter)]
    fn now(this: &MockProvider) -> Function;
    #[wasm_bindgen(method, getter)]
    fn clock(this: &MockProvider) -> f64;
    #[wasm_bindgen(method, js_name = scriptToken)]
    fn script_token(this: &MockProvider, entry: JsValue);
    #[wasm_bindgen(method, js_name = scriptApi)]
    fn script_api(this: &MockProvider, entry: JsValue);
    #[wasm_bindgen(method, js_name = revokeAll)]
    fn revoke_all(this: &MockProvider);
    #[wasm_bindgen(method, js_name = releaseHanging)]
    fn release_hanging(this: &MockProvider);
    #[wasm_bindgen(method, js_name = setTokenDelay)]
    fn set_token_delay(this: &MockProvider, ms: f64);
    #[wasm_bindgen(method, js_name = hangingCount)]
    fn hanging_count(this: &MockProvider) -> u32;
    #[wasm_bindgen(method, js_name = abortedCount)]
    fn aborted_count(this: &MockProvider) -> u32;
    #[wasm_bindgen(method, js_name = cancelledCount)]
    fn cancelled_count(this: &MockProvider) -> u32;
    #[wasm_bindgen(method)]
    fn advance(this: &MockProvider, ms: f64);
    #[wasm_bindgen(method, js_name = tokenCount)]
    fn token_count(this: &MockProvider) -> u32;
    #[wasm_bindgen(method, js_name = apiCount)]
    fn api_count(this: &MockProvider) -> u32;
    #[wasm_bindgen(method, js_name = tokenRequest)]
    fn token_request(this: &MockProvider, i: u32) -> JsValue;
    #[wasm_bindgen(method, js_name = apiRequest)]
    fn api_request(this: &MockProvider, i: u32) -> JsValue;

    #[wasm_bindgen(js_name = mapCache)]
    fn map_cache() -> JsValue;
    #[wasm_bindgen(js_name = hangingCache)]
    fn hanging_cache() -> JsValue;
    #[wasm_bindgen(js_name = swapGlobalFetch)]
    fn swap_global_fetch(f: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = errorShape)]
    fn error_shape(e: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = replayableBodies)]
    fn replayable_bodies() -> Array;
    #[wasm_bindgen(js_name = streamOf)]
    fn stream_of(text: &str) -> JsValue;
    #[wasm_bindgen(js_name = sleep)]
    fn sleep_promise(ms: f64) -> Promise;
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

fn options(mock: &MockProvider, extra: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    Reflect::set(&o, &"fetch".into(), &mock.fetch()).unwrap();
    Reflect::set(&o, &"now".into(), &mock.now()).unwrap();
    for (k, v) in extra {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn client(mock: &MockProvider, extra: Value) -> TokenClient {
    TokenClient::new(config(extra), options(mock, &[])).unwrap()
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

async fn api_fetch(c: &TokenClient, url: &str, init: Value) -> JsValue {
    ok(c.fetch(url.into(), js(init))).await
}

async fn status_and_json(resp: JsValue) -> (u16, Value) {
    let resp: web_sys::Response = resp.unchecked_into();
    let body = ok(resp.json().unwrap()).await;
    (resp.status(), json_of(&body))
}

mod fetch;
mod lane;
mod pure;

#[wasm_bindgen_test]
async fn single_flight_and_memory_hit() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({}));
    let all: Array = (0..100).map(|_| JsValue::from(c.token())).collect();
    let tokens = ok(Promise::all(&all)).await;
    let tokens: Array = tokens.unchecked_into();
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
        req["redirect"], "manual",
        "token calls never follow redirects"
    );
    assert_eq!(
        req["headers"]["authorization"],
        "Basic Y2xpZW50LTE6czNjciUzQXQlMkIlMkYrJTI2JTI1"
    );
    assert_eq!(req["body"], "grant_type=client_credentials");
}

#[wasm_bindgen_test]
async fn injected_clock_drives_refresh_before_expiry() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({"refreshSkewS": 60}));
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
async fn fetch_injects_bearer_and_replays_after_401() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({}));
    let init = json!({"method": "POST", "body": "{\"a\":1}", "headers": {"x-test": "1", "content-type": "application/json"}});
    let (status, body) =
        status_and_json(api_fetch(&c, "https://api.test/v1/things", init.clone()).await).await;
    assert_eq!(
        (status, body["token"].clone(), body["body"].clone()),
        (200, json!("tok-1"), json!("{\"a\":1}"))
    );
    let sent = json_of(&mock.api_request(0));
    assert_eq!(sent["headers"]["authorization"], "Bearer tok-1");
    assert_eq!(sent["headers"]["x-test"], "1");

    mock.revoke_all(); // the API now answers 401 to tok-1
    let (status, body) =
        status_and_json(api_fetch(&c, "https://api.test/v1/things", init).await).await;
    assert_eq!((status, body["token"].clone()), (200, json!("tok-2")));
    assert_eq!(body["body"], "{\"a\":1}", "the buffered body is replayed");
    assert_eq!((mock.api_count(), mock.token_count()), (3, 2));
    assert_eq!(
        json_of(&mock.api_request(1))["headers"]["authorization"],
        "Bearer tok-1"
    );

    // Within 30 s of a 401-triggered refresh, a 401 stands: no exchange, no replay.
    mock.revoke_all();
    let (status, _) =
        status_and_json(api_fetch(&c, "https://api.test/v1/x", json!({})).await).await;
    assert_eq!(status, 401);
    assert_eq!((mock.api_count(), mock.token_count()), (4, 2));

    // Later, a second 401 after the replay is returned, not looped on.
    mock.advance(30_000.0);
    mock.script_api(js(
        json!({"status": 401, "body": {"error": "invalid_token"}}),
    ));
    mock.script_api(js(
        json!({"status": 401, "body": {"error": "invalid_token"}}),
    ));
    let (status, _) =
        status_and_json(api_fetch(&c, "https://api.test/v1/x", json!({})).await).await;
    assert_eq!(status, 401);
    assert_eq!((mock.api_count(), mock.token_count()), (6, 3));
}

#[wasm_bindgen_test]
async fn fetch_backs_off_on_429_and_503() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({"retry": {"baseDelayMs": 0, "maxDelayMs": 0}}));
    mock.script_api(js(json!({"status": 503, "body": "busy"})));
    mock.script_api(js(json!({"status": 429, "headers": {"retry-after": "0"}})));
    let (status, body) =
        status_and_json(api_fetch(&c, "https://api.test/v1/things", json!({})).await).await;
    assert_eq!((status, body["method"].clone()), (200, json!("GET")));
    assert_eq!(mock.api_count(), 3);
    // POST is not idempotent: its 503 is returned as is.
    mock.script_api(js(json!({"status": 503, "body": {"busy": true}})));
    let resp = api_fetch(
        &c,
        "https://api.test/v1/things",
        json!({"method": "POST", "body": "x"}),
    )
    .await;
    assert_eq!(status_and_json(resp).await.0, 503);
    assert_eq!(mock.api_count(), 4);
    // The token endpoint's 503 is retried as well.
    let mock = MockProvider::new();
    let c = client(&mock, json!({"retry": {"baseDelayMs": 0, "maxDelayMs": 0}}));
    mock.script_token(js(json!({"status": 503, "body": "<html>down</html>", "headers": {"content-type": "text/html"}})));
    assert_eq!(str_prop(&ok(c.token()).await, "accessToken"), "tok-1");
    assert_eq!(mock.token_count(), 2);
}

#[wasm_bindgen_test]
async fn invalid_client_error_shape() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({"authStyle": "json_body"}));
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
    // Cooldown: the provider is not asked again right away; fetch throws the same error.
    let e = err(c.fetch("https://api.test/v1/x".into(), JsValue::UNDEFINED)).await;
    assert_token_error(&e, "invalid_client");
    assert_eq!((mock.token_count(), mock.api_count()), (1, 0));

    // A provider that echoes the secret in its description: scrubbed.
    let mock = MockProvider::new();
    let c = client(&mock, json!({}));
    mock.script_token(js(
        json!({"status": 400, "body": {"error": "invalid_request",
        "error_description": format!("bad secret {SECRET}")}}),
    ));
    let e = err(c.token()).await;
    let shape = assert_token_error(&e, "invalid_request");
    assert!(shape["text"]
        .as_str()
        .unwrap()
        .contains("bad secret [redacted]"));
}

#[wasm_bindgen_test]
async fn cache_adapter_round_trip() {
    let mock = MockProvider::new();
    let cache = map_cache();
    let first = TokenClient::new(
        config(json!({})),
        options(&mock, &[("cache", cache.clone())]),
    )
    .unwrap();
    assert_eq!(str_prop(&ok(first.token()).await, "accessToken"), "tok-1");
    let log = json_of(&prop(&cache, "log"));
    assert_eq!(log[0][0], "get");
    assert_eq!(log[1][0], "set");
    assert_eq!(log[1][2], 3_540, "TTL: lifetime minus the refresh skew");
    let key = log[1][1].as_str().unwrap().to_string();
    assert!(key.starts_with("tg:v1:ptok:") && !key.contains(SECRET));

    // A second client (another process, in real life) finds the token in the cache.
    let second = TokenClient::new(
        config(json!({})),
        options(&mock, &[("cache", cache.clone())]),
    )
    .unwrap();
    assert_eq!(str_prop(&ok(second.token()).await, "accessToken"), "tok-1");
    assert_eq!(mock.token_count(), 1);

    ok(second.invalidate()).await;
    assert_eq!(prop(&prop(&cache, "map"), "size"), 0);
    assert_eq!(str_prop(&ok(second.token()).await, "accessToken"), "tok-2");
}

#[wasm_bindgen_test]
async fn timeouts_and_network_errors_are_token_errors() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({"timeoutMs": 50, "retry": {"maxAttempts": 1}}));
    mock.script_token("hang".into());
    let shape = assert_token_error(&err(c.token()).await, "timeout");
    assert_eq!(shape["retryable"], true);
    mock.script_token("network".into());
    let shape = assert_token_error(&err(c.token()).await, "network");
    assert_eq!(shape["status"], Value::Null);
    assert_eq!(str_prop(&ok(c.token()).await, "accessToken"), "tok-1");
    // An API call that hangs times out after timeoutMs as well.
    mock.script_api("hang".into());
    assert_token_error(
        &err(c.fetch("https://api.test/v1/slow".into(), JsValue::UNDEFINED)).await,
        "timeout",
    );
}

#[wasm_bindgen_test]
async fn callers_abort_is_rethrown_not_retried() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({}));
    let ctor = prop(&js_sys::global(), "AbortSignal");
    let abort: Function = prop(&ctor, "abort").unchecked_into();
    let signal = abort.call0(&ctor).unwrap();
    let init = js_sys::Object::new();
    Reflect::set(&init, &"signal".into(), &signal).unwrap();
    let e = err(c.fetch("https://api.test/v1/x".into(), init.into())).await;
    assert_eq!(str_prop(&e, "name"), "AbortError");
    assert_eq!(mock.api_count(), 0);
}

#[wasm_bindgen_test]
async fn global_fetch_is_used_without_options_fetch() {
    let mock = MockProvider::new();
    let saved = swap_global_fetch(&mock.fetch());
    let c = TokenClient::new(config(json!({})), JsValue::UNDEFINED).unwrap();
    let t = JsFuture::from(c.token()).await;
    swap_global_fetch(&saved);
    assert_eq!(str_prop(&t.unwrap(), "accessToken"), "tok-1");
}

#[wasm_bindgen_test]
async fn a_cache_that_never_settles_is_a_miss_not_a_hang() {
    let mock = MockProvider::new();
    let c = TokenClient::new(
        config(json!({"timeoutMs": 50})),
        options(&mock, &[("cache", hanging_cache())]),
    )
    .unwrap();
    let started = js_sys::Date::now();
    assert_eq!(str_prop(&ok(c.token()).await, "accessToken"), "tok-1");
    // get and set each give up after timeoutMs.
    assert!(js_sys::Date::now() - started < 1000.0);
    assert_eq!(mock.token_count(), 1);
    // Served from memory afterwards.
    assert_eq!(str_prop(&ok(c.token()).await, "accessToken"), "tok-1");
    assert_eq!(mock.token_count(), 1);
}
