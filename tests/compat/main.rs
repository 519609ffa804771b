//! The compat adapters (`compat-futures`, `compat-tokio`): the same bodies
//! through futures-io's and tokio's traits, on a runtime per concrete
//! backend, on the sync fallback (no runtime), and on the simulated
//! kernel with faults on; then from inside tokio with the ops on an
//! iokernel runtime (`Compat::with_handle`), where tokio's workers must
//! never block.
//!
//! Each body is an `async fn(PathBuf, How) -> io::Result<()>`: `How` says
//! where the adapter's ops run (in place, or spawned on a runtime handle).

mod bodies;
mod tokio_side;

use bodies::How;
use iokernel::runtime::{
    backend_availability, block_on_here, in_runtime, Backend, JoinHandle, Runtime,
};
use iokernel::sim::{self, OpClass, SimOptions};
use iokernel::sys::real::thread::spawn_named;
use iokernel::sys::Kernel;
use std::future::Future;
use std::path::PathBuf;
use std::sync::mpsc;

/// Seeds per simulated scenario.
const SIM_SEEDS: u64 = 12;

/// Run `body` on a runtime per available concrete backend, on the sync
/// fallback, then on the simulated kernel with short I/O, latency,
/// reordering, ring and poller faults on (no errnos: the bytes must come
/// through whole) for [`SIM_SEEDS`] seeds.
fn everywhere<F, Fut>(body: F)
where
    F: Fn(PathBuf, How) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = runtime_on(backend);
        let dir = tempfile::tempdir().expect("scratch directory");
        eprintln!("running on {backend}");
        rt.block_on(body(dir.path().to_path_buf(), How::Here))
            .unwrap_or_else(|e| panic!("on {backend}: {e}"));
    }
    assert!(!in_runtime());
    let dir = tempfile::tempdir().expect("scratch directory");
    eprintln!("running on the sync fallback (no runtime)");
    block_on_here(body(dir.path().to_path_buf(), How::Here))
        .unwrap_or_else(|e| panic!("on the sync fallback: {e}"));
    for seed in 0..SIM_SEEDS {
        let mut options = SimOptions::with_faults(seed, 0.05);
        for class in OpClass::ALL {
            options.faults[class.index()].probability = 0.0;
        }
        let kernel = sim::new_kernel(options).expect("sim options");
        kernel
            .mkdir(c"/scratch", 0o755)
            .expect("sim scratch directory");
        let future = body(PathBuf::from("/scratch"), How::Here);
        sim::run(&kernel, future)
            .unwrap_or_else(|e| panic!("simulated run, seed {seed}: {e}"))
            .unwrap_or_else(|e| panic!("on the simulated kernel, seed {seed}: {e}"));
    }
}

fn runtime_on(backend: Backend) -> Runtime {
    Runtime::builder()
        .name(format!("compat-{backend}"))
        .compute_threads(2)
        .io_threads(2)
        .backend(backend)
        .build()
        .unwrap_or_else(|e| panic!("runtime on {backend} should build: {e}"))
}

/// The second party of a body: a task inside a runtime, a thread on the
/// sync fallback.
enum Peer<T> {
    Task(JoinHandle<T>),
    Thread(std::thread::JoinHandle<()>, mpsc::Receiver<T>),
}

fn spawn_peer<F>(name: &str, future: F) -> Peer<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if in_runtime() {
        return Peer::Task(iokernel::runtime::spawn(future));
    }
    let (tx, rx) = mpsc::channel();
    let thread = spawn_named(format!("compat-peer-{name}"), move || {
        let _ = tx.send(block_on_here(future));
    })
    .expect("peer thread starts");
    Peer::Thread(thread, rx)
}

impl<T> Peer<T> {
    async fn join(self) -> T {
        match self {
            Peer::Task(handle) => handle.await.unwrap_or_else(|e| panic!("peer task: {e}")),
            Peer::Thread(thread, rx) => {
                if let Err(panic) = thread.join() {
                    std::panic::resume_unwind(panic);
                }
                rx.recv().expect("the peer thread sends its result")
            }
        }
    }
}

#[test]
fn futures_file_write_seek_read_and_lines() {
    everywhere(bodies::via_futures::file_write_seek_read_and_lines);
}

#[test]
fn tokio_file_write_seek_read_and_lines() {
    everywhere(bodies::via_tokio::file_write_seek_read_and_lines);
}

#[test]
fn futures_reads_and_writes_share_the_file_position() {
    everywhere(bodies::via_futures::reads_and_writes_share_the_file_position);
}

#[test]
fn tokio_reads_and_writes_share_the_file_position() {
    everywhere(bodies::via_tokio::reads_and_writes_share_the_file_position);
}

#[test]
fn futures_lines_across_buffers() {
    everywhere(bodies::via_futures::lines_across_buffers);
}

#[test]
fn tokio_lines_across_buffers() {
    everywhere(bodies::via_tokio::lines_across_buffers);
}

#[test]
fn futures_tcp_echo_both_ways() {
    everywhere(bodies::via_futures::tcp_echo_both_ways);
}

