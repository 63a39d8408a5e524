//! Issued tokens: format and tag, sealed records, and every way a token stops being good.

use super::*;
use crate::callers::tests::{keys, registry, registry_json};

const NOW: u64 = 1_700_000_000_123;

fn caller_a() -> Caller {
    registry().get("svc-a").unwrap().clone() // optoro, partner; 600 s
}

fn issue(random: [u8; 32], at: u64) -> (IssuedToken, CallerTokenRecord) {
    issue_token(&caller_a(), None, random, at, &keys()).unwrap()
}

fn providers() -> BTreeMap<String, u8> {
    [
        ("optoro".to_string(), 1),
        ("partner".to_string(), 2),
        ("optimum".to_string(), 3),
    ]
    .into()
}

#[test]
fn issue_token_shape_and_record() {
    let random: [u8; 32] = std::array::from_fn(|i| i as u8);
    let (issued, record) = issue(random, NOW);
    // A caller token of crate::credentials, bound to no managed client: tgt_, the 32 random
    // bytes (44 base62 characters), the tag (22) and the checksum (6).
    assert_eq!(
        issued.access_token,
        credentials::issue(Kind::Token, None, random, &keys())
    );
    let rest = issued.access_token.strip_prefix(TOKEN_PREFIX).unwrap();
    assert_eq!((TOKEN_PREFIX, rest.len()), ("tgt_", 72));
    // The first 44 characters carry only the random bytes.
    assert!(rest.starts_with("000SYW7RiJxkEgOGusQGwp0UJg4EBGO3cQWJhXqJNbv5"));
    assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        credentials::check(&issued.access_token, Kind::Token, &keys()),
        Ok(credentials::Checked { client: None })
    );
    assert_eq!(
        (issued.token_type, issued.expires_in, issued.scope.as_str()),
        ("Bearer", 600, "optoro partner")
    );
    assert_eq!(issued.created_at, NOW / 1000);
    assert_eq!(
        record,
        CallerTokenRecord {
            client_id: "svc-a".into(),
            registration: caller_a().registration,
            scopes: vec!["optoro".into(), "partner".into()],
            issued_at_ms: NOW,
            expires_at_ms: NOW + 600_000,
        }
    );
    // Optoro's 200 schema (docs/providers.md#optoro-token-response), exactly.
    let v = issued.to_json();
    let mut names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "access_token",
            "created_at",
            "expires_in",
            "scope",
            "token_type"
        ]
    );
    assert_eq!(v, serde_json::to_value(&issued).unwrap());
}

#[test]
fn issue_token_scope_narrowing() {
    let c = caller_a();
    let req = vec!["partner".to_string()];
    let (issued, record) = issue_token(&c, Some(&req), [1; 32], NOW, &keys()).unwrap();
    assert_eq!(issued.scope, "partner");
    assert_eq!(record.scopes, ["partner"]);
    // An empty request means "everything granted".
    let (issued, _) = issue_token(&c, Some(&[]), [1; 32], NOW, &keys()).unwrap();
    assert_eq!(issued.scope, "optoro partner");
    let bad = vec!["optimum".to_string()];
    let e = issue_token(&c, Some(&bad), [1; 32], NOW, &keys()).unwrap_err();
    assert_eq!(e.body()["error"], "invalid_scope");
}

/// A caller granted `optoro` may ask for a token that only reads it; asking for a scope its
/// scopes do not cover, or for what is not a scope, is `invalid_scope` naming it.
#[test]
fn issue_token_narrows_to_read_only() {
    let c = caller_a(); // optoro, partner
    let req = vec!["optoro:read".to_string(), "partner".to_string()];
    let (issued, record) = issue_token(&c, Some(&req), [1; 32], NOW, &keys()).unwrap();
    assert_eq!(issued.scope, "optoro:read partner");
    assert_eq!(record.scopes, ["optoro:read", "partner"]);
    for bad in ["optimum:read", "introspect", "optoro:write", "Optoro"] {
        let req = vec!["optoro".to_string(), bad.to_string()];
        let e = issue_token(&c, Some(&req), [1; 32], NOW, &keys()).unwrap_err();
        assert_eq!(
            e,
            GrantError::OAuth(
                "invalid_scope",
                format!("scope `{bad}` is not granted to this client")
            ),
            "{bad}"
        );
    }
}

