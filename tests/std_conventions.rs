//! std's conventions on iokernel types: the fd traits and `From` the std
//! types, `ToSocketAddrs` for bind/connect (each address in turn),
//! `OpenOptions::open_fd` with the seed's default mode, and send/recv
//! without flags. Each body runs on a runtime per concrete backend, on the
//! sync fallback, and (where it does no host-only I/O) on the simulated
//! kernel with short I/O, latency, reordering and poller/ring faults on.

use iokernel::fs::File;
use iokernel::io::{self, BufResult, OpenOptions};
use iokernel::net::{TcpListener, TcpStream};
use iokernel::runtime::{backend_availability, block_on_here, Backend, Runtime};
use iokernel::sim::{self, OpClass, SimOptions};
use iokernel::sys::Kernel;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;

/// Real kernel: every available backend, then the sync fallback.
fn on_the_real_kernel<F, Fut>(body: F)
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let rt = Runtime::builder()
            .name(format!("std-{backend}"))
            .compute_threads(2)
            .io_threads(2)
            .backend(backend)
            .build()
            .unwrap_or_else(|e| panic!("runtime on {backend}: {e}"));
        let dir = tempfile::tempdir().expect("scratch");
        eprintln!("running on {backend}");
        rt.block_on(body(dir.path().to_path_buf()))
            .unwrap_or_else(|e| panic!("on {backend}: {e}"));
    }
    let dir = tempfile::tempdir().expect("scratch");
    eprintln!("running on the sync fallback");
    block_on_here(body(dir.path().to_path_buf()))
        .unwrap_or_else(|e| panic!("on the sync fallback: {e}"));
}

/// The real kernel, then 12 seeds of the simulated one with every fault
/// but errnos on.
fn everywhere<F, Fut>(body: F)
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    on_the_real_kernel(&body);
    for seed in 0..12 {
        let mut options = SimOptions::with_faults(seed, 0.05);
        for class in OpClass::ALL {
            options.faults[class.index()].probability = 0.0;
        }
        let kernel = sim::new_kernel(options).expect("sim options");
        kernel.mkdir(c"/scratch", 0o755).expect("sim scratch");
        sim::run(&kernel, body(PathBuf::from("/scratch")))
            .unwrap_or_else(|e| panic!("simulated run, seed {seed}: {e}"))
            .unwrap_or_else(|e| panic!("on the simulated kernel, seed {seed}: {e}"));
    }
}

/// An address nothing listens on: bound, then released.
fn refused_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

async fn connect_tries_each_address_in_turn(_dir: PathBuf) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let good = listener.local_addr()?;
    let refused = refused_addr()?;
    // The first address refuses; the second one connects.
    let client = TcpStream::connect(&[refused, good][..]).await?;
    let (server, peer) = listener.accept().await?;
    assert_eq!(peer, client.local_addr()?);
    // send/recv without flags.
    let mut left = b"no flags".to_vec();
    while !left.is_empty() {
        let BufResult(sent, mut back) = io::send(client.as_raw_fd(), left).await;
        back.drain(..sent?);
        left = back;
    }
    let mut got = Vec::new();
    while got.len() < 8 {
        let BufResult(n, buf) = io::recv(server.as_raw_fd(), vec![0u8; 8 - got.len()]).await;
        let n = n?;
        assert!(n > 0, "end of stream after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"no flags");
    // Every address refuses: the error lists them and names the last.
    let other = refused_addr()?;
    let err = TcpStream::connect(&[refused, other][..])
        .await
        .err()
        .expect("nothing listens");
    let text = err.to_string();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{text}");
    assert!(
        text.contains(&refused.to_string()) && text.contains(&format!("the last, {other}")),
        "{text}"
    );
    // One address: the kernel's errno comes back untouched.
    let one = TcpStream::connect(refused).await.err().expect("refused");
    assert_eq!(one.raw_os_error(), Some(libc::ECONNREFUSED), "{one}");
    // Nothing to try is a clear InvalidInput, not a panic.
    let none = TcpStream::connect(&[][..]).await.err().expect("no address");
    assert_eq!(none.kind(), std::io::ErrorKind::InvalidInput, "{none}");
    let none = TcpListener::bind(&[][..]).err().expect("no address");
    assert!(none.to_string().contains("bind"), "{none}");
    Ok(())
}

#[test]
fn connect_tries_each_address_and_names_the_last_failure() {
    everywhere(connect_tries_each_address_in_turn);
}

async fn open_fd_uses_the_seeds_default_mode(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("mode");
    let fd = OpenOptions::new()
        .write(true)
        .create(true)
        .open_fd(&path)
        .await?;
    let stat = io::fstat(fd).await?;
    io::close(fd).await?;
    // The process umask may clear bits, never set them.
    assert_eq!(stat.permissions & !0o644, 0, "mode {:o}", stat.permissions);
    assert_eq!(
        stat.permissions & 0o600,
        0o600,
        "mode {:o}",
        stat.permissions
    );
    let fd = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .open_fd(dir.join("private"))
        .await?;
    let stat = io::fstat(fd).await?;
    io::close(fd).await?;
    assert_eq!(stat.permissions, 0o600);
    Ok(())
}

#[test]
fn open_fd_creates_with_mode_0o644_unless_told() {
    everywhere(open_fd_uses_the_seeds_default_mode);
}

/// Sets some options on an `OpenOptions`.
type SetOptions = fn(&mut OpenOptions) -> &mut OpenOptions;

/// std's rules for options that cannot mean what they say: truncate,
/// create or create_new without write access, append with truncate, no
/// access at all. Each is refused (`InvalidInput`; `EINVAL` from
/// `open_fd`, as std's `open` says) and the file is left as it was: Linux
/// would truncate a file opened read-only with `O_TRUNC`.
async fn options_std_refuses_are_refused_and_change_nothing(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("kept");
    let file = File::create(&path).await?;
    file.write_all_at(b"twelve bytes".to_vec(), 0).await.0?;
    file.close().await?;
    let refused: [(&str, SetOptions); 6] = [
        ("read + truncate", |o| o.read(true).truncate(true)),
        ("read + create", |o| o.read(true).create(true)),
        ("read + create_new", |o| o.read(true).create_new(true)),
        ("append + truncate", |o| o.append(true).truncate(true)),
        ("nothing", |o| o),
        ("truncate alone", |o| o.truncate(true)),
    ];
    for (what, set) in refused {
        let mut options = OpenOptions::new();
        set(&mut options);
        let opened = options.open(&path).await;
        let err = opened.err().unwrap_or_else(|| panic!("{what}: opened"));
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{what}: {err}"
        );
        assert!(
            err.to_string().contains("nothing was opened"),
            "{what}: {err}"
        );
        let raw = options.open_fd(&path).await;
        assert_eq!(
            raw.err().and_then(|e| e.raw_os_error()),
            Some(libc::EINVAL),
            "{what}"
        );
        let fd = OpenOptions::new().read(true).open_fd(&path).await?;
        let stat = io::fstat(fd).await?;
        io::close(fd).await?;
        assert_eq!(stat.size_bytes, 12, "{what} changed the file");
    }
    // What std allows still works: append with create_new (no truncation).
    let fresh = dir.join("fresh");
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&fresh)
        .await?;
    drop(file);
    Ok(())
}

