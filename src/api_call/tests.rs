//! The API-call machine over every status, method, body kind, `Retry-After` form and the 401
//! window.

use super::*;

const NOW: u64 = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
const JITTER: f64 = 0.5;
const METHODS: [&str; 9] = [
    "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH", "get", "PROPFIND",
];

fn policy(retry_unsafe_methods: bool) -> RetryPolicy {
    RetryPolicy {
        retry_unsafe_methods,
        ..RetryPolicy::default() // 4 attempts, base 200 ms, cap 5000 ms
    }
}

fn status(status: u16) -> Attempted<'static> {
    Attempted::Response {
        status,
        retry_after: None,
    }
}

/// The world as the tests set it: the time, the jitter sample, and (only for a 401 test) what
/// memory says about the refused token.
struct World {
    now: u64,
    jitter: f64,
    refused: Option<RefusedToken>,
}

impl Facts for World {
    fn now_ms(&self) -> u64 {
        self.now
    }
    fn jitter(&self) -> f64 {
        self.jitter
    }
    fn refused(&self) -> RefusedToken {
        self.refused
            .expect("the token source is asked only after a 401")
    }
}

const WORLD: World = World {
    now: NOW,
    jitter: JITTER,
    refused: None,
};

fn after_401(refused: RefusedToken) -> World {
    World {
        refused: Some(refused),
        ..WORLD
    }
}

/// Facts nobody may ask for.
struct Silent;

impl Facts for Silent {
    fn now_ms(&self) -> u64 {
        panic!("asked the time")
    }
    fn jitter(&self) -> f64 {
        panic!("asked for jitter")
    }
    fn refused(&self) -> RefusedToken {
        panic!("asked about the token")
    }
}

/// The first action of a `method` call whose first attempt ended as `attempted`.
fn first(method: &str, replayable: bool, unsafe_ok: bool, attempted: Attempted<'_>) -> Action {
    ApiCall::new(method, replayable, policy(unsafe_ok)).next(attempted, &WORLD)
}

