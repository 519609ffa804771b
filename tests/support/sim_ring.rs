//! Simulated-ring settings shared by the tests that sweep seeds over the
//! io_uring driver (included with `#[path]` by the test files that use
//! it).

use iokernel::sim::{Latency, OpClass, RingOptions, SimDriver, SimOptions};
use std::time::Duration;

/// `options` on the simulated ring, a small and busy one (4 submission
/// slots, 3 completion slots, `EBUSY` on a tenth of the submits), every
/// class's latency from 1 µs up, averaging `mean`.
pub fn on_a_busy_sim_ring(mut options: SimOptions, mean: Duration) -> SimOptions {
    options.driver = SimDriver::Ring;
    for class in OpClass::ALL {
        options.latency[class.index()] = Latency {
            min: Duration::from_micros(1),
            mean,
        };
    }
    options.ring = RingOptions {
        sq_entries: 4,
        cq_entries: 3,
        busy_probability: 0.1,
        ..RingOptions::default()
    };
    options
}
