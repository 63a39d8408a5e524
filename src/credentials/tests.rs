//! Issued credentials: layout, round trips, the scanner pattern, what the checksum catches,
//! what only the tag catches, and the fixed-width base62 underneath.

use super::*;

fn keys() -> Keys {
    Keys::derive(&[0x0b; 32])
}

const RANDOM: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];
const CLIENT_RANDOM: [u8; 16] = [
    100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115,
];

/// Credentials computed independently (Python's `hmac`, `hashlib` and `zlib.crc32`, from the
/// layout in the module documentation) for `Keys::derive(&[0x0b; 32])`, [`RANDOM`] and the
/// client of [`CLIENT_RANDOM`]. A change invalidates every issued credential; do it on purpose
/// only.
const GOLDEN_SECRET: &str =
    "tgs_000SYW7RiJxkEgOGusQGwp0UJg4EBGO3cQWJhXqJNbv5634DdSd22Zqe0NAkbBPQhW0OJdFb";
const GOLDEN_TOKEN: &str =
    "tgt_000SYW7RiJxkEgOGusQGwp0UJg4EBGO3cQWJhXqJNbv52jfBTSiJ7YH0B3xyW4Ulrz24h1gt";
const GOLDEN_CLIENT: &str = "cl_33RZVD0IvAoVVtaECqP8WR";
const GOLDEN_BOUND: &str = "tgt_33RZVD0IvAoVVtaECqP8WR000SYW7RiJxkEgOGusQGwp0UJg4EBGO3cQWJhXqJNbv57Oh1JxtogfFpptCcWpKFvu1ejMnX";

/// One credential of each shape: a secret, an unbound token, a bound token.
fn issued() -> [(Kind, String); 3] {
    let client = client_id(CLIENT_RANDOM);
    [
        (Kind::Secret, issue(Kind::Secret, None, RANDOM, &keys())),
        (Kind::Token, issue(Kind::Token, None, RANDOM, &keys())),
        (
            Kind::Token,
            issue(Kind::Token, Some(&client), RANDOM, &keys()),
        ),
    ]
}

/// `s` with its last 6 characters replaced by the checksum of the rest: well-formed again.
fn rechecksum(s: &str) -> String {
    let body = &s[..s.len() - CRC_CHARS];
    let mut out = body.to_string();
    push_base62(&mut out, crc32fast::hash(body.as_bytes()).into(), CRC_CHARS);
    out
}

#[test]
fn golden_credentials() {
    assert_eq!(client_id(CLIENT_RANDOM), GOLDEN_CLIENT);
    let [(_, secret), (_, token), (_, bound)] = issued();
    assert_eq!(secret, GOLDEN_SECRET);
    assert_eq!(token, GOLDEN_TOKEN);
    assert_eq!(bound, GOLDEN_BOUND);
}

#[test]
fn issue_check_round_trip_for_both_kinds_and_bound_tokens() {
    let client = client_id(CLIENT_RANDOM);
    for random in [[0u8; 32], [0xff; 32], RANDOM, [7; 32]] {
        let secret = issue(Kind::Secret, None, random, &keys());
        let token = issue(Kind::Token, None, random, &keys());
        let bound = issue(Kind::Token, Some(&client), random, &keys());
        assert_eq!(
            check(&secret, Kind::Secret, &keys()),
            Ok(Checked { client: None })
        );
        assert_eq!(
            check(&token, Kind::Token, &keys()),
            Ok(Checked { client: None })
        );
        assert_eq!(
            check(&bound, Kind::Token, &keys()),
            Ok(Checked {
                client: Some(client.clone())
            })
        );
        // Other random bytes, another credential.
        assert_ne!(secret, issue(Kind::Secret, None, [1; 32], &keys()));
    }
}

