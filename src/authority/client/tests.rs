use super::*;
use crate::managed::{Cidr, ClientRecord, Limits};

const NOW: u64 = 1_800_000_000_000;

fn record(scopes: &[&str], limits: Limits, allow: &[&str]) -> ClientRecord {
    ClientRecord {
        client_id: "cl_0000000000000000000001".into(),
        name: "billing".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        token_ttl_s: 3600,
        limits,
        ip_allowlist: allow.iter().map(|c| Cidr::parse(c).unwrap()).collect(),
        disabled: false,
        created_at: NOW / 1000,
        updated_at: NOW / 1000,
    }
}

fn state(r: ClientRecord) -> ClientState {
    ClientState {
        record: r,
        secret_sha256: Sha256::digest(b"tgs_secret").into(),
    }
}

fn request(provider: &str, method: &str) -> CheckRequest {
    CheckRequest {
        token_sha256: "00".repeat(32),
        provider: provider.into(),
        provider_known: true,
        method: method.into(),
        address: Some("203.0.113.7".into()),
    }
}

fn issue(s: &ClientState, c: &mut Counters, scope: Option<&[String]>) -> TokenEntry {
    grant(s, c, scope, Some("203.0.113.7"), &[1; 32], NOW).unwrap()
}

#[test]
fn authentication_compares_the_secret_hash_and_refuses_a_disabled_or_missing_caller() {
    let mut s = state(record(&["optoro"], Limits::default(), &[]));
    let right: [u8; 32] = Sha256::digest(b"tgs_secret").into();
    let wrong: [u8; 32] = Sha256::digest(b"tgs_other").into();
    assert!(authenticate(Some(&s), &right));
    assert!(!authenticate(Some(&s), &wrong));
    assert!(!authenticate(None, &right));
    assert!(
        !authenticate(None, &[0; 32]),
        "no caller: the zero hash matches nothing"
    );
    s.record.disabled = true;
    assert!(!authenticate(Some(&s), &right));
}

#[test]
fn state_round_trips_through_storage_without_showing_the_hash_in_the_record() {
    let s = state(record(&["optoro:read"], Limits::default(), &["10.0.0.0/8"]));
    let stored = s.to_stored();
    assert_eq!(ClientState::from_stored(&stored), Some(s.clone()));
    assert!(s.record.to_json().get("secret_sha256").is_none());
    assert_eq!(ClientState::from_stored("{}"), None);
}

#[test]
fn a_grant_narrows_scopes_checks_the_allowlist_and_counts_issuance() {
    let s = state(record(
        &["optoro", "partner:read"],
        Limits::default(),
        &["203.0.113.0/24"],
    ));
    let mut c = Counters::default();
    let all = issue(&s, &mut c, None);
    assert_eq!(all.scopes, ["optoro", "partner:read"]);
    assert_eq!(all.expires_at_ms - all.issued_at_ms, 3_600_000);
    assert_eq!(all.id, token_id(&[1; 32]));
    let read = issue(&s, &mut c, Some(&["optoro:read".to_string()]));
    assert_eq!(read.scopes, ["optoro:read"]);
    let issued = read.issued("tgt_x".into());
    assert_eq!(
        (issued.expires_in, issued.scope.as_str()),
        (3600, "optoro:read")
    );
    assert_eq!(
        grant(
            &s,
            &mut c,
            Some(&["partner".to_string()]),
            Some("203.0.113.7"),
            &[2; 32],
            NOW
        ),
        Err(GrantRefusal::InvalidScope {
            scope: "partner".into()
        })
    );
    assert_eq!(
        grant(&s, &mut c, None, Some("198.51.100.1"), &[2; 32], NOW),
        Err(GrantRefusal::AccessDenied)
    );
    assert_eq!(
        grant(&s, &mut c, None, None, &[2; 32], NOW),
        Err(GrantRefusal::AccessDenied),
        "no address: outside any allowlist"
    );
    assert_eq!(c.live_tokens, 2);
    // The issuance window: 60 a minute, then a wait until the window ends.
    for _ in 2..DEFAULT_TOKEN_REQUESTS_PER_MINUTE {
        issue(&s, &mut c, None);
    }
    assert_eq!(
        grant(&s, &mut c, None, Some("203.0.113.7"), &[3; 32], NOW + 1_000),
        Err(GrantRefusal::TooManyTokenRequests {
            retry_after_ms: 59_000
        })
    );
    assert!(grant(
        &s,
        &mut c,
        None,
        Some("203.0.113.7"),
        &[3; 32],
        NOW + MINUTE_MS
    )
    .is_ok());
    c.live_tokens = MAX_LIVE_TOKENS;
    assert_eq!(
        grant(
            &s,
            &mut c,
            None,
            Some("203.0.113.7"),
            &[4; 32],
            NOW + 2 * MINUTE_MS
        ),
        Err(GrantRefusal::TooManyLiveTokens)
    );
}

