//! The admin API's bodies, query and errors: every field's bad values name that field.

use super::*;
use serde_json::{json, Value};

fn new_client(body: &Value) -> Result<NewClient, AdminError> {
    parse_new_client(body.to_string().as_bytes(), is_provider)
}

fn patch(body: &Value) -> Result<ClientPatch, AdminError> {
    parse_patch(body.to_string().as_bytes(), is_provider)
}

/// A minimal valid `POST` body with `extra` members set.
fn body(extra: Value) -> Value {
    let mut v = json!({"name": "billing", "scopes": ["optoro"]});
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

/// Asserts `e` is a 422 naming `field`, its description starting with the field.
fn assert_field(e: &AdminError, field: &str, context: &str) {
    assert_eq!(
        (e.status, e.code, e.field.as_deref()),
        (422, "invalid_request", Some(field)),
        "{context}: {e:?}"
    );
    assert!(
        e.description.starts_with(&format!("{field}: ")),
        "{context}: {e:?}"
    );
    assert_eq!(e.body()["field"], field, "{context}");
}

#[test]
fn admin_error_shapes() {
    let e = AdminError::malformed("the body must be a JSON object");
    assert_eq!(
        (e.status, e.code, e.field.clone()),
        (400, "invalid_request", None)
    );
    assert_eq!(
        e.body(),
        json!({"error": "invalid_request", "error_description": "the body must be a JSON object"})
    );
    let e = AdminError::invalid("scopes[1]", "must be a string");
    assert_eq!((e.status, e.code), (422, "invalid_request"));
    assert_eq!(e.description, "scopes[1]: must be a string");
    assert_eq!(e.to_string(), "scopes[1]: must be a string");
    assert_eq!(
        e.body(),
        json!({
            "error": "invalid_request",
            "error_description": "scopes[1]: must be a string",
            "field": "scopes[1]",
        })
    );
    let e = AdminError::not_found("no client `x`");
    assert_eq!((e.status, e.code), (404, "not_found"));
    assert_eq!(
        e.body(),
        json!({"error": "not_found", "error_description": "no client `x`"})
    );
}

#[test]
fn new_client_minimal_takes_the_defaults() {
    let c = new_client(&body(json!({}))).unwrap();
    assert_eq!(
        c,
        NewClient {
            name: "billing".into(),
            scopes: vec!["optoro".into()],
            token_ttl_s: 3600,
            limits: Limits::default(),
            ip_allowlist: vec![],
            disabled: false,
        }
    );
    // Optional members given as null are their defaults.
    let nulls = body(json!({
        "token_ttl_s": null, "limits": null, "ip_allowlist": null, "disabled": null
    }));
    assert_eq!(new_client(&nulls).unwrap(), c);
    assert_eq!(
        new_client(&body(json!({"limits": {}}))).unwrap().limits,
        Limits::default()
    );
}

#[test]
fn new_client_every_member() {
    let c = new_client(&json!({
        "name": "Billing — Ünïcode",
        "scopes": ["optoro", "partner:read", "introspect", "optoro:read"],
        "token_ttl_s": 86400,
        "limits": {"requests_per_minute": 100000, "total_requests": 1_000_000_000_000u64},
        "ip_allowlist": ["10.0.0.0/8", "192.0.2.7", "2001:DB8::/32", "::ffff:1.2.3.0/120"],
        "disabled": true,
    }))
    .unwrap();
    assert_eq!(c.name, "Billing — Ünïcode");
    assert_eq!(
        c.scopes,
        ["optoro", "partner:read", "introspect", "optoro:read"]
    );
    assert_eq!(c.token_ttl_s, 86400);
    assert_eq!(
        c.limits,
        Limits {
            requests_per_minute: Some(100_000),
            total_requests: Some(1_000_000_000_000),
        }
    );
    let list: Vec<String> = c.ip_allowlist.iter().map(ToString::to_string).collect();
    assert_eq!(
        list,
        ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "1.2.3.0/24"]
    );
    assert!(c.disabled);
    let r = c.into_record("cl_9".into(), 7);
    assert_eq!(r.to_json()["ip_allowlist"][2], "2001:db8::/32");
}

