use super::*;
use base64::engine::general_purpose::URL_SAFE;

fn client(id: &str, secret: &str) -> Scrubber {
    Scrubber::for_client(id, &Secret::new(secret))
}

fn token(access: &str, refresh: Option<&str>) -> Token {
    Token {
        access_token: Secret::new(access),
        token_type: "Bearer".into(),
        issued_at_ms: 0,
        expires_at_ms: 1,
        scope: None,
        refresh_token: refresh.map(Secret::new),
    }
}

/// The spellings a provider echoes a secret in, written here by hand (not with the functions
/// under test).
#[test]
fn scrubs_every_spelling_of_the_client_secret() {
    let s = client("cid", "ab+c/d=e \"q\"~é");
    let echoes = [
        r#"client_secret=ab+c/d=e "q"~é rejected"#,
        // application/x-www-form-urlencoded
        "client_secret=ab%2Bc%2Fd%3De+%22q%22%7E%C3%A9&grant_type=client_credentials",
        // RFC 3986, upper- and lower-case hex
        "secret ab%2Bc%2Fd%3De%20%22q%22~%C3%A9 refused",
        "secret ab%2bc%2fd%3de%20%22q%22~%c3%a9 refused",
        // JSON-escaped, and with `\/`
        r#"{"client_secret":"ab+c/d=e \"q\"~é"}"#,
        r#"{"client_secret":"ab+c\/d=e \"q\"~é"}"#,
        // HTTP Basic, RFC 6749 §2.3.1 and RFC 7617
        "Authorization: Basic Y2lkOmFiJTJCYyUyRmQlM0RlKyUyMnElMjIlN0UlQzMlQTk=",
        "Authorization: Basic Y2lkOmFiK2MvZD1lICJxIn7DqQ==",
    ];
    for e in echoes {
        let out = s.scrub(e);
        assert!(out.contains(REDACTED), "{e} -> {out}");
        for piece in ["ab+c", "ab%2", "ab%2b", "Y2lkOmFi"] {
            assert!(!out.contains(piece), "{e} -> {out}");
        }
        assert!(!s.reveals(&out), "{out}");
    }
    assert_eq!(s.scrub("nothing here"), "nothing here");
    assert!(!s.reveals("nothing here"));
}

/// A secret inside any base64 or base64url text, whatever precedes it: only characters that
/// also depend on the neighbouring bytes are left.
#[test]
fn finds_a_secret_inside_encoded_text_at_every_alignment() {
    let secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    let s = client("someone", secret);
    for prefix_len in 0..7 {
        for suffix in ["", "!", "!!", "and more"] {
            let plain = format!("{}{secret}{suffix}", "p".repeat(prefix_len));
            for engine in [&STANDARD, &URL_SAFE] {
                let encoded = engine.encode(&plain);
                let out = s.scrub(&encoded);
                assert!(out.contains(REDACTED), "{prefix_len} {suffix:?}: {out}");
                // What is left: the prefix's and suffix's characters and at most one mixed
                // character at each end of the secret's.
                let kept = out.len() - REDACTED.len();
                let bound = (4 * prefix_len).div_ceil(3) + (4 * suffix.len()).div_ceil(3) + 4;
                assert!(kept <= bound, "{prefix_len} {suffix:?}: {out}");
            }
        }
    }
}

#[test]
fn scrubs_then_cuts() {
    let secret = "s3cr3t-abcdefghijklmnopqrstuvwxyz";
    let s = client("cid", secret);
    // The secret straddles the 200th character.
    let text = format!("{}{secret} trailing", "x".repeat(190));
    let out = s.clean_text(&text, 200);
    assert!(!out.contains("s3cr3t"), "{out}");
    assert!(out.starts_with(&"x".repeat(190)) && out.contains(REDACTED));
    // Control characters inside a secret are dropped before it is looked for.
    let split = "s3cr3t-abcdefghij\u{7}klmnopqrstuvwxyz";
    assert_eq!(s.clean_text(split, 200), REDACTED);
    // A cut without a secret.
    assert_eq!(client("c", "zzzz").clean_text("abcdef", 3), "abc…");
}

#[test]
fn token_spellings_cover_the_rotation_url_and_the_refresh_token() {
    let s = client("cid", "the-client-secret").with_token(&token("tok/en+1=", Some("ref~resh")));
    for e in [
        "PATCH https://oauth.example/tokens/tok%2Fen%2B1%3D failed",
        "PATCH https://oauth.example/tokens/tok%2fen%2b1%3d failed",
        "token tok/en+1= unknown",
        "refresh ref~resh refused",
        "refresh ref%7Eresh refused",
        "dG9rL2VuKzE9",
    ] {
        let out = s.scrub(e);
        assert!(out.contains(REDACTED) && !s.reveals(&out), "{e} -> {out}");
    }
    // The client's own spellings are still there.
    assert!(s.reveals("the-client-secret"));
    // Debug names no spelling.
    let shown = format!("{s:?}");
    assert!(
        shown.starts_with("Scrubber([") && !shown.contains("tok"),
        "{shown}"
    );
}

#[test]
fn every_spelling_is_at_least_as_long_as_the_value() {
    // What lets a caller skip text shorter than a secret without computing its spellings.
    for len in 1..80 {
        for fill in ['a', '~', '/', 'é', ' '] {
            let value: String = std::iter::repeat_n(fill, len).collect();
            for f in spellings(&value) {
                assert!(f.len() >= value.len(), "{value:?}: {f:?}");
                assert!(f.len() >= 4, "{f:?}");
            }
        }
    }
    // Too short to replace: only longer spellings remain.
    assert!(spellings("ab").iter().all(|f| f.len() >= 4));
    assert!(spellings("").is_empty());
}

#[test]
fn scrubs_json_strings_and_keys() {
    let s = client("cid", "hunter2-secret");
    let mut v: Value =
        serde_json::from_str(r#"{"a":["hunter2-secret"],"hunter2-secret":1,"n":3}"#).unwrap();
    assert!(s.scrub_json(&mut v));
    assert_eq!(v, serde_json::json!({"a": [REDACTED], REDACTED: 1, "n": 3}));
    assert!(!Scrubber::none().scrub_json(&mut v));
}
