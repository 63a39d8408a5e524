//! The flow over fakes: a scripted transport that records every request, an in-memory store
//! with TTLs and failure injection, and a runtime with a fake clock, fixed jitter and captured
//! log events.

use super::*;
use crate::core::cache_key::token_cache_key;
use futures::executor::block_on;
use futures::future::join_all;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
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
    HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
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

#[derive(Clone)]
struct FakeRuntime(Rc<RtState>);

struct RtState {
    clock: Clock,
    /// `Some(ms)`: behave like the Worker runtime (waiters poll; sleeps yield once).
    flight_poll: Cell<Option<u64>>,
    sleeps: RefCell<Vec<u64>>,
    logs: RefCell<Vec<(String, Value)>>,
}

impl FakeRuntime {
    fn new(clock: &Clock) -> Self {
        FakeRuntime(Rc::new(RtState {
            clock: clock.clone(),
            flight_poll: Cell::new(None),
            sleeps: RefCell::default(),
            logs: RefCell::default(),
        }))
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
        if self.0.flight_poll.get().is_some() {
            // A real timer lets other tasks run meanwhile.
            YieldOnce::default().await;
        }
    }

    fn flight_poll_ms(&self) -> Option<u64> {
        self.0.flight_poll.get()
    }

    fn log(&self, event: &str, fields: Value) {
        self.0.logs.borrow_mut().push((event.to_string(), fields));
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
        let s = settings();
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

/// The exact token request of `settings()` with `SECRET` (seed 001 dialect).
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

// ---------------------------------------------------------------- token()

#[test]
fn exchange_then_memory_hit() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert_eq!(t.expires_at_ms, T0 + 3_600_000);
    assert_eq!(origin, TokenOrigin::Exchange { ms: 0 });
    let sent = h.transport.sent();
    assert_eq!(sent.len(), 1);
    assert_token_request(&sent[0].0, sent[0].1);

    // Stored with TTL = lifetime − skew, value readable as the token with its expiry.
    let puts = h.store.puts();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].0, h.key);
    assert_eq!(puts[0].2, 3_540);
    let stored: Token = serde_json::from_str(&puts[0].1).unwrap();
    assert_eq!(stored, t);

    h.advance(60_000);
    let (t2, origin) = h.token().unwrap();
    assert_eq!(origin, TokenOrigin::Memory);
    assert_eq!(t2, t);
    assert_eq!(h.transport.calls(), 1);
    assert_eq!(
        h.store.0.gets.get(),
        1,
        "a memory hit does not touch the store"
    );
    let ev = h.rt.events("token_exchange");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["provider"], "optoro");
    assert_eq!(ev[0]["status"], 200);
    assert_eq!(ev[0]["ok"], true);
    h.assert_logs_clean();
}

#[test]
fn store_hit_on_a_second_source_sharing_the_store() {
    let h1 = Harness::new();
    h1.transport.token(TOKEN_A, 3600);
    h1.token().unwrap();
    h1.advance(1_000);

    let h2 = Harness::sharing(&h1.clock, &h1.store);
    let (t, origin) = h2.token().unwrap();
    assert_eq!(origin, TokenOrigin::Store);
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert_eq!(h2.transport.calls(), 0);
    // Then from its own memory.
    let (_, origin) = h2.token().unwrap();
    assert_eq!(origin, TokenOrigin::Memory);
    assert_eq!(h2.store.0.gets.get(), 2, "one get by each source");
    h2.assert_logs_clean();
}

#[test]
fn stale_store_entry_is_a_miss() {
    let h1 = Harness::new();
    h1.transport.token(TOKEN_A, 3600);
    h1.token().unwrap();
    // The store keeps values past their refresh point (TTL is housekeeping only).
    h1.store.0.map.borrow_mut().get_mut(&h1.key).unwrap().1 = u64::MAX;
    h1.advance(3_540_000);
    let h2 = Harness::sharing(&h1.clock, &h1.store);
    h2.transport.token(TOKEN_B, 3600);
    let (t, origin) = h2.token().unwrap();
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(t.access_token.expose(), TOKEN_B);
    assert_eq!(h2.transport.calls(), 1);
}

