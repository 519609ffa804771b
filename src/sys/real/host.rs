//! Facts about the host for `iok probe` and backend selection.

// FFI file: `uname`.
#![allow(unsafe_code)]

/// What the host says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// `uname -s`.
    pub os: String,
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -m`.
    pub machine: String,
    /// Value of `/proc/sys/kernel/io_uring_disabled` (0 enabled, 1 only
    /// for the `io_uring_group`, 2 disabled), when the sysctl exists.
    pub io_uring_disabled: Option<u32>,
    /// CPUs available to this process.
    pub available_cores: usize,
}

fn field(raw: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Read the host facts. Never fails: unknown facts are left empty.
pub fn host_info() -> HostInfo {
    // SAFETY: utsname is plain old data; all-zero bytes are a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    let ok = super::syscall::syscall(|| {
        // SAFETY: `uts` is a valid, writable utsname for the duration of the call.
        unsafe { libc::uname(&mut uts) }
    })
    .is_ok();
    let (os, kernel_release, machine) = if ok {
        (
            field(&uts.sysname),
            field(&uts.release),
            field(&uts.machine),
        )
    } else {
        Default::default()
    };
    let io_uring_disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let available_cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    HostInfo {
        os,
        kernel_release,
        machine,
        io_uring_disabled,
        available_cores,
    }
}
