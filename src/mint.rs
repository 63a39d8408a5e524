//! The protocol between an isolate and the minter of a provider's tokens: one coordinator per
//! cache key (in the Worker, a Durable Object) that obtains tokens for every isolate, so that
//! however many isolates miss at once, the provider sees one exchange.
//!
//! An isolate asks for a token with a [`MintRequest`] — on a miss, ahead of a refresh, or
//! because the API refused a token (named by its SHA-256, never sent back) — and gets a
//! [`MintAnswer`]: the token and where the minter found it, or the typed error every waiter
//! of that acquisition gets. Both travel as JSON; nothing here performs I/O.

use crate::error::{ErrorCode, TokenError};
use crate::response::Token;
use crate::secret::Secret;
use crate::token_machine::TokenOrigin;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Why an isolate asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintReason {
    /// Neither its memory nor the store had a fresh token.
    Miss,
    /// The token it serves is past its refresh-ahead point: the minter may replace it in the
    /// background, before anyone has to wait.
    Ahead,
    /// The API refused the token with this SHA-256 ([`token_sha256`]).
    Refused([u8; 32]),
    /// An operator dropped the provider's token (`DELETE /admin/providers/{id}/token`): the
    /// minter forgets its token, in its storage and KV, and says which it was.
    Drop,
}

/// One request to the minter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintRequest {
    /// The provider id.
    pub provider: String,
    /// Why.
    pub reason: MintReason,
}

impl MintRequest {
    /// The request as JSON: `{"provider", "reason": "miss"|"ahead"|"refused", "refused"?: hex}`.
    pub fn to_json(&self) -> String {
        let (reason, refused) = match &self.reason {
            MintReason::Miss => ("miss", None),
            MintReason::Ahead => ("ahead", None),
            MintReason::Refused(h) => ("refused", Some(hex::encode(h))),
            MintReason::Drop => ("drop", None),
        };
        let mut v = json!({"provider": self.provider, "reason": reason});
        if let (Some(h), Some(obj)) = (refused, v.as_object_mut()) {
            obj.insert("refused".into(), Value::String(h));
        }
        v.to_string()
    }

    /// A request written by [`MintRequest::to_json`]; what is wrong otherwise.
    pub fn parse(body: &[u8]) -> Result<MintRequest, String> {
        let v: Value = crate::json_from_bytes(body).ok_or("a mint request is a JSON object")?;
        let provider = v
            .get("provider")
            .and_then(Value::as_str)
            .ok_or("a mint request names its provider")?
            .to_string();
        let reason = match v.get("reason").and_then(Value::as_str) {
            Some("miss") => MintReason::Miss,
            Some("ahead") => MintReason::Ahead,
            Some("drop") => MintReason::Drop,
            Some("refused") => {
                let mut h = [0u8; 32];
                v.get("refused")
                    .and_then(Value::as_str)
                    .and_then(|s| hex::decode_to_slice(s, &mut h).ok())
                    .ok_or("a refusal names the refused token's SHA-256")?;
                MintReason::Refused(h)
            }
            _ => return Err("a mint request's reason is miss, ahead, refused or drop".into()),
        };
        Ok(MintRequest { provider, reason })
    }
}

/// The SHA-256 of a token: how an isolate names a refused token to the minter.
pub fn token_sha256(token: &Secret) -> [u8; 32] {
    Sha256::digest(token.expose().as_bytes()).into()
}

/// The minter's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintAnswer {
    /// The token to use, and where the minter found it (its memory or storage:
    /// [`TokenOrigin::Minter`]; an exchange made for this request:
    /// [`TokenOrigin::Exchange`]).
    Token {
        /// The token.
        token: Token,
        /// Where it came from.
        origin: TokenOrigin,
    },
    /// No token: the error every waiter of the acquisition got.
    Error(TokenError),
    /// The answer to [`MintReason::Drop`]: the SHA-256 of each token the minter dropped.
    Dropped(Vec<[u8; 32]>),
}

impl MintAnswer {
    /// The answer as an HTTP status and a JSON body: 200 `{"token": <stored token>, "origin",
    /// "ms"?}`, or 502 `{"error": {code, status, provider_error, description,
    /// retry_after_ms}}` (the error's own fields; its raw body stays with the minter).
    pub fn to_http(&self) -> (u16, String) {
        match self {
            MintAnswer::Token { token, origin } => {
                let ms = match origin {
                    TokenOrigin::Exchange { ms } => Some(*ms),
                    _ => None,
                };
                let body = json!({"token": token.to_stored(), "origin": origin.as_str(), "ms": ms});
                (200, body.to_string())
            }
            MintAnswer::Dropped(hashes) => {
                let hashes: Vec<String> = hashes.iter().map(hex::encode).collect();
                (200, json!({ "dropped": hashes }).to_string())
            }
            MintAnswer::Error(e) => {
                let body = json!({"error": {
                    "code": e.code.as_str(), "status": e.status,
                    "provider_error": e.provider_error, "description": e.description,
                    "retry_after_ms": e.retry_after_ms,
                }});
                (502, body.to_string())
            }
        }
    }

