//! The pure helpers (`buildTokenRequest`, `parseTokenResponse`, `cachePolicy`,
//! `decodeJwtClaims`) and config validation, with the core's own test vectors.

use super::*;
use tokengate_npm::{
    build_token_request_js, cache_policy_js, decode_jwt_claims_js, parse_token_response_js,
};

/// `new Core(config, host)` with an empty host: only the config is validated.
fn new_core(config: JsValue) -> Result<Core, JsValue> {
    Core::new(config, js_sys::Object::new().into())
}

#[wasm_bindgen_test]
fn config_errors_name_the_key() {
    register();
    let cases: &[(Value, &str)] = &[
        (json!({"clientSecret": null}), "`clientSecret` is required"),
        (
            json!({"clientSecret": 42}),
            "`clientSecret` must be a non-empty string",
        ),
        (
            json!({"tokenUrl": "http://auth.example/token"}),
            "`tokenUrl` must use https",
        ),
        (json!({"authStyle": "digest"}), "`authStyle` unknown value"),
        (
            json!({"clientSecrt": "x"}),
            "`clientSecrt` is not a known key",
        ),
        (json!({"retry": {"maxAttempts": 0}}), "`retry.maxAttempts`"),
        (json!({"timeoutMs": -1}), "`timeoutMs`"),
    ];
    for (extra, want) in cases {
        let e = new_core(config(extra.clone())).err().expect("rejected");
        let shape = assert_token_error(&e, "config");
        assert!(
            shape["text"].as_str().unwrap().contains(want),
            "{extra}: {shape}"
        );
        assert_eq!(shape["retryable"], false);
        assert_eq!(shape["status"], Value::Null);
    }
}

#[wasm_bindgen_test]
fn build_token_request_per_dialect() {
    register();
    // RFC 6749 §2.3.1: id and secret are form-encoded before base64.
    let basic = json_of(&build_token_request_js(config(json!({}))).unwrap());
    assert_eq!(basic["method"], "POST");
    assert_eq!(basic["url"], "https://auth.test/token");
    assert_eq!(
        basic["headers"]["Authorization"],
        "Basic Y2xpZW50LTE6czNjciUzQXQlMkIlMkYrJTI2JTI1"
    );
    assert_eq!(basic["body"], "grant_type=client_credentials");

    let post = json_of(
        &build_token_request_js(config(json!({"authStyle": "client_secret_post"}))).unwrap(),
    );
    assert_eq!(
        post["body"],
        "grant_type=client_credentials&client_id=client-1&client_secret=s3cr%3At%2B%2F+%26%25"
    );
    assert_eq!(
        post["headers"]["Content-Type"],
        "application/x-www-form-urlencoded"
    );
    assert!(post["headers"].get("Authorization").is_none());

    // Optoro and the partner API: a JSON object with exactly the three keys.
    let body = json_of(&build_token_request_js(config(json!({"authStyle": "json_body"}))).unwrap());
    assert_eq!(body["headers"]["Content-Type"], "application/json");
    assert_eq!(body["headers"]["Accept"], "application/json");
    let sent: Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"grant_type": "client_credentials", "client_id": "client-1", "client_secret": SECRET})
    );
    assert!(!body["headers"].to_string().contains("s3cr"));
}

/// The partner API's example token (signature shortened), as in the core's JWT tests.
const PARTNER_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiI5YjFlODJhNy0wYTU5LTRlN2UtYWRkNS1iOWZmYTM3YWFkZTEiLCJqdGkiOiI4MTc1NWE2YTdkYWYwMzgyZjBmMjcyM2EyY2M5NTFmODMwZjUzM2FmYjQ2Yjc1ZDliOWE0Y2VhN2QyMTVlZTk5MjZhOTMyNTk1NjdjYmY3OCIsImlhdCI6MTcxMDIyMDAzMS41ODMxMTIsIm5iZiI6MTcxMDIyMDAzMS41ODMxMTQsImV4cCI6MTcxMDIyMzYzMS41Nzc0NzgsInN1YiI6IiIsInNjb3BlcyI6WyJib29raW5nczpjcmVhdGUiLCJib29raW5nczpkZWxldGUiXSwidXNlcl9pZCI6Ijg0MjkwMmRiLTU0ZTUtNDYxNC1iMzQ4LTAwMmU4Y2U1ZGExMiIsInBhcnRuZXJfaWQiOiJmMzExMjBlZS1iNWNiLTQxYzQtOTUyOS0yODhkMDJlOTFjZDYiLCJpc190ZXN0IjpmYWxzZX0.Lk-68XAooy";

