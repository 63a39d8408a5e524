//! The format of the secrets tokengate issues: the client secrets of managed clients and the
//! caller tokens, each a prefix, a base62 body and a checksum, in the manner of GitHub's token
//! format.
//!
//! - **Recognisable**: a fixed prefix per kind ([`SECRET_PREFIX`], [`TOKEN_PREFIX`]) and a
//!   fixed length and alphabet, so a secret scanner (gitleaks, trufflehog, a forge's push
//!   protection) finds a leaked credential with one regular expression, [`CREDENTIAL_REGEX`],
//!   and few false positives. Base62 (`0-9A-Za-z`) has no `-` or `_`, so a double-click selects
//!   the whole credential and no URL or shell quoting changes it.
//! - **Checkable offline**: the last 6 characters are the CRC-32 (IEEE) of everything before
//!   them. A mistyped or truncated credential is refused ([`Refused::Checksum`],
//!   [`Refused::Shape`]) without a lookup, and a scanner can tell a real-looking credential
//!   from a random string of the same shape. CRC-32 detects every error burst of at most 32
//!   bits, so every single-character substitution and every transposition of two adjacent
//!   characters.
//! - **Unforgeable without the key**: 32 random bytes (RFC 6750 §5.2 wants tokens that cannot
//!   be guessed or made up; 256 bits) and a 16-byte tag, an HMAC-SHA256 under the token-MAC
//!   subkey of `TOKENGATE_KEY` ([`Keys::token_mac`]). A made-up credential with a valid
//!   checksum is refused ([`Refused::Tag`]) before any store read, so a flood of them costs no
//!   reads; guessing a tag succeeds with probability 2⁻¹²⁸ (RFC 6749 §10.10's bound for
//!   generated credentials).
//!
//! Layout, every field fixed-width base62, most significant digit first:
//!
//! | field | characters | what |
//! | --- | --- | --- |
//! | prefix | 4 | `tgs_` (client secret) or `tgt_` (caller token) |
//! | client | 22 | the body of the managed client id a token is bound to: bound tokens only |
//! | random | 44 | 32 random bytes as two big-endian `u128`, 22 characters each |
//! | tag | 22 | the first 16 bytes of HMAC-SHA256(token-MAC subkey, label ‖ prefix ‖ client ‖ random), a big-endian `u128` |
//! | checksum | 6 | CRC-32 (IEEE) of every character before it |
//!
//! 76 characters, 98 for a token bound to a managed client. The label differs per kind
//! (`tokengate/v1/credential/secret`, `tokengate/v1/credential/token`), so a tag of one kind
//! never verifies as the other even with the prefix rewritten. A bound token names its client
//! (`cl_` and the same 22 characters: [`client_id`]), so the gateway routes it to that client's
//! authority without a lookup; the tag covers the client, so it cannot be moved to another.

use crate::keys::Keys;
use crate::secret::ct_eq_bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Prefix of every client secret.
pub const SECRET_PREFIX: &str = "tgs_";
/// Prefix of every caller token.
pub const TOKEN_PREFIX: &str = "tgt_";
/// Prefix of the id of every managed client (an id, not a secret).
pub const CLIENT_ID_PREFIX: &str = "cl_";
/// The regular expression that finds issued credentials of both kinds in text, for secret
/// scanners: a prefix, 72 base62 characters, and 22 more for a bound token.
pub const CREDENTIAL_REGEX: &str = r"\btg[st]_[0-9A-Za-z]{72}(?:[0-9A-Za-z]{22})?\b";

/// The base62 digits, in order of value.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Base62 characters of a `u128` (62²¹ < 2¹²⁸ ≤ 62²²).
const U128_CHARS: usize = 22;
/// Base62 characters of a `u32` (62⁵ < 2³² ≤ 62⁶).
const CRC_CHARS: usize = 6;
/// Both prefixes are this long.
const PREFIX_LEN: usize = 4;
/// Random part, tag and checksum.
const BODY_LEN: usize = 2 * U128_CHARS + U128_CHARS + CRC_CHARS;
/// An unbound credential.
const LEN: usize = PREFIX_LEN + BODY_LEN;
/// A token bound to a managed client.
const BOUND_LEN: usize = LEN + U128_CHARS;

