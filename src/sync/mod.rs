//! Async synchronisation for tasks ([`channel()`]) and the sync-primitive
//! shim.
//!
//! Code that loom models import `Arc`, `Mutex` and atomics from
//! `crate::sync::shim`, which is `std::sync` normally and `loom::sync`
//! under `cfg(loom)`, so the same source is model-checked.

pub mod channel;

pub use channel::{
    channel, unbounded_channel, Receiver, SendError, Sender, TryRecvError, TrySendError,
};

/// `std::sync` normally, `loom::sync` under `cfg(loom)`.
///
/// `Arc` here is for shared state that is not a `Waker`: `std::task::Wake`
/// and unsized coercion (`Arc<dyn Fn()>`) need `std::sync::Arc`, so code
/// that builds wakers keeps std's `Arc` and puts shim primitives inside it.
pub(crate) mod shim {
    #[cfg(loom)]
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    #[cfg(not(loom))]
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

    /// Atomics (see the module doc).
    pub(crate) mod atomic {
        #[cfg(loom)]
        pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
        #[cfg(not(loom))]
        pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
    }
}
