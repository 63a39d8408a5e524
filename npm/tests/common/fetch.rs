//! `client.fetch` on its direct path (a string or `URL` input with a plain `init`: no `Request`
//! built) and on its normalised path (a `Request` input, a stream body): bodies, signals,
//! timeouts, validation and `init` fields.

use super::*;
use js_sys::Object;
use web_sys::{AbortController, Headers, Request};

fn set(o: &Object, key: &str, v: &JsValue) {
    Reflect::set(o, &key.into(), v).unwrap();
}

fn url(s: &str) -> JsValue {
    let ctor: Function = prop(&js_sys::global(), "URL").unchecked_into();
    Reflect::construct(&ctor, &Array::of1(&s.into())).unwrap()
}

async fn sleep(ms: f64) {
    ok(sleep_promise(ms)).await;
}

fn no_delay() -> Value {
    json!({"retry": {"baseDelayMs": 0, "maxDelayMs": 0}})
}

#[wasm_bindgen_test]
async fn direct_fetch_replays_every_body_kind_as_is() {
    for (i, entry) in replayable_bodies().iter().enumerate() {
        let kind = str_prop(&entry, "kind");
        let mock = MockProvider::new();
        let c = client(&mock, no_delay());
        // PUT is idempotent: its 503 is retried with the same body.
        mock.script_api(js(json!({"status": 503, "body": "busy"})));
        let init = Object::new();
        set(&init, "method", &"PUT".into());
        set(&init, "body", &prop(&entry, "body"));
        let (input, input_kind) = if i % 2 == 0 {
            (JsValue::from("https://api.test/v1/things"), "string")
        } else {
            (url("https://api.test/v1/things"), "URL")
        };
        let (status, body) = status_and_json(ok(c.fetch(input, init.into())).await).await;
        assert_eq!(
            (status, body["method"].clone()),
            (200, json!("PUT")),
            "{kind}"
        );
        assert_eq!(mock.api_count(), 2, "{kind}: retried once");
        let text = prop(&entry, "text").as_string();
        let ctype = prop(&entry, "type").as_string();
        for n in 0..2 {
            let rec = json_of(&mock.api_request(n));
            assert_eq!(rec["input"], input_kind, "{kind}: no Request built");
            assert_eq!(rec["headers"]["authorization"], "Bearer tok-1", "{kind}");
            let got = rec["body"].as_str().unwrap();
            match &text {
                Some(t) => assert_eq!(got, t, "{kind}: attempt {n}"),
                None => assert!(
                    got.contains("name=\"field\"") && got.contains("\r\n\r\nform value\r\n"),
                    "{kind}: attempt {n}: {got}"
                ),
            }
            let sent_type = rec["headers"]["content-type"].as_str();
            match &ctype {
                Some(t) => assert!(
                    sent_type.unwrap_or("").starts_with(t.as_str()),
                    "{kind}: {rec}"
                ),
                None => assert_eq!(sent_type, None, "{kind}"),
            }
        }
    }
}

#[wasm_bindgen_test]
async fn direct_fetch_passes_init_fields_through_untouched() {
    let mock = MockProvider::new();
    let c = client(&mock, no_delay());
    let headers = Headers::new().unwrap();
    headers.append("x-test", "1").unwrap();
    headers.append("authorization", "Basic caller").unwrap();
    let init = Object::new();
    set(&init, "method", &"post".into());
    set(&init, "body", &"b".into());
    set(&init, "headers", &headers);
    set(&init, "redirect", &"error".into());
    set(&init, "cache", &"no-store".into());
    set(&init, "referrerPolicy", &"no-referrer".into());
    set(&init, "x-host-option", &"kept".into());
    // A lower-case "post" is still POST: not idempotent, so its 503 is not retried.
    mock.script_api(js(json!({"status": 503, "body": {"busy": true}})));
    let resp = ok(c.fetch("https://api.test/v1/things".into(), init.clone().into())).await;
    assert_eq!(status_and_json(resp).await.0, 503);
    assert_eq!(mock.api_count(), 1);
    let rec = json_of(&mock.api_request(0));
    assert_eq!(rec["input"], "string");
    assert_eq!(
        (rec["method"].as_str(), rec["body"].as_str()),
        (Some("POST"), Some("b"))
    );
    assert_eq!(rec["redirect"], "error");
    assert_eq!(rec["init"]["cache"], "no-store");
    assert_eq!(rec["init"]["referrerPolicy"], "no-referrer");
    assert_eq!(rec["init"]["x-host-option"], "kept");
    assert_eq!(rec["headers"]["x-test"], "1");
    assert_eq!(
        rec["headers"]["authorization"], "Bearer tok-1",
        "the bearer replaces the caller's"
    );
    // The caller's objects are left as they were.
    assert_eq!(
        headers.get("authorization").unwrap().as_deref(),
        Some("Basic caller")
    );
    assert!(prop(&init, "headers") == JsValue::from(headers));
    assert!(!Reflect::has(&init, &"signal".into()).unwrap());

    // No init at all: a GET with the bearer only.
    let resp = ok(c.fetch(url("https://api.test/v1/things"), JsValue::UNDEFINED)).await;
    let (status, body) = status_and_json(resp).await;
    assert_eq!((status, body["method"].clone()), (200, json!("GET")));
    let rec = json_of(&mock.api_request(1));
    assert_eq!(rec["input"], "URL");
    assert_eq!(
        rec["initKeys"],
        json!(["headers"]),
        "no signal: the timeout is a timer while the API answers in time"
    );
}

