//! The caller authority (`tokengate::authority`): a Durable Object class, `CallerAuthority`,
//! bound as `TOKENGATE_LIMITER`, with one object per managed caller, static caller, client
//! address and provider, plus the directory. Isolates reach it through [`Authority::call`];
//! each object answers one [`Op`] at a time from its own storage, which is the authority: KV
//! holds nothing it decides with.
//!
//! Objects keep what they decide with in memory once loaded (a request's decision and its
//! counting happen without an `await` between them, so concurrent requests are decided one
//! after another), and write it to storage before they answer (the platform's output gate
//! holds the answer until the write is durable).

use crate::js::{self, ObjectNamespace};
use crate::runtime::log_event;
use futures::future::{select, Either};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use tokengate::authority::address::{AddressGate, Failures};
use tokengate::authority::client::{
    self as client, ClientState, Counters, TokenEntry, COUNTERS_KEY, MAX_LIVE_TOKENS, RECORD_KEY,
    TOKEN_KEY_PREFIX,
};
use tokengate::authority::stats::{ErrorLog, ExchangeMark, ProviderStats};
use tokengate::authority::{client_object, parse_sha256, ObjectKind, Op};
use tokengate::caller_tokens::CallerLedger;
use tokengate::flow::Runtime;
use tokengate::managed::{parse_patch, AdminError, ClientRecord};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{Delay, Env};

pub use tokengate::config::gateway::LIMITER_BINDING;

/// The header naming the object a request is for, percent-encoded (`encodeURIComponent`): a
/// name holds a client id as it was asked for, which a header value could not carry as it is
/// (a control character is refused, surrounding spaces are trimmed, so `client:a ` would reach
/// `client:a`).
const OBJECT_HEADER: &str = "x-tokengate-object";
/// The largest op or answer read.
const MAX_OP_BYTES: usize = 256 * 1024;
/// How long an isolate waits for an object's answer.
pub const CALL_DEADLINE_MS: u64 = 10_000;
/// Dropped provider tokens remembered (their SHA-256), newest first.
const DROPPED_KEEP: usize = 16;

/// An isolate's way to the caller authority.
#[derive(Clone)]
pub struct Authority {
    ns: ObjectNamespace,
}

impl Authority {
    /// The authority bound as `TOKENGATE_LIMITER` in `env`, if it is bound.
    pub fn from_env(env: &JsValue) -> Option<Authority> {
        ObjectNamespace::from_env(env, LIMITER_BINDING).map(|ns| Authority { ns })
    }

    /// Sends `op` to the object `name`: its status and JSON answer, or why there is none.
    pub async fn call(&self, name: &str, op: &Op) -> Result<(u16, Value), String> {
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&JsValue::from_str(&op.to_json()));
        let encoded = String::from(js_sys::encode_uri_component(name));
        let headers =
            js::headers(&[(OBJECT_HEADER, encoded.as_str())]).map_err(|e| js::message(&e))?;
        init.set_headers(&headers);
        let req = web_sys::Request::new_with_str_and_init("https://authority/", &init)
            .map_err(|e| js::message(&e))?;
        let call = Box::pin(async move {
            let resp = self.ns.fetch_named(name, &req).await?;
            let status = resp.status();
            let body = js::read_limited(resp.body(), MAX_OP_BYTES)
                .await?
                .ok_or("the authority's answer is too large")?;
            let value = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|_| "the authority's answer is not JSON")?
            };
            Ok::<_, String>((status, value))
        });
        let deadline = Delay::from(Duration::from_millis(CALL_DEADLINE_MS));
        match select(call, deadline).await {
            Either::Left((answer, _)) => answer,
            Either::Right(_) => Err(format!(
                "the caller authority did not answer within {CALL_DEADLINE_MS} ms"
            )),
        }
    }
}

/// The caller authority's Durable Object class (see the module documentation). Exported by
/// hand, like the minter.
#[wasm_bindgen]
pub struct CallerAuthority {
    inner: Rc<Object>,
}

