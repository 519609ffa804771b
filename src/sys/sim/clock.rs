//! The simulated machine's clock: the seam's [`Clock`] reading the
//! virtual time of [`SimCore`], which only the runner advances.

use super::core::SimCore;
use crate::sys::Clock;
use std::sync::Arc;
use std::time::Duration;

/// Virtual time of a simulated run.
pub(crate) struct SimClock {
    pub(crate) core: Arc<SimCore>,
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        self.core.now()
    }
}
