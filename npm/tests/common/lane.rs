//! `client.fetch` through the fast lane (`Attempt.install` in `src/npm/glue.js`, which the
//! package's entry points apply to `TokenClient`): a warm call's first attempt is sent from
//! JavaScript; whatever needs a decision goes back to Rust. The calls here go through the
//! JavaScript method, as a user's do.

use super::*;
use web_sys::AbortController;

#[wasm_bindgen(module = "/src/npm/glue.js")]
extern "C" {
    type Attempt;
    #[wasm_bindgen(static_method_of = Attempt)]
    fn install(cls: &JsValue);
}

/// A client as the package exposes it: the JS object, with the lane installed on its class.
struct LaneClient(JsValue);

impl LaneClient {
    fn new(mock: &MockProvider, extra: Value) -> Self {
        let js: JsValue = client(mock, extra).into();
        Attempt::install(&prop(&js, "constructor"));
        LaneClient(js)
    }

    fn call(&self, name: &str, args: &[&JsValue]) -> Promise {
        let f: Function = prop(&self.0, name).unchecked_into();
        let args: Array = args.iter().copied().collect();
        f.apply(&self.0, &args).unwrap().unchecked_into()
    }

    fn fetch(&self, url: &str, init: JsValue) -> Promise {
        self.call("fetch", &[&url.into(), &init])
    }

    fn lane(&self) -> JsValue {
        let f: Function = prop(&self.0, "_lane").unchecked_into();
        f.call0(&self.0).unwrap()
    }

    /// How many calls the lane sent.
    fn hits(&self) -> f64 {
        prop(&self.lane(), "hits").as_f64().unwrap()
    }

    fn bearer(&self) -> Option<String> {
        prop(&self.lane(), "bearer").as_string()
    }
}

fn sent_signal(mock: &MockProvider, n: u32) -> bool {
    let keys = json_of(&mock.api_request(n))["initKeys"].clone();
    keys.as_array().unwrap().contains(&json!("signal"))
}

fn no_delay() -> Value {
    json!({"retry": {"baseDelayMs": 0, "maxDelayMs": 0}})
}

#[wasm_bindgen_test]
async fn warm_calls_take_the_lane_and_final_statuses_come_back_as_they_are() {
    let mock = MockProvider::new();
    let c = LaneClient::new(&mock, no_delay());
    assert_eq!(c.bearer(), None);
    // Cold: the Rust path exchanges a token; the lane learns it.
    let resp = ok(c.fetch("https://api.test/v1/a", JsValue::UNDEFINED)).await;
    assert_eq!(status_and_json(resp).await.0, 200);
    assert_eq!(c.hits(), 0.0);
    assert_eq!(c.bearer().as_deref(), Some("Bearer tok-1"));

    // Warm: the lane sends, with the bearer and the caller's headers, and no signal.
    let init = js(json!({"headers": {"x-test": "1", "Authorization": "Basic caller"}}));
    let (status, body) = status_and_json(ok(c.fetch("https://api.test/v1/b", init)).await).await;
    assert_eq!((status, body["token"].as_str()), (200, Some("tok-1")));
    assert_eq!(c.hits(), 1.0);
    let rec = json_of(&mock.api_request(1));
    assert_eq!(rec["headers"]["x-test"], "1");
    assert_eq!(rec["headers"]["authorization"], "Bearer tok-1");
    assert!(!sent_signal(&mock, 1));

    // A POST's 503 and a GET's 404 are final: returned as they are, one request each.
    mock.script_api(js(json!({"status": 503, "body": {"busy": true}})));
    let post = js(json!({"method": "POST", "body": "{}"}));
    let resp = ok(c.fetch("https://api.test/v1/c", post)).await;
    assert_eq!(status_and_json(resp).await, (503, json!({"busy": true})));
    mock.script_api(js(json!({"status": 404, "body": {"missing": true}})));
    let resp = ok(c.fetch("https://api.test/v1/d", JsValue::UNDEFINED)).await;
    assert_eq!(status_and_json(resp).await.0, 404);
    assert_eq!(
        (c.hits(), mock.api_count(), mock.token_count()),
        (3.0, 4, 1)
    );
}

