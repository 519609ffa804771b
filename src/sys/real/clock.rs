//! Monotonic clock shim: the one place `Instant::now` is called.

use crate::sys::Clock;
use std::time::{Duration, Instant};

/// Monotonic clock measured from its creation.
#[derive(Debug, Clone, Copy)]
pub struct RealClock {
    origin: Instant,
}

impl RealClock {
    /// A clock whose origin is now.
    #[allow(clippy::disallowed_methods)] // this is the clock shim
    pub fn new() -> RealClock {
        RealClock {
            origin: Instant::now(),
        }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}