#[test]
fn open_options_std_refuses_are_refused_and_change_nothing() {
    everywhere(options_std_refuses_are_refused_and_change_nothing);
}

/// Host fds only (std types): the real kernel.
async fn std_types_convert_and_the_fd_traits_agree(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("std");
    std::fs::write(&path, b"from std")?;
    let file = File::from(std::fs::File::open(&path)?);
    assert_eq!(file.as_fd().as_raw_fd(), AsRawFd::as_raw_fd(&file));
    let BufResult(n, buf) = file.read_at(vec![0u8; 16], 0).await;
    assert_eq!(&buf[..n?], b"from std");
    // A borrowed fd cloned to an OwnedFd works through std and back.
    let owned: OwnedFd = file.as_fd().try_clone_to_owned()?;
    let again = File::from(owned);
    let BufResult(n, buf) = again.read_at(vec![0u8; 4], 5).await;
    assert_eq!(&buf[..n?], b"std");
    // into_raw_fd gives the fd up: closing it ourselves must succeed once.
    let raw = IntoRawFd::into_raw_fd(again);
    io::close(raw).await?;

    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = std_listener.local_addr()?;
    let listener = TcpListener::from(std_listener);
    let client = TcpStream::from(std::net::TcpStream::connect(addr)?);
    let (server, _) = listener.accept().await?;
    client.write_all(b"std socket").await.0?;
    let (n, buf) = server.read(vec![0u8; 16]).await.into_parts();
    assert_eq!(&buf[..n?], b"std socket");
    let std_server = std::net::TcpStream::from(server.as_fd().try_clone_to_owned()?);
    let server = TcpStream::from(std_server);
    assert_eq!(server.peer_addr()?, client.local_addr()?);
    Ok(())
}

#[test]
fn std_types_convert_and_the_fd_traits_agree_on_the_real_kernel() {
    on_the_real_kernel(std_types_convert_and_the_fd_traits_agree);
}

/// The datagram and Unix types follow the same conventions: `From` the
/// std type, the fd traits agreeing with the inherent accessors, and
/// `into_raw_fd` giving the fd up.
async fn socket_types_convert_and_the_fd_traits_agree(dir: PathBuf) -> std::io::Result<()> {
    use iokernel::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};
    let a = UdpSocket::from(std::net::UdpSocket::bind("127.0.0.1:0")?);
    let b = UdpSocket::bind("127.0.0.1:0")?;
    assert_eq!(a.as_fd().as_raw_fd(), a.as_raw_fd());
    a.send_to(b"udp".to_vec(), b.local_addr()?).await.0?;
    let BufResult(got, buf) = b.recv_from(vec![0u8; 8]).await;
    let (n, from) = got?;
    assert_eq!((&buf[..n], from), (&b"udp"[..], a.local_addr()?));

    let (left, right) = std::os::unix::net::UnixStream::pair()?;
    let (left, right) = (UnixStream::from(left), UnixStream::from(right));
    left.write_all(b"unix".to_vec()).await.0?;
    let (n, buf) = right.read(vec![0u8; 8]).await.into_parts();
    assert_eq!(&buf[..n?], b"unix");

    let path = dir.join("listener.sock");
    let listener = UnixListener::from(std::os::unix::net::UnixListener::bind(&path)?);
    let client = UnixStream::connect(&path).await?;
    let (server, _) = listener.accept().await?;
    client.write_all(b"accepted".to_vec()).await.0?;
    let (n, buf) = server.read(vec![0u8; 16]).await.into_parts();
    assert_eq!(&buf[..n?], b"accepted");

    let (x, y) = std::os::unix::net::UnixDatagram::pair()?;
    let (x, y) = (UnixDatagram::from(x), UnixDatagram::from(y));
    x.send(b"dgram".to_vec()).await.0?;
    let (n, buf) = y.recv(vec![0u8; 8]).await.into_parts();
    assert_eq!(&buf[..n?], b"dgram");
    let raw = IntoRawFd::into_raw_fd(y);
    io::close(raw).await?;
    Ok(())
}

#[test]
fn socket_types_convert_and_the_fd_traits_agree_on_the_real_kernel() {
    on_the_real_kernel(socket_types_convert_and_the_fd_traits_agree);
}
