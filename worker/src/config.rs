//! Builds the gateway from the Worker environment, once per isolate. Any problem becomes a
//! [`ConfigError`] naming the provider and the key or secret at fault; no secret value is ever
//! part of it.

use crate::js::KvNamespace;
use crate::kv::{self, KvTokenStore};
use crate::runtime::{log_event, set_log_level, WorkerRuntime};
use crate::transport::FetchTransport;
use futures::FutureExt;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use tokengate::cache_key::token_cache_key;
use tokengate::caller_tokens::{CallerLedger, CallerTokenRecord};
use tokengate::callers::CallerRegistry;
use tokengate::config::{parse_providers, ConfigError, ProviderConfig};
use tokengate::flow::{Runtime, SingleFlight, TokenSource};
use tokengate::gateway_error::GatewayError;
use tokengate::keys::Keys;
use tokengate::limits::{BoundedMap, TokenEndpointLimits};
use tokengate::log_level::LogLevel;
use tokengate::proxy::ReplayBudget;
use tokengate::Secret;
use wasm_bindgen::JsValue;
use worker::Env;

/// KV namespace binding.
pub const KV_BINDING: &str = "TOKENGATE_KV";
/// Provider map variable.
pub const PROVIDERS_VAR: &str = "TOKENGATE_PROVIDERS";
/// Caller registry secret.
pub const CLIENTS_SECRET: &str = "TOKENGATE_CLIENTS";
/// At-rest encryption key secret.
pub const KEY_SECRET: &str = "TOKENGATE_KEY";
/// Request body limit variable.
pub const MAX_BODY_VAR: &str = "max_body_bytes";
/// Log level variable.
pub const LOG_LEVEL_VAR: &str = "log_level";
/// The test suites' clock service binding, read only by a build with feature `test-clock`.
#[cfg(feature = "test-clock")]
pub const CLOCK_BINDING: &str = "TOKENGATE_CLOCK";
/// Largest `max_body_bytes`: 100 MiB, the Workers request body limit.
pub const MAX_BODY_CAP: u64 = 100 * 1024 * 1024;
/// Default request body limit: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// How long a request waits for another's ledger load before loading it itself.
pub const LEDGER_WAIT_MS: u64 = 10_000;
/// Caller-token records remembered per isolate.
pub const CALLER_CACHE_LIMIT: usize = 10_000;

/// A caller-token record load: the record (`None`: unknown, expired or not ours), or the
/// store's failure.
pub type CallerLoad = Result<Option<CallerTokenRecord>, GatewayError>;

/// The token source type the Worker uses.
pub type Source = TokenSource<FetchTransport, KvTokenStore, WorkerRuntime>;

/// One configured provider.
pub struct Provider {
    /// Its configuration.
    pub config: ProviderConfig,
    /// Its tokens.
    pub source: Source,
}

/// Everything a request needs, built once per isolate.
pub struct Gateway {
    /// Providers by id.
    pub providers: BTreeMap<String, Provider>,
    /// The gateway's callers.
    pub callers: Rc<CallerRegistry>,
    /// KV namespace (caller tokens are stored here as hashes).
    pub kv: KvNamespace,
    /// The subkeys of `TOKENGATE_KEY`.
    pub keys: Rc<Keys>,
    /// Runtime shared by all token sources.
    pub rt: WorkerRuntime,
    /// Request body limit.
    pub max_body_bytes: u64,
    /// The test clock, when bound (test builds only).
    #[cfg(feature = "test-clock")]
    pub clock: Option<worker::Fetcher>,
    /// Opened caller-token records by KV key (the token's hash, never the token).
    pub caller_cache: Rc<RefCell<BoundedMap<String, CallerTokenRecord>>>,
    /// Caller-token record loads under way, by KV key: a token's concurrent first requests on
    /// this isolate read its record once. An entry lives while its load does.
    pub caller_loads: RefCell<HashMap<String, SingleFlight<CallerLoad>>>,
    /// The limits of `POST /oauth/token`: failed authentications per client address, token
    /// requests per caller.
    pub token_limits: RefCell<TokenEndpointLimits>,
    /// What the replay buffers of this isolate's requests in flight hold together.
    pub replay_budget: Rc<RefCell<ReplayBudget>>,
    /// The caller ledger, once loaded and reconciled by this isolate.
    pub ledger: Rc<RefCell<Option<Rc<CallerLedger>>>>,
    /// Its load, shared by the requests that need it meanwhile (a cold isolate's first burst
    /// reads KV once, not once per request).
    pub ledger_flight: SingleFlight<Result<Rc<CallerLedger>, GatewayError>>,
}

