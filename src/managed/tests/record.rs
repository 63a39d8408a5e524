//! Records: JSON (public and storage), addresses, patches.

use super::*;
use serde_json::json;

const CREATED: u64 = 1_700_000_000;

fn record() -> ClientRecord {
    NewClient {
        name: "billing".into(),
        scopes: vec!["optoro".into(), "partner:read".into(), "introspect".into()],
        token_ttl_s: 900,
        limits: Limits {
            requests_per_minute: Some(120),
            total_requests: None,
        },
        ip_allowlist: vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8::/32").unwrap(),
        ],
        disabled: false,
    }
    .into_record("cl_1".into(), CREATED)
}

#[test]
fn record_json_is_exactly_the_public_record() {
    let r = record();
    assert_eq!(
        r.to_json(),
        json!({
            "client_id": "cl_1",
            "name": "billing",
            "scopes": ["optoro", "partner:read", "introspect"],
            "token_ttl_s": 900,
            "limits": {"requests_per_minute": 120, "total_requests": null},
            "ip_allowlist": ["10.0.0.0/8", "2001:db8::/32"],
            "disabled": false,
            "created_at": CREATED,
            "updated_at": CREATED,
        })
    );
}

#[test]
fn record_json_round_trip() {
    let mut all_set = record();
    all_set.limits.total_requests = Some(1_000_000_000_000);
    all_set.disabled = true;
    all_set.updated_at = CREATED + 5;
    let mut none_set = record();
    none_set.limits = Limits::default();
    none_set.ip_allowlist = vec![];
    for r in [record(), all_set, none_set] {
        let v = r.to_json();
        assert_eq!(ClientRecord::from_json(&v), Some(r.clone()));
        // Through text, as storage keeps it.
        let text = v.to_string();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ClientRecord::from_json(&back), Some(r));
    }
}

#[test]
fn record_from_json_refuses_a_broken_record() {
    let good = record().to_json();
    for (key, value) in [
        ("client_id", json!(1)),
        ("name", json!(null)),
        ("scopes", json!("optoro")),
        ("scopes", json!([1])),
        ("token_ttl_s", json!(-1)),
        ("limits", json!(null)),
        ("limits", json!({"requests_per_minute": 5_000_000_000u64})),
        ("limits", json!({"total_requests": "5"})),
        ("ip_allowlist", json!(["10.0.0.0/33"])),
        ("disabled", json!("no")),
        ("created_at", json!(1.5)),
        ("updated_at", json!(null)),
    ] {
        let mut v = good.clone();
        v[key] = value;
        assert_eq!(ClientRecord::from_json(&v), None, "{key}: {}", v[key]);
    }
    for key in ["client_id", "scopes", "disabled", "updated_at"] {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(key);
        assert_eq!(ClientRecord::from_json(&v), None, "without {key}");
    }
    assert_eq!(ClientRecord::from_json(&json!([])), None);
}

#[test]
fn allows_address_with_an_allowlist() {
    let r = record(); // 10.0.0.0/8, 2001:db8::/32
    for ok in ["10.1.2.3", "2001:db8::5", "::ffff:10.9.9.9", " 10.0.0.1 "] {
        assert!(r.allows_address(Some(ok)), "{ok}");
    }
    for refused in ["11.0.0.1", "2001:db9::1", "::1"] {
        assert!(!r.allows_address(Some(refused)), "{refused}");
    }
    // An unknown address is refused when there is a list.
    for unknown in [
        None,
        Some(""),
        Some("not an ip"),
        Some("10.0.0.1:443"),
        Some("10.0.0.0/8"),
    ] {
        assert!(!r.allows_address(unknown), "{unknown:?}");
    }
}

#[test]
fn allows_address_with_an_empty_allowlist_allows_all() {
    let r = ClientRecord {
        ip_allowlist: vec![],
        ..record()
    };
    for address in [
        None,
        Some(""),
        Some("garbage"),
        Some("10.0.0.1"),
        Some("::1"),
    ] {
        assert!(r.allows_address(address), "{address:?}");
    }
}

