//! The field reader: typed keys out of a JSON object in either spelling ([`Naming`]), nested
//! tables (`retry`, `token_body`) named by their dotted path, and unknown keys reported by name.

use super::settings::{Naming, TOKEN_API_MAX_TTL_S};
use crate::retry::RetryPolicy;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What is wrong with one key, named as the configuration spells it (with its dotted path).
pub(super) struct FieldError {
    pub(super) key: String,
    pub(super) message: String,
}

/// Reads typed keys out of a JSON object, remembering which were read so unknown keys can be
/// reported by name.
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    naming: Naming,
    prefix: String,
    pub(super) seen: Vec<String>,
}

impl<'a> Fields<'a> {
    pub(super) fn new(value: &'a Value, naming: Naming) -> Result<Self, String> {
        let map = value.as_object().ok_or("must be an object")?;
        Ok(Fields {
            map,
            naming,
            prefix: String::new(),
            seen: Vec::new(),
        })
    }

    fn name(&self, key: &str) -> String {
        format!("{}{}", self.prefix, self.naming.key(key))
    }

    pub(super) fn error(&self, key: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            key: self.name(key),
            message: message.into(),
        }
    }

    fn get(&mut self, key: &str) -> Option<&'a Value> {
        let k = self.naming.key(key);
        let v = self.map.get(&k).filter(|v| !v.is_null());
        self.seen.push(k);
        v
    }

    pub(super) fn optional_str(&mut self, key: &str) -> Result<Option<String>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(self.error(key, "must not be empty")),
            Some(_) => Err(self.error(key, "must be a string")),
        }
    }

    pub(super) fn required_str(&mut self, key: &str) -> Result<String, FieldError> {
        self.optional_str(key)?
            .ok_or_else(|| self.error(key, "is required"))
    }

    pub(super) fn optional_u64(
        &mut self,
        key: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.error(key, format!("must be a whole number from {min} to {max}"))),
            },
        }
    }

    pub(super) fn optional_bool(&mut self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.error(key, "must be true or false")),
        }
    }

    pub(super) fn string_map(&mut self, key: &str) -> Result<BTreeMap<String, String>, FieldError> {
        let Some(v) = self.get(key) else {
            return Ok(BTreeMap::new());
        };
        let obj = v
            .as_object()
            .ok_or_else(|| self.error(key, "must be an object of strings"))?;
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(self.error(key, format!("value of `{k}` must be a string"))),
            };
            out.insert(k.clone(), value);
        }
        Ok(out)
    }

    /// A token API's creation body (`docs/providers.md#openapi-token-api`): `scopes` (required,
    /// each `METHOD:host/path-prefix`), `ttl` (seconds, at most a year), `name`, `limits` (an
    /// object, passed on as given). Unknown keys are refused by name.
    pub(super) fn token_body(
        &mut self,
        key: &str,
    ) -> Result<Option<Map<String, Value>>, FieldError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let mut inner = Fields::new(v, self.naming).map_err(|m| self.error(key, m))?;
        inner.prefix = format!("{}.", self.name(key));
        let mut body = Map::new();
        let scopes = match inner.get("scopes") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => return Err(inner.error("scopes", "must be a non-empty array of scopes")),
        };
        for s in scopes {
            let ok = s
                .as_str()
                .and_then(|s| s.split_once(':'))
                .is_some_and(|(m, rest)| {
                    (m == "*" || (!m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase())))
                        && rest.contains('/')
                        && !rest.starts_with('/')
                        && rest.bytes().all(|b| b.is_ascii_graphic())
                });
            if !ok {
                return Err(inner.error(
                    "scopes",
                    "each scope must be a string METHOD:host/path, e.g. GET:company.openapi.com/IT-start",
                ));
            }
        }
        body.insert("scopes".into(), Value::Array(scopes.clone()));
        if let Some(ttl) = inner.optional_u64("ttl", 1, TOKEN_API_MAX_TTL_S)? {
            body.insert("ttl".into(), Value::from(ttl));
        }
        if let Some(name) = inner.optional_str("name")? {
            body.insert("name".into(), Value::String(name));
        }
        match inner.get("limits") {
            None => {}
            Some(Value::Object(limits)) => {
                body.insert("limits".into(), Value::Object(limits.clone()));
            }
            Some(_) => return Err(inner.error("limits", "must be an object")),
        }
        inner.finish()?;
        Ok(Some(body))
    }

    pub(super) fn headers(&mut self, key: &str) -> Result<BTreeMap<String, String>, FieldError> {
        // Header names keep the spelling the user wrote; only the outer key is renamed.
        self.string_map(key)
    }

    pub(super) fn retry(&mut self, key: &str) -> Result<RetryPolicy, FieldError> {
        let d = RetryPolicy::default();
        let Some(v) = self.get(key) else {
            return Ok(d);
        };
        let mut inner = Fields::new(v, self.naming).map_err(|m| self.error(key, m))?;
        inner.prefix = format!("{}.", self.name(key));
        let policy = RetryPolicy {
            max_attempts: inner
                .optional_u64("max_attempts", 1, 10)?
                .map(|n| n as u32)
                .unwrap_or(d.max_attempts),
            base_delay_ms: inner
                .optional_u64("base_delay_ms", 0, 60_000)?
                .unwrap_or(d.base_delay_ms),
            max_delay_ms: inner
                .optional_u64("max_delay_ms", 0, 300_000)?
                .unwrap_or(d.max_delay_ms),
            retry_unsafe_methods: inner
                .optional_bool("retry_unsafe_methods")?
                .unwrap_or(d.retry_unsafe_methods),
        };
        if policy.base_delay_ms > policy.max_delay_ms {
            return Err(inner.error("base_delay_ms", "must not exceed max_delay_ms"));
        }
        inner.finish()?;
        Ok(policy)
    }

    pub(super) fn finish(self) -> Result<(), FieldError> {
        match self.map.keys().find(|k| !self.seen.contains(k)) {
            Some(k) => Err(FieldError {
                key: format!("{}{k}", self.prefix),
                message: "is not a known key".into(),
            }),
            None => Ok(()),
        }
    }
}
