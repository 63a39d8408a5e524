//! Retry policy, as a pure function of the attempt number, the outcome and a jitter sample.
//!
//! Optoro (`docs/providers.md#optoro-errors-and-retries`): a 5xx is retried three times with
//! exponential backoff, a 429 with exponential backoff; other 4xx need action before trying
//! again and are never retried. Backoff is "full jitter": a uniform delay in
//! `[0, min(max, base · 2^(n-1))]`.

/// Retry settings of one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first. Default 4: one try and the three retries Optoro
    /// recommends.
    pub max_attempts: u32,
    /// Backoff base, milliseconds.
    pub base_delay_ms: u64,
    /// Cap on any one delay, and on an honoured `Retry-After`, milliseconds.
    pub max_delay_ms: u64,
    /// Also retry non-idempotent API methods (POST, PATCH) on 429/5xx.
    pub retry_unsafe_methods: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay_ms: 200,
            max_delay_ms: 5_000,
            retry_unsafe_methods: false,
        }
    }
}

/// What one attempt ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response with this status; `retry_after_ms` from its `Retry-After` header.
    Status {
        /// HTTP status.
        status: u16,
        /// Parsed `Retry-After`, milliseconds from now.
        retry_after_ms: Option<u64>,
    },
    /// The call timed out.
    Timeout,
    /// The call failed below HTTP (DNS, connection, TLS).
    Network,
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    Retry {
        /// Delay, milliseconds.
        delay_ms: u64,
    },
    /// Do not try again; the outcome stands.
    Stop,
}

/// Idempotent methods (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
}

fn retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

impl RetryPolicy {
    /// Full-jitter exponential backoff before attempt `attempt + 1`; `jitter` in `[0, 1)`.
    pub fn backoff_ms(&self, attempt: u32, jitter: f64) -> u64 {
        let exp = attempt.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay_ms
            .saturating_mul(1u64 << exp)
            .min(self.max_delay_ms);
        (ceiling as f64 * jitter.clamp(0.0, 1.0)) as u64
    }

    fn decide(&self, attempt: u32, outcome: Outcome, jitter: impl FnOnce() -> f64) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::Stop;
        }
        match outcome {
            Outcome::Status {
                status,
                retry_after_ms,
            } if retryable_status(status) => match retry_after_ms {
                // The server said when; a wait longer than we are willing to hold a caller is
                // not retried (the error carries Retry-After instead).
                Some(ms) if ms > self.max_delay_ms => Decision::Stop,
                Some(ms) => Decision::Retry { delay_ms: ms },
                None => Decision::Retry {
                    delay_ms: self.backoff_ms(attempt, jitter()),
                },
            },
            Outcome::Status { .. } => Decision::Stop,
            Outcome::Timeout | Outcome::Network => Decision::Retry {
                delay_ms: self.backoff_ms(attempt, jitter()),
            },
        }
    }

    /// Decision for the token endpoint after attempt number `attempt` (1-based): 429, 5xx,
    /// timeouts and network errors are retried; every other status is final. `jitter` (a
    /// sample in `[0, 1)`) is drawn only for a backoff.
    pub fn token_decision(
        &self,
        attempt: u32,
        outcome: Outcome,
        jitter: impl FnOnce() -> f64,
    ) -> Decision {
        self.decide(attempt, outcome, jitter)
    }

    /// Decision for an API call after attempt number `attempt`: as for the token endpoint, but
    /// only for idempotent methods ([`is_idempotent`]) unless `retry_unsafe_methods`, and only
    /// when the body can be replayed. A timeout of a non-idempotent call is never retried: it
    /// may have taken effect. [`crate::api_call`] drives this for each attempt.
    pub fn api_decision(
        &self,
        attempt: u32,
        idempotent: bool,
        replayable: bool,
        outcome: Outcome,
        jitter: impl FnOnce() -> f64,
    ) -> Decision {
        if !replayable {
            return Decision::Stop;
        }
        if !idempotent {
            // A timeout or a dropped connection may have taken effect upstream: never resend a
            // non-idempotent request then. A 429/5xx answer did not, so the opt-in covers it.
            let answered =
                matches!(outcome, Outcome::Status { status, .. } if retryable_status(status));
            if !(self.retry_unsafe_methods && answered) {
                return Decision::Stop;
            }
        }
        self.decide(attempt, outcome, jitter)
    }
}