#[test]
fn refresh_once_now_passes_the_refresh_point() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    h.token().unwrap();
    // Refresh point: expiry − 60 s skew.
    h.advance(3_540_000 - 1);
    let (t, origin) = h.token().unwrap();
    assert_eq!(
        (t.access_token.expose(), origin),
        (TOKEN_A, TokenOrigin::Memory)
    );
    assert_eq!(h.transport.calls(), 1);
    h.advance(1);
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_B);
    assert_eq!(origin, TokenOrigin::Exchange { ms: 0 });
    assert_eq!(t.expires_at_ms, T0 + 3_540_000 + 3_600_000);
    assert_eq!(h.transport.calls(), 2);
    let (_, origin) = h.token().unwrap();
    assert_eq!(origin, TokenOrigin::Memory);
    assert_eq!(h.transport.calls(), 2);
}

#[test]
fn hundred_concurrent_tokens_share_one_exchange() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let gate = Gate::default();
    *h.transport.0.gate.borrow_mut() = Some(gate.clone());
    let all = join_all((0..100).map(|_| h.source.token()));
    let opener = async {
        // Every token() call has been polled (and is waiting) before the answer arrives.
        YieldOnce::default().await;
        assert_eq!(h.transport.calls(), 1);
        gate.open();
    };
    let (results, ()) = block_on(async { futures::join!(all, opener) });
    assert_eq!(results.len(), 100);
    for r in results {
        let (t, origin) = r.unwrap();
        assert_eq!(t.access_token.expose(), TOKEN_A);
        assert_eq!(origin, TokenOrigin::Exchange { ms: 0 });
    }
    assert_eq!(h.transport.calls(), 1);
    assert_eq!(h.store.0.gets.get(), 1, "one store lookup too");
    assert_eq!(h.store.puts().len(), 1);
    // After the flight lands, calls are memory hits.
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);
}

#[test]
fn polling_waiters_share_one_exchange() {
    // The Worker's mode: waiters check the flight's result on their own timer and never poll it.
    let h = Harness::new();
    h.rt.0.flight_poll.set(Some(5));
    h.transport.token(TOKEN_A, 3600);
    let gate = Gate::default();
    *h.transport.0.gate.borrow_mut() = Some(gate.clone());
    let all = join_all((0..100).map(|_| h.source.token()));
    let opener = async {
        for _ in 0..3 {
            YieldOnce::default().await;
        }
        assert_eq!(h.transport.calls(), 1);
        gate.open();
    };
    let (results, ()) = block_on(async { futures::join!(all, opener) });
    for r in results {
        assert_eq!(r.unwrap().0.access_token.expose(), TOKEN_A);
    }
    assert_eq!(h.transport.calls(), 1);
    let polls = h.rt.sleeps();
    assert!(polls.len() >= 99, "the 99 waiters polled: {}", polls.len());
    assert!(polls.iter().all(|&ms| ms == 5));
}

#[test]
fn a_flight_whose_request_vanished_is_replaced_at_once() {
    let h = Harness::new();
    h.rt.0.flight_poll.set(Some(5));
    h.transport.token(TOKEN_A, 3600);
    let gate = Gate::default();
    *h.transport.0.gate.borrow_mut() = Some(gate.clone());
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // The request that starts the exchange, and one that waits for it.
    let mut leader = Box::pin(h.source.token());
    assert!(leader.as_mut().poll(&mut cx).is_pending());
    let mut waiter = Box::pin(h.source.token());
    assert!(waiter.as_mut().poll(&mut cx).is_pending());
    assert_eq!(h.transport.calls(), 1);
    // The leader's request is cancelled mid-flight: the waiter starts a new exchange at its
    // next poll instead of waiting out the old one.
    drop(leader);
    *h.transport.0.gate.borrow_mut() = None;
    let (t, origin) = block_on(waiter).unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(
        h.transport.calls(),
        2,
        "a new flight replaced the abandoned one"
    );
    let waited: u64 = h.rt.sleeps().iter().sum();
    assert!(waited <= 10, "waited {waited} ms");
}

