//! `iok probe`: what this host and build can do.

use iokernel::runtime::{Backend, Runtime};
use iokernel::sys::real::host_info;

pub fn run() -> std::io::Result<()> {
    let host = host_info();
    println!(
        "host:    {} {} ({})",
        host.os, host.kernel_release, host.machine
    );
    println!("cores:   {}", host.available_cores);
    match host.io_uring_disabled {
        Some(0) => println!("io_uring sysctl: kernel.io_uring_disabled = 0 (enabled)"),
        Some(v) => println!("io_uring sysctl: kernel.io_uring_disabled = {v} (restricted)"),
        None => println!("io_uring sysctl: kernel.io_uring_disabled not present"),
    }
    println!("backends in this build:");
    for backend in Backend::CONCRETE {
        match iokernel::runtime::backend_availability(backend) {
            Ok(()) => println!("  {:<7} available", backend.name()),
            Err(why) => println!("  {:<7} unavailable: {why}", backend.name()),
        }
    }
    match std::env::var("IOKERNEL_BACKEND") {
        Ok(v) => println!("IOKERNEL_BACKEND={v}"),
        Err(_) => println!("IOKERNEL_BACKEND is not set"),
    }
    let runtime = Runtime::builder()
        .name("probe")
        .compute_threads(1)
        .build()?;
    println!("selected: {}", runtime.backend_report());
    Ok(())
}
