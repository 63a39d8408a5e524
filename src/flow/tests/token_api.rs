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
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::ServerError);
    assert!(h.transport.sent()[1..]
        .iter()
        .all(|(r, _)| r.method == "PATCH"));
    assert_eq!(h.rt.run_background(), 0);
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
fn a_token_the_api_refused_is_deleted_too() {
    let h = api_harness();
    record(&h, "tok-1", "ref-1", 3600);
    let (t, _) = h.token().unwrap();
    block_on(h.source.forget_refused(&t.access_token));
    h.transport.reply(200, &[], "{}");
    assert_eq!(h.rt.run_background(), 1);
    assert_eq!(h.transport.sent()[1].0.method, "DELETE");
    // An expired token is not worth a call.
    record(&h, "tok-2", "ref-2", 3600);
    let (t, _) = h.token().unwrap();
    h.advance(3_600_000);
    block_on(h.source.forget_refused(&t.access_token));
    assert_eq!(h.rt.run_background(), 0);
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