#[test]
fn only_tokens_with_this_deployments_tag_verify() {
    let (issued, _) = issue([9; 32], NOW);
    let token = issued.access_token.as_str();
    assert!(verify_tag(token, &keys()));
    // Another deployment key: another tag.
    assert!(!verify_tag(token, &Keys::derive(&[4; 32])));
    // Any change of the random part, the tag or the checksum (see crate::credentials' tests
    // for every typo).
    let mut flipped = token.to_string().into_bytes();
    for i in [4, 20, 50, 71, 75] {
        let c = flipped[i];
        flipped[i] = if c == b'1' { b'2' } else { b'1' };
        assert!(
            !verify_tag(std::str::from_utf8(&flipped).unwrap(), &keys()),
            "{i}"
        );
        flipped[i] = c;
    }
    // A well-formed token (right checksum) that this deployment did not issue.
    let mut made_up = token[..48].to_string();
    made_up.push_str(&"1".repeat(22));
    let crc = base62_crc32(&made_up);
    made_up.push_str(&crc);
    assert_eq!(
        credentials::check(&made_up, Kind::Token, &keys()),
        Err(credentials::Refused::Tag)
    );
    assert!(!verify_tag(&made_up, &keys()));
    // A client secret, and a token bound to a managed client: not a static caller's token.
    let secret = credentials::issue(Kind::Secret, None, [9; 32], &keys());
    let client = credentials::client_id([2; 16]);
    let bound = credentials::issue(Kind::Token, Some(&client), [9; 32], &keys());
    assert!(credentials::check(&bound, Kind::Token, &keys()).is_ok());
    for bad in [
        "",
        "tgt_",
        "tg_",
        &token[..token.len() - 1],
        &format!("{token}A"),
        &token.replacen("tgt_", "tgs_", 1),
        &token.replacen("tgt_", "tg_", 1),
        &format!("tgt_{}", "0".repeat(72)),
        &format!("tgt_{}", "!".repeat(72)),
        &secret,
        &bound,
        // The legacy format's shape with a made-up tag, and the format before it: 43
        // characters, no tag.
        &format!("tg_{}", "A".repeat(64)),
        &format!("tg_{}", "!".repeat(64)),
        "tg_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    ] {
        assert!(!verify_tag(bad, &keys()), "{bad}");
    }
}