#[wasm_bindgen_test]
async fn the_lane_hands_401_retryable_statuses_and_errors_to_rust() {
    let mock = MockProvider::new();
    let c = LaneClient::new(&mock, no_delay());
    ok(c.call("token", &[])).await;
    assert_eq!(c.bearer().as_deref(), Some("Bearer tok-1"));

    // 401: the token is dropped, a new one fetched, the request replayed once.
    mock.revoke_all();
    let body = JsValue::from("payload");
    let init = js(json!({"method": "PUT"}));
    Reflect::set(&init, &"body".into(), &body).unwrap();
    let (status, echo) = status_and_json(ok(c.fetch("https://api.test/v1/x", init)).await).await;
    assert_eq!(
        (status, echo["token"].as_str(), echo["body"].as_str()),
        (200, Some("tok-2"), Some("payload"))
    );
    assert_eq!(
        (c.hits(), mock.api_count(), mock.token_count()),
        (1.0, 2, 2)
    );
    assert_eq!(
        c.bearer().as_deref(),
        Some("Bearer tok-2"),
        "the lane follows"
    );

    // A GET's 503 is retried by Rust: the lane's attempt counts as the first.
    mock.script_api(js(json!({"status": 503, "body": "busy"})));
    let resp = ok(c.fetch("https://api.test/v1/y", JsValue::UNDEFINED)).await;
    assert_eq!(status_and_json(resp).await.0, 200);
    assert_eq!((c.hits(), mock.api_count()), (2.0, 4));

    // maxAttempts 1: the 503 is final, and comes straight back.
    let one = LaneClient::new(&mock, json!({"retry": {"maxAttempts": 1}}));
    ok(one.call("token", &[])).await;
    mock.script_api(js(json!({"status": 503, "body": {"busy": true}})));
    let resp = ok(one.fetch("https://api.test/v1/y", JsValue::UNDEFINED)).await;
    assert_eq!(status_and_json(resp).await.0, 503);
    assert_eq!((one.hits(), mock.api_count()), (1.0, 5));

    // A network failure: Rust classifies it and retries the GET.
    mock.script_api("network".into());
    let resp = ok(c.fetch("https://api.test/v1/z", JsValue::UNDEFINED)).await;
    assert_eq!(status_and_json(resp).await.0, 200);
    assert_eq!((c.hits(), mock.api_count()), (3.0, 7));

    // An init field `fetch` refuses is the caller's mistake, rethrown as is.
    let e = err(c.fetch("https://api.test/v1/z", js(json!({"redirect": "sideways"})))).await;
    assert!(e.is_instance_of::<js_sys::TypeError>(), "{e:?}");
    assert_eq!(mock.api_count(), 7);
}

#[wasm_bindgen_test]
async fn a_timeout_in_the_lane_goes_to_rust_and_the_lane_steps_aside() {
    let mock = MockProvider::new();
    let c = LaneClient::new(
        &mock,
        json!({"timeoutMs": 50, "retry": {"maxAttempts": 2, "baseDelayMs": 0, "maxDelayMs": 0}}),
    );
    ok(c.call("token", &[])).await;
    mock.script_api("hang".into());
    mock.script_api("hang".into());
    let e = err(c.fetch("https://api.test/v1/slow", JsValue::UNDEFINED)).await;
    assert_token_error(&e, "timeout");
    // The lane's attempt had no signal; Rust's retry carried one, aborted at its deadline.
    assert_eq!(c.hits(), 1.0);
    assert_eq!(mock.api_count(), 2);
    assert!(!sent_signal(&mock, 0) && sent_signal(&mock, 1));
    assert_eq!((mock.hanging_count(), mock.aborted_count()), (1, 1));
    // The lane's request answers late: nobody waits for it, its body is cancelled.
    mock.release_hanging();
    sleep_ms(20.0).await;
    assert_eq!(mock.cancelled_count(), 1);

    // While the timeout is recent the lane steps aside: attempts carry a signal.
    ok(c.fetch("https://api.test/v1/ok", JsValue::UNDEFINED)).await;
    assert_eq!(c.hits(), 1.0);
    assert!(sent_signal(&mock, 2));
    mock.advance(300_000.0);
    ok(c.fetch("https://api.test/v1/ok", JsValue::UNDEFINED)).await;
    assert_eq!(c.hits(), 2.0);
    assert!(!sent_signal(&mock, 3));
}