#[test]
fn concurrent_failure_is_shared_and_not_cached() {
    let h = Harness::new();
    h.transport.reply(400, &[], r#"{"error":"invalid_scope"}"#);
    let gate = Gate::default();
    *h.transport.0.gate.borrow_mut() = Some(gate.clone());
    let all = join_all((0..10).map(|_| h.source.token()));
    let opener = async {
        YieldOnce::default().await;
        gate.open();
    };
    let (results, ()) = block_on(async { futures::join!(all, opener) });
    for r in results {
        let e = r.unwrap_err();
        assert_eq!(e.provider_error.as_deref(), Some("invalid_scope"));
    }
    assert_eq!(h.transport.calls(), 1);
    // The in-flight slot was released: the next call exchanges again.
    h.transport.token(TOKEN_A, 3600);
    assert!(h.token().is_ok());
    assert_eq!(h.transport.calls(), 2);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let h = Harness::new();
    h.transport
        .reply(503, &[], "<html>busy</html>")
        .reply(503, &[], "<html>busy</html>")
        .token(TOKEN_A, 3600);
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    let sent = h.transport.sent();
    assert_eq!(sent.len(), 3);
    for (req, timeout) in &sent {
        assert_token_request(req, *timeout);
    }
    // Full jitter at 0.5: 200·2⁰·0.5, then 200·2¹·0.5.
    assert_eq!(h.rt.sleeps(), [100, 200]);
    assert_eq!(origin, TokenOrigin::Exchange { ms: 300 });
    // The token's lifetime counts from when it arrived.
    assert_eq!(t.expires_at_ms, T0 + 300 + 3_600_000);
    let ev = h.rt.events("token_exchange");
    let attempts: Vec<_> = ev.iter().map(|e| e["attempt"].clone()).collect();
    assert_eq!(attempts, [json!(1), json!(2), json!(3)]);
    assert_eq!(ev[0]["error"], "server_error");
    assert_eq!(ev[0]["status"], 503);
    assert_eq!(ev[2]["ok"], true);
    h.assert_logs_clean();
}

#[test]
fn transport_failures_are_retried() {
    let h = Harness::new();
    h.transport
        .push(Err(TransportError::Network("connection reset".into())))
        .push(Err(TransportError::Timeout))
        .token(TOKEN_A, 3600);
    assert!(h.token().is_ok());
    assert_eq!(h.transport.calls(), 3);
    assert_eq!(h.rt.sleeps(), [100, 200]);
    let ev = h.rt.events("token_exchange");
    assert_eq!(ev[0]["error"], "network");
    assert_eq!(ev[1]["error"], "timeout");
}

#[test]
fn retries_run_out() {
    let h = Harness::new();
    for _ in 0..4 {
        h.transport.reply(500, &[], "oops");
    }
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::ServerError);
    assert_eq!(e.status, Some(500));
    // Four attempts (default max_attempts), three sleeps.
    assert_eq!(h.transport.calls(), 4);
    assert_eq!(h.rt.sleeps(), [100, 200, 400]);
}

#[test]
fn rate_limited_honours_retry_after() {
    let h = Harness::new();
    h.transport
        .reply(429, &[("retry-after", "1")], r#"{"error":"rate_limited"}"#)
        .token(TOKEN_A, 3600);
    let (_, origin) = h.token().unwrap();
    assert_eq!(h.rt.sleeps(), [1_000]);
    assert_eq!(h.transport.calls(), 2);
    assert_eq!(origin, TokenOrigin::Exchange { ms: 1_000 });
}

#[test]
fn rate_limited_with_too_long_retry_after_is_not_retried() {
    let h = Harness::new();
    h.transport
        .reply(429, &[("retry-after", "3600")], "slow down");
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(e.retry_after_ms, Some(3_600_000));
    assert_eq!(h.transport.calls(), 1);
    assert!(h.rt.sleeps().is_empty());
}

#[test]
fn client_errors_are_not_retried() {
    for (status, body, code) in [
        (
            400,
            r#"{"error":"invalid_request","error_description":"bad"}"#,
            ErrorCode::InvalidRequest,
        ),
        (
            401,
            r#"{"error":"invalid_client"}"#,
            ErrorCode::InvalidClient,
        ),
        (
            422,
            r#"{"message":"Validation Failed","errors":[{"field":"client_id","code":"missing_field"}]}"#,
            ErrorCode::InvalidRequest,
        ),
    ] {
        let h = Harness::new();
        h.transport.reply(status, &[], body);
        let e = h.token().unwrap_err();
        assert_eq!(e.code, code, "{status}");
        assert_eq!(e.status, Some(status));
        assert_eq!(h.transport.calls(), 1, "{status}");
        assert!(h.rt.sleeps().is_empty(), "{status}");
        h.assert_logs_clean();
    }
}

#[test]
fn invalid_client_cools_down_for_30_s() {
    let h = Harness::new();
    h.transport.reply(
        401,
        &[],
        r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
    );
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidClient);
    assert_eq!(h.transport.calls(), 1);

    h.advance(INVALID_CLIENT_COOLDOWN_MS - 1);
    let again = h.token().unwrap_err();
    assert_eq!(again.code, ErrorCode::InvalidClient);
    assert_eq!(again.provider_error.as_deref(), Some("invalid_client"));
    assert_eq!(h.transport.calls(), 1, "no call during the cooldown");

    h.advance(1);
    h.transport.token(TOKEN_A, 3600);
    let (t, _) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert_eq!(h.transport.calls(), 2);
    h.assert_logs_clean();
}