fn parse(
    status: u16,
    headers: Value,
    body: Value,
    now: f64,
    policy: JsValue,
) -> Result<Value, Value> {
    let body = match body {
        Value::String(s) => s,
        v => v.to_string(),
    };
    parse_token_response_js(status.into(), js(headers), body.into(), now, policy)
        .map(|v| json_of(&v))
        .map_err(|e| assert_token_error(&e, &str_prop(&e, "code")))
}

#[wasm_bindgen_test]
fn parse_token_response_providers() {
    register();
    // Optoro's demoClientExample: created_at anchors the lifetime; 25 h needs
    // maxLifetimeS ≥ 90000.
    let optoro = json!({"access_token": "G0ybScDl_7CA3tWVou", "token_type": "Bearer",
        "expires_in": 90000, "scope": "read write", "created_at": 1656518368});
    let t = parse(
        200,
        json!({}),
        optoro.clone(),
        1_656_518_369_000.0,
        js(json!({"maxLifetimeS": 90000})),
    )
    .unwrap();
    assert_eq!(t["issuedAt"], 1_656_518_368_000u64);
    assert_eq!(t["expiresAt"], 1_656_518_368_000u64 + 90_000_000);
    assert_eq!(t["scope"], "read write");
    assert_eq!(t["tokenType"], "Bearer");
    // The default cap is 24 h.
    let t = parse(
        200,
        json!({}),
        optoro,
        1_656_518_369_000.0,
        JsValue::UNDEFINED,
    )
    .unwrap();
    assert_eq!(t["expiresAt"], 1_656_518_369_000u64 + 86_400_000);

    // Optimum Automotive: a ~355-day token is capped.
    let optimum =
        json!({"access_token": "eyJ0eXAi.x.y", "expires_in": 30734400, "token_type": "Bearer"});
    let t = parse(
        200,
        json!({}),
        optimum,
        1_700_000_000_000.0,
        JsValue::UNDEFINED,
    )
    .unwrap();
    assert_eq!(t["expiresAt"], 1_700_000_000_000u64 + 86_400_000);
    assert_eq!(t["scope"], Value::Null);

    // The partner API: the JWT's fractional exp is earlier than expires_in and wins.
    let partner =
        json!({"token_type": "Bearer", "expires_in": 3600, "access_token": PARTNER_TOKEN});
    let t = parse(
        200,
        json!({}),
        partner,
        1_710_220_031_583.0,
        JsValue::UNDEFINED,
    )
    .unwrap();
    assert_eq!(t["expiresAt"], 1_710_223_631_577u64);

    // Errors: Optoro's 401 and 422 bodies, a 503 page, a 429 with Retry-After.
    let e = parse(401, json!({}), json!({"error": "invalid_client", "error_description": "Client authentication failed due to unknown client"}), 0.0, JsValue::UNDEFINED).unwrap_err();
    assert_eq!(
        (
            e["code"].clone(),
            e["status"].clone(),
            e["retryable"].clone()
        ),
        (json!("invalid_client"), json!(401), json!(false))
    );
    assert_eq!(e["providerError"], "invalid_client");
    let e = parse(422, json!({}), json!({"message": "Validation Failed", "errors": [{"field": "rma_identifier", "code": "missing_field"}]}), 0.0, JsValue::UNDEFINED).unwrap_err();
    assert_eq!(e["code"], "invalid_request");
    assert_eq!(e["providerError"], "Validation Failed");
    assert!(e["text"]
        .as_str()
        .unwrap()
        .contains("rma_identifier: missing_field"));
    let e = parse(
        503,
        json!({"content-type": "text/html"}),
        json!("<html>down</html>"),
        0.0,
        JsValue::UNDEFINED,
    )
    .unwrap_err();
    assert_eq!(
        (e["code"].clone(), e["retryable"].clone()),
        (json!("server_error"), json!(true))
    );
    let e = parse(
        429,
        json!({"Retry-After": "7"}),
        json!({"error": "slow_down"}),
        0.0,
        JsValue::UNDEFINED,
    )
    .unwrap_err();
    assert_eq!(e["code"], "rate_limited");
    let headers = web_sys::Headers::new().unwrap();
    headers.set("retry-after", "7").unwrap();
    let e = parse_token_response_js(429.0, headers.into(), "{}".into(), 0.0, JsValue::UNDEFINED)
        .unwrap_err();
    assert_eq!(prop(&e, "retryAfterMs"), 7000);
    let e = parse(
        200,
        json!({}),
        json!({"token_type": "Bearer"}),
        0.0,
        JsValue::UNDEFINED,
    )
    .unwrap_err();
    assert_eq!(e["code"], "invalid_response");
    // Bodies as bytes.
    let bytes = js_sys::Uint8Array::from(br#"{"access_token":"b","expires_in":60}"#.as_slice());
    let t = parse_token_response_js(
        200.0,
        JsValue::NULL,
        bytes.into(),
        1000.0,
        JsValue::UNDEFINED,
    )
    .unwrap();
    assert_eq!(prop(&t, "expiresAt"), 61_000);
}

#[wasm_bindgen_test]
fn cache_policy_matches_core_table() {
    register();
    const NOW: f64 = 1_700_000_000_000.0;
    // (lifetime s, ttl, fresh) — rows of the core's expiry table.
    let rows: &[(f64, Value, bool)] = &[
        (90_000.0, json!(89_940), true),
        (3_600.0, json!(3_540), true),
        (120.0, json!(60), true),
        (119.0, Value::Null, true),
        (30.0, Value::Null, true),
        (0.0, Value::Null, false),
    ];
    for (life, ttl, fresh) in rows {
        let token = js(json!({"expiresAt": NOW + life * 1000.0, "issuedAt": NOW}));
        let p = json_of(&cache_policy_js(token, NOW, JsValue::UNDEFINED).unwrap());
        assert_eq!(&p["ttlSeconds"], ttl, "lifetime {life}");
        assert_eq!(p["fresh"], *fresh, "lifetime {life}");
    }
    let token = js(json!({"expiresAt": NOW + 3_600_000.0}));
    let p = json_of(&cache_policy_js(token.clone(), NOW, JsValue::UNDEFINED).unwrap());
    assert_eq!(p["refreshAt"], NOW as u64 + 3_540_000);
    let p =
        json_of(&cache_policy_js(token.clone(), NOW, js(json!({"refreshSkewS": 600}))).unwrap());
    assert_eq!(p["refreshAt"], NOW as u64 + 3_000_000);
    let e = cache_policy_js(token, NOW, js(json!({"refreshSkewS": -5}))).unwrap_err();
    assert!(str_prop(&e, "message").contains("refreshSkewS"));
}

#[wasm_bindgen_test]
fn decode_jwt_claims_partner_token() {
    register();
    let claims = json_of(&decode_jwt_claims_js(PARTNER_TOKEN));
    assert_eq!(claims["exp"], 1_710_223_631.577_478);
    assert_eq!(claims["scopes"][0], "bookings:create");
    assert!(decode_jwt_claims_js("8xB2vvU4ytrl1zYQ_EdGUQrdFJmuCMck").is_null());
}

#[wasm_bindgen_test]
fn cyclic_or_deep_config_is_a_config_error_not_a_crash() {
    register();
    // A cycle (tokenParams pointing back at the config itself).
    let cfg = config(json!({}));
    js_sys::Reflect::set(&cfg, &"tokenParams".into(), &cfg).unwrap();
    let e = new_core(cfg.clone()).err().expect("rejected");
    assert_token_error(&e, "config");
    assert_token_error(&build_token_request_js(cfg).unwrap_err(), "config");
    // 1,000 levels of nesting: past serde_json's limit, well within JSON.stringify's.
    let mut deep = json!("x");
    for _ in 0..1000 {
        deep = json!({ "a": deep });
    }
    let text = serde_json::to_string(&json!({"tokenParams": deep})).unwrap();
    let deep_cfg = config(json!({}));
    let extra = js_sys::JSON::parse(&text).unwrap();
    js_sys::Reflect::set(
        &deep_cfg,
        &"tokenParams".into(),
        &js_sys::Reflect::get(&extra, &"tokenParams".into()).unwrap(),
    )
    .unwrap();
    let e = new_core(deep_cfg).err().expect("rejected");
    assert_token_error(&e, "config");
    // The module still works afterwards.
    assert!(new_core(config(json!({}))).is_ok());
}

#[wasm_bindgen_test]
fn parse_token_response_refuses_impossible_statuses() {
    register();
    for status in [65736.0, -65336.0, 200.5, 99.0, 600.0] {
        let e = parse_token_response_js(
            status,
            JsValue::NULL,
            r#"{"access_token":"a","expires_in":60}"#.into(),
            0.0,
            JsValue::UNDEFINED,
        )
        .unwrap_err();
        assert_token_error(&e, "config");
    }
}
