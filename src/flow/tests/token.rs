//! `TokenSource::token()`: caching, single-flight, retries, cooldown, store handling.

use super::*;

// ---------------------------------------------------------------- token()

#[test]
fn exchange_then_memory_hit() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    assert_eq!(h.source.memory_token(), None, "nothing in memory yet");
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert_eq!(t.expires_at_ms, T0 + 3_600_000);
    assert_eq!(origin, TokenOrigin::Exchange { ms: 0 });
    let held = h.source.memory_token().expect("in memory");
    assert_eq!(*held, t);
    let sent = h.transport.sent();
    assert_eq!(sent.len(), 1);
    assert_token_request(&sent[0].0, sent[0].1);

    // Stored with TTL = lifetime − skew, value readable as the token with its expiry.
    let puts = h.store.puts();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].0, h.key);
    assert_eq!(puts[0].2, 3_540);
    let stored = Token::from_stored(&puts[0].1).unwrap();
    assert_eq!(stored, t);

    h.advance(60_000);
    let (t2, origin) = h.token().unwrap();
    assert_eq!(origin, TokenOrigin::Memory);
    assert_eq!(t2, t);
    assert_eq!(h.transport.calls(), 1);
    assert_eq!(
        h.store.0.gets.get(),
        2,
        "the token and the pause before the exchange; a memory hit does not touch the store"
    );
    let ev = h.rt.events("token_exchange");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["provider"], "optoro");
    assert_eq!(ev[0]["status"], 200);
    assert_eq!(ev[0]["ok"], true);
    h.assert_logs_clean();
}

#[test]
fn store_hit_on_a_second_source_sharing_the_store() {
    let h1 = Harness::new();
    h1.transport.token(TOKEN_A, 3600);
    h1.token().unwrap();
    h1.advance(1_000);

    let h2 = Harness::sharing(&h1.clock, &h1.store);
    let (t, origin) = h2.token().unwrap();
    assert_eq!(origin, TokenOrigin::Store);
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert_eq!(h2.transport.calls(), 0);
    // Then from its own memory.
    let (_, origin) = h2.token().unwrap();
    assert_eq!(origin, TokenOrigin::Memory);
    // The first source read the token and the pause before its exchange; the second only
    // the token.
    assert_eq!(h2.store.0.gets.get(), 3, "one token get by each source");
    h2.assert_logs_clean();
}

#[test]
fn stale_store_entry_is_a_miss() {
    let h1 = Harness::new();
    h1.transport.token(TOKEN_A, 3600);
    h1.token().unwrap();
    // The store keeps values past their refresh point (TTL is housekeeping only).
    h1.store.0.map.borrow_mut().get_mut(&h1.key).unwrap().1 = u64::MAX;
    h1.advance(3_540_000);
    let h2 = Harness::sharing(&h1.clock, &h1.store);
    h2.transport.token(TOKEN_B, 3600);
    let (t, origin) = h2.token().unwrap();
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(t.access_token.expose(), TOKEN_B);
    assert_eq!(h2.transport.calls(), 1);
}

#[test]
fn refresh_once_now_passes_the_refresh_point() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    h.token().unwrap();
    // Refresh point: expiry − 60 s skew.
    h.advance(3_540_000 - 1);
    let (t, origin) = h.token().unwrap();
    assert_eq!(
        (t.access_token.expose(), origin),
        (TOKEN_A, TokenOrigin::Memory)
    );
    assert_eq!(h.transport.calls(), 1);
    let held = h.source.memory_token().expect("in memory");
    assert_eq!(*held, t);
    assert!(
        Rc::ptr_eq(&held, &h.source.memory_token().unwrap()),
        "the same Rc until memory changes"
    );
    h.advance(1);
    assert_eq!(h.source.memory_token(), None, "past the refresh point");
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_B);
    assert_eq!(origin, TokenOrigin::Exchange { ms: 0 });
    assert_eq!(t.expires_at_ms, T0 + 3_540_000 + 3_600_000);
    assert_eq!(h.transport.calls(), 2);
    let (_, origin) = h.token().unwrap();
    assert_eq!(origin, TokenOrigin::Memory);
    assert_eq!(h.transport.calls(), 2);
}