#[test]
fn a_failed_exchange_stores_nothing() {
    let h = Harness::new();
    h.transport.reply(400, &[], r#"{"error":"invalid_scope"}"#);
    assert!(h.token().is_err());
    // A 200 that is not a token is a failure too.
    h.transport.reply(200, &[], "<html>not json</html>");
    let e = h.token().unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidResponse);
    assert!(h.store.puts().is_empty());
    assert!(!h.store.contains(&h.key));
    // Nothing in memory either: the next call exchanges.
    h.transport.token(TOKEN_A, 3600);
    assert!(matches!(h.token().unwrap().1, TokenOrigin::Exchange { .. }));
    assert_eq!(h.transport.calls(), 3);
}

#[test]
fn short_lived_token_never_reaches_the_store() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 90);
    let (t, _) = h.token().unwrap();
    assert_eq!(t.expires_at_ms, T0 + 90_000);
    assert!(h.store.puts().is_empty());
    // Served from memory for half its life (skew capped at half).
    h.advance(44_999);
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);
    h.advance(1);
    h.transport.token(TOKEN_B, 120);
    let (t, _) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_B);
    // 120 s − 60 s skew = exactly the 60 s KV minimum: stored.
    assert_eq!(h.store.puts().len(), 1);
    assert_eq!(h.store.puts()[0].2, 60);
}

#[test]
fn store_errors_are_logged_and_treated_as_a_miss() {
    let h = Harness::new();
    h.store.0.fail.set(true);
    h.transport.token(TOKEN_A, 3600);
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    let errs = h.rt.events("store_error");
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0]["op"], "get");
    assert_eq!(errs[0]["error"], "kv get failed: 503 from storage");
    assert_eq!(errs[1]["op"], "put");
    assert_eq!(errs[0]["provider"], "optoro");
    // Memory still works.
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);

    // An unreadable stored value is logged and ignored too.
    let h2 = Harness::sharing(&h.clock, &h.store);
    h.store.0.fail.set(false);
    h.store
        .0
        .map
        .borrow_mut()
        .insert(h.key.clone(), ("{not a token".into(), u64::MAX));
    h2.transport.token(TOKEN_B, 3600);
    let (t, _) = h2.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_B);
    assert_eq!(h2.rt.events("store_error")[0]["op"], "decode");
    h.assert_logs_clean();
    h2.assert_logs_clean();
}

#[test]
fn invalidate_drops_memory_and_store() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    h.token().unwrap();
    assert!(h.store.contains(&h.key));
    block_on(h.source.invalidate(Some(&Secret::new(TOKEN_A))));
    assert!(!h.store.contains(&h.key));
    assert_eq!(*h.store.0.deletes.borrow(), std::slice::from_ref(&h.key));
    let (t, origin) = h.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_B);
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(h.transport.calls(), 2);

    // Rejecting an older token keeps the newer one.
    block_on(h.source.invalidate(Some(&Secret::new(TOKEN_A))));
    assert_eq!(h.store.0.deletes.borrow().len(), 1);
    assert!(h.store.contains(&h.key));
    assert_eq!(h.token().unwrap().1, TokenOrigin::Memory);

    // No token named: drop whatever there is.
    block_on(h.source.invalidate(None));
    assert_eq!(h.store.0.deletes.borrow().len(), 2);
    h.transport.token(TOKEN_A, 3600);
    assert!(matches!(h.token().unwrap().1, TokenOrigin::Exchange { .. }));
}