#[wasm_bindgen_test]
async fn the_lane_steps_aside_without_a_fresh_token_or_with_a_caller_signal() {
    let mock = MockProvider::new();
    let c = LaneClient::new(&mock, no_delay());
    ok(c.call("token", &[])).await;

    // A caller's signal, a Request input, a method without a table: the Rust path.
    let ctl = AbortController::new().unwrap();
    let init = js_sys::Object::new();
    Reflect::set(&init, &"signal".into(), &ctl.signal()).unwrap();
    ok(c.fetch("https://api.test/v1/a", init.into())).await;
    let req = web_sys::Request::new_with_str("https://api.test/v1/b").unwrap();
    ok(c.call("fetch", &[&req.into()])).await;
    ok(c.fetch("https://api.test/v1/c", js(json!({"method": "PURGE"})))).await;
    assert_eq!((c.hits(), mock.api_count()), (0.0, 3));

    // invalidate(): the lane forgets the token at once; the next call exchanges in Rust.
    let pending = c.call("invalidate", &[]);
    assert_eq!(c.bearer(), None);
    ok(pending).await;
    ok(c.fetch("https://api.test/v1/d", JsValue::UNDEFINED)).await;
    assert_eq!((c.hits(), mock.token_count()), (0.0, 2));
    assert_eq!(c.bearer().as_deref(), Some("Bearer tok-2"));

    // Past the refresh point (expiry − 60 s skew, on the client's clock): Rust refreshes.
    mock.advance(3_540_000.0 - 1.0);
    ok(c.fetch("https://api.test/v1/e", JsValue::UNDEFINED)).await;
    assert_eq!((c.hits(), mock.token_count()), (1.0, 2));
    mock.advance(1.0);
    ok(c.fetch("https://api.test/v1/f", JsValue::UNDEFINED)).await;
    assert_eq!((c.hits(), mock.token_count()), (1.0, 3));
    assert_eq!(c.bearer().as_deref(), Some("Bearer tok-3"));
}

#[wasm_bindgen_test]
async fn a_401_stops_the_lane_at_once_so_concurrent_calls_wait_for_the_refresh() {
    let mock = MockProvider::new();
    let c = LaneClient::new(&mock, no_delay());
    ok(c.call("token", &[])).await;
    mock.revoke_all();
    mock.set_token_delay(100.0);
    // The first call's lane attempt gets 401; Rust refreshes (100 ms) and replays.
    let first = c.fetch("https://api.test/v1/a", JsValue::UNDEFINED);
    sleep_ms(30.0).await;
    assert_eq!(c.bearer(), None, "the refused token left the lane");
    // A call meanwhile takes the Rust path and waits for the same exchange.
    let second = c.fetch("https://api.test/v1/b", JsValue::UNDEFINED);
    for p in [first, second] {
        let (status, body) = status_and_json(ok(p).await).await;
        assert_eq!((status, body["token"].as_str()), (200, Some("tok-2")));
    }
    assert_eq!(
        (c.hits(), mock.api_count(), mock.token_count()),
        (1.0, 3, 2)
    );
    assert_eq!(c.bearer().as_deref(), Some("Bearer tok-2"));
}

#[wasm_bindgen_test]
async fn a_freed_client_stops_its_lane_and_pending_calls_settle() {
    let mock = MockProvider::new();
    let c = LaneClient::new(&mock, json!({"timeoutMs": 50}));
    ok(c.call("token", &[])).await;
    let lane = c.lane();
    mock.script_api("hang".into());
    let pending = c.fetch("https://api.test/v1/slow", JsValue::UNDEFINED);
    let free: Function = prop(&c.0, "free").unchecked_into();
    free.call0(&c.0).unwrap();
    assert!(prop(&lane, "bearer").is_null());
    // The lane's attempt times out after the client is gone: the call rejects.
    let e = err(pending).await;
    assert!(e.is_instance_of::<js_sys::Error>(), "{e:?}");
    // Later calls go to the freed Rust client, which refuses them.
    let f: Function = prop(&c.0, "fetch").unchecked_into();
    assert!(f
        .call2(&c.0, &"https://api.test/v1/a".into(), &JsValue::UNDEFINED)
        .is_err());
    mock.release_hanging();
}

async fn sleep_ms(ms: f64) {
    ok(sleep_promise(ms)).await;
}
