//! The minter of a provider's tokens: a Durable Object per cache key (binding
//! `TOKENGATE_MINTER`, class `TokenMinter`) for providers with `coordination =
//! "durable_object"`. Isolates that miss memory and KV ask it ([`DoMinter`]); it obtains the
//! token once for all of them — one acquisition at a time, whatever the number of askers — with
//! the same token machine an isolate uses, keeping the token in its own storage (the authority)
//! and in KV (the cache isolates read first). The protocol is [`tokengate::mint`].
//!
//! A refused token is replaced at most once: a report naming a token other than the current one
//! gets the current one; a report of the current one within 30 s of a 401-caused refresh, or —
//! with a token API, which also answers 401 for a path outside the token's scopes — of a token
//! the service still lists, gets the same token back (the refusal stands).

use crate::config::Provider;
use crate::js;
use crate::kv::{Authority, KvTokenStore};
use crate::runtime::{log_event, take_background, WorkerRuntime};
use crate::transport::FetchTransport;
use futures::future::{select, Either};
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use tokengate::api_call::{RefusedToken, REFRESH_ON_401_WINDOW_MS};
use tokengate::dialect::list_request;
use tokengate::flow::{Minter, Runtime, SingleFlight, TokenSource, TokenStore, Transport};
use tokengate::mint::{token_sha256, MintAnswer, MintReason, MintRequest};
use tokengate::response::listed_tokens;
use tokengate::token_machine::TokenOrigin;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{Delay, Env};

pub use tokengate::config::gateway::MINTER_BINDING;

/// An isolate's way to its provider's minter: the Durable Object named by the cache key.
pub struct DoMinter {
    /// The namespace.
    pub ns: js::ObjectNamespace,
    /// The cache key: the object's name.
    pub name: String,
    /// How long an answer may take (the minter may be exchanging with retries) before this
    /// isolate obtains the token itself.
    pub deadline_ms: u64,
}

impl Minter for DoMinter {
    async fn mint(&self, request: &MintRequest) -> Result<MintAnswer, String> {
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&JsValue::from_str(&request.to_json()));
        let req = web_sys::Request::new_with_str_and_init("https://minter/mint", &init)
            .map_err(|e| js::message(&e))?;
        let call = Box::pin(async move {
            let resp = self.ns.fetch_named(&self.name, &req).await?;
            let status = resp.status();
            let body = js::read_limited(resp.body(), MAX_MINT_BYTES)
                .await?
                .ok_or("the minter's answer is too large")?;
            Ok::<_, String>((status, body))
        });
        let deadline = Delay::from(Duration::from_millis(self.deadline_ms));
        match select(call, deadline).await {
            Either::Left((Ok((status, body)), _)) => MintAnswer::parse(status, &body),
            Either::Left((Err(e), _)) => Err(e),
            Either::Right(_) => Err(format!(
                "the minter did not answer within {} ms",
                self.deadline_ms
            )),
        }
    }
}

/// The largest request to, or answer of, the minter read (a token record is well under it).
const MAX_MINT_BYTES: usize = 64 * 1024;

type DoSource = crate::config::Source;

/// One provider's tokens in the minter, the token it last vouched for (a refusal that stood)
/// with when, and the check at the token service under way (reports that arrive meanwhile share
/// it).
struct Minted {
    source: DoSource,
    vouched: RefCell<Option<([u8; 32], u64)>>,
    check: SingleFlight<bool>,
}

/// The minter (see the module documentation): the Durable Object class the Worker exports.
/// Exported by hand rather than through the `worker` crate's macro, whose glue formats
/// `worker::Error`s (kilobytes of wasm) for a `fetch` that here cannot fail.
#[wasm_bindgen]
pub struct TokenMinter {
    inner: Rc<MinterObject>,
}

struct MinterObject {
    state: worker::worker_sys::DurableObjectState,
    env: Env,
    storage: Rc<worker::worker_sys::DurableObjectStorage>,
    minted: RefCell<HashMap<String, Rc<Minted>>>,
}

