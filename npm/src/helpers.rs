//! Pure helpers exported for tooling: the core's request builder, response parser, cache policy
//! and JWT decoding, with no network and no clock of their own.

use crate::error::{config_error, config_key_error, plain_json, token_error};
use crate::host::{get, header_pairs, set};
use crate::{parse_config, token_to_js};
use js_sys::{ArrayBuffer, Object, Uint8Array};
use serde_json::Value;
use tokengate::dialect::build_token_request;
use tokengate::expiry::{is_fresh, kv_ttl_s, refresh_at_ms, ExpiryPolicy};
use tokengate::http::HttpResponse;
use tokengate::jwt;
use tokengate::response::parse_token_response;
use tokengate::scrub::Scrubber;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The exact token request `config` produces: `{method, url, headers, body}`. The secret
/// appears only where its auth style puts it (the `Authorization` header or the body).
#[wasm_bindgen(js_name = buildTokenRequest, unchecked_return_type = "TokenRequest")]
pub fn build_token_request_js(
    #[wasm_bindgen(unchecked_param_type = "TokenClientConfig")] config: JsValue,
) -> Result<JsValue, JsValue> {
    let (settings, secret) = parse_config(&config)?;
    let req = build_token_request(&settings, &secret);
    let out = Object::new();
    set(&out, "method", &JsValue::from_str(&req.method));
    set(&out, "url", &JsValue::from_str(&req.url));
    let headers = Object::new();
    for (name, value) in &req.headers {
        set(&headers, name, &JsValue::from_str(value));
    }
    set(&out, "headers", &headers);
    set(
        &out,
        "body",
        &JsValue::from_str(&String::from_utf8_lossy(&req.body)),
    );
    Ok(out.into())
}

/// Parses a token-endpoint response received at `nowMs` into
/// `{accessToken, tokenType, expiresAt, issuedAt, scope}`; a non-2xx or unusable response
/// throws the `TokenError` the client would throw. `policy` takes `refreshSkewS`,
/// `defaultLifetimeS` and `maxLifetimeS` (a whole `TokenClientConfig` is accepted too).
#[wasm_bindgen(js_name = parseTokenResponse, unchecked_return_type = "ParsedToken")]
pub fn parse_token_response_js(
    status: f64,
    #[wasm_bindgen(
        unchecked_param_type = "Headers | Record<string, string> | [string, string][] | null | undefined"
    )]
    headers: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string | Uint8Array | ArrayBuffer")] body: JsValue,
    #[wasm_bindgen(js_name = nowMs)] now_ms: f64,
    #[wasm_bindgen(unchecked_optional_param_type = "ExpiryPolicyConfig")] policy: JsValue,
) -> Result<JsValue, JsValue> {
    let policy = expiry_policy(&policy)?;
    let now = epoch_ms("nowMs", now_ms)?;
    if !(status.fract() == 0.0 && (100.0..=599.0).contains(&status)) {
        return Err(config_key_error(
            "status",
            "must be an HTTP status from 100 to 599",
        ));
    }
    let resp = HttpResponse {
        status: status as u16,
        headers: headers_of(&headers),
        body: bytes_of(&body)?,
    };
    // A pasted response: no secret of this process was sent to get it.
    let t = parse_token_response(&resp, now, &policy, &Scrubber::none())
        .map_err(|e| token_error(&e, None))?;
    let o = token_to_js(&t);
    set(&o, "issuedAt", &JsValue::from_f64(t.issued_at_ms as f64));
    Ok(o.into())
}

