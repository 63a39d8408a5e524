//! The token machine on its own: each rule of the module documentation as a table of inputs
//! and the needs and effects they cause. No runtime, no fakes: the tests are the driver.

use super::*;
use crate::error::{ErrorCode, TokenError};
use crate::http::HttpResponse;

const T0: u64 = 1_700_000_000_000;
const SECRET: &str = "SECRET-s3cr3t-value";
const S: u64 = 1000;

fn oauth() -> TokenSettings {
    TokenSettings::parse_camel(
        &json!({"tokenUrl": "https://auth.example.com/oauth/token", "clientId": "cid-1",
                "authStyle": "json_body",
                "retry": {"maxAttempts": 3, "baseDelayMs": 100, "maxDelayMs": 1000}}),
        &[],
    )
    .unwrap()
}

fn token_api() -> TokenSettings {
    TokenSettings::parse_camel(
        &json!({"tokenUrl": "https://oauth.example.com/tokens", "clientId": "me@example.com",
                "authStyle": "token_api",
                "tokenBody": {"scopes": ["GET:api.example.com/x"], "ttl": 3600},
                "retry": {"maxAttempts": 3, "baseDelayMs": 100, "maxDelayMs": 1000}}),
        &[],
    )
    .unwrap()
}

fn machine(settings: TokenSettings) -> TokenMachine {
    TokenMachine::new("p", settings, Secret::new(SECRET))
}

/// A token issued at `issued` living `life_s`, with an optional refresh token.
fn token(value: &str, issued: u64, life_s: u64, refresh: Option<&str>) -> Token {
    Token {
        access_token: Secret::new(value),
        token_type: "Bearer".into(),
        issued_at_ms: issued,
        expires_at_ms: issued + life_s * S,
        scope: None,
        refresh_token: refresh.map(Secret::new),
    }
}

fn oauth_answer(value: &str, life_s: u64) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse::fixture(
        200,
        &[],
        &json!({"access_token": value, "token_type": "Bearer", "expires_in": life_s}).to_string(),
    ))
}

/// A token API's token record valid for an hour from `T0` (2023-11-14T22:13:20Z), the only
/// time the tests below receive one.
fn record(value: &str, refresh: &str, now: u64) -> Result<HttpResponse, TransportError> {
    assert_eq!(now, T0);
    let expire = "2023-11-14T23:13:20Z";
    assert_eq!(crate::rfc3339::parse_ms(expire), Some(T0 + 3600 * S));
    Ok(HttpResponse::fixture(
        200,
        &[],
        &json!({"token": value, "refreshToken": refresh, "expireAt": expire}).to_string(),
    ))
}

fn status(code: u16, body: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse::fixture(code, headers, body))
}

/// What a step did, in a form a table can spell: the effects (kind and detail) and the need.
fn shape(next: &Next) -> (Vec<String>, String) {
    let effects = next
        .effects
        .iter()
        .map(|e| match e {
            Effect::Write { slot, ttl_s, .. } => format!("write {slot:?} {ttl_s}"),
            Effect::Remove(r) => format!("remove {} {}", r.request.method, r.request.url),
            Effect::Sweep(s) => format!("sweep {} {}", s.request.method, s.request.url),
            Effect::Log(event, fields) => match fields.get("op").and_then(Value::as_str) {
                Some(op) => format!("log {event} {op}"),
                None => format!("log {event}"),
            },
        })
        .collect();
    let need = match &next.need {
        Need::Read(slot) => format!("read {slot:?}"),
        Need::Send(r) => format!("send {} {}", r.method, r.url),
        Need::Sleep(ms) => format!("sleep {ms}"),
        Need::Done(Ok((t, origin))) => {
            format!("serve {} {}", t.access_token.expose(), origin.as_str())
        }
        Need::Done(Err(e)) => format!("fail {}", e.code.as_str()),
    };
    (effects, need)
}

fn needs(next: &Next) -> String {
    shape(next).1
}

fn effects(next: &Next) -> Vec<String> {
    shape(next).0
}

/// Drives an acquisition through a store with `stored` (token slot) and no pause, and returns
/// the acquisition at its first exchange.
fn to_exchange(m: &mut TokenMachine, now: u64, stored: Option<&Token>) -> (Acquisition, Next) {
    let (mut run, first) = m.acquire(now);
    assert_eq!(needs(&first), "read Token");
    let read = run.stored(m, now, Ok(stored.map(Token::to_stored)));
    assert_eq!(needs(&read), "read Hold", "{:?}", shape(&read));
    let sent = run.stored(m, now, Ok(None));
    (run, sent)
}

// ---------------------------------------------------------------- store first

#[test]
fn a_fresh_stored_token_is_served_without_an_exchange() {
    let mut m = machine(oauth());
    let stored = token("tok-s", T0, 3600, None);
    let (mut run, _) = m.acquire(T0 + 10);
    let next = run.stored(&mut m, T0 + 10, Ok(Some(stored.to_stored())));
    assert_eq!(shape(&next), (vec![], "serve tok-s kv".into()));
    assert_eq!(m.memory(T0 + 10).unwrap().access_token.expose(), "tok-s");
}

