//! Fuzz target `credentials`: the format of issued credentials (`tokengate::credentials`).
//!
//! The whole input is checked as text (lossy UTF-8) as a client secret and as a caller token;
//! its first bytes also make a credential to issue and edit. Input layout:
//!
//! ```text
//! byte 0          bit 0: a token (else a secret); bit 1: a token bound to a managed client
//! bytes 1..33     the 32 random bytes of the credential issued
//! bytes 33..49    the 16 random bytes of the managed client's id
//! bytes 49..51    one edit of the issued credential: position (modulo its length), ASCII byte
//! ```
//!
//! Missing bytes are zeros, so a seed may be any text (an issued credential among them).
//!
//! Invariants asserted (a panic is a finding):
//! - `check` never panics, whatever the text; what it accepts has the kind's prefix, 76
//!   characters (98 for a bound token), base62 after the prefix, matches the scanner pattern,
//!   and names a client only for a 98-character token, a well-formed managed client id
//!   embedded in it;
//! - an issued credential is 76 (98) characters of that shape, `check` accepts it as its kind
//!   with its client, refuses it as the other kind (`Shape`) and under another key (`Tag`);
//! - the issued credential with one character replaced by another is refused as `Shape` or
//!   `Checksum`, never reaching the tag (CRC-32 detects every single-byte change).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::credentials::{
    check, client_id, is_managed_client_id, issue, Checked, Kind, Refused, SECRET_PREFIX,
    TOKEN_PREFIX,
};
use tokengate::keys::Keys;

fn keys() -> Keys {
    Keys::derive(&[7; 32])
}

fn prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Secret => SECRET_PREFIX,
        Kind::Token => TOKEN_PREFIX,
    }
}

/// The scanner pattern (`credentials::CREDENTIAL_REGEX`), checked by hand: a prefix, 72 base62
/// characters and 22 more for a bound token.
fn scanner_shape(s: &str) -> bool {
    (s.starts_with(SECRET_PREFIX) || s.starts_with(TOKEN_PREFIX))
        && (s.len() == 76 || s.len() == 98)
        && s[4..].bytes().all(|b| b.is_ascii_alphanumeric())
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let text = String::from_utf8_lossy(data);
    for kind in [Kind::Secret, Kind::Token] {
        if let Ok(Checked { client }) = check(&text, kind, &keys) {
            assert!(
                text.starts_with(prefix(kind)) && scanner_shape(&text),
                "{text}"
            );
            match &client {
                None => assert_eq!(text.len(), 76),
                Some(id) => {
                    assert!(kind == Kind::Token && text.len() == 98, "{text}");
                    assert!(is_managed_client_id(id), "{id}");
                    assert_eq!(&text[4..26], &id[3..]);
                }
            }
        }
    }

    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let mode = byte(0);
    let kind = if mode & 1 == 1 {
        Kind::Token
    } else {
        Kind::Secret
    };
    let random: [u8; 32] = std::array::from_fn(|i| byte(1 + i));
    let client = (kind == Kind::Token && mode & 2 == 2)
        .then(|| client_id(std::array::from_fn(|i| byte(33 + i))));
    let cred = issue(kind, client.as_deref(), random, &keys);
    assert!(
        scanner_shape(&cred) && cred.starts_with(prefix(kind)),
        "{cred}"
    );
    assert_eq!(cred.len(), if client.is_some() { 98 } else { 76 });
    assert_eq!(
        check(&cred, kind, &keys),
        Ok(Checked {
            client: client.clone()
        })
    );
    let other = if kind == Kind::Token {
        Kind::Secret
    } else {
        Kind::Token
    };
    assert_eq!(check(&cred, other, &keys), Err(Refused::Shape));
    assert_eq!(
        check(&cred, kind, &Keys::derive(&[8; 32])),
        Err(Refused::Tag)
    );

    let mut edited = cred.clone().into_bytes();
    let at = usize::from(byte(49)) % edited.len();
    let to = byte(50) & 0x7f;
    if edited[at] != to {
        edited[at] = to;
        let edited = String::from_utf8(edited).expect("ASCII");
        let got = check(&edited, kind, &keys);
        assert!(
            matches!(got, Err(Refused::Shape | Refused::Checksum)),
            "{edited}: {got:?}"
        );
    }
});