/// RFC 9110 §9.2.2, spelled out independently of `retry::is_idempotent`.
fn idempotent(method: &str) -> bool {
    matches!(
        method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

#[test]
fn every_status_method_and_body_kind() {
    let mut retried = 0;
    for unsafe_ok in [false, true] {
        for method in METHODS {
            for replayable in [true, false] {
                for s in (100..=599).filter(|&s| s != 401) {
                    let answered_busy = s == 429 || (500..=599).contains(&s);
                    let may_resend = replayable && (idempotent(method) || unsafe_ok);
                    let want = if answered_busy && may_resend {
                        retried += 1;
                        // Full jitter of the first backoff step: 200 ms × 0.5.
                        Action::Retry { delay_ms: 100 }
                    } else {
                        Action::Return {
                            forget_token: false,
                        }
                    };
                    let got = first(method, replayable, unsafe_ok, status(s));
                    assert_eq!(
                        got, want,
                        "{method} {s} replayable={replayable} unsafe={unsafe_ok}"
                    );
                }
            }
        }
    }
    // 101 busy statuses × (6 idempotent spellings + 3 others with the opt-in), replayable only.
    assert_eq!(retried, 101 * (6 + 6 + 3));
}

#[test]
fn below_final_below_nothing_is_asked_and_the_response_is_returned() {
    for unsafe_ok in [false, true] {
        for method in METHODS {
            for replayable in [true, false] {
                // Any progress: fresh, after retries, after a replay.
                for state in 0..8 {
                    for s in 0..FINAL_BELOW {
                        let mut call =
                            ApiCall::resume(method, replayable, policy(unsafe_ok), state);
                        let r = Attempted::Response {
                            status: s,
                            retry_after: Some("Wed, 21 Oct 2015 07:28:03 GMT"),
                        };
                        assert_eq!(
                            call.next(r, &Silent),
                            Action::Return {
                                forget_token: false
                            },
                            "{method} {s} state {state}"
                        );
                    }
                }
            }
        }
    }
    // The first status that may need facts.
    let mut call = ApiCall::new("GET", true, policy(false));
    let fresh = after_401(RefusedToken::Current {
        last_refresh_ms: None,
    });
    assert_eq!(
        call.next(status(401), &fresh),
        Action::Replay { forget_token: true }
    );
}

#[test]
fn statuses_no_runtime_represents_are_returned() {
    for s in [0, 1, 99, 600, 999, u16::MAX] {
        assert_eq!(
            first("GET", true, true, status(s)),
            Action::Return {
                forget_token: false
            },
            "{s}"
        );
    }
}

#[test]
fn retry_after_forms() {
    let with = |v: &'static str| Attempted::Response {
        status: 503,
        retry_after: Some(v),
    };
    let retry = |delay_ms| Action::Retry { delay_ms };
    let stop = Action::Return {
        forget_token: false,
    };
    let table: &[(&str, Action)] = &[
        ("2", retry(2_000)),
        (" 0 ", retry(0)),
        ("5", retry(5_000)),                  // exactly max_delay_ms: waited for
        ("6", stop), // longer than max_delay_ms: the caller gets the 503 now
        ("99999999999999999999", retry(100)), // too large for u64: unparseable, backoff
        ("18446744073709551615", stop), // u64::MAX seconds saturates: far too long
        ("Wed, 21 Oct 2015 07:28:03 GMT", retry(3_000)),
        ("Wed, 21 Oct 2015 07:27:00 GMT", retry(0)), // in the past: now
        ("Wed, 21 Oct 2015 08:28:00 GMT", stop),     // an hour away
        ("soon", retry(100)),                        // unparseable: backoff
        ("-5", retry(100)),
    ];
    for &(value, want) in table {
        let got = first("GET", true, false, with(value));
        assert_eq!(got, want, "Retry-After: {value:?}");
    }
    // Absent: the backoff.
    assert_eq!(first("GET", true, false, status(429)), retry(100));
    // Retry-After on a status that is not retried changes nothing.
    let r = Attempted::Response {
        status: 404,
        retry_after: Some("1"),
    };
    assert_eq!(first("GET", true, false, r), stop);
}

#[test]
fn backoff_grows_until_attempts_run_out() {
    let mut call = ApiCall::new("GET", true, policy(false));
    let delays: Vec<Action> = (0..4)
        .map(|_| {
            call.next(
                status(503),
                &World {
                    jitter: 1.0,
                    ..WORLD
                },
            )
        })
        .collect();
    assert_eq!(
        delays,
        [
            Action::Retry { delay_ms: 200 },
            Action::Retry { delay_ms: 400 },
            Action::Retry { delay_ms: 800 },
            Action::Return {
                forget_token: false
            },
        ]
    );
    assert_eq!(call.attempts(), 4);
}

#[test]
fn transport_failures() {
    for (attempted, code) in [
        (Attempted::Timeout, ErrorCode::Timeout),
        (Attempted::Network, ErrorCode::Network),
    ] {
        // Idempotent: retried three times, then the failure stands.
        let mut call = ApiCall::new("DELETE", true, policy(false));
        for _ in 0..3 {
            assert!(matches!(call.next(attempted, &WORLD), Action::Retry { .. }));
        }
        assert_eq!(call.next(attempted, &WORLD), Action::Fail(code));
        // POST and PATCH may have taken effect: never resent, even with the opt-in.
        for method in ["POST", "PATCH"] {
            assert_eq!(first(method, true, true, attempted), Action::Fail(code));
        }
        // A stream body cannot be resent.
        assert_eq!(first("GET", false, false, attempted), Action::Fail(code));
    }
}

#[test]
fn the_401_window() {
    let current = |at: Option<u64>| RefusedToken::Current {
        last_refresh_ms: at,
    };
    let replay = |forget_token| Action::Replay { forget_token };
    let ret = |forget_token| Action::Return { forget_token };
    let table: &[(bool, RefusedToken, Action)] = &[
        (true, current(None), replay(true)),
        (
            true,
            current(Some(NOW - REFRESH_ON_401_WINDOW_MS)),
            replay(true),
        ),
        (
            true,
            current(Some(NOW - REFRESH_ON_401_WINDOW_MS + 1)),
            ret(false),
        ),
        (true, current(Some(NOW)), ret(false)),
        (true, RefusedToken::Replaced, replay(false)),
        (false, current(None), ret(true)),
        (false, current(Some(NOW - 1)), ret(false)),
        (false, RefusedToken::Replaced, ret(false)),
    ];
    for method in METHODS {
        for &(replayable, refused, want) in table {
            let mut call = ApiCall::new(method, replayable, policy(true));
            let got = call.next(status(401), &after_401(refused));
            assert_eq!(got, want, "{method} replayable={replayable} {refused:?}");
            assert_eq!(call.attempts(), 0, "a 401 spends no attempt");
        }
    }
}

#[test]
fn a_second_401_is_returned_and_the_replay_spends_no_attempt() {
    let mut call = ApiCall::new("GET", true, policy(false));
    let fresh = after_401(RefusedToken::Current {
        last_refresh_ms: None,
    });
    assert_eq!(
        call.next(status(503), &WORLD),
        Action::Retry { delay_ms: 100 }
    );
    assert_eq!(
        call.next(status(401), &fresh),
        Action::Replay { forget_token: true }
    );
    // The second 401 does not consult the token source: it is the caller's answer.
    assert_eq!(
        call.next(status(401), &WORLD),
        Action::Return {
            forget_token: false
        }
    );
    // After the replay, the call still has its remaining attempts: 2 more retries, then stop.
    let mut call = ApiCall::new("GET", true, policy(false));
    call.next(status(401), &fresh);
    let actions: Vec<Action> = (0..4).map(|_| call.next(status(500), &WORLD)).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Retry { .. }))
            .count(),
        3
    );
    assert_eq!(call.attempts(), 4);
}

#[test]
fn state_round_trips() {
    let mut call = ApiCall::new("PUT", true, policy(false));
    assert_eq!(call.state(), 0);
    call.next(status(429), &WORLD);
    call.next(status(401), &after_401(RefusedToken::Replaced));
    let state = call.state();
    assert_eq!(state, (1 << 1) | 1);
    assert_eq!(ApiCall::resume("PUT", true, policy(false), state), call);
    // A resumed call continues where it was: the second 401 is returned.
    let mut resumed = ApiCall::resume("PUT", true, policy(false), state);
    assert_eq!(
        resumed.next(status(401), &WORLD),
        Action::Return {
            forget_token: false
        }
    );
}

#[test]
fn call_errors_share_one_set_of_messages() {
    let e = CallError::Transport(TransportError::Timeout).to_token_error(2_500);
    assert_eq!(
        (e.code, e.to_string()),
        (
            ErrorCode::Timeout,
            "timeout: the API did not answer within 2500 ms".to_string()
        )
    );
    let e =
        CallError::Transport(TransportError::Network("connection reset".into())).to_token_error(1);
    assert_eq!(
        e.to_string(),
        "network: the API request failed: connection reset"
    );
    let inner = TokenError::new(ErrorCode::InvalidClient, "refused");
    assert_eq!(CallError::Token(inner.clone()).to_token_error(1), inner);
}
