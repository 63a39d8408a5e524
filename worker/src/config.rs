//! Builds the gateway from the Worker environment, once per isolate: each binding converted to
//! the `serde_json::Value` the core's rules take (`tokengate::config::gateway`, the same code
//! and messages as `make check-config`). Any problem becomes a [`ConfigError`] naming the
//! provider and the key or secret at fault; no secret value is ever part of it.

use crate::authority::Authority;
use crate::js::KvNamespace;
use crate::kv::KvTokenStore;
use crate::minter::{DoMinter, MINTER_BINDING};
use crate::pop::{random_id, WebCryptoSigner};
use crate::runtime::{log_event, set_log_level, WorkerRuntime};
use crate::transport::FetchTransport;
use futures::FutureExt;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use tokengate::api_call::RefusedToken;
use tokengate::authority::{Op, DIRECTORY};
use tokengate::cache_key::token_cache_key_bound;
use tokengate::caller_tokens::{CallerLedger, CallerTokenRecord};
use tokengate::callers::CallerRegistry;
use tokengate::config::gateway::{
    self, ADMIN_TOKEN_SECRET, CLIENTS_SECRET, KEY_SECRET, KV_BINDING, LOG_LEVEL_VAR, MAX_BODY_VAR,
    PROVIDERS_VAR,
};
use tokengate::config::{AuthStyle, ConfigError, Coordination, ProviderConfig, TokenSettings};
use tokengate::error::TokenError;
use tokengate::flow::{
    Dpop, JwsSigner, MintedSource, ProofTransport, Proofs, SingleFlight, TokenSource, Tokens,
};
use tokengate::gateway_error::GatewayError;
use tokengate::jose::{self, KeyMaterial};
use tokengate::keys::Keys;
use tokengate::limits::BoundedMap;
use tokengate::proxy::ReplayBudget;
use tokengate::response::Token;
use tokengate::token_machine::TokenOrigin;
use tokengate::Secret;
use wasm_bindgen::JsValue;
use worker::Env;

/// The test suites' clock service binding, read only by a build with feature `test-clock`.
#[cfg(feature = "test-clock")]
pub const CLOCK_BINDING: &str = "TOKENGATE_CLOCK";

/// The binding of the Worker's static assets (`[assets]`), which hold the OpenAPI document.
const ASSETS_BINDING: &str = "ASSETS";
/// How long a request waits for another's ledger load before loading it itself.
pub const LEDGER_WAIT_MS: u64 = 10_000;
/// Caller-token records remembered per isolate.
pub const CALLER_CACHE_LIMIT: usize = 10_000;

/// A caller-token record load: the record (`None`: unknown, expired or not ours), or the
/// store's failure.
pub type CallerLoad = Result<Option<CallerTokenRecord>, GatewayError>;

/// The transport of a provider's token requests: `fetch` (or its mTLS binding's), each request
/// with the provider's proofs (a new client assertion, a DPoP proof) when it has any.
pub type TokenTransport = ProofTransport<FetchTransport, WorkerRuntime>;

/// The token source type the Worker uses.
pub type Source = TokenSource<TokenTransport, KvTokenStore, WorkerRuntime>;

/// The tokens of a provider coordinated by its minter.
pub type MintedSrc = MintedSource<TokenTransport, KvTokenStore, WorkerRuntime, DoMinter>;

/// Who obtains a provider's tokens in this isolate.
pub enum ProviderTokens {
    /// The isolate itself.
    Isolate(Source),
    /// The provider's minter, a Durable Object (the isolate's own source as its fallback).
    Minted(MintedSrc),
}

impl Tokens for ProviderTokens {
    type Rt = WorkerRuntime;

    fn name(&self) -> &str {
        match self {
            ProviderTokens::Isolate(s) => Tokens::name(s),
            ProviderTokens::Minted(s) => s.name(),
        }
    }

    fn settings(&self) -> &TokenSettings {
        match self {
            ProviderTokens::Isolate(s) => Tokens::settings(s),
            ProviderTokens::Minted(s) => s.settings(),
        }
    }

    fn runtime(&self) -> &WorkerRuntime {
        match self {
            ProviderTokens::Isolate(s) => Tokens::runtime(s),
            ProviderTokens::Minted(s) => s.runtime(),
        }
    }