#[test]
fn layout_prefix_fields_and_lengths() {
    let [(_, secret), (_, token), (_, bound)] = issued();
    assert_eq!((secret.len(), token.len(), bound.len()), (76, 76, 98));
    assert!(secret.starts_with(SECRET_PREFIX));
    assert!(token.starts_with(TOKEN_PREFIX));
    let body = &GOLDEN_CLIENT[CLIENT_ID_PREFIX.len()..];
    assert_eq!(&bound[4..26], body);
    for s in [&secret, &token, &bound] {
        assert!(s[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
    }
    // The random part: the two halves, big-endian, 22 digits each, whatever the credential.
    let (hi, lo) = split_random(&RANDOM);
    for (s, at) in [(&secret, 4), (&token, 4), (&bound, 26)] {
        assert_eq!(decode_base62(&s.as_bytes()[at..at + 22]), Some(hi));
        assert_eq!(decode_base62(&s.as_bytes()[at + 22..at + 44]), Some(lo));
    }
    // The same random bytes under the two labels: the same random part, different tags.
    assert_eq!(secret[4..48], token[4..48]);
    assert_ne!(secret[48..70], token[48..70]);
    // All-zero random bytes: 44 zero digits.
    let zero = issue(Kind::Secret, None, [0; 32], &keys());
    assert_eq!(&zero[4..48], "0".repeat(44));
}

#[test]
fn scanner_regex_finds_every_issued_credential_and_nothing_else() {
    let re = regex::Regex::new(CREDENTIAL_REGEX).unwrap();
    // One pattern per kind: the documented one with its kind fixed.
    let only = |kind: &str| regex::Regex::new(&CREDENTIAL_REGEX.replace("tg[st]", kind)).unwrap();
    let (secrets, tokens) = (only("tgs"), only("tgt"));
    let client = client_id([0xa5; 16]);
    for n in 0u8..64 {
        let random =
            std::array::from_fn(|i| n.wrapping_mul(37).wrapping_add((i as u8).wrapping_mul(11)));
        let secret = issue(Kind::Secret, None, random, &keys());
        let token = issue(Kind::Token, None, random, &keys());
        let bound = issue(Kind::Token, Some(&client), random, &keys());
        for (cred, own, other) in [
            (&secret, &secrets, &tokens),
            (&token, &tokens, &secrets),
            (&bound, &tokens, &secrets),
        ] {
            // Found whole, in a config file, a URL, a header, a JSON string, a log line.
            for text in [
                format!("KEY={cred}\n"),
                format!("https://x.example/?t={cred}&a=1"),
                format!("Authorization: Bearer {cred}"),
                format!(r#"{{"access_token":"{cred}"}}"#),
                cred.to_string(),
            ] {
                let found: Vec<&str> = re.find_iter(&text).map(|m| m.as_str()).collect();
                assert_eq!(found, [cred.as_str()], "{text}");
                assert_eq!(own.find(&text).map(|m| m.as_str()), Some(cred.as_str()));
                assert!(!other.is_match(&text), "{text}");
            }
        }
    }
    // Not credentials: a managed client id, a legacy token, another prefix, one character
    // short or long, a credential inside a longer word, a character outside base62.
    let token = issue(Kind::Token, None, RANDOM, &keys());
    for text in [
        client.clone(),
        "tg_CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkgIqZN0IZJhg22fXKzAlmu".to_string(),
        token.replacen("tgt_", "tgx_", 1),
        token.replacen("tgt_", "tg_", 1),
        token[..75].to_string(),
        format!("{token}a"),
        format!("a{token}"),
        format!("{}-{}", &token[..40], &token[41..]),
    ] {
        assert!(!re.is_match(&text), "{text}");
    }
}

/// Every single-character substitution and every transposition of two adjacent characters of
/// an issued credential, exhaustively: all are refused as not well-formed (CRC-32 detects every
/// burst of at most 32 bits), none reaches the tag check, none passes.
#[test]
fn every_typo_is_refused_by_shape_or_checksum() {
    let mut replacements: Vec<u8> = ALPHABET.to_vec();
    replacements.extend_from_slice(b"_-+/=. ");
    for (kind, cred) in issued() {
        let original = cred.as_bytes();
        let mut typos = 0;
        let mut judge = |typo: &[u8], what: &str| {
            let typo = String::from_utf8(typo.to_vec()).unwrap();
            let got = check(&typo, kind, &keys());
            assert!(
                matches!(got, Err(Refused::Shape | Refused::Checksum)),
                "{what} of {cred}: {got:?}"
            );
            typos += 1;
        };
        for i in 0..original.len() {
            for &r in replacements.iter().filter(|&&r| r != original[i]) {
                let mut typo = original.to_vec();
                typo[i] = r;
                judge(&typo, &format!("{} at {i}", char::from(r)));
            }
        }
        for i in 0..original.len() - 1 {
            if original[i] != original[i + 1] {
                let mut typo = original.to_vec();
                typo.swap(i, i + 1);
                judge(&typo, &format!("swap at {i}"));
            }
        }
        assert!(typos > original.len() * 60, "{typos}");
        // Truncated, extended, doubled.
        for typo in [
            &cred[..cred.len() - 1],
            &format!("{cred}0"),
            &format!("{cred}{cred}"),
            "",
        ] {
            assert_eq!(check(typo, kind, &keys()), Err(Refused::Shape), "{typo}");
        }
    }
}

#[test]
fn a_well_formed_credential_not_issued_here_is_refused_by_its_tag() {
    for (kind, cred) in issued() {
        let at = cred.len() - 6 - 22 - 1; // the last digit of the random part
        let tag_at = cred.len() - 6 - 1; // the last digit of the tag
        for i in [4, 10, at, tag_at] {
            let mut forged = cred.clone().into_bytes();
            forged[i] = if forged[i] == b'1' { b'2' } else { b'1' };
            let forged = rechecksum(std::str::from_utf8(&forged).unwrap());
            assert_eq!(check(&forged, kind, &keys()), Err(Refused::Tag), "{i}");
        }
        // Issued under another deployment key.
        assert_eq!(
            check(&cred, kind, &Keys::derive(&[4; 32])),
            Err(Refused::Tag)
        );
    }
    // A bound token moved to another client, checksum fixed: the tag covers the client.
    let [_, _, (_, bound)] = issued();
    let other = client_id([1; 16]);
    let moved = rechecksum(&format!("{TOKEN_PREFIX}{}{}", &other[3..], &bound[26..]));
    assert_eq!(check(&moved, Kind::Token, &keys()), Err(Refused::Tag));
    // An unbound token made bound, and a bound one made unbound.
    let [_, (_, token), _] = issued();
    let bound_up = rechecksum(&format!("{TOKEN_PREFIX}{}{}", &other[3..], &token[4..]));
    assert_eq!(check(&bound_up, Kind::Token, &keys()), Err(Refused::Tag));
    let unbound = rechecksum(&format!("{TOKEN_PREFIX}{}", &bound[26..]));
    assert_eq!(check(&unbound, Kind::Token, &keys()), Err(Refused::Tag));
}

#[test]
fn a_credential_of_the_other_kind_is_refused() {
    let [(_, secret), (_, token), (_, bound)] = issued();
    assert_eq!(check(&secret, Kind::Token, &keys()), Err(Refused::Shape));
    assert_eq!(check(&token, Kind::Secret, &keys()), Err(Refused::Shape));
    assert_eq!(check(&bound, Kind::Secret, &keys()), Err(Refused::Shape));
    // The prefix rewritten and the checksum fixed: the tag is of the other kind.
    let as_token = rechecksum(&secret.replacen(SECRET_PREFIX, TOKEN_PREFIX, 1));
    assert_eq!(check(&as_token, Kind::Token, &keys()), Err(Refused::Tag));
    let as_secret = rechecksum(&token.replacen(TOKEN_PREFIX, SECRET_PREFIX, 1));
    assert_eq!(check(&as_secret, Kind::Secret, &keys()), Err(Refused::Tag));
    // Secrets are never bound: a secret of a bound token's length is not well-formed.
    let long_secret = rechecksum(&bound.replacen(TOKEN_PREFIX, SECRET_PREFIX, 1));
    assert_eq!(
        check(&long_secret, Kind::Secret, &keys()),
        Err(Refused::Shape)
    );
}

#[test]
fn out_of_range_fields_are_refused_as_shape() {
    let [(kind, secret), ..] = issued();
    // A random half, the tag, or the checksum beyond what its width may hold, with a
    // checksum that would match: the field has no canonical value.
    let too_big = "z".repeat(22);
    for at in [4, 26, 48] {
        let s = rechecksum(&format!("{}{too_big}{}", &secret[..at], &secret[at + 22..]));
        assert_eq!(check(&s, kind, &keys()), Err(Refused::Shape), "{at}");
    }
    let s = format!("{}zzzzzz", &secret[..70]);
    assert_eq!(check(&s, kind, &keys()), Err(Refused::Shape));
    // u32::MAX + 1 in the checksum's 6 digits.
    let mut s = secret[..70].to_string();
    push_base62(&mut s, u128::from(u32::MAX) + 1, CRC_CHARS);
    assert_eq!(check(&s, kind, &keys()), Err(Refused::Shape));
    // Non-ASCII where the client body would be does not panic.
    let s = format!("tgt_{}{}", "é".repeat(11), &secret[4..]);
    assert_eq!(check(&s, Kind::Token, &keys()), Err(Refused::Shape));
}

#[test]
fn managed_client_ids() {
    assert_eq!(client_id([0; 16]), format!("cl_{}", "0".repeat(22)));
    assert_eq!(client_id([0xff; 16]), "cl_7n42DGM5Tflk9n8mt7Fhc7");
    for id in [
        client_id([0; 16]),
        client_id([0xff; 16]),
        client_id(CLIENT_RANDOM),
        // The shape is reserved even where no 16 bytes spell it.
        format!("cl_{}", "z".repeat(22)),
    ] {
        assert!(is_managed_client_id(&id), "{id}");
    }
    for id in [
        "",
        "cl_",
        "svc-a",
        &format!("cl_{}", "0".repeat(21)),
        &format!("cl_{}", "0".repeat(23)),
        &format!("CL_{}", "0".repeat(22)),
        &format!("cl-{}", "0".repeat(22)),
        &format!("cl_{}-", "0".repeat(21)),
        &format!("cl_{}é", "0".repeat(20)),
        &format!(" cl_{}", "0".repeat(22)),
    ] {
        assert!(!is_managed_client_id(id), "{id}");
    }
}

#[test]
#[should_panic(expected = "not bound")]
fn issuing_a_bound_secret_is_a_mistake() {
    issue(Kind::Secret, Some(GOLDEN_CLIENT), RANDOM, &keys());
}

#[test]
#[should_panic(expected = "not a managed client id")]
fn binding_a_token_to_a_static_client_is_a_mistake() {
    issue(Kind::Token, Some("svc-a"), RANDOM, &keys());
}

#[test]
fn fixed_width_base62() {
    let enc = |v: u128, w: usize| {
        let mut s = String::new();
        push_base62(&mut s, v, w);
        s
    };
    assert_eq!(enc(0, 22), "0".repeat(22));
    assert_eq!(enc(0, 6), "000000");
    assert_eq!(enc(61, 6), "00000z");
    assert_eq!(enc(62, 6), "000010");
    // Computed independently (Python).
    assert_eq!(enc(u128::MAX, 22), "7n42DGM5Tflk9n8mt7Fhc7");
    assert_eq!(enc(u32::MAX.into(), 6), "4gfFC3");
    for v in [0, 1, 61, 62, u128::from(u64::MAX), u128::MAX - 1, u128::MAX] {
        assert_eq!(decode_base62(enc(v, 22).as_bytes()), Some(v), "{v}");
    }
    // Beyond u128: the successor of u128::MAX's spelling, and the largest 22 digits.
    assert_eq!(decode_base62(b"7n42DGM5Tflk9n8mt7Fhc8"), None);
    assert_eq!(decode_base62("z".repeat(22).as_bytes()), None);
    // Outside the alphabet.
    for bad in [
        &b"00000-"[..],
        b"0000_0",
        b"+00000",
        b"00 000",
        b"\xff00000",
    ] {
        assert_eq!(decode_base62(bad), None, "{bad:?}");
    }
    // The widths hold their types, and no fewer digits would.
    assert!(62u128.pow(21) < u128::MAX && 62f64.powi(22) > u128::MAX as f64);
    assert!(62u64.pow(5) < u32::MAX.into() && 62u64.pow(6) > u32::MAX.into());
}

#[test]
fn crc32_is_ieee() {
    // The CRC-32 check value (the CRC of "123456789" in the catalogue of parametrised CRCs).
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    // The same as crc32fast (an independent, table-driven implementation) on every length up
    // to a bound credential and beyond, and on every single byte value.
    let mut state = 0x2545_f491_u32;
    for len in 0..=130 {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        assert_eq!(crc32(&bytes), crc32fast::hash(&bytes), "{len}");
    }
    for b in 0..=255u8 {
        assert_eq!(crc32(&[b]), crc32fast::hash(&[b]), "{b}");
    }
}

#[test]
fn bound_tokens_are_recognised_by_shape() {
    let k = keys();
    let client = client_id([7; 16]);
    let bound = issue(Kind::Token, Some(&client), [1; 32], &k);
    let unbound = issue(Kind::Token, None, [1; 32], &k);
    let secret = issue(Kind::Secret, None, [1; 32], &k);
    assert!(looks_bound(&bound));
    assert!(!looks_bound(&unbound) && !looks_bound(&secret));
    assert!(!looks_bound(&bound.replacen("tgt_", "tgs_", 1)));
    assert!(!looks_bound(&bound[..bound.len() - 1]));
}