#[test]
fn hundred_concurrent_tokens_share_one_exchange() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let gate = Gate::default();
    *h.transport.0.gate.borrow_mut() = Some(gate.clone());
    let all = join_all((0..100).map(|_| h.source.token()));
    let opener = async {
        // Every token() call has been polled (and is waiting) before the answer arrives.
        YieldOnce::default().await;
        assert_eq!(h.transport.calls(), 1);
        gate.open();
    };
    let (results, ()) = block_on(async { futures::join!(all, opener) });
    assert_eq!(results.len(), 100);
    for r in results {
        let (t, origin) = r.unwrap();
        assert_eq!(t.access_token.expose(), TOKEN_A);
        assert_eq!(origin, TokenOrigin::Exchange { ms: 0 });
    }
    assert_eq!(h.transport.calls(), 1);
    assert_eq!(
        h.store.0.gets.get(),
        2,
        "one store lookup (token, pause) too"
    );
    assert_eq!(h.store.puts().len(), 1);
    // After the flight lands, calls are memory hits.
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);
}

#[test]
fn signalled_waiters_share_one_exchange() {
    // The Worker's mode: only the leader drives the exchange; waiters wait on its signal.
    let h = Harness::new();
    h.rt.0.signalled.set(true);
    h.transport.token(TOKEN_A, 3600);
    let gate = Gate::default();
    *h.transport.0.gate.borrow_mut() = Some(gate.clone());
    let all = join_all((0..100).map(|_| h.source.token()));
    let opener = async {
        for _ in 0..3 {
            YieldOnce::default().await;
        }
        assert_eq!(h.transport.calls(), 1);
        gate.open();
    };
    let (results, ()) = block_on(async { futures::join!(all, opener) });
    for r in results {
        assert_eq!(r.unwrap().0.access_token.expose(), TOKEN_A);
    }
    assert_eq!(h.transport.calls(), 1);
    let signals = h.rt.0.signals.borrow();
    assert_eq!(signals.len(), 1, "one signal for the one flight");
    assert_eq!(
        signals[0].waits.get(),
        99,
        "each waiter waited once, no polling"
    );
    assert_eq!(signals[0].raises.get(), 1);
    assert!(h.rt.sleeps().is_empty(), "no timer");
}

#[test]
fn a_flight_whose_request_vanished_is_replaced_at_once() {
    let h = Harness::new();
    h.rt.0.signalled.set(true);
    h.transport.token(TOKEN_A, 3600);
    let gate = Gate::default();
    *h.transport.0.gate.borrow_mut() = Some(gate.clone());
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // The request that starts the exchange, and one that waits for it.
    let mut leader = Box::pin(h.source.token());
    assert!(leader.as_mut().poll(&mut cx).is_pending());
    let mut waiter = Box::pin(h.source.token());
    assert!(waiter.as_mut().poll(&mut cx).is_pending());
    assert_eq!(h.transport.calls(), 1);
    // The leader's request is cancelled mid-flight: its guard wakes the waiter, which starts a
    // new exchange at once instead of waiting out the old one.
    drop(leader);
    assert_eq!(h.rt.0.signals.borrow()[0].raises.get(), 1);
    *h.transport.0.gate.borrow_mut() = None;
    let (t, origin) = block_on(waiter).unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(
        h.transport.calls(),
        2,
        "a new flight replaced the abandoned one"
    );
    assert!(h.rt.sleeps().is_empty(), "no waiting out");
}

