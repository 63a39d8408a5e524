//! Pressure on a provider's token endpoint: when not to call it at all.
//!
//! - **Told to wait**: a 429 or 503 whose `Retry-After` is longer than the retry policy is
//!   willing to wait (`max_delay_ms`) is remembered until it passes (RFC 9110 §10.2.3): callers
//!   get 503 with the rest of the wait, and the provider is not called. The Worker shares the
//!   wait with its other isolates through KV.
//! - **Failing**: after [`PressurePolicy::failures_to_open`] failed exchanges in a row (a 5xx or
//!   429 after retries, a timeout, a network failure) the circuit opens for
//!   [`PressurePolicy::open_ms`]; then one exchange is let through as a probe (half-open): its
//!   success closes the circuit, its failure opens it again.
//!
//! Neither stops a token that is still valid — in memory or in the store — from being served;
//! both only decide whether to start an exchange.

use crate::error::{ErrorCode, TokenError};

/// When the circuit opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PressurePolicy {
    /// Failed exchanges in a row that open the circuit.
    pub failures_to_open: u32,
    /// How long the circuit stays open before a probe, milliseconds.
    pub open_ms: u64,
}

impl Default for PressurePolicy {
    fn default() -> Self {
        PressurePolicy {
            failures_to_open: 3,
            open_ms: 30_000,
        }
    }
}

/// The longest wait a `Retry-After` may impose, milliseconds: a provider (or whoever can write
/// to the store) cannot shut a route for longer than a day.
pub const MAX_HOLD_MS: u64 = 86_400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until_ms: u64,
    },
    /// A probe may go (`probing: None`) or is in flight since the time given. A probe whose
    /// request never ends (cancelled with it) is replaced after `open_ms`: nothing waits
    /// forever on a request that is gone.
    HalfOpen {
        probing: Option<u64>,
    },
}

/// One provider's pressure state (per isolate; the wait is also shared through the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pressure {
    policy: PressurePolicy,
    circuit: Circuit,
    /// Until when the provider asked us to wait (epoch ms).
    hold_until_ms: Option<u64>,
}

impl Pressure {
    /// A closed circuit, no wait.
    pub fn new(policy: PressurePolicy) -> Self {
        Pressure {
            policy,
            circuit: Circuit::Closed { failures: 0 },
            hold_until_ms: None,
        }
    }

    /// Whether an exchange may start at `now_ms`: `Err` with the error for the caller (503
    /// `temporarily_unavailable` with the time left) when not. Letting a half-open circuit's
    /// probe through marks it in flight.
    pub fn admit(&mut self, now_ms: u64) -> Result<(), TokenError> {
        if let Some(until) = self.hold_until_ms.filter(|u| now_ms < *u) {
            return Err(unavailable(
                "the provider asked for a pause before the next token request",
                until - now_ms,
            ));
        }
        match self.circuit {
            Circuit::Closed { .. } => Ok(()),
            Circuit::Open { until_ms } if now_ms < until_ms => Err(unavailable(
                "the provider's token endpoint keeps failing; requests to it are paused",
                until_ms - now_ms,
            )),
            Circuit::HalfOpen {
                probing: Some(since),
            } if now_ms < since.saturating_add(self.policy.open_ms) => Err(unavailable(
                "the provider's token endpoint is being probed after failures",
                1_000,
            )),
            Circuit::Open { .. } | Circuit::HalfOpen { .. } => {
                self.circuit = Circuit::HalfOpen {
                    probing: Some(now_ms),
                };
                Ok(())
            }
        }
    }

    /// An exchange succeeded: the circuit closes.
    pub fn succeeded(&mut self) {
        self.circuit = Circuit::Closed { failures: 0 };
        self.hold_until_ms = None;
    }

    /// An exchange failed with `e` at `now_ms` (`max_delay_ms`: the longest `Retry-After` the
    /// retry policy waits for itself). Returns the new wait when `e` imposed one.
    pub fn failed(&mut self, e: &TokenError, now_ms: u64, max_delay_ms: u64) -> Option<u64> {
        let told_to_wait = matches!(e.status, Some(429 | 503))
            .then_some(e.retry_after_ms)
            .flatten()
            .filter(|ms| *ms > max_delay_ms)
            .map(|ms| now_ms.saturating_add(ms.min(MAX_HOLD_MS)));
        if let Some(until) = told_to_wait {
            self.hold(until);
        }
        // Only the provider's own trouble counts: a refused request or credentials is ours.
        let provider_trouble = matches!(
            e.code,
            ErrorCode::ServerError
                | ErrorCode::RateLimited
                | ErrorCode::Timeout
                | ErrorCode::Network
        );
        self.circuit = match self.circuit {
            _ if !provider_trouble => Circuit::Closed { failures: 0 },
            Circuit::Closed { failures } if failures + 1 < self.policy.failures_to_open => {
                Circuit::Closed {
                    failures: failures + 1,
                }
            }
            _ => Circuit::Open {
                until_ms: now_ms.saturating_add(self.policy.open_ms),
            },
        };
        told_to_wait
    }

    /// A wait learnt elsewhere (another isolate, through the store), if longer than the one
    /// known.
    pub fn hold(&mut self, until_ms: u64) {
        if self.hold_until_ms.is_none_or(|u| u < until_ms) {
            self.hold_until_ms = Some(until_ms);
        }
    }
}