/// The two kinds of credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The client secret of a managed client ([`SECRET_PREFIX`]).
    Secret,
    /// A caller token ([`TOKEN_PREFIX`]).
    Token,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Secret => SECRET_PREFIX,
            Kind::Token => TOKEN_PREFIX,
        }
    }

    /// The tag's domain-separation label.
    fn label(self) -> &'static [u8] {
        match self {
            Kind::Secret => b"tokengate/v1/credential/secret\0",
            Kind::Token => b"tokengate/v1/credential/token\0",
        }
    }
}

/// What [`check`] learnt from a credential this deployment issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The managed client id (`cl_…`) the token is bound to, if any.
    pub client: Option<String>,
}

/// Why [`check`] refused a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not of the expected kind, length or alphabet, or a field out of range: not well-formed
    /// (a typo, a truncation, another kind of credential); refuse without a lookup.
    Shape,
    /// Well-shaped but the checksum does not match: a typo; refuse without a lookup.
    Checksum,
    /// Well-formed but the tag does not verify: not issued by this deployment (made up, or
    /// issued under another `TOKENGATE_KEY`); refuse without a lookup.
    Tag,
}

/// Issues a credential of `kind` from 32 random bytes. A token of a managed client is bound to
/// its client id `client` (its 22-character body is embedded, so the gateway can route the
/// token to the client's authority without a lookup).
///
/// # Panics
///
/// When `client` is given for a [`Kind::Secret`] (secrets are not bound) or is not a managed
/// client id ([`is_managed_client_id`]): both are mistakes of the caller, never of input.
pub fn issue(kind: Kind, client: Option<&str>, random: [u8; 32], keys: &Keys) -> String {
    let client_body = match client {
        None => "",
        Some(id) => {
            assert!(
                kind == Kind::Token,
                "client secrets are not bound to a client"
            );
            assert!(is_managed_client_id(id), "not a managed client id: {id:?}");
            &id[CLIENT_ID_PREFIX.len()..]
        }
    };
    let (hi, lo) = split_random(&random);
    let mut out = String::with_capacity(BOUND_LEN);
    out.push_str(kind.prefix());
    out.push_str(client_body);
    push_base62(&mut out, hi, U128_CHARS);
    push_base62(&mut out, lo, U128_CHARS);
    let tag = tag(kind, client_body.as_bytes(), &random, keys);
    push_base62(&mut out, u128::from_be_bytes(tag), U128_CHARS);
    let crc = crc32(out.as_bytes());
    push_base62(&mut out, crc.into(), CRC_CHARS);
    out
}

/// Whether `token` has the length and prefix of a token bound to a managed client — by its
/// shape alone, no checksum or tag (a routing decision; [`check`] decides whether it is one).
pub fn looks_bound(token: &str) -> bool {
    token.len() == BOUND_LEN && token.starts_with(TOKEN_PREFIX)
}

