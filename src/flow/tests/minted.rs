//! `MintedSource`: an isolate whose provider is coordinated by a minter — memory, the store,
//! then the minter; a refused token reported by its hash; the minter out of reach.

use super::*;
use crate::api_call::{CallError, RefusedToken};
use crate::mint::{token_sha256, MintAnswer, MintReason, MintRequest};

/// A minter that answers from a script and records what it was asked.
#[derive(Clone, Default)]
struct FakeMinter(Rc<MinterState>);

#[derive(Default)]
struct MinterState {
    script: RefCell<VecDeque<Result<MintAnswer, String>>>,
    asked: RefCell<Vec<MintRequest>>,
    gate: RefCell<Option<Gate>>,
}

impl FakeMinter {
    fn answer(&self, a: Result<MintAnswer, String>) -> &Self {
        self.0.script.borrow_mut().push_back(a);
        self
    }

    fn token(&self, value: &str, now: u64, origin: TokenOrigin) -> &Self {
        self.answer(Ok(MintAnswer::Token {
            token: token(value, now),
            origin,
        }))
    }

    fn asked(&self) -> Vec<MintRequest> {
        self.0.asked.borrow().clone()
    }
}

impl Minter for FakeMinter {
    async fn mint(&self, request: &MintRequest) -> Result<MintAnswer, String> {
        self.0.asked.borrow_mut().push(request.clone());
        let gate = self.0.gate.borrow().clone();
        if let Some(g) = gate {
            g.wait().await;
        }
        self.0
            .script
            .borrow_mut()
            .pop_front()
            .expect("the minter was asked more often than scripted")
    }
}

fn token(value: &str, now: u64) -> Token {
    Token {
        access_token: Secret::new(value),
        token_type: "Bearer".into(),
        issued_at_ms: now,
        expires_at_ms: now + 3_600_000,
        scope: None,
        refresh_token: None,
    }
}

type Minted = MintedSource<FakeTransport, FakeStore, FakeRuntime, FakeMinter>;

struct Fleet {
    h: Harness,
    minter: FakeMinter,
    source: Minted,
}

impl Fleet {
    fn new() -> Self {
        let h = Harness::new();
        let minter = FakeMinter::default();
        let source = MintedSource::new(
            "optoro",
            h.key.clone(),
            h.store.clone(),
            minter.clone(),
            h.source.clone(),
            80,
        );
        Fleet { h, minter, source }
    }

    fn token(&self) -> Result<(Token, TokenOrigin), TokenError> {
        block_on(Tokens::token(&self.source))
    }

    fn miss(&self) -> MintRequest {
        MintRequest {
            provider: "optoro".into(),
            reason: MintReason::Miss,
        }
    }
}

#[test]
fn memory_then_store_then_the_minter() {
    let f = Fleet::new();
    // A miss everywhere: the minter is asked, once; memory serves afterwards.
    f.minter
        .token(TOKEN_A, T0, TokenOrigin::Exchange { ms: 12 });
    let (t, origin) = f.token().unwrap();
    assert_eq!(
        (t.access_token.expose(), origin),
        (TOKEN_A, TokenOrigin::Exchange { ms: 12 })
    );
    assert_eq!(f.token().unwrap().1, TokenOrigin::Memory);
    assert_eq!(f.minter.asked(), vec![f.miss()]);
    // The isolate never wrote the store (the minter does) and never exchanged.
    assert!(f.h.store.puts().is_empty());
    assert_eq!(f.h.transport.calls(), 0);
    // Another isolate finds the minter's token in the store: no minter call.
    let g = Fleet::new();
    let stored = token(TOKEN_B, T0);
    block_on(g.h.store.put(&g.h.key, stored.to_stored(), 3000)).unwrap();
    assert_eq!(g.token().unwrap(), (stored, TokenOrigin::Store));
    assert!(g.minter.asked().is_empty());
}

