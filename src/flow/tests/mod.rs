//! The flow over fakes: a scripted transport that records every request, an in-memory store
//! with TTLs and failure injection, and a runtime with a fake clock, fixed jitter and captured
//! log events.

use super::*;
use crate::api_call::{CallError, REFRESH_ON_401_WINDOW_MS};
use crate::cache_key::token_cache_key;
use crate::error::{ErrorCode, TokenError};
use crate::http::{HttpRequest, HttpResponse};
use crate::response::Token;
use crate::secret::Secret;
use crate::TokenSettings;
use futures::executor::block_on;
use futures::future::join_all;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

const T0: u64 = 1_700_000_000_000;
const SECRET: &str = "SECRET-s3cr3t-value";
const TOKEN_A: &str = "provider-token-AAAA";
const TOKEN_B: &str = "provider-token-BBBB";
const JITTER: f64 = 0.5;

// ---------------------------------------------------------------- fakes

/// A future that stays pending until opened.
#[derive(Clone, Default)]
struct Gate(Rc<GateState>);

#[derive(Default)]
struct GateState {
    open: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.0.open.set(true);
        for w in self.0.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    fn wait(&self) -> GateWait {
        GateWait(self.clone())
    }
}

struct GateWait(Gate);

impl Future for GateWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let g = &(self.0).0;
        if g.open.get() {
            Poll::Ready(())
        } else {
            g.wakers.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Pending once, then ready.
#[derive(Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[derive(Clone, Default)]
struct FakeTransport(Rc<TransportState>);

#[derive(Default)]
struct TransportState {
    script: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
    sent: RefCell<Vec<(HttpRequest, u64)>>,
    gate: RefCell<Option<Gate>>,
}

impl FakeTransport {
    fn push(&self, r: Result<HttpResponse, TransportError>) -> &Self {
        self.0.script.borrow_mut().push_back(r);
        self
    }

    fn reply(&self, status: u16, headers: &[(&str, &str)], body: &str) -> &Self {
        self.push(Ok(response(status, headers, body)))
    }

    fn token(&self, token: &str, expires_in: u64) -> &Self {
        self.reply(200, &[], &token_body(token, expires_in))
    }

    fn calls(&self) -> usize {
        self.0.sent.borrow().len()
    }

    fn sent(&self) -> Vec<(HttpRequest, u64)> {
        self.0.sent.borrow().clone()
    }
}

impl Transport for FakeTransport {
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, TransportError> {
        self.0.sent.borrow_mut().push((req, timeout_ms));
        let gate = self.0.gate.borrow().clone();
        if let Some(g) = gate {
            g.wait().await;
        }
        self.0
            .script
            .borrow_mut()
            .pop_front()
            .expect("the transport was called more often than scripted")
    }
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse::fixture(status, headers, body)
}

fn token_body(token: &str, expires_in: u64) -> String {
    json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}).to_string()
}

/// A shared clock, milliseconds.
type Clock = Rc<Cell<u64>>;

#[derive(Clone)]
struct FakeStore(Rc<StoreState>);

struct StoreState {
    clock: Clock,
    map: RefCell<HashMap<String, (String, u64)>>,
    gets: Cell<usize>,
    puts: RefCell<Vec<(String, String, u64)>>,
    deletes: RefCell<Vec<String>>,
    fail: Cell<bool>,
    /// Deletes are recorded but not applied (an eventually consistent store).
    lag_deletes: Cell<bool>,
}

impl FakeStore {
    fn new(clock: &Clock) -> Self {
        FakeStore(Rc::new(StoreState {
            clock: clock.clone(),
            map: RefCell::default(),
            gets: Cell::new(0),
            puts: RefCell::default(),
            deletes: RefCell::default(),
            fail: Cell::new(false),
            lag_deletes: Cell::new(false),
        }))
    }

    fn puts(&self) -> Vec<(String, String, u64)> {
        self.0.puts.borrow().clone()
    }

    fn contains(&self, key: &str) -> bool {
        self.0.map.borrow().contains_key(key)
    }
}

impl TokenStore for FakeStore {
    async fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.0.gets.set(self.0.gets.get() + 1);
        if self.0.fail.get() {
            return Err("kv get failed: 503 from storage".into());
        }
        let now = self.0.clock.get();
        Ok(self
            .0
            .map
            .borrow()
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(v, _)| v.clone()))
    }

    async fn put(&self, key: &str, value: String, ttl_s: u64) -> Result<(), String> {
        assert!(ttl_s >= 60, "KV rejects TTLs under 60 s, got {ttl_s}");
        self.0
            .puts
            .borrow_mut()
            .push((key.to_string(), value.clone(), ttl_s));
        if self.0.fail.get() {
            return Err("kv put failed: quota".into());
        }
        let until = self.0.clock.get() + ttl_s * 1000;
        self.0
            .map
            .borrow_mut()
            .insert(key.to_string(), (value, until));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.0.deletes.borrow_mut().push(key.to_string());
        if self.0.fail.get() {
            return Err("kv delete failed".into());
        }
        if !self.0.lag_deletes.get() {
            self.0.map.borrow_mut().remove(key);
        }
        Ok(())
    }
}

/// A wake-up like the Worker's: a gate every waiter waits on, counting waits and raises.
#[derive(Default)]
struct FakeSignal {
    gate: Gate,
    waits: Cell<usize>,
    raises: Cell<usize>,
}

impl FlightSignal for FakeSignal {
    fn raise(&self) {
        self.raises.set(self.raises.get() + 1);
        self.gate.open();
    }

