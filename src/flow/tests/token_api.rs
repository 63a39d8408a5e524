//! A token API (`auth_style = "token_api"`, openapi.com Oauth v2:
//! `docs/providers.md#openapi-token-api`): create, rotate before expiry, fall back to creation
//! when rotation is refused, remove what creation replaced — never more than two live tokens.

use super::*;
use crate::rfc3339;

const EMAIL: &str = "dev+tg@example.com";

fn api_settings() -> TokenSettings {
    TokenSettings::parse_camel(
        &json!({
            "tokenUrl": "https://test.oauth.openapi.com/tokens",
            "clientId": EMAIL,
            "authStyle": "token_api",
            "tokenBody": {"scopes": ["GET:company.openapi.com/IT-start"], "ttl": 3600},
        }),
        &[],
    )
    .unwrap()
}

/// The RFC 3339 form of `ms` (whole seconds; within November 2023, like every instant here).
fn iso(ms: u64) -> String {
    // T0 is 2023-11-14T22:13:20Z.
    let total = (22 * 3600 + 13 * 60 + 20) + (ms - T0) / 1000;
    let (day, rest) = (14 + total / 86_400, total % 86_400);
    let text = format!(
        "2023-11-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    );
    assert_eq!(rfc3339::parse_ms(&text), Some(ms - ms % 1000), "{text}");
    text
}

/// Queues a 200 token record (wrapped, as some deployments answer) valid for `life_s`.
fn record(h: &Harness, token: &str, refresh: &str, life_s: u64) {
    let now = h.clock.get();
    let body = json!({"success": true, "message": "", "error": null, "data": {
        "token": token, "refreshToken": refresh, "expireAt": iso(now + life_s * 1000),
        "createdAt": iso(now), "scopes": ["GET:company.openapi.com/IT-start"],
    }});
    h.transport.reply(200, &[], &body.to_string());
}

fn api_error(h: &Harness, status: u16, message: &str, code: u64) {
    let body = json!({"success": false, "message": message, "error": code, "data": null});
    h.transport.reply(status, &[], &body.to_string());
}

fn methods(h: &Harness) -> Vec<String> {
    h.transport
        .sent()
        .iter()
        .map(|(r, _)| format!("{} {}", r.method, r.url))
        .collect()
}

fn api_harness() -> Harness {
    let clock: Clock = Rc::new(Cell::new(T0));
    let store = FakeStore::new(&clock);
    Harness::build(&clock, &store, api_settings())
}

const URL: &str = "https://test.oauth.openapi.com/tokens";

#[test]
fn creates_then_rotates_before_expiry() {
    let h = api_harness();
    record(&h, "tok-1", "ref-1", 3600);
    let (t, _) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), "tok-1");
    assert_eq!(t.expires_at_ms, T0 + 3_600_000);
    // Stored until it expires (not only until its refresh point), refresh token included, so
    // whichever instance comes next rotates it.
    let puts = h.store.puts();
    assert_eq!(puts[0].2, 3600);
    assert_eq!(
        Token::from_stored(&puts[0].1)
            .unwrap()
            .refresh_token
            .unwrap()
            .expose(),
        "ref-1"
    );

    // Until the refresh point (expiry − 60 s skew) memory serves it.
    h.advance(3_540_000 - 1);
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);
    h.advance(1);
    record(&h, "tok-2", "ref-2", 3600);
    let (t2, origin) = h.token().unwrap();
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(t2.access_token.expose(), "tok-2");
    let sent = h.transport.sent();
    assert_eq!(
        methods(&h),
        [format!("POST {URL}"), format!("PATCH {URL}/tok-1")]
    );
    assert_eq!(sent[1].0.header("authorization"), Some("Bearer ref-1"));
    assert_eq!(
        std::str::from_utf8(&sent[1].0.body).unwrap(),
        r#"{"ttl":3600}"#
    );
    // Rotation removed tok-1 at the service: nothing to delete.
    assert_eq!(h.rt.run_background(), 0);

    // And again: only PATCHes from now on, each with the latest refresh token.
    h.advance(3_540_000);
    record(&h, "tok-3", "ref-3", 3600);
    h.token().unwrap();
    let sent = h.transport.sent();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].0.method, "PATCH");
    assert_eq!(sent[2].0.header("authorization"), Some("Bearer ref-2"));
    let ops: Vec<Value> =
        h.rt.events("token_exchange")
            .iter()
            .map(|e| e["op"].clone())
            .collect();
    assert_eq!(ops, [json!("create"), json!("rotate"), json!("rotate")]);
    h.assert_logs_clean();
    let logs = serde_json::to_string(&h.rt.logs()).unwrap();
    for s in ["tok-", "ref-"] {
        assert!(!logs.contains(s), "{logs}");
    }
}

