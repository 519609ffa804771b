//! Termination signals for the `iok` binary, without a signal handler:
//! block SIGINT, SIGTERM and SIGHUP in the calling thread (threads spawned
//! afterwards inherit the mask), then take them synchronously with
//! `sigwait` on a thread of the caller's choosing. Nothing runs in signal
//! context, so the waiting thread may lock, allocate, print and unlink.
//!
//! Call [`block_termination_signals`] before any other thread exists,
//! otherwise a thread spawned earlier still gets the default action.
//! The mask survives `exec`: a process that spawns children should not
//! use this.
#![allow(unsafe_code)] // FFI file: sigmask and sigwait through libc

/// The signals [`wait_termination_signal`] takes.
pub const TERMINATION_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain old data; sigemptyset initialises it below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for signo in TERMINATION_SIGNALS {
        // SAFETY: `set` is initialised and `signo` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, signo) };
    }
    set
}

/// Block SIGINT, SIGTERM and SIGHUP in the calling thread (and so in every
/// thread it spawns from now on).
///
/// ```
/// iokernel::sys::real::signal::block_termination_signals().unwrap();
/// ```
pub fn block_termination_signals() -> std::io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// Wait until one of the blocked termination signals is pending and take
/// it; returns its number.
pub fn wait_termination_signal() -> std::io::Result<i32> {
    let set = termination_set();
    let mut signo: libc::c_int = 0;
    loop {
        // SAFETY: `set` is initialised and `signo` is a valid out pointer.
        let rc = unsafe { libc::sigwait(&set, &mut signo) };
        match rc {
            0 => return Ok(signo),
            libc::EINTR => continue,
            errno => return Err(std::io::Error::from_raw_os_error(errno)),
        }
    }
}

/// `SIGINT`, `SIGTERM`, `SIGHUP`, or `signal <n>`.
pub fn signal_name(signo: i32) -> String {
    match signo {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}
