//! Page-cache reads and writes (part of the runtime workload): a file
//! whose pages move in and out of the simulated page cache (written,
//! read, dropped by `fadvise(DONTNEED)` after an fsync, evicted by the
//! seeded memory pressure), read and written with ops the inline
//! `RWF_NOWAIT` fast path tries first. Checks: every read returns the
//! model's bytes whether it was served inline or by the driver; a read is
//! short only when short I/O is injected, never because only a prefix was
//! cached; every write lands where it says.

use super::files::{errno_of, retry, Injectable};
use super::ScriptRng;
use iokernel::buf::BufResult;
use iokernel::io::{self, Advice, OpenFlags};
use iokernel::sim::OpClass;

const STEPS: u64 = 120;
const FILE_BYTES: u64 = 48 * 1024;
const ENOSPC: i32 = 28;

/// What one step's read got, checked against the model.
fn check_read(
    model: &[u8],
    offset: u64,
    len: usize,
    got: &[u8],
    exact: bool,
    what: &str,
) -> Result<(), String> {
    let start = (offset as usize).min(model.len());
    let end = (start + len).min(model.len());
    let want = &model[start..end];
    let short = got.len() < want.len();
    if got.len() > want.len() || (short && (exact || got.is_empty())) {
        return Err(format!(
            "{what} of {len} at {offset} returned {} bytes, the file holds {} there",
            got.len(),
            want.len()
        ));
    }
    if got != &want[..got.len()] {
        return Err(format!("{what} of {len} at {offset} returned wrong bytes"));
    }
    Ok(())
}

/// Run the steps; the summary says how many reads were checked.
pub(crate) async fn page_cache(faults: Injectable, rng: &mut ScriptRng) -> Result<String, String> {
    let path = "/cache.bin";
    let fd = retry(&faults, OpClass::Open, || {
        io::open(path, OpenFlags::RDWR | OpenFlags::CREAT, 0o644)
    })
    .await
    .map_err(|e| format!("open {path}: {e}"))?;
    let exact = faults.options().short_io_probability == 0.0;
    let write_ok =
        |e: &std::io::Error| faults.allows(OpClass::Write, e) || errno_of(e) == Some(ENOSPC);
    let mut model: Vec<u8> = Vec::new();
    let mut reads = 0u64;
    for step in 0..STEPS {
        let span = model.len() as u64 + 4096;
        let offset = rng.below(span.min(FILE_BYTES));
        match rng.below(8) {
            0 => {
                // Clean pages only leave on DONTNEED: sync first (a failed
                // sync leaves them dirty, and cached).
                let _ = io::fsync(fd).await;
                let len = rng.below(FILE_BYTES);
                io::fadvise(fd, offset, len, Advice::DontNeed)
                    .await
                    .map_err(|e| format!("step {step}: fadvise: {e}"))?;
            }
            1 | 2 => {
                let len = 1 + rng.below(8192) as usize;
                let data = rng.bytes(len);
                match io::pwrite(fd, data.clone(), offset).await {
                    BufResult(Ok(n), _) => {
                        let end = offset as usize + n;
                        if model.len() < end {
                            model.resize(end, 0);
                        }
                        model[offset as usize..end].copy_from_slice(&data[..n]);
                    }
                    BufResult(Err(e), _) if write_ok(&e) => {}
                    BufResult(Err(e), _) => return Err(format!("step {step}: pwrite: {e}")),
                }
            }
            3 => {
                let (a, b) = (1 + rng.below(3000) as usize, 1 + rng.below(6000) as usize);
                match io::preadv(fd, vec![vec![0u8; a], vec![0u8; b]], offset).await {
                    BufResult(Ok(_), bufs) => {
                        reads += 1;
                        check_read(&model, offset, a + b, &bufs.concat(), exact, "preadv")
                            .map_err(|e| format!("step {step}: {e}"))?;
                    }
                    BufResult(Err(e), _) if faults.allows(OpClass::Read, &e) => {}
                    BufResult(Err(e), _) => return Err(format!("step {step}: preadv: {e}")),
                }
            }
            _ => {
                let len = 1 + rng.below(12 * 1024) as usize;
                match io::pread(fd, vec![0u8; len], offset).await {
                    BufResult(Ok(_), buf) => {
                        reads += 1;
                        check_read(&model, offset, len, &buf, exact, "pread")
                            .map_err(|e| format!("step {step}: {e}"))?;
                    }
                    BufResult(Err(e), _) if faults.allows(OpClass::Read, &e) => {}
                    BufResult(Err(e), _) => return Err(format!("step {step}: pread: {e}")),
                }
            }
        }
    }
    let _ = io::close(fd).await;
    Ok(format!("{reads} page-cache reads checked"))
}
