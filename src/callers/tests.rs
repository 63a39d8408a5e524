//! The gateway's own callers: registry, `POST /oauth/token` forms, issued tokens.

use super::*;

/// SHA-256 of `caller-secret` (computed independently).
const CALLER_SECRET_SHA256: &str =
    "ef463420edc797e78fe3cdfcaddb67f822b4482788cb1009d0467eea8694736f";

pub(crate) fn keys() -> Keys {
    Keys::derive(&[3; 32])
}

/// The registry [`registry`] parses.
pub(crate) fn registry_json() -> String {
    format!(
        r#"{{
            "svc-a": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro", "partner"], "token_ttl_s": 600, "token_requests_per_minute": 5}},
            "svc-b": {{"secret_sha256": "{}", "scopes": ["optimum"]}}
        }}"#,
        "AB".repeat(32)
    )
}

pub(crate) fn registry() -> CallerRegistry {
    CallerRegistry::parse("TOKENGATE_CLIENTS", &registry_json(), &keys()).unwrap()
}

fn reg_err(json: &str) -> ConfigError {
    CallerRegistry::parse("TOKENGATE_CLIENTS", json, &keys()).unwrap_err()
}

// ---------------------------------------------------------------- registry

#[test]
fn registry_good_entry() {
    let r = registry();
    let ids: Vec<&str> = r.iter().map(|c| c.client_id.as_str()).collect();
    assert_eq!(ids, ["svc-a", "svc-b"]);
    let a = r.iter().next().unwrap();
    assert_eq!(a.scopes, ["optoro", "partner"]);
    assert_eq!(a.token_ttl_s, 600);
    assert_eq!(a.token_requests_per_minute, 5);
    let b = r.iter().nth(1).unwrap();
    assert_eq!(b.token_ttl_s, DEFAULT_CALLER_TTL_S);
    assert_eq!(b.token_requests_per_minute, 60);
}

#[test]
fn registry_token_requests_per_minute_in_range() {
    for n in ["0", "6001", "1.5", "-1", "\"60\""] {
        let e = reg_err(&format!(
            r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "token_requests_per_minute": {n}}}}}"#
        ));
        assert_eq!(e.key, "TOKENGATE_CLIENTS.svc", "{n}");
        assert!(
            e.message.starts_with("token_requests_per_minute must be"),
            "{n}: {e}"
        );
    }
    for n in [1, 6000] {
        let ok = CallerRegistry::parse(
            "TOKENGATE_CLIENTS",
            &format!(
                r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "token_requests_per_minute": {n}}}}}"#
            ),
            &keys(),
        )
        .unwrap();
        assert_eq!(ok.iter().next().unwrap().token_requests_per_minute, n);
    }
}

/// Every scope must name a configured provider; the error names the caller and the scope.
#[test]
fn scopes_must_name_configured_providers() {
    let r = registry();
    let configured = ["optoro", "partner", "optimum"];
    assert_eq!(
        r.check_scopes("TOKENGATE_CLIENTS", |p| configured.contains(&p)),
        Ok(())
    );
    let e = r
        .check_scopes("TOKENGATE_CLIENTS", |p| p != "partner")
        .unwrap_err();
    assert_eq!(e.key, "TOKENGATE_CLIENTS.svc-a.scopes");
    assert_eq!(e.message, "names unknown provider `partner`");
    let e = r
        .check_scopes("TOKENGATE_CLIENTS", |p| p == "optoro")
        .unwrap_err();
    assert_eq!(e.key, "TOKENGATE_CLIENTS.svc-a.scopes");
}