#[test]
fn misses_of_the_store() {
    // (what the store answers, the log it causes)
    let stale = token("tok-old", T0 - 3_600 * S, 3_630, None); // past its refresh point
    for (read, logs) in [
        (Ok(None), vec![]),
        (Ok(Some(stale.to_stored())), vec![]),
        (
            Ok(Some("{not a token".to_string())),
            vec!["log store_error decode"],
        ),
        (Err("KV is down".to_string()), vec!["log store_error get"]),
    ] {
        let mut m = machine(oauth());
        let (mut run, _) = m.acquire(T0);
        let next = run.stored(&mut m, T0, read.clone());
        assert_eq!(
            shape(&next),
            (
                logs.iter().map(|s| s.to_string()).collect(),
                "read Hold".into()
            ),
            "{read:?}"
        );
    }
    // A token the API refused is a miss, though the store still returns it.
    let mut m = machine(oauth());
    let refused = token("tok-r", T0, 3600, None);
    m.memory = Some(Rc::new(refused.clone()));
    assert_eq!(
        m.forget_refused(&refused.access_token, T0),
        Invalidation::DeleteUnlessReplaced(refused.access_token.clone())
    );
    let (mut run, _) = m.acquire(T0);
    assert_eq!(
        needs(&run.stored(&mut m, T0, Ok(Some(refused.to_stored())))),
        "read Hold"
    );
}

#[test]
fn a_stored_token_replacing_the_one_in_memory_removes_it_at_a_token_api() {
    let mut m = machine(token_api());
    m.memory = Some(Rc::new(token("tok-mine", T0 - 3_540 * S, 3600, Some("r"))));
    let theirs = token("tok-theirs", T0, 3600, Some("r2"));
    let (mut run, _) = m.acquire(T0);
    let next = run.stored(&mut m, T0, Ok(Some(theirs.to_stored())));
    assert_eq!(
        shape(&next),
        (
            vec!["remove DELETE https://oauth.example.com/tokens/tok-mine".into()],
            "serve tok-theirs kv".into()
        )
    );
}

// ---------------------------------------------------------------- exchange and retries

#[test]
fn a_miss_exchanges_stores_and_serves() {
    let mut m = machine(oauth());
    let (mut run, next) = to_exchange(&mut m, T0, None);
    assert_eq!(
        needs(&next),
        "send POST https://auth.example.com/oauth/token"
    );
    let done = run.answered(&mut m, T0 + 40, T0, oauth_answer("tok-1", 3600), 0.5);
    // Stored until its refresh point (expiry − 60 s skew).
    assert_eq!(
        shape(&done),
        (
            vec!["log token_exchange".into(), "write Token 3540".into()],
            "serve tok-1 exchange".into()
        )
    );
    let Need::Done(Ok((_, TokenOrigin::Exchange { ms }))) = done.need else {
        panic!()
    };
    assert_eq!(ms, 40);
    // A token too short-lived for KV's 60 s minimum is served, not stored.
    let mut m = machine(oauth());
    let (mut run, _) = to_exchange(&mut m, T0, None);
    let done = run.answered(&mut m, T0, T0, oauth_answer("tok-short", 90), 0.5);
    assert_eq!(
        shape(&done),
        (
            vec!["log token_exchange".into()],
            "serve tok-short exchange".into()
        )
    );
}