fn unavailable(why: &str, retry_after_ms: u64) -> TokenError {
    let mut e = TokenError::new(ErrorCode::TemporarilyUnavailable, why);
    e.retry_after_ms = Some(retry_after_ms);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    fn failure(code: ErrorCode, status: Option<u16>, retry_after_ms: Option<u64>) -> TokenError {
        let mut e = TokenError::new(code, "x");
        e.status = status;
        e.retry_after_ms = retry_after_ms;
        e
    }

    fn server_error() -> TokenError {
        failure(ErrorCode::ServerError, Some(502), None)
    }

    #[test]
    fn a_long_retry_after_holds_every_exchange_until_it_passes() {
        let mut p = Pressure::new(PressurePolicy::default());
        // Within what the retry policy waits for itself: no hold.
        let short = failure(ErrorCode::RateLimited, Some(429), Some(5_000));
        assert_eq!(p.failed(&short, T, 5_000), None);
        assert!(p.admit(T).is_ok());
        // Longer: held, with the rest of the wait, for 429 and 503 alike.
        for status in [429, 503] {
            let mut p = Pressure::new(PressurePolicy::default());
            let code = if status == 429 {
                ErrorCode::RateLimited
            } else {
                ErrorCode::ServerError
            };
            let long = failure(code, Some(status), Some(120_000));
            assert_eq!(p.failed(&long, T, 5_000), Some(T + 120_000));
            let e = p.admit(T + 20_000).unwrap_err();
            assert_eq!(
                (e.code, e.retry_after_ms, e.retryable()),
                (ErrorCode::TemporarilyUnavailable, Some(100_000), true)
            );
            assert!(p.admit(T + 120_000).is_ok(), "{status}");
        }
        // A 500's Retry-After does not hold; an absurd one is capped at a day.
        let mut p = Pressure::new(PressurePolicy::default());
        assert_eq!(
            p.failed(
                &failure(ErrorCode::ServerError, Some(500), Some(60_000)),
                T,
                5_000
            ),
            None
        );
        assert_eq!(
            p.failed(
                &failure(ErrorCode::RateLimited, Some(429), Some(u64::MAX)),
                T,
                5_000
            ),
            Some(T + MAX_HOLD_MS)
        );
        // A success clears the wait; a wait learnt elsewhere only ever lengthens it.
        p.succeeded();
        assert!(p.admit(T + 1).is_ok());
        p.hold(T + 50);
        p.hold(T + 10);
        assert_eq!(p.admit(T + 20).unwrap_err().retry_after_ms, Some(30));
    }

    #[test]
    fn the_circuit_opens_probes_and_closes() {
        let policy = PressurePolicy {
            failures_to_open: 3,
            open_ms: 30_000,
        };
        let mut p = Pressure::new(policy);
        for i in 0..2 {
            assert!(p.admit(T + i).is_ok());
            p.failed(&server_error(), T + i, 5_000);
        }
        assert!(p.admit(T + 2).is_ok(), "two failures: still closed");
        p.failed(&failure(ErrorCode::Timeout, None, None), T + 2, 5_000);
        let e = p.admit(T + 3).unwrap_err();
        assert_eq!(
            (e.code, e.retry_after_ms),
            (ErrorCode::TemporarilyUnavailable, Some(29_999))
        );
        // After open_ms: one probe, the others wait for it.
        assert!(p.admit(T + 30_002).is_ok());
        assert_eq!(p.admit(T + 30_003).unwrap_err().retry_after_ms, Some(1_000));
        // The probe fails: open again for open_ms.
        p.failed(&failure(ErrorCode::Network, None, None), T + 30_010, 5_000);
        assert!(p.admit(T + 60_009).is_err());
        assert!(p.admit(T + 60_010).is_ok(), "the next probe");
        // The probe succeeds: closed, and it takes three failures to open again.
        p.succeeded();
        for i in 0..2 {
            p.failed(&server_error(), T + 70_000 + i, 5_000);
            assert!(p.admit(T + 70_000 + i).is_ok());
        }
    }

    /// A probe whose request was cancelled (it never reports back) does not leave the provider
    /// refused: after `open_ms` another probe goes.
    #[test]
    fn a_probe_that_never_ends_is_replaced() {
        let mut p = Pressure::new(PressurePolicy {
            failures_to_open: 1,
            open_ms: 30_000,
        });
        p.failed(&server_error(), T, 5_000);
        assert!(p.admit(T + 30_000).is_ok(), "the probe");
        // Its request is cancelled: neither succeeded() nor failed() is ever called.
        assert!(p.admit(T + 59_999).is_err());
        assert!(p.admit(T + 60_000).is_ok(), "another probe");
        assert!(p.admit(T + 60_001).is_err());
    }

    #[test]
    fn our_own_mistakes_do_not_open_the_circuit() {
        let mut p = Pressure::new(PressurePolicy {
            failures_to_open: 1,
            open_ms: 30_000,
        });
        for code in [
            ErrorCode::InvalidClient,
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidResponse,
        ] {
            p.failed(&failure(code, Some(400), None), T, 5_000);
            assert!(p.admit(T).is_ok(), "{code:?}");
        }
        // And they reset the count of the provider's failures.
        let mut p = Pressure::new(PressurePolicy {
            failures_to_open: 2,
            open_ms: 30_000,
        });
        p.failed(&server_error(), T, 5_000);
        p.failed(
            &failure(ErrorCode::InvalidRequest, Some(400), None),
            T,
            5_000,
        );
        p.failed(&server_error(), T, 5_000);
        assert!(p.admit(T).is_ok());
    }
}