#[wasm_bindgen]
impl TokenMinter {
    /// The object, as the runtime makes it: its state (storage, `waitUntil`) and the Worker's
    /// environment.
    #[wasm_bindgen(constructor)]
    pub fn new(state: worker::worker_sys::DurableObjectState, env: Env) -> TokenMinter {
        // (A Durable Object always has storage.)
        let storage = Rc::new(state.storage().unwrap_or_else(|_| std::process::abort()));
        TokenMinter {
            inner: Rc::new(MinterObject {
                state,
                env,
                storage,
                minted: RefCell::default(),
            }),
        }
    }

    /// Answers one mint request, or a question about its token's state ([`STATE_URL`]) (a
    /// promise of the `Response`, never rejected).
    pub fn fetch(&self, req: web_sys::Request) -> js_sys::Promise {
        let this = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let state = req.url() == STATE_URL;
            let body = js::read_limited(req.body(), MAX_MINT_BYTES).await;
            let gateway = crate::gateway(&this.env);
            let (status, text) = match (&*gateway, body) {
                (_, Ok(None) | Err(_)) => (
                    400,
                    json!({"error": "the request body could not be read"}).to_string(),
                ),
                (Err(e), _) => (500, json!({"error": e.to_string()}).to_string()),
                (Ok(gw), Ok(Some(body))) => {
                    #[cfg(feature = "test-clock")]
                    crate::sync_clock(gw).await;
                    if state {
                        this.state(gw, &body).await
                    } else {
                        this.answer(gw, &body).await
                    }
                }
            };
            // Removals of superseded tokens run on after the answer, kept alive by this object.
            for task in take_background() {
                let promise = wasm_bindgen_futures::future_to_promise(async move {
                    task.await;
                    Ok(JsValue::UNDEFINED)
                });
                let _ = this.state.wait_until(&promise);
            }
            // What this object counted (its exchanges) travels with its isolate's next flush,
            // which this request keeps alive: an isolate that runs only minters has no Worker
            // request of its own to send it.
            if let Some(flush) = crate::stats::flush(&gateway) {
                let promise = wasm_bindgen_futures::future_to_promise(async move {
                    flush.await;
                    Ok(JsValue::UNDEFINED)
                });
                let _ = this.state.wait_until(&promise);
            }
            let headers = js::headers(&[("content-type", "application/json")])?;
            Ok(js::text_response(status, &headers, &text)?.into())
        })
    }
}

/// The URL an isolate asks the minter for the state of its token (`GET /admin/providers`).
pub const STATE_URL: &str = "https://minter/state";

/// What the minter holds for `provider` (`{"token": {issued_at_ms, expires_at_ms, sha256} |
/// null}`): metadata only, never the token. `Err` when it could not be asked or answered
/// something else.
pub async fn minter_state(
    ns: &js::ObjectNamespace,
    key: &str,
    provider: &str,
) -> Result<serde_json::Value, String> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(
        &json!({ "provider": provider }).to_string(),
    ));
    let req =
        web_sys::Request::new_with_str_and_init(STATE_URL, &init).map_err(|e| js::message(&e))?;
    let resp = ns.fetch_named(key, &req).await?;
    let status = resp.status();
    let body = js::read_limited(resp.body(), MAX_MINT_BYTES)
        .await?
        .ok_or("the minter's answer is too large")?;
    match (status, serde_json::from_slice::<serde_json::Value>(&body)) {
        (200, Ok(v)) if v.get("token").is_some() => Ok(v),
        _ => Err(format!("the minter answered HTTP {status}")),
    }
}

