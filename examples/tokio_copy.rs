//! `tokio::io::copy` from an iokernel file to a tokio `TcpStream`.
//!
//! The file's reads run on an iokernel runtime (its own worker threads and
//! backend) through `Compat::with_handle`; tokio awaits them without
//! blocking its workers, and the socket is tokio's own.
//!
//! Run: `cargo run --example tokio_copy --features compat-tokio -- [PATH]`
//! (default: Cargo.toml). It sends the file to a tokio listener in the same
//! process and checks the bytes that arrive.

use iokernel::fs::File;
use iokernel::io::compat::Compat;
use iokernel::runtime::{Handle, Runtime};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// Send the file at `path` to `to` over a new tokio connection; returns
/// the bytes sent. The file is opened and read on the iokernel runtime of
/// `handle`.
pub async fn send_file(handle: &Handle, path: PathBuf, to: SocketAddr) -> io::Result<u64> {
    let file = handle
        .spawn(File::open(path.clone()))
        .await?
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
    let mut file = Compat::with_handle(file, handle);
    let mut socket = tokio::net::TcpStream::connect(to).await?;
    let sent = tokio::io::copy(&mut file, &mut socket).await?;
    socket.shutdown().await?;
    Ok(sent)
}

/// Accept one connection on `listener` and return everything it sends.
pub async fn receive_one(listener: tokio::net::TcpListener) -> io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let (mut socket, _) = listener.accept().await?;
    let mut got = Vec::new();
    socket.read_to_end(&mut got).await?;
    Ok(got)
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let path = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "Cargo.toml".to_string()),
    );
    // The iokernel runtime lives beside tokio's, on its own threads.
    let io_rt = Runtime::builder().name("iok").compute_threads(1).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn(receive_one(listener));
    let sent = send_file(&io_rt.handle(), path.clone(), addr).await?;
    let got = receiver.await??;
    let want = std::fs::read(&path)?;
    assert_eq!(got, want, "the bytes that arrived");
    println!(
        "sent {sent} bytes of {} through tokio::io::copy (iokernel backend: {})",
        path.display(),
        io_rt.backend_report().selected
    );
    Ok(())
}
