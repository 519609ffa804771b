//! The thread-local "which driver do ops on this thread submit to".
//!
//! Set by the runtime while one of its run loops (a worker or `block_on`)
//! runs on this thread; absent on every other thread, which is what makes
//! ops fall back to blocking syscalls on the real kernel.
//!
//! The driver is held in an `Rc`: every op looks it up, and cloning a
//! [`Driver`] itself would touch the reference counts of each `Arc` it
//! holds (three to four atomic increments and decrements per op on the
//! pool and readiness drivers), where an `Rc` costs one plain increment.

use super::Driver;
use crate::sys::{real::RealKernel, Kernel};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
    /// Whether `CURRENT` may run receive streams (kept with it: every TCP
    /// read asks, and a `Cell` is cheaper to ask than the `RefCell`).
    static CURRENT_RUNS_STREAMS: Cell<bool> = const { Cell::new(false) };
}

/// The driver ops on this thread submit to; `None` means sync fallback.
pub(crate) fn current_driver() -> Option<Rc<Driver>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether the current driver may run receive streams
/// ([`Driver::runs_streams`]), without taking a handle to it.
pub(crate) fn current_runs_streams() -> bool {
    CURRENT_RUNS_STREAMS.with(Cell::get)
}

/// Make `driver` (or none) current, keeping what goes with it.
fn set_current(driver: Option<Rc<Driver>>) -> Option<Rc<Driver>> {
    let runs_streams = driver.as_deref().is_some_and(Driver::runs_streams);
    CURRENT_RUNS_STREAMS.with(|c| c.set(runs_streams));
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), driver))
}

/// The kernel blocking calls on this thread go to: the current driver's
/// when there is one, else the real kernel.
pub(crate) fn current_kernel() -> Arc<dyn Kernel> {
    CURRENT
        .with(|c| {
            c.borrow()
                .as_ref()
                .map(|driver| Arc::clone(driver.kernel()))
        })
        .unwrap_or_else(|| Arc::new(RealKernel))
}

/// Make `driver` current for the duration of `body` (nesting restores the
/// previous one).
pub(crate) fn enter<R>(driver: Driver, body: impl FnOnce() -> R) -> R {
    struct Reset(Option<Rc<Driver>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            set_current(self.0.take());
        }
    }
    let previous = set_current(Some(Rc::new(driver)));
    let _reset = Reset(previous);
    body()
}