#[test]
fn refused_rotation_creates_and_deletes_the_old_token() {
    for status in [401, 404] {
        let h = api_harness();
        record(&h, "tok-1", "ref-1", 3600);
        h.token().unwrap();
        h.advance(3_540_000);
        api_error(&h, status, "Token not found", 5);
        record(&h, "tok-2", "ref-2", 3600);
        let (t, _) = h.token().unwrap();
        assert_eq!(t.access_token.expose(), "tok-2");
        assert_eq!(
            methods(&h),
            [
                format!("POST {URL}"),
                format!("PATCH {URL}/tok-1"),
                format!("POST {URL}")
            ]
        );
        // The superseded token is removed in the background, with HTTP Basic.
        h.transport.reply(
            200,
            &[],
            r#"{"success":true,"message":"","error":null,"data":null}"#,
        );
        assert_eq!(h.rt.run_background(), 1);
        let sent = h.transport.sent();
        let delete = &sent[3].0;
        assert_eq!(
            format!("{} {}", delete.method, delete.url),
            format!("DELETE {URL}/tok-1")
        );
        assert!(delete
            .header("authorization")
            .unwrap()
            .starts_with("Basic "));
        assert_eq!(h.rt.events("token_revoked")[0]["ok"], true);
        // A refused rotation is not a failed authentication: no cooldown.
        h.advance(3_540_000);
        record(&h, "tok-3", "ref-3", 3600);
        h.token().unwrap();
        assert_eq!(h.transport.sent()[4].0.method, "PATCH", "{status}");
    }
}

#[test]
fn a_failed_delete_is_logged_not_fatal() {
    let h = api_harness();
    record(&h, "tok-1", "ref-1", 3600);
    h.token().unwrap();
    h.advance(3_540_000);
    api_error(&h, 404, "Token not found", 5);
    record(&h, "tok-2", "ref-2", 3600);
    h.token().unwrap();
    api_error(&h, 500, "Internal error", 99);
    assert_eq!(h.rt.run_background(), 1);
    let ev = &h.rt.events("token_revoked")[0];
    assert_eq!(ev["ok"], false);
    assert_eq!(ev["status"], 500);
    assert_eq!(ev["provider_error"], "error 99");
    // The token in use is unaffected.
    assert_eq!(h.token().unwrap().0.access_token.expose(), "tok-2");
}

#[test]
fn failed_rotation_other_than_refusal_is_an_error_and_creates_nothing() {
    let h = api_harness();
    record(&h, "tok-1", "ref-1", 3600);
    h.token().unwrap();
    h.advance(3_540_000);
    for _ in 0..4 {
        api_error(&h, 503, "Service unavailable", 98);
    }
    // The token, past its refresh point but valid for another minute, is served while the
    // service fails; nothing is created, nothing removed.
    let (t, _) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), "tok-1");
    assert_eq!(
        h.rt.events("token_served_stale")[0]["error"],
        "server_error"
    );
    assert!(h.transport.sent()[1..]
        .iter()
        .all(|(r, _)| r.method == "PATCH"));
    assert_eq!(h.rt.run_background(), 0);
    // Once it has expired, the failure is the caller's.
    h.advance(60_000);
    for _ in 0..4 {
        api_error(&h, 503, "Service unavailable", 98);
    }
    assert_eq!(h.token().unwrap_err().code, ErrorCode::ServerError);
}

#[test]
fn the_error_message_and_code_reach_the_error() {
    let h = api_harness();
    api_error(&h, 422, "Invalid scopes specified or API not enabled", 90);
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert_eq!(
        e.to_string(),
        "invalid_request (HTTP 422) [error 90]: Invalid scopes specified or API not enabled"
    );
    assert_eq!(
        h.rt.events("token_exchange")[0]["provider_error"],
        "error 90"
    );
}

