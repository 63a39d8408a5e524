//! The body of a proxied request: whether it is refused, held for a replay, or streamed — and
//! how much memory all the bodies an isolate holds for replays may take together.
//!
//! A body held in memory can be sent again after an API `401` (new token, one replay) or a
//! retried `429`/`5xx`; a streamed one is sent once. Holding is bounded twice: per request by
//! [`REPLAY_LIMIT`], and per isolate by a [`ReplayBudget`] (WebAssembly memory grows but never
//! shrinks, so fifty slow uploads of unknown length holding 1 MiB each would otherwise pin
//! 50 MiB of a 128 MB isolate for its life). A body that finds the budget spent is streamed —
//! it is only not replayable — never refused for it.

/// Bodies up to this size are held, so that a `401` or a retry can replay them.
pub const REPLAY_LIMIT: u64 = 1024 * 1024;

/// What all the replay buffers of one isolate may hold together.
pub const REPLAY_BUDGET: u64 = 16 * 1024 * 1024;

/// What to do with a proxied request's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyPlan {
    /// There is none to send (a GET or HEAD, or no body at all).
    None,
    /// Refused before anything is read or sent: its declared `Content-Length` is over the
    /// limit (413).
    TooLarge,
    /// Read up to `hold` bytes into a replay buffer, `hold` bytes having been reserved from the
    /// isolate's [`ReplayBudget`]. A body of unknown length that turns out longer streams on
    /// from there, counted against the limit (and is not replayable).
    Hold {
        /// Bytes reserved and read at most before deciding.
        hold: u64,
    },
    /// Sent as it arrives, once. `counted`: its length is unknown, so the bytes are counted
    /// on the way and the upstream request torn down past the limit (a declared length is
    /// enforced by the platform). `over_budget`: it would have been held, but the isolate's
    /// replay budget was spent (worth a log line: replays are off for it).
    Stream {
        /// Whether the bytes must be counted against the limit.
        counted: bool,
        /// Whether it streams only because the replay budget was spent.
        over_budget: bool,
    },
}

/// The plan for the body of a `method` request that has one (`has_body`), with declared length
/// `declared` (`Content-Length`, when sent), under the body limit `limit` (`max_body_bytes`).
/// `budget` is the isolate's replay budget: a body worth holding reserves its bytes from it,
/// and one that finds too little left is streamed instead.
pub fn plan_body(
    method: &str,
    has_body: bool,
    declared: Option<u64>,
    limit: u64,
    budget: &mut ReplayBudget,
) -> BodyPlan {
    // Fetch gives GET and HEAD no body (and workerd refuses one): none is forwarded.
    if !has_body || matches!(method, "GET" | "HEAD") {
        return BodyPlan::None;
    }
    let hold = match declared {
        Some(n) if n > limit => return BodyPlan::TooLarge,
        Some(n) if n > REPLAY_LIMIT => {
            return BodyPlan::Stream {
                counted: false,
                over_budget: false,
            }
        }
        Some(n) => n,
        None => REPLAY_LIMIT.min(limit),
    };
    if budget.reserve(hold) {
        BodyPlan::Hold { hold }
    } else {
        BodyPlan::Stream {
            counted: declared.is_none(),
            over_budget: true,
        }
    }
}

/// The bytes an isolate's replay buffers hold together, at most [`REPLAY_BUDGET`] (or the
/// capacity given). Bytes are reserved before a body is read and given back when its request
/// ends ([`ReplayBudget::release`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayBudget {
    capacity: u64,
    used: u64,
}

impl Default for ReplayBudget {
    fn default() -> Self {
        ReplayBudget::new(REPLAY_BUDGET)
    }
}

impl ReplayBudget {
    /// A budget of `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        ReplayBudget { capacity, used: 0 }
    }

    /// Reserves `bytes`: whether they fit in what is left.
    pub fn reserve(&mut self, bytes: u64) -> bool {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.capacity => {
                self.used = total;
                true
            }
            _ => false,
        }
    }

    /// Gives back `bytes` reserved earlier.
    pub fn release(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn plans() {
        use BodyPlan::*;
        let limit = 10 * MIB;
        // (method, has body, declared, expected)
        let table: &[(&str, bool, Option<u64>, BodyPlan)] = &[
            ("GET", true, Some(5), None),
            ("HEAD", true, Option::None, None),
            ("POST", false, Option::None, None),
            ("POST", true, Some(0), Hold { hold: 0 }),
            ("POST", true, Some(limit + 1), TooLarge),
            (
                "PUT",
                true,
                Some(limit),
                Stream {
                    counted: false,
                    over_budget: false,
                },
            ),
            (
                "POST",
                true,
                Some(REPLAY_LIMIT + 1),
                Stream {
                    counted: false,
                    over_budget: false,
                },
            ),
            (
                "POST",
                true,
                Some(REPLAY_LIMIT),
                Hold { hold: REPLAY_LIMIT },
            ),
            ("PATCH", true, Some(12), Hold { hold: 12 }),
            ("POST", true, Option::None, Hold { hold: REPLAY_LIMIT }),
            ("PROPFIND", true, Option::None, Hold { hold: REPLAY_LIMIT }),
        ];
        for &(method, has_body, declared, want) in table {
            let mut budget = ReplayBudget::default();
            let got = plan_body(method, has_body, declared, limit, &mut budget);
            assert_eq!(got, want, "{method} {has_body} {declared:?}");
            let reserved = match want {
                Hold { hold } => hold,
                _ => 0,
            };
            assert_eq!(budget.used(), reserved, "{method} {declared:?}");
        }
        // A limit below the replay limit bounds what an unknown length holds.
        let mut budget = ReplayBudget::default();
        assert_eq!(
            plan_body("POST", true, Option::None, 1000, &mut budget),
            Hold { hold: 1000 }
        );
    }

    /// Sixteen bodies of unknown length fill the budget; the seventeenth streams (counted),
    /// a declared one that does not fit streams (uncounted), a small one that fits is still
    /// held, and bytes given back are reused.
    #[test]
    fn the_isolate_budget_turns_holding_into_streaming() {
        use BodyPlan::*;
        let mut budget = ReplayBudget::default();
        let limit = 10 * MIB;
        for i in 0..16 {
            assert_eq!(
                plan_body("POST", true, Option::None, limit, &mut budget),
                Hold { hold: MIB },
                "{i}"
            );
        }
        assert_eq!(budget.used(), REPLAY_BUDGET);
        assert_eq!(
            plan_body("POST", true, Option::None, limit, &mut budget),
            Stream {
                counted: true,
                over_budget: true
            }
        );
        assert_eq!(
            plan_body("POST", true, Some(MIB), limit, &mut budget),
            Stream {
                counted: false,
                over_budget: true
            }
        );
        assert_eq!(
            plan_body("POST", true, Some(limit + 1), limit, &mut budget),
            TooLarge,
            "the limit still applies"
        );
        budget.release(100);
        assert_eq!(
            plan_body("POST", true, Some(100), limit, &mut budget),
            Hold { hold: 100 }
        );
        budget.release(REPLAY_BUDGET);
        assert_eq!(budget.used(), 0);
        budget.release(1);
        assert_eq!(budget.used(), 0, "never below zero");
        assert!(!ReplayBudget::new(10).reserve(u64::MAX), "no overflow");
    }
}
