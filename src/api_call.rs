//! What to do after each attempt of an API call made with a provider token — the Worker's
//! proxied requests and the npm package's `client.fetch` alike — as a sans-IO state machine.
//!
//! The shell sends an attempt, reports how it ended ([`Attempted`]), answers the [`Facts`] the
//! machine asks for (the time, a jitter sample, what memory says about a refused token — only
//! when the outcome needs them), and performs the [`Action`] it gets back: hand the response
//! over, retry after a delay, replay with a fresh token, or fail. The machine never sleeps,
//! sends or reads a clock.
//!
//! The rules:
//! - **401** (RFC 6750 §3.1 `invalid_token`): the token was refused. The first 401 of a call
//!   makes the token be forgotten and, when the body can be sent again, the request replayed
//!   once with a fresh token; a replay is not a retry (no backoff, no attempt spent). A token
//!   that a concurrent call has already replaced is not forgotten again: the replay uses the
//!   replacement. Within [`REFRESH_ON_401_WINDOW_MS`] of a 401 that caused a refresh, a 401
//!   stands as it is: an API that answers 401 for a permission problem must not turn every
//!   request into a token exchange (Optoro asks that tokens be reused until they expire,
//!   `docs/providers.md#optoro-token-response`). A second 401 in the same call is returned.
//! - **429 and 5xx, timeouts and network errors** follow
//!   [`RetryPolicy::api_decision`]: retried with backoff (or after `Retry-After` when the server
//!   says how long, up to `max_delay_ms`) for idempotent methods with a replayable body; POST
//!   and PATCH only with `retry_unsafe_methods`, and never after a timeout or a dropped
//!   connection, which may have taken effect.
//! - Every other status is the caller's response.

use crate::error::{ErrorCode, TokenError};
use crate::http::TransportError;
use crate::retry::{is_idempotent, parse_retry_after, Decision, Outcome, RetryPolicy};

/// After an API 401 has caused a token refresh, further 401s within this window are returned
/// as they are, without another exchange.
pub const REFRESH_ON_401_WINDOW_MS: u64 = 30_000;

/// Every response with a status below this is the caller's, whatever the method, the body and
/// the progress of the call: [`ApiCall::next`] answers `Return { forget_token: false }` for it
/// without asking any [`Facts`]. A shell may hand such a response over without asking.
pub const FINAL_BELOW: u16 = 400;