/// The base62 CRC-32 of `s`, as crate::credentials appends it (6 digits), computed here by
/// hand so the test does not lean on the code under test.
fn base62_crc32(s: &str) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut v = crc32fast::hash(s.as_bytes());
    let mut out = [b'0'; 6];
    for d in out.iter_mut().rev() {
        *d = DIGITS[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

/// Tokens issued before the credentials format (`tg_`, base64url of random ‖ tag) still verify
/// until they expire; an altered one does not.
#[test]
fn legacy_tokens_still_verify() {
    // Issued by the previous issue_token for Keys::derive(&[3; 32]) (callers::tests::keys) and
    // random [9; 32]; recomputed independently with Python's hmac and base64.
    let legacy = "tg_CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkgIqZN0IZJhg22fXKzAlmu";
    assert!(legacy.starts_with(LEGACY_TOKEN_PREFIX));
    assert!(verify_tag(legacy, &keys()));
    assert!(!verify_tag(legacy, &Keys::derive(&[4; 32])));
    let mut flipped = legacy.to_string().into_bytes();
    for i in [3, 20, 46, 66] {
        let c = flipped[i];
        flipped[i] = if c == b'A' { b'B' } else { b'A' };
        assert!(
            !verify_tag(std::str::from_utf8(&flipped).unwrap(), &keys()),
            "{i}"
        );
        flipped[i] = c;
    }
    // Its record is found the same way: by the token's SHA-256.
    assert!(caller_token_key(legacy).starts_with(CALLER_TOKEN_PREFIX));
}

#[test]
fn caller_token_key_is_sha256_hex() {
    // `printf tg_abc | sha256sum`
    let k = caller_token_key("tg_abc");
    assert_eq!(
        k,
        "tg:v2:ctok:7af245a637190511429eebe49c47109f76108599b036ee9e51d082cc877ed3d5"
    );
    assert!(!k.contains("abc"));
}

#[test]
fn records_are_sealed_and_bound_to_their_key() {
    let (issued, record) = issue([5; 32], NOW);
    let key = caller_token_key(&issued.access_token);
    let sealed = seal_record(&record, &key, &keys(), [1; 12]);
    assert!(!sealed.contains("svc-a") && !sealed.contains("optoro"));
    assert_eq!(open_record(&sealed, &key, &keys()), Some(record.clone()));
    // Under another token's key, under another deployment key, altered, or in clear: nothing.
    let (other, _) = issue([6; 32], NOW);
    assert_eq!(
        open_record(&sealed, &caller_token_key(&other.access_token), &keys()),
        None
    );
    assert_eq!(open_record(&sealed, &key, &Keys::derive(&[4; 32])), None);
    let mut altered = sealed.clone().into_bytes();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        open_record(std::str::from_utf8(&altered).unwrap(), &key, &keys()),
        None
    );
    let clear = json!({
        "client_id": record.client_id, "registration": record.registration,
        "scopes": record.scopes, "issued_at_ms": record.issued_at_ms,
        "expires_at_ms": record.expires_at_ms,
    })
    .to_string();
    assert_eq!(open_record(&clear, &key, &keys()), None);
    // What the seal holds is that JSON document (a store filled by an earlier release opens).
    let plain = keys().seal().open(key.as_bytes(), &sealed).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&plain).unwrap(),
        serde_json::from_str::<serde_json::Value>(&clear).unwrap()
    );
    let resealed = keys()
        .seal()
        .seal([9; 12], key.as_bytes(), clear.as_bytes());
    assert_eq!(open_record(&resealed, &key, &keys()), Some(record.clone()));
}

#[test]
fn parse_bearer_cases() {
    assert_eq!(parse_bearer(Some("Bearer abc")), Some("abc"));
    assert_eq!(parse_bearer(Some("bearer  abc ")), Some("abc"));
    assert_eq!(parse_bearer(Some("Basic abc")), None);
    assert_eq!(parse_bearer(Some("Bearer")), None);
    assert_eq!(parse_bearer(Some("Bearer a b")), None);
    assert_eq!(parse_bearer(None), None);
}

#[test]
fn authorize_checks_registration_provider_and_both_scopes() {
    let reg = registry();
    let ledger = CallerLedger::default();
    let record = |scopes: &[&str]| CallerTokenRecord {
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..issue([1; 32], NOW).1
    };
    let p = providers();
    let both = record(&["optoro", "partner"]);
    assert_eq!(
        authorize(&reg, &ledger, &both, NOW, "partner", "POST", &p),
        Ok(&2)
    );
    // A caller no longer registered: 401, before anything else is looked at.
    let gone = CallerTokenRecord {
        client_id: "gone".into(),
        ..both.clone()
    };
    assert_eq!(
        authorize(&reg, &ledger, &gone, NOW, "nope", "POST", &p),
        Err(GatewayError::InvalidToken(
            "the client is no longer registered"
        ))
    );
    // An unknown provider: 404.
    assert_eq!(
        authorize(&reg, &ledger, &both, NOW, "nope", "POST", &p),
        Err(GatewayError::NotFound("unknown provider `nope`".into()))
    );
    let denied = |provider: &str| {
        Err(GatewayError::InsufficientScope {
            provider: provider.into(),
        })
    };
    // Registered for partner, but the token was narrowed to optoro at issue: 403.
    let narrow = record(&["optoro"]);
    assert_eq!(
        authorize(&reg, &ledger, &narrow, NOW, "partner", "POST", &p),
        denied("partner")
    );
    // The token names optimum, but the registration does not (any more): 403.
    let stale = record(&["optoro", "optimum"]);
    assert_eq!(
        authorize(&reg, &ledger, &stale, NOW, "optimum", "POST", &p),
        denied("optimum")
    );
    assert_eq!(
        authorize(&reg, &ledger, &stale, NOW, "optoro", "POST", &p),
        Ok(&1)
    );
}

