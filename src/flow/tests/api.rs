//! `call_api`: 401 replay, retries, and what reaches the logs.

use super::*;
use crate::api_call::{Action, ApiCall, Attempted};

// ---------------------------------------------------------------- call_api

type Replies = Rc<RefCell<VecDeque<Result<ApiReply<&'static str>, TransportError>>>>;

fn api_reply(status: u16, body: &'static str) -> Result<ApiReply<&'static str>, TransportError> {
    Ok(ApiReply {
        status,
        retry_after: None,
        response: body,
    })
}

/// Runs `call_api` with scripted replies; returns the result and the token of every attempt.
fn run_api(
    h: &Harness,
    method: &str,
    replayable: bool,
    replies: Vec<Result<ApiReply<&'static str>, TransportError>>,
) -> (Result<(&'static str, TokenOrigin), CallError>, Vec<String>) {
    let replies: Replies = Rc::new(RefCell::new(replies.into()));
    let used = Rc::new(RefCell::new(Vec::new()));
    let result = block_on(call_api(&h.source, method, replayable, |tok: Secret| {
        used.borrow_mut().push(tok.expose().to_string());
        let r = replies
            .borrow_mut()
            .pop_front()
            .expect("the API was called more often than scripted");
        async move { r }
    }));
    assert!(replies.borrow().is_empty(), "unused scripted replies");
    let used = used.borrow().clone();
    // The token handed back is the one the returned response was fetched with.
    if let Ok((_, _, token)) = &result {
        assert_eq!(Some(token.expose()), used.last().map(String::as_str));
    }
    (result.map(|(r, origin, _)| (r, origin)), used)
}

#[test]
fn api_401_refreshes_and_replays_once() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(401, "expired"), api_reply(200, "ok")],
    );
    let (resp, origin) = r.unwrap();
    assert_eq!(resp, "ok");
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(used, [TOKEN_A, TOKEN_B]);
    assert_eq!(h.transport.calls(), 2);
    assert_eq!(*h.store.0.deletes.borrow(), std::slice::from_ref(&h.key));
    // The replay is not a retry: no backoff.
    assert!(h.rt.sleeps().is_empty());
    // The new token is the cached one.
    assert_eq!(h.token().unwrap().0.access_token.expose(), TOKEN_B);
    h.assert_logs_clean();
}

#[test]
fn api_401_is_not_undone_by_a_stale_store_copy() {
    // KV deletes propagate slowly: the store still returns the rejected token after the 401.
    let h = Harness::new();
    h.store.0.lag_deletes.set(true);
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(401, "revoked"), api_reply(200, "ok")],
    );
    assert_eq!(r.unwrap().0, "ok");
    assert_eq!(used, [TOKEN_A, TOKEN_B], "the replay used a new token");
    assert_eq!(h.transport.calls(), 2);
    // A second isolate whose store copy is the new token reads it normally.
    let other = Harness::sharing(&h.clock, &h.store);
    assert_eq!(other.token().unwrap().0.access_token.expose(), TOKEN_B);
}

#[test]
fn api_401_refreshes_at_most_once_per_window() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    // An API that answers 401 for a permission problem, whatever the token.
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(401, "forbidden"), api_reply(401, "forbidden")],
    );
    assert_eq!(r.unwrap().0, "forbidden");
    assert_eq!(used, [TOKEN_A, TOKEN_B]);
    // Within the window: the 401 stands, no exchange, the token is kept.
    h.advance(REFRESH_ON_401_WINDOW_MS - 1);
    let (r, used) = run_api(&h, "GET", true, vec![api_reply(401, "forbidden")]);
    assert_eq!(r.unwrap().0, "forbidden");
    assert_eq!(used, [TOKEN_B]);
    assert_eq!(h.transport.calls(), 2);
    assert_eq!(h.rt.events("api_401_not_refreshed").len(), 1);
    // After it, a 401 refreshes again.
    h.advance(1);
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(401, "expired"), api_reply(200, "ok")],
    );
    assert_eq!(r.unwrap().0, "ok");
    assert_eq!(used, [TOKEN_B, TOKEN_A]);
    assert_eq!(h.transport.calls(), 3);
    h.assert_logs_clean();
}