/// What the machine may need to know after an attempt. It asks only what the outcome needs:
/// nothing for a response below [`FINAL_BELOW`].
pub trait Facts {
    /// Now, epoch milliseconds: to read a `Retry-After` date and the 401 window.
    fn now_ms(&self) -> u64;
    /// A uniform sample in `[0, 1)` for backoff jitter.
    fn jitter(&self) -> f64;
    /// What memory says about the token the API refused with 401.
    fn refused(&self) -> RefusedToken;
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempted<'a> {
    /// The API answered with `status` (any number the host could read, even outside
    /// 100–599) and the raw `Retry-After` header, if any.
    Response {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` header as received.
        retry_after: Option<&'a str>,
    },
    /// No response within the timeout.
    Timeout,
    /// The request failed below HTTP (DNS, connection, TLS, reset).
    Network,
}

/// What the token source knows about a token the API refused with 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedToken {
    /// It is still the token in memory. `last_refresh_ms`: when a 401 last caused a refresh
    /// (epoch ms), if ever.
    Current {
        /// Time of the last 401-caused refresh.
        last_refresh_ms: Option<u64>,
    },
    /// Memory holds another token already (a concurrent call replaced it, or it was dropped).
    Replaced,
}

/// What the shell does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hand this response to the caller. `forget_token`: the API refused the token; forget it
    /// first (memory and store), so that the next call gets a new one.
    Return {
        /// Forget the refused token first.
        forget_token: bool,
    },
    /// Wait `delay_ms`, then send the request again with the same token.
    Retry {
        /// Delay, milliseconds.
        delay_ms: u64,
    },
    /// Get the current token (after forgetting the refused one when `forget_token`) and send the
    /// request again.
    Replay {
        /// Forget the refused token first.
        forget_token: bool,
    },
    /// The call failed without a response to hand back: `code` is [`ErrorCode::Timeout`] or
    /// [`ErrorCode::Network`].
    Fail(ErrorCode),
}

/// The state of one API call: its method's idempotency, whether its body can be sent again,
/// how many attempts it made, whether it was replayed after a 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiCall {
    retry: RetryPolicy,
    idempotent: bool,
    replayable: bool,
    attempts: u32,
    replayed: bool,
}

impl ApiCall {
    /// A call of `method` whose body can (`replayable`) or cannot be sent twice (a stream).
    pub fn new(method: &str, replayable: bool, retry: RetryPolicy) -> Self {
        ApiCall {
            retry,
            idempotent: is_idempotent(method),
            replayable,
            attempts: 0,
            replayed: false,
        }
    }

    /// The progress of the call as one number, for a shell that keeps it between attempts
    /// outside Rust (the npm package's JavaScript loop); see [`ApiCall::resume`]. A new call's
    /// state is 0.
    pub fn state(&self) -> u32 {
        (self.attempts << 1) | u32::from(self.replayed)
    }

    /// The call of `method` at `state` (from [`ApiCall::state`]).
    pub fn resume(method: &str, replayable: bool, retry: RetryPolicy, state: u32) -> Self {
        ApiCall {
            attempts: state >> 1,
            replayed: state & 1 == 1,
            ..ApiCall::new(method, replayable, retry)
        }
    }

    /// Attempts counted so far (a replay after a 401 is not counted).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The action after an attempt that ended as `attempted`; `facts` answers what the outcome
    /// needs to know.
    pub fn next(&mut self, attempted: Attempted<'_>, facts: &impl Facts) -> Action {
        if let Attempted::Response { status: 401, .. } = attempted {
            if !self.replayed {
                self.replayed = true;
                return self.after_401(facts.refused(), facts);
            }
        }
        self.attempts += 1;
        let outcome = match attempted {
            Attempted::Response {
                status,
                retry_after,
            } => Outcome::Status {
                status,
                // Retry-After only informs the retry of an error status.
                retry_after_ms: retry_after
                    .filter(|_| status >= FINAL_BELOW)
                    .and_then(|v| parse_retry_after(v, facts.now_ms())),
            },
            Attempted::Timeout => Outcome::Timeout,
            Attempted::Network => Outcome::Network,
        };
        let decision = self.retry.api_decision(
            self.attempts,
            self.idempotent,
            self.replayable,
            outcome,
            || facts.jitter(),
        );
        match (decision, attempted) {
            (Decision::Retry { delay_ms }, _) => Action::Retry { delay_ms },
            (Decision::Stop, Attempted::Response { .. }) => Action::Return {
                forget_token: false,
            },
            (Decision::Stop, Attempted::Timeout) => Action::Fail(ErrorCode::Timeout),
            (Decision::Stop, Attempted::Network) => Action::Fail(ErrorCode::Network),
        }
    }

    fn after_401(&self, refused: RefusedToken, facts: &impl Facts) -> Action {
        let forget_token = match refused {
            RefusedToken::Replaced => false,
            RefusedToken::Current {
                last_refresh_ms: Some(at),
            } if facts.now_ms() < at.saturating_add(REFRESH_ON_401_WINDOW_MS) => {
                return Action::Return {
                    forget_token: false,
                }
            }
            RefusedToken::Current { .. } => true,
        };
        if self.replayable {
            Action::Replay { forget_token }
        } else {
            Action::Return { forget_token }
        }
    }
}

/// Why an API call produced no response for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No provider token could be obtained.
    Token(TokenError),
    /// The last attempt failed below HTTP.
    Transport(TransportError),
}

impl CallError {
    /// The error as a [`TokenError`] — one set of codes and messages for the Worker's error
    /// responses and the npm package's thrown errors. `timeout_ms` is the provider's timeout.
    pub fn to_token_error(&self, timeout_ms: u64) -> TokenError {
        match self {
            CallError::Token(e) => e.clone(),
            CallError::Transport(TransportError::Timeout) => TokenError::new(
                ErrorCode::Timeout,
                format!("the API did not answer within {timeout_ms} ms"),
            ),
            CallError::Transport(TransportError::Network(m)) => {
                TokenError::new(ErrorCode::Network, format!("the API request failed: {m}"))
            }
        }
    }
}

#[cfg(test)]
mod tests;