fn binding(env: &Env, name: &str) -> Option<JsValue> {
    js_sys::Reflect::get(env, &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn secret(env: &Env, name: &str, provider: Option<&str>) -> Result<String, ConfigError> {
    let missing = || ConfigError {
        provider: provider.map(String::from),
        key: name.to_string(),
        message: format!("Worker secret `{name}` is not set (wrangler secret put {name})"),
    };
    let v = binding(env, name).ok_or_else(missing)?;
    let s = v.as_string().ok_or_else(|| ConfigError {
        provider: provider.map(String::from),
        key: name.to_string(),
        message: "must be a string secret".into(),
    })?;
    if s.is_empty() {
        return Err(missing());
    }
    Ok(s)
}

/// Reads a JSON value from a var that is either an object (`[vars.X]`) or a JSON string.
fn json_var(env: &Env, name: &str) -> Result<Value, ConfigError> {
    let v = binding(env, name).ok_or_else(|| {
        ConfigError::global(name, "is not set (add it under [vars] in wrangler.toml)")
    })?;
    if let Some(s) = v.as_string() {
        return serde_json::from_str(&s)
            .map_err(|e| ConfigError::global(name, format!("is not valid JSON ({e})")));
    }
    // A `[vars]` table arrives as a plain object of strings, numbers and tables.
    js_sys::JSON::stringify(&v)
        .ok()
        .and_then(|s| s.as_string())
        .and_then(|s| serde_json::from_str(&s).ok())
        .filter(Value::is_object)
        .ok_or_else(|| ConfigError::global(name, "must be a table of providers"))
}

fn max_body_bytes(env: &Env) -> Result<u64, ConfigError> {
    let Some(v) = binding(env, MAX_BODY_VAR) else {
        return Ok(DEFAULT_MAX_BODY_BYTES);
    };
    let n = v.as_f64().or_else(|| {
        v.as_string()
            .and_then(|s| serde_json::from_str::<f64>(s.trim()).ok())
    });
    match n {
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= MAX_BODY_CAP as f64 => Ok(n as u64),
        _ => Err(ConfigError::global(
            MAX_BODY_VAR,
            format!("must be a whole number of bytes from 1 to {MAX_BODY_CAP} (100 MiB, the Workers request limit)"),
        )),
    }
}

fn log_level(env: &Env) -> Result<LogLevel, ConfigError> {
    let Some(v) = binding(env, LOG_LEVEL_VAR) else {
        return Ok(LogLevel::Info);
    };
    v.as_string()
        .as_deref()
        .and_then(LogLevel::parse)
        .ok_or_else(|| {
            ConfigError::global(LOG_LEVEL_VAR, "must be \"info\", \"warn\" or \"error\"")
        })
}

/// Builds the gateway, or the first configuration error.
pub fn load(env: &Env) -> Result<Gateway, ConfigError> {
    set_log_level(log_level(env)?);
    let kv = KvNamespace::from_env(env, KV_BINDING).ok_or_else(|| {
        ConfigError::global(
            KV_BINDING,
            "KV namespace binding is missing (kv_namespaces in wrangler.toml)",
        )
    })?;
    let configs = parse_providers(&json_var(env, PROVIDERS_VAR)?)?;
    let keys = Rc::new(Keys::from_base64(
        KEY_SECRET,
        &secret(env, KEY_SECRET, None)?,
    )?);
    let callers =
        CallerRegistry::parse(CLIENTS_SECRET, &secret(env, CLIENTS_SECRET, None)?, &keys)?;
    callers.check_scopes(CLIENTS_SECRET, |s| configs.iter().any(|p| p.id == s))?;
    let rt = WorkerRuntime::default();
    let store = KvTokenStore {
        kv: kv.clone(),
        keys: keys.clone(),
    };
    let mut providers = BTreeMap::new();
    for config in configs {
        let client_secret = Secret::new(secret(env, &config.client_secret_name, Some(&config.id))?);
        let key = token_cache_key(
            &config.id,
            &config.token,
            &client_secret,
            keys.cache_pepper(),
        );
        let source = TokenSource::new(
            &config.id,
            config.token.clone(),
            client_secret,
            key,
            FetchTransport,
            store.clone(),
            rt.clone(),
        );
        providers.insert(config.id.clone(), Provider { config, source });
    }
    Ok(Gateway {
        providers,
        callers: Rc::new(callers),
        kv,
        keys,
        rt,
        max_body_bytes: max_body_bytes(env)?,
        #[cfg(feature = "test-clock")]
        clock: env.service(CLOCK_BINDING).ok(),
        caller_cache: Rc::new(RefCell::new(BoundedMap::new(CALLER_CACHE_LIMIT))),
        caller_loads: RefCell::default(),
        token_limits: RefCell::new(TokenEndpointLimits::new(CALLER_CACHE_LIMIT)),
        replay_budget: Rc::default(),
        ledger: Rc::default(),
        ledger_flight: SingleFlight::new(),
    })
}

impl Gateway {
    /// The caller ledger, if this isolate has loaded it already.
    pub fn loaded_ledger(&self) -> Option<Rc<CallerLedger>> {
        self.ledger.borrow().clone()
    }

    /// The caller ledger, reconciled with this isolate's registry: loaded from KV (and written
    /// back when the registry changed it) by the first request that needs it, while requests
    /// arriving meanwhile wait for that load. A KV failure is an [`GatewayError::Unavailable`]
    /// for the requests that waited on it; the next request tries again.
    pub async fn ledger(&self) -> Result<Rc<CallerLedger>, GatewayError> {
        let ready = || self.loaded_ledger().map(Ok);
        let start = || {
            let (kv, keys, callers, rt) = (
                self.kv.clone(),
                self.keys.clone(),
                self.callers.clone(),
                self.rt.clone(),
            );
            let loaded = self.ledger.clone();
            async move {
                let unavailable = |op: &str, e: String| {
                    log_event("store_error", json!({"op": op, "error": e}));
                    GatewayError::Unavailable("the token store is unavailable")
                };
                let stored = kv::ledger(&kv, &keys)
                    .await
                    .map_err(|e| unavailable("get_ledger", e))?;
                let (ledger, changed) = stored.reconcile(&callers, rt.now_ms());
                if changed {
                    kv::put_ledger(&kv, &ledger, &keys)
                        .await
                        .map_err(|e| unavailable("put_ledger", e))?;
                }
                let ledger = Rc::new(ledger);
                *loaded.borrow_mut() = Some(ledger.clone());
                Ok(ledger)
            }
            .boxed_local()
        };
        self.ledger_flight
            .run(&self.rt, LEDGER_WAIT_MS, ready, start)
            .await
    }
}
