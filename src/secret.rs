//! Secret strings that never print.

use std::fmt;
use subtle::ConstantTimeEq;

/// A secret value (client secret, access token). `Debug` and `Display` print `[redacted]`, so a
/// secret cannot reach a log line or an error message by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `other` in time independent of where they differ.
    pub fn ct_eq(&self, other: &str) -> bool {
        ct_eq_bytes(self.0.as_bytes(), other.as_bytes())
    }
}

/// The spellings under which a provider could echo `secret` back in an error body: as is,
/// form-urlencoded, JSON-escaped, and inside the HTTP Basic credentials of `client_id` as RFC
/// 6749 §2.3.1 and as RFC 7617 encode them. Forms shorter than 4 bytes are left out (too common to replace).
pub fn secret_forms(client_id: &str, secret: &Secret) -> Vec<String> {
    use base64::Engine;
    let raw = secret.expose();
    let form: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
    let json = serde_json::to_string(raw).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    // HTTP Basic both ways: RFC 6749 §2.3.1 form-encodes id and secret first, RFC 7617 (a
    // token API's) does not.
    let basic = b64(format!("{id}:{form}"));
    let basic_plain = b64(format!("{client_id}:{raw}"));
    let mut forms = vec![raw.to_string(), form, json, basic, basic_plain];
    forms.retain(|f| f.len() >= 4);
    // Longest first, so a form containing another is replaced whole; equal forms end up side
    // by side for dedup.
    forms.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    forms
}

/// Replaces every form in `forms` (see [`secret_forms`]) with `[redacted]`.
pub fn scrub(text: &str, forms: &[String]) -> String {
    let mut out = text.to_string();
    for f in forms {
        if out.contains(f.as_str()) {
            out = out.replace(f.as_str(), "[redacted]");
        }
    }
    out
}

/// Constant-time equality of two byte strings (length is not hidden).
pub fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_every_echoed_form() {
        let forms = secret_forms("cid", &Secret::new("ab+c/d=e \"q\""));
        let echoes = [
            r#"client_secret=ab+c/d=e "q" rejected"#,
            "client_secret=ab%2Bc%2Fd%3De+%22q%22&grant_type=client_credentials",
            r#"{"client_secret":"ab+c/d=e \"q\""}"#,
            "Authorization: Basic Y2lkOmFiJTJCYyUyRmQlM0RlKyUyMnElMjI=",
            // RFC 7617's plain encoding, as a token API receives it.
            "Authorization: Basic Y2lkOmFiK2MvZD1lICJxIg==",
        ];
        for e in echoes {
            let out = scrub(e, &forms);
            assert!(out.contains("[redacted]"), "{e} -> {out}");
            assert!(
                !out.contains("ab+c") && !out.contains("ab%2Bc") && !out.contains("Y2lkOmFi"),
                "{out}"
            );
        }
        assert_eq!(scrub("nothing here", &forms), "nothing here");
        // A 2-byte secret is too common a string to replace; its Basic form still is.
        assert_eq!(
            secret_forms("c", &Secret::new("ab")),
            vec!["YzphYg==".to_string()]
        );
    }

    #[test]
    fn never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
        assert!(s.ct_eq("hunter2"));
        assert!(!s.ct_eq("hunter3"));
        assert!(!s.ct_eq("hunter22"));
    }
}