#[test]
fn tokio_tcp_echo_both_ways() {
    everywhere(bodies::via_tokio::tcp_echo_both_ways);
}

#[test]
fn futures_unix_echo_both_ways() {
    everywhere(bodies::via_futures::unix_echo_both_ways);
}

#[test]
fn tokio_unix_echo_both_ways() {
    everywhere(bodies::via_tokio::unix_echo_both_ways);
}

#[test]
fn futures_a_dropped_writer_loses_no_accepted_byte() {
    everywhere(bodies::via_futures::a_dropped_writer_loses_no_accepted_byte);
}

#[test]
fn tokio_a_dropped_writer_loses_no_accepted_byte() {
    everywhere(bodies::via_tokio::a_dropped_writer_loses_no_accepted_byte);
}

#[test]
fn futures_a_write_after_shutdown_is_refused() {
    everywhere(bodies::via_futures::a_write_after_shutdown_is_refused);
}

#[test]
fn tokio_a_write_after_shutdown_is_refused() {
    everywhere(bodies::via_tokio::a_write_after_shutdown_is_refused);
}

#[test]
fn futures_into_inner_returns_the_read_ahead() {
    everywhere(bodies::via_futures::into_inner_returns_the_read_ahead);
}

#[test]
fn tokio_errors_name_the_op_and_the_object() {
    everywhere(bodies::via_tokio::errors_name_the_op_and_the_object);
}

#[test]
fn tokio_into_inner_returns_the_read_ahead() {
    everywhere(bodies::via_tokio::into_inner_returns_the_read_ahead);
}

#[test]
fn futures_errors_name_the_op_and_the_object() {
    everywhere(bodies::via_futures::errors_name_the_op_and_the_object);
}

#[test]
fn futures_copy_between_adapters() {
    everywhere(bodies::via_futures::copy_between_adapters);
}

#[test]
fn tokio_copy_between_adapters() {
    everywhere(bodies::via_tokio::copy_between_adapters);
}

/// With errno faults on too, a body either succeeds with every byte right
/// or fails with an error that names the adapter op (never a panic, a
/// hang, or wrong bytes).
#[test]
fn with_errno_faults_a_copy_is_whole_or_a_named_error() {
    let (mut ok, mut failed, mut in_adapter) = (0, 0, 0);
    for seed in 0..40 {
        let kernel = sim::new_kernel(SimOptions::with_faults(seed, 0.02)).expect("sim options");
        // The setup may draw a fault too: retry it (errnos are transient).
        let made = (0..100).any(|_| kernel.mkdir(c"/scratch", 0o755).is_ok());
        assert!(made, "seed {seed}: mkdir failed 100 times");
        let result = sim::run(
            &kernel,
            bodies::via_tokio::copy_between_adapters(PathBuf::from("/scratch"), How::Here),
        )
        .unwrap_or_else(|e| panic!("simulated run, seed {seed}: {e}"));
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                let text = e.to_string();
                if text.starts_with("compat ") {
                    in_adapter += 1;
                    let names_object = text.contains(" on file fd ") && text.contains(" bytes)");
                    assert!(names_object, "seed {seed}: {text}");
                }
                let named = text.contains("compat ") || text.contains("os error");
                assert!(named, "seed {seed}: error names no op: {text}");
            }
        }
    }
    eprintln!("{ok} copies whole, {failed} named errors, {in_adapter} in the adapter");
    assert!(
        ok > 0,
        "no seed got through: the fault rate hides the adapter"
    );
    assert!(in_adapter > 0, "no fault reached the adapter's ops");
}

/// An adapter dropped unflushed as `Runtime::block_on`'s future ends (its
/// last write may still be in flight on that thread): every accepted byte
/// still reaches the file, written after `block_on` returned.
#[test]
fn a_writer_dropped_as_block_on_returns_still_writes_everything() {
    use futures_util::io::AsyncWriteExt;
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = runtime_on(backend);
        let dir = tempfile::tempdir().expect("scratch");
        let path = dir.path().join("dropped");
        let data = bodies::pattern(300_000, 9);
        let result = rt.block_on({
            let (path, data) = (path.clone(), data.clone());
            async move {
                let file = iokernel::fs::File::create(&path).await?;
                let mut file = iokernel::io::compat::Compat::new(file).with_buffer_bytes(4096);
                for chunk in data.chunks(1000) {
                    file.write_all(chunk).await?;
                }
                Ok::<_, std::io::Error>(())
            }
        });
        result.unwrap_or_else(|e| panic!("on {backend}: {e}"));
        let deadline = std::time::Duration::from_secs(10);
        let clock = iokernel::sys::real::RealClock::new();
        let start = iokernel::sys::Clock::now(&clock);
        loop {
            let got = std::fs::read(&path).expect("read back");
            if got == data {
                break;
            }
            let waited = iokernel::sys::Clock::now(&clock) - start;
            assert!(
                waited < deadline,
                "on {backend}: {} of {} bytes after {waited:?}",
                got.len(),
                data.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        eprintln!("{backend}: all {} bytes written", data.len());
    }
}
