//! The deployment key `TOKENGATE_KEY` and the subkeys derived from it with HKDF-SHA256
//! (RFC 5869): one subkey per use, so no two uses ever share key material.
//!
//! | subkey | info label | used for |
//! | --- | --- | --- |
//! | seal | `tokengate/v1/seal` | AES-256-GCM of provider tokens and caller-token records in KV |
//! | cache pepper | `tokengate/v1/cache-key` | HMAC of client secrets inside provider cache keys |
//! | token MAC | `tokengate/v1/caller-token` | the tag inside every issued caller token and client secret ([`crate::credentials`]), and caller registration fingerprints |
//!
//! Rotating `TOKENGATE_KEY` changes every subkey: cached provider tokens become misses and
//! every issued caller token and client secret stops verifying (callers ask for a new token).

use crate::config::ConfigError;
use crate::seal::SealKey;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;

/// The HKDF salt: fixed, as RFC 5869 §3.1 allows for a uniformly random input key.
const SALT: &[u8] = b"tokengate/v1/hkdf-salt";

/// The subkeys of one `TOKENGATE_KEY`.
#[derive(Clone)]
pub struct Keys {
    seal: SealKey,
    cache_pepper: [u8; 32],
    token_mac: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

impl Keys {
    /// Parses base64 (standard or URL-safe, padded or not) of exactly 32 bytes, as the config
    /// value `name`, and derives the subkeys.
    pub fn from_base64(name: &str, b64: &str) -> Result<Self, ConfigError> {
        let t = b64.trim();
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
            .map_err(|_| ConfigError::global(name, "is not valid base64"))?;
        let ikm: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            ConfigError::global(
                name,
                format!("must decode to 32 bytes, not {}", bytes.len()),
            )
        })?;
        Ok(Keys::derive(&ikm))
    }

    /// The subkeys of the 32-byte deployment key `ikm`.
    pub fn derive(ikm: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(SALT), ikm);
        let expand = |info: &[u8]| {
            let mut okm = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
            let _ = hk.expand(info, &mut okm);
            okm
        };
        Keys {
            seal: SealKey::new(&expand(b"tokengate/v1/seal")),
            cache_pepper: expand(b"tokengate/v1/cache-key"),
            token_mac: expand(b"tokengate/v1/caller-token"),
        }
    }

    /// The AES-256-GCM key of everything sealed in KV.
    pub fn seal(&self) -> &SealKey {
        &self.seal
    }

    /// The pepper of [`crate::cache_key::token_cache_key`].
    pub fn cache_pepper(&self) -> &[u8] {
        &self.cache_pepper
    }

    /// The HMAC key of the tags of issued credentials and of registration fingerprints.
    pub fn token_mac(&self) -> &[u8] {
        &self.token_mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn subkeys_are_distinct_stable_and_not_the_key() {
        let k = Keys::from_base64("TOKENGATE_KEY", KEY).unwrap();
        let raw = STANDARD.decode(KEY).unwrap();
        let subkeys = [k.cache_pepper(), k.token_mac()];
        assert_ne!(subkeys[0], subkeys[1]);
        for s in subkeys {
            assert_eq!(s.len(), 32);
            assert_ne!(s, raw.as_slice());
        }
        // The seal subkey is neither the raw key nor another subkey: a value sealed under the
        // raw key does not open.
        let raw_seal = SealKey::new(raw.as_slice().try_into().unwrap());
        let sealed = raw_seal.seal([1; 12], b"k", b"v");
        assert_eq!(k.seal().open(b"k", &sealed), None);
        let again = Keys::from_base64("K", KEY.trim_end_matches('=')).unwrap();
        assert_eq!(again.token_mac(), k.token_mac());
        let other = Keys::derive(&[9; 32]);
        assert_ne!(other.token_mac(), k.token_mac());
        assert_ne!(other.cache_pepper(), k.cache_pepper());
    }

    /// The derivation, pinned to a value computed independently (Python's `hmac`: HKDF-Extract
    /// then one HKDF-Expand block, RFC 5869 §2). A change invalidates every deployed cache and
    /// caller token; do it on purpose only.
    #[test]
    fn golden_subkey() {
        let k = Keys::derive(&[0x0b; 32]);
        assert_eq!(
            hex::encode(k.token_mac()),
            GOLDEN_TOKEN_MAC,
            "the derivation changed"
        );
    }

    const GOLDEN_TOKEN_MAC: &str =
        "cc0d7998f11d679105a4c8c9e3bdf5cb133505a8b313f56bc842b3702b074d5d";

    #[test]
    fn key_errors_name_the_key() {
        let e = Keys::from_base64("TOKENGATE_KEY", "c2hvcnQ=").unwrap_err();
        assert_eq!(
            e.to_string(),
            "TOKENGATE_KEY: must decode to 32 bytes, not 5"
        );
        let e = Keys::from_base64("TOKENGATE_KEY", "***").unwrap_err();
        assert!(e.to_string().starts_with("TOKENGATE_KEY:"));
        assert!(!format!("{:?}", Keys::derive(&[1; 32])).contains('1'));
    }
}