#[test]
fn another_instance_rotates_the_stored_token() {
    let a = api_harness();
    record(&a, "tok-1", "ref-1", 3600);
    a.token().unwrap();
    a.advance(3_540_000);
    // A second instance sharing the store, with nothing in memory, finds tok-1 past its
    // refresh point and rotates it instead of creating a third token.
    let b = Harness::build(&a.clock, &a.store, api_settings());
    record(&b, "tok-2", "ref-2", 3600);
    let (t, _) = b.token().unwrap();
    assert_eq!(t.access_token.expose(), "tok-2");
    assert_eq!(methods(&b), [format!("PATCH {URL}/tok-1")]);
    // The first instance then takes tok-2 from the store and does not rotate tok-1 again; it
    // has nothing to delete (tok-1 went with the rotation, which it cannot know, so it tries).
    let (t, origin) = a.token().unwrap();
    assert_eq!(
        (t.access_token.expose(), origin),
        ("tok-2", TokenOrigin::Store)
    );
    assert_eq!(a.transport.calls(), 1);
    api_error(&a, 404, "Token not found", 5);
    assert_eq!(
        a.rt.run_background(),
        1,
        "tok-1, replaced by another instance's token"
    );
    assert_eq!(a.transport.sent()[1].0.url, format!("{URL}/tok-1"));
    assert_eq!(a.rt.events("token_revoked")[0]["status"], 404);
}

#[test]
fn a_token_the_api_refused_is_rotated_not_abandoned() {
    let h = api_harness();
    record(&h, "tok-1", "ref-1", 3600);
    let (t, _) = h.token().unwrap();
    block_on(h.source.forget_refused(&t.access_token));
    // Rotated: the service replaces it (or says it is gone), nothing is left behind.
    record(&h, "tok-2", "ref-2", 3600);
    let (t2, _) = h.token().unwrap();
    assert_eq!(t2.access_token.expose(), "tok-2");
    assert_eq!(methods(&h)[1], format!("PATCH {URL}/tok-1"));
    assert_eq!(h.rt.run_background(), 0);
    // Refused and gone at the service: created anew, the old one's removal attempted (404).
    block_on(h.source.forget_refused(&t2.access_token));
    api_error(&h, 404, "Token not found", 5);
    record(&h, "tok-3", "ref-3", 3600);
    assert_eq!(h.token().unwrap().0.access_token.expose(), "tok-3");
    h.transport.reply(
        404,
        &[],
        r#"{"success":false,"message":"Token not found","error":5,"data":null}"#,
    );
    assert_eq!(h.rt.run_background(), 1);
    assert_eq!(
        methods(&h)[2..],
        [
            format!("PATCH {URL}/tok-2"),
            format!("POST {URL}"),
            format!("DELETE {URL}/tok-2")
        ]
    );
    assert_eq!(
        h.rt.events("token_revoked")[0]["ok"],
        true,
        "404: gone already"
    );
}

#[test]
fn invalidate_rotates_the_dropped_token() {
    let h = api_harness();
    record(&h, "tok-1", "ref-1", 3600);
    h.token().unwrap();
    block_on(h.source.invalidate(None));
    assert!(!h.store.contains(&h.key));
    record(&h, "tok-2", "ref-2", 3600);
    assert_eq!(h.token().unwrap().0.access_token.expose(), "tok-2");
    assert_eq!(methods(&h)[1], format!("PATCH {URL}/tok-1"));
}

#[test]
fn an_expired_token_is_replaced_never_sent() {
    let h = api_harness();
    record(&h, "tok-1", "ref-1", 3600);
    h.token().unwrap();
    h.advance(3_600_000);
    record(&h, "tok-2", "ref-2", 3600);
    h.token().unwrap();
    assert_eq!(methods(&h), [format!("POST {URL}"), format!("POST {URL}")]);
    assert_eq!(
        h.rt.run_background(),
        0,
        "an expired token is not worth a call"
    );
}

#[test]
fn a_rotation_the_service_will_not_do_falls_back_to_creation() {
    for status in [400, 403, 410, 422] {
        let h = api_harness();
        record(&h, "tok-1", "ref-1", 3600);
        h.token().unwrap();
        h.advance(3_540_000);
        api_error(&h, status, "Rotation not allowed", 7);
        record(&h, "tok-2", "ref-2", 3600);
        assert_eq!(
            h.token().unwrap().0.access_token.expose(),
            "tok-2",
            "{status}"
        );
        h.transport.reply(200, &[], "{}");
        assert_eq!(h.rt.run_background(), 1, "{status}: tok-1 removed");
    }
}

