//! The thread-local "which driver do ops on this thread submit to".
//!
//! Set by the runtime while one of its run loops (a worker or `block_on`)
//! runs on this thread; absent on every other thread, which is what makes
//! ops fall back to blocking syscalls on the real kernel.

use super::Driver;
use crate::sys::{real::RealKernel, Kernel};
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static CURRENT: RefCell<Option<Driver>> = const { RefCell::new(None) };
}

/// The driver ops on this thread submit to; `None` means sync fallback.
pub(crate) fn current_driver() -> Option<Driver> {
    CURRENT.with(|c| c.borrow().clone())
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
    struct Reset(Option<Driver>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = CURRENT.with(|c| c.borrow_mut().replace(driver));
    let _reset = Reset(previous);
    body()
}