/// What an object keeps in memory once loaded.
#[derive(Default)]
struct Memory {
    /// `client:` objects: the state (`None`: no managed caller here) and counters.
    client: Option<(Option<ClientState>, Counters)>,
    /// `client:` objects: token entries read so far (`None`: no such token).
    tokens: HashMap<String, Option<TokenEntry>>,
    /// `address:` objects.
    gate: Option<AddressGate>,
    /// `provider:` objects.
    provider: Option<ProviderMemory>,
}

/// A provider object's statistics, error log, dropped tokens (SHA-256 hex, when) and latest
/// exchange.
type ProviderMemory = (
    ProviderStats,
    ErrorLog,
    Vec<(String, u64)>,
    Option<ExchangeMark>,
);

struct Object {
    env: Env,
    storage: worker::worker_sys::DurableObjectStorage,
    memory: RefCell<Memory>,
}

#[wasm_bindgen]
impl CallerAuthority {
    /// The object, as the runtime makes it.
    #[wasm_bindgen(constructor)]
    pub fn new(state: worker::worker_sys::DurableObjectState, env: Env) -> CallerAuthority {
        // (A Durable Object always has storage.)
        let storage = state.storage().unwrap_or_else(|_| std::process::abort());
        CallerAuthority {
            inner: Rc::new(Object {
                env,
                storage,
                memory: RefCell::default(),
            }),
        }
    }

    /// Answers one op (a promise of the `Response`, never rejected).
    pub fn fetch(&self, req: web_sys::Request) -> js_sys::Promise {
        let this = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let name = js::header(&req.headers(), OBJECT_HEADER)
                .and_then(|n| js_sys::decode_uri_component(&n).ok())
                .map(String::from)
                .unwrap_or_default();
            let body = js::read_limited(req.body(), MAX_OP_BYTES).await;
            let (status, answer) = match body {
                Ok(Some(body)) => this.answer(&name, &body).await,
                _ => (400, json!({"error": "the op could not be read"})),
            };
            let headers = js::headers(&[("content-type", "application/json")])?;
            let text = if answer.is_null() {
                String::new()
            } else {
                answer.to_string()
            };
            Ok(js::text_response(status, &headers, &text)?.into())
        })
    }
}

type Answer = (u16, Value);

fn refusal(status: u16, why: &str) -> Answer {
    (status, json!({"error": why}))
}

impl Object {
    async fn answer(&self, name: &str, body: &[u8]) -> Answer {
        let gw = crate::gateway(&self.env);
        let gw = match &*gw {
            Ok(gw) => gw,
            Err(e) => return (500, json!({"error": e.to_string()})),
        };
        #[cfg(feature = "test-clock")]
        crate::sync_clock(gw).await;
        let now = gw.rt.now_ms();
        let op = match Op::parse(body) {
            Ok(op) => op,
            Err(e) => return (400, json!({"error": e})),
        };
        let Some(kind) = ObjectKind::of(name).filter(|k| op.for_kind(*k)) else {
            return refusal(400, "this object does not answer that op");
        };
        let result = match kind {
            ObjectKind::Client => self.client_op(gw, op, now).await,
            ObjectKind::Address => self.address_op(op, now).await,
            ObjectKind::Directory => self.directory_op(gw, op, now).await,
            ObjectKind::Provider => self.provider_op(op, now).await,
        };
        result.unwrap_or_else(|e| {
            log_event(
                "authority_error",
                json!({"object_kind": format!("{kind:?}"), "error": e}),
            );
            (
                503,
                json!({"error": "the caller authority's storage failed"}),
            )
        })
    }