#[test]
fn into_record_sets_both_times() {
    let r = record();
    assert_eq!((r.created_at, r.updated_at), (CREATED, CREATED));
    assert_eq!(r.client_id, "cl_1");
}

#[test]
fn apply_replaces_given_fields_and_merges_limits() {
    let mut r = record(); // limits: 120/min, no total
    r.apply(
        &ClientPatch {
            name: Some("billing-2".into()),
            limits: Some(LimitsPatch {
                requests_per_minute: None,
                total_requests: Some(Some(5_000)),
            }),
            ..ClientPatch::default()
        },
        CREATED + 10,
    );
    assert_eq!(r.name, "billing-2");
    assert_eq!(
        r.limits,
        Limits {
            requests_per_minute: Some(120),
            total_requests: Some(5_000),
        }
    );
    assert_eq!(r.scopes, record().scopes);
    assert_eq!(r.ip_allowlist, record().ip_allowlist);
    assert_eq!((r.created_at, r.updated_at), (CREATED, CREATED + 10));
    // null removes one limit and keeps the other.
    r.apply(
        &ClientPatch {
            limits: Some(LimitsPatch {
                requests_per_minute: Some(None),
                total_requests: None,
            }),
            ..ClientPatch::default()
        },
        CREATED + 20,
    );
    assert_eq!(
        r.limits,
        Limits {
            requests_per_minute: None,
            total_requests: Some(5_000),
        }
    );
    r.apply(
        &ClientPatch {
            scopes: Some(vec!["optimum".into()]),
            token_ttl_s: Some(60),
            ip_allowlist: Some(vec![]),
            disabled: Some(true),
            ..ClientPatch::default()
        },
        CREATED + 30,
    );
    assert_eq!(r.scopes, ["optimum"]);
    assert_eq!(r.token_ttl_s, 60);
    assert!(r.ip_allowlist.is_empty());
    assert!(r.disabled);
    assert_eq!(r.updated_at, CREATED + 30);
    // An empty patch changes nothing but the time.
    let before = r.clone();
    r.apply(&ClientPatch::default(), CREATED + 40);
    assert_eq!(
        r,
        ClientRecord {
            updated_at: CREATED + 40,
            ..before
        }
    );
}

#[test]
fn narrows_or_disables_table() {
    let limits = |rpm: Option<Option<u32>>, total: Option<Option<u64>>| {
        Some(LimitsPatch {
            requests_per_minute: rpm,
            total_requests: total,
        })
    };
    let cidr = Cidr::parse("10.0.0.0/8").unwrap();
    let cases = [
        (ClientPatch::default(), false),
        (
            ClientPatch {
                name: Some("n".into()),
                ..ClientPatch::default()
            },
            false,
        ),
        (
            ClientPatch {
                disabled: Some(false),
                ..ClientPatch::default()
            },
            false,
        ),
        (
            ClientPatch {
                disabled: Some(true),
                ..ClientPatch::default()
            },
            true,
        ),
        (
            ClientPatch {
                scopes: Some(vec!["optoro".into()]),
                ..ClientPatch::default()
            },
            true,
        ),
        (
            ClientPatch {
                token_ttl_s: Some(600),
                ..ClientPatch::default()
            },
            true,
        ),
        (
            ClientPatch {
                ip_allowlist: Some(vec![]),
                ..ClientPatch::default()
            },
            false,
        ),
        (
            ClientPatch {
                ip_allowlist: Some(vec![cidr]),
                ..ClientPatch::default()
            },
            true,
        ),
        (
            ClientPatch {
                limits: limits(Some(None), Some(None)),
                ..ClientPatch::default()
            },
            false,
        ),
        (
            ClientPatch {
                limits: limits(None, Some(Some(10))),
                ..ClientPatch::default()
            },
            true,
        ),
        (
            ClientPatch {
                limits: limits(Some(Some(10)), None),
                ..ClientPatch::default()
            },
            true,
        ),
    ];
    for (patch, expected) in cases {
        assert_eq!(patch.narrows_or_disables(), expected, "{patch:?}");
    }
}