#[test]
fn creation_and_rotation_are_not_resent_after_a_timeout() {
    let h = api_harness();
    h.transport.push(Err(TransportError::Timeout));
    assert_eq!(h.token().unwrap_err().code, ErrorCode::Timeout);
    assert_eq!(
        h.transport.calls(),
        1,
        "a creation that may have happened is not repeated"
    );
    record(&h, "tok-1", "ref-1", 3600);
    h.token().unwrap();
    h.advance(3_540_000);
    h.transport.push(Err(TransportError::Network(
        "connection reset while sending to /tokens/tok-1 (ref-1)".into(),
    )));
    // Not resent; the token, still valid, is served meanwhile.
    assert_eq!(h.token().unwrap().0.access_token.expose(), "tok-1");
    assert_eq!(h.transport.calls(), 3);
    // The URL names the token; what a network error quotes of it is scrubbed.
    let failed = &h.rt.events("token_exchange")[2];
    assert_eq!(failed["error"], "network");
    let said = failed["error_description"].as_str().unwrap();
    assert!(!said.contains("tok-1") && !said.contains("ref-1"), "{said}");
    h.assert_logs_clean();
    assert!(!serde_json::to_string(&h.rt.logs())
        .unwrap()
        .contains("tok-1"));
}

#[test]
fn a_token_in_an_answer_that_cannot_be_read_is_removed_and_the_service_left_alone() {
    let h = api_harness();
    let body = json!({"token": "tok-x", "expireAt": "tomorrow", "refreshToken": "ref-x"});
    h.transport.reply(200, &[], &body.to_string());
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidResponse);
    assert!(e.description.contains("expireAt"), "{e}");
    h.transport.reply(200, &[], "{}");
    assert_eq!(h.rt.run_background(), 1);
    assert_eq!(methods(&h)[1], format!("DELETE {URL}/tok-x"));
    // Not asked again at once: the next callers get the error for 30 s.
    assert_eq!(h.token().unwrap_err().code, ErrorCode::InvalidResponse);
    assert_eq!(h.transport.calls(), 2);
    h.advance(30_000);
    record(&h, "tok-1", "ref-1", 3600);
    assert_eq!(h.token().unwrap().0.access_token.expose(), "tok-1");
    // A 200 that says `success: false` carries the service's words.
    let h = api_harness();
    h.transport.reply(
        200,
        &[],
        r#"{"success":false,"message":"Wallet empty","error":31,"data":null}"#,
    );
    let e = h.token().unwrap_err();
    assert_eq!(e.provider_error.as_deref(), Some("error 31"));
    assert!(e.description.ends_with("Wallet empty"), "{e}");
}

/// Polls `f` once with a no-op waker.
fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    let waker = futures::task::noop_waker();
    f.poll(&mut Context::from_waker(&waker))
}

#[test]
fn racing_creations_settle_on_the_stored_token() {
    let a = api_harness();
    let b = Harness::build(&a.clock, &a.store, api_settings());
    // B has read the store (empty) and sent its creation when A creates and stores its token.
    let gate = Gate::default();
    *b.transport.0.gate.borrow_mut() = Some(gate.clone());
    record(&b, "tok-b", "ref-b", 3600);
    let mut racing = Box::pin(b.source.token());
    assert!(poll_once(racing.as_mut()).is_pending());
    record(&a, "tok-a", "ref-a", 3600);
    a.token().unwrap();
    gate.open();
    *b.transport.0.gate.borrow_mut() = None;
    let (t, origin) = block_on(racing).unwrap();
    // B gives way: it serves A's token and removes its own.
    assert_eq!(
        (t.access_token.expose(), origin),
        ("tok-a", TokenOrigin::Store)
    );
    b.transport.reply(200, &[], "{}");
    assert_eq!(b.rt.run_background(), 1);
    assert_eq!(methods(&b)[1], format!("DELETE {URL}/tok-b"));
    assert_eq!(b.token().unwrap().1, TokenOrigin::Memory);
}