    async fn token(&self) -> Result<(Token, TokenOrigin), TokenError> {
        match self {
            ProviderTokens::Isolate(s) => Tokens::token(s).await,
            ProviderTokens::Minted(s) => s.token().await,
        }
    }

    fn refused(&self, token: &Secret) -> RefusedToken {
        match self {
            ProviderTokens::Isolate(s) => Tokens::refused(s, token),
            ProviderTokens::Minted(s) => s.refused(token),
        }
    }

    async fn forget_refused(&self, token: &Secret) {
        match self {
            ProviderTokens::Isolate(s) => Tokens::forget_refused(s, token).await,
            ProviderTokens::Minted(s) => s.forget_refused(token).await,
        }
    }
}

/// One configured provider.
pub struct Provider {
    /// Its configuration.
    pub config: ProviderConfig,
    /// Its tokens.
    pub tokens: ProviderTokens,
    /// Its client secret (the minter obtains tokens with it); for `private_key_jwt` the
    /// private key's text (never sent: the token machine only scrubs answers of it), empty for
    /// `tls_client_auth`.
    pub secret: Secret,
    /// Its token's cache key (KV, and the name of its minter).
    pub key: String,
    /// How its requests are sent: the global `fetch`, or its mTLS certificate binding's.
    pub transport: FetchTransport,
    /// Its keys: the client key (`private_key_jwt`), the DPoP key and its nonces (`dpop`).
    pub proofs: Proofs,
}

impl Provider {
    /// The transport of its token requests, with its proofs.
    pub fn token_transport(&self, rt: &WorkerRuntime) -> TokenTransport {
        token_transport(&self.config, &self.transport, &self.proofs, rt)
    }
}

/// The transport of `config`'s token requests: `transport` with its `proofs`.
fn token_transport(
    config: &ProviderConfig,
    transport: &FetchTransport,
    proofs: &Proofs,
    rt: &WorkerRuntime,
) -> TokenTransport {
    ProofTransport::new(
        transport.clone(),
        rt.clone(),
        &config.token.client_id,
        proofs.clone(),
    )
}

/// What a provider authenticates with, read from the Worker's secrets and bindings.
struct Credentials {
    /// The token machine's secret (see [`Provider::secret`]).
    secret: Secret,
    /// What the cache key fingerprints as the client's credential: the client secret, the
    /// private key, or the mTLS binding's name.
    credential: Secret,
    /// The DPoP key's identity in the cache key: the configured key, or a random id of the key
    /// this isolate generates.
    dpop_identity: Option<Secret>,
    /// Its tokens stay in this isolate's memory: bound to a DPoP key this isolate generated, no
    /// other isolate could use them.
    memory_only: bool,
    transport: FetchTransport,
    proofs: Proofs,
}