/// The first 6 bytes of a token's SHA-256, in hex: what the admin API shows to tell one token
/// from the next (never the token).
pub fn sha256_prefix(token: &tokengate::response::Token) -> String {
    token_sha256(&token.access_token)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The metadata of `token` the admin API shows: never the token.
fn token_metadata(token: &tokengate::response::Token) -> serde_json::Value {
    json!({"issued_at_ms": token.issued_at_ms, "expires_at_ms": token.expires_at_ms,
           "sha256_prefix": sha256_prefix(token)})
}

impl MinterObject {
    /// The state of a provider's token in this minter: its memory, else its storage (the
    /// authority), else KV; nothing is obtained or changed.
    async fn state(&self, gw: &crate::config::Gateway, body: &[u8]) -> (u16, String) {
        let provider = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("provider")
                    .and_then(|p| p.as_str())
                    .map(str::to_string)
            });
        let Some(provider) = provider.and_then(|p| gw.providers.get(&p)) else {
            return (404, json!({"error": "no such provider"}).to_string());
        };
        let minted = self.minted(gw, provider);
        let token = match minted.source.memory_token() {
            Some(t) => Some((*t).clone()),
            None => match self.store(gw).get(&provider.key).await {
                Ok(v) => v
                    .as_deref()
                    .and_then(tokengate::response::Token::from_stored)
                    .filter(|t| t.expires_at_ms > gw.rt.now_ms()),
                Err(e) => return (503, json!({ "error": e }).to_string()),
            },
        };
        let token = token.as_ref().map(token_metadata);
        (200, json!({ "token": token }).to_string())
    }

    /// The store of this minter's tokens: its storage, written through to KV.
    fn store(&self, gw: &crate::config::Gateway) -> KvTokenStore {
        KvTokenStore {
            kv: gw.kv.clone(),
            keys: gw.keys.clone(),
            authority: Some(Authority {
                storage: self.storage.clone(),
                rt: gw.rt.clone(),
            }),
            memory_only: false,
        }
    }

    async fn answer(&self, gw: &crate::config::Gateway, body: &[u8]) -> (u16, String) {
        let request = match MintRequest::parse(body) {
            Ok(r) => r,
            Err(e) => return (400, json!({"error": e}).to_string()),
        };
        let Some(provider) = gw.providers.get(&request.provider) else {
            return (404, json!({"error": "no such provider"}).to_string());
        };
        let minted = self.minted(gw, provider);
        let answer = match request.reason {
            MintReason::Miss => serve(&minted.source).await,
            MintReason::Ahead => {
                let percent = provider.config.refresh_ahead_percent;
                answer_of(minted.source.refresh_ahead(percent).await)
            }
            MintReason::Refused(hash) => self.refused(&minted, provider, hash).await,
            MintReason::Drop => {
                *minted.vouched.borrow_mut() = None;
                let dropped = minted.source.drop_token().await;
                log_event(
                    "provider_token_dropped",
                    json!({"provider": provider.config.id, "where": "minter",
                           "tokens": dropped.len()}),
                );
                MintAnswer::Dropped(dropped)
            }
        };
        answer.to_http()
    }

    /// The provider's tokens in this object, made on first use.
    fn minted(&self, gw: &crate::config::Gateway, provider: &Provider) -> Rc<Minted> {
        let id = &provider.config.id;
        if let Some(m) = self.minted.borrow().get(id) {
            return m.clone();
        }
        let store = self.store(gw);
        let source = TokenSource::new(
            id,
            provider.config.token.clone(),
            provider.secret.clone(),
            provider.key.clone(),
            // The provider's own transport and keys (the same signers, and DPoP nonces, as
            // this isolate's requests use).
            provider.token_transport(&gw.rt),
            store,
            gw.rt.clone(),
        );
        // The sole minter of this token: it tags what it creates, to find and remove a token a
        // creation made without an answer.
        let digest = tokengate::mint::token_sha256(&tokengate::Secret::new(provider.key.as_str()));
        source.tag_created_tokens(&hex_prefix(&digest));
        let m = Rc::new(Minted {
            source,
            vouched: RefCell::new(None),
            check: SingleFlight::new(),
        });
        self.minted.borrow_mut().insert(id.clone(), m.clone());
        m
    }

    /// A report that the API refused the token with SHA-256 `hash`.
    async fn refused(&self, m: &Minted, provider: &Provider, hash: [u8; 32]) -> MintAnswer {
        let rt = m.source.runtime();
        let Some(current) = m.source.memory_token() else {
            return serve(&m.source).await;
        };
        if token_sha256(&current.access_token) != hash {
            // A token already replaced: the current one, no exchange.
            return serve(&m.source).await;
        }
        let now = rt.now_ms();
        let within = |at: u64| now < at.saturating_add(REFRESH_ON_401_WINDOW_MS);
        let vouched = m
            .vouched
            .borrow()
            .is_some_and(|(h, at)| h == hash && within(at));
        let refreshed_lately = matches!(
            m.source.refused(&current.access_token),
            RefusedToken::Current { last_refresh_ms: Some(at) } if within(at)
        );
        let stands = vouched || refreshed_lately || {
            // One check at the service for every report that arrives while it runs.
            let (p, token, rt2) = (
                provider.clone_for_check(),
                current.access_token.clone(),
                rt.clone(),
            );
            let bound = provider.config.token.timeout_ms + 1_000;
            m.check
                .run(
                    rt,
                    bound,
                    || None,
                    move || {
                        let (p, token, rt2) = (p.clone(), token.clone(), rt2.clone());
                        Box::pin(async move { still_listed(&p, &token, &rt2).await })
                    },
                )
                .await
        };
        if stands {
            *m.vouched.borrow_mut() = Some((hash, now));
            log_event(
                "api_401_not_refreshed",
                json!({"provider": provider.config.id, "minter": true,
                "reason": if provider.config.token.auth_style.manages_tokens() {
                    "the token service still lists the token"
                } else {
                    "a 401 refreshed the token less than 30 s ago"
                }}),
            );
            return MintAnswer::Token {
                token: (*current).clone(),
                origin: TokenOrigin::Minter,
            };
        }
        m.source.forget_refused(&current.access_token).await;
        serve(&m.source).await
    }
}