/// A static caller takes any valid scope: `<provider>:read` and `introspect` beside provider
/// ids; `check_scopes` checks the provider part of each, and `introspect` names none.
#[test]
fn registry_takes_read_and_introspect_scopes() {
    let json = format!(
        r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro:read", "introspect", "partner"]}}}}"#
    );
    let r = CallerRegistry::parse("TOKENGATE_CLIENTS", &json, &keys()).unwrap();
    assert_eq!(
        r.get("svc").unwrap().scopes,
        ["optoro:read", "introspect", "partner"]
    );
    let configured = ["optoro", "partner"];
    assert_eq!(
        r.check_scopes("TOKENGATE_CLIENTS", |p| configured.contains(&p)),
        Ok(())
    );
    // `introspect` is never asked about: only provider parts are.
    let asked = std::cell::RefCell::new(Vec::new());
    r.check_scopes("TOKENGATE_CLIENTS", |p| {
        asked.borrow_mut().push(p.to_string());
        true
    })
    .unwrap();
    assert_eq!(asked.into_inner(), ["optoro", "partner"]);
    // `nope:read` parses, but names no configured provider.
    let json = format!(
        r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro", "nope:read"]}}}}"#
    );
    let r = CallerRegistry::parse("TOKENGATE_CLIENTS", &json, &keys()).unwrap();
    let e = r
        .check_scopes("TOKENGATE_CLIENTS", |p| configured.contains(&p))
        .unwrap_err();
    assert_eq!(e.key, "TOKENGATE_CLIENTS.svc.scopes");
    assert_eq!(e.message, "names unknown provider `nope`");
    // What is not a scope is refused when the registry is parsed.
    for bad in ["optoro:write", "introspect:read", "Optoro:read", "oauth"] {
        let e = reg_err(&format!(
            r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["{bad}"]}}}}"#
        ));
        assert_eq!(e.key, "TOKENGATE_CLIENTS.svc", "{bad}");
        assert!(
            e.message.starts_with(&format!("scope `{bad}` must be")),
            "{e}"
        );
    }
}

#[test]
fn registry_bad_hex() {
    for bad in ["zz".repeat(32), "ab".repeat(31), "ab".repeat(33)] {
        let e = reg_err(&format!(
            r#"{{"svc": {{"secret_sha256": "{bad}", "scopes": ["optoro"]}}}}"#
        ));
        assert_eq!(e.key, "TOKENGATE_CLIENTS.svc");
        assert_eq!(e.message, "secret_sha256 must be 64 hex digits");
        assert!(!e.to_string().contains(&bad));
    }
}

#[test]
fn registry_refuses_managed_client_ids() {
    let managed = crate::credentials::client_id([7; 16]);
    let e = reg_err(&format!(
        r#"{{"{managed}": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"]}}}}"#
    ));
    assert_eq!(
        e.to_string(),
        format!(
            "TOKENGATE_CLIENTS.{managed}: a client id of `cl_` and 22 base62 characters is \
             reserved for clients created with the admin API"
        )
    );
    // Ids that merely start like one are static callers like any other.
    for id in [
        "cl_",
        "cl_svc",
        &format!("{managed}x"),
        &managed[..24],
        "CL_abc",
    ] {
        let r = CallerRegistry::parse(
            "TOKENGATE_CLIENTS",
            &format!(
                r#"{{"{id}": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"]}}}}"#
            ),
            &keys(),
        )
        .unwrap();
        assert!(r.get(id).is_some(), "{id}");
    }
}

#[test]
fn registry_refuses_the_hash_of_the_empty_secret() {
    let empty = hex::encode(Sha256::digest(b""));
    for spelling in [empty.clone(), empty.to_uppercase()] {
        let e = reg_err(&format!(
            r#"{{"svc": {{"secret_sha256": "{spelling}", "scopes": ["optoro"]}}}}"#
        ));
        assert_eq!(e.key, "TOKENGATE_CLIENTS.svc");
        assert!(e.message.contains("empty string"), "{e}");
    }
}

#[test]
fn registry_empty_scopes() {
    let e = reg_err(&format!(
        r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": []}}}}"#
    ));
    assert_eq!(
        e.to_string(),
        "TOKENGATE_CLIENTS.svc: scopes must hold at least one scope"
    );
    let e = reg_err(&format!(
        r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["Bad_Id"]}}}}"#
    ));
    assert_eq!(e.key, "TOKENGATE_CLIENTS.svc");
    assert!(e.message.contains("scope `Bad_Id`"), "{e}");
}

#[test]
fn registry_ttl_out_of_range() {
    for ttl in [0, 59, 86_401] {
        let e = reg_err(&format!(
            r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "token_ttl_s": {ttl}}}}}"#
        ));
        assert_eq!(
            e.to_string(),
            "TOKENGATE_CLIENTS.svc: token_ttl_s must be from 60 to 86400",
            "{ttl}"
        );
    }
    for ttl in [60, 86_400] {
        let ok = CallerRegistry::parse(
            "C",
            &format!(
                r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "token_ttl_s": {ttl}}}}}"#
            ),
            &keys(),
        )
        .unwrap();
        assert_eq!(ok.iter().next().unwrap().token_ttl_s, ttl);
    }
}