/// Reads `config`'s secrets and bindings: a key is checked against its algorithm here, at
/// start-up (WebCrypto imports it on first use); an error names the provider and the key,
/// never the key's material.
fn credentials(env: &Env, config: &ProviderConfig) -> Result<Credentials, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        provider: Some(config.id.clone()),
        key: key.into(),
        message,
    };
    let transport = match &config.mtls_certificate {
        None => FetchTransport::default(),
        Some(name) => FetchTransport {
            via: Some(
                crate::js::Fetcher::from_env(env, name)
                    .ok_or_else(|| gateway::mtls_binding_missing(&config.id, name))?,
            ),
        },
    };
    let mut proofs = Proofs::default();
    let (machine_secret, credential) = match config.token.auth_style {
        AuthStyle::PrivateKeyJwt => {
            let name = config.client_key_name.as_deref().unwrap_or_default();
            let text = secret(env, name, Some(&config.id))?;
            let alg = config.token.client_key_alg;
            let material = KeyMaterial::parse(&text, alg)
                .map_err(|m| err("client_key_name", format!("the secret `{name}` {m}")))?;
            let signer = WebCryptoSigner::client_key(material, alg, config.token.kid.clone());
            proofs.client_key = Some((
                Rc::new(signer) as Rc<dyn JwsSigner>,
                config.token.assertion_audience().to_string(),
            ));
            let key = Secret::new(text);
            (key.clone(), key)
        }
        AuthStyle::TlsClientAuth => {
            let binding = config.mtls_certificate.as_deref().unwrap_or_default();
            (
                Secret::new(""),
                Secret::new(format!("mtls_certificate:{binding}")),
            )
        }
        _ => {
            let name = config.client_secret_name.as_deref().unwrap_or_default();
            let s = Secret::new(secret(env, name, Some(&config.id))?);
            (s.clone(), s)
        }
    };
    let dpop_identity = if config.token.dpop {
        let (signer, identity) = match config.dpop_key_name.as_deref() {
            Some(name) => {
                let text = secret(env, name, Some(&config.id))?;
                let alg = KeyMaterial::dpop_alg(&text);
                let material = KeyMaterial::parse(&text, alg)
                    .map_err(|m| err("dpop_key_name", format!("the secret `{name}` {m}")))?;
                (WebCryptoSigner::dpop_key(material, alg), Secret::new(text))
            }
            None => (
                WebCryptoSigner::generated_dpop_key(),
                Secret::new(format!("generated:{}", jose::b64url(&random_id::<16>()))),
            ),
        };
        proofs.dpop = Some(Rc::new(Dpop::new(Rc::new(signer))));
        Some(identity)
    } else {
        None
    };
    Ok(Credentials {
        secret: machine_secret,
        credential,
        memory_only: config.token.dpop && config.dpop_key_name.is_none(),
        dpop_identity,
        transport,
        proofs,
    })
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
    /// What the replay buffers of this isolate's requests in flight hold together.
    pub replay_budget: Rc<RefCell<ReplayBudget>>,
    /// The caller ledger, once loaded and reconciled by this isolate.
    pub ledger: Rc<RefCell<Option<Rc<CallerLedger>>>>,
    /// Its load, shared by the requests that need it meanwhile (a cold isolate's first burst
    /// asks the directory once, not once per request).
    pub ledger_flight: SingleFlight<Result<Rc<CallerLedger>, GatewayError>>,
    /// The caller authority (`TOKENGATE_LIMITER`).
    pub authority: Authority,
    /// SHA-256 of the admin token, when `TOKENGATE_ADMIN_TOKEN` is set.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// The Worker's static assets (`[assets]` with `binding = "ASSETS"`): the console and the
    /// OpenAPI document.
    pub assets: Option<crate::js::Fetcher>,
}

