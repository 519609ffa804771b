//! The progress bar of `iok merge` / `iok pgzip`, and the figures of the
//! one-line summary every run prints.
//!
//! The bar is drawn only when stderr is a terminal; otherwise it is
//! hidden and costs one atomic add per input read. This module owns the
//! bar and the number formatting; it does no I/O of its own.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A cheap, clonable handle that input readers report bytes read to.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `total_bytes` input bytes, labelled `what`; drawn on
    /// stderr only if stderr is a terminal. With `None` (an input is a
    /// pipe or another stream, whose size is unknown) it shows the bytes
    /// read and the rate, with no total and no eta.
    pub fn new(total_bytes: Option<u64>, what: &str) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::stderr_with_hz(8));
            let template = match total_bytes {
                Some(_) => format!(
                    "{what} {{bar:40.cyan/blue}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
                ),
                None => format!("{what} {{spinner}} {{bytes}} {{bytes_per_sec}} (size unknown: a stream)"),
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// A handle that draws nothing (demo runs, tests).
    pub fn hidden() -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }

    /// Record `bytes` more input bytes read.
    pub fn add_bytes(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// Remove the bar from the terminal (before the summary is printed).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `bytes` in the largest binary unit that keeps the number >= 1.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Throughput in MiB/s of `bytes` moved in `elapsed`.
pub fn mib_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_the_unit() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3 << 30), "3.00 GiB");
    }

    #[test]
    fn mib_per_sec_divides() {
        let rate = mib_per_sec(10 << 20, Duration::from_secs(2));
        assert!((rate - 5.0).abs() < 1e-9);
    }
}
