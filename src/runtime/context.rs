//! The thread-local "which runtime am I on" context.
//!
//! Set while a runtime worker (or `block_on`) runs its loop; absent on every
//! other thread, which is what makes ops fall back to blocking syscalls.

use super::RuntimeShared;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

pub(crate) type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

pub(crate) struct Context {
    pub(crate) runtime: Arc<RuntimeShared>,
    /// Futures handed to `spawn_local` while a task was being polled; the
    /// worker loop moves them into its task table.
    pub(crate) local_spawns: RefCell<Vec<LocalFuture>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Context>>> = const { RefCell::new(None) };
}

/// The context of this thread, if it runs a runtime loop.
pub(crate) fn current() -> Option<Rc<Context>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The runtime of this thread, if any.
pub(crate) fn current_runtime() -> Option<Arc<RuntimeShared>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|ctx| Arc::clone(&ctx.runtime)))
}

/// The kernel blocking calls on this thread go to: the runtime's when there
/// is one, else the real kernel.
pub(crate) use crate::driver::context::current_kernel;

/// Install `ctx` (and its runtime's driver, `crate::driver::context`, and
/// op counters, `crate::driver::metrics`) for
/// the duration of `body`.
pub(crate) fn enter<R>(ctx: Rc<Context>, body: impl FnOnce() -> R) -> R {
    struct Reset(Option<Rc<Context>>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let driver = ctx.runtime.driver.clone();
    let metrics = ctx
        .runtime
        .count_ops
        .then(|| Arc::clone(&ctx.runtime.metrics));
    let previous = CURRENT.with(|c| c.borrow_mut().replace(ctx));
    let _reset = Reset(previous);
    crate::driver::context::enter(driver, || crate::driver::metrics::enter(metrics, body))
}
