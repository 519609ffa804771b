//! [`Handle`]: a cheap, cloneable way to spawn onto a runtime from any
//! thread, including threads of another executor (tokio, async-std).

use super::{JoinHandle, RuntimeShared};
use std::future::Future;
use std::sync::Arc;

/// Spawns onto a [`Runtime`](super::Runtime) from any thread; `Clone`,
/// `Send` and `Sync`.
///
/// A handle does not keep the runtime's threads alive: once the
/// [`Runtime`](super::Runtime) is dropped, a task spawned through the
/// handle is dropped unpolled and its [`JoinHandle`] resolves to
/// [`JoinError::Cancelled`](super::JoinError::Cancelled) (it never hangs).
///
/// The [`JoinHandle`] is a plain `std::future::Future` driven by its
/// waker, so another executor can await it: this is how a tokio task
/// awaits iokernel work without blocking tokio's worker threads (the ops
/// run on the iokernel runtime's own workers). Keep the `Runtime` itself
/// outside tokio's tasks (e.g. in `main`): dropping it joins its threads,
/// which blocks the dropping thread until their tasks stop.
///
/// ```
/// use iokernel::runtime::Runtime;
/// let rt = Runtime::builder().compute_threads(1).build().unwrap();
/// let handle = rt.handle();
/// let task = std::thread::spawn(move || {
///     // Another thread (it could be a tokio worker) spawns and waits.
///     let job = handle.spawn(async { 6 * 7 });
///     iokernel::runtime::block_on_here(job).unwrap()
/// });
/// assert_eq!(task.join().unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(super) shared: Arc<RuntimeShared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("runtime", &self.shared.name)
            .finish()
    }
}

impl Handle {
    /// Spawn a `Send` future onto one of the runtime's workers; await the
    /// returned [`JoinHandle`] from any executor (or
    /// [`block_on_here`](super::block_on_here)).
    ///
    /// ```
    /// let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
    /// let job = rt.handle().spawn(async { "done" });
    /// assert_eq!(rt.block_on(job).unwrap(), "done");
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(future)
    }

    /// The runtime's name.
    ///
    /// ```
    /// let rt = iokernel::runtime::Runtime::builder().name("io").build().unwrap();
    /// assert_eq!(rt.handle().name(), "io");
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }
}