#[test]
fn registry_unknown_key() {
    let e = reg_err(&format!(
        r#"{{"svc": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "secret": "plain"}}}}"#
    ));
    assert_eq!(e.key, "TOKENGATE_CLIENTS.svc");
    assert!(e.message.contains("unknown field `secret`"), "{e}");
    assert!(!e.to_string().contains("plain"), "{e}");
    for (entry, message) in [
        (
            r#"{"scopes": ["optoro"]}"#.to_string(),
            "missing field `secret_sha256`",
        ),
        (
            format!(r#"{{"secret_sha256": "{CALLER_SECRET_SHA256}"}}"#),
            "missing field `scopes`",
        ),
        (
            format!(r#"{{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": "optoro"}}"#),
            "scopes must be an array of scope strings",
        ),
        (
            r#"{"secret_sha256": 7, "scopes": ["optoro"]}"#.to_string(),
            "secret_sha256 must be a string",
        ),
        (
            format!(
                r#"{{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"], "token_ttl_s": "600"}}"#
            ),
            "token_ttl_s must be a whole number of seconds",
        ),
        ("[]".to_string(), "must be an object"),
    ] {
        let e = reg_err(&format!(r#"{{"svc": {entry}}}"#));
        assert_eq!(e.key, "TOKENGATE_CLIENTS.svc", "{entry}");
        assert_eq!(e.message, message, "{entry}");
    }
    let e = reg_err("[1, 2]");
    assert_eq!(
        e.to_string(),
        "TOKENGATE_CLIENTS: must be a JSON object keyed by client id"
    );
    let e = reg_err("not json");
    assert_eq!(e.key, "TOKENGATE_CLIENTS");
}

// ---------------------------------------------------------------- authenticate

#[test]
fn authenticate_right_wrong_unknown() {
    let r = registry();
    let c = r
        .authenticate("svc-a", &Secret::new("caller-secret"))
        .unwrap();
    assert_eq!(c.client_id, "svc-a");
    assert!(r
        .authenticate("svc-a", &Secret::new("caller-secreT"))
        .is_none());
    assert!(r.authenticate("svc-a", &Secret::new("")).is_none());
    // The right secret under another id does not authenticate.
    assert!(r
        .authenticate("svc-b", &Secret::new("caller-secret"))
        .is_none());
    assert!(r
        .authenticate("nobody", &Secret::new("caller-secret"))
        .is_none());
    // A secret whose hash is all zeros can't be forged for an unknown id either.
    assert!(r.authenticate("nobody", &Secret::new("")).is_none());
}

#[test]
fn registrations_are_fingerprinted_by_id_and_secret() {
    let r = registry();
    let a = r.get("svc-a").unwrap();
    let b = r.get("svc-b").unwrap();
    assert_eq!(a.registration.len(), 32);
    assert_ne!(a.registration, b.registration);
    assert!(!a.registration.contains(CALLER_SECRET_SHA256));
    // The same registration under another deployment key: another fingerprint.
    let json = format!(
        r#"{{"svc-a": {{"secret_sha256": "{CALLER_SECRET_SHA256}", "scopes": ["optoro"]}}}}"#
    );
    let other = CallerRegistry::parse("C", &json, &Keys::derive(&[4; 32])).unwrap();
    assert_ne!(other.get("svc-a").unwrap().registration, a.registration);
    // Scopes and TTL are not part of it: narrowing a caller does not revoke its tokens.
    let same = CallerRegistry::parse("C", &json, &keys()).unwrap();
    assert_eq!(same.get("svc-a").unwrap().registration, a.registration);
    // A rotated secret is another registration.
    let rotated = json.replace(&CALLER_SECRET_SHA256[..4], "0000");
    let rotated = CallerRegistry::parse("C", &rotated, &keys()).unwrap();
    assert_ne!(rotated.get("svc-a").unwrap().registration, a.registration);
}