#[test]
fn concurrent_misses_ask_the_minter_once() {
    let f = Fleet::new();
    let gate = Gate::default();
    *f.minter.0.gate.borrow_mut() = Some(gate.clone());
    f.minter.token(TOKEN_A, T0, TokenOrigin::Minter);
    let calls: Vec<_> = (0..50).map(|_| Tokens::token(&f.source)).collect();
    let all = futures::future::join_all(calls);
    let opener = async {
        YieldOnce::default().await;
        gate.open();
    };
    let (results, ()) = block_on(futures::future::join(all, opener));
    assert_eq!(f.minter.asked().len(), 1);
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap().0.access_token.expose() == TOKEN_A));
}

#[test]
fn the_minter_s_error_reaches_the_caller_and_is_not_kept() {
    let f = Fleet::new();
    let mut e = TokenError::new(ErrorCode::RateLimited, "token endpoint answered HTTP 429");
    e.retry_after_ms = Some(120_000);
    f.minter.answer(Ok(MintAnswer::Error(e.clone())));
    assert_eq!(f.token().unwrap_err(), e);
    f.minter.token(TOKEN_A, T0, TokenOrigin::Minter);
    assert_eq!(f.token().unwrap().0.access_token.expose(), TOKEN_A);
    assert_eq!(f.minter.asked().len(), 2);
}

#[test]
fn a_minter_out_of_reach_makes_the_isolate_exchange_itself() {
    let f = Fleet::new();
    f.minter
        .answer(Err("the minter did not answer within 12000 ms".into()));
    f.h.transport.token(TOKEN_A, 3600);
    let (t, origin) = f.token().unwrap();
    assert_eq!(t.access_token.expose(), TOKEN_A);
    assert!(matches!(origin, TokenOrigin::Exchange { .. }));
    assert_eq!(f.h.transport.calls(), 1);
    let logged = f.h.rt.events("minter_unreachable");
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["provider"], "optoro");
    // Memory serves the fallback's token.
    assert_eq!(f.token().unwrap().1, TokenOrigin::Memory);
}

#[test]
fn a_refused_token_is_reported_by_its_hash_and_replaced_once() {
    let f = Fleet::new();
    f.minter.token(TOKEN_A, T0, TokenOrigin::Minter);
    f.token().unwrap();
    let a = Secret::new(TOKEN_A);
    assert_eq!(
        f.source.refused(&a),
        RefusedToken::Current {
            last_refresh_ms: None
        }
    );
    // The minter replaces it.
    f.minter.token(TOKEN_B, T0, TokenOrigin::Exchange { ms: 5 });
    block_on(f.source.forget_refused(&a));
    assert_eq!(
        f.minter.asked()[1],
        MintRequest {
            provider: "optoro".into(),
            reason: MintReason::Refused(token_sha256(&a))
        }
    );
    // Memory holds the new token; the old one is `Replaced` (a request that carried it replays
    // with the new one, without asking again), and the store returning it is a miss.
    assert_eq!(
        f.token().unwrap(),
        (token(TOKEN_B, T0), TokenOrigin::Memory)
    );
    assert_eq!(f.source.refused(&a), RefusedToken::Replaced);
    // The minter could not replace it (the provider failed): memory forgets it, and the store
    // still returning it is a miss — the minter is asked again.
    let g = Fleet::new();
    g.minter.token(TOKEN_A, T0, TokenOrigin::Minter);
    g.token().unwrap();
    g.minter.answer(Ok(MintAnswer::Error(TokenError::new(
        ErrorCode::ServerError,
        "503",
    ))));
    block_on(g.source.forget_refused(&a));
    assert!(g.source.memory_token().is_none());
    block_on(
        g.h.store
            .put(&g.h.key, token(TOKEN_A, T0).to_stored(), 3000),
    )
    .unwrap();
    g.minter.token(TOKEN_B, T0, TokenOrigin::Minter);
    assert_eq!(
        g.token().unwrap().0.access_token.expose(),
        TOKEN_B,
        "the refused token in the store is a miss"
    );
    let logs = serde_json::to_string(
        &f.minter
            .asked()
            .iter()
            .map(MintRequest::to_json)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!logs.contains(TOKEN_A), "only the hash is sent");
}

