//! Fuzz target `token_response`: token-endpoint responses.
//!
//! Feeds `tokengate::response::parse_token_response`, `parse_token_record` (a token API's token
//! record), `tokengate::response::error_from_response`, `tokengate::rfc3339::parse_ms` and
//! `tokengate::jwt::decode_claims` / `expiry_ms` with arbitrary responses. The input is laid
//! out like an HTTP response, so the seed corpus holds readable responses from
//! `docs/providers.md`:
//!
//! ```text
//! <status> [now_ms] [default_lifetime_s] [max_lifetime_s] [credentials]   first line, numbers
//! name: value                                                             header lines
//! <empty line>
//! body bytes (anything, not necessarily UTF-8)
//! ```
//!
//! Missing or unparseable numbers take defaults (status 200, now 2023-11-14, the default expiry
//! policy). `now_ms` is capped at 2^53 − 1 (the npm shell passes `Date.now()`, a JS number);
//! lifetimes are clamped to what the configuration accepts (1 ..= 31 622 400 s, default ≤ max);
//! `credentials` picks a (client id, client secret) pair whose spellings are scrubbed.
//!
//! Invariants asserted (a panic is a finding):
//! - nothing panics, whatever the bytes;
//! - a non-2xx status is always an error, and exactly `error_from_response(resp, now, scrub)`
//!   (for both parsers, given the same scrubber);
//! - an `Ok` token (of either parser) has a non-empty visible-ASCII `access_token`, `token_type` `Bearer`,
//!   `issued_at_ms <= now_ms < expires_at_ms <= now_ms + max_lifetime_s · 1000`, and survives
//!   the JSON round trip it makes through the store; a record's refresh token, when there is
//!   one, is non-empty visible ASCII too;
//! - an RFC 3339 instant (the body, or any header value, read as one) is before the year 10000;
//! - an error from `error_from_response` carries the status, at most 512 characters of raw body
//!   (none for an empty body), the parsed `Retry-After`, 5xx/429/3xx codes as documented when
//!   the body names no client error, and no spelling of the client secret (as is,
//!   form-urlencoded, percent-encoded with either case of hex, JSON-escaped, base64 and
//!   base64url, in HTTP Basic credentials) in `provider_error`, `description` or `raw_body`,
//!   however the body escapes it;
//! - the same holds for the errors both parsers make of a 2xx (a token API's `success: false`
//!   refusal among them): no spelling of the client secret in what they keep;
//! - `decode_claims` only accepts three dot-separated parts, and `expiry_ms` is a finite
//!   positive `exp` of those claims.

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tokengate::error::ErrorCode;
use tokengate::expiry::ExpiryPolicy;
use tokengate::http::HttpResponse;
use tokengate::response::{error_from_response, parse_token_record, parse_token_response, Token};
use tokengate::retry::parse_retry_after;
use tokengate::scrub::Scrubber;
use tokengate::secret::Secret;

const DEFAULT_NOW_MS: u64 = 1_700_000_000_000;
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
const MAX_LIFETIME_S: u64 = 31_622_400;

/// (client id, client secret): none, the Optoro guide's sample, the core's scrub test, a demo
/// caller, a secret with slashes and a quote, a secret with `: ` and `, ` (the separators of
/// Optoro's `errors[]` pairs).
const CREDENTIALS: &[(&str, &str)] = &[
    ("", ""),
    (
        "f2449833d49b9646a701d2423bef8ec9a49",
        "1d98065fc19939c10d26909f9aa58d2b5ef",
    ),
    ("cid", "ab+c/d=e \"q\""),
    ("demo-caller", "demo-caller-secret"),
    ("partner", "s3cr3t/with/slash'"),
    ("svc", "k3y: v4l, x"),
];

struct Input<'a> {
    status: u16,
    now_ms: u64,
    policy: ExpiryPolicy,
    credentials: (&'a str, &'a str),
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

fn parse_input(data: &[u8]) -> Input<'_> {
    let mut rest = data;
    let line = |rest: &mut &[u8]| -> Option<String> {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let l = String::from_utf8_lossy(&rest[..end]).into_owned();
        *rest = &rest[(end + 1).min(rest.len())..];
        Some(l)
    };
    let first = line(&mut rest).unwrap_or_default();
    let mut nums = first.split_whitespace().map(|t| t.parse::<u64>().ok());
    let mut num = |default: u64| nums.next().flatten().unwrap_or(default);
    let status = num(200) as u16;
    let now_ms = num(DEFAULT_NOW_MS).min(MAX_SAFE_INTEGER);
    let d = ExpiryPolicy::default();
    let a = num(d.default_lifetime_s).clamp(1, MAX_LIFETIME_S);
    let b = num(d.max_lifetime_s).clamp(1, MAX_LIFETIME_S);
    let policy = ExpiryPolicy {
        default_lifetime_s: a.min(b),
        max_lifetime_s: a.max(b),
        ..d
    };
    let credentials = CREDENTIALS[num(0) as usize % CREDENTIALS.len()];
    let mut headers = Vec::new();
    while let Some(l) = line(&mut rest) {
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').unwrap_or((&l, ""));
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Input {
        status,
        now_ms,
        policy,
        credentials,
        headers,
        body: rest,
    }
}