#[test]
fn concurrent_failure_is_shared_and_not_cached() {
    let h = Harness::new();
    h.transport.reply(400, &[], r#"{"error":"invalid_scope"}"#);
    let gate = Gate::default();
    *h.transport.0.gate.borrow_mut() = Some(gate.clone());
    let all = join_all((0..10).map(|_| h.source.token()));
    let opener = async {
        YieldOnce::default().await;
        gate.open();
    };
    let (results, ()) = block_on(async { futures::join!(all, opener) });
    for r in results {
        let e = r.unwrap_err();
        assert_eq!(e.provider_error.as_deref(), Some("invalid_scope"));
    }
    assert_eq!(h.transport.calls(), 1);
    // The in-flight slot was released: the next call exchanges again.
    h.transport.token(TOKEN_A, 3600);
    assert!(h.token().is_ok());
    assert_eq!(h.transport.calls(), 2);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let h = Harness::new();
    h.transport
        .reply(503, &[], "<html>busy</html>")
        .reply(503, &[], "<html>busy</html>")
        .token(TOKEN_A, 3600);
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    let sent = h.transport.sent();
    assert_eq!(sent.len(), 3);
    for (req, timeout) in &sent {
        assert_token_request(req, *timeout);
    }
    // Full jitter at 0.5: 200·2⁰·0.5, then 200·2¹·0.5.
    assert_eq!(h.rt.sleeps(), [100, 200]);
    assert_eq!(origin, TokenOrigin::Exchange { ms: 300 });
    // The token's lifetime counts from when it arrived.
    assert_eq!(t.expires_at_ms, T0 + 300 + 3_600_000);
    let ev = h.rt.events("token_exchange");
    let attempts: Vec<_> = ev.iter().map(|e| e["attempt"].clone()).collect();
    assert_eq!(attempts, [json!(1), json!(2), json!(3)]);
    assert_eq!(ev[0]["error"], "server_error");
    assert_eq!(ev[0]["status"], 503);
    assert_eq!(ev[2]["ok"], true);
    h.assert_logs_clean();
}

#[test]
fn transport_failures_are_retried() {
    let h = Harness::new();
    h.transport
        .push(Err(TransportError::Network("connection reset".into())))
        .push(Err(TransportError::Timeout))
        .token(TOKEN_A, 3600);
    assert!(h.token().is_ok());
    assert_eq!(h.transport.calls(), 3);
    assert_eq!(h.rt.sleeps(), [100, 200]);
    let ev = h.rt.events("token_exchange");
    assert_eq!(ev[0]["error"], "network");
    assert_eq!(ev[1]["error"], "timeout");
}

#[test]
fn retries_run_out() {
    let h = Harness::new();
    for _ in 0..4 {
        h.transport.reply(500, &[], "oops");
    }
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::ServerError);
    assert_eq!(e.status, Some(500));
    // Four attempts (default max_attempts), three sleeps.
    assert_eq!(h.transport.calls(), 4);
    assert_eq!(h.rt.sleeps(), [100, 200, 400]);
}

