//! A small HTTP file server on hyper whose file reads go through iokernel.
//!
//! tokio runs the sockets and hyper; every file is opened, checked and read
//! by a task on an iokernel runtime (`Handle::spawn`), so tokio's workers
//! never wait on the disk. Paths are confined to the root: `..`, `.` and
//! empty components are refused, the last component may not be a symlink
//! (`O_NOFOLLOW`), and only regular files are served (a FIFO or a device
//! is opened `O_NONBLOCK` so it cannot hang the server, then refused).
//!
//! Run: `cargo run --example file_server --features compat-tokio -- [ROOT] [ADDR]`
//! (defaults: `.` and `127.0.0.1:8080`), then `curl http://127.0.0.1:8080/Cargo.toml`.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use iokernel::fs::{File, OpenOptions};
use iokernel::io::FileType;
use iokernel::runtime::{Handle, Runtime};
use std::convert::Infallible;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Largest file served (the whole file is read into memory).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Serve files under `root` on `listener` until accepting fails.
pub async fn serve(listener: tokio::net::TcpListener, root: PathBuf, io: Handle) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let (root, io) = (root.clone(), io.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let (root, io) = (root.clone(), io.clone());
                async move { Ok::<_, Infallible>(respond(&root, &io, &request).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection: {e}");
            }
        });
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

async fn respond<B>(root: &Path, io: &Handle, request: &Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    let Some(path) = confine(root, request.uri().path()) else {
        return plain(StatusCode::FORBIDDEN, "path leaves the root\n".into());
    };
    match io.spawn(read_regular_file(path)).await {
        Ok(Ok(bytes)) => Response::new(Full::new(Bytes::from(bytes))),
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
            plain(StatusCode::NOT_FOUND, format!("{e}\n"))
        }
        Ok(Err(e)) => plain(StatusCode::FORBIDDEN, format!("{e}\n")),
        Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    }
}

/// `root` joined with the URL path, or `None` when a component is `..`,
/// `.`, empty, or not a plain name.
pub fn confine(root: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = url_path.strip_prefix('/')?;
    if relative.is_empty() || relative.contains('\0') {
        return None;
    }
    let mut path = root.to_path_buf();
    for part in relative.split('/') {
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(name)), None) if !part.is_empty() && part != "." => {
                path.push(name)
            }
            _ => return None,
        }
    }
    Some(path)
}

/// Open `path` (no symlink as the last component, never blocking on a
/// FIFO), refuse anything but a regular file up to [`MAX_FILE_BYTES`],
/// and read it whole. Runs on the iokernel runtime.
pub async fn read_regular_file(path: PathBuf) -> io::Result<Vec<u8>> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
    let stat = file.metadata().await?;
    if stat.file_type != FileType::Regular {
        let what = format!("{} is not a regular file", path.display());
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, what));
    }
    if stat.size_bytes > MAX_FILE_BYTES {
        let what = format!("{} is over {MAX_FILE_BYTES} bytes", path.display());
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, what));
    }
    let len = usize::try_from(stat.size_bytes).map_err(io::Error::other)?;
    let (done, bytes) = file.read_exact_at(vec![0u8; len], 0).await.into_parts();
    done.map(|()| bytes)
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let io_rt = Runtime::builder().name("iok-files").build()?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "serving {} on http://{} (file reads on iokernel, backend {})",
        root.display(),
        listener.local_addr()?,
        io_rt.backend_report().selected
    );
    serve(listener, root, io_rt.handle()).await
}