    // --- storage ---

    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        Ok(js::settle_promise(self.storage.get(key)).await?.as_string())
    }

    async fn put_all(&self, entries: &[(&str, String)]) -> Result<(), String> {
        let obj = js_sys::Object::new();
        for (k, v) in entries {
            js_sys::Reflect::set(&obj, &JsValue::from_str(k), &JsValue::from_str(v))
                .map_err(|e| js::message(&e))?;
        }
        js::settle_promise(self.storage.put_multiple(obj.into()))
            .await
            .map(drop)
    }

    async fn delete_keys(&self, keys: &[String]) -> Result<(), String> {
        // The platform deletes at most 128 keys per call.
        for chunk in keys.chunks(128) {
            let keys = chunk.iter().map(|k| JsValue::from_str(k)).collect();
            js::settle_promise(self.storage.delete_multiple(keys)).await?;
        }
        Ok(())
    }

    /// Entries under `prefix` (after `start_after`, at most `limit`), in key order.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<(String, String)>, String> {
        let opts = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&opts, &JsValue::from_str(k), &v);
        let mut ok = set("prefix", JsValue::from_str(prefix)).is_ok();
        if let Some(after) = start_after {
            ok &= set("startAfter", JsValue::from_str(after)).is_ok();
        }
        if let Some(n) = limit {
            ok &= set("limit", JsValue::from_f64(n as f64)).is_ok();
        }
        if !ok {
            return Err("could not build list options".into());
        }
        let map: js_sys::Map = js::settle_promise(self.storage.list_with_options(opts))
            .await?
            .dyn_into()
            .map_err(|_| "list did not answer a Map".to_string())?;
        let mut out = Vec::new();
        map.for_each(&mut |v, k| {
            if let (Some(k), Some(v)) = (k.as_string(), v.as_string()) {
                out.push((k, v));
            }
        });
        out.sort();
        Ok(out)
    }

    // --- client:<id> ---

    async fn load_client(&self) -> Result<(), String> {
        if self.memory.borrow().client.is_some() {
            return Ok(());
        }
        let state = self.get(RECORD_KEY).await?;
        let counters = self.get(COUNTERS_KEY).await?;
        let state = state.and_then(|s| ClientState::from_stored(&s));
        let counters = counters
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_default();
        let mut m = self.memory.borrow_mut();
        if m.client.is_none() {
            m.client = Some((state, counters));
        }
        Ok(())
    }

    async fn load_token(&self, id: &str) -> Result<(), String> {
        if self.memory.borrow().tokens.contains_key(id) {
            return Ok(());
        }
        let entry = self
            .get(&client::token_key(id))
            .await?
            .and_then(|s| serde_json::from_str::<TokenEntry>(&s).ok());
        let mut m = self.memory.borrow_mut();
        if m.tokens.len() >= MAX_LIVE_TOKENS {
            m.tokens.clear();
        }
        m.tokens.entry(id.to_string()).or_insert(entry);
        Ok(())
    }

    fn counters_text(&self) -> String {
        let m = self.memory.borrow();
        let counters = m
            .client
            .as_ref()
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        serde_json::to_string(&counters).unwrap_or_default()
    }

    fn state(&self) -> Option<ClientState> {
        self.memory
            .borrow()
            .client
            .as_ref()
            .and_then(|(s, _)| s.clone())
    }

    async fn client_op(
        &self,
        gw: &crate::config::Gateway,
        op: Op,
        now: u64,
    ) -> Result<Answer, String> {
        self.load_client().await?;
        match op {
            Op::Create {
                record,
                secret_sha256,
            } => {
                if self.state().is_some() {
                    return Ok(refusal(409, "the client exists"));
                }
                let (Some(record), Some(secret_sha256)) = (
                    ClientRecord::from_json(&record),
                    parse_sha256(&secret_sha256),
                ) else {
                    return Ok(refusal(400, "not a client record"));
                };
                let state = ClientState {
                    record,
                    secret_sha256,
                };
                self.put_all(&[(RECORD_KEY, state.to_stored())]).await?;
                let shown = state.record.to_json();
                self.memory.borrow_mut().client = Some((Some(state), Counters::default()));
                Ok((201, shown))
            }
            Op::Get => Ok(match self.state() {
                Some(s) => (200, s.record.to_json()),
                None => not_found(),
            }),
            Op::Patch { body } => {
                let Some(mut state) = self.state() else {
                    return Ok(not_found());
                };
                let patch = match parse_patch(body.as_bytes(), |p| gw.providers.contains_key(p)) {
                    Ok(p) => p,
                    Err(e) => return Ok((e.status, e.body())),
                };
                state.record.apply(&patch, now / 1000);
                self.put_all(&[(RECORD_KEY, state.to_stored())]).await?;
                let shown = state.record.to_json();
                self.set_state(state);
                Ok((200, shown))
            }
            Op::Rotate { secret_sha256 } => {
                let (Some(mut state), Some(hash)) = (self.state(), parse_sha256(&secret_sha256))
                else {
                    return Ok(not_found());
                };
                state.secret_sha256 = hash;
                state.record.updated_at = now / 1000;
                // Every token issued under the old secret goes with it.
                let tokens: Vec<String> = self
                    .list(TOKEN_KEY_PREFIX, None, None)
                    .await?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                self.delete_keys(&tokens).await?;
                {
                    let mut m = self.memory.borrow_mut();
                    m.tokens.clear();
                    if let Some((_, c)) = m.client.as_mut() {
                        c.live_tokens = 0;
                    }
                }
                self.put_all(&[
                    (RECORD_KEY, state.to_stored()),
                    (COUNTERS_KEY, self.counters_text()),
                ])
                .await?;
                let shown = state.record.to_json();
                self.set_state(state);
                Ok((200, shown))
            }
            Op::Delete => {
                if self.state().is_none() {
                    return Ok(not_found());
                }
                js::settle_promise(self.storage.delete_all()).await?;
                let mut m = self.memory.borrow_mut();
                m.tokens.clear();
                m.client = Some((None, Counters::default()));
                Ok((204, Value::Null))
            }
            Op::Grant {
                secret_sha256,
                scope,
                address,
                token_sha256,
            } => {
                let state = self.state();
                let (Some(secret), Some(token)) =
                    (parse_sha256(&secret_sha256), parse_sha256(&token_sha256))
                else {
                    return Ok(refusal(400, "malformed grant"));
                };
                if !client::authenticate(state.as_ref(), &secret) {
                    return Ok((401, json!("invalid_client")));
                }
                let state = state.expect("authenticate() refuses a missing caller");
                if self.live_tokens() >= MAX_LIVE_TOKENS {
                    self.prune_tokens(&state, now).await?;
                }
                let granted = {
                    let mut m = self.memory.borrow_mut();
                    let (_, counters) = m.client.as_mut().expect("loaded");
                    client::grant(
                        &state,
                        counters,
                        scope.as_deref(),
                        address.as_deref(),
                        &token,
                        now,
                    )
                };
                match granted {
                    Ok(entry) => {
                        let text = serde_json::to_string(&entry).unwrap_or_default();
                        self.put_all(&[
                            (&client::token_key(&entry.id), text),
                            (COUNTERS_KEY, self.counters_text()),
                        ])
                        .await?;
                        let shown = serde_json::to_value(&entry).unwrap_or_default();
                        self.memory
                            .borrow_mut()
                            .tokens
                            .insert(entry.id.clone(), Some(entry));
                        Ok((200, shown))
                    }
                    Err(r) => {
                        self.put_all(&[(COUNTERS_KEY, self.counters_text())])
                            .await?;
                        let status = r.to_gateway_error().status();
                        Ok((status, serde_json::to_value(&r).unwrap_or_default()))
                    }
                }
            }
            Op::Authenticate {
                secret_sha256,
                address,
            } => {
                let state = self.state();
                let Some(secret) = parse_sha256(&secret_sha256) else {
                    return Ok(refusal(400, "malformed authentication"));
                };
                if !client::authenticate(state.as_ref(), &secret) {
                    return Ok((401, json!("invalid_client")));
                }
                let state = state.expect("authenticate() refuses a missing caller");
                if !state.record.allows_address(address.as_deref()) {
                    return Ok((403, json!("access_denied")));
                }
                Ok((200, json!({"scopes": state.record.scopes})))
            }
            Op::Check(req) => {
                let Some(hash) = parse_sha256(&req.token_sha256) else {
                    return Ok(refusal(400, "malformed check"));
                };
                let id = client::token_id(&hash);
                self.load_token(&id).await?;
                let state = self.state();
                // Decided and counted in one step (no await in between).
                let (verdict, entry) = {
                    let mut m = self.memory.borrow_mut();
                    let Memory { client, tokens, .. } = &mut *m;
                    let (_, counters) = client.as_mut().expect("loaded");
                    let entry = tokens.get_mut(&id).and_then(Option::as_mut);
                    let verdict = client::check(state.as_ref(), counters, entry, &req, now);
                    let entry = tokens.get(&id).cloned().flatten();
                    (verdict, entry)
                };
                let mut writes = vec![(COUNTERS_KEY, self.counters_text())];
                let key = client::token_key(&id);
                if let (Ok(()), Some(e)) = (&verdict, &entry) {
                    writes.push((key.as_str(), serde_json::to_string(e).unwrap_or_default()));
                }
                if state.is_some() {
                    self.put_all(&writes).await?;
                }
                Ok(match verdict {
                    Ok(()) => (200, json!({"scopes": entry.map(|e| e.scopes)})),
                    Err(r) => (r.status(), serde_json::to_value(&r).unwrap_or_default()),
                })
            }
            Op::Revoke { token_sha256 } => {
                if let Some(hash) = parse_sha256(&token_sha256) {
                    self.remove_token(&client::token_id(&hash)).await?;
                }
                Ok((200, json!({})))
            }
            Op::RevokeId { id } => Ok(if self.remove_token(&id).await? {
                (204, Value::Null)
            } else {
                not_found()
            }),
            Op::Introspect { token_sha256 } => {
                let Some(hash) = parse_sha256(&token_sha256) else {
                    return Ok((200, json!({"active": false})));
                };
                let id = client::token_id(&hash);
                self.load_token(&id).await?;
                let entry = self.memory.borrow().tokens.get(&id).cloned().flatten();
                Ok((
                    200,
                    client::introspect(self.state().as_ref(), entry.as_ref(), now),
                ))
            }
            Op::Tokens => {
                let Some(state) = self.state() else {
                    return Ok(not_found());
                };
                let live = self.prune_tokens(&state, now).await?;
                let items: Vec<Value> = live
                    .iter()
                    .map(|e| e.to_public(&state.record.client_id))
                    .collect();
                Ok((200, json!({ "items": items })))
            }
            Op::ClientStats => {
                let m = self.memory.borrow();
                let stats = m.client.as_ref().map(|(_, c)| c.stats.clone());
                Ok((
                    200,
                    serde_json::to_value(stats.unwrap_or_default()).unwrap_or_default(),
                ))
            }
            Op::Count { stats } => {
                if let Some((_, c)) = self.memory.borrow_mut().client.as_mut() {
                    c.stats.add(&stats);
                }
                self.put_all(&[(COUNTERS_KEY, self.counters_text())])
                    .await?;
                Ok((200, json!({})))
            }
            Op::IssueStatic { per_minute } => {
                let allowed = {
                    let mut m = self.memory.borrow_mut();
                    let (_, counters) = m.client.as_mut().expect("loaded");
                    client::count_issue(counters, per_minute, now)
                };
                self.put_all(&[(COUNTERS_KEY, self.counters_text())])
                    .await?;
                Ok(match allowed {
                    Ok(()) => (200, json!({})),
                    Err(ms) => (429, json!({"retry_after_ms": ms})),
                })
            }
            _ => Ok(refusal(400, "not a client op")),
        }
    }

    fn set_state(&self, state: ClientState) {
        if let Some((s, _)) = self.memory.borrow_mut().client.as_mut() {
            *s = Some(state);
        }
    }

    fn live_tokens(&self) -> usize {
        let m = self.memory.borrow();
        m.client.as_ref().map_or(0, |(_, c)| c.live_tokens)
    }

    /// Removes the token with public id `id`; whether there was one.
    async fn remove_token(&self, id: &str) -> Result<bool, String> {
        self.load_token(id).await?;
        let existed = {
            let mut m = self.memory.borrow_mut();
            let existed = m.tokens.insert(id.to_string(), None).flatten().is_some();
            if let (true, Some((_, c))) = (existed, m.client.as_mut()) {
                c.live_tokens = c.live_tokens.saturating_sub(1);
            }
            existed
        };
        if existed {
            self.delete_keys(&[client::token_key(id)]).await?;
            self.put_all(&[(COUNTERS_KEY, self.counters_text())])
                .await?;
        }
        Ok(existed)
    }

    /// Deletes the entries of tokens no longer good; the live ones, and the count set to them.
    async fn prune_tokens(&self, state: &ClientState, now: u64) -> Result<Vec<TokenEntry>, String> {
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for (key, text) in self.list(TOKEN_KEY_PREFIX, None, None).await? {
            match serde_json::from_str::<TokenEntry>(&text) {
                Ok(e) if now < e.good_until(&state.record) => live.push(e),
                _ => dead.push(key),
            }
        }
        self.delete_keys(&dead).await?;
        {
            let mut m = self.memory.borrow_mut();
            for key in &dead {
                if let Some(id) = key.strip_prefix(TOKEN_KEY_PREFIX) {
                    m.tokens.insert(id.to_string(), None);
                }
            }
            if let Some((_, c)) = m.client.as_mut() {
                c.live_tokens = live.len();
            }
        }
        self.put_all(&[(COUNTERS_KEY, self.counters_text())])
            .await?;
        live.sort_by_key(|e| e.issued_at_ms);
        Ok(live)
    }

    // --- address:<address> ---

    async fn address_op(&self, op: Op, now: u64) -> Result<Answer, String> {
        if self.memory.borrow().gate.is_none() {
            let failures: Failures = self
                .get("failures")
                .await?
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            let mut m = self.memory.borrow_mut();
            if m.gate.is_none() {
                m.gate = Some(AddressGate::new(failures));
            }
        }
        match op {
            Op::Begin => {
                let ticket = self.memory.borrow_mut().gate.as_mut().map(|g| g.begin(now));
                Ok(match ticket {
                    Some(Ok(t)) => (200, json!({"ticket": t})),
                    Some(Err(ms)) => (429, json!({"retry_after_ms": ms})),
                    None => refusal(500, "no gate"),
                })
            }
            Op::Settle { ticket, failed } => {
                let changed = {
                    let mut m = self.memory.borrow_mut();
                    let gate = m.gate.as_mut().expect("loaded");
                    gate.settle(ticket, failed, now)
                        .then(|| serde_json::to_string(&gate.failures).unwrap_or_default())
                };
                if let Some(text) = changed {
                    self.put_all(&[("failures", text)]).await?;
                }
                Ok((200, json!({})))
            }
            _ => Ok(refusal(400, "not an address op")),
        }
    }

    // --- directory ---

    async fn directory_op(
        &self,
        gw: &crate::config::Gateway,
        op: Op,
        now: u64,
    ) -> Result<Answer, String> {
        match op {
            Op::Ledger { registrations } => {
                let stored = self
                    .get("ledger")
                    .await?
                    .and_then(|s| CallerLedger::from_json(&s))
                    .unwrap_or_default();
                let (ledger, changed) = stored.reconcile_registrations(&registrations, now);
                let text = ledger.to_json();
                if changed {
                    self.put_all(&[("ledger", text.clone())]).await?;
                }
                Ok((200, serde_json::from_str(&text).unwrap_or_default()))
            }
            Op::Add {
                record,
                secret_sha256,
            } => {
                let Some(parsed) = ClientRecord::from_json(&record) else {
                    return Ok(refusal(400, "not a client record"));
                };
                let id = parsed.client_id.clone();
                let create = Op::Create {
                    record,
                    secret_sha256,
                };
                let (status, shown) = self.forward(gw, &id, &create).await?;
                if status == 201 {
                    self.put_all(&[(&index_key(&id), shown.to_string())])
                        .await?;
                }
                Ok((status, shown))
            }
            Op::List { after, limit } => {
                let start = after.map(|a| index_key(&a));
                let page = self
                    .list(INDEX_PREFIX, start.as_deref(), Some(limit + 1))
                    .await?;
                let more = page.len() > limit;
                let items: Vec<Value> = page
                    .iter()
                    .take(limit)
                    .filter_map(|(_, v)| serde_json::from_str(v).ok())
                    .collect();
                let last = page
                    .get(limit.saturating_sub(1))
                    .filter(|_| more)
                    .and_then(|(k, _)| k.strip_prefix(INDEX_PREFIX))
                    .map(str::to_string);
                Ok((200, json!({"items": items, "last": last})))
            }
            Op::Change { id, change } => {
                let (status, shown) = self.forward(gw, &id, &change).await?;
                match status {
                    200 => {
                        self.put_all(&[(&index_key(&id), shown.to_string())])
                            .await?
                    }
                    204 | 404 => self.delete_keys(&[index_key(&id)]).await?,
                    _ => {}
                }
                Ok((status, shown))
            }
            _ => Ok(refusal(400, "not a directory op")),
        }
    }

    /// Sends `op` to the object of managed caller `id`.
    async fn forward(
        &self,
        gw: &crate::config::Gateway,
        id: &str,
        op: &Op,
    ) -> Result<Answer, String> {
        gw.authority.call(&client_object(id), op).await
    }

    // --- provider:<id> ---

    async fn provider_op(&self, op: Op, now: u64) -> Result<Answer, String> {
        if self.memory.borrow().provider.is_none() {
            let stats: ProviderStats = self
                .get("stats")
                .await?
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            let errors: ErrorLog = self
                .get("errors")
                .await?
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            let dropped: Vec<(String, u64)> = self
                .get("dropped")
                .await?
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            let last_exchange: Option<ExchangeMark> = self
                .get("last_exchange")
                .await?
                .and_then(|s| serde_json::from_str(&s).ok());
            let mut m = self.memory.borrow_mut();
            if m.provider.is_none() {
                m.provider = Some((stats, errors, dropped, last_exchange));
            }
        }
        let dropped_list = |m: &Memory| -> Vec<String> {
            m.provider
                .as_ref()
                .map(|(_, _, d, _)| d.iter().map(|(h, _)| h.clone()).collect())
                .unwrap_or_default()
        };
        match op {
            Op::Flush { delta } => {
                let writes = {
                    let mut m = self.memory.borrow_mut();
                    let (stats, errors, _, last) = m.provider.as_mut().expect("loaded");
                    let mut writes = Vec::new();
                    if delta.last_exchange.is_some() {
                        *last = ExchangeMark::latest(last.take(), delta.last_exchange.clone());
                        writes.push((
                            "last_exchange",
                            serde_json::to_string(last).unwrap_or_default(),
                        ));
                    }
                    if let Some(p) = &delta.provider {
                        stats.add(p);
                        writes.push(("stats", serde_json::to_string(stats).unwrap_or_default()));
                    }
                    if !delta.errors.is_empty() {
                        errors.extend(delta.errors.iter().cloned());
                        writes.push(("errors", serde_json::to_string(errors).unwrap_or_default()));
                    }
                    writes
                };
                if !writes.is_empty() {
                    self.put_all(&writes).await?;
                }
                let dropped = dropped_list(&self.memory.borrow());
                Ok((200, json!({ "dropped": dropped })))
            }
            Op::ProviderStats => {
                let m = self.memory.borrow();
                let stats = m.provider.as_ref().map(|(s, _, _, _)| s.clone());
                Ok((
                    200,
                    serde_json::to_value(stats.unwrap_or_default()).unwrap_or_default(),
                ))
            }
            Op::Errors { limit } => {
                let m = self.memory.borrow();
                let items = m
                    .provider
                    .as_ref()
                    .map(|(_, e, _, _)| e.latest(limit))
                    .unwrap_or_default();
                Ok((200, json!({ "items": items })))
            }
            Op::ProviderState { errors } => {
                let m = self.memory.borrow();
                let (_, log, dropped, last) = m.provider.as_ref().expect("loaded");
                Ok((
                    200,
                    json!({"last_exchange": last, "dropped_at": dropped.first().map(|(_, at)| at),
                           "recent_errors": log.latest(errors)}),
                ))
            }
            Op::DropTokens { tokens } => {
                let text = {
                    let mut m = self.memory.borrow_mut();
                    let (_, _, dropped, _) = m.provider.as_mut().expect("loaded");
                    for t in tokens.into_iter().filter(|t| parse_sha256(t).is_some()) {
                        dropped.retain(|(h, _)| *h != t);
                        dropped.insert(0, (t, now));
                    }
                    dropped.truncate(DROPPED_KEEP);
                    serde_json::to_string(dropped).unwrap_or_default()
                };
                self.put_all(&[("dropped", text)]).await?;
                let dropped = dropped_list(&self.memory.borrow());
                Ok((200, json!({ "dropped": dropped })))
            }
            _ => Ok(refusal(400, "not a provider op")),
        }
    }
}

/// The directory's index entries: `client:<id>` → the record.
const INDEX_PREFIX: &str = "client:";

fn index_key(id: &str) -> String {
    format!("{INDEX_PREFIX}{id}")
}

fn not_found() -> Answer {
    let e = AdminError::not_found("no such client");
    (e.status, e.body())
}
