//! The wasm-bindgen half of the `tokengate` npm package: the tokengate core for JavaScript.
//!
//! Users never see these exports; the package's hand-written façade (`npm/js/client.js`) owns
//! them. The split: JavaScript does the I/O it is good at — `fetch`, `AbortSignal`, timers, the
//! `client.fetch` loop — and Rust makes every decision: configuration and its validation, the
//! token cache with single-flight exchanges and retries ([`tokengate::flow::TokenSource`]), and
//! what to do after each API attempt ([`tokengate::api_call`]).
//!
//! - [`Core`]: one provider configuration's tokens and API-call decisions.
//! - Pure helpers for tooling: [`build_token_request_js`], [`parse_token_response_js`],
//!   [`cache_policy_js`], [`decode_jwt_claims_js`].
//! - [`set_error_class`]: the façade registers its `TokenError` class once; every error thrown
//!   from here is an instance of it.

mod error;
mod helpers;
mod host;
mod js_json;
mod pop;

pub use error::{config_error_js, set_error_class};
pub use helpers::{
    build_token_request_js, cache_policy_js, decode_jwt_claims_js, parse_token_response_js,
};

use error::{config_error, config_key_error, plain_json, token_error};
use host::{message_with_cause, set, Host, JsRuntime, JsStore, JsTransport};
use js_sys::{Object, Promise};
use serde_json::Value;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use tokengate::api_call::{Action, ApiCall, Attempted, CallError, FINAL_BELOW};
use tokengate::cache_key::token_cache_key_bound;
use tokengate::flow::{
    decide, Dpop, DpopServer, JwsSigner, ProofTransport, Proofs, TokenSource, TransportError,
};
use tokengate::jose::{self, KeyMaterial};
use tokengate::response::Token;
use tokengate::secret::Secret;
use tokengate::TokenSettings;
use wasm_bindgen::prelude::*;

/// Cache-key namespace of npm clients (the Worker uses its provider ids).
const CACHE_KEY_PROVIDER: &str = "npm";

type Source = TokenSource<ProofTransport<JsTransport, JsRuntime>, JsStore, JsRuntime>;

/// The tokens of one provider configuration and the decisions of its API calls.
#[wasm_bindgen]
pub struct Core {
    source: Source,
    /// The JS forms of the token last served (see [`JsToken`]).
    last: Rc<RefCell<Option<JsToken>>>,
    /// The DPoP key and its nonces (`dpop: true`).
    dpop: Option<Rc<Dpop>>,
    /// The clock of the proofs.
    rt: JsRuntime,
    /// The material of the client key and of the DPoP key, for the façade to import.
    materials: [Option<KeyMaterial>; 2],
}

