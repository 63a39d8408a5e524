//! Provider configuration: one valid entry per documented provider (Optoro, Optimum Automotive,
//! the partner API; `docs/providers.md`), one test per error (each naming its key), in one file
//! per concern beside the code's; here, what they share: a minimal entry and the check that an
//! error names its provider and key.

use super::*;
use serde_json::{json, Value};

mod endpoint;
mod fields;
mod gateway;
mod headers;
mod placeholder;
mod provider;
mod settings;

/// A minimal valid snake_case entry, extended/overridden by `extra` (a `null` removes a key).
fn entry(extra: Value) -> Value {
    let mut v = json!({
        "token_url": "https://auth.example.com/oauth/token",
        "api_base": "https://api.example.com/v1/",
        "client_id": "cid",
        "client_secret_name": "EXAMPLE_SECRET",
    });
    let obj = v.as_object_mut().unwrap();
    for (k, val) in extra.as_object().unwrap() {
        if val.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

fn parse_err(id: &str, extra: Value) -> ConfigError {
    ProviderConfig::parse(id, &entry(extra)).unwrap_err()
}

fn assert_err(e: &ConfigError, provider: &str, key: &str, message_part: &str) {
    assert_eq!(e.provider.as_deref(), Some(provider), "{e}");
    assert_eq!(e.key, key, "{e}");
    assert!(e.message.contains(message_part), "{e}");
    assert_eq!(
        e.to_string(),
        format!("provider `{provider}`: {key}: {}", e.message)
    );
}
