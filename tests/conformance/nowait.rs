//! Conformance bodies for the inline page-cache fast path: reads and
//! writes that a driver first tries on the calling thread with
//! `RWF_NOWAIT` return exactly what the normal path returns, whether the
//! pages are cached (a hit), dropped (a miss) or cached only in part (a
//! short nowait read, which must never reach the user as the read's
//! result). Run like every body: on each backend, the sync fallback and
//! every simulated driver, faults off.

use super::*;
use iokernel::io::Advice;
use iokernel::runtime::current_metrics;

const FILE_BYTES: usize = 256 * 1024 + 100;

/// The bytes the bodies write: position-dependent, so a read from the
/// wrong offset cannot pass.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
}

async fn write_all_at(fd: RawFd, data: &[u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        let BufResult(n, _) = io::pwrite(fd, data[done..].to_vec(), offset + done as u64).await;
        done += n?;
    }
    Ok(())
}

async fn read_at(fd: RawFd, len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    let BufResult(n, mut buf) = io::pread(fd, vec![0u8; len], offset).await;
    buf.truncate(n?);
    Ok(buf)
}

/// A file of `FILE_BYTES` pattern bytes, synced (so DONTNEED can drop it).
async fn synced_file(path: &Path) -> std::io::Result<RawFd> {
    let fd = io::open(path, OpenFlags::RDWR | OpenFlags::CREAT, 0o644).await?;
    write_all_at(fd, &pattern(FILE_BYTES), 0).await?;
    io::fsync(fd).await?;
    Ok(fd)
}

/// (offset, len) probes: aligned and not, spanning pages, ending past end
/// of file, at and past end of file, the largest inline size and one more.
const PROBES: [(u64, usize); 8] = [
    (0, 4096),
    (3 * 4096 + 5, 4096),
    (8192, 64 * 1024),
    (1, 64 * 1024 + 1),
    (FILE_BYTES as u64 - 100, 4096),
    (FILE_BYTES as u64, 4096),
    (FILE_BYTES as u64 + 10_000, 10),
    (4096, 0),
];

fn expected(offset: u64, len: usize) -> Vec<u8> {
    let all = pattern(FILE_BYTES);
    let start = (offset as usize).min(FILE_BYTES);
    all[start..(start + len).min(FILE_BYTES)].to_vec()
}

pub async fn cached_and_dropped_pages_read_the_same(dir: PathBuf) -> std::io::Result<()> {
    let fd = synced_file(&dir.join("hot-cold")).await?;
    for round in ["cached", "dropped"] {
        if round == "dropped" {
            io::fadvise(fd, 0, 0, Advice::DontNeed).await?;
        }
        for (offset, len) in PROBES {
            let got = read_at(fd, len, offset).await?;
            assert_eq!(
                got,
                expected(offset, len),
                "{round}: pread of {len} at {offset}"
            );
        }
        // Vectored: three buffers across a page boundary.
        let BufResult(n, bufs) = io::preadv(
            fd,
            vec![vec![0u8; 100], vec![0u8; 5000], vec![0u8; 7]],
            4000,
        )
        .await;
        assert_eq!(n?, 5107, "{round}: preadv");
        assert_eq!(bufs.concat(), expected(4000, 5107), "{round}: preadv bytes");
    }
    if let Some(metrics) = current_metrics() {
        // The first round read pages the writes had just cached.
        assert!(metrics.fast_path_hits > 0, "{metrics}");
    }
    io::close(fd).await
}

pub async fn a_partly_cached_range_reads_whole(dir: PathBuf) -> std::io::Result<()> {
    let fd = synced_file(&dir.join("partial")).await?;
    for round in 0..3u64 {
        // Cache the first half of a 64 KiB window, drop the second: a
        // nowait read gets only the first half, and the op must still
        // return the whole window.
        let base = round * 64 * 1024;
        io::fadvise(fd, base + 32 * 1024, 32 * 1024, Advice::DontNeed).await?;
        let head = read_at(fd, 32 * 1024, base).await?;
        assert_eq!(head, expected(base, 32 * 1024));
        let whole = read_at(fd, 64 * 1024, base).await?;
        assert_eq!(
            whole.len(),
            64 * 1024,
            "round {round}: never short mid-file"
        );
        assert_eq!(whole, expected(base, 64 * 1024), "round {round}");
    }
    io::close(fd).await
}

pub async fn writes_to_cached_and_dropped_pages_land(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("writes");
    let fd = synced_file(&path).await?;
    let mut model = pattern(FILE_BYTES);
    let mut apply = |offset: usize, data: &[u8]| {
        if model.len() < offset + data.len() {
            model.resize(offset + data.len(), 0);
        }
        model[offset..offset + data.len()].copy_from_slice(data);
    };
    // Inside cached pages, then after dropping them, then extending the
    // file (a nowait write there must allocate: never a hit).
    for (offset, len) in [(100, 4096), (40_000, 9000), (FILE_BYTES - 10, 5000)] {
        let data = vec![(offset % 251) as u8; len];
        let BufResult(n, _) = io::pwrite(fd, data.clone(), offset as u64).await;
        assert_eq!(n?, len, "pwrite of {len} at {offset}");
        apply(offset, &data);
        io::fsync(fd).await?;
        io::fadvise(fd, 0, 0, Advice::DontNeed).await?;
    }
    let bufs = vec![vec![1u8; 10], vec![2u8; 5000]];
    let BufResult(n, _) = io::pwritev(fd, bufs, 70_000).await;
    assert_eq!(n?, 5010, "pwritev");
    apply(70_000, &[vec![1u8; 10], vec![2u8; 5000]].concat());
    let size = model.len();
    let got = read_at(fd, size + 10, 0).await?;
    assert!(got == model, "file content after the writes");
    io::close(fd).await
}