/// The minter says the refused token stands: the API's 401 is returned as it is — no replay,
/// no second report within 30 s.
#[test]
fn a_token_the_minter_vouches_for_keeps_the_401() {
    let f = Fleet::new();
    f.minter.token(TOKEN_A, T0, TokenOrigin::Minter);
    f.minter.token(TOKEN_A, T0, TokenOrigin::Minter); // the answer to the report
    let sends = Rc::new(Cell::new(0));
    let call = || {
        let sends = sends.clone();
        block_on(call_api(&f.source, "GET", true, move |_tok: Secret| {
            sends.set(sends.get() + 1);
            async move {
                Ok::<_, TransportError>(ApiReply {
                    status: 401,
                    retry_after: None,
                    response: "401",
                })
            }
        }))
    };
    let (resp, _, _) = call().unwrap();
    assert_eq!(
        (resp, sends.get()),
        ("401", 1),
        "no replay with the same token"
    );
    assert_eq!(f.minter.asked().len(), 2);
    // Within 30 s the next 401 stands without asking the minter.
    let (resp, _, _) = call().unwrap();
    assert_eq!((resp, sends.get()), ("401", 2));
    assert_eq!(f.minter.asked().len(), 2);
    // The minter out of reach on a report: the isolate forgets the token itself.
    let g = Fleet::new();
    g.minter.token(TOKEN_A, T0, TokenOrigin::Minter);
    g.token().unwrap();
    g.minter.answer(Err("unreachable".into()));
    block_on(g.source.forget_refused(&Secret::new(TOKEN_A)));
    assert!(g.source.memory_token().is_none());
    let _ = CallError::Token(TokenError::new(ErrorCode::Network, "x"));
}

/// A token served past its refresh-ahead point (80 % of its life, plus up to 5 points per token)
/// makes the isolate ask the minter once, in the background, for its replacement; callers are
/// served from memory meanwhile and get the new token afterwards.
#[test]
fn refresh_ahead_is_asked_once_in_the_background() {
    let f = Fleet::new();
    f.minter.token(TOKEN_A, T0, TokenOrigin::Minter);
    f.token().unwrap();
    // JITTER is 0.5: 80 + 2 = 82 % of an hour = 2952 s.
    f.h.advance(2_951_000);
    assert_eq!(f.token().unwrap().1, TokenOrigin::Memory);
    assert_eq!(f.h.rt.run_background(), 0, "not due yet");
    f.h.advance(1_000);
    f.minter
        .token(TOKEN_B, T0 + 2_952_000, TokenOrigin::Exchange { ms: 3 });
    for _ in 0..5 {
        assert_eq!(
            f.token().unwrap(),
            (token(TOKEN_A, T0), TokenOrigin::Memory)
        );
    }
    assert_eq!(f.h.rt.run_background(), 1, "asked once");
    assert_eq!(f.minter.asked()[1].reason, MintReason::Ahead);
    assert_eq!(f.token().unwrap().0.access_token.expose(), TOKEN_B);
    assert_eq!(f.h.rt.run_background(), 0);
}

/// The minter answers with a token past its refresh point (the provider is in trouble and it
/// has not expired): memory serves it for a few seconds before asking again.
#[test]
fn a_stale_token_from_the_minter_is_served_for_the_grace_period() {
    let f = Fleet::new();
    let stale = Token {
        issued_at_ms: T0 - 3_570_000,
        expires_at_ms: T0 + 30_000,
        ..token(TOKEN_A, T0)
    };
    f.minter.answer(Ok(MintAnswer::Token {
        token: stale.clone(),
        origin: TokenOrigin::Minter,
    }));
    assert_eq!(f.token().unwrap().0, stale);
    f.h.advance(crate::token_machine::STALE_GRACE_MS - 1);
    assert_eq!(f.token().unwrap().1, TokenOrigin::Memory);
    f.h.advance(1);
    f.minter.token(TOKEN_B, T0, TokenOrigin::Minter);
    assert_eq!(f.token().unwrap().0.access_token.expose(), TOKEN_B);
    assert_eq!(f.minter.asked().len(), 2);
}