#[test]
fn a_body_that_is_not_a_json_object_is_400() {
    for bad in [
        &b"not json"[..],
        b"",
        b"[]",
        b"\"name\"",
        b"null",
        b"{\"name\": \"a\",}",
        b"{\"name\": \"\xff\"}",
    ] {
        for e in [
            parse_new_client(bad, is_provider).unwrap_err(),
            parse_patch(bad, is_provider).unwrap_err(),
        ] {
            assert_eq!(
                (e.status, e.code, e.field.clone()),
                (400, "invalid_request", None),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(e.description, "the body must be a JSON object");
        }
    }
}

#[test]
fn a_repeated_member_is_400() {
    let repeated = br#"{"name": "a", "scopes": ["optoro"], "name": "b"}"#;
    for e in [
        parse_new_client(repeated, is_provider).unwrap_err(),
        parse_patch(repeated, is_provider).unwrap_err(),
    ] {
        assert_eq!(e.status, 400);
        assert_eq!(e.description, "member `name` is repeated");
    }
}

#[test]
fn an_unknown_member_is_422_naming_it() {
    for (extra, field) in [
        (json!({"client_id": "x"}), "client_id"),
        (json!({"created_at": 1}), "created_at"),
        (json!({"Name": "x"}), "Name"),
        (json!({"secret": "s"}), "secret"),
    ] {
        let e = new_client(&body(extra.clone())).unwrap_err();
        assert_field(&e, field, &extra.to_string());
        let e = patch(&extra).unwrap_err();
        assert_field(&e, field, &extra.to_string());
    }
    let e = new_client(&body(json!({"limits": {"per_hour": 5}}))).unwrap_err();
    assert_field(&e, "limits.per_hour", "limits member");
}

#[test]
fn new_client_requires_name_and_scopes() {
    let e = new_client(&json!({"scopes": ["optoro"]})).unwrap_err();
    assert_field(&e, "name", "no name");
    assert_eq!(e.description, "name: is required");
    let e = new_client(&json!({"name": "a"})).unwrap_err();
    assert_field(&e, "scopes", "no scopes");
    // Presence is checked before values.
    let e = new_client(&json!({"name": 5})).unwrap_err();
    assert_field(&e, "scopes", "no scopes, bad name");
}

/// Each member's bad values, in a `POST` and a `PATCH` alike, name that member (or item).
#[test]
fn every_fields_bad_values_name_the_field() {
    let long = "x".repeat(201);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": ""}), "name"),
        (json!({"name": long}), "name"),
        (json!({"name": "a\nb"}), "name"),
        (json!({"name": "a\u{7f}"}), "name"),
        (json!({"name": "\u{0}"}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": ["a"]}), "name"),
        (json!({"scopes": []}), "scopes"),
        (json!({"scopes": "optoro"}), "scopes"),
        (json!({"scopes": {"0": "optoro"}}), "scopes"),
        (json!({"scopes": vec!["optoro"; 65]}), "scopes"),
        (json!({"scopes": [1]}), "scopes[0]"),
        (json!({"scopes": ["optoro", null]}), "scopes[1]"),
        (json!({"scopes": ["optoro", "Partner"]}), "scopes[1]"),
        (json!({"scopes": ["optoro", "partner:write"]}), "scopes[1]"),
        (
            json!({"scopes": ["optoro", "introspect:read"]}),
            "scopes[1]",
        ),
        (json!({"scopes": ["optoro", "oauth"]}), "scopes[1]"),
        (json!({"scopes": ["optoro", "nope"]}), "scopes[1]"),
        (
            json!({"scopes": ["optoro", "partner", "nope:read"]}),
            "scopes[2]",
        ),
        (
            json!({"scopes": ["optoro", "partner", "optoro"]}),
            "scopes[2]",
        ),
        (json!({"token_ttl_s": 59}), "token_ttl_s"),
        (json!({"token_ttl_s": 86401}), "token_ttl_s"),
        (json!({"token_ttl_s": 0}), "token_ttl_s"),
        (json!({"token_ttl_s": -60}), "token_ttl_s"),
        (json!({"token_ttl_s": 600.5}), "token_ttl_s"),
        (json!({"token_ttl_s": 600.0}), "token_ttl_s"),
        (json!({"token_ttl_s": "600"}), "token_ttl_s"),
        (json!({"limits": 5}), "limits"),
        (json!({"limits": []}), "limits"),
        (
            json!({"limits": {"requests_per_minute": 0}}),
            "limits.requests_per_minute",
        ),
        (
            json!({"limits": {"requests_per_minute": 100001}}),
            "limits.requests_per_minute",
        ),
        (
            json!({"limits": {"requests_per_minute": 1.5}}),
            "limits.requests_per_minute",
        ),
        (
            json!({"limits": {"requests_per_minute": "5"}}),
            "limits.requests_per_minute",
        ),
        (
            json!({"limits": {"requests_per_minute": -1}}),
            "limits.requests_per_minute",
        ),
        (
            json!({"limits": {"total_requests": 0}}),
            "limits.total_requests",
        ),
        (
            json!({"limits": {"total_requests": 1_000_000_000_001u64}}),
            "limits.total_requests",
        ),
        (
            json!({"limits": {"total_requests": true}}),
            "limits.total_requests",
        ),
        (json!({"ip_allowlist": "10.0.0.0/8"}), "ip_allowlist"),
        (
            json!({"ip_allowlist": vec!["10.0.0.0/8"; 101]}),
            "ip_allowlist",
        ),
        (json!({"ip_allowlist": [10]}), "ip_allowlist[0]"),
        (
            json!({"ip_allowlist": ["10.0.0.0/8", "10.0.0.0/33"]}),
            "ip_allowlist[1]",
        ),
        (
            json!({"ip_allowlist": ["10.0.0.0/8", "::/129"]}),
            "ip_allowlist[1]",
        ),
        (
            json!({"ip_allowlist": ["10.0.0.0/8", "10.1.0.0/8"]}),
            "ip_allowlist[1]",
        ),
        (
            json!({"ip_allowlist": ["10.0.0.0/8", "example.com"]}),
            "ip_allowlist[1]",
        ),
        (
            json!({"ip_allowlist": ["10.0.0.0/8", "10.0.0.0/8"]}),
            "ip_allowlist[1]",
        ),
        (
            json!({"ip_allowlist": ["1.2.3.0/24", "::ffff:1.2.3.0/120"]}),
            "ip_allowlist[1]",
        ),
        (json!({"disabled": "true"}), "disabled"),
        (json!({"disabled": 0}), "disabled"),
    ];
    for (member, field) in cases {
        let e = new_client(&body(member.clone())).unwrap_err();
        assert_field(&e, field, &format!("POST {member}"));
        let e = patch(&member).unwrap_err();
        assert_field(&e, field, &format!("PATCH {member}"));
    }
}

#[test]
fn field_messages() {
    let e = new_client(&body(json!({"scopes": ["optoro", "nope:read"]}))).unwrap_err();
    assert_eq!(
        e.description,
        "scopes[1]: names no configured provider (`nope`)"
    );
    let e = new_client(&body(json!({"scopes": ["optoro", "optoro"]}))).unwrap_err();
    assert_eq!(e.description, "scopes[1]: repeats scopes[0]");
    let e = new_client(&body(json!({"ip_allowlist": ["10.1.2.3/8"]}))).unwrap_err();
    assert_eq!(
        e.description,
        "ip_allowlist[0]: has host bits set; the network is 10.0.0.0/8"
    );
    let e = new_client(&body(json!({"ip_allowlist": ["10.0.0.0/33"]}))).unwrap_err();
    assert_eq!(
        e.description,
        "ip_allowlist[0]: the prefix length must be from 0 to 32"
    );
    let e = new_client(&body(json!({"token_ttl_s": 10}))).unwrap_err();
    assert_eq!(
        e.description,
        "token_ttl_s: must be a whole number of seconds from 60 to 86400"
    );
}

#[test]
fn bounds_are_inclusive() {
    let name200: String = "é".repeat(200); // 400 bytes, 200 characters
    let c = new_client(&body(json!({
        "name": name200,
        "scopes": ["optoro", "optoro:read"],
        "token_ttl_s": 60,
        "limits": {"requests_per_minute": 1, "total_requests": 1},
        "ip_allowlist": vec!["10.0.0.0/8"; 1],
    })))
    .unwrap();
    assert_eq!(c.name.chars().count(), 200);
    assert_eq!(c.token_ttl_s, 60);
    assert_eq!(
        c.limits,
        Limits {
            requests_per_minute: Some(1),
            total_requests: Some(1),
        }
    );
    // 64 distinct scopes and 100 distinct networks are the most.
    let many = |n: usize| -> Vec<String> { (0..n).map(|i| format!("p{i}")).collect() };
    let any_provider = |_: &str| true;
    let sixty_four = json!({"name": "a", "scopes": many(64)}).to_string();
    assert_eq!(
        parse_new_client(sixty_four.as_bytes(), any_provider)
            .unwrap()
            .scopes
            .len(),
        64
    );
    let networks: Vec<String> = (0..100).map(|i| format!("10.0.{i}.0/24")).collect();
    let c = new_client(&body(json!({"ip_allowlist": networks}))).unwrap();
    assert_eq!(c.ip_allowlist.len(), 100);
}

#[test]
fn patch_members() {
    assert_eq!(
        patch(&json!({"name": "n"})).unwrap(),
        ClientPatch {
            name: Some("n".into()),
            ..ClientPatch::default()
        }
    );
    let p = patch(&json!({
        "scopes": ["partner:read"],
        "token_ttl_s": 120,
        "ip_allowlist": [],
        "disabled": true,
    }))
    .unwrap();
    assert_eq!(
        p,
        ClientPatch {
            scopes: Some(vec!["partner:read".into()]),
            token_ttl_s: Some(120),
            ip_allowlist: Some(vec![]),
            disabled: Some(true),
            ..ClientPatch::default()
        }
    );
}

#[test]
fn patch_needs_a_member() {
    let e = patch(&json!({})).unwrap_err();
    assert_eq!((e.status, e.code, e.field), (400, "invalid_request", None));
    assert!(e
        .description
        .starts_with("the body must set at least one of"));
}

#[test]
fn patch_null_is_422_but_for_limits() {
    for field in ["name", "scopes", "token_ttl_s", "ip_allowlist", "disabled"] {
        let e = patch(&json!({ field: null })).unwrap_err();
        assert_field(&e, field, field);
        assert_eq!(e.description, format!("{field}: cannot be null"));
    }
}

/// RFC 7396: a limit set to null is removed, a limit left out is kept, `limits: null` removes
/// both.
#[test]
fn patch_limits_merge() {
    let base = Limits {
        requests_per_minute: Some(60),
        total_requests: Some(1000),
    };
    let merged = |body: Value| {
        let p = patch(&body).unwrap();
        let mut r = NewClient {
            name: "a".into(),
            scopes: vec!["optoro".into()],
            token_ttl_s: 3600,
            limits: base.clone(),
            ip_allowlist: vec![],
            disabled: false,
        }
        .into_record("c".into(), 1);
        r.apply(&p, 2);
        r.limits
    };
    let limits = |rpm, total| Limits {
        requests_per_minute: rpm,
        total_requests: total,
    };
    assert_eq!(merged(json!({"limits": {}})), base);
    assert_eq!(
        merged(json!({"limits": {"requests_per_minute": 5}})),
        limits(Some(5), Some(1000))
    );
    assert_eq!(
        merged(json!({"limits": {"total_requests": null}})),
        limits(Some(60), None)
    );
    assert_eq!(
        merged(json!({"limits": {"requests_per_minute": null, "total_requests": 7}})),
        limits(None, Some(7))
    );
    assert_eq!(merged(json!({"limits": null})), limits(None, None));
    assert_eq!(merged(json!({"name": "b"})), base);
    assert_eq!(
        patch(&json!({"limits": {"total_requests": null}}))
            .unwrap()
            .limits,
        Some(LimitsPatch {
            requests_per_minute: None,
            total_requests: Some(None),
        })
    );
}

#[test]
fn page_query_defaults_and_bounds() {
    for q in [
        None,
        Some(""),
        Some("other=1"),
        Some("cursor="),
        Some("limit=50"),
    ] {
        assert_eq!(
            parse_page_query(q),
            Ok(PageQuery {
                after: None,
                limit: 50
            }),
            "{q:?}"
        );
    }
    for (q, limit) in [("limit=1", 1), ("limit=100", 100), ("limit=7&x=y", 7)] {
        assert_eq!(parse_page_query(Some(q)).unwrap().limit, limit, "{q}");
    }
    for q in [
        "limit=0",
        "limit=101",
        "limit=",
        "limit=-1",
        "limit=%2B5",
        "limit=5.0",
        "limit=ten",
        "limit=99999999999999999999999",
        "limit=5&limit=6",
    ] {
        let e = parse_page_query(Some(q)).unwrap_err();
        assert_field(&e, "limit", q);
    }
    for q in [
        "cursor=***",
        "cursor=_w",
        "cursor=YQ==",
        "cursor=a&cursor=b",
    ] {
        let e = parse_page_query(Some(q)).unwrap_err();
        assert_field(&e, "cursor", q);
    }
}

#[test]
fn cursor_round_trip() {
    for key in ["cl_1", "a", "ключ/with?odd&chars=", ""] {
        let cursor = next_cursor(key);
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let q = format!("cursor={cursor}&limit=10");
        let parsed = parse_page_query(Some(&q)).unwrap();
        let expected = (!key.is_empty()).then(|| key.to_string());
        assert_eq!(
            parsed,
            PageQuery {
                after: expected,
                limit: 10
            },
            "{key}"
        );
    }
}

#[test]
fn pages_walk_a_sorted_list_once() {
    let items: Vec<String> = (0..7).map(|i| format!("cl_{i}")).collect();
    let key = String::as_str;
    let mut query = Some("limit=3".to_string());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(q) = query.take() {
        let page_query = parse_page_query(Some(&q)).unwrap();
        let (got, next) = page(&items, key, &page_query);
        seen.extend(got.iter().cloned());
        pages += 1;
        query = next.map(|c| format!("limit=3&cursor={c}"));
    }
    assert_eq!(seen, items);
    assert_eq!(pages, 3);
    // A full last page gives no cursor; a cursor past the end gives an empty page.
    let exact = PageQuery {
        after: Some("cl_3".into()),
        limit: 3,
    };
    assert_eq!(page(&items, key, &exact), (&items[4..], None));
    let past = PageQuery {
        after: Some("cl_9".into()),
        limit: 3,
    };
    assert_eq!(page(&items, key, &past), (&items[7..], None));
    // A key removed since the cursor was given: the page starts after where it was.
    let gone = PageQuery {
        after: Some("cl_25".into()),
        limit: 2,
    };
    assert_eq!(
        page(&items, key, &gone),
        (&items[3..5], Some(next_cursor("cl_4")))
    );
}
