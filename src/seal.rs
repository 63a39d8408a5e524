//! Encryption of cached provider tokens at rest (AES-256-GCM, NIST SP 800-38D).
//!
//! The sealed form is `base64(nonce ‖ ciphertext ‖ tag)`. The cache key is the associated data,
//! so a value copied under another key does not open. The nonce is an input (12 random bytes
//! from the caller): the core draws no randomness itself.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::ConfigError;

/// A parsed `TOKENGATE_KEY`: the AES-256-GCM key and, derived from it, the pepper of cache-key
/// fingerprints (HMAC-SHA256 of a fixed label, so the two uses never share key material).
#[derive(Clone)]
pub struct SealKey(Aes256Gcm, [u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

impl SealKey {
    /// Parses base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
    pub fn from_base64(name: &str, b64: &str) -> Result<Self, ConfigError> {
        let t = b64.trim();
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.trim_end_matches('='))
            })
            .map_err(|_| ConfigError::global(name, "is not valid base64"))?;
        if bytes.len() != 32 {
            return Err(ConfigError::global(
                name,
                format!("must decode to 32 bytes, not {}", bytes.len()),
            ));
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).expect("any key length");
        mac.update(b"tokengate/cache-key-pepper/v1");
        let pepper: [u8; 32] = mac.finalize().into_bytes().into();
        Ok(SealKey(
            Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            pepper,
        ))
    }

    /// The pepper for [`crate::cache_key::token_cache_key`].
    pub fn cache_pepper(&self) -> &[u8] {
        &self.1
    }

    /// Encrypts `plaintext` bound to `aad`.
    pub fn seal(&self, nonce: [u8; 12], aad: &[u8], plaintext: &[u8]) -> String {
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        STANDARD.encode(out)
    }

    /// Decrypts a sealed value; `None` when it was sealed with another key, under another
    /// `aad`, or is damaged.
    pub fn open(&self, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let raw = STANDARD.decode(sealed.trim()).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn round_trip_and_binding() {
        let k = SealKey::from_base64("TOKENGATE_KEY", KEY).unwrap();
        let sealed = k.seal([7; 12], b"key-a", b"the token");
        assert!(!sealed.contains("the token"));
        assert_eq!(
            k.open(b"key-a", &sealed).as_deref(),
            Some(&b"the token"[..])
        );
        assert_eq!(k.open(b"key-b", &sealed), None);
        let other = SealKey::from_base64("K", &STANDARD.encode([9u8; 32])).unwrap();
        assert_eq!(other.open(b"key-a", &sealed), None);
        assert_eq!(k.open(b"key-a", "not base64!"), None);
        assert_eq!(k.open(b"key-a", "AAAA"), None);
    }

    #[test]
    fn pepper_is_derived_and_distinct_from_the_key() {
        let k = SealKey::from_base64("K", KEY).unwrap();
        let other = SealKey::from_base64("K", &STANDARD.encode([9u8; 32])).unwrap();
        assert_eq!(k.cache_pepper().len(), 32);
        assert_ne!(k.cache_pepper(), other.cache_pepper());
        assert_ne!(k.cache_pepper(), STANDARD.decode(KEY).unwrap().as_slice());
        assert_eq!(
            k.cache_pepper(),
            SealKey::from_base64("K", KEY).unwrap().cache_pepper()
        );
    }

    #[test]
    fn key_errors_name_the_key() {
        let e = SealKey::from_base64("TOKENGATE_KEY", "c2hvcnQ=").unwrap_err();
        assert_eq!(
            e.to_string(),
            "TOKENGATE_KEY: must decode to 32 bytes, not 5"
        );
        let e = SealKey::from_base64("TOKENGATE_KEY", "***").unwrap_err();
        assert!(e.to_string().starts_with("TOKENGATE_KEY:"));
    }
}
