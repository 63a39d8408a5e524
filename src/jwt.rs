//! Unverified JWT claim decoding (RFC 7519 §7.2 steps 1–7 without the signature check).
//!
//! Used only to learn a token's `exp` when the token response omits `expires_in`, and for
//! display. The gateway never trusts these claims for authorization.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The claims of a compact JWS, or `None` if `token` is not one.
pub fn decode_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = crate::json_from_bytes(&decode_part(header)?)?;
    header.get("alg")?;
    match crate::json_from_bytes(&decode_part(payload)?)? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

fn decode_part(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

/// The `exp` claim (NumericDate, seconds; fractions allowed, as in the partner API's tokens:
/// `docs/providers.md#partner-token-response`) in milliseconds.
pub fn expiry_ms(token: &str) -> Option<u64> {
    let exp = decode_claims(token)?.get("exp")?.as_f64()?;
    (exp.is_finite() && exp > 0.0).then_some((exp * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_token_exp() {
        // The payload of the partner API's example JWT (signature shortened).
        let payload = "eyJhdWQiOiI5YjFlODJhNy0wYTU5LTRlN2UtYWRkNS1iOWZmYTM3YWFkZTEiLCJqdGkiOiI4MTc1NWE2YTdkYWYwMzgyZjBmMjcyM2EyY2M5NTFmODMwZjUzM2FmYjQ2Yjc1ZDliOWE0Y2VhN2QyMTVlZTk5MjZhOTMyNTk1NjdjYmY3OCIsImlhdCI6MTcxMDIyMDAzMS41ODMxMTIsIm5iZiI6MTcxMDIyMDAzMS41ODMxMTQsImV4cCI6MTcxMDIyMzYzMS41Nzc0NzgsInN1YiI6IiIsInNjb3BlcyI6WyJib29raW5nczpjcmVhdGUiLCJib29raW5nczpkZWxldGUiXSwidXNlcl9pZCI6Ijg0MjkwMmRiLTU0ZTUtNDYxNC1iMzQ4LTAwMmU4Y2U1ZGExMiIsInBhcnRuZXJfaWQiOiJmMzExMjBlZS1iNWNiLTQxYzQtOTUyOS0yODhkMDJlOTFjZDYiLCJpc190ZXN0IjpmYWxzZX0";
        let token = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{payload}.Lk-68XAooy");
        assert_eq!(expiry_ms(&token), Some(1_710_223_631_577));
        let claims = decode_claims(&token).unwrap();
        assert_eq!(claims["scopes"][0], "bookings:create");
    }

    #[test]
    fn not_a_jwt() {
        assert_eq!(decode_claims("8xB2vvU4ytrl1zYQ_EdGUQrdFJmuCMck"), None);
        assert_eq!(decode_claims("a.b.c"), None);
        assert_eq!(decode_claims("a.b.c.d"), None);
        // Header without alg.
        assert_eq!(decode_claims("e30.e30.x"), None);
    }
}