fn binding(env: &Env, name: &str) -> Option<JsValue> {
    js_sys::Reflect::get(env, &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// A binding as the core reads it (`None`: not set): a string as is, anything else as its
/// JSON (`[vars]` numbers and tables), `null` when it has none.
fn value(env: &Env, name: &str) -> Option<Value> {
    binding(env, name).map(|v| match v.as_string() {
        Some(s) => Value::String(s),
        None => js_sys::JSON::stringify(&v)
            .ok()
            .and_then(|s| s.as_string())
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null),
    })
}

fn secret(env: &Env, name: &str, provider: Option<&str>) -> Result<String, ConfigError> {
    gateway::secret(name, provider, value(env, name).as_ref())
}

/// Builds the gateway, or the first configuration error.
pub fn load(env: &Env) -> Result<Gateway, ConfigError> {
    set_log_level(gateway::log_level(value(env, LOG_LEVEL_VAR).as_ref())?);
    let kv = KvNamespace::from_env(env, KV_BINDING).ok_or_else(gateway::kv_binding_missing)?;
    let configs = gateway::providers(value(env, PROVIDERS_VAR).as_ref())?;
    let keys = Rc::new(Keys::from_base64(
        KEY_SECRET,
        &secret(env, KEY_SECRET, None)?,
    )?);
    let callers =
        CallerRegistry::parse(CLIENTS_SECRET, &secret(env, CLIENTS_SECRET, None)?, &keys)?;
    callers.check_scopes(CLIENTS_SECRET, |s| configs.iter().any(|p| p.id == s))?;
    let authority = Authority::from_env(env).ok_or_else(gateway::limiter_binding_missing)?;
    let admin_token_sha256 = gateway::admin_token(value(env, ADMIN_TOKEN_SECRET).as_ref())?
        .map(|t| tokengate::authority::sha256(t.as_bytes()));
    let rt = WorkerRuntime;
    let store = KvTokenStore::new(&kv, &keys);
    let mut providers = BTreeMap::new();
    for config in configs {
        let c = credentials(env, &config)?;
        let key = token_cache_key_bound(
            &config.id,
            &config.token,
            &c.credential,
            keys.cache_pepper(),
            c.dpop_identity.as_ref(),
        );
        let transport = token_transport(&config, &c.transport, &c.proofs, &rt);
        let source = TokenSource::new(
            &config.id,
            config.token.clone(),
            c.secret.clone(),
            key.clone(),
            transport,
            KvTokenStore {
                memory_only: c.memory_only,
                ..store.clone()
            },
            rt.clone(),
        );
        let tokens = coordinated(env, &config, &key, &store, source);
        providers.insert(
            config.id.clone(),
            Provider {
                config,
                tokens,
                secret: c.secret,
                key,
                transport: c.transport,
                proofs: c.proofs,
            },
        );
    }
    Ok(Gateway {
        providers,
        callers: Rc::new(callers),
        kv,
        keys,
        rt,
        max_body_bytes: gateway::max_body_bytes(value(env, MAX_BODY_VAR).as_ref())?,
        #[cfg(feature = "test-clock")]
        clock: env.service(CLOCK_BINDING).ok(),
        caller_cache: Rc::new(RefCell::new(BoundedMap::new(CALLER_CACHE_LIMIT))),
        caller_loads: RefCell::default(),
        replay_budget: Rc::default(),
        ledger: Rc::default(),
        ledger_flight: SingleFlight::new(),
        authority,
        admin_token_sha256,
        assets: crate::js::Fetcher::from_env(env, ASSETS_BINDING),
    })
}

/// The tokens of `config` as its `coordination` says: through its minter when it asks for one
/// and the `TOKENGATE_MINTER` binding is there, else by this isolate (`source`). Which mode is
/// active is logged once per provider (a minter asked for but not bound is a warning).
fn coordinated(
    env: &Env,
    config: &ProviderConfig,
    key: &str,
    store: &KvTokenStore,
    source: Source,
) -> ProviderTokens {
    let wanted = config.coordination == Coordination::DurableObject;
    let ns = wanted
        .then(|| crate::js::ObjectNamespace::from_env(env, MINTER_BINDING))
        .flatten();
    let (mode, tokens) = match ns {
        Some(ns) => {
            let deadline_ms = source.acquisition_bound_ms() + 2_000;
            let minter = DoMinter {
                ns,
                name: key.to_string(),
                deadline_ms,
            };
            let minted = MintedSource::new(
                &config.id,
                key.to_string(),
                store.clone(),
                minter,
                source,
                config.refresh_ahead_percent,
            );
            ("durable_object", ProviderTokens::Minted(minted))
        }
        None => ("isolate", ProviderTokens::Isolate(source)),
    };
    let event = if wanted && mode == "isolate" {
        "coordination_fallback"
    } else {
        "coordination"
    };
    log_event(
        event,
        json!({"provider": config.id, "mode": mode, "configured": config.coordination.as_str(),
               "binding": MINTER_BINDING}),
    );
    tokens
}

impl Gateway {
    /// The caller ledger, if this isolate has loaded it already.
    pub fn loaded_ledger(&self) -> Option<Rc<CallerLedger>> {
        self.ledger.borrow().clone()
    }

    /// The caller ledger, reconciled with this isolate's registry by the caller authority's
    /// directory (which keeps it) for the first request that needs it, while requests arriving
    /// meanwhile wait for that answer. A failure is an [`GatewayError::Unavailable`] for the
    /// requests that waited on it; the next request tries again.
    pub async fn ledger(&self) -> Result<Rc<CallerLedger>, GatewayError> {
        let ready = || self.loaded_ledger().map(Ok);
        let start = || {
            let (authority, callers) = (self.authority.clone(), self.callers.clone());
            let loaded = self.ledger.clone();
            async move {
                let op = Op::Ledger {
                    registrations: callers.registrations(),
                };
                let answer = authority.call(DIRECTORY, &op).await;
                let ledger = match &answer {
                    Ok((200, v)) => CallerLedger::from_json(&v.to_string()),
                    _ => None,
                };
                let Some(ledger) = ledger else {
                    let error = match answer {
                        Ok((status, _)) => format!("status {status}"),
                        Err(e) => e,
                    };
                    log_event("authority_error", json!({"op": "ledger", "error": error}));
                    return Err(GatewayError::Unavailable(
                        "the caller authority is unavailable",
                    ));
                };
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