#[test]
fn racing_rotations_settle_on_the_stored_token() {
    let a = api_harness();
    record(&a, "tok-1", "ref-1", 3600);
    a.token().unwrap();
    let b = Harness::build(&a.clock, &a.store, api_settings());
    assert_eq!(b.token().unwrap().1, TokenOrigin::Store);
    a.advance(3_540_000);
    // Both rotate tok-1; A's PATCH lands first, B's finds it gone and creates — then finds
    // A's rotated token stored and gives way.
    let gate = Gate::default();
    *b.transport.0.gate.borrow_mut() = Some(gate.clone());
    api_error(&b, 404, "Token not found", 5);
    record(&b, "tok-b", "ref-b", 3600);
    let mut racing = Box::pin(b.source.token());
    assert!(poll_once(racing.as_mut()).is_pending());
    record(&a, "tok-2", "ref-2", 3600);
    a.token().unwrap();
    gate.open();
    *b.transport.0.gate.borrow_mut() = None;
    let (t, _) = block_on(racing).unwrap();
    assert_eq!(t.access_token.expose(), "tok-2");
    assert_eq!(
        methods(&b),
        [format!("PATCH {URL}/tok-1"), format!("POST {URL}")]
    );
    // Its own new token and tok-1 (404: gone with A's rotation) are removed.
    b.transport.reply(200, &[], "{}").reply(404, &[], "{}");
    assert_eq!(b.rt.run_background(), 2);
    let deleted: Vec<String> = b.transport.sent()[2..]
        .iter()
        .map(|(r, _)| r.url.clone())
        .collect();
    assert!(
        deleted.contains(&format!("{URL}/tok-b")) && deleted.contains(&format!("{URL}/tok-1")),
        "{deleted:?}"
    );
}

/// The live tokens of the account after a scripted history: never more than two.
#[test]
fn never_more_than_two_live_tokens() {
    let h = api_harness();
    let mut live: Vec<String> = Vec::new();
    record(&h, "tok-0", "ref-0", 3600);
    h.token().unwrap();
    live.push("tok-0".into());
    for i in 1..=6 {
        h.advance(3_540_000);
        let token = format!("tok-{i}");
        if i % 2 == 0 {
            // Rotation refused: creation, then the old one deleted.
            api_error(&h, 401, "Invalid refresh token", 2);
            record(&h, &token, &format!("ref-{i}"), 3600);
            h.token().unwrap();
            live.push(token);
            assert!(live.len() <= 2, "{live:?}");
            h.transport.reply(200, &[], "{}");
            h.rt.run_background();
            let deleted = h.transport.sent().last().unwrap().0.url.clone();
            live.retain(|t| !deleted.ends_with(&format!("/{t}")));
        } else {
            record(&h, &token, &format!("ref-{i}"), 3600);
            h.token().unwrap();
            live.retain(|t| t != &format!("tok-{}", i - 1));
            live.push(token);
        }
        assert_eq!(live.len(), 1, "{live:?}");
    }
}

/// A refusal that arrives as HTTP 200 and quotes the API key, the token being rotated and its
/// refresh token (in several spellings): none of it reaches the error, the log lines, or the
/// error the cooldown repeats to every caller afterwards.
#[test]
fn a_refusal_in_a_200_is_scrubbed_everywhere_it_is_kept() {
    let h = api_harness();
    record(&h, "tok-1-abcdefgh", "ref-1/abcdefgh", 3600);
    h.token().unwrap();
    h.advance(3_540_000);
    use base64::Engine;
    let key_basic = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{SECRET}"));
    let message = format!(
        "refused {SECRET} (Basic {key_basic}) for /tokens/tok-1-abcdefgh with ref-1%2Fabcdefgh \
         and ref-1%2fabcdefgh"
    );
    // Rotation refused with a 200, then creation refused the same way: an unreadable answer,
    // and the service left alone for 30 s.
    for _ in 0..2 {
        let body = json!({"success": false, "message": message, "error": 7, "data": null});
        h.transport.reply(200, &[], &body.to_string());
    }
    let first = h.token().unwrap_err();
    let again = h.token().unwrap_err();
    assert_eq!(first, again, "the cooldown repeats the error");
    for shown in [first.to_string(), format!("{:?}", first.raw_body)] {
        for secret in [SECRET, "tok-1-abcdefgh", "ref-1", &key_basic] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    assert!(first.description.contains("refused [redacted]"), "{first}");
    let logs = serde_json::to_string(&h.rt.logs()).unwrap();
    for secret in [SECRET, "tok-1-abcdefgh", "ref-1", &key_basic] {
        assert!(!logs.contains(secret), "{secret} in the logs: {logs}");
    }
}