/// Parses `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as milliseconds
/// from `now_ms`. Unparseable values are ignored.
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<u64> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(at_ms.saturating_sub(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: u16) -> Outcome {
        Outcome::Status {
            status,
            retry_after_ms: None,
        }
    }

    #[test]
    fn token_table() {
        let p = RetryPolicy::default(); // base 200, max 5000, 4 attempts
        let r = |d| Decision::Retry { delay_ms: d };
        let table: &[(u32, Outcome, f64, Decision)] = &[
            (1, st(503), 0.5, r(100)),
            (2, st(503), 0.5, r(200)),
            (3, st(500), 1.0, r(800)),
            (4, st(500), 1.0, Decision::Stop), // three retries spent
            (1, st(502), 0.0, r(0)),
            (1, st(429), 0.5, r(100)),
            (1, Outcome::Timeout, 1.0, r(200)),
            (1, Outcome::Network, 0.25, r(50)),
            (1, st(400), 0.5, Decision::Stop),
            (1, st(401), 0.5, Decision::Stop),
            (1, st(403), 0.5, Decision::Stop),
            (1, st(422), 0.5, Decision::Stop),
            (
                1,
                Outcome::Status {
                    status: 429,
                    retry_after_ms: Some(1_000),
                },
                0.5,
                r(1_000),
            ),
            (
                1,
                Outcome::Status {
                    status: 503,
                    retry_after_ms: Some(60_000),
                },
                0.5,
                Decision::Stop,
            ),
        ];
        for (i, &(attempt, outcome, jitter, want)) in table.iter().enumerate() {
            assert_eq!(
                p.token_decision(attempt, outcome, || jitter),
                want,
                "row {i}"
            );
        }
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff_ms(6, 1.0), 5_000);
        assert_eq!(p.backoff_ms(40, 1.0), 5_000);
    }

    #[test]
    fn idempotent_methods() {
        for m in ["GET", "get", "HEAD", "OPTIONS", "TRACE", "PUT", "Delete"] {
            assert!(is_idempotent(m), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PROPFIND", ""] {
            assert!(!is_idempotent(m), "{m}");
        }
    }

    #[test]
    fn api_table() {
        let p = RetryPolicy::default();
        let retry = Decision::Retry { delay_ms: 200 };
        assert_eq!(p.api_decision(1, true, true, st(503), || 1.0), retry);
        assert_eq!(p.api_decision(1, true, true, st(429), || 1.0), retry);
        assert_eq!(
            p.api_decision(1, false, true, st(503), || 1.0),
            Decision::Stop
        );
        assert_eq!(
            p.api_decision(1, false, true, Outcome::Timeout, || 1.0),
            Decision::Stop
        );
        assert_eq!(
            p.api_decision(1, true, false, st(503), || 1.0),
            Decision::Stop
        );
        assert_eq!(
            p.api_decision(1, true, true, st(404), || 1.0),
            Decision::Stop
        );
        let unsafe_ok = RetryPolicy {
            retry_unsafe_methods: true,
            ..p
        };
        assert_eq!(
            unsafe_ok.api_decision(1, false, true, st(503), || 1.0),
            retry
        );
        assert_eq!(
            unsafe_ok.api_decision(1, false, true, Outcome::Timeout, || 1.0),
            Decision::Stop
        );
        assert_eq!(
            unsafe_ok.api_decision(1, false, true, Outcome::Network, || 1.0),
            Decision::Stop
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", now), Some(0));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