#[test]
fn a_check_refuses_in_order_and_counts_what_it_admits() {
    let s = state(record(
        &["optoro", "partner:read"],
        Limits::default(),
        &["203.0.113.0/24"],
    ));
    let mut c = Counters::default();
    let mut e = issue(&s, &mut c, None);
    let ok = |c: &mut Counters, e: &mut TokenEntry, r: &CheckRequest| {
        check(Some(&s), c, Some(e), r, NOW + 1)
    };
    assert_eq!(ok(&mut c, &mut e, &request("optoro", "POST")), Ok(()));
    assert_eq!(ok(&mut c, &mut e, &request("partner", "get")), Ok(()));
    assert_eq!(
        ok(&mut c, &mut e, &request("partner", "POST")),
        Err(Refusal::InsufficientScope)
    );
    assert_eq!(
        ok(&mut c, &mut e, &request("optimum", "GET")),
        Err(Refusal::InsufficientScope)
    );
    let mut unknown = request("nope", "GET");
    unknown.provider_known = false;
    assert_eq!(ok(&mut c, &mut e, &unknown), Err(Refusal::UnknownProvider));
    let mut outside = request("optoro", "GET");
    outside.address = Some("198.51.100.1".into());
    assert_eq!(ok(&mut c, &mut e, &outside), Err(Refusal::AccessDenied));
    assert_eq!(e.requests, 2);
    assert_eq!((c.stats.requests, c.total, c.minute_count), (2, 2, 2));
    assert_eq!((c.stats.rejected.r403, c.stats.rejected.r401), (3, 0));
    // A missing token entry (revoked, rotated) or caller (deleted): 401, counted when the
    // caller is there.
    assert!(matches!(
        check(Some(&s), &mut c, None, &request("optoro", "GET"), NOW),
        Err(Refusal::InvalidToken { .. })
    ));
    assert!(matches!(
        check(None, &mut c, Some(&mut e), &request("optoro", "GET"), NOW),
        Err(Refusal::InvalidToken { .. })
    ));
    assert_eq!(c.stats.rejected.r401, 2);
}

#[test]
fn tokens_end_at_expiry_at_a_lowered_ttl_and_when_the_caller_is_disabled() {
    let mut s = state(record(&["optoro"], Limits::default(), &[]));
    let mut c = Counters::default();
    let mut e = issue(&s, &mut c, None);
    let r = request("optoro", "GET");
    assert!(check(Some(&s), &mut c, Some(&mut e), &r, NOW + 3_599_999).is_ok());
    assert_eq!(
        check(Some(&s), &mut c, Some(&mut e), &r, NOW + 3_600_000),
        Err(Refusal::InvalidToken {
            reason: "expired".into()
        })
    );
    s.record.token_ttl_s = 60;
    assert!(check(Some(&s), &mut c, Some(&mut e), &r, NOW + 59_999).is_ok());
    assert!(check(Some(&s), &mut c, Some(&mut e), &r, NOW + 60_000).is_err());
    s.record.token_ttl_s = 3600;
    s.record.disabled = true;
    assert_eq!(
        check(Some(&s), &mut c, Some(&mut e), &r, NOW + 1),
        Err(Refusal::InvalidToken {
            reason: "disabled".into()
        })
    );
    assert_eq!(
        introspect(Some(&s), Some(&e), NOW + 1),
        json!({"active": false})
    );
}

#[test]
fn requests_per_minute_admits_exactly_the_limit_per_window() {
    let limits = Limits {
        requests_per_minute: Some(20),
        total_requests: None,
    };
    let s = state(record(&["optoro"], limits, &[]));
    let mut c = Counters::default();
    let mut e = issue(&s, &mut c, None);
    let r = request("optoro", "GET");
    let verdicts: Vec<_> = (0..60)
        .map(|i| check(Some(&s), &mut c, Some(&mut e), &r, NOW + 10 + i))
        .collect();
    assert_eq!(verdicts.iter().filter(|v| v.is_ok()).count(), 20);
    assert!(verdicts[..20].iter().all(Result::is_ok));
    assert_eq!(
        verdicts[20],
        Err(Refusal::PerMinute {
            limit: 20,
            retry_after_ms: 60_000 - 20
        })
    );
    let e429 = verdicts[59].clone().unwrap_err().to_gateway_error("optoro");
    assert_eq!(e429.status(), 429);
    assert!(e429
        .headers()
        .iter()
        .any(|(k, v)| *k == "Retry-After" && v == "60"));
    assert_eq!(c.stats.rejected.r429, 40);
    // The next window admits again.
    assert!(check(Some(&s), &mut c, Some(&mut e), &r, NOW + 10 + MINUTE_MS).is_ok());
}

