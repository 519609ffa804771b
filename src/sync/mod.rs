//! Async synchronisation for tasks ([`channel`]) and the sync-primitive
//! shim.
//!
//! Code that loom models import `Arc`, `Mutex` and atomics from
//! `crate::sync::shim`, which is `std::sync` normally and `loom::sync`
//! under `cfg(loom)`, so the same source is model-checked.

pub mod channel;

pub use channel::{channel, Receiver, SendError, Sender, TryRecvError, TrySendError};

pub(crate) mod shim {
    #[cfg(loom)]
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
    #[cfg(not(loom))]
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
}
