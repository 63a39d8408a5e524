//! Fuzz target `api_call`: the sans-IO machine that decides after each attempt of an API call.
//!
//! Drives `tokengate::api_call::ApiCall` (`new`, `next(attempted, &facts)`, `state()`,
//! `resume()`) with an arbitrary call (method, replayable body, retry policy) and an arbitrary
//! sequence of outcomes (the structure comes from `arbitrary`): statuses, common ones and any
//! `u16` (out-of-range ones included), raw `Retry-After` values (seconds, HTTP dates, any text),
//! timeouts, network errors, and for each the facts the machine may ask — now, a jitter sample
//! (any `f64`, not only `[0, 1)`), and what memory says about a token refused with 401
//! (`Current` with or without a recent refresh, `Replaced`). The policy ranges over what the
//! configuration accepts and a little beyond (0 ..= 12 attempts, delays up to 300 000 ms).
//!
//! The sequence is fed until the machine ends the call (`Return` or `Fail`). Invariants asserted
//! (a panic is a finding):
//! - nothing panics;
//! - the call ends after at most max(max_attempts, 1) counted attempts plus one replay, i.e. at
//!   most max_attempts + 1 outcomes (+ 1 when max_attempts is 0); `attempts()` never exceeds
//!   max(max_attempts, 1);
//! - at most one `Replay` per call, only after a 401, only for a replayable body;
//! - a status below `FINAL_BELOW` always gives `Return { forget_token: false }`, without asking
//!   any fact;
//! - `Retry` delays never exceed `max_delay_ms`, and a retry happens only for a replayable body
//!   after 429/5xx, a timeout or a network error — after a timeout or network error only for an
//!   idempotent method, after 429/5xx for a non-idempotent one only with `retry_unsafe_methods`;
//! - `Fail` only after a timeout or a network error, with the matching code; a timeout or network
//!   error never gives `Return`; `Return { forget_token: true }` only after a 401;
//! - `resume(state())` reproduces the machine after every step, and a machine rebuilt with
//!   `resume` before every step (as the npm package's JavaScript loop does) takes the same
//!   actions.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::time::{Duration, UNIX_EPOCH};
use tokengate::api_call::{Action, ApiCall, Attempted, Facts, RefusedToken, FINAL_BELOW};
use tokengate::error::ErrorCode;
use tokengate::retry::RetryPolicy;

const METHODS: &[&str] = &[
    "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH", "get", "post", "TRACE", "CONNECT",
];
const STATUSES: &[u16] = &[
    200, 201, 204, 301, 304, 399, 400, 401, 403, 404, 408, 422, 429, 499, 500, 502, 503, 504, 599,
    600, 0, 99, 999, 65535,
];