#[test]
fn total_requests_is_spent_for_good() {
    let limits = Limits {
        requests_per_minute: None,
        total_requests: Some(3),
    };
    let s = state(record(&["optoro"], limits, &[]));
    let mut c = Counters::default();
    let mut e = issue(&s, &mut c, None);
    let r = request("optoro", "GET");
    for i in 0..3 {
        assert!(check(Some(&s), &mut c, Some(&mut e), &r, NOW + i).is_ok());
    }
    let refused = check(Some(&s), &mut c, Some(&mut e), &r, NOW + 10 * MINUTE_MS);
    assert_eq!(refused, Err(Refusal::Total { limit: 3 }));
    let err = refused.unwrap_err().to_gateway_error("optoro");
    assert_eq!(err.status(), 429);
    assert!(
        err.headers().is_empty(),
        "no Retry-After: waiting does not help"
    );
}

#[test]
fn introspection_answers_rfc_7662_for_a_live_token() {
    let s = state(record(&["optoro", "introspect"], Limits::default(), &[]));
    let mut c = Counters::default();
    let e = issue(&s, &mut c, None);
    assert_eq!(
        introspect(Some(&s), Some(&e), NOW + 5),
        json!({"active": true, "client_id": s.record.client_id, "scope": "optoro introspect",
               "exp": (NOW + 3_600_000) / 1000, "iat": NOW / 1000, "token_type": "Bearer"})
    );
    assert_eq!(introspect(Some(&s), None, NOW), json!({"active": false}));
    assert_eq!(introspect(None, Some(&e), NOW), json!({"active": false}));
    assert_eq!(
        introspect(Some(&s), Some(&e), NOW + 3_600_000),
        json!({"active": false})
    );
    let listed = e.to_public(&s.record.client_id);
    let public = listed["id"].as_str().unwrap();
    assert_eq!(
        split_public_token_id(public),
        Some((s.record.client_id.as_str(), e.id.as_str()))
    );
    assert_eq!(split_public_token_id("cl_x.abc"), None);
    assert_eq!(split_public_token_id(&format!(".{}", e.id)), None);
    assert_eq!(listed["requests"], 0);
    assert_eq!(listed.as_object().unwrap().len(), 6);
}

#[test]
fn token_ids_do_not_reveal_the_token_hash() {
    let h: [u8; 32] = Sha256::digest(b"tgt_token").into();
    let id = token_id(&h);
    assert_eq!(id.len(), 32);
    assert!(!hex::encode(h).contains(&id));
    assert_ne!(token_id(&[0; 32]), token_id(&[1; 32]));
    assert_eq!(token_key(&id), format!("token:{id}"));
}

#[test]
fn static_callers_issuance_window() {
    let mut c = Counters::default();
    for _ in 0..3 {
        assert!(count_issue(&mut c, 3, NOW).is_ok());
    }
    assert_eq!(count_issue(&mut c, 3, NOW + 500), Err(59_500));
    assert!(count_issue(&mut c, 3, NOW + MINUTE_MS).is_ok());
}

#[test]
fn narrowing_the_caller_narrows_tokens_it_already_holds() {
    let mut s = state(record(&["optoro", "partner"], Limits::default(), &[]));
    let mut c = Counters::default();
    let mut e = issue(&s, &mut c, None);
    let post = |p: &str| request(p, "POST");
    assert_eq!(
        check(Some(&s), &mut c, Some(&mut e), &post("partner"), NOW + 1),
        Ok(())
    );
    // The token still names `partner`; the caller no longer holds it, or holds it read-only.
    s.record.scopes = vec!["optoro".parse().unwrap(), "partner:read".parse().unwrap()];
    assert_eq!(
        check(Some(&s), &mut c, Some(&mut e), &post("partner"), NOW + 2),
        Err(Refusal::InsufficientScope)
    );
    assert_eq!(
        check(
            Some(&s),
            &mut c,
            Some(&mut e),
            &request("partner", "GET"),
            NOW + 3
        ),
        Ok(())
    );
    assert_eq!(
        check(Some(&s), &mut c, Some(&mut e), &post("optoro"), NOW + 4),
        Ok(())
    );
}

#[test]
fn introspection_reports_what_a_token_still_allows_after_its_caller_is_narrowed() {
    let mut s = state(record(&["optoro", "partner:read"], Limits::default(), &[]));
    let mut c = Counters::default();
    let e = issue(&s, &mut c, None);
    assert_eq!(
        introspect(Some(&s), Some(&e), NOW)["scope"],
        "optoro partner:read"
    );
    s.record.scopes = vec!["optoro:read".into()];
    assert_eq!(introspect(Some(&s), Some(&e), NOW)["scope"], "optoro:read");
    s.record.scopes = vec!["optoro".into(), "partner".into()];
    assert_eq!(
        introspect(Some(&s), Some(&e), NOW)["scope"],
        "optoro partner:read"
    );
}