    /// An answer written by [`MintAnswer::to_http`] with `status`; what is wrong otherwise
    /// (the minter answered something else: it is treated as unreachable).
    pub fn parse(status: u16, body: &[u8]) -> Result<MintAnswer, String> {
        let v: Value = crate::json_from_bytes(body)
            .ok_or_else(|| format!("the minter answered HTTP {status} without JSON"))?;
        match status {
            200 if v.get("dropped").is_some() => {
                let list = v
                    .get("dropped")
                    .and_then(Value::as_array)
                    .ok_or("the minter's dropped tokens are not a list")?;
                let mut hashes = Vec::new();
                for text in list {
                    let mut h = [0u8; 32];
                    text.as_str()
                        .and_then(|t| hex::decode_to_slice(t, &mut h).ok())
                        .ok_or("the minter's dropped hash is not 64 hex digits")?;
                    hashes.push(h);
                }
                Ok(MintAnswer::Dropped(hashes))
            }
            200 => {
                let token = v
                    .get("token")
                    .and_then(Value::as_str)
                    .and_then(Token::from_stored)
                    .ok_or("the minter's answer holds no token")?;
                let origin = match v.get("origin").and_then(Value::as_str) {
                    Some("exchange") => TokenOrigin::Exchange {
                        ms: v.get("ms").and_then(Value::as_u64).unwrap_or(0),
                    },
                    _ => TokenOrigin::Minter,
                };
                Ok(MintAnswer::Token { token, origin })
            }
            502 => {
                let e = v.get("error").ok_or("the minter's error holds no error")?;
                let code = e
                    .get("code")
                    .and_then(Value::as_str)
                    .and_then(ErrorCode::parse)
                    .ok_or("the minter's error has no known code")?;
                let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
                Ok(MintAnswer::Error(TokenError {
                    code,
                    status: e
                        .get("status")
                        .and_then(Value::as_u64)
                        .and_then(|s| u16::try_from(s).ok()),
                    provider_error: text("provider_error"),
                    description: text("description").unwrap_or_default(),
                    retry_after_ms: e.get("retry_after_ms").and_then(Value::as_u64),
                    raw_body: None,
                }))
            }
            other => Err(format!("the minter answered HTTP {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token {
            access_token: Secret::new("tok-1"),
            token_type: "Bearer".into(),
            issued_at_ms: 1_000,
            expires_at_ms: 3_601_000,
            scope: Some("read".into()),
            refresh_token: Some(Secret::new("ref-1")),
        }
    }

    #[test]
    fn requests_round_trip() {
        let refused = token_sha256(&Secret::new("tok-0"));
        for reason in [
            MintReason::Miss,
            MintReason::Ahead,
            MintReason::Refused(refused),
            MintReason::Drop,
        ] {
            let r = MintRequest {
                provider: "optoro".into(),
                reason,
            };
            let json = r.to_json();
            assert_eq!(MintRequest::parse(json.as_bytes()), Ok(r));
            assert!(!json.contains("tok-0"), "only the token's hash: {json}");
        }
        for bad in [
            "",
            "[]",
            r#"{"reason":"miss"}"#,
            r#"{"provider":"p","reason":"now"}"#,
            r#"{"provider":"p","reason":"refused"}"#,
            r#"{"provider":"p","reason":"refused","refused":"abcd"}"#,
        ] {
            assert!(MintRequest::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_round_trip() {
        for origin in [TokenOrigin::Minter, TokenOrigin::Exchange { ms: 42 }] {
            let a = MintAnswer::Token {
                token: token(),
                origin,
            };
            let (status, body) = a.to_http();
            assert_eq!(MintAnswer::parse(status, body.as_bytes()), Ok(a));
        }
        for dropped in [vec![], vec![[7u8; 32], [8u8; 32]]] {
            let (status, body) = MintAnswer::Dropped(dropped.clone()).to_http();
            assert_eq!(
                MintAnswer::parse(status, body.as_bytes()),
                Ok(MintAnswer::Dropped(dropped.clone()))
            );
        }
        let mut e = TokenError::new(ErrorCode::RateLimited, "token endpoint answered HTTP 429");
        e.status = Some(429);
        e.provider_error = Some("slow_down".into());
        e.retry_after_ms = Some(120_000);
        e.raw_body = Some("not sent to the isolate".into());
        let (status, body) = MintAnswer::Error(e.clone()).to_http();
        assert!(!body.contains("not sent"), "{body}");
        e.raw_body = None;
        assert_eq!(
            MintAnswer::parse(status, body.as_bytes()),
            Ok(MintAnswer::Error(e))
        );
        for (status, bad) in [
            (200, "{}"),
            (200, "nope"),
            (502, r#"{"error":{"code":"whatever"}}"#),
            (500, r#"{"error":"x"}"#),
            (404, "{}"),
        ] {
            assert!(
                MintAnswer::parse(status, bad.as_bytes()).is_err(),
                "{status} {bad}"
            );
        }
    }

    #[test]
    fn every_error_code_parses_back() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }
}
