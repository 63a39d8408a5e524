//! Scopes: parsing, display, coverage, the method rule and narrowing, as tables.

use super::*;

fn provider(id: &str, read_only: bool) -> Scope {
    Scope::Provider {
        id: id.into(),
        read_only,
    }
}

fn strings(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| s.to_string()).collect()
}

#[test]
fn parse_and_display_round_trip() {
    for (text, scope) in [
        ("optoro", provider("optoro", false)),
        ("optoro:read", provider("optoro", true)),
        ("a", provider("a", false)),
        ("p-1:read", provider("p-1", true)),
        ("introspect", Scope::Introspect),
    ] {
        assert_eq!(Scope::parse(text), Ok(scope.clone()), "{text}");
        assert_eq!(scope.to_string(), text);
    }
}

#[test]
fn parse_refuses_what_is_not_a_scope() {
    for bad in [
        "",
        ":read",
        "Optoro",
        "optoro:write",
        "optoro:READ",
        "optoro:read:read",
        "optoro read",
        "-optoro",
        "introspect:read",
        "INTROSPECT",
        "oauth",
        "admin:read",
    ] {
        let e = Scope::parse(bad).unwrap_err();
        assert!(e.starts_with("must be `<provider>`"), "{bad:?}: {e}");
    }
    assert!(Scope::parse("oauth").unwrap_err().contains("reserved"));
    assert!(Scope::parse("introspect:read")
        .unwrap_err()
        .contains("reserved"));
}

#[test]
fn provider_part() {
    assert_eq!(provider("optoro", false).provider(), Some("optoro"));
    assert_eq!(provider("optoro", true).provider(), Some("optoro"));
    assert_eq!(Scope::Introspect.provider(), None);
}

#[test]
fn covers_table() {
    let all = [
        provider("optoro", false),
        provider("optoro", true),
        provider("partner", false),
        provider("partner", true),
        Scope::Introspect,
    ];
    // (holder, other) pairs that cover; every other pair does not.
    let covering = [
        ("optoro", "optoro"),
        ("optoro", "optoro:read"),
        ("optoro:read", "optoro:read"),
        ("partner", "partner"),
        ("partner", "partner:read"),
        ("partner:read", "partner:read"),
        ("introspect", "introspect"),
    ];
    for a in &all {
        for b in &all {
            let expected = covering.contains(&(a.to_string().as_str(), b.to_string().as_str()));
            assert_eq!(a.covers(b), expected, "{a} covers {b}");
        }
    }
}

#[test]
fn read_only_methods() {
    for m in ["GET", "get", "Head", "HEAD", "options", "OPTIONS"] {
        assert!(read_only_method(m), "{m}");
    }
    for m in [
        "POST", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT", "", "GETS", " GET",
    ] {
        assert!(!read_only_method(m), "{m}");
    }
}

#[test]
fn permits_table() {
    let cases: &[(&[&str], &str, &str, bool)] = &[
        (&["optoro"], "optoro", "POST", true),
        (&["optoro"], "optoro", "GET", true),
        (&["optoro:read"], "optoro", "GET", true),
        (&["optoro:read"], "optoro", "head", true),
        (&["optoro:read"], "optoro", "OPTIONS", true),
        (&["optoro:read"], "optoro", "POST", false),
        (&["optoro:read"], "optoro", "delete", false),
        (&["optoro:read", "optoro"], "optoro", "POST", true),
        (&["optoro"], "partner", "GET", false),
        (&["optoro:read"], "partner", "GET", false),
        (&["introspect"], "introspect", "GET", false),
        (&["introspect"], "optoro", "GET", false),
        (&[], "optoro", "GET", false),
        // Unparsable scopes grant nothing, not even their literal provider.
        (&["Optoro"], "Optoro", "GET", false),
        (&["optoro:write"], "optoro", "POST", false),
        (&["optoro:write", "optoro"], "optoro", "POST", true),
    ];
    for (scopes, provider, method, expected) in cases {
        assert_eq!(
            permits(&strings(scopes), provider, method),
            *expected,
            "{scopes:?} {method} {provider}"
        );
    }
}

#[test]
fn narrow_table() {
    let granted = strings(&["optoro", "partner:read", "introspect"]);
    let ok: &[(Option<&[&str]>, &[&str])] = &[
        (None, &["optoro", "partner:read", "introspect"]),
        (Some(&[]), &["optoro", "partner:read", "introspect"]),
        (Some(&["optoro"]), &["optoro"]),
        (Some(&["optoro:read"]), &["optoro:read"]),
        (
            Some(&["partner:read", "optoro"]),
            &["partner:read", "optoro"],
        ),
        (Some(&["introspect"]), &["introspect"]),
        (Some(&["optoro", "optoro"]), &["optoro"]),
        (Some(&["optoro", "optoro:read"]), &["optoro", "optoro:read"]),
    ];
    for (requested, expected) in ok {
        let requested = requested.map(strings);
        assert_eq!(
            narrow(&granted, requested.as_deref()),
            Ok(strings(expected)),
            "{requested:?}"
        );
    }
    let refused: &[(&[&str], &str)] = &[
        (&["partner"], "partner"),
        (&["optoro", "optimum"], "optimum"),
        (&["optoro", "nope:read", "partner"], "nope:read"),
        (&["Optoro"], "Optoro"),
        (&["optoro:write"], "optoro:write"),
        (&["optoro:read", "introspect:read"], "introspect:read"),
    ];
    for (requested, bad) in refused {
        assert_eq!(
            narrow(&granted, Some(&strings(requested))),
            Err(bad.to_string()),
            "{requested:?}"
        );
    }
    // A read-only grant never widens to the full scope.
    assert_eq!(
        narrow(&strings(&["optoro:read"]), Some(&strings(&["optoro"]))),
        Err("optoro".into())
    );
}

#[test]
fn effective_is_what_a_token_still_allows_under_its_callers_current_scopes() {
    let e = |token: &[&str], granted: &[&str]| effective(&strings(token), &strings(granted));
    assert_eq!(
        e(&["optoro", "partner:read"], &["optoro", "partner"]),
        strings(&["optoro", "partner:read"])
    );
    // Narrowed to reads: the token reads; a scope the caller lost is gone.
    assert_eq!(
        e(&["optoro", "partner:read"], &["optoro:read"]),
        strings(&["optoro:read"])
    );
    assert_eq!(
        e(&["optoro", "optoro:read"], &["optoro:read"]),
        strings(&["optoro:read"])
    );
    assert_eq!(
        e(&["introspect", "optoro"], &["partner"]),
        Vec::<String>::new()
    );
    assert_eq!(
        e(&["introspect"], &["introspect"]),
        strings(&["introspect"])
    );
    // Widening the caller never widens the token.
    assert_eq!(
        e(&["optoro:read"], &["optoro", "partner"]),
        strings(&["optoro:read"])
    );
    assert_eq!(e(&["bad scope!"], &["optoro"]), Vec::<String>::new());
}