#[wasm_bindgen_test]
async fn bad_requests_throw_before_a_token_is_fetched() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({}));
    let cases = [
        ("https://api.test/x", json!({"headers": {"x-bad": "a\nb"}})),
        ("https://api.test/x", json!({"headers": [["x-bad"]]})),
        ("https://api.test/x", json!({"method": "CONNECT"})),
        ("https://api.test/x", json!({"method": "bad method"})),
        ("https://api.test/x", json!({"body": "on a GET"})),
        ("https://api.test/x", json!({"method": "HEAD", "body": "x"})),
        ("https://user:pw@api.test/x", json!({})),
        // Credentials the URL parser finds past an empty authority or a stripped newline.
        ("https:///user:pw@api.test/x", json!({})),
        ("https://\n/user:pw@api.test/x", json!({})),
        ("http://[bad", json!({})),
    ];
    for (input, init) in &cases {
        let e = err(c.fetch((*input).into(), js(init.clone()))).await;
        assert!(
            e.is_instance_of::<js_sys::TypeError>(),
            "{input} {init}: {e:?}"
        );
    }
    assert_eq!((mock.token_count(), mock.api_count()), (0, 0));

    // With a fresh token the URL and plain-object headers are left to `fetch` to refuse: the
    // same TypeError, rethrown as is, never retried, and nothing reaches the API.
    ok(c.token()).await;
    for (input, init) in &cases {
        let e = err(c.fetch((*input).into(), js(init.clone()))).await;
        assert!(
            e.is_instance_of::<js_sys::TypeError>() && str_prop(&e, "name") != "TokenError",
            "warm: {input} {init}: {e:?}"
        );
    }
    assert_eq!((mock.token_count(), mock.api_count()), (1, 0));
}

#[wasm_bindgen_test]
async fn an_init_field_fetch_refuses_is_rethrown_not_retried() {
    let mock = MockProvider::new();
    let c = client(&mock, no_delay());
    let init = js(json!({"redirect": "sideways"}));
    let e = err(c.fetch("https://api.test/x".into(), init)).await;
    assert!(e.is_instance_of::<js_sys::TypeError>(), "{e:?}");
    assert_ne!(str_prop(&e, "name"), "TokenError");
    assert_eq!(mock.api_count(), 0);
    // A real network failure is still a TokenError, retried for a GET.
    mock.script_api("network".into());
    mock.script_api("network".into());
    let resp = ok(c.fetch("https://api.test/x".into(), JsValue::UNDEFINED)).await;
    assert_eq!(status_and_json(resp).await.0, 200);
    let c = client(&mock, json!({"retry": {"maxAttempts": 1}}));
    mock.script_api("network".into());
    let shape = assert_token_error(
        &err(c.fetch("https://api.test/x".into(), JsValue::UNDEFINED)).await,
        "network",
    );
    assert_eq!(shape["retryable"], true);
}

