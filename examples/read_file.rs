//! The original C++ documentation's example, in Rust: open a file, read
//! 1024 bytes, close it, inside a named pipeline with one compute thread.
//! Then the very same `read_file` runs again with no runtime at all (every
//! op falls back to a blocking syscall).
//!
//! Run: `cargo run --example read_file -- [PATH]` (default: Cargo.toml).

use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{block_on_here, make_task, Pipeline, PipelineConfig};

async fn read_file(path: String) {
    // Open file async.
    let fd = match io::open(&path, OpenFlags::RDONLY, 0).await {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("open failed: {} ({e})", e.raw_os_error().unwrap_or(0));
            return;
        }
    };
    // Read 1024 bytes.
    let BufResult(result, _buf) = io::read(fd, vec![0u8; 1024]).await;
    match result {
        Ok(n) => println!("Read {n} bytes"),
        Err(e) => eprintln!("read failed: {} ({e})", e.raw_os_error().unwrap_or(0)),
    }
    // Close file.
    if let Err(e) = io::close(fd).await {
        eprintln!("close failed: {e}");
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Cargo.toml".to_string());

    let config = PipelineConfig::new()
        .with_name("ReadExample")
        .with_compute_threads(1);
    let task_path = path.clone();
    let task = make_task(move |_scope| read_file(task_path), "ReadFile");
    let mut pipeline = Pipeline::new(config);
    pipeline.set_source(vec![task]);
    if let Err(e) = pipeline.execute() {
        eprintln!("pipeline failed: {e}");
        std::process::exit(1);
    }

    // Outside any runtime: the same code, blocking syscalls underneath.
    block_on_here(read_file(path));
}
