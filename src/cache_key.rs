//! Cache keys for provider tokens. A key changes whenever anything that shapes the token
//! changes — provider, endpoint, client, auth style, scope, audience, resource, extra params,
//! extra headers, a token API's creation body — and when the client secret is rotated (via a one-way fingerprint), so two
//! configurations never share a token (one with another scope, say). It never contains the
//! secret. The fingerprint is an HMAC under a deployment key (the Worker derives it from
//! `TOKENGATE_KEY`), so someone who can list the KV namespace cannot test guesses of a weak
//! client secret offline.

use crate::config::TokenSettings;
use crate::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// KV key prefix of provider tokens.
pub const TOKEN_KEY_PREFIX: &str = "tg:v2:ptok:";

/// The cache key of `settings`'s token for provider `provider`; `pepper` keys the secret's
/// fingerprint.
pub fn token_cache_key(
    provider: &str,
    settings: &TokenSettings,
    secret: &Secret,
    pepper: &[u8],
) -> String {
    token_cache_key_bound(provider, settings, secret, pepper, None)
}

/// [`token_cache_key`] for a provider with proof of possession: `secret` is the client's
/// credential (its client secret, or its private key for `private_key_jwt`), and `dpop_key`
/// identifies the DPoP key the token is bound to (the configured key, or an id of the key an
/// isolate generated), fingerprinted like the secret: a token bound to one key is never served
/// to the holder of another (RFC 9449 §6).
pub fn token_cache_key_bound(
    provider: &str,
    settings: &TokenSettings,
    secret: &Secret,
    pepper: &[u8],
    dpop_key: Option<&Secret>,
) -> String {
    let mut h = Sha256::new();
    let mut field = |v: &str| {
        // Length-prefixed, so no two field lists hash alike.
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    };
    field("tokengate/v2");
    field(provider);
    field(settings.token_url.as_str());
    field(&settings.client_id);
    field(settings.auth_style.as_str());
    for v in [&settings.scope, &settings.audience, &settings.resource] {
        field(v.as_deref().unwrap_or("\u{0}"));
    }
    // Each map counted first, so no pair can move from one map to the other.
    for map in [&settings.token_params, &settings.token_headers] {
        field(&map.len().to_string());
        for (k, v) in map {
            field(k);
            field(v);
        }
    }
    // A token API's creation body (scopes, ttl, limits) shapes its tokens as scope does; only
    // that dialect has one, so the other dialects' keys are unchanged by it.
    if let Some(body) = &settings.token_body {
        field(&serde_json::Value::Object(body.clone()).to_string());
    }
    field(&secret_fingerprint(secret, pepper));
    // Proof of possession shapes the token too; absent, the keys of the other styles are
    // unchanged.
    if settings.auth_style == crate::config::AuthStyle::PrivateKeyJwt {
        field(settings.client_key_alg.as_str());
        field(settings.kid.as_deref().unwrap_or("\u{0}"));
        field(settings.assertion_audience());
    }
    if let Some(k) = dpop_key.filter(|_| settings.dpop) {
        field("dpop");
        field(&secret_fingerprint(k, pepper));
    }
    format!("{TOKEN_KEY_PREFIX}{}", hex::encode(h.finalize()))
}

/// A one-way fingerprint of a client secret: HMAC-SHA256 under `pepper`, domain-separated, hex.
pub fn secret_fingerprint(secret: &Secret, pepper: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(pepper).expect("HMAC takes a key of any length");
    mac.update(b"tokengate/secret-fingerprint/v1\0");
    mac.update(secret.expose().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenSettings;
    use serde_json::json;

    fn settings(extra: serde_json::Value) -> TokenSettings {
        let mut v = json!({"tokenUrl": "https://auth.example/token", "clientId": "abc"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        TokenSettings::parse_camel(&v, &[]).unwrap()
    }

    #[test]
    fn stable_and_sensitive() {
        let s = Secret::new("s3cret");
        let base = token_cache_key("p", &settings(json!({})), &s, b"");
        assert_eq!(base.len(), TOKEN_KEY_PREFIX.len() + 64);
        assert_eq!(base, token_cache_key("p", &settings(json!({})), &s, b""));
        assert!(!base.contains("s3cret"));
        let variants = [
            token_cache_key("q", &settings(json!({})), &s, b""),
            token_cache_key("p", &settings(json!({})), &Secret::new("rotated"), b""),
            token_cache_key("p", &settings(json!({"scope": "read"})), &s, b""),
            token_cache_key("p", &settings(json!({"audience": "x"})), &s, b""),
            token_cache_key("p", &settings(json!({"resource": "https://r"})), &s, b""),
            token_cache_key("p", &settings(json!({"tokenParams": {"a": "b"}})), &s, b""),
            token_cache_key("p", &settings(json!({"tokenHeaders": {"a": "b"}})), &s, b""),
            token_cache_key(
                "p",
                &settings(json!({"tokenHeaders": {"X-Tenant": "2"}})),
                &s,
                b"",
            ),
            token_cache_key("p", &settings(json!({"clientId": "abd"})), &s, b""),
            token_cache_key("p", &settings(json!({"authStyle": "json_body"})), &s, b""),
            token_cache_key(
                "p",
                &settings(json!({"tokenUrl": "https://auth.example/t2"})),
                &s,
                b"",
            ),
            // Another deployment key: another fingerprint.
            token_cache_key("p", &settings(json!({})), &s, b"other deployment"),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v, &base, "variant {i}");
            // Pairwise too: the same pair as a parameter or as a header is another key.
            for (j, w) in variants.iter().enumerate().skip(i + 1) {
                assert_ne!(v, w, "variants {i} and {j}");
            }
        }
        // Timeouts and retry policy do not shape the token: same key.
        assert_eq!(
            base,
            token_cache_key("p", &settings(json!({"timeoutMs": 5})), &s, b"")
        );
    }

    /// A change of this value invalidates every deployed cache: do it on purpose only.
    #[test]
    fn golden_key() {
        let key = token_cache_key(
            "optoro",
            &settings(json!({})),
            &Secret::new("s3cret"),
            b"pepper",
        );
        assert_eq!(key, GOLDEN);
    }

    /// Computed independently (Python's `hashlib`/`hmac` over the same length-prefixed fields).
    const GOLDEN: &str =
        "tg:v2:ptok:3400abe807d19e863bd9dbf156c9ddff472cbd028012660db20838dc5d995184";
}