#[derive(Arbitrary, Debug)]
enum Method {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Policy {
    max_attempts: u8,
    base_delay_ms: u32,
    max_delay_ms: u32,
    retry_unsafe_methods: bool,
}

#[derive(Arbitrary, Debug)]
enum Status {
    Common(u8),
    Any(u16),
}

#[derive(Arbitrary, Debug)]
enum RetryAfter {
    None,
    Seconds(u32),
    /// An HTTP date this many seconds after (or before, negative) now.
    Date(i32),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Outcome {
    Response(Status, RetryAfter),
    Timeout,
    Network,
}

#[derive(Arbitrary, Debug)]
enum Refused {
    Current,
    /// A 401 caused a refresh this many ms before now (negative: after).
    RefreshedAgo(i32),
    Replaced,
}

#[derive(Arbitrary, Debug)]
enum Jitter {
    Unit(u32),
    Any(f64),
}

#[derive(Arbitrary, Debug)]
struct Step {
    outcome: Outcome,
    /// Offset of now from the call's start, ms.
    elapsed_ms: u32,
    jitter: Jitter,
    refused: Refused,
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Method,
    replayable: bool,
    policy: Policy,
    start_ms: u64,
    steps: Vec<Step>,
}

/// The facts of one step, recording whether the machine asked any.
struct StepFacts {
    now_ms: u64,
    jitter: f64,
    refused: RefusedToken,
    asked: Cell<bool>,
}

impl Facts for StepFacts {
    fn now_ms(&self) -> u64 {
        self.asked.set(true);
        self.now_ms
    }
    fn jitter(&self) -> f64 {
        self.asked.set(true);
        self.jitter
    }
    fn refused(&self) -> RefusedToken {
        self.asked.set(true);
        self.refused
    }
}

fn http_date(now_ms: u64, offset_s: i32) -> String {
    let secs = (now_ms / 1000).saturating_add_signed(i64::from(offset_s));
    // httpdate formats years up to 9999 only.
    let secs = secs.min(253_402_300_799);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

fuzz_target!(|input: Input| {
    let method = match &input.method {
        Method::Known(i) => METHODS[*i as usize % METHODS.len()].to_string(),
        Method::Other(s) => s.clone(),
    };
    let policy = RetryPolicy {
        max_attempts: u32::from(input.policy.max_attempts % 13),
        base_delay_ms: u64::from(input.policy.base_delay_ms % 60_001),
        max_delay_ms: u64::from(input.policy.max_delay_ms % 300_001),
        retry_unsafe_methods: input.policy.retry_unsafe_methods,
    };
    let idempotent = tokengate::retry::is_idempotent(&method);
    let replayable = input.replayable;
    let attempt_bound = policy.max_attempts.max(1);

    let mut call = ApiCall::new(&method, replayable, policy);
    assert_eq!(call.state(), 0);
    let mut js_state = 0u32; // what the npm package's JavaScript loop keeps
    let mut replays = 0;
    let mut steps = 0u32;

    for step in &input.steps {
        let now_ms = input.start_ms.saturating_add(u64::from(step.elapsed_ms));
        let retry_after = match &step.outcome {
            Outcome::Response(_, RetryAfter::None) | Outcome::Timeout | Outcome::Network => None,
            Outcome::Response(_, RetryAfter::Seconds(s)) => Some(s.to_string()),
            Outcome::Response(_, RetryAfter::Date(d)) => Some(http_date(now_ms, *d)),
            Outcome::Response(_, RetryAfter::Raw(s)) => Some(s.clone()),
        };
        let attempted = match &step.outcome {
            Outcome::Response(status, _) => Attempted::Response {
                status: match status {
                    Status::Common(i) => STATUSES[*i as usize % STATUSES.len()],
                    Status::Any(s) => *s,
                },
                retry_after: retry_after.as_deref(),
            },
            Outcome::Timeout => Attempted::Timeout,
            Outcome::Network => Attempted::Network,
        };
        let facts = StepFacts {
            now_ms,
            jitter: match step.jitter {
                Jitter::Unit(u) => f64::from(u) / 4_294_967_296.0,
                Jitter::Any(f) => f,
            },
            refused: match step.refused {
                Refused::Current => RefusedToken::Current {
                    last_refresh_ms: None,
                },
                Refused::RefreshedAgo(ago) => RefusedToken::Current {
                    last_refresh_ms: Some(now_ms.saturating_add_signed(-i64::from(ago))),
                },
                Refused::Replaced => RefusedToken::Replaced,
            },
            asked: Cell::new(false),
        };

        let before = call;
        let action = call.next(attempted, &facts);
        steps += 1;

        // The npm package rebuilds the machine from its state number before every step.
        let mut rebuilt = ApiCall::resume(&method, replayable, policy, js_state);
        assert_eq!(rebuilt, before, "resume(state) before step {steps}");
        let replica = StepFacts {
            asked: Cell::new(false),
            ..facts
        };
        assert_eq!(rebuilt.next(attempted, &replica), action, "resumed machine");
        assert_eq!(rebuilt, call);
        assert_eq!(
            ApiCall::resume(&method, replayable, policy, call.state()),
            call,
            "resume(state()) after step {steps}"
        );
        js_state = call.state();

        assert!(
            call.attempts() <= attempt_bound,
            "{} attempts, policy {policy:?}",
            call.attempts()
        );
        assert!(
            steps <= attempt_bound + 1,
            "call still going after {steps} outcomes, policy {policy:?}"
        );

        let status = match attempted {
            Attempted::Response { status, .. } => Some(status),
            _ => None,
        };
        if let Some(s) = status.filter(|&s| s < FINAL_BELOW) {
            assert_eq!(
                action,
                Action::Return {
                    forget_token: false
                },
                "status {s}"
            );
            assert!(!facts.asked.get(), "facts asked for status {s}");
        }
        match action {
            Action::Retry { delay_ms } => {
                assert!(
                    delay_ms <= policy.max_delay_ms,
                    "delay {delay_ms} over {policy:?}"
                );
                assert!(replayable, "retry of a body that cannot be replayed");
                match status {
                    Some(s) => {
                        assert!(s == 429 || (500..=599).contains(&s), "retry after {s}");
                        assert!(idempotent || policy.retry_unsafe_methods, "unsafe retry");
                    }
                    None => assert!(idempotent, "{method} retried after a timeout/network"),
                }
            }
            Action::Replay { .. } => {
                replays += 1;
                assert!(replays <= 1, "second replay");
                assert_eq!(status, Some(401), "replay after {attempted:?}");
                assert!(replayable, "replay of a body that cannot be replayed");
            }
            Action::Return { forget_token } => {
                assert!(status.is_some(), "Return after {attempted:?}");
                if forget_token {
                    assert_eq!(status, Some(401));
                }
                return;
            }
            Action::Fail(code) => {
                match attempted {
                    Attempted::Timeout => assert_eq!(code, ErrorCode::Timeout),
                    Attempted::Network => assert_eq!(code, ErrorCode::Network),
                    Attempted::Response { .. } => panic!("Fail after a response"),
                }
                return;
            }
        }
    }
});
