//! The real Linux implementation of the seam: the only module that calls
//! `libc` (and, later, the io-uring crate) for I/O.
//!
//! Owns: the syscall wrapper (`syscall`), [`RealKernel`], the bounded
//! worker pool behind [`Offload`](super::Offload) ([`ThreadPool`]), the
//! monotonic [`RealClock`], the thread-spawn shim and host facts for
//! `iok probe`. It may not know about ops, drivers or the runtime.

mod clock;
#[cfg(linux)]
pub(crate) mod epoll;
#[cfg(linux)]
pub(crate) mod eventfd;
pub(crate) mod ffi;
mod host;
mod kernel;
#[cfg(kqueue)]
pub(crate) mod kqueue;
pub(crate) mod msg;
pub(crate) mod pool;
pub mod signal;
mod syscall;
pub mod thread;

pub use clock::RealClock;
pub use host::{host_info, HostInfo};
pub use kernel::RealKernel;
pub use pool::ThreadPool;
