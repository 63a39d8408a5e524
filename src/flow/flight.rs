//! Single-flight: one run of an operation shared by every caller that asks for it while it is
//! under way — a token exchange, the load of the caller ledger.
//!
//! The request that starts a run drives it; the others wait on the run's [`FlightSignal`]
//! (never on the run's own I/O, which belongs to the request that started it — on workerd each
//! request may only wait on its own I/O). When the run ends, its future clears itself from the
//! [`SingleFlight`] and raises the signal; waiters take its result. If the starting request is
//! cancelled first, its guard clears the run and raises the signal, and the first waiter to
//! wake starts a new run. A runtime without signals ([`Runtime::flight_signal`] is `None`) has
//! every caller drive the shared future itself.

use super::{FlightSignal, Runtime};
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::RefCell;
use std::rc::Rc;

type Run<T> = Shared<LocalBoxFuture<'static, T>>;

#[derive(Clone)]
struct Flight<T: Clone> {
    /// Tells this run from a later one.
    id: u64,
    fut: Run<T>,
    signal: Option<Rc<dyn FlightSignal>>,
}

struct Current<T: Clone> {
    flight: Option<Flight<T>>,
    next_id: u64,
}

/// The run of an operation in flight, if any. Cheap to clone; clones share the run.
pub struct SingleFlight<T: Clone> {
    current: Rc<RefCell<Current<T>>>,
}

impl<T: Clone> Clone for SingleFlight<T> {
    fn clone(&self) -> Self {
        SingleFlight {
            current: self.current.clone(),
        }
    }
}

impl<T: Clone> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            current: Rc::new(RefCell::new(Current {
                flight: None,
                next_id: 0,
            })),
        }
    }
}

/// Held by the request that drives a run: if that request is cancelled before the run ends,
/// the run is cleared and its waiters woken, so one of them starts a new one at once.
struct Guard<'a, T: Clone> {
    current: &'a RefCell<Current<T>>,
    flight: &'a Flight<T>,
}

impl<T: Clone> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        if self.flight.fut.peek().is_some() {
            return;
        }
        clear_if(self.current, self.flight.id);
        if let Some(s) = &self.flight.signal {
            s.raise();
        }
    }
}

/// Clears run `id` if it is still the current one.
fn clear_if<T: Clone>(current: &RefCell<Current<T>>, id: u64) {
    if let Ok(mut cur) = current.try_borrow_mut() {
        if cur.flight.as_ref().is_some_and(|f| f.id == id) {
            cur.flight = None;
        }
    }
}

fn is_current<T: Clone>(current: &RefCell<Current<T>>, id: u64) -> bool {
    current.borrow().flight.as_ref().is_some_and(|f| f.id == id)
}

impl<T: Clone + 'static> SingleFlight<T> {
    /// A single-flight with nothing under way.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a run is under way.
    pub fn is_running(&self) -> bool {
        self.current.borrow().flight.is_some()
    }

    /// The result of the run under way, or of a new one that `start` makes. Before joining or
    /// starting a run, and again after a run is abandoned, `ready` is asked whether the result
    /// is already at hand (a fresh token in memory, a loaded ledger). A waiter waits at most
    /// `bound_ms` for a run's signal (it should exceed the longest run) before giving up on
    /// that run and starting another.
    pub async fn run<R: Runtime + ?Sized>(
        &self,
        rt: &R,
        bound_ms: u64,
        mut ready: impl FnMut() -> Option<T>,
        start: impl Fn() -> LocalBoxFuture<'static, T>,
    ) -> T {
        loop {
            if let Some(v) = ready() {
                return v;
            }
            let (flight, joined) = {
                let mut cur = self.current.borrow_mut();
                match cur.flight.as_ref() {
                    Some(f) => (f.clone(), true),
                    None => {
                        let id = cur.next_id;
                        cur.next_id += 1;
                        let signal = rt.flight_signal();
                        let raise = signal.clone();
                        let current = self.current.clone();
                        let work = start();
                        // The run clears itself when it ends, whoever polled it last.
                        let fut = async move {
                            let r = work.await;
                            clear_if(&current, id);
                            if let Some(s) = raise {
                                s.raise();
                            }
                            r
                        }
                        .boxed_local()
                        .shared();
                        let flight = Flight { id, fut, signal };
                        cur.flight = Some(flight.clone());
                        (flight, false)
                    }
                }
            };
            let Some(signal) = flight.signal.clone() else {
                // Every caller drives the shared run.
                return flight.fut.await;
            };
            if !joined {
                let _guard = Guard {
                    current: &self.current,
                    flight: &flight,
                };
                return flight.fut.clone().await;
            }
            // A waiter: wait for the signal, never poll the run. A run cleared by its cancelled
            // request, one whose signal broke, or one that outlived `bound_ms`, is replaced.
            if let Some(r) = flight.fut.peek() {
                return r.clone();
            }
            if !is_current(&self.current, flight.id) {
                continue;
            }
            signal.wait(bound_ms).await;
            if let Some(r) = flight.fut.peek() {
                return r.clone();
            }
            clear_if(&self.current, flight.id);
        }
    }
}
