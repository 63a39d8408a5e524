//! Cache keys for provider tokens. A key changes whenever anything that shapes the token
//! changes — provider, endpoint, client, auth style, scope, audience, resource, extra params —
//! and when the client secret is rotated (via a one-way fingerprint). It never contains the
//! secret.

use crate::core::config::TokenSettings;
use crate::core::secret::Secret;
use sha2::{Digest, Sha256};

/// KV key prefix of provider tokens.
pub const TOKEN_KEY_PREFIX: &str = "tg:v1:ptok:";

/// The cache key of `settings`'s token for provider `provider`.
pub fn token_cache_key(provider: &str, settings: &TokenSettings, secret: &Secret) -> String {
    let mut h = Sha256::new();
    let mut field = |v: &str| {
        // Length-prefixed, so no two field lists hash alike.
        h.update((v.len() as u64).to_be_bytes());
        h.update(v.as_bytes());
    };
    field("tokengate/v1");
    field(provider);
    field(settings.token_url.as_str());
    field(&settings.client_id);
    field(settings.auth_style.as_str());
    for v in [&settings.scope, &settings.audience, &settings.resource] {
        field(v.as_deref().unwrap_or("\u{0}"));
    }
    for (k, v) in &settings.token_params {
        field(k);
        field(v);
    }
    field(&secret_fingerprint(secret));
    format!("{TOKEN_KEY_PREFIX}{}", hex::encode(h.finalize()))
}

/// A one-way fingerprint of a client secret (domain-separated SHA-256, hex).
pub fn secret_fingerprint(secret: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(b"tokengate/secret-fingerprint/v1\0");
    h.update(secret.expose().as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::TokenSettings;
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
        let base = token_cache_key("p", &settings(json!({})), &s);
        assert_eq!(base.len(), TOKEN_KEY_PREFIX.len() + 64);
        assert_eq!(base, token_cache_key("p", &settings(json!({})), &s));
        assert!(!base.contains("s3cret"));
        let variants = [
            token_cache_key("q", &settings(json!({})), &s),
            token_cache_key("p", &settings(json!({})), &Secret::new("rotated")),
            token_cache_key("p", &settings(json!({"scope": "read"})), &s),
            token_cache_key("p", &settings(json!({"audience": "x"})), &s),
            token_cache_key("p", &settings(json!({"resource": "https://r"})), &s),
            token_cache_key("p", &settings(json!({"tokenParams": {"a": "b"}})), &s),
            token_cache_key("p", &settings(json!({"clientId": "abd"})), &s),
            token_cache_key("p", &settings(json!({"authStyle": "json_body"})), &s),
            token_cache_key(
                "p",
                &settings(json!({"tokenUrl": "https://auth.example/t2"})),
                &s,
            ),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v, &base, "variant {i}");
        }
        // Timeouts and retry policy do not shape the token: same key.
        assert_eq!(
            base,
            token_cache_key("p", &settings(json!({"timeoutMs": 5})), &s)
        );
    }

    /// A change of this value invalidates every deployed cache: do it on purpose only.
    #[test]
    fn golden_key() {
        let key = token_cache_key("optoro", &settings(json!({})), &Secret::new("s3cret"));
        assert_eq!(key, GOLDEN);
    }

    const GOLDEN: &str =
        "tg:v1:ptok:04b58ecffdbcf1915de98aa893071be4ab78f338ae49a322228743c523b00dcd";
}