#[test]
fn api_second_401_is_returned_as_is() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    let (r, used) = run_api(
        &h,
        "POST",
        true,
        vec![api_reply(401, "first"), api_reply(401, "second")],
    );
    assert_eq!(r.unwrap().0, "second");
    assert_eq!(used, [TOKEN_A, TOKEN_B]);
    assert_eq!(h.transport.calls(), 2);
}

#[test]
fn api_non_replayable_401_invalidates_without_replay() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(&h, "PUT", false, vec![api_reply(401, "nope")]);
    let (resp, _) = r.unwrap();
    assert_eq!(resp, "nope");
    assert_eq!(used, [TOKEN_A]);
    assert_eq!(h.transport.calls(), 1);
    assert_eq!(*h.store.0.deletes.borrow(), std::slice::from_ref(&h.key));
    // The token was dropped: the next request exchanges.
    h.transport.token(TOKEN_B, 3600);
    assert_eq!(h.token().unwrap().0.access_token.expose(), TOKEN_B);
}

#[test]
fn api_get_503_is_retried() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(503, "busy"), api_reply(200, "ok")],
    );
    assert_eq!(r.unwrap().0, "ok");
    assert_eq!(used, [TOKEN_A, TOKEN_A]);
    assert_eq!(h.rt.sleeps(), [100]);
    assert!(h.store.0.deletes.borrow().is_empty());
}

#[test]
fn api_retry_after_is_honoured() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, _) = run_api(
        &h,
        "GET",
        true,
        vec![
            Ok(ApiReply {
                status: 429,
                retry_after: Some("2".into()),
                response: "slow",
            }),
            api_reply(200, "ok"),
        ],
    );
    assert_eq!(r.unwrap().0, "ok");
    assert_eq!(h.rt.sleeps(), [2_000]);
}

#[test]
fn api_post_503_is_not_retried() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(&h, "POST", true, vec![api_reply(503, "busy")]);
    assert_eq!(r.unwrap().0, "busy");
    assert_eq!(used, [TOKEN_A]);
    assert!(h.rt.sleeps().is_empty());
}

#[test]
fn api_transport_error_on_last_attempt() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(&h, "POST", true, vec![Err(TransportError::Timeout)]);
    assert_eq!(
        r.unwrap_err(),
        CallError::Transport(TransportError::Timeout)
    );
    assert_eq!(used.len(), 1);
}