/// When a token stops being served and how long a shared cache may keep it:
/// `{expiresAt, refreshAt, ttlSeconds, fresh}` for `token` (`{expiresAt, issuedAt?}`; `issuedAt`
/// defaults to `nowMs`) at `nowMs`. `ttlSeconds` is `null` when under 60 s (memory only).
#[wasm_bindgen(js_name = cachePolicy, unchecked_return_type = "CachePolicy")]
pub fn cache_policy_js(
    #[wasm_bindgen(unchecked_param_type = "{ expiresAt: number; issuedAt?: number }")]
    token: JsValue,
    #[wasm_bindgen(js_name = nowMs)] now_ms: f64,
    #[wasm_bindgen(unchecked_optional_param_type = "ExpiryPolicyConfig")] policy: JsValue,
) -> Result<JsValue, JsValue> {
    let policy = expiry_policy(&policy)?;
    let now = epoch_ms("nowMs", now_ms)?;
    let number = |key: &str| get(&token, key).as_f64();
    let expires = epoch_ms("token.expiresAt", number("expiresAt").unwrap_or(f64::NAN))?;
    let issued = match number("issuedAt") {
        Some(v) => epoch_ms("token.issuedAt", v)?,
        None => now,
    };
    let out = Object::new();
    set(&out, "expiresAt", &JsValue::from_f64(expires as f64));
    set(
        &out,
        "refreshAt",
        &JsValue::from_f64(refresh_at_ms(&policy, issued, expires) as f64),
    );
    set(
        &out,
        "ttlSeconds",
        &kv_ttl_s(&policy, issued, expires, now)
            .map_or(JsValue::NULL, |s| JsValue::from_f64(s as f64)),
    );
    set(
        &out,
        "fresh",
        &JsValue::from_bool(is_fresh(&policy, issued, expires, now)),
    );
    Ok(out.into())
}

/// The claims of a JWT access token, unverified (for display only), or `null` when `token` is
/// not a compact JWS.
#[wasm_bindgen(js_name = decodeJwtClaims, unchecked_return_type = "Record<string, unknown> | null")]
pub fn decode_jwt_claims_js(token: &str) -> JsValue {
    match jwt::decode_claims(token) {
        Some(claims) => {
            js_sys::JSON::parse(&Value::Object(claims).to_string()).unwrap_or(JsValue::NULL)
        }
        None => JsValue::NULL,
    }
}

/// An [`ExpiryPolicy`] from `refreshSkewS`/`defaultLifetimeS`/`maxLifetimeS`, validated by the
/// same rules as a client config; any other key (a whole `TokenClientConfig`) is ignored.
fn expiry_policy(policy: &JsValue) -> Result<ExpiryPolicy, JsValue> {
    if policy.is_undefined() || policy.is_null() {
        return Ok(ExpiryPolicy::default());
    }
    let value: Value = plain_json(policy, "policy")?;
    ExpiryPolicy::parse_camel(&value).map_err(|e| config_error(&e))
}

/// A non-negative whole number of epoch milliseconds.
fn epoch_ms(key: &str, v: f64) -> Result<u64, JsValue> {
    if v.is_finite() && v >= 0.0 {
        Ok(v as u64)
    } else {
        Err(config_key_error(
            key,
            "must be epoch milliseconds (a non-negative number)",
        ))
    }
}

/// Response headers from a `Headers`, an array of pairs or a plain object.
fn headers_of(headers: &JsValue) -> Vec<(String, String)> {
    if headers.is_undefined() || headers.is_null() {
        return Vec::new();
    }
    if js_sys::Symbol::iterator().js_in(headers) {
        return header_pairs(headers);
    }
    let obj: &Object = headers.unchecked_ref();
    Object::entries(obj)
        .iter()
        .filter_map(|pair| {
            let pair: js_sys::Array = pair.unchecked_into();
            let value = pair.get(1);
            let value = value.as_string().or_else(|| {
                // A number is spelled the way JavaScript spells it.
                let n = value.dyn_ref::<js_sys::Number>()?;
                n.to_string_with_radix(10).ok().map(String::from)
            })?;
            Some((pair.get(0).as_string()?.to_ascii_lowercase(), value))
        })
        .collect()
}

/// Body bytes from a string, `Uint8Array` or `ArrayBuffer`.
fn bytes_of(body: &JsValue) -> Result<Vec<u8>, JsValue> {
    if let Some(s) = body.as_string() {
        Ok(s.into_bytes())
    } else if let Some(a) = body.dyn_ref::<Uint8Array>() {
        Ok(a.to_vec())
    } else if let Some(b) = body.dyn_ref::<ArrayBuffer>() {
        Ok(Uint8Array::new(b).to_vec())
    } else {
        Err(config_key_error(
            "body",
            "must be a string, Uint8Array or ArrayBuffer",
        ))
    }
}