    fn wait(&self, _max_ms: u64) -> futures::future::LocalBoxFuture<'static, ()> {
        self.waits.set(self.waits.get() + 1);
        Box::pin(self.gate.wait())
    }
}

#[derive(Clone)]
struct FakeRuntime(Rc<RtState>);

struct RtState {
    clock: Clock,
    /// Behave like the Worker runtime: waiters wait on a signal the leader raises; sleeps yield
    /// once.
    signalled: Cell<bool>,
    /// Every signal made, to count waits and raises.
    signals: RefCell<Vec<Rc<FakeSignal>>>,
    sleeps: RefCell<Vec<u64>>,
    logs: RefCell<Vec<(String, Value)>>,
    /// Background tasks, run by [`FakeRuntime::run_background`].
    background: RefCell<Vec<futures::future::LocalBoxFuture<'static, ()>>>,
}

impl FakeRuntime {
    fn new(clock: &Clock) -> Self {
        FakeRuntime(Rc::new(RtState {
            clock: clock.clone(),
            signalled: Cell::new(false),
            signals: RefCell::default(),
            sleeps: RefCell::default(),
            logs: RefCell::default(),
            background: RefCell::default(),
        }))
    }

    /// Runs the background tasks queued so far; how many there were.
    fn run_background(&self) -> usize {
        let tasks = std::mem::take(&mut *self.0.background.borrow_mut());
        let n = tasks.len();
        for t in tasks {
            block_on(t);
        }
        n
    }

    fn sleeps(&self) -> Vec<u64> {
        self.0.sleeps.borrow().clone()
    }

    fn logs(&self) -> Vec<(String, Value)> {
        self.0.logs.borrow().clone()
    }

    fn events(&self, name: &str) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|(e, _)| e == name)
            .map(|(_, f)| f)
            .collect()
    }
}

impl Runtime for FakeRuntime {
    fn now_ms(&self) -> u64 {
        self.0.clock.get()
    }

    fn jitter(&self) -> f64 {
        JITTER
    }

    async fn sleep(&self, ms: u64) {
        self.0.sleeps.borrow_mut().push(ms);
        self.0.clock.set(self.0.clock.get() + ms);
        if self.0.signalled.get() {
            // A real timer lets other tasks run meanwhile.
            YieldOnce::default().await;
        }
    }

    fn flight_signal(&self) -> Option<Rc<dyn FlightSignal>> {
        if !self.0.signalled.get() {
            return None;
        }
        let s = Rc::new(FakeSignal::default());
        self.0.signals.borrow_mut().push(s.clone());
        Some(s)
    }

    fn log(&self, event: &str, fields: Value) {
        self.0.logs.borrow_mut().push((event.to_string(), fields));
    }

    fn background(&self, task: futures::future::LocalBoxFuture<'static, ()>) {
        self.0.background.borrow_mut().push(task);
    }
}

// ---------------------------------------------------------------- harness

type Source = TokenSource<FakeTransport, FakeStore, FakeRuntime>;

struct Harness {
    clock: Clock,
    transport: FakeTransport,
    store: FakeStore,
    rt: FakeRuntime,
    source: Source,
    key: String,
}

fn settings() -> TokenSettings {
    TokenSettings::parse_camel(
        &json!({
            "tokenUrl": "https://auth.example.com/oauth/token",
            "clientId": "cid-1",
            "authStyle": "json_body",
        }),
        &[],
    )
    .unwrap()
}

impl Harness {
    fn new() -> Self {
        let clock: Clock = Rc::new(Cell::new(T0));
        let store = FakeStore::new(&clock);
        Self::sharing(&clock, &store)
    }

    /// A second instance (another isolate) on the same clock and store.
    fn sharing(clock: &Clock, store: &FakeStore) -> Self {
        Self::build(clock, store, settings())
    }

    fn build(clock: &Clock, store: &FakeStore, s: TokenSettings) -> Self {
        let secret = Secret::new(SECRET);
        let key = token_cache_key("optoro", &s, &secret, b"");
        let transport = FakeTransport::default();
        let rt = FakeRuntime::new(clock);
        let source = TokenSource::new(
            "optoro",
            s,
            secret,
            key.clone(),
            transport.clone(),
            store.clone(),
            rt.clone(),
        );
        Harness {
            clock: clock.clone(),
            transport,
            store: store.clone(),
            rt,
            source,
            key,
        }
    }

    fn token(&self) -> Result<(Token, TokenOrigin), TokenError> {
        block_on(self.source.token())
    }

    fn advance(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }

    /// No captured log event mentions the client secret or any provider token.
    fn assert_logs_clean(&self) {
        let all = serde_json::to_string(&self.rt.logs()).unwrap();
        for s in [SECRET, TOKEN_A, TOKEN_B, "provider-token"] {
            assert!(!all.contains(s), "log leaks {s}: {all}");
        }
    }
}

/// The exact token request of `settings()` with `SECRET` (Optoro's JSON dialect).
fn assert_token_request(req: &HttpRequest, timeout_ms: u64) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://auth.example.com/oauth/token");
    assert_eq!(
        req.headers,
        vec![
            ("Accept".to_string(), "application/json".to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
        ]
    );
    assert_eq!(
        std::str::from_utf8(&req.body).unwrap(),
        r#"{"client_id":"cid-1","client_secret":"SECRET-s3cr3t-value","grant_type":"client_credentials"}"#
    );
    assert_eq!(timeout_ms, 10_000);
}

mod api;
mod flight;
mod minted;
mod proof;
mod token;
mod token_api;
