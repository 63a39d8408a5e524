//! [`SingleFlight`] on its own: what the ledger load of the Worker relies on beyond the token
//! flow's tests — a failed run's result reaches every waiter, `ready` short-circuits, and a
//! later call starts a new run.

use super::*;
use futures::FutureExt;

fn signalled_runtime() -> FakeRuntime {
    let rt = FakeRuntime::new(&Rc::new(Cell::new(T0)));
    rt.0.signalled.set(true);
    rt
}

#[test]
fn waiters_share_one_run_and_its_failure() {
    let rt = signalled_runtime();
    let flight: SingleFlight<Result<u32, String>> = SingleFlight::new();
    let starts = Rc::new(Cell::new(0));
    let gate = Gate::default();
    let start = || {
        starts.set(starts.get() + 1);
        let gate = gate.clone();
        async move {
            gate.wait().await;
            Err::<u32, String>("the store is unavailable".into())
        }
        .boxed_local()
    };
    let all = join_all((0..10).map(|_| flight.run(&rt, 60_000, || None, start)));
    let opener = async {
        YieldOnce::default().await;
        assert!(flight.is_running());
        gate.open();
    };
    let (results, ()) = block_on(futures::future::join(all, opener));
    assert_eq!(starts.get(), 1);
    assert!(results
        .iter()
        .all(|r| r == &Err("the store is unavailable".to_string())));
    // The run cleared itself: the next call starts another.
    assert!(!flight.is_running());
    let again = block_on(flight.run(&rt, 60_000, || None, || async { Ok(7) }.boxed_local()));
    assert_eq!(again, Ok(7));
    // Waiters waited on the run's signal, which the run raised once.
    let signals = rt.0.signals.borrow();
    assert_eq!(signals[0].waits.get(), 9);
    assert_eq!(signals[0].raises.get(), 1);
}

#[test]
fn a_result_at_hand_starts_no_run() {
    let rt = signalled_runtime();
    let flight: SingleFlight<u32> = SingleFlight::new();
    let v = block_on(flight.run(
        &rt,
        60_000,
        || Some(3),
        || -> futures::future::LocalBoxFuture<'static, u32> { panic!("no run wanted") },
    ));
    assert_eq!(v, 3);
    assert!(rt.0.signals.borrow().is_empty());
}
