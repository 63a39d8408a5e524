//! The failed-authentication limit of `POST /oauth/token` per client address, exact across
//! isolates: one [`AddressGate`] per address (in the Worker, the caller authority object
//! `address:<address>`), which every token request from that address passes through.
//!
//! A request first takes a ticket ([`AddressGate::begin`]); its credentials are checked; then
//! it settles the ticket as a success or a failure ([`AddressGate::settle`]). Tickets in flight
//! count as failures-to-be while they are open, so that however many guesses arrive at once,
//! no more than [`MAX_AUTH_FAILURES`] of them are ever looked at in one window. A ticket that is
//! never settled (the isolate holding it went away) stops counting after [`TICKET_LIFE_MS`].
//!
//! Failures are counted per address rather than per client id, so that knowing a caller's id
//! is not enough to lock that caller out from everywhere; registered and unknown ids get the
//! same answers in the same order, so a 429 tells nothing about which ids exist; and a success
//! does not clear earlier failures — a caller holding one valid secret could otherwise
//! interleave its own logins with guesses at another's. An IPv6 address counts as its /64
//! ([`crate::limits::client_address`]).

use crate::limits::{MAX_AUTH_FAILURES, TOKEN_ENDPOINT_WINDOW_MS};
use serde::{Deserialize, Serialize};

/// How long an unsettled ticket counts, ms: longer than any token request takes (the
/// authority's answer comes within its own deadline).
pub const TICKET_LIFE_MS: u64 = 30_000;

/// What the gate keeps in storage: the failures of the current window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// When the window began, ms since the epoch.
    pub window_start_ms: u64,
    /// Failures in it.
    pub count: u32,
}

/// One address's gate: its stored [`Failures`] and the tickets in flight (memory only).
#[derive(Clone, Debug, Default)]
pub struct AddressGate {
    /// The failures of the current window (persisted after each change).
    pub failures: Failures,
    /// Open tickets: (number, when it stops counting).
    open: Vec<(u64, u64)>,
    next: u64,
}

impl AddressGate {
    /// The gate with `failures` as storage holds them.
    pub fn new(failures: Failures) -> Self {
        AddressGate {
            failures,
            open: Vec::new(),
            next: 1,
        }
    }

    fn window_count(&self, now_ms: u64) -> u32 {
        if now_ms < self.failures.window_start_ms + TOKEN_ENDPOINT_WINDOW_MS {
            self.failures.count
        } else {
            0
        }
    }

    /// A ticket for one token request at `now_ms`, or `Err(ms)`: the address has failed (or
    /// may be about to fail) [`MAX_AUTH_FAILURES`] times this window; it is looked at again in
    /// `ms`.
    pub fn begin(&mut self, now_ms: u64) -> Result<u64, u64> {
        self.open.retain(|(_, until)| now_ms < *until);
        let failed = self.window_count(now_ms);
        if failed.saturating_add(self.open.len() as u32) >= MAX_AUTH_FAILURES {
            let window_end = self.failures.window_start_ms + TOKEN_ENDPOINT_WINDOW_MS;
            let wait = if failed >= MAX_AUTH_FAILURES {
                window_end.saturating_sub(now_ms)
            } else {
                // Requests in flight may all fail: the answer is known within a ticket's life.
                self.open
                    .iter()
                    .map(|(_, until)| until.saturating_sub(now_ms))
                    .min()
                    .unwrap_or(1_000)
            };
            return Err(wait.clamp(1_000, TOKEN_ENDPOINT_WINDOW_MS));
        }
        let ticket = self.next;
        self.next += 1;
        self.open.push((ticket, now_ms + TICKET_LIFE_MS));
        Ok(ticket)
    }

    /// Settles `ticket` at `now_ms`: `failed` when its credentials did not authenticate.
    /// Returns whether the stored failures changed (and must be written).
    pub fn settle(&mut self, ticket: u64, failed: bool, now_ms: u64) -> bool {
        self.open.retain(|(t, _)| *t != ticket);
        if !failed {
            return false;
        }
        if self.window_count(now_ms) == 0 {
            self.failures = Failures {
                window_start_ms: now_ms,
                count: 1,
            };
        } else {
            self.failures.count = self.failures.count.saturating_add(1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn at_most_the_limit_of_guesses_is_looked_at_however_many_arrive_at_once() {
        let mut gate = AddressGate::default();
        let tickets: Vec<_> = (0..50).map(|_| gate.begin(T0)).collect();
        let admitted: Vec<u64> = tickets.iter().filter_map(|t| t.ok()).collect();
        assert_eq!(admitted.len(), MAX_AUTH_FAILURES as usize);
        for t in &admitted {
            gate.settle(*t, true, T0 + 5);
        }
        assert_eq!(gate.failures.count, MAX_AUTH_FAILURES);
        // Locked until the window (which began with the first failure) ends.
        assert_eq!(gate.begin(T0 + 10_000), Err(50_005));
        assert!(gate.begin(T0 + 5 + TOKEN_ENDPOINT_WINDOW_MS).is_ok());
    }

    #[test]
    fn successes_free_their_place_but_do_not_clear_failures() {
        let mut gate = AddressGate::default();
        for _ in 0..MAX_AUTH_FAILURES - 1 {
            let t = gate.begin(T0).unwrap();
            gate.settle(t, true, T0);
        }
        // One place left: taken by a request in flight, the next waits.
        let t = gate.begin(T0).unwrap();
        assert!(gate.begin(T0).is_err());
        assert!(!gate.settle(t, false, T0 + 1));
        assert_eq!(gate.failures.count, MAX_AUTH_FAILURES - 1);
        let t = gate.begin(T0 + 2).unwrap();
        assert!(gate.settle(t, true, T0 + 3));
        assert!(gate.begin(T0 + 4).is_err());
    }

    #[test]
    fn an_unsettled_ticket_stops_counting() {
        let mut gate = AddressGate::default();
        for _ in 0..MAX_AUTH_FAILURES {
            gate.begin(T0).unwrap();
        }
        assert_eq!(gate.begin(T0 + 1), Err(TICKET_LIFE_MS - 1));
        assert!(gate.begin(T0 + TICKET_LIFE_MS).is_ok());
    }

    #[test]
    fn a_new_window_starts_after_the_last_one_ended() {
        let mut gate = AddressGate::new(Failures {
            window_start_ms: T0,
            count: MAX_AUTH_FAILURES,
        });
        assert!(gate.begin(T0 + 1).is_err());
        let t = gate.begin(T0 + TOKEN_ENDPOINT_WINDOW_MS + 1).unwrap();
        gate.settle(t, true, T0 + TOKEN_ENDPOINT_WINDOW_MS + 2);
        assert_eq!(
            gate.failures,
            Failures {
                window_start_ms: T0 + TOKEN_ENDPOINT_WINDOW_MS + 2,
                count: 1
            }
        );
    }
}