#[test]
fn invalidate_store_failure_is_logged() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    h.token().unwrap();
    h.store.0.fail.set(true);
    block_on(h.source.invalidate(None));
    let errs = h.rt.events("store_error");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["op"], "delete");
}

// ---------------------------------------------------------------- call_api

type Replies = Rc<RefCell<VecDeque<Result<ApiReply<&'static str>, TransportError>>>>;

fn api_reply(status: u16, body: &'static str) -> Result<ApiReply<&'static str>, TransportError> {
    Ok(ApiReply {
        status,
        retry_after: None,
        response: body,
    })
}

/// Runs `call_api` with scripted replies; returns the result and the token of every attempt.
fn run_api(
    h: &Harness,
    method: &str,
    replayable: bool,
    replies: Vec<Result<ApiReply<&'static str>, TransportError>>,
) -> (Result<(&'static str, TokenOrigin), ApiError>, Vec<String>) {
    let replies: Replies = Rc::new(RefCell::new(replies.into()));
    let used = Rc::new(RefCell::new(Vec::new()));
    let result = block_on(call_api(&h.source, method, replayable, |tok: Secret| {
        used.borrow_mut().push(tok.expose().to_string());
        let r = replies
            .borrow_mut()
            .pop_front()
            .expect("the API was called more often than scripted");
        async move { r }
    }));
    assert!(replies.borrow().is_empty(), "unused scripted replies");
    let used = used.borrow().clone();
    (result, used)
}

#[test]
fn api_401_refreshes_and_replays_once() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(401, "expired"), api_reply(200, "ok")],
    );
    let (resp, origin) = r.unwrap();
    assert_eq!(resp, "ok");
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(used, [TOKEN_A, TOKEN_B]);
    assert_eq!(h.transport.calls(), 2);
    assert_eq!(*h.store.0.deletes.borrow(), std::slice::from_ref(&h.key));
    // The replay is not a retry: no backoff.
    assert!(h.rt.sleeps().is_empty());
    // The new token is the cached one.
    assert_eq!(h.token().unwrap().0.access_token.expose(), TOKEN_B);
    h.assert_logs_clean();
}

#[test]
fn api_401_is_not_undone_by_a_stale_store_copy() {
    // KV deletes propagate slowly: the store still returns the rejected token after the 401.
    let h = Harness::new();
    h.store.0.lag_deletes.set(true);
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(401, "revoked"), api_reply(200, "ok")],
    );
    assert_eq!(r.unwrap().0, "ok");
    assert_eq!(used, [TOKEN_A, TOKEN_B], "the replay used a new token");
    assert_eq!(h.transport.calls(), 2);
    // A second isolate whose store copy is the new token reads it normally.
    let other = Harness::sharing(&h.clock, &h.store);
    assert_eq!(other.token().unwrap().0.access_token.expose(), TOKEN_B);
}

#[test]
fn api_401_refreshes_at_most_once_per_window() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    // An API that answers 401 for a permission problem, whatever the token.
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(401, "forbidden"), api_reply(401, "forbidden")],
    );
    assert_eq!(r.unwrap().0, "forbidden");
    assert_eq!(used, [TOKEN_A, TOKEN_B]);
    // Within the window: the 401 stands, no exchange, the token is kept.
    h.advance(REFRESH_ON_401_WINDOW_MS - 1);
    let (r, used) = run_api(&h, "GET", true, vec![api_reply(401, "forbidden")]);
    assert_eq!(r.unwrap().0, "forbidden");
    assert_eq!(used, [TOKEN_B]);
    assert_eq!(h.transport.calls(), 2);
    assert_eq!(h.rt.events("api_401_not_refreshed").len(), 1);
    // After it, a 401 refreshes again.
    h.advance(1);
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(401, "expired"), api_reply(200, "ok")],
    );
    assert_eq!(r.unwrap().0, "ok");
    assert_eq!(used, [TOKEN_B, TOKEN_A]);
    assert_eq!(h.transport.calls(), 3);
    h.assert_logs_clean();
}

#[test]
fn api_second_401_is_returned_as_is() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600).token(TOKEN_B, 3600);
    let (r, used) = run_api(
        &h,
        "POST",
        true,
        vec![api_reply(401, "first"), api_reply(401, "second")],
    );
    assert_eq!(r.unwrap().0, "second");
    assert_eq!(used, [TOKEN_A, TOKEN_B]);
    assert_eq!(h.transport.calls(), 2);
}

