//! `Core.decide` and `Core.forget` across the boundary: the steps the façade's `fetch` loop
//! acts on, with the call's state carried in JavaScript between attempts.

use super::*;

fn decide(c: &Core, method: &str, replayable: bool, state: u32, outcome: JsValue) -> Value {
    decide_after(c, method, replayable, state, outcome, None)
}

fn decide_after(
    c: &Core,
    method: &str,
    replayable: bool,
    state: u32,
    outcome: JsValue,
    retry_after: Option<&str>,
) -> Value {
    let bearer = c.bearer();
    let step = c.decide(
        method,
        replayable,
        state,
        &outcome,
        retry_after.map(String::from),
        &bearer,
    );
    if step.is_undefined() {
        return Value::Null;
    }
    let error = prop(&step, "error");
    let mut v = json_of(&step);
    if !error.is_undefined() {
        v["error"] = assert_token_error(&error, &str_prop(&error, "code"));
    }
    v
}

#[wasm_bindgen_test]
async fn statuses_become_steps() {
    let mock = MockProvider::new();
    let c = core(
        &mock,
        json!({"retry": {"baseDelayMs": 100, "maxDelayMs": 2000}}),
    );
    ok(c.token()).await;
    // A response the caller gets as it is: undefined, nothing allocated.
    for status in [200.0, 204.0, 304.0, 404.0, 422.0, 999.0] {
        assert_eq!(
            decide(&c, "GET", true, 0, status.into()),
            Value::Null,
            "{status}"
        );
    }
    // A GET's 503: backoff (jitter is Math.random: between 0 and the first step's 100 ms).
    let step = decide(&c, "GET", true, 0, 503.0.into());
    assert_eq!(
        (step["kind"].clone(), step["state"].clone()),
        (json!("retry"), json!(2))
    );
    assert!(step["delayMs"].as_f64().unwrap() <= 100.0, "{step}");
    // Retry-After in seconds is waited for exactly; over maxDelayMs it is the caller's answer.
    let step = decide_after(&c, "GET", true, 2, 429.0.into(), Some("1"));
    assert_eq!(step, json!({"kind": "retry", "delayMs": 1000, "state": 4}));
    assert_eq!(
        decide_after(&c, "GET", true, 4, 429.0.into(), Some("3")),
        Value::Null
    );
    // The fourth attempt is the last.
    assert_eq!(decide(&c, "GET", true, 6, 503.0.into()), Value::Null);
    // POST is not retried; a stream body is never resent.
    assert_eq!(decide(&c, "POST", true, 0, 503.0.into()), Value::Null);
    assert_eq!(decide(&c, "PUT", false, 0, 503.0.into()), Value::Null);
}

#[wasm_bindgen_test]
async fn transport_failures_become_steps() {
    let mock = MockProvider::new();
    let c = core(&mock, json!({"timeoutMs": 2500}));
    ok(c.token()).await;
    let step = decide(&c, "DELETE", true, 0, "timeout".into());
    assert_eq!(step["kind"], "retry");
    // A POST's timeout may have taken effect: the call fails with the core's message.
    let step = decide(&c, "POST", true, 0, "timeout".into());
    assert_eq!(step["kind"], "fail");
    assert_eq!(step["error"]["code"], "timeout");
    assert!(step["error"]["text"]
        .as_str()
        .unwrap()
        .starts_with("timeout: the API did not answer within 2500 ms"));
    // A network failure: the error carries fetch's message and cause code, and fetch's error as
    // its `cause`.
    let failure = refused_connection();
    let bearer = c.bearer();
    let step = c.decide("PATCH", true, 0, &failure, None, &bearer);
    let error = prop(&step, "error");
    let shape = assert_token_error(&error, "network");
    assert!(shape["text"]
        .as_str()
        .unwrap()
        .contains("the API request failed: fetch failed (ECONNREFUSED)"));
    assert!(Object::is(&prop(&error, "cause"), &failure));
}

#[wasm_bindgen_test]
async fn a_401_forgets_the_token_and_replays_once() {
    let mock = MockProvider::new();
    let c = core(&mock, json!({}));
    ok(c.token()).await;
    let refused = c.bearer();
    let step = decide(&c, "POST", true, 0, 401.0.into());
    assert_eq!(
        step,
        json!({"kind": "replay", "forgetToken": true, "state": 1})
    );
    ok(c.forget(&refused)).await;
    assert!(c.bearer().is_undefined(), "forgotten at once");
    assert_eq!(ok(c.authorization_header()).await, "Bearer tok-2");
    // A second 401 in the same call is the caller's answer.
    assert_eq!(decide(&c, "POST", true, 1, 401.0.into()), Value::Null);
    // A concurrent call's 401 for the token already replaced: replayed, nothing forgotten.
    let step = c.decide("GET", true, 0, &401.0.into(), None, &refused);
    assert_eq!(
        json_of(&step),
        json!({"kind": "replay", "forgetToken": false, "state": 1})
    );
    // Within 30 s of a 401-caused refresh a 401 stands, the token is kept.
    assert_eq!(decide(&c, "GET", true, 0, 401.0.into()), Value::Null);
    assert_eq!(c.bearer(), "Bearer tok-2");
    // Later, a body that cannot be sent again: forget the token, return the 401.
    mock.advance(30_000.0);
    let step = decide(&c, "PUT", false, 0, 401.0.into());
    assert_eq!(step, json!({"kind": "return", "forgetToken": true}));
    assert_eq!(mock.token_count(), 2);
}