#[test]
fn rate_limited_honours_retry_after() {
    let h = Harness::new();
    h.transport
        .reply(429, &[("retry-after", "1")], r#"{"error":"rate_limited"}"#)
        .token(TOKEN_A, 3600);
    let (_, origin) = h.token().unwrap();
    assert_eq!(h.rt.sleeps(), [1_000]);
    assert_eq!(h.transport.calls(), 2);
    assert_eq!(origin, TokenOrigin::Exchange { ms: 1_000 });
}

#[test]
fn rate_limited_with_too_long_retry_after_is_not_retried() {
    let h = Harness::new();
    h.transport
        .reply(429, &[("retry-after", "3600")], "slow down");
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(e.retry_after_ms, Some(3_600_000));
    assert_eq!(h.transport.calls(), 1);
    assert!(h.rt.sleeps().is_empty());
}

#[test]
fn a_long_retry_after_pauses_exchanges_here_and_in_other_isolates() {
    let h = Harness::new();
    h.transport
        .reply(429, &[("retry-after", "120")], "slow down");
    assert_eq!(h.token().unwrap_err().code, ErrorCode::RateLimited);
    assert_eq!(h.transport.calls(), 1);
    // The pause is shared through the store (KV keeps nothing under 60 s: here 120 s).
    let hold = format!("{}:hold", h.key);
    let put = h
        .store
        .puts()
        .into_iter()
        .find(|(k, _, _)| *k == hold)
        .unwrap();
    assert_eq!((put.1, put.2), ((T0 + 120_000).to_string(), 120));
    // Within it: 503-style errors, the provider not called, here or in another isolate.
    h.advance(20_000);
    let other = Harness::sharing(&h.clock, &h.store);
    for src in [&h, &other] {
        let e = src.token().unwrap_err();
        assert_eq!(e.code, ErrorCode::TemporarilyUnavailable);
        assert_eq!(e.retry_after_ms, Some(100_000));
        assert!(e.retryable());
    }
    assert_eq!(h.transport.calls() + other.transport.calls(), 1);
    assert_eq!(h.rt.events("token_exchange_held").len(), 1);
    // A valid token another isolate put in the store meanwhile is served all the same.
    let third = Harness::sharing(&h.clock, &h.store);
    let token = json!({"access_token": TOKEN_B, "token_type": "Bearer",
        "issued_at_ms": T0, "expires_at_ms": T0 + 3_600_000});
    block_on(h.store.put(&h.key, token.to_string(), 3_000)).unwrap();
    assert_eq!(third.token().unwrap().0.access_token.expose(), TOKEN_B);
    // After the pause, the provider is asked again.
    let fourth = Harness::sharing(&h.clock, &FakeStore::new(&h.clock));
    h.advance(100_000);
    h.transport.token(TOKEN_A, 3600);
    assert_eq!(h.token().unwrap().0.access_token.expose(), TOKEN_B);
    fourth.transport.token(TOKEN_A, 3600);
    assert_eq!(fourth.token().unwrap().0.access_token.expose(), TOKEN_A);
}

#[test]
fn a_failing_token_endpoint_opens_the_circuit_then_probes() {
    let h = Harness::new();
    // Three failed exchanges (four attempts each, the retry policy's default).
    for _ in 0..3 {
        for _ in 0..4 {
            h.transport.reply(502, &[], "bad gateway");
        }
        assert_eq!(h.token().unwrap_err().code, ErrorCode::ServerError);
    }
    assert_eq!(h.transport.calls(), 12);
    // Open: no call for 30 s.
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::TemporarilyUnavailable);
    assert_eq!(h.transport.calls(), 12);
    // Then one probe: it succeeds and closes the circuit.
    h.advance(e.retry_after_ms.unwrap());
    h.transport.token(TOKEN_A, 3600);
    assert_eq!(h.token().unwrap().0.access_token.expose(), TOKEN_A);
    assert_eq!(h.transport.calls(), 13);
    h.assert_logs_clean();
}

#[test]
fn client_errors_are_not_retried() {
    for (status, body, code) in [
        (
            400,
            r#"{"error":"invalid_request","error_description":"bad"}"#,
            ErrorCode::InvalidRequest,
        ),
        (
            401,
            r#"{"error":"invalid_client"}"#,
            ErrorCode::InvalidClient,
        ),
        (
            422,
            r#"{"message":"Validation Failed","errors":[{"field":"client_id","code":"missing_field"}]}"#,
            ErrorCode::InvalidRequest,
        ),
    ] {
        let h = Harness::new();
        h.transport.reply(status, &[], body);
        let e = h.token().unwrap_err();
        assert_eq!(e.code, code, "{status}");
        assert_eq!(e.status, Some(status));
        assert_eq!(h.transport.calls(), 1, "{status}");
        assert!(h.rt.sleeps().is_empty(), "{status}");
        h.assert_logs_clean();
    }
}

#[test]
fn invalid_client_cools_down_for_30_s() {
    let h = Harness::new();
    h.transport.reply(
        401,
        &[],
        r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
    );
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidClient);
    assert_eq!(h.transport.calls(), 1);

    h.advance(INVALID_CLIENT_COOLDOWN_MS - 1);
    let again = h.token().unwrap_err();
    assert_eq!(again.code, ErrorCode::InvalidClient);
    assert_eq!(again.provider_error.as_deref(), Some("invalid_client"));
    assert_eq!(h.transport.calls(), 1, "no call during the cooldown");

    h.advance(1);
    h.transport.token(TOKEN_A, 3600);
    let (t, _) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert_eq!(h.transport.calls(), 2);
    h.assert_logs_clean();
}

#[test]
fn a_failed_exchange_stores_nothing() {
    let h = Harness::new();
    h.transport.reply(400, &[], r#"{"error":"invalid_scope"}"#);
    assert!(h.token().is_err());
    // A 200 that is not a token is a failure too.
    h.transport.reply(200, &[], "<html>not json</html>");
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidResponse);
    assert!(h.store.puts().is_empty());
    assert!(!h.store.contains(&h.key));
    // Nothing in memory either: the next call exchanges.
    h.transport.token(TOKEN_A, 3600);
    assert!(matches!(h.token().unwrap().1, TokenOrigin::Exchange { .. }));
    assert_eq!(h.transport.calls(), 3);
}