/// A `<provider>:read` scope, on the token or on the caller's current registration, permits
/// GET, HEAD and OPTIONS (any case) and refuses every other method with 403.
#[test]
fn authorize_read_scope_refuses_writes() {
    let ledger = CallerLedger::default();
    let p = providers();
    let denied = Err(GatewayError::InsufficientScope {
        provider: "optoro".into(),
    });
    // The token was narrowed to optoro:read; the caller holds optoro.
    let reg = registry();
    let (_, record) = issue_token(
        &caller_a(),
        Some(&["optoro:read".to_string()]),
        [1; 32],
        NOW,
        &keys(),
    )
    .unwrap();
    for method in ["GET", "HEAD", "OPTIONS", "get", "head", "options"] {
        assert_eq!(
            authorize(&reg, &ledger, &record, NOW, "optoro", method, &p),
            Ok(&1),
            "{method}"
        );
    }
    for method in ["POST", "PUT", "PATCH", "DELETE", "post"] {
        assert_eq!(
            authorize(&reg, &ledger, &record, NOW, "optoro", method, &p),
            denied,
            "{method}"
        );
    }
    // The token holds optoro, but the caller has since been narrowed to optoro:read.
    let (_, full) = issue([1; 32], NOW);
    let json = registry_json().replace(r#"["optoro", "partner"]"#, r#"["optoro:read"]"#);
    let narrowed = CallerRegistry::parse("C", &json, &keys()).unwrap();
    assert_eq!(
        authorize(&narrowed, &ledger, &full, NOW, "optoro", "GET", &p),
        Ok(&1)
    );
    assert_eq!(
        authorize(&narrowed, &ledger, &full, NOW, "optoro", "POST", &p),
        denied
    );
    // introspect reaches no provider.
    let introspect = CallerTokenRecord {
        scopes: vec!["introspect".into()],
        ..full
    };
    assert_eq!(
        authorize(&reg, &ledger, &introspect, NOW, "optoro", "GET", &p),
        denied
    );
}

#[test]
fn a_token_stops_being_good() {
    let reg = registry();
    let empty = CallerLedger::default();
    let (_, record) = issue([1; 32], NOW); // 600 s
    let check = |reg: &CallerRegistry, ledger: &CallerLedger, r: &CallerTokenRecord, at: u64| {
        check_record(reg, ledger, r, at).map(|c| c.client_id.clone())
    };
    assert_eq!(check(&reg, &empty, &record, NOW), Ok("svc-a".into()));
    assert!(check(&reg, &empty, &record, NOW + 599_999).is_ok());
    // At its expiry.
    assert_eq!(
        check(&reg, &empty, &record, NOW + 600_000),
        Err(GatewayError::InvalidToken(
            "the token is unknown or expired"
        ))
    );
    // A clock slightly behind the issuing isolate's is no reason to refuse.
    assert!(check(&reg, &empty, &record, NOW - 50).is_ok());
    // The caller's secret rotated: every earlier token is revoked.
    let rotated = CallerTokenRecord {
        registration: "0".repeat(32),
        ..record.clone()
    };
    assert_eq!(
        check(&reg, &empty, &rotated, NOW),
        Err(GatewayError::InvalidToken(
            "the client's secret has changed since the token was issued"
        ))
    );
    // A record claiming a longer life than the caller's token_ttl_s allows: capped.
    let extended = CallerTokenRecord {
        expires_at_ms: NOW + 86_400_000,
        ..record.clone()
    };
    assert!(check(&reg, &empty, &extended, NOW + 599_999).is_ok());
    assert!(check(&reg, &empty, &extended, NOW + 600_000).is_err());
}

#[test]
fn the_ledger_remembers_removals() {
    let reg = registry(); // svc-a, svc-b
    let without_a = {
        let json = r#"{"svc-b": {"secret_sha256": "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB", "scopes": ["optimum"]}}"#;
        CallerRegistry::parse("C", json, &keys()).unwrap()
    };
    // First load: both callers, nothing removed; written once, then stable.
    let (l1, changed) = CallerLedger::default().reconcile(&reg, NOW);
    assert!(changed);
    assert_eq!(l1.removed_at("svc-a"), None);
    assert_eq!(l1.reconcile(&reg, NOW + 5), (l1.clone(), false));
    // A token issued now is good.
    let (_, record) = issue([1; 32], NOW + 10);
    assert!(check_record(&reg, &l1, &record, NOW + 20).is_ok());
    // A configuration without svc-a is loaded: its removal is remembered (once).
    let (l2, changed) = l1.reconcile(&without_a, NOW + 100);
    assert!(changed);
    assert_eq!(l2.removed_at("svc-a"), Some(NOW + 100));
    assert_eq!(l2.reconcile(&without_a, NOW + 200), (l2.clone(), false));
    // svc-a is added back with the same secret: its earlier token stays revoked, new ones work.
    let (l3, changed) = l2.reconcile(&reg, NOW + 300);
    assert!(changed);
    assert_eq!(l3.removed_at("svc-a"), Some(NOW + 100));
    assert_eq!(
        check_record(&reg, &l3, &record, NOW + 310),
        Err(GatewayError::InvalidToken(
            "the client was removed after the token was issued"
        ))
    );
    let (_, fresh) = issue([2; 32], NOW + 301);
    assert!(check_record(&reg, &l3, &fresh, NOW + 310).is_ok());
    // Once every token it could have issued has expired, the removal is forgotten.
    let later = NOW + 100 + MAX_TOKEN_LIFE_MS + 1;
    let (l4, _) = l3.reconcile(&reg, later);
    assert_eq!(l4.removed_at("svc-a"), None);
    let (l5, _) = l2.reconcile(&without_a, later);
    assert_eq!(l5.removed_at("svc-a"), None, "dropped while absent too");
    // The stored document round-trips; its shape: l3 holds svc-a removed and present again,
    // svc-b present.
    let text = l3.to_json();
    assert_eq!(CallerLedger::from_json(&text), Some(l3.clone()));
    assert_eq!(CallerLedger::from_json("{}"), None);
    let doc: Value = serde_json::from_str(&text).unwrap();
    let a = &doc["callers"]["svc-a"];
    assert_eq!(a["present"], true);
    assert!(a["removed_at_ms"].is_u64(), "{doc}");
    assert!(a["registration"].is_string(), "{doc}");
    assert!(
        doc["callers"]["svc-b"].get("removed_at_ms").is_none(),
        "{doc}"
    );
    for bad in [
        r#"{"callers": []}"#,
        r#"{"callers": {"x": {"registration": "r", "present": "yes"}}}"#,
        r#"{"callers": {"x": {"registration": 1, "present": true}}}"#,
        r#"{"callers": {"x": {"registration": "r", "present": true, "removed_at_ms": -5}}}"#,
    ] {
        assert_eq!(CallerLedger::from_json(bad), None, "{bad}");
    }
}
