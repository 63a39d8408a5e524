//! Workers KV, the gateway's one store: provider tokens (the flow's [`TokenStore`]), the
//! records of the caller tokens the gateway issued to static callers (under the SHA-256 of each
//! token). Everything is sealed with the seal subkey of `TOKENGATE_KEY`, bound to its KV
//! key.

use crate::js::{self, KvNamespace};
use crate::runtime::{random_bytes, WorkerRuntime};
use std::rc::Rc;
use tokengate::caller_tokens::{caller_token_key, open_record, seal_record, CallerTokenRecord};
use tokengate::flow::Runtime;
use tokengate::flow::TokenStore;
use tokengate::keys::Keys;
use wasm_bindgen::JsValue;

/// Provider tokens in Workers KV, sealed (AES-256-GCM, the KV key as associated data). A value
/// that does not open (rotated key, tampering) is a miss. In the minter the store has an
/// [`Authority`] besides: the object's own storage, read first and written through to KV. (One
/// store type for both keeps one copy of the token flow in the wasm.)
#[derive(Clone)]
pub struct KvTokenStore {
    /// The namespace.
    pub kv: KvNamespace,
    /// The subkeys of `TOKENGATE_KEY`.
    pub keys: Rc<Keys>,
    /// In the minter: its storage.
    pub authority: Option<Authority>,
    /// Nothing is read or written: the tokens of a provider whose DPoP key this isolate
    /// generated are bound to a key no other isolate holds, so sharing them would only cost KV
    /// writes no one reads.
    pub memory_only: bool,
}

/// The minter's own storage: the authority on its token (KV is a cache that may lag). A token
/// KV holds that the storage does not (written in isolate mode) is adopted rather than
/// exchanged anew.
#[derive(Clone)]
pub struct Authority {
    /// The Durable Object's storage.
    pub storage: Rc<worker::worker_sys::DurableObjectStorage>,
    /// The clock an entry's lifetime is read with.
    pub rt: WorkerRuntime,
}

impl Authority {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        let raw = js::settle_promise(self.storage.get(key)).await?;
        Ok(raw
            .as_string()
            .and_then(|s| stored_value(&s, self.rt.now_ms())))
    }

    async fn put(&self, key: &str, value: &str, ttl_s: u64) -> Result<(), String> {
        let until = self.rt.now_ms().saturating_add(ttl_s * 1000);
        let entry = serde_json::json!({"value": value, "until": until}).to_string();
        js::settle_promise(self.storage.put(key, JsValue::from_str(&entry)))
            .await
            .map(drop)
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        js::settle_promise(self.storage.delete(key)).await.map(drop)
    }
}

/// The value of a storage entry (`{"value", "until"}`) still valid at `now_ms`.
fn stored_value(entry: &str, now_ms: u64) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(entry).ok()?;
    let until = v.get("until")?.as_u64()?;
    (now_ms < until).then(|| v.get("value")?.as_str().map(str::to_string))?
}

fn nonce() -> Result<[u8; 12], String> {
    random_bytes().ok_or_else(|| "no randomness for the nonce".to_string())
}

impl KvTokenStore {
    /// The store of an isolate: KV only.
    pub fn new(kv: &KvNamespace, keys: &Rc<Keys>) -> Self {
        KvTokenStore {
            kv: kv.clone(),
            keys: keys.clone(),
            authority: None,
            memory_only: false,
        }
    }
}

impl TokenStore for KvTokenStore {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        if self.memory_only {
            return Ok(None);
        }
        if let Some(a) = &self.authority {
            if let Some(v) = a.get(key).await? {
                return Ok(Some(v));
            }
        }
        let sealed = self.kv.get(key).await?;
        Ok(sealed
            .and_then(|s| self.keys.seal().open(key.as_bytes(), &s))
            .and_then(|b| String::from_utf8(b).ok()))
    }

    async fn put(&self, key: &str, value: String, ttl_s: u64) -> Result<(), String> {
        if self.memory_only {
            return Ok(());
        }
        if let Some(a) = &self.authority {
            a.put(key, &value, ttl_s).await?;
        }
        let sealed = self
            .keys
            .seal()
            .seal(nonce()?, key.as_bytes(), value.as_bytes());
        self.kv.put(key, &sealed, Some(ttl_s)).await
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        if self.memory_only {
            return Ok(());
        }
        if let Some(a) = &self.authority {
            a.delete(key).await?;
        }
        self.kv.delete(key).await
    }
}

/// The record of the caller token under KV key `key`: `Ok(None)` when KV has none (unknown or
/// expired) or it does not open; `Err` when KV failed.
pub async fn caller_record(
    kv: &KvNamespace,
    key: &str,
    keys: &Keys,
) -> Result<Option<CallerTokenRecord>, String> {
    let sealed = kv.get(key).await?;
    Ok(sealed.and_then(|s| open_record(&s, key, keys)))
}

/// Stores the sealed record of a newly issued caller token for `ttl_s` seconds; returns its KV
/// key.
pub async fn put_caller_record(
    kv: &KvNamespace,
    token: &str,
    record: &CallerTokenRecord,
    keys: &Keys,
    ttl_s: u64,
) -> Result<String, String> {
    let key = caller_token_key(token);
    let sealed = seal_record(record, &key, keys, nonce()?);
    kv.put(&key, &sealed, Some(ttl_s)).await?;
    Ok(key)
}