#[test]
fn short_lived_token_never_reaches_the_store() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 90);
    let (t, _) = h.token().unwrap();
    assert_eq!(t.expires_at_ms, T0 + 90_000);
    assert!(h.store.puts().is_empty());
    // Served from memory for half its life (skew capped at half).
    h.advance(44_999);
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);
    h.advance(1);
    h.transport.token(TOKEN_B, 120);
    let (t, _) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_B);
    // 120 s − 60 s skew = exactly the 60 s KV minimum: stored.
    assert_eq!(h.store.puts().len(), 1);
    assert_eq!(h.store.puts()[0].2, 60);
}

#[test]
fn store_errors_are_logged_and_treated_as_a_miss() {
    let h = Harness::new();
    h.store.0.fail.set(true);
    h.transport.token(TOKEN_A, 3600);
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    let errs = h.rt.events("store_error");
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0]["op"], "get");
    assert_eq!(errs[0]["error"], "kv get failed: 503 from storage");
    assert_eq!(errs[1]["op"], "put");
    assert_eq!(errs[0]["provider"], "optoro");
    // Memory still works.
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);

    // An unreadable stored value is logged and ignored too.
    let h2 = Harness::sharing(&h.clock, &h.store);
    h.store.0.fail.set(false);
    h.store
        .0
        .map
        .borrow_mut()
        .insert(h.key.clone(), ("{not a token".into(), u64::MAX));
    h2.transport.token(TOKEN_B, 3600);
    let (t, _) = h2.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_B);
    assert_eq!(h2.rt.events("store_error")[0]["op"], "decode");
    h.assert_logs_clean();
    h2.assert_logs_clean();
}

#[test]
fn invalidate_drops_memory_and_store() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    h.token().unwrap();
    assert!(h.store.contains(&h.key));
    block_on(h.source.invalidate(Some(&Secret::new(TOKEN_A))));
    assert!(!h.store.contains(&h.key));
    assert_eq!(*h.store.0.deletes.borrow(), std::slice::from_ref(&h.key));
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_B);
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(h.transport.calls(), 2);

    // Rejecting an older token keeps the newer one.
    block_on(h.source.invalidate(Some(&Secret::new(TOKEN_A))));
    assert_eq!(h.store.0.deletes.borrow().len(), 1);
    assert!(h.store.contains(&h.key));
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);

    // No token named: drop whatever there is.
    block_on(h.source.invalidate(None));
    assert_eq!(h.store.0.deletes.borrow().len(), 2);
    h.transport.token(TOKEN_A, 3600);
    assert!(matches!(h.token().unwrap().1, TokenOrigin::Exchange { .. }));
}

#[test]
fn a_refused_token_leaves_another_instances_newer_token_in_the_store() {
    let a = Harness::new();
    a.transport.token(TOKEN_A, 3600);
    a.token().unwrap();
    let b = Harness::sharing(&a.clock, &a.store);
    assert_eq!(b.token().unwrap().1, TokenOrigin::Store);
    // A refreshes after a 401 and stores TOKEN_B; B's 401 for TOKEN_A then arrives.
    block_on(a.source.forget_refused(&Secret::new(TOKEN_A)));
    a.transport.token(TOKEN_B, 3600);
    a.token().unwrap();
    block_on(b.source.forget_refused(&Secret::new(TOKEN_A)));
    assert!(b.store.contains(&b.key), "TOKEN_B stays for everyone");
    assert_eq!(
        a.store.0.deletes.borrow().len(),
        1,
        "only A's delete of TOKEN_A"
    );
    let (t, origin) = b.token().unwrap();
    assert_eq!(
        (t.access_token.expose(), origin),
        (TOKEN_B, TokenOrigin::Store)
    );
    assert_eq!(b.transport.calls(), 0);
}

#[test]
fn invalidate_store_failure_is_logged() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    h.token().unwrap();
    h.store.0.fail.set(true);
    block_on(h.source.invalidate(None));
    let errs = h.rt.events("store_error");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["op"], "delete");
}
