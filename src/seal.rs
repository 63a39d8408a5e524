//! Encryption of what tokengate keeps in Workers KV — provider tokens and the records of the
//! caller tokens it issued — at rest (AES-256-GCM, NIST SP 800-38D).
//!
//! The sealed form is `base64(nonce ‖ ciphertext ‖ tag)`. The KV key is the associated data,
//! so a value copied under another key does not open, and without the key nothing can be
//! written that does. The nonce is an input (12 random bytes
//! from the caller): the core draws no randomness itself.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// An AES-256-GCM key (the seal subkey of [`crate::keys::Keys`]).
#[derive(Clone)]
pub struct SealKey(Aes256Gcm);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

impl SealKey {
    /// The key `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        SealKey(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
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

    #[test]
    fn round_trip_and_binding() {
        let k = SealKey::new(&[7; 32]);
        let sealed = k.seal([7; 12], b"key-a", b"the token");
        assert!(!sealed.contains("the token"));
        assert_eq!(
            k.open(b"key-a", &sealed).as_deref(),
            Some(&b"the token"[..])
        );
        assert_eq!(k.open(b"key-b", &sealed), None);
        let other = SealKey::new(&[9; 32]);
        assert_eq!(other.open(b"key-a", &sealed), None);
        assert_eq!(k.open(b"key-a", "not base64!"), None);
        assert_eq!(k.open(b"key-a", "AAAA"), None);
    }
}