/// Whether `s` is a credential of `kind` that this deployment issued: its prefix, length and
/// alphabet, then its checksum, then its tag (compared in constant time). No I/O: a typo, a
/// credential of the other kind, a made-up one and one issued under another key are all
/// refused here, before any store read.
pub fn check(s: &str, kind: Kind, keys: &Keys) -> Result<Checked, Refused> {
    let bytes = s.as_bytes();
    let rest = bytes
        .strip_prefix(kind.prefix().as_bytes())
        .ok_or(Refused::Shape)?;
    let client_len = match (kind, bytes.len()) {
        (_, LEN) => 0,
        (Kind::Token, BOUND_LEN) => U128_CHARS,
        _ => return Err(Refused::Shape),
    };
    let (client_body, rest) = rest.split_at(client_len);
    let (hi, rest) = rest.split_at(U128_CHARS);
    let (lo, rest) = rest.split_at(U128_CHARS);
    let (given_tag, crc) = rest.split_at(U128_CHARS);
    if !client_body.iter().all(u8::is_ascii_alphanumeric) {
        return Err(Refused::Shape);
    }
    let field = |chars: &[u8]| decode_base62(chars).ok_or(Refused::Shape);
    let (hi, lo, given_tag) = (field(hi)?, field(lo)?, field(given_tag)?);
    let crc = u32::try_from(field(crc)?).map_err(|_| Refused::Shape)?;
    if crc != crc32(&bytes[..bytes.len() - CRC_CHARS]) {
        return Err(Refused::Checksum);
    }
    let mut random = [0u8; 32];
    random[..16].copy_from_slice(&hi.to_be_bytes());
    random[16..].copy_from_slice(&lo.to_be_bytes());
    let expected = tag(kind, client_body, &random, keys);
    if !ct_eq_bytes(&expected, &given_tag.to_be_bytes()) {
        return Err(Refused::Tag);
    }
    // Every byte checked so far is ASCII, so the client's 22 characters are whole characters.
    let client = (client_len > 0).then(|| {
        format!(
            "{CLIENT_ID_PREFIX}{}",
            &s[PREFIX_LEN..PREFIX_LEN + client_len]
        )
    });
    Ok(Checked { client })
}

/// A new managed client id: `cl_` and 22 base62 characters of 16 random bytes (a big-endian
/// `u128`).
pub fn client_id(random: [u8; 16]) -> String {
    let mut out = String::with_capacity(CLIENT_ID_PREFIX.len() + U128_CHARS);
    out.push_str(CLIENT_ID_PREFIX);
    push_base62(&mut out, u128::from_be_bytes(random), U128_CHARS);
    out
}

/// Whether `id` has the shape of a managed client id: exactly `cl_` and 22 base62 characters.
/// Every id of that shape is reserved for managed clients, whether [`client_id`] could have
/// made it or not.
pub fn is_managed_client_id(id: &str) -> bool {
    id.strip_prefix(CLIENT_ID_PREFIX).is_some_and(|body| {
        body.len() == U128_CHARS && body.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The 16-byte tag of a credential of `kind`, bound to `client_body` (empty when unbound), of
/// `random`.
fn tag(kind: Kind, client_body: &[u8], random: &[u8; 32], keys: &Keys) -> [u8; 16] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(keys.token_mac()).expect("HMAC takes any key");
    mac.update(kind.label());
    mac.update(kind.prefix().as_bytes());
    mac.update(client_body);
    mac.update(random);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`: reflected, polynomial `0xEDB88320`, initial value
/// and final XOR all ones), one bit at a time. A credential is under 100 bytes; a table-driven
/// CRC would bring 1 to 16 KiB of tables into the wasm builds for nothing.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// The 32 random bytes as two big-endian `u128`.
fn split_random(random: &[u8; 32]) -> (u128, u128) {
    let mut hi = [0u8; 16];
    let mut lo = [0u8; 16];
    hi.copy_from_slice(&random[..16]);
    lo.copy_from_slice(&random[16..]);
    (u128::from_be_bytes(hi), u128::from_be_bytes(lo))
}

/// Appends `value` in base62 ([`ALPHABET`]), most significant digit first, as exactly `width`
/// digits with leading `0`s: repeated division by 62 yields the digits from the least
/// significant one. `width` must hold the value (22 for any `u128`, 6 for any `u32`).
fn push_base62(out: &mut String, mut value: u128, width: usize) {
    let mut digits = [b'0'; U128_CHARS];
    for d in digits[..width].iter_mut().rev() {
        *d = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    debug_assert_eq!(value, 0, "{width} base62 digits do not hold the value");
    out.extend(digits[..width].iter().map(|&b| char::from(b)));
}

/// The value of fixed-width base62 digits (Horner's rule, most significant first), or `None`
/// for a character outside [`ALPHABET`] or a value beyond `u128`. At a fixed width every value
/// has one spelling, so refusing overflow refuses every non-canonical input.
fn decode_base62(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(d.into())
    })
}

#[cfg(test)]
mod tests;
