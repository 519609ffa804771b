//! Platform cfg aliases: the one list of which OS gets which mechanism.
//!
//! * `linux`: io_uring and epoll (and the Linux-only syscalls the real
//!   kernel layer uses: `statx`, `splice`, `fallocate`, ...).
//! * `kqueue`: macOS, iOS and the BSDs (kqueue poller).
//! * `kqueue_pipe_wake`: the kqueue systems whose libc bindings have no
//!   `EVFILT_USER` (NetBSD, OpenBSD): the poller wakes through a self-pipe.
//!
//! Source code writes `#[cfg(linux)]` / `#[cfg(kqueue)]`, never a
//! `target_os` list. (`Cargo.toml` cannot use these aliases: the io-uring
//! dependency is gated on `target_os = "linux"` there, which is the same set.)

use std::env;

/// Operating systems with kqueue.
const KQUEUE_OS: [&str; 6] = ["macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"];

/// kqueue systems without `EVFILT_USER` in the libc crate.
const KQUEUE_PIPE_WAKE_OS: [&str; 2] = ["netbsd", "openbsd"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(linux)");
    println!("cargo::rustc-check-cfg=cfg(kqueue)");
    println!("cargo::rustc-check-cfg=cfg(kqueue_pipe_wake)");
    // The target's OS, not the host's: build scripts run on the host.
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo::rustc-cfg=linux");
    }
    if KQUEUE_OS.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=kqueue");
    }
    if KQUEUE_PIPE_WAKE_OS.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=kqueue_pipe_wake");
    }
}