/// The spellings of `secret` a provider could echo, computed here independently of
/// `tokengate::scrub` (which the target is given, as the shells are): as is, form-urlencoded,
/// percent-encoded (RFC 3986 unreserved kept) with upper- and lower-case hex, JSON-escaped
/// (without the enclosing quotes), base64 and base64url, and as HTTP Basic credentials with
/// `client_id`.
fn spellings(client_id: &str, secret: &str) -> Vec<String> {
    let form = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let json = serde_json::to_string(secret).expect("a string serialises");
    let json = json[1..json.len() - 1].to_string();
    let basic = STANDARD.encode(format!("{}:{}", form(client_id), form(secret)));
    let mut upper = String::new();
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            upper.push(b as char);
        } else {
            upper.push_str(&format!("%{b:02X}"));
        }
    }
    let lower = upper
        .split('%')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 || part.len() < 2 {
                part.to_string()
            } else {
                part[..2].to_ascii_lowercase() + &part[2..]
            }
        })
        .collect::<Vec<_>>()
        .join("%");
    vec![
        secret.to_string(),
        form(secret),
        json,
        basic,
        upper,
        lower,
        STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ]
}

/// Whether `form` can only occur in scrubbed text where the text itself had it: it shares no
/// character with the `[redacted]` marker's brackets and is not a piece of the marker.
fn checkable(form: &str) -> bool {
    !form.contains(['[', ']']) && !"[redacted]".contains(form)
}

fuzz_target!(|data: &[u8]| {
    let input = parse_input(data);
    let resp = HttpResponse {
        status: input.status,
        headers: input.headers,
        body: input.body.to_vec(),
    };
    let now = input.now_ms;
    let (client_id, secret) = input.credentials;
    let scrub = if secret.is_empty() {
        Scrubber::none()
    } else {
        Scrubber::for_client(client_id, &Secret::new(secret))
    };

    for parsed in [
        parse_token_response(&resp, now, &input.policy, &scrub),
        parse_token_record(&resp, now, &input.policy, &scrub),
    ] {
        match parsed {
            Ok(token) => {
                assert!((200..=299).contains(&resp.status), "Ok for {}", resp.status);
                check_token(&token, now, &input.policy);
            }
            Err(e) => {
                if !(200..=299).contains(&resp.status) {
                    assert_eq!(e, error_from_response(&resp, now, &scrub));
                } else {
                    assert_eq!(e.code, ErrorCode::InvalidResponse);
                    assert_eq!(e.status, Some(resp.status));
                    check_scrubbed(&e, client_id, secret);
                }
            }
        }
    }

    let e = error_from_response(&resp, now, &scrub);
    assert_eq!(e.status, Some(resp.status));
    let raw_chars = e.raw_body.as_deref().map_or(0, |r| r.chars().count());
    assert!(raw_chars <= 512, "raw_body of {raw_chars} chars");
    assert_eq!(e.raw_body.is_none(), resp.body.is_empty());
    assert_eq!(
        e.retry_after_ms,
        resp.header("retry-after")
            .and_then(|v| parse_retry_after(v, now))
    );
    if e.provider_error.is_none() {
        let want = match resp.status {
            401 => Some(ErrorCode::InvalidClient),
            429 => Some(ErrorCode::RateLimited),
            500..=599 => Some(ErrorCode::ServerError),
            300..=399 => Some(ErrorCode::InvalidResponse),
            _ => None,
        };
        if let Some(want) = want {
            assert_eq!(e.code, want, "status {}", resp.status);
        }
    }
    let _ = (e.to_string(), format!("{e:?}"));
    check_scrubbed(&e, client_id, secret);

    // Unverified JWT claims, of the body and of every header value.
    let body_text = String::from_utf8_lossy(&resp.body);
    for text in
        std::iter::once(body_text.as_ref()).chain(resp.headers.iter().map(|(_, v)| v.as_str()))
    {
        check_jwt(text);
        if let Some(ms) = tokengate::rfc3339::parse_ms(text.trim()) {
            assert!(ms < 253_402_300_800_000, "{text:?} read as {ms}");
        }
    }
});

/// No spelling of `secret` in what `e` keeps of an answer.
fn check_scrubbed(e: &tokengate::TokenError, client_id: &str, secret: &str) {
    if secret.is_empty() {
        return;
    }
    let shown = [
        e.raw_body.as_deref().unwrap_or(""),
        e.provider_error.as_deref().unwrap_or(""),
        e.description.as_str(),
    ];
    for form in spellings(client_id, secret) {
        if form.len() >= 4 && checkable(&form) {
            for text in shown {
                assert!(
                    !text.contains(form.as_str()),
                    "a spelling of the client secret ({form:?}) is in the error: {text:?}"
                );
            }
        }
    }
}

fn check_token(token: &Token, now: u64, policy: &ExpiryPolicy) {
    let t = token.access_token.expose();
    assert!(!t.is_empty());
    assert!(t.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{t:?}");
    assert_eq!(token.token_type, "Bearer");
    if let Some(r) = &token.refresh_token {
        let r = r.expose();
        assert!(
            !r.is_empty() && r.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "{r:?}"
        );
    }
    assert!(token.issued_at_ms <= now, "issued in the future");
    assert!(token.expires_at_ms > now, "already expired");
    assert!(
        token.expires_at_ms - now <= policy.max_lifetime_s * 1000,
        "lifetime over the cap"
    );
    // The stored form reads back as the same token.
    let back = Token::from_stored(&token.to_stored()).expect("a stored token reads back");
    assert_eq!(&back, token);
    check_jwt(t);
}

fn check_jwt(text: &str) {
    let claims = tokengate::jwt::decode_claims(text);
    if claims.is_some() {
        assert_eq!(text.split('.').count(), 3, "claims of {text:?}");
    }
    if let Some(ms) = tokengate::jwt::expiry_ms(text) {
        let exp = claims
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(serde_json::Value::as_f64)
            .expect("expiry_ms without an exp claim");
        assert!(exp.is_finite() && exp > 0.0);
        assert_eq!(ms, (exp * 1000.0) as u64);
    }
}