#[test]
fn api_non_replayable_401_invalidates_without_replay() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(&h, "PUT", false, vec![api_reply(401, "nope")]);
    let (resp, _) = r.unwrap();
    assert_eq!(resp, "nope");
    assert_eq!(used, [TOKEN_A]);
    assert_eq!(h.transport.calls(), 1);
    assert_eq!(*h.store.0.deletes.borrow(), std::slice::from_ref(&h.key));
    // The token was dropped: the next request exchanges.
    h.transport.token(TOKEN_B, 3600);
    assert_eq!(h.token().unwrap().0.access_token.expose(), TOKEN_B);
}

#[test]
fn api_get_503_is_retried() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(
        &h,
        "GET",
        true,
        vec![api_reply(503, "busy"), api_reply(200, "ok")],
    );
    assert_eq!(r.unwrap().0, "ok");
    assert_eq!(used, [TOKEN_A, TOKEN_A]);
    assert_eq!(h.rt.sleeps(), [100]);
    assert!(h.store.0.deletes.borrow().is_empty());
}

#[test]
fn api_retry_after_is_honoured() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, _) = run_api(
        &h,
        "GET",
        true,
        vec![
            Ok(ApiReply {
                status: 429,
                retry_after: Some("2".into()),
                response: "slow",
            }),
            api_reply(200, "ok"),
        ],
    );
    assert_eq!(r.unwrap().0, "ok");
    assert_eq!(h.rt.sleeps(), [2_000]);
}

#[test]
fn api_post_503_is_not_retried() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(&h, "POST", true, vec![api_reply(503, "busy")]);
    assert_eq!(r.unwrap().0, "busy");
    assert_eq!(used, [TOKEN_A]);
    assert!(h.rt.sleeps().is_empty());
}

#[test]
fn api_transport_error_on_last_attempt() {
    let h = Harness::new();
    h.transport.token(TOKEN_A, 3600);
    let (r, used) = run_api(&h, "POST", true, vec![Err(TransportError::Timeout)]);
    assert_eq!(r.unwrap_err(), ApiError::Transport(TransportError::Timeout));
    assert_eq!(used.len(), 1);
}

#[test]
fn api_token_failure_is_reported() {
    let h = Harness::new();
    h.transport.reply(401, &[], r#"{"error":"invalid_client"}"#);
    let (r, used) = run_api(&h, "GET", true, vec![]);
    match r {
        Err(ApiError::Token(e)) => assert_eq!(e.code, ErrorCode::InvalidClient),
        other => panic!("{:?}", other.map(|(r, _)| r)),
    }
    assert!(used.is_empty(), "no API call without a token");
}

// ---------------------------------------------------------------- logs

#[test]
fn logs_never_contain_the_secret_or_a_token() {
    let h = Harness::new();
    h.store.0.fail.set(true);
    h.transport
        .reply(
            503,
            &[],
            &format!(r#"{{"error":"temporarily_unavailable","error_description":"{SECRET}"}}"#),
        )
        .push(Err(TransportError::Network("reset".into())))
        .reply(429, &[("retry-after", "0")], "")
        .token(TOKEN_A, 3600)
        .token(TOKEN_B, 3600);
    let (_, used) = run_api(
        &h,
        "GET",
        true,
        vec![
            api_reply(401, "x"),
            api_reply(500, "y"),
            api_reply(200, "z"),
        ],
    );
    assert_eq!(used, [TOKEN_A, TOKEN_B, TOKEN_B]);
    let logs = h.rt.logs();
    assert!(logs.len() >= 6, "{logs:?}");
    // Every captured field, serialised, is free of the secret and the tokens — the secret was
    // echoed in a provider error description, which the log must not carry.
    h.assert_logs_clean();
}

#[test]
fn a_provider_echoing_the_secret_is_redacted() {
    let h = Harness::new();
    let body = format!(
        r#"{{"error":"invalid_request","error_description":"bad client_secret {SECRET}"}}"#
    );
    h.transport.reply(400, &[], &body);
    let e = h.token().unwrap_err();
    assert_eq!(e.description, "bad client_secret [redacted]");
    assert!(!e.raw_body.as_deref().unwrap_or("").contains(SECRET));
    assert!(!e.to_string().contains(SECRET));
}
