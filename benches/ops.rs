//! Per-op cost of the paths `iok bench` measures, on a page-cache hot file:
//! 4 KiB `pread` one at a time (QD1) and 32 in flight (QD32) on every
//! available backend and the sync fallback, and one 1 MiB `pwrite`.
//! One iteration is a batch of 32 reads (or one write), so QD1 and QD32
//! read the same bytes per iteration.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{self, Backend, Runtime};
use std::os::fd::RawFd;

const FILE_BYTES: u64 = 16 << 20;
const BLOCK_BYTES: usize = 4096;
const BATCH: u64 = 32;
const WRITE_BYTES: usize = 1 << 20;

fn data_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.bin");
    std::fs::write(&path, vec![7u8; FILE_BYTES as usize]).expect("write bench file");
    (dir, path)
}

fn offset(i: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (FILE_BYTES / BLOCK_BYTES as u64)) * BLOCK_BYTES as u64
}

async fn read_batch(fd: RawFd, start: u64, count: u64) {
    let mut buf = vec![0u8; BLOCK_BYTES];
    for i in start..start + count {
        let BufResult(n, back) = io::pread(fd, buf, offset(i)).await;
        assert_eq!(n.expect("pread"), BLOCK_BYTES);
        buf = back;
    }
}

/// QD32: 32 tasks, one read each, all in flight together.
async fn read_qd32(fd: RawFd) {
    let handles: Vec<_> = (0..BATCH)
        .map(|i| runtime::spawn(read_batch(fd, i, 1)))
        .collect();
    for h in handles {
        h.await.expect("reader task");
    }
}

fn bench_pread(c: &mut Criterion) {
    let (_dir, path) = data_file();
    let fd = io::open(&path, OpenFlags::RDONLY, 0).wait().expect("open");
    let mut group = c.benchmark_group("pread_4k_hot");
    group.throughput(Throughput::Bytes(BLOCK_BYTES as u64 * BATCH));
    group.bench_function("sync_qd1", |b| {
        b.iter(|| runtime::block_on_here(read_batch(fd, 0, BATCH)))
    });
    for backend in Backend::CONCRETE {
        if let Err(why) = runtime::backend_availability(backend) {
            eprintln!("pread_4k_hot/{backend}: not run: {why}");
            continue;
        }
        let rt = runtime_on(backend);
        group.bench_function(format!("{backend}_qd1"), |b| {
            b.iter(|| rt.block_on(read_batch(fd, 0, BATCH)))
        });
        group.bench_function(format!("{backend}_qd32"), |b| {
            b.iter(|| rt.block_on(read_qd32(fd)))
        });
    }
    group.finish();
    io::close(fd).wait().expect("close");
}

fn runtime_on(backend: Backend) -> Runtime {
    Runtime::builder()
        .compute_threads(1)
        .io_threads(1)
        .backend(backend)
        .build()
        .expect("runtime")
}

fn bench_pwrite(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("write.bin");
    let flags = OpenFlags::WRONLY | OpenFlags::CREAT;
    let fd = io::open(&path, flags, 0o644).wait().expect("open");
    let mut group = c.benchmark_group("pwrite_1m");
    group.throughput(Throughput::Bytes(WRITE_BYTES as u64));
    let mut buf = Some(vec![9u8; WRITE_BYTES]);
    let mut write_once = |b: &mut criterion::Bencher<'_>, rt: Option<&Runtime>| {
        b.iter(|| {
            let op = io::pwrite(fd, buf.take().expect("buffer"), 0);
            let BufResult(n, back) = match rt {
                Some(rt) => rt.block_on(op),
                None => op.wait(),
            };
            assert_eq!(n.expect("pwrite"), WRITE_BYTES);
            buf = Some(back);
        })
    };
    group.bench_function("sync", |b| write_once(b, None));
    for backend in Backend::CONCRETE {
        if runtime::backend_availability(backend).is_ok() {
            let rt = runtime_on(backend);
            group.bench_function(backend.name(), |b| write_once(b, Some(&rt)));
        }
    }
    group.finish();
    io::close(fd).wait().expect("close");
}

criterion_group!(benches, bench_pread, bench_pwrite);
criterion_main!(benches);
