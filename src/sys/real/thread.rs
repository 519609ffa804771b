//! Thread-spawn shim: the one place OS threads are created.

use std::io;
use std::thread::JoinHandle;

/// Spawn a named OS thread running `body`.
#[allow(clippy::disallowed_methods)] // this is the thread shim
pub fn spawn_named<F>(name: String, body: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new().name(name).spawn(body)
}