#[test]
fn retries_follow_the_policy_and_failures_store_nothing() {
    // (answer, what comes next) for the first attempt of an OAuth exchange.
    let url = "send POST https://auth.example.com/oauth/token";
    for (answer, want) in [
        (status(503, "", &[]), "sleep 50"),
        (status(429, "", &[("retry-after", "1")]), "sleep 1000"),
        (Err(TransportError::Timeout), "sleep 50"),
        (Err(TransportError::Network("reset".into())), "sleep 50"),
        (
            status(400, r#"{"error":"invalid_request"}"#, &[]),
            "fail invalid_request",
        ),
        (
            status(401, r#"{"error":"invalid_client"}"#, &[]),
            "fail invalid_client",
        ),
        (status(200, "not json", &[]), "fail invalid_response"),
    ] {
        let mut m = machine(oauth());
        let (mut run, _) = to_exchange(&mut m, T0, None);
        let next = run.answered(&mut m, T0, T0, answer.clone(), 0.5);
        assert_eq!(needs(&next), want, "{answer:?}");
        assert!(
            !effects(&next).iter().any(|e| e.starts_with("write Token")),
            "{answer:?}"
        );
        if want.starts_with("sleep") {
            assert_eq!(needs(&run.slept(&mut m)), url, "the same request again");
        }
    }
    // The attempts run out: the last error is the outcome, and nothing is stored.
    let mut m = machine(oauth());
    let (mut run, _) = to_exchange(&mut m, T0, None);
    for _ in 0..2 {
        assert!(
            needs(&run.answered(&mut m, T0, T0, status(502, "", &[]), 0.5)).starts_with("sleep")
        );
        run.slept(&mut m);
    }
    let last = run.answered(&mut m, T0, T0, status(502, "", &[]), 0.5);
    assert_eq!(
        shape(&last),
        (
            vec!["log token_exchange".into()],
            "fail server_error".into()
        )
    );
}

// ---------------------------------------------------------------- cooldown and pressure

#[test]
fn invalid_client_cools_down_for_30_s() {
    let mut m = machine(oauth());
    let (mut run, _) = to_exchange(&mut m, T0, None);
    let failed = run.answered(
        &mut m,
        T0,
        T0,
        status(401, r#"{"error":"invalid_client"}"#, &[]),
        0.5,
    );
    assert_eq!(needs(&failed), "fail invalid_client");
    // Within 30 s: the same error after the store read, without asking the provider.
    for at in [T0 + 1, T0 + INVALID_CLIENT_COOLDOWN_MS - 1] {
        let (mut run, _) = m.acquire(at);
        assert_eq!(
            needs(&run.stored(&mut m, at, Ok(None))),
            "fail invalid_client"
        );
    }
    // A valid stored token is served all the same.
    let (mut run, _) = m.acquire(T0 + 5);
    let stored = token("tok-s", T0, 3600, None);
    assert_eq!(
        needs(&run.stored(&mut m, T0 + 5, Ok(Some(stored.to_stored())))),
        "serve tok-s kv"
    );
    // After it, the provider is asked again.
    let at = T0 + INVALID_CLIENT_COOLDOWN_MS;
    let (mut run, _) = m.acquire(at);
    assert_eq!(needs(&run.stored(&mut m, at, Ok(None))), "read Hold");
}

#[test]
fn a_long_retry_after_holds_here_and_is_written_for_the_others() {
    let mut m = machine(oauth());
    let (mut run, _) = to_exchange(&mut m, T0, None);
    let next = run.answered(
        &mut m,
        T0,
        T0,
        status(429, "", &[("retry-after", "120")]),
        0.5,
    );
    assert_eq!(
        shape(&next),
        (
            vec!["log token_exchange".into(), "write Hold 120".into()],
            "fail rate_limited".into()
        )
    );
    let (mut run, _) = m.acquire(T0 + 1_000);
    run.stored(&mut m, T0 + 1_000, Ok(None));
    let held = run.stored(&mut m, T0 + 1_000, Ok(None));
    assert_eq!(
        shape(&held),
        (
            vec!["log token_exchange_held".into()],
            "fail temporarily_unavailable".into()
        )
    );
    // Another instance learns the pause from the store.
    let mut other = machine(oauth());
    let (mut run, _) = other.acquire(T0 + 1_000);
    run.stored(&mut other, T0 + 1_000, Ok(None));
    let held = run.stored(&mut other, T0 + 1_000, Ok(Some((T0 + 120_000).to_string())));
    assert_eq!(needs(&held), "fail temporarily_unavailable");
    let Need::Done(Err(e)) = held.need else {
        panic!()
    };
    assert_eq!(e.retry_after_ms, Some(119_000));
}

// ---------------------------------------------------------------- token API: rotation, creation

const URL: &str = "https://oauth.example.com/tokens";

#[test]
fn a_stored_token_past_its_refresh_point_is_rotated() {
    let mut m = machine(token_api());
    let old = token("tok-1", T0 - 3_570 * S, 3600, Some("ref-1")); // 30 s left
    let (mut run, next) = to_exchange(&mut m, T0, Some(&old));
    assert_eq!(needs(&next), format!("send PATCH {URL}/tok-1"));
    let done = run.answered(&mut m, T0, T0, record("tok-2", "ref-2", T0), 0.5);
    // Rotation deleted the old token at the service: nothing to remove; stored till expiry.
    assert_eq!(
        shape(&done),
        (
            vec![
                "log token_exchange rotate".into(),
                "write Token 3600".into()
            ],
            "serve tok-2 exchange".into()
        )
    );
}

#[test]
fn a_rotation_the_service_refuses_falls_back_to_creation() {
    // (the rotation's answer, what comes next)
    for (answer, want) in [
        (
            status(
                404,
                r#"{"success":false,"message":"not found","error":4}"#,
                &[],
            ),
            format!("send POST {URL}"),
        ),
        (status(401, "{}", &[]), format!("send POST {URL}")),
        (status(422, "{}", &[]), format!("send POST {URL}")),
        (status(429, "", &[]), "sleep 50".to_string()),
        (status(503, "", &[]), "sleep 50".to_string()),
        // Not resent; the token, valid for 30 s more, is served meanwhile.
        (Err(TransportError::Timeout), "serve tok-1 kv".to_string()),
    ] {
        let mut m = machine(token_api());
        let old = token("tok-1", T0 - 3_570 * S, 3600, Some("ref-1"));
        let (mut run, _) = to_exchange(&mut m, T0, Some(&old));
        let next = run.answered(&mut m, T0, T0, answer.clone(), 0.5);
        assert_eq!(needs(&next), want, "{answer:?}");
    }
    // The creation succeeds: the refused token is removed, the new one checked against the
    // store before it is installed.
    let mut m = machine(token_api());
    let old = token("tok-1", T0 - 3_570 * S, 3600, Some("ref-1"));
    let (mut run, _) = to_exchange(&mut m, T0, Some(&old));
    run.answered(&mut m, T0, T0, status(404, "{}", &[]), 0.5);
    let created = run.answered(&mut m, T0, T0, record("tok-2", "ref-2", T0), 0.5);
    assert_eq!(
        shape(&created),
        (
            vec![
                "log token_exchange create".into(),
                format!("remove DELETE {URL}/tok-1")
            ],
            "read Token".into()
        )
    );
    let done = run.stored(&mut m, T0, Ok(Some(old.to_stored())));
    assert_eq!(
        shape(&done),
        (
            vec!["write Token 3600".into()],
            "serve tok-2 exchange".into()
        )
    );
}

#[test]
fn an_expired_token_is_never_sent_not_even_to_be_rotated() {
    let mut m = machine(token_api());
    let expired = token("tok-1", T0 - 3_700 * S, 3600, Some("ref-1"));
    let (mut run, next) = to_exchange(&mut m, T0, Some(&expired));
    assert_eq!(needs(&next), format!("send POST {URL}"));
    // And it is not removed either: it is gone at the service already.
    let created = run.answered(&mut m, T0, T0, record("tok-2", "ref-2", T0), 0.5);
    assert_eq!(
        effects(&created),
        vec!["log token_exchange create".to_string()]
    );
}

#[test]
fn creation_and_rotation_are_not_resent_after_a_timeout_or_a_dropped_connection() {
    for answer in [
        Err(TransportError::Timeout),
        Err(TransportError::Network("reset".into())),
    ] {
        let mut m = machine(token_api());
        let (mut run, _) = to_exchange(&mut m, T0, None);
        let next = run.answered(&mut m, T0, T0, answer.clone(), 0.5);
        assert!(
            needs(&next).starts_with("fail"),
            "{answer:?}: {:?}",
            shape(&next)
        );
        assert!(!effects(&next).iter().any(|e| e.starts_with("write")));
    }
}

#[test]
fn a_token_minted_in_an_unreadable_answer_is_removed_and_the_service_left_alone() {
    let mut m = machine(token_api());
    let (mut run, _) = to_exchange(&mut m, T0, None);
    let body = json!({"token": "tok-x", "expireAt": "tomorrow"}).to_string();
    let next = run.answered(&mut m, T0, T0, status(200, &body, &[]), 0.5);
    assert_eq!(
        shape(&next),
        (
            vec![
                format!("remove DELETE {URL}/tok-x"),
                "log token_exchange create".into()
            ],
            "fail invalid_response".into()
        )
    );
    let (mut run, _) = m.acquire(T0 + 1);
    assert_eq!(
        needs(&run.stored(&mut m, T0 + 1, Ok(None))),
        "fail invalid_response"
    );
}

#[test]
fn a_created_token_gives_way_to_one_another_instance_stored() {
    let mut m = machine(token_api());
    let (mut run, _) = to_exchange(&mut m, T0, None);
    assert_eq!(
        needs(&run.answered(&mut m, T0, T0, record("tok-mine", "r1", T0), 0.5)),
        "read Token"
    );
    let theirs = token("tok-theirs", T0, 3600, Some("r2"));
    let done = run.stored(&mut m, T0, Ok(Some(theirs.to_stored())));
    assert_eq!(
        shape(&done),
        (
            vec![format!("remove DELETE {URL}/tok-mine")],
            "serve tok-theirs kv".into()
        )
    );
    assert_eq!(m.memory(T0).unwrap().access_token.expose(), "tok-theirs");
    // The store holding nothing, its own token, or one past its refresh point: installed.
    for read in [Ok(None), Err("down".to_string())] {
        let mut m = machine(token_api());
        let (mut run, _) = to_exchange(&mut m, T0, None);
        run.answered(&mut m, T0, T0, record("tok-mine", "r1", T0), 0.5);
        let done = run.stored(&mut m, T0, read.clone());
        assert_eq!(
            shape(&done),
            (
                vec!["write Token 3600".into()],
                "serve tok-mine exchange".into()
            ),
            "{read:?}"
        );
    }
}

#[test]
fn a_token_memory_held_that_another_instance_replaced_is_removed_after_the_exchange() {
    let mut m = machine(token_api());
    // Memory: a token past its refresh point. Store: another, also past it.
    m.memory = Some(Rc::new(token(
        "tok-mine",
        T0 - 3_570 * S,
        3600,
        Some("r-mine"),
    )));
    let stored = token("tok-store", T0 - 3_560 * S, 3600, Some("r-store"));
    let (mut run, next) = to_exchange(&mut m, T0, Some(&stored));
    // The store's token is the one rotated...
    assert_eq!(needs(&next), format!("send PATCH {URL}/tok-store"));
    let done = run.answered(&mut m, T0, T0, record("tok-new", "r-new", T0), 0.5);
    // ...and memory's, which no instance uses any more, removed.
    assert_eq!(
        effects(&done),
        vec![
            "log token_exchange rotate".to_string(),
            format!("remove DELETE {URL}/tok-mine"),
            "write Token 3600".into()
        ]
    );
}

// ---------------------------------------------------------------- 401s and invalidation

#[test]
fn refusals_and_invalidations() {
    let mut m = machine(token_api());
    let current = token("tok-1", T0, 3600, Some("r"));
    m.memory = Some(Rc::new(current.clone()));
    let other = Secret::new("tok-0");
    assert_eq!(m.refused(&other), RefusedToken::Replaced);
    assert_eq!(
        m.refused(&current.access_token),
        RefusedToken::Current {
            last_refresh_ms: None
        }
    );
    // Another token than memory's: memory and store are left alone.
    assert_eq!(m.invalidate(Some(&other)), Invalidation::Keep);
    assert!(m.memory(T0).is_some());
    // Memory's: dropped, kept to be rotated, and the store emptied unless replaced.
    assert_eq!(
        m.forget_refused(&current.access_token, T0 + 5),
        Invalidation::DeleteUnlessReplaced(current.access_token.clone())
    );
    assert!(m.memory(T0).is_none());
    assert_eq!(m.refused(&current.access_token), RefusedToken::Replaced);
    let (mut run, _) = m.acquire(T0 + 6);
    run.stored(&mut m, T0 + 6, Ok(None));
    let next = run.stored(&mut m, T0 + 6, Ok(None));
    assert_eq!(
        needs(&next),
        format!("send PATCH {URL}/tok-1"),
        "the dropped token is rotated"
    );
    // keep_stored: the store's token stays unless it is the rejected one.
    let rejected = current.access_token.clone();
    assert!(keep_stored(&Ok(None), &rejected));
    assert!(keep_stored(
        &Ok(Some(token("tok-2", T0, 60, None).to_stored())),
        &rejected
    ));
    assert!(!keep_stored(&Ok(Some(current.to_stored())), &rejected));
    assert!(!keep_stored(&Ok(Some("garbage".into())), &rejected));
    assert!(!keep_stored(&Err("down".into()), &rejected));
    // Invalidating with no token named: whatever memory holds, and the store.
    let mut m = machine(oauth());
    m.memory = Some(Rc::new(token("tok-1", T0, 3600, None)));
    assert_eq!(m.invalidate(None), Invalidation::Delete);
    assert!(m.memory(T0).is_none());
}

#[test]
fn a_success_clears_the_cooldown_and_the_refused_token() {
    let mut m = machine(oauth());
    m.cooldown = Some((T0 + 1, TokenError::new(ErrorCode::InvalidClient, "x")));
    m.rejected = Some(Secret::new("tok-0"));
    let (mut run, _) = m.acquire(T0 + 1);
    run.stored(&mut m, T0 + 1, Ok(None));
    run.stored(&mut m, T0 + 1, Ok(None));
    run.answered(&mut m, T0 + 1, T0 + 1, oauth_answer("tok-1", 3600), 0.5);
    assert!(m.cooldown.is_none() && m.rejected.is_none());
}

#[test]
fn inputs_out_of_order_end_the_acquisition() {
    let mut m = machine(oauth());
    let (mut run, _) = m.acquire(T0);
    assert_eq!(needs(&run.slept(&mut m)), "fail network");
    let (mut run, _) = m.acquire(T0);
    assert_eq!(
        needs(&run.answered(&mut m, T0, T0, oauth_answer("t", 60), 0.5)),
        "fail network"
    );
    // And nothing after the end.
    let (mut run, _) = to_exchange(&mut m, T0, None);
    run.answered(&mut m, T0, T0, oauth_answer("tok-1", 3600), 0.5);
    assert_eq!(needs(&run.stored(&mut m, T0, Ok(None))), "fail network");
}

#[test]
fn secrets_never_reach_an_effect_s_debug_or_a_log() {
    let mut m = machine(token_api());
    let old = token("tok-1-secret", T0 - 3_570 * S, 3600, Some("ref-1-secret"));
    let (mut run, _) = to_exchange(&mut m, T0, Some(&old));
    let next = run.answered(
        &mut m,
        T0,
        T0,
        Err(TransportError::Network(format!(
            "reset sending PATCH /tokens/tok-1-secret {SECRET}"
        ))),
        0.5,
    );
    let shown = format!("{next:?}");
    for s in [SECRET, "tok-1-secret", "ref-1-secret"] {
        assert!(!shown.contains(s), "{s} in {shown}");
    }
}

/// Found by fuzzing (`fuzz/artifacts/token_machine/crash-97a1a6d0…`): a token API's token that
/// expired while the store was read again after its creation was served. It is not.
#[test]
fn a_created_token_that_expired_during_the_second_store_read_is_not_served() {
    let mut m = machine(token_api());
    let (mut run, _) = to_exchange(&mut m, T0, None);
    run.answered(&mut m, T0, T0, record("tok-mine", "r1", T0), 0.5);
    let late = T0 + 3600 * S;
    let done = run.stored(&mut m, late, Ok(None));
    assert_eq!(shape(&done), (vec![], "fail invalid_response".into()));
    assert!(m.memory(late).is_none());
}

// ---------------------------------------------------------------- a provider in trouble

/// A token past its refresh point but not expired is served when the provider is in trouble
/// (and for a few seconds more from memory), never when the provider refused us, never once
/// it has expired.
#[test]
fn a_valid_token_is_served_while_the_provider_is_in_trouble() {
    // (the exchange's answer, the outcome) with memory holding a token 30 s from expiry.
    for (answer, want) in [
        (status(503, "", &[]), "serve tok-1 memory"),
        (
            status(429, "", &[("retry-after", "600")]),
            "serve tok-1 memory",
        ),
        (Err(TransportError::Timeout), "serve tok-1 memory"),
        (
            status(401, r#"{"error":"invalid_client"}"#, &[]),
            "fail invalid_client",
        ),
        (
            status(400, r#"{"error":"invalid_scope"}"#, &[]),
            "fail invalid_request",
        ),
    ] {
        let settings = TokenSettings::parse_camel(
            &json!({"tokenUrl": "https://auth.example.com/oauth/token", "clientId": "cid-1",
                    "authStyle": "json_body", "retry": {"maxAttempts": 1}}),
            &[],
        )
        .unwrap();
        let mut m = machine(settings);
        m.memory = Some(Rc::new(token("tok-1", T0 - 3_570 * S, 3600, None)));
        assert!(m.memory(T0).is_none(), "past its refresh point");
        let (mut run, _) = to_exchange(&mut m, T0, None);
        let next = run.answered(&mut m, T0, T0, answer.clone(), 0.5);
        assert_eq!(needs(&next), want, "{answer:?}");
        if want.starts_with("serve") {
            assert!(effects(&next).contains(&"log token_served_stale".to_string()));
            // Memory serves it for the grace period, then asks again.
            assert!(m.memory(T0 + STALE_GRACE_MS - 1).is_some());
            assert!(m.memory(T0 + STALE_GRACE_MS).is_none());
        }
    }
    // Held by the circuit or a pause: the same.
    let mut m = machine(oauth());
    m.memory = Some(Rc::new(token("tok-1", T0 - 3_570 * S, 3600, None)));
    let (mut run, _) = m.acquire(T0);
    run.stored(&mut m, T0, Ok(None));
    let held = run.stored(&mut m, T0, Ok(Some((T0 + 60_000).to_string())));
    assert_eq!(needs(&held), "serve tok-1 memory");
    // Expired: the error.
    let mut m = machine(oauth());
    m.memory = Some(Rc::new(token("tok-1", T0 - 3_600 * S, 3600, None)));
    let (mut run, _) = to_exchange(&mut m, T0, None);
    for _ in 0..2 {
        run.answered(&mut m, T0, T0, status(503, "", &[]), 0.5);
        run.slept(&mut m);
    }
    assert_eq!(
        needs(&run.answered(&mut m, T0, T0, status(503, "", &[]), 0.5)),
        "fail server_error"
    );
    // A stored token serves the same way when memory has none.
    let mut m = machine(oauth());
    let stored = token("tok-s", T0 - 3_570 * S, 3600, None);
    let (mut run, _) = to_exchange(&mut m, T0, Some(&stored));
    let next = run.answered(
        &mut m,
        T0,
        T0,
        Err(TransportError::Network("reset".into())),
        0.5,
    );
    assert_eq!(needs(&next), "sleep 50");
}

// ---------------------------------------------------------------- refresh-ahead

#[test]
fn refresh_ahead_replaces_a_fresh_token_past_its_ahead_point() {
    let mut m = machine(oauth());
    let t = token("tok-1", T0, 3600, None);
    m.memory = Some(Rc::new(t.clone()));
    // 80 % of an hour is 2880 s.
    assert!(!m.ahead_due(T0 + 2_879 * S, 80));
    assert!(m.ahead_due(T0 + 2_880 * S, 80));
    let now = T0 + 2_900 * S;
    // The store holds the same token: not served, replaced.
    let (mut run, first) = m.acquire_ahead(now, 80);
    assert_eq!(needs(&first), "read Token");
    assert_eq!(
        needs(&run.stored(&mut m, now, Ok(Some(t.to_stored())))),
        "read Hold"
    );
    let sent = run.stored(&mut m, now, Ok(None));
    assert_eq!(
        needs(&sent),
        "send POST https://auth.example.com/oauth/token"
    );
    // Meanwhile memory keeps serving the old token.
    assert_eq!(m.memory(now).unwrap().access_token.expose(), "tok-1");
    let done = run.answered(&mut m, now, now, oauth_answer("tok-2", 3600), 0.5);
    assert_eq!(needs(&done), "serve tok-2 exchange");
    assert_eq!(m.memory(now).unwrap().access_token.expose(), "tok-2");
    // Another instance's newer token in the store, before its own ahead point: taken.
    let mut m = machine(oauth());
    m.memory = Some(Rc::new(t.clone()));
    let newer = token("tok-3", T0 + 2_000 * S, 3600, None);
    let (mut run, _) = m.acquire_ahead(now, 80);
    assert_eq!(
        needs(&run.stored(&mut m, now, Ok(Some(newer.to_stored())))),
        "serve tok-3 kv"
    );
    // A failed refresh-ahead is an error for the one who asked; memory keeps the old token.
    let mut m = machine(oauth());
    m.memory = Some(Rc::new(t.clone()));
    let (mut run, _) = m.acquire_ahead(now, 80);
    run.stored(&mut m, now, Ok(None));
    run.stored(&mut m, now, Ok(None));
    let failed = run.answered(
        &mut m,
        now,
        now,
        status(400, r#"{"error":"invalid_request"}"#, &[]),
        0.5,
    );
    assert_eq!(needs(&failed), "fail invalid_request");
    assert_eq!(m.memory(now).unwrap().access_token.expose(), "tok-1");
}

/// The provider answers a refresh with the token it already gave: its real expiry is kept, it
/// is used until then, and it is not asked for again early (no loop).
#[test]
fn the_same_token_given_again_is_used_until_it_expires() {
    let mut m = machine(oauth());
    let t = token("tok-1", T0, 3600, None);
    m.memory = Some(Rc::new(t.clone()));
    let now = T0 + 2_900 * S;
    let (mut run, _) = m.acquire_ahead(now, 80);
    run.stored(&mut m, now, Ok(None));
    run.stored(&mut m, now, Ok(None));
    // 700 s left, as the provider says.
    let done = run.answered(&mut m, now, now, oauth_answer("tok-1", 700), 0.5);
    let Need::Done(Ok((again, _))) = done.need else {
        panic!("{done:?}")
    };
    assert_eq!(
        again.issued_at_ms, T0,
        "counted from when it was first issued"
    );
    assert_eq!(again.expires_at_ms, now + 700 * S, "its real expiry");
    // Not due for refresh-ahead again, and served up to a second before it expires.
    assert!(!m.ahead_due(now + 10 * S, 80));
    assert!(m.memory(now + 698 * S).is_some());
    assert!(m.memory(now + 699 * S).is_none());
    // A different token ends the pin.
    let (mut run, _) = m.acquire(now + 699 * S);
    run.stored(&mut m, now + 699 * S, Ok(None));
    run.stored(&mut m, now + 699 * S, Ok(None));
    run.answered(&mut m, now + 699 * S, now, oauth_answer("tok-2", 3600), 0.5);
    assert!(m.pinned.is_none());
}

/// `token_rate_limit_per_minute`: an exchange is not started once that many requests went to
/// the token endpoint this minute (a valid token is served meanwhile); the next minute, it is.
#[test]
fn the_token_endpoint_budget_holds_exchanges() {
    let settings = TokenSettings::parse_camel(
        &json!({"tokenUrl": "https://auth.example.com/oauth/token", "clientId": "cid-1",
                "authStyle": "json_body", "tokenRateLimitPerMinute": 2,
                "retry": {"maxAttempts": 3, "baseDelayMs": 100, "maxDelayMs": 1000}}),
        &[],
    )
    .unwrap();
    let mut m = machine(settings);
    // One exchange of two attempts: the budget of two is spent.
    let (mut run, _) = to_exchange(&mut m, T0, None);
    assert_eq!(
        needs(&run.answered(&mut m, T0, T0, status(503, "", &[]), 0.5)),
        "sleep 50"
    );
    run.slept(&mut m);
    let done = run.answered(&mut m, T0 + 1, T0, oauth_answer("tok-1", 90), 0.5);
    assert_eq!(needs(&done), "serve tok-1 exchange");
    // 60 s later (the token, 90 s long, is past its refresh point): held, the token served.
    let at = T0 + 59_000;
    let (mut run, _) = m.acquire(at);
    run.stored(&mut m, at, Ok(None));
    let held = run.stored(&mut m, at, Ok(None));
    assert_eq!(needs(&held), "serve tok-1 memory");
    // Without a token at hand: the error, with the rest of the minute.
    let mut empty = machine(m.settings().clone());
    empty.budget = m.budget.clone();
    let (mut run, _) = empty.acquire(at);
    run.stored(&mut empty, at, Ok(None));
    let held = run.stored(&mut empty, at, Ok(None));
    let Need::Done(Err(e)) = held.need else {
        panic!("{held:?}")
    };
    assert_eq!(
        (e.code, e.retry_after_ms),
        (ErrorCode::TemporarilyUnavailable, Some(1_000))
    );
    // The next minute: asked again.
    let (mut run, _) = m.acquire(T0 + 60_000);
    run.stored(&mut m, T0 + 60_000, Ok(None));
    assert!(needs(&run.stored(&mut m, T0 + 60_000, Ok(None))).starts_with("send"));
}

// ---------------------------------------------------------------- ambiguous creation

/// A sole minter names the tokens it creates with its tag; after a creation that may have
/// taken effect unanswered, the next token installed sweeps the account: every tagged token
/// but the one in use is removed, untagged ones (another deployment's, a person's) are not.
#[test]
fn a_creation_that_may_have_taken_effect_is_swept_afterwards() {
    let mut m = machine(token_api());
    m.tag_created_tokens("ab12cd34");
    let (mut run, sent) = to_exchange(&mut m, T0, None);
    let Need::Send(create) = &sent.need else {
        panic!()
    };
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(
        body["name"], "tokengate [tokengate:ab12cd34]",
        "the configured name is kept"
    );
    // The connection drops: not resent, nothing to serve.
    let lost = run.answered(
        &mut m,
        T0,
        T0,
        Err(TransportError::Network("reset".into())),
        0.5,
    );
    assert_eq!(needs(&lost), "fail network");
    // The next acquisition creates a token; installing it sweeps.
    let (mut run, _) = to_exchange(&mut m, T0, None);
    run.answered(&mut m, T0, T0, record("tok-2", "r2", T0), 0.5);
    let done = run.stored(&mut m, T0, Ok(None));
    assert_eq!(
        effects(&done),
        vec![
            "sweep GET https://oauth.example.com/tokens".to_string(),
            "write Token 3600".into()
        ]
    );
    let Some(Effect::Sweep(sweep)) = done.effects.into_iter().next() else {
        panic!()
    };
    let listed = HttpResponse::fixture(
        200,
        &[],
        &json!({"success": true, "data": [
            {"token": "tok-lost", "name": "tokengate [tokengate:ab12cd34]"},
            {"token": "tok-2", "name": "tokengate [tokengate:ab12cd34]"},
            {"token": "tok-other", "name": "tokengate [tokengate:99999999]"},
            {"token": "tok-person", "name": "by hand"},
            {"token": "tok-nameless"},
        ]})
        .to_string(),
    );
    let removals: Vec<String> = sweep
        .removals(&listed)
        .iter()
        .map(|r| r.request.url.clone())
        .collect();
    assert_eq!(removals, ["https://oauth.example.com/tokens/tok-lost"]);
    assert!(sweep
        .removals(&HttpResponse::fixture(500, &[], ""))
        .is_empty());
    // Swept once: the next install sweeps nothing.
    let (mut run, _) = to_exchange(&mut m, T0, None);
    let rotated = run.answered(&mut m, T0, T0, record("tok-3", "r3", T0), 0.5);
    assert_eq!(
        effects(&rotated),
        vec![
            "log token_exchange rotate".to_string(),
            "write Token 3600".into()
        ]
    );
    // A 5xx is ambiguous too; a refusal is not.
    for (answer, swept) in [
        (status(502, "", &[]), true),
        (status(422, "{}", &[]), false),
    ] {
        let mut m = machine(token_api());
        m.tag_created_tokens("ab12cd34");
        let (mut run, _) = to_exchange(&mut m, T0, None);
        let mut next = run.answered(&mut m, T0, T0, answer.clone(), 0.5);
        while let Need::Sleep(_) = next.need {
            run.slept(&mut m);
            next = run.answered(&mut m, T0, T0, answer.clone(), 0.5);
        }
        assert_eq!(m.sweep_due, swept, "{answer:?}");
    }
    // Without a tag (instances minting on their own) nothing is swept.
    let mut m = machine(token_api());
    let (mut run, _) = to_exchange(&mut m, T0, None);
    run.answered(&mut m, T0, T0, Err(TransportError::Timeout), 0.5);
    assert!(!m.sweep_due);
}

/// Found by fuzzing (`fuzz/artifacts/token_machine/crash-d2927f6b…`): a service that answers a
/// rotation with the token memory held (which no instance was to use any more) had that token
/// removed while it was being served. The token just obtained is never removed.
#[test]
fn the_token_just_obtained_is_never_removed() {
    let mut m = machine(token_api());
    m.memory = Some(Rc::new(token(
        "tok-mine",
        T0 - 3_570 * S,
        3600,
        Some("r-mine"),
    )));
    let stored = token("tok-store", T0 - 3_560 * S, 3600, Some("r-store"));
    let (mut run, _) = to_exchange(&mut m, T0, Some(&stored));
    let done = run.answered(&mut m, T0, T0, record("tok-mine", "r-new", T0), 0.5);
    assert_eq!(needs(&done), "serve tok-mine exchange");
    assert!(
        !effects(&done).iter().any(|e| e.starts_with("remove")),
        "{:?}",
        effects(&done)
    );
}

#[test]
fn the_acquisition_bound_counts_every_request_an_attempt_may_send() {
    // 3 attempts × (10 s timeout + 1 s backoff) + 1 s.
    assert_eq!(
        machine(oauth()).acquisition_bound_ms(),
        3 * (10 * S + S) + S
    );
    // A token API may rotate, then create.
    assert_eq!(
        machine(token_api()).acquisition_bound_ms(),
        2 * 3 * (10 * S + S) + S
    );
    // With proof of possession an attempt may be sent again for a DPoP nonce and again with a
    // new assertion, each under the timeout.
    let pop = TokenSettings::parse_camel(
        &json!({"tokenUrl": "https://auth.example.com/oauth/token", "clientId": "cid-1",
                "authStyle": "private_key_jwt", "dpop": true,
                "retry": {"maxAttempts": 3, "baseDelayMs": 100, "maxDelayMs": 1000}}),
        &[],
    )
    .unwrap();
    assert_eq!(
        machine(pop).acquisition_bound_ms(),
        3 * (3 * 10 * S + S) + S
    );
}