#[wasm_bindgen_test]
async fn callers_abort_in_flight_is_rethrown_as_is_never_retried() {
    let mock = MockProvider::new();
    let c = client(&mock, no_delay());
    for input in [
        JsValue::from("https://api.test/v1/slow"),
        url("https://api.test/v1/slow"),
    ] {
        let before = mock.api_count();
        let ctl = AbortController::new().unwrap();
        mock.script_api("hang".into());
        let init = Object::new();
        set(&init, "signal", &ctl.signal());
        let pending = c.fetch(input, init.into());
        sleep(20.0).await;
        assert_eq!(mock.api_count(), before + 1, "the request went out");
        let reason = js_sys::Error::new("caller gave up");
        ctl.abort_with_reason(&reason);
        let e = err(pending).await;
        assert!(e == JsValue::from(reason), "the caller's own reason: {e:?}");
        sleep(20.0).await;
        assert_eq!(mock.api_count(), before + 1, "not retried");
    }
    // A Request input carrying the caller's signal (normalised path) behaves the same.
    let ctl = AbortController::new().unwrap();
    let rinit = web_sys::RequestInit::new();
    rinit.set_signal(Some(&ctl.signal()));
    let req = Request::new_with_str_and_init("https://api.test/v1/slow", &rinit).unwrap();
    mock.script_api("hang".into());
    let pending = c.fetch(req.into(), JsValue::UNDEFINED);
    sleep(20.0).await;
    ctl.abort();
    let e = err(pending).await;
    assert_eq!(str_prop(&e, "name"), "AbortError");
    assert_eq!(mock.api_count(), 3);
    assert_eq!(mock.token_count(), 1, "an abort does not touch the token");
}

#[wasm_bindgen_test]
async fn timeout_applies_until_headers_with_or_without_a_caller_signal() {
    let mock = MockProvider::new();
    let c = client(
        &mock,
        json!({"timeoutMs": 50, "retry": {"maxAttempts": 2, "baseDelayMs": 0, "maxDelayMs": 0}}),
    );
    let ctl = AbortController::new().unwrap();
    for with_signal in [false, true] {
        let before = mock.api_count();
        mock.script_api("hang".into());
        mock.script_api("hang".into());
        let init = Object::new();
        if with_signal {
            set(&init, "signal", &ctl.signal());
        }
        let e = err(c.fetch("https://api.test/v1/slow".into(), init.into())).await;
        let shape = assert_token_error(&e, "timeout");
        assert_eq!(shape["retryable"], true);
        assert_eq!(mock.api_count(), before + 2, "a GET's timeout is retried");
        assert!(
            !ctl.signal().aborted(),
            "the caller's signal is not aborted by our timeout"
        );
        // Without a signal of the caller's, the first attempt is left open and the retry
        // (after a timeout) is aborted; with one, both attempts are aborted at the deadline.
        let expected = if with_signal { (1, 3) } else { (1, 1) };
        assert_eq!((mock.hanging_count(), mock.aborted_count()), expected);

        // Headers in time, body later than timeoutMs: the body is read in full.
        mock.script_api(js(
            json!({"status": 200, "body": {"late": true}, "bodyDelayMs": 150}),
        ));
        let init = Object::new();
        if with_signal {
            set(&init, "signal", &ctl.signal());
        }
        let resp = ok(c.fetch("https://api.test/v1/late".into(), init.into())).await;
        assert_eq!(status_and_json(resp).await, (200, json!({"late": true})));
    }
}

/// The abort window after a timed-out attempt (`ABORT_WINDOW_MS` in src/npm/fetch.rs).
const ABORT_WINDOW_MS: f64 = 300_000.0;

#[wasm_bindgen_test]
async fn a_timeout_without_a_signal_releases_the_call_then_attempts_carry_one() {
    let mock = MockProvider::new();
    let c = client(&mock, json!({"timeoutMs": 50, "retry": {"maxAttempts": 1}}));
    let sent_signal = |n: u32| {
        let keys = json_of(&mock.api_request(n))["initKeys"].clone();
        keys.as_array().unwrap().contains(&json!("signal"))
    };
    let slow = || c.fetch("https://api.test/v1/slow".into(), JsValue::UNDEFINED);

    // The API answers in time: attempts carry no signal of ours.
    ok(c.fetch("https://api.test/v1/ok".into(), JsValue::UNDEFINED)).await;
    assert!(!sent_signal(0));

    // A hanging request without a signal: the call ends at the timeout, the request is left
    // open (it cannot be aborted) ...
    mock.script_api("hang".into());
    assert_token_error(&err(slow()).await, "timeout");
    assert!(!sent_signal(1));
    assert_eq!((mock.hanging_count(), mock.aborted_count()), (1, 0));

    // ... and from then on attempts carry a signal that aborts at the deadline.
    mock.script_api("hang".into());
    assert_token_error(&err(slow()).await, "timeout");
    assert!(sent_signal(2));
    assert_eq!((mock.hanging_count(), mock.aborted_count()), (1, 1));

    // The first request's late response is discarded: its body is cancelled.
    assert_eq!(mock.cancelled_count(), 0);
    mock.release_hanging();
    sleep(20.0).await;
    assert_eq!(mock.cancelled_count(), 1);

    // The window runs ABORT_WINDOW_MS from the last timeout, on the client's clock.
    mock.advance(ABORT_WINDOW_MS - 1.0);
    ok(c.fetch("https://api.test/v1/ok".into(), JsValue::UNDEFINED)).await;
    assert!(sent_signal(3));
    mock.advance(1.0);
    ok(c.fetch("https://api.test/v1/ok".into(), JsValue::UNDEFINED)).await;
    assert!(!sent_signal(4));
    assert_eq!(mock.token_count(), 1);
}

