//! Workers KV, the gateway's one store: provider tokens sealed at rest (the flow's
//! [`TokenStore`]), and the records of caller tokens the gateway issued, under the SHA-256 of
//! each token.

use crate::runtime::random_bytes;
use std::rc::Rc;
use tokengate::callers::{caller_token_key, CallerTokenRecord};
use tokengate::flow::TokenStore;
use tokengate::seal::SealKey;
use worker::kv::KvStore;

/// Provider tokens in Workers KV, sealed by `TOKENGATE_KEY` (AES-256-GCM, the KV key as
/// associated data). A value that does not open (rotated key, tampering) is a miss.
#[derive(Clone)]
pub struct KvTokenStore {
    /// The namespace.
    pub kv: KvStore,
    /// The at-rest key.
    pub key: Rc<SealKey>,
}

impl TokenStore for KvTokenStore {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        let sealed = self.kv.get(key).text().await.map_err(|e| e.to_string())?;
        Ok(sealed
            .and_then(|s| self.key.open(key.as_bytes(), &s))
            .and_then(|b| String::from_utf8(b).ok()))
    }

    async fn put(&self, key: &str, value: String, ttl_s: u64) -> Result<(), String> {
        let nonce = random_bytes().ok_or("no randomness for the nonce")?;
        let sealed = self.key.seal(nonce, key.as_bytes(), value.as_bytes());
        self.kv
            .put(key, sealed)
            .map_err(|e| e.to_string())?
            .expiration_ttl(ttl_s)
            .execute()
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.kv.delete(key).await.map_err(|e| e.to_string())
    }
}

/// The record of caller token `token`: `Ok(None)` when KV has none (unknown or expired) or it
/// does not parse; `Err` when KV failed.
pub async fn caller_record(kv: &KvStore, key: &str) -> Result<Option<CallerTokenRecord>, String> {
    let text = kv.get(key).text().await.map_err(|e| e.to_string())?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Stores the record of a newly issued caller token for `ttl_s` seconds; returns its KV key.
pub async fn put_caller_record(
    kv: &KvStore,
    token: &str,
    record: &CallerTokenRecord,
    ttl_s: u64,
) -> Result<String, String> {
    let key = caller_token_key(token);
    let value = serde_json::to_string(record).map_err(|e| e.to_string())?;
    kv.put(&key, value)
        .map_err(|e| e.to_string())?
        .expiration_ttl(ttl_s)
        .execute()
        .await
        .map_err(|e| e.to_string())?;
    Ok(key)
}
