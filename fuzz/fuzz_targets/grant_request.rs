//! Fuzz target `grant_request`: the `POST /oauth/token` request parser.
//!
//! Feeds `tokengate::grant::parse_grant` an arbitrary `Content-Type`, `Authorization` and
//! body. Input layout (readable, so the seeds are real requests):
//!
//! ```text
//! <Content-Type value>      first line; an empty line means no header
//! <Authorization value>     second line; an empty line means no header
//! body bytes                the rest, anything
//! ```
//!
//! Invariants asserted (a panic is a finding):
//! - nothing panics, whatever the input;
//! - an accepted request has a non-empty client id and secret; its flavour matches the media
//!   type (JSON: `application/json`, form: `application/x-www-form-urlencoded`); only the form
//!   flavour carries a scope; `basic` is set exactly when the Authorization scheme is Basic;
//! - a JSON request without Basic has the body's `client_id`/`client_secret`, a form request
//!   without Basic the form's;
//! - `Debug` of an accepted request does not depend on the secret (it never prints it);
//! - an error answers 400, 401 or 422 with a JSON object body, `WWW-Authenticate: Basic` exactly
//!   for a failed Basic authentication, and a 422 only for the JSON flavour with at least one
//!   issue;
//! - the same request with its client secret (JSON or form field, Basic password) replaced by
//!   a marker: neither the error (`Debug` and JSON body) nor `Debug` of the request shows the
//!   marker.

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokengate::grant::{parse_grant, GrantError, GrantForm, GrantRequest};
use tokengate::secret::Secret;

fn media_type(ct: Option<&str>) -> String {
    ct.unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_basic(authorization: Option<&str>) -> bool {
    authorization
        .and_then(|a| a.split_whitespace().next())
        .is_some_and(|s| s.eq_ignore_ascii_case("basic"))
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let ct = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let auth = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let ct = (!ct.is_empty()).then_some(ct.as_str());
    let auth = (!auth.is_empty()).then_some(auth.as_str());

    match parse_grant(ct, auth, body) {
        Ok(g) => check_grant(&g, ct, auth, body),
        Err(e) => check_error(&e, ct, auth),
    }

    // The same request with its client secret (body field or Basic password) replaced by a
    // marker found nowhere else: the marker must not show in the outcome.
    if !data
        .windows(SENTINEL.len())
        .any(|w| w == SENTINEL.as_bytes())
    {
        let (auth2, body2) = with_sentinel(ct, auth, body);
        let shown = match parse_grant(ct, auth2.as_deref(), &body2) {
            Ok(g) => format!("{g:?}"),
            Err(e) => format!("{e:?} {}", e.body()),
        };
        assert!(
            !shown.contains(SENTINEL),
            "the client secret shows: {shown}"
        );
    }
});

const SENTINEL: &str = "Zq9-fuzz-client-secret-7Yw";

/// `auth` and `body` with the client secret they carry replaced by [`SENTINEL`].
fn with_sentinel(ct: Option<&str>, auth: Option<&str>, body: &[u8]) -> (Option<String>, Vec<u8>) {
    let auth = match auth {
        Some(a) if is_basic(Some(a)) => {
            let id = a
                .split_whitespace()
                .nth(1)
                .and_then(|b| STANDARD.decode(b).ok())
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|t| t.split_once(':').map(|(id, _)| id.to_string()))
                .unwrap_or_else(|| "fuzz-id".into());
            Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{id}:{SENTINEL}"))
            ))
        }
        other => other.map(str::to_string),
    };
    let body = match media_type(ct).as_str() {
        "application/json" => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut map)) if map.contains_key("client_secret") => {
                map.insert("client_secret".into(), Value::String(SENTINEL.into()));
                serde_json::to_vec(&map).expect("serialise")
            }
            _ => body.to_vec(),
        },
        _ => {
            let pairs: Vec<Vec<u8>> = body
                .split(|&b| b == b'&')
                .map(|p| {
                    let key = p.split(|&b| b == b'=').next().unwrap_or_default();
                    if decode_form(key) == "client_secret" {
                        [key, b"=", SENTINEL.as_bytes()].concat()
                    } else {
                        p.to_vec()
                    }
                })
                .collect();
            pairs.join(&b'&')
        }
    };
    (auth, body)
}

fn check_grant(g: &GrantRequest, ct: Option<&str>, auth: Option<&str>, body: &[u8]) {
    assert!(!g.client_id.is_empty(), "empty client id accepted");
    assert!(
        !g.client_secret.expose().is_empty(),
        "empty secret accepted"
    );
    assert_eq!(g.basic, is_basic(auth), "basic flag");
    match g.form {
        GrantForm::Json => {
            assert_eq!(media_type(ct), "application/json");
            assert!(g.scope.is_none());
            if !g.basic {
                let v: Value = serde_json::from_slice(body).expect("accepted JSON parses");
                assert_eq!(v["client_id"].as_str(), Some(g.client_id.as_str()));
                assert_eq!(v["client_secret"].as_str(), Some(g.client_secret.expose()));
                assert_eq!(v["grant_type"].as_str(), Some("client_credentials"));
            }
        }
        GrantForm::Form => {
            assert_eq!(media_type(ct), "application/x-www-form-urlencoded");
            let params: Vec<(String, String)> = form_urlencoded_pairs(body);
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            assert_eq!(get("grant_type"), Some("client_credentials"));
            if !g.basic {
                assert_eq!(get("client_id"), Some(g.client_id.as_str()));
                assert_eq!(get("client_secret"), Some(g.client_secret.expose()));
            }
            if let Some(scope) = &g.scope {
                assert!(scope.iter().all(|s| !s.is_empty() && !s.contains(' ')));
            }
        }
    }
    let mut other = g.clone();
    other.client_secret = Secret::new("x");
    assert_eq!(
        format!("{g:?}"),
        format!("{other:?}"),
        "Debug shows the secret"
    );
}

/// application/x-www-form-urlencoded decoding of one name or value, done by hand: `+` is a
/// space, then percent-decoding, then lossy UTF-8.
fn decode_form(s: &[u8]) -> String {
    let plus: Vec<u8> = s
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut kv = p.splitn(2, |&b| b == b'=');
            let k = kv.next().unwrap_or_default();
            let v = kv.next().unwrap_or_default();
            (decode_form(k), decode_form(v))
        })
        .collect()
}

fn check_error(e: &GrantError, ct: Option<&str>, auth: Option<&str>) {
    let status = e.status();
    assert!(matches!(status, 400 | 401 | 422), "status {status}");
    let json = e.body();
    assert!(json.is_object(), "error body {json}");
    let challenge = e
        .headers()
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("www-authenticate") && v.starts_with("Basic"));
    match e {
        GrantError::InvalidClient { basic } => {
            assert_eq!(status, 401);
            assert_eq!(challenge, *basic);
            if *basic {
                assert!(is_basic(auth), "Basic challenge without Basic credentials");
            }
        }
        GrantError::Validation(issues) => {
            assert_eq!(status, 422);
            assert!(!issues.is_empty(), "422 without issues");
            assert_eq!(media_type(ct), "application/json");
        }
        _ => assert!(!challenge),
    }
}
