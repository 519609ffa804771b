//! Dropping an op future mid-flight: the kernel never touches freed memory
//! and no fd leaks. On the pool backend the blocking syscall finishes first;
//! only then is the buffer dropped, and a late `open` result is closed.

use iokernel::buf::{IoBuf, IoBufMut};
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{sleep, timeout, Backend, Runtime};
use iokernel::sys::real::RealKernel;
use iokernel::sys::Kernel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn runtime() -> Runtime {
    Runtime::builder()
        .compute_threads(2)
        .io_threads(4)
        .backend(Backend::ThreadPool)
        .build()
        .expect("runtime builds")
}

/// A read buffer that records, when it is dropped, what the kernel wrote
/// into it.
struct WatchedBuf {
    bytes: Vec<u8>,
    filled: usize,
    on_drop: Arc<Mutex<Option<Vec<u8>>>>,
}

impl IoBuf for WatchedBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }
}

impl IoBufMut for WatchedBuf {
    fn writable(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn set_filled(&mut self, filled: usize) {
        self.filled = filled;
    }
}

impl Drop for WatchedBuf {
    fn drop(&mut self) {
        *self.on_drop.lock().unwrap() = Some(self.bytes.clone());
    }
}

#[test]
fn a_dropped_read_keeps_its_buffer_until_the_kernel_returns() {
    let rt = runtime();
    let (read_end, write_end) = RealKernel.pipe().expect("pipe");
    let dropped = Arc::new(Mutex::new(None));
    let buf = WatchedBuf {
        bytes: vec![0u8; 8],
        filled: 0,
        on_drop: Arc::clone(&dropped),
    };
    // The read blocks in the kernel (empty pipe) on a pool thread; the
    // timeout drops its future while it is blocked.
    let timed_out = rt.block_on(timeout(Duration::from_millis(30), io::read(read_end, buf)));
    assert!(timed_out.is_err());
    assert!(
        dropped.lock().unwrap().is_none(),
        "the buffer was freed while the kernel could still write into it"
    );
    // Let the blocked read finish: it writes into the parked buffer, and
    // only then is the buffer dropped.
    assert_eq!(RealKernel.write(write_end, b"late"), Ok(4));
    rt.block_on(async {
        for _ in 0..500 {
            if dropped.lock().unwrap().is_some() {
                break;
            }
            sleep(Duration::from_millis(2)).await;
        }
    });
    let seen = dropped
        .lock()
        .unwrap()
        .clone()
        .expect("buffer dropped after the read");
    assert_eq!(&seen[..4], b"late");
    RealKernel.close(read_end).unwrap();
    RealKernel.close(write_end).unwrap();
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

#[test]
fn abandoned_opens_close_their_fds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"x").unwrap();
    let rt = runtime();
    let before = open_fds();
    rt.block_on(async {
        for _ in 0..200 {
            // Poll once (submitting the open to the pool), then drop it.
            let open = io::open(&path, OpenFlags::RDONLY, 0);
            // Usually the timeout wins; when the open is faster, close it.
            if let Ok(Ok(fd)) = timeout(Duration::ZERO, open).await {
                io::close(fd).await.unwrap();
            }
        }
    });
    // Dropping the runtime joins the pool after every accepted job ran, so
    // every abandoned open has finished (and been discarded) by now.
    drop(rt);
    assert_eq!(open_fds(), before, "an abandoned open leaked its fd");
}

#[test]
fn aborting_tasks_with_ops_in_flight_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    std::fs::write(&path, vec![5u8; 1 << 20]).unwrap();
    let rt = runtime();
    let before = open_fds();
    let fd = io::open(&path, OpenFlags::RDONLY, 0).wait().unwrap();
    let handles: Vec<_> = (0..64u64)
        .map(|i| {
            rt.spawn(async move {
                loop {
                    let (n, buf) = io::pread(fd, vec![0u8; 4096], (i * 4096) % (1 << 20))
                        .await
                        .into_parts();
                    assert_eq!(n.unwrap(), 4096);
                    assert!(buf.iter().all(|&b| b == 5));
                }
            })
        })
        .collect();
    rt.block_on(sleep(Duration::from_millis(20)));
    for h in &handles {
        h.abort();
    }
    for h in handles {
        assert!(rt.block_on(h).is_err());
    }
    // The runtime still works after the aborts.
    let (n, _) = rt.block_on(io::pread(fd, vec![0u8; 16], 0)).into_parts();
    assert_eq!(n.unwrap(), 16);
    io::close(fd).wait().unwrap();
    drop(rt);
    assert_eq!(open_fds(), before);
}