#[wasm_bindgen_test]
async fn request_input_and_stream_body_take_the_normalised_path() {
    let mock = MockProvider::new();
    let c = client(&mock, no_delay());
    // A Request with a body: buffered, replayed after a 401.
    let rinit = web_sys::RequestInit::new();
    rinit.set_method("POST");
    rinit.set_body(&"request body".into());
    let req = Request::new_with_str_and_init("https://api.test/v1/things", &rinit).unwrap();
    req.headers().set("x-test", "2").unwrap();
    ok(c.token()).await;
    mock.revoke_all(); // tok-1 is refused: one replay with tok-2
    let (status, body) = status_and_json(ok(c.fetch(req.into(), JsValue::UNDEFINED)).await).await;
    assert_eq!((status, body["token"].clone()), (200, json!("tok-2")));
    for n in 0..2 {
        let rec = json_of(&mock.api_request(n));
        assert_eq!(rec["input"], "Request");
        assert_eq!(
            (rec["body"].as_str(), rec["headers"]["x-test"].as_str()),
            (Some("request body"), Some("2"))
        );
    }
    // A stream body is sent once: its 503 is returned although PUT is idempotent.
    mock.script_api(js(json!({"status": 503, "body": {"busy": true}})));
    let init = Object::new();
    set(&init, "method", &"PUT".into());
    set(&init, "body", &stream_of("streamed"));
    set(&init, "duplex", &"half".into());
    let resp = ok(c.fetch("https://api.test/v1/upload".into(), init.into())).await;
    assert_eq!(status_and_json(resp).await.0, 503);
    assert_eq!(mock.api_count(), 3);
    assert_eq!(json_of(&mock.api_request(2))["body"], "streamed");
}

#[wasm_bindgen_test]
async fn callers_signal_covers_the_token_exchange_and_backoff() {
    let mock = MockProvider::new();
    // Token endpoint hangs (until our 5 s timeout): the caller's abort ends the call at once.
    let c = client(&mock, json!({"timeoutMs": 5000}));
    mock.script_token("hang".into());
    let ctl = AbortController::new().unwrap();
    let init = Object::new();
    set(&init, "signal", &ctl.signal());
    let pending = c.fetch("https://api.test/v1/x".into(), init.into());
    sleep(20.0).await;
    assert_eq!(mock.token_count(), 1, "the exchange started");
    let reason = js_sys::Error::new("caller gave up during the exchange");
    ctl.abort_with_reason(&reason);
    let started = js_sys::Date::now();
    let e = err(pending).await;
    assert!(e == JsValue::from(reason), "the caller's own reason: {e:?}");
    assert!(
        js_sys::Date::now() - started < 1000.0,
        "not after the exchange's timeout"
    );
    assert_eq!(mock.api_count(), 0, "no API request was made");

    // An already-aborted signal: nothing is sent at all.
    let before = mock.token_count();
    let c = client(&mock, no_delay());
    let ctl = AbortController::new().unwrap();
    ctl.abort();
    let init = Object::new();
    set(&init, "signal", &ctl.signal());
    let e = err(c.fetch("https://api.test/v1/x".into(), init.into())).await;
    assert_eq!(str_prop(&e, "name"), "AbortError");
    assert_eq!(mock.token_count(), before);
    assert_eq!(mock.api_count(), 0);

    // Aborted during a backoff between API retries: ends at once, no further attempt.
    let c = client(
        &mock,
        json!({"retry": {"maxAttempts": 3, "baseDelayMs": 3000, "maxDelayMs": 3000}}),
    );
    ok(c.token()).await;
    mock.script_api(js(json!({"status": 503, "headers": {"retry-after": "3"}})));
    let ctl = AbortController::new().unwrap();
    let init = Object::new();
    set(&init, "signal", &ctl.signal());
    let pending = c.fetch("https://api.test/v1/x".into(), init.into());
    sleep(50.0).await;
    assert_eq!(mock.api_count(), 1);
    ctl.abort();
    let started = js_sys::Date::now();
    let e = err(pending).await;
    assert_eq!(str_prop(&e, "name"), "AbortError");
    assert!(
        js_sys::Date::now() - started < 1000.0,
        "not after the 3 s backoff"
    );
    sleep(20.0).await;
    assert_eq!(mock.api_count(), 1, "no attempt after the abort");
}
