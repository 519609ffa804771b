//! Per-op latency of the pool backend and the sync fallback on a page-cache
//! hot file: 4 KiB `pread`, one at a time and 32 in flight.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{self, Backend, Runtime};
use std::os::fd::RawFd;

const FILE_BYTES: u64 = 16 << 20;
const BLOCK_BYTES: usize = 4096;

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

fn bench_pread(c: &mut Criterion) {
    let (_dir, path) = data_file();
    let mut group = c.benchmark_group("pread_4k_hot");
    group.throughput(Throughput::Bytes(BLOCK_BYTES as u64 * 32));

    let fd = io::open(&path, OpenFlags::RDONLY, 0).wait().expect("open");
    group.bench_function("sync_fallback_qd1_x32", |b| {
        b.iter(|| runtime::block_on_here(read_batch(fd, 0, 32)))
    });

    let rt = Runtime::builder()
        .compute_threads(1)
        .backend(Backend::ThreadPool)
        .build()
        .expect("runtime");
    group.bench_function("pool_qd32", |b| {
        b.iter(|| {
            rt.block_on(async {
                let handles: Vec<_> = (0..32)
                    .map(|i| runtime::spawn(read_batch(fd, i, 1)))
                    .collect();
                for h in handles {
                    h.await.expect("reader task");
                }
            })
        })
    });
    group.finish();
    io::close(fd).wait().expect("close");
}

criterion_group!(benches, bench_pread);
criterion_main!(benches);
