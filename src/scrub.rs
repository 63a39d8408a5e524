//! The one place that removes secrets from what a provider says.
//!
//! A provider's answer — of any status, a token endpoint's, a token API's, or an API's
//! response headers — may quote what it was sent: the client secret, the HTTP Basic
//! credentials, a token being rotated or deleted, its refresh token. Before any of an answer's
//! text is kept (in an error, a log line, a cooldown repeated to every caller), it goes through
//! a [`Scrubber`], which knows every spelling of every secret of the exchange ([`spellings`])
//! and replaces each with `[redacted]`. Text is scrubbed first and cut afterwards, so no piece
//! of a secret survives at a cut. Both shells take what the core produced as it is and scrub
//! nothing on their own.

use crate::response::Token;
use crate::secret::Secret;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::engine::GeneralPurpose;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use std::fmt;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Spellings shorter than this are left alone: too common a string to replace.
const MIN_SPELLING: usize = 4;

/// RFC 3986 §2.3: everything but `unreserved` percent-encoded. The spelling of a token as one
/// path segment (a token API's rotation and deletion URLs), and a common client's encoding.
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What JavaScript's `encodeURIComponent` leaves alone besides `unreserved`: `!'()*`.
const URI_COMPONENT: &AsciiSet = &UNRESERVED
    .remove(b'!')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*');

/// The spellings under which `value` can be quoted back, longest first:
///
/// - as it is;
/// - `application/x-www-form-urlencoded` (a form body, or RFC 6749 §2.3.1's encoding before
///   HTTP Basic);
/// - RFC 3986 §2.1 percent-encoded, with upper- and with lower-case hex digits (§2.1 says they
///   are equivalent), and as `encodeURIComponent` spells it;
/// - JSON-escaped (RFC 8259 §7), also with `/` escaped as `\/`;
/// - base64 and base64url (RFC 4648 §4, §5), of the value and of its form-encoded spelling,
///   at each of the three byte alignments it can have inside a longer encoded text (so the
///   value is found inside HTTP Basic credentials or any other encoded blob, whatever precedes
///   it): each alignment's characters that depend on the value alone.
///
/// Each is at least as long as `value` (so text shorter than the value cannot hold one of
/// them), and spellings shorter than 4 bytes are left out.
pub fn spellings(value: &str) -> Vec<String> {
    let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let upper = utf8_percent_encode(value, UNRESERVED).to_string();
    let lower = lower_hex_escapes(&upper);
    let component = utf8_percent_encode(value, URI_COMPONENT).to_string();
    // The JSON string literal without its quotes.
    let quoted = serde_json::to_string(value).unwrap_or_default();
    let json = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or("")
        .to_string();
    let json_slash = json.replace('/', "\\/");
    let mut out = vec![
        value.to_string(),
        form.clone(),
        upper,
        lower,
        component,
        json,
        json_slash,
    ];
    for text in [value, form.as_str()] {
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            for offset in 0..3 {
                out.push(aligned_base64(text.as_bytes(), offset, engine));
            }
            // The whole standalone encoding, last character included.
            out.push(engine.encode(text));
        }
    }
    out.push(STANDARD.encode(value));
    sorted(out)
}

/// The characters of the base64 encoding of `bytes` that depend on `bytes` alone when they
/// are preceded by `offset` (0–2) other bytes in a longer encoded text.
fn aligned_base64(bytes: &[u8], offset: usize, engine: &GeneralPurpose) -> String {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(bytes);
    let encoded = engine.encode(&padded);
    let n = padded.len();
    // The first group mixes the preceding bytes into its first `offset + 1` characters
    // (none at offset 0); the last, partial group's final character mixes in what follows.
    let skip = [0, 2, 3][offset];
    // The last partial group of `r` bytes has `r` characters of its own.
    let end = 4 * (n / 3) + n % 3;
    encoded
        .get(skip..end.min(encoded.len()))
        .unwrap_or("")
        .to_string()
}

/// `text` with the hex digits of every `%XX` escape in lower case.
fn lower_hex_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = 0;
    for c in text.chars() {
        if c == '%' {
            digits = 2;
            out.push(c);
        } else if digits > 0 {
            digits -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Drops spellings too short to replace, sorts the rest longest first (a spelling containing
/// another is replaced whole) and removes duplicates.
fn sorted(mut forms: Vec<String>) -> Vec<String> {
    forms.retain(|f| f.len() >= MIN_SPELLING);
    forms.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    forms
}

/// Every spelling of the secrets of one exchange. Cheap to extend for one operation
/// ([`Scrubber::with_token`]); `Debug` prints only how many spellings it holds.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scrubber {
    /// Longest first, no duplicates.
    forms: Vec<String>,
}

impl Scrubber {
    /// A scrubber that knows no secret (for text no secret was sent with, e.g. a pasted
    /// response parsed by a tool).
    pub fn none() -> Self {
        Scrubber::default()
    }

    /// The spellings of a client's secret ([`spellings`]) and of its HTTP Basic credentials
    /// both ways: RFC 6749 §2.3.1 form-encodes id and secret before base64, RFC 7617 §2 (a
    /// token API's) does not.
    pub fn for_client(client_id: &str, secret: &Secret) -> Self {
        let raw = secret.expose();
        let form = |s: &str| -> String { form_urlencoded::byte_serialize(s.as_bytes()).collect() };
        let mut forms = spellings(raw);
        forms.push(STANDARD.encode(format!("{}:{}", form(client_id), form(raw))));
        forms.push(STANDARD.encode(format!("{client_id}:{raw}")));
        Scrubber {
            forms: sorted(forms),
        }
    }

    /// This scrubber plus the spellings of `token`'s access token (which covers the path
    /// segment it is in a token API's rotation and deletion URLs) and of its refresh token.
    pub fn with_token(&self, token: &Token) -> Self {
        let mut forms = self.forms.clone();
        forms.extend(spellings(token.access_token.expose()));
        if let Some(refresh) = &token.refresh_token {
            forms.extend(spellings(refresh.expose()));
        }
        Scrubber {
            forms: sorted(forms),
        }
    }

    /// `text` with every spelling replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.forms {
            if out.contains(f.as_str()) {
                out = out.replace(f.as_str(), REDACTED);
            }
        }
        out
    }

    /// Whether `text` holds any spelling.
    pub fn reveals(&self, text: &str) -> bool {
        self.forms.iter().any(|f| text.contains(f.as_str()))
    }

    /// A provider's free text made safe to keep: control characters dropped (so a secret
    /// split by one is whole again), then scrubbed, then cut to `max` characters — in that
    /// order, so no piece of a secret survives at the cut.
    pub fn clean_text(&self, text: &str, max: usize) -> String {
        let visible: String = text.chars().filter(|c| !c.is_control()).collect();
        let scrubbed = self.scrub(&visible);
        if scrubbed.chars().count() <= max {
            scrubbed
        } else {
            scrubbed.chars().take(max).collect::<String>() + "…"
        }
    }

    /// Scrubs every string and object key of `v`; whether anything was replaced. (JSON may
    /// spell a secret with escapes, `\/` or `\u0073`, which only decoding reveals.)
    pub fn scrub_json(&self, v: &mut Value) -> bool {
        match v {
            Value::String(s) => {
                let clean = self.scrub(s);
                let changed = clean != *s;
                *s = clean;
                changed
            }
            Value::Array(items) => {
                // Every item, not just until the first change.
                let mut changed = false;
                for item in items {
                    changed |= self.scrub_json(item);
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    let clean = self.scrub(&k);
                    if clean != k {
                        changed = true;
                        if let Some(mut item) = map.remove(&k) {
                            self.scrub_json(&mut item);
                            map.insert(clean, item);
                        }
                    } else if let Some(item) = map.get_mut(&k) {
                        changed |= self.scrub_json(item);
                    }
                }
                changed
            }
            _ => false,
        }
    }
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber([{} spellings])", self.forms.len())
    }
}

#[cfg(test)]
mod tests;
