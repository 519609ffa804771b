//! The core logic of the tokio examples (`examples/tokio_copy.rs`,
//! `examples/file_server.rs`), run with their iokernel runtime on every
//! available backend: the bytes that arrive must be the file's, and the
//! file server must refuse every path that leaves its root or is not a
//! regular file (without hanging on a FIFO).

#[allow(dead_code)] // its `main` is the example's
#[path = "../examples/file_server.rs"]
mod file_server;
#[allow(dead_code)]
#[path = "../examples/tokio_copy.rs"]
mod tokio_copy;

use iokernel::runtime::{backend_availability, Backend, Runtime};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn each_backend(mut body: impl FnMut(Backend, Runtime, tokio::runtime::Runtime)) {
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        eprintln!("running on {backend}");
        let io_rt = Runtime::builder()
            .name(format!("examples-{backend}"))
            .compute_threads(2)
            .io_threads(2)
            .backend(backend)
            .build()
            .unwrap_or_else(|e| panic!("runtime on {backend}: {e}"));
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        body(backend, io_rt, tokio_rt);
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn tokio_copy_sends_the_whole_file_on_every_backend() {
    each_backend(|backend, io_rt, tokio_rt| {
        let dir = tempfile::tempdir().expect("scratch");
        let path = dir.path().join("payload");
        let data = pattern((1 << 20) + 7);
        std::fs::write(&path, &data).expect("write payload");
        let handle = io_rt.handle();
        let got = tokio_rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let receiver = tokio::spawn(tokio_copy::receive_one(listener));
            let sent = tokio_copy::send_file(&handle, path, addr).await?;
            let got = receiver.await??;
            assert_eq!(sent, got.len() as u64);
            Ok::<_, std::io::Error>(got)
        });
        let got = got.unwrap_or_else(|e| panic!("on {backend}: {e}"));
        assert!(
            got == data,
            "on {backend}: {} bytes arrived, want {}",
            got.len(),
            data.len()
        );
    });
}

/// GET `path` with a raw HTTP/1.1 request; (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&response)));
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Ok((status, response[split + 4..].to_vec()))
}

fn make_tree(root: &Path) -> Vec<u8> {
    std::fs::create_dir(root.join("sub")).expect("mkdir");
    std::fs::write(root.join("hello.txt"), b"hello from iokernel\n").expect("write");
    let big = pattern(3 << 20);
    std::fs::write(root.join("sub/big.bin"), &big).expect("write");
    std::os::unix::fs::symlink("/etc/hostname", root.join("link")).expect("symlink");
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    big
}

#[test]
fn file_server_serves_files_and_refuses_what_leaves_the_root_on_every_backend() {
    each_backend(|backend, io_rt, tokio_rt| {
        let dir = tempfile::tempdir().expect("scratch");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("root");
        std::fs::write(dir.path().join("secret"), b"outside").expect("secret");
        let big = make_tree(&root);
        let handle = io_rt.handle();
        let result = tokio_rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let server = tokio::spawn(file_server::serve(listener, root, handle));
            let checks = async {
                let (status, body) = get(addr, "/hello.txt").await?;
                assert_eq!((status, &body[..]), (200, &b"hello from iokernel\n"[..]));
                let (status, body) = get(addr, "/sub/big.bin").await?;
                assert_eq!(status, 200);
                assert!(
                    body == big,
                    "big file: {} bytes, want {}",
                    body.len(),
                    big.len()
                );
                for (path, want) in [
                    ("/../secret", 403),
                    ("/sub/../../secret", 403),
                    ("/./hello.txt", 403),
                    ("/sub//big.bin", 403),
                    ("/", 403),
                    ("/missing", 404),
                    ("/sub", 403),
                    ("/fifo", 403),
                    ("/link", 403),
                ] {
                    let (status, body) = get(addr, path).await?;
                    let text = String::from_utf8_lossy(&body);
                    assert_eq!(status, want, "GET {path}: {text}");
                }
                Ok::<_, std::io::Error>(())
            };
            let outcome = tokio::time::timeout(Duration::from_secs(30), checks).await;
            server.abort();
            outcome.map_err(|_| std::io::Error::other("the server hung"))?
        });
        result.unwrap_or_else(|e| panic!("on {backend}: {e}"));
    });
}