#[wasm_bindgen]
impl Core {
    /// Validates `config` (the Worker's provider entry in camelCase, plus `clientSecret`);
    /// throws a `config` `TokenError` naming the offending key. `host` is what the façade
    /// provides: `{send, cache?, now?, log?}` (see `host.rs`).
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue, host: JsValue) -> Result<Core, JsValue> {
        let (settings, secret, value) = parse_config_value(&config)?;
        let host = Host::from_js(&host);
        let (client, dpop_key) = pop::read_keys(&value, &settings, &host.keys)?;
        // The cache key covers the credential that authenticates the client (the secret, or
        // the private key) and the key a DPoP-bound token is bound to.
        let credential = client.as_ref().map_or(&secret, |k| &k.identity);
        let key = token_cache_key_bound(
            CACHE_KEY_PROVIDER,
            &settings,
            credential,
            b"",
            dpop_key.as_ref().map(|k| &k.identity),
        );
        let name = settings
            .token_url
            .host_str()
            .unwrap_or("provider")
            .to_string();
        let signer = |role, k: &pop::KeySpec, kid| -> Rc<dyn JwsSigner> {
            Rc::new(pop::HostKey::new(
                role,
                k.alg,
                kid,
                &host.keys,
                k.material.as_ref(),
            ))
        };
        let dpop = dpop_key
            .as_ref()
            .map(|k| Rc::new(Dpop::new(signer("dpop", k, None))));
        let proofs = Proofs {
            client_key: client.as_ref().map(|k| {
                (
                    signer("client", k, settings.kid.clone()),
                    settings.assertion_audience().to_string(),
                )
            }),
            dpop: dpop.clone(),
        };
        let transport = ProofTransport::new(
            host.transport,
            host.runtime.clone(),
            &settings.client_id,
            proofs,
        );
        let rt = host.runtime.clone();
        let source = TokenSource::new(
            &name,
            settings,
            secret,
            key,
            transport,
            host.store,
            host.runtime,
        );
        Ok(Core {
            source,
            last: Rc::default(),
            dpop,
            rt,
            materials: [
                client.and_then(|k| k.material),
                dpop_key.and_then(|k| k.material),
            ],
        })
    }

    /// The material of the `"client"` or `"dpop"` key as `crypto.subtle.importKey` takes it
    /// (`{format, key}`), or `undefined` for a key the façade holds itself.
    #[wasm_bindgen(js_name = keyMaterial)]
    pub fn key_material(&self, role: &str) -> JsValue {
        let i = usize::from(role == "dpop");
        self.materials[i]
            .as_ref()
            .map_or(JsValue::UNDEFINED, pop::material_js)
    }

    /// Whether API calls carry DPoP proofs.
    #[wasm_bindgen(getter)]
    pub fn dpop(&self) -> bool {
        self.dpop.is_some()
    }

    /// A new DPoP proof for a `method` request to `url` (RFC 9449 §4.2) with the API's last
    /// nonce, bound to the token of `authorization` (`"DPoP …"`) when given.
    #[wasm_bindgen(js_name = dpopProof)]
    pub fn dpop_proof(&self, method: &str, url: &str, authorization: Option<String>) -> Promise {
        let Some(dpop) = self.dpop.clone() else {
            return Promise::reject(&config_key_error("dpop", "is not enabled in this config"));
        };
        let (method, url) = (method.to_ascii_uppercase(), url.to_string());
        let token = authorization.map(|a| bearer_secret(&JsValue::from(a)));
        let now = tokengate::flow::Runtime::now_ms(&self.rt);
        promise(async move {
            dpop.proof(DpopServer::Api, &method, &url, now, token.as_ref())
                .await
                .map(JsValue::from)
                .map_err(|e| {
                    let err = tokengate::error::TokenError::new(
                        tokengate::error::ErrorCode::Config,
                        format!("the DPoP proof could not be signed: {e}"),
                    );
                    token_error(&err, None)
                })
        })
    }

    /// Takes in an API answer's DPoP headers: keeps a `DPoP-Nonce` it supplies, and says what
    /// the call does ([`jose::api_nonce_step`]): `"resend"` (once more, with a proof carrying
    /// the nonce), `"return"` (the 401 is the caller's; the token stays), or `undefined` (the
    /// call's own rules decide). `asked`: whether this call has resent for a nonce already.
    #[wasm_bindgen(js_name = dpopAnswer)]
    pub fn dpop_answer(
        &self,
        status: u16,
        #[wasm_bindgen(js_name = wwwAuthenticate)] www_authenticate: Option<String>,
        nonce: Option<String>,
        asked: bool,
        replayable: bool,
    ) -> JsValue {
        let Some(dpop) = &self.dpop else {
            return JsValue::UNDEFINED;
        };
        let supplied = jose::nonce_value(nonce.as_deref());
        let step = jose::api_nonce_step(
            status,
            www_authenticate.as_deref(),
            supplied.is_some(),
            asked,
            replayable,
        );
        dpop.set_nonce(DpopServer::Api, supplied);
        match step {
            jose::NonceStep::Proceed => JsValue::UNDEFINED,
            jose::NonceStep::Resend => JsValue::from_str("resend"),
            jose::NonceStep::CallersAnswer => JsValue::from_str("return"),
        }
    }

    /// The configured timeout of one HTTP call, milliseconds.
    #[wasm_bindgen(getter, js_name = timeoutMs)]
    pub fn timeout_ms(&self) -> f64 {
        self.source.settings().timeout_ms as f64
    }

    /// A fresh token `{accessToken, tokenType, expiresAt, scope}` (a copy the caller may keep).
    /// Concurrent callers share one exchange; a token in memory settles at once.
    pub fn token(&self) -> Promise {
        self.serve(|c| Object::assign(&Object::new(), &c.object).into())
    }

    /// `"Bearer <access token>"` (`"DPoP <access token>"` for a DPoP-bound token).
    #[wasm_bindgen(js_name = authorizationHeader)]
    pub fn authorization_header(&self) -> Promise {
        self.serve(|c| c.header.clone())
    }

    /// `"Bearer <access token>"` when memory holds a fresh token, else `undefined`: no I/O.
    pub fn bearer(&self) -> JsValue {
        match self.source.memory_token() {
            Some(t) => JsToken::of(&self.last, t, |c| c.header.clone()),
            None => JsValue::UNDEFINED,
        }
    }

    /// Statuses below this end every API call as they are (see
    /// [`tokengate::api_call::FINAL_BELOW`]): the façade hands such a response over without
    /// asking [`Core::decide`].
    #[wasm_bindgen(js_name = finalBelow)]
    pub fn final_below() -> u16 {
        FINAL_BELOW
    }

    /// What to do after an attempt of a `method` call (state `state`, 0 for a new call) that
    /// carried `bearer` and ended with `outcome`: an HTTP status, `"timeout"`, or the error
    /// `fetch` rejected with (a network failure). `retryAfter`: the response's `Retry-After`.
    ///
    /// `undefined`: hand the response to the caller. Otherwise a step:
    /// `{kind: "retry", delayMs, state}`, `{kind: "replay", forgetToken, state}`,
    /// `{kind: "return", forgetToken}` or `{kind: "fail", error}` (a `TokenError`).
    pub fn decide(
        &self,
        method: &str,
        replayable: bool,
        state: u32,
        outcome: &JsValue,
        #[wasm_bindgen(js_name = retryAfter)] retry_after: Option<String>,
        bearer: &JsValue,
    ) -> JsValue {
        let settings = self.source.settings();
        let mut call = ApiCall::resume(method, replayable, settings.retry, state);
        let attempted = match outcome.as_f64() {
            Some(status) => Attempted::Response {
                status: status.clamp(0.0, f64::from(u16::MAX)) as u16,
                retry_after: retry_after.as_deref(),
            },
            None if outcome.as_string().as_deref() == Some("timeout") => Attempted::Timeout,
            None => Attempted::Network,
        };
        let action = decide(&self.source, &mut call, attempted, || bearer_secret(bearer));
        let step = |kind: &str| {
            let o = Object::new();
            set(&o, "kind", &JsValue::from_str(kind));
            o
        };
        let out = match action {
            Action::Return {
                forget_token: false,
            } => return JsValue::UNDEFINED,
            Action::Return { forget_token: true } => {
                let o = step("return");
                set(&o, "forgetToken", &JsValue::TRUE);
                o
            }
            Action::Retry { delay_ms } => {
                let o = step("retry");
                set(&o, "delayMs", &JsValue::from_f64(delay_ms as f64));
                set(&o, "state", &JsValue::from(call.state()));
                o
            }
            Action::Replay { forget_token } => {
                let o = step("replay");
                set(&o, "forgetToken", &JsValue::from_bool(forget_token));
                set(&o, "state", &JsValue::from(call.state()));
                o
            }
            Action::Fail(_) => {
                let failure = match attempted {
                    Attempted::Timeout => TransportError::Timeout,
                    _ => TransportError::Network(message_with_cause(outcome)),
                };
                let e = CallError::Transport(failure).to_token_error(settings.timeout_ms);
                let cause = matches!(attempted, Attempted::Network).then_some(outcome);
                let o = step("fail");
                set(&o, "error", &token_error(&e, cause));
                o
            }
        };
        out.into()
    }

    /// Forgets `bearer`, which the API refused (memory and cache adapter), as [`Core::decide`]
    /// asked; a token already replaced is left alone.
    pub fn forget(&self, bearer: &JsValue) -> Promise {
        let source = self.source.clone();
        let token = bearer_secret(bearer);
        promise(async move {
            source.forget_refused(&token).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Forgets the cached token (memory and cache adapter): the next call exchanges anew.
    pub fn invalidate(&self) -> Promise {
        let source = self.source.clone();
        promise(async move {
            source.invalidate(None).await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl Core {
    /// A promise of `source.token()`'s token in the JS form `form` picks. A token in memory is
    /// served without entering the flow (no future, no copy of the token).
    fn serve(&self, form: impl FnOnce(&JsToken) -> JsValue + 'static) -> Promise {
        if let Some(t) = self.source.memory_token() {
            return Promise::resolve(&JsToken::of(&self.last, t, form));
        }
        let (source, last) = (self.source.clone(), self.last.clone());
        promise(async move {
            match source.token().await {
                Ok((t, _)) => Ok(JsToken::of(&last, Rc::new(t), form)),
                Err(e) => Err(token_error(&e, None)),
            }
        })
    }
}

/// The token of a `"Bearer …"` or `"DPoP …"` string (anything else is no token this client
/// issued).
fn bearer_secret(bearer: &JsValue) -> Secret {
    let text = bearer.as_string().unwrap_or_default();
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("DPoP "))
        .unwrap_or_default();
    Secret::new(token)
}

/// Parses a camelCase config object into token settings and the client secret.
pub(crate) fn parse_config(config: &JsValue) -> Result<(TokenSettings, Secret), JsValue> {
    parse_config_value(config).map(|(settings, secret, _)| (settings, secret))
}

/// [`parse_config`], and the config's JSON form. `clientSecret` is required by the styles
/// that send one, and refused by `private_key_jwt` and `tls_client_auth` (the secret is then
/// empty).
fn parse_config_value(config: &JsValue) -> Result<(TokenSettings, Secret, Value), JsValue> {
    let value: Value = plain_json(config, "config")?;
    let settings = TokenSettings::parse_camel(&value, &["clientSecret", "clientKey", "dpopKey"])
        .map_err(|e| config_error(&e))?;
    let uses_secret = settings.auth_style.uses_secret();
    let secret = match value.get("clientSecret") {
        Some(Value::String(s)) if !s.is_empty() && uses_secret => Secret::new(s.clone()),
        None | Some(Value::Null) if !uses_secret => Secret::new(""),
        None | Some(Value::Null) => return Err(config_key_error("clientSecret", "is required")),
        Some(_) if !uses_secret => {
            return Err(config_key_error(
                "clientSecret",
                &format!(
                    "is not used with authStyle {}, which sends no secret",
                    settings.auth_style.as_str()
                ),
            ))
        }
        Some(_) => {
            return Err(config_key_error(
                "clientSecret",
                "must be a non-empty string",
            ))
        }
    };
    Ok((settings, secret, value))
}

/// `{accessToken, tokenType, expiresAt, scope}`.
pub(crate) fn token_to_js(t: &Token) -> Object {
    let o = Object::new();
    set(
        &o,
        "accessToken",
        &JsValue::from_str(t.access_token.expose()),
    );
    set(&o, "tokenType", &JsValue::from_str(&t.token_type));
    set(&o, "expiresAt", &JsValue::from_f64(t.expires_at_ms as f64));
    set(
        &o,
        "scope",
        &t.scope.as_deref().map_or(JsValue::NULL, JsValue::from_str),
    );
    o
}

/// The JS forms of the token last served: while memory holds the same token, `token()` copies
/// `object` and `authorizationHeader()`/`bearer()` return `header`, so a warm call passes no
/// string between wasm and JS. Derived from the token in memory (the same `Rc`), never a
/// second copy of it.
struct JsToken {
    token: Rc<Token>,
    object: Object,
    header: JsValue,
}

impl JsToken {
    fn of<R>(last: &RefCell<Option<JsToken>>, t: Rc<Token>, f: impl FnOnce(&JsToken) -> R) -> R {
        let mut last = last.borrow_mut();
        let current = match last.take() {
            Some(c) if Rc::ptr_eq(&c.token, &t) || c.token == t => c,
            _ => JsToken {
                object: token_to_js(&t),
                header: JsValue::from(t.authorization()),
                token: t,
            },
        };
        f(last.insert(current))
    }
}

/// A promise of `fut`. The future is polled once right away: a memory hit settles without a
/// round through the task queue (`token()` on a warm cache must stay in the microsecond range).
fn promise<F>(fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    let mut fut = Box::pin(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(v)) => Promise::resolve(&v),
        Poll::Ready(Err(e)) => Promise::reject(&e),
        Poll::Pending => wasm_bindgen_futures::future_to_promise(fut),
    }
}