#[test]
fn api_token_failure_is_reported() {
    let h = Harness::new();
    h.transport.reply(401, &[], r#"{"error":"invalid_client"}"#);
    let (r, used) = run_api(&h, "GET", true, vec![]);
    match r {
        Err(CallError::Token(e)) => assert_eq!(e.code, ErrorCode::InvalidClient),
        other => panic!("{:?}", other.map(|(r, _)| r)),
    }
    assert!(used.is_empty(), "no API call without a token");
}

// ---------------------------------------------------------------- logs

#[test]
fn logs_never_contain_the_secret_or_a_token() {
    let h = Harness::new();
    h.store.0.fail.set(true);
    h.transport
        .reply(
            503,
            &[],
            &format!(r#"{{"error":"temporarily_unavailable","error_description":"{SECRET}"}}"#),
        )
        .push(Err(TransportError::Network("reset".into())))
        .reply(429, &[("retry-after", "0")], "")
        .token(TOKEN_A, 3600)
        .token(TOKEN_B, 3600);
    let (_, used) = run_api(
        &h,
        "GET",
        true,
        vec![
            api_reply(401, "x"),
            api_reply(500, "y"),
            api_reply(200, "z"),
        ],
    );
    assert_eq!(used, [TOKEN_A, TOKEN_B, TOKEN_B]);
    let logs = h.rt.logs();
    assert!(logs.len() >= 6, "{logs:?}");
    // Every captured field, serialised, is free of the secret and the tokens — the secret was
    // echoed in a provider error description, which the log must not carry.
    h.assert_logs_clean();
}

#[test]
fn a_provider_echoing_the_secret_is_redacted() {
    let h = Harness::new();
    let body = format!(
        r#"{{"error":"invalid_request","error_description":"bad client_secret {SECRET}"}}"#
    );
    h.transport.reply(400, &[], &body);
    let e = h.token().unwrap_err();
    assert_eq!(e.description, "bad client_secret [redacted]");
    assert!(!e.raw_body.as_deref().unwrap_or("").contains(SECRET));
    assert!(!e.to_string().contains(SECRET));
}

#[test]
fn a_2xx_naming_the_secret_as_its_token_type_is_redacted() {
    // A token_type that looks like one is named in the error; when it is the secret, the
    // error must not repeat it.
    let h = Harness::new();
    let body = format!(r#"{{"access_token":"AT","token_type":"{SECRET}","expires_in":60}}"#);
    h.transport.reply(200, &[], &body);
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidResponse);
    assert_eq!(
        e.description,
        "token_type `[redacted]` is not supported; only Bearer"
    );
}

// ---------------------------------------------------------------- decide

#[test]
fn decide_reads_memory_only_after_a_401() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let token = h.token().unwrap().0.access_token;
    let mut call = ApiCall::new("GET", true, h.source.settings().retry);
    let ok = Attempted::Response {
        status: 200,
        retry_after: None,
    };
    let action = decide(&h.source, &mut call, ok, || panic!("not asked for a 200"));
    assert_eq!(
        action,
        Action::Return {
            forget_token: false
        }
    );
    let refused = Attempted::Response {
        status: 401,
        retry_after: None,
    };
    let mut call = ApiCall::new("GET", true, h.source.settings().retry);
    let action = decide(&h.source, &mut call, refused, || token.clone());
    assert_eq!(action, Action::Replay { forget_token: true });
    // A token memory no longer holds is replaced already: replayed without forgetting.
    let mut call = ApiCall::new("GET", true, h.source.settings().retry);
    let action = decide(&h.source, &mut call, refused, || Secret::new("older"));
    assert_eq!(
        action,
        Action::Replay {
            forget_token: false
        }
    );
    // Within the window after a 401-caused refresh, the 401 stands and is logged.
    block_on(h.source.forget_refused(&token));
    h.transport.token(TOKEN_B, 3600);
    let token = h.token().unwrap().0.access_token;
    let mut call = ApiCall::new("GET", true, h.source.settings().retry);
    let action = decide(&h.source, &mut call, refused, || token.clone());
    assert_eq!(
        action,
        Action::Return {
            forget_token: false
        }
    );
    assert_eq!(h.rt.events("api_401_not_refreshed").len(), 1);
    h.assert_logs_clean();
}

#[test]
fn call_api_token_hands_each_attempt_the_token_record_with_its_type() {
    let clock: Clock = Rc::new(Cell::new(T0));
    let store = FakeStore::new(&clock);
    let mut s = settings();
    s.dpop = true;
    let h = Harness::build(&clock, &store, s);
    let dpop_token =
        |t: &str| format!(r#"{{"access_token":"{t}","token_type":"DPoP","expires_in":3600}}"#);
    h.transport
        .reply(200, &[], &dpop_token(TOKEN_A))
        .reply(200, &[], &dpop_token(TOKEN_B));
    let mut replies = VecDeque::from([api_reply(401, "expired"), api_reply(200, "ok")]);
    let used = RefCell::new(Vec::new());
    let result = block_on(call_api_token(&h.source, "GET", true, |t: Token| {
        used.borrow_mut().push(t.authorization());
        let r = replies.pop_front().expect("scripted");
        async move { r }
    }));
    assert_eq!(result.unwrap().0, "ok");
    assert_eq!(
        *used.borrow(),
        [format!("DPoP {TOKEN_A}"), format!("DPoP {TOKEN_B}")]
    );
    h.assert_logs_clean();
}