/// What the check at the token service needs of a provider (owned: the check outlives the
/// request that starts it).
#[derive(Clone)]
struct Checked {
    id: String,
    settings: tokengate::TokenSettings,
    secret: tokengate::Secret,
    transport: FetchTransport,
}

impl Provider {
    fn clone_for_check(&self) -> Checked {
        Checked {
            id: self.config.id.clone(),
            settings: self.config.token.clone(),
            secret: self.secret.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// Whether a token API still lists `token` as live: then the API's 401 was about the request
/// (a path outside the token's scopes), not the token, and replacing it would let any caller
/// have the shared token rotated at will. Anything but a list naming it counts as gone.
async fn still_listed(provider: &Checked, token: &tokengate::Secret, rt: &WorkerRuntime) -> bool {
    let Some(req) = list_request(&provider.settings, &provider.secret) else {
        return false;
    };
    let started = rt.now_ms();
    let result = provider
        .transport
        .send(req, provider.settings.timeout_ms)
        .await;
    let listed = match &result {
        Ok(resp) => listed_tokens(resp).map(|l| l.iter().any(|t| t.ct_eq(token.expose()))),
        Err(_) => None,
    };
    log_event(
        "token_listed",
        json!({"provider": provider.id, "ms": rt.now_ms().saturating_sub(started),
               "status": result.as_ref().ok().map(|r| r.status),
               "ok": listed.is_some(), "still_listed": listed.unwrap_or(false)}),
    );
    listed.unwrap_or(false)
}

/// The current token (the source's memory, storage or an exchange), as the minter answers it.
async fn serve(source: &DoSource) -> MintAnswer {
    answer_of(source.token().await)
}

/// A token the source gave (or its error), as the minter answers it.
fn answer_of(
    got: Result<(tokengate::response::Token, TokenOrigin), tokengate::TokenError>,
) -> MintAnswer {
    match got {
        Ok((token, TokenOrigin::Exchange { ms })) => MintAnswer::Token {
            token,
            origin: TokenOrigin::Exchange { ms },
        },
        Ok((token, _)) => MintAnswer::Token {
            token,
            origin: TokenOrigin::Minter,
        },
        Err(e) => MintAnswer::Error(e),
    }
}

/// The first four bytes of `digest` in hex: the tag of a cache key's tokens.
fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}
