//! The real Linux implementation of the seam: the only module that calls
//! `libc` (and, later, the io-uring crate) for I/O.
//!
//! Owns: the syscall wrapper (`syscall`), [`RealKernel`], the bounded
//! worker pool behind [`Offload`](super::Offload) ([`ThreadPool`]), the
//! monotonic [`RealClock`], the thread-spawn shim and host facts for
//! `iok probe`. It may not know about ops, drivers or the runtime.

mod clock;
pub(crate) mod epoll;
pub(crate) mod ffi;
mod host;
mod kernel;
#[cfg(any(
    target_os = "macos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub(crate) mod kqueue;
pub(crate) mod pool;
mod syscall;
pub mod thread;

pub use clock::RealClock;
pub use host::{host_info, HostInfo};
pub use kernel::RealKernel;
pub use pool::ThreadPool;
