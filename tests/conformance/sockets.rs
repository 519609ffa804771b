//! Conformance bodies for UDP and Unix sockets, `sendmsg`/`recvmsg` with
//! `SCM_RIGHTS`, `shutdown`, and TCP streams through short transfers and
//! fd reuse (run like every body: on each backend, the
//! sync fallback and every simulated driver, faults off).

use super::body::no_cancellation_without_a_runtime;
use super::*;
use iokernel::io::SockAddr;
use iokernel::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};
use iokernel::runtime::{sleep, timeout};
use std::time::Duration;

/// Rounds of the recvmsg cancellation race.
const MSG_CANCEL_ROUNDS: usize = 120;
/// How long a datagram sent after a cancelled receive may take to show up.
const MSG_LOST_AFTER: Duration = Duration::from_secs(5);

/// Receive one datagram, failing on truncation.
async fn udp_recv(sock: &UdpSocket, cap: usize) -> std::io::Result<(Vec<u8>, SocketAddr)> {
    let BufResult(got, buf) = sock.recv_from(vec![0u8; cap]).await;
    let (n, from) = got?;
    Ok((buf[..n].to_vec(), from))
}

#[track_caller]
fn assert_named(result: std::io::Result<impl Debug>, errno: &str, names: &str, what: &str) {
    match result {
        Err(e) if e.to_string().contains(errno) && e.to_string().contains(names) => {}
        other => panic!("{what}: expected an error naming {errno} and {names:?}, got {other:?}"),
    }
}

pub async fn udp_send_to_and_recv_from_keep_datagram_boundaries(
    _dir: PathBuf,
) -> std::io::Result<()> {
    let a = UdpSocket::bind(loopback())?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
    assert_ne!(b_addr.port(), 0, "bind to port 0 picks a port");
    for (i, len) in [1usize, 700, 1400].into_iter().enumerate() {
        let sent = a.send_to(pattern(len, i as u8), b_addr).await.0?;
        assert_eq!(sent, len, "a datagram is sent whole");
    }
    for (i, len) in [1usize, 700, 1400].into_iter().enumerate() {
        let (got, from) = udp_recv(&b, 4096).await?;
        assert_same_bytes(&got, &pattern(len, i as u8), "one datagram per recv");
        assert_eq!(from, a_addr, "recv_from names the sender");
    }
    assert_errno(
        a.send_to(vec![0u8; 70_000], b_addr).await.0,
        libc::EMSGSIZE,
        "a datagram larger than UDP allows",
    );
    Ok(())
}

pub async fn connected_udp_sends_and_receives_from_its_peer(_dir: PathBuf) -> std::io::Result<()> {
    let a = UdpSocket::bind(loopback())?;
    let b = UdpSocket::bind(loopback())?;
    assert_errno(
        a.send(b"nobody".to_vec()).await.0,
        libc::EDESTADDRREQ,
        "send on an unconnected UDP socket",
    );
    a.connect(b.local_addr()?)?;
    b.connect(a.local_addr()?)?;
    assert_eq!(a.peer_addr()?, b.local_addr()?);
    a.send(b"ping".to_vec()).await.0?;
    let BufResult(n, buf) = b.recv(vec![0u8; 16]).await;
    assert_same_bytes(&buf[..n?], b"ping", "connected recv");
    b.send(b"pong".to_vec()).await.0?;
    let (got, from) = udp_recv(&a, 16).await?;
    assert_same_bytes(&got, b"pong", "connected reply");
    assert_eq!(from, b.local_addr()?);
    Ok(())
}

pub async fn a_datagram_larger_than_the_buffer_is_reported(_dir: PathBuf) -> std::io::Result<()> {
    let a = UdpSocket::bind(loopback())?;
    let b = UdpSocket::bind(loopback())?;
    let to = b.local_addr()?;
    let big = pattern(100, 7);
    a.send_to(big.clone(), to).await.0?;
    let BufResult(got, head) = b.recv(vec![0u8; 10]).await;
    assert_named(got, "EMSGSIZE", "10-byte buffer", "recv of a cut datagram");
    assert_same_bytes(&head, &big[..10], "the head of a cut datagram");
    a.send_to(big.clone(), to).await.0?;
    let BufResult(msg, head) = b.recv_msg(vec![0u8; 10]).await;
    let msg = msg?;
    assert!(msg.truncated, "recv_msg flags a cut datagram");
    assert_same_bytes(&head[..msg.bytes], &big[..10], "recv_msg head");
    // The next datagram is untouched by the cut ones.
    a.send_to(b"next".to_vec(), to).await.0?;
    assert_same_bytes(&udp_recv(&b, 10).await?.0, b"next", "after a cut");
    // The same on a Unix datagram socket.
    let (x, y) = UnixDatagram::pair()?;
    x.send(big.clone()).await.0?;
    let BufResult(got, head) = y.recv(vec![0u8; 10]).await;
    assert_named(
        got,
        "EMSGSIZE",
        "10-byte buffer",
        "unix recv of a cut datagram",
    );
    assert_same_bytes(&head, &big[..10], "unix head");
    Ok(())
}

pub async fn unix_stream_echo_through_a_listener(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("echo.sock");
    let listener = UnixListener::bind(&path)?;
    assert_eq!(listener.local_addr()?, SockAddr::Unix(path.clone()));
    let server = spawn_peer("unix-echo", async move {
        for _ in 0..2 {
            let (stream, _peer) = listener.accept().await?;
            loop {
                let BufResult(n, buf) = stream.read(vec![0u8; 4096]).await;
                match n? {
                    0 => break,
                    n => stream.write_all(buf[..n].to_vec()).await.0?,
                }
            }
        }
        Ok::<_, std::io::Error>(())
    });
    for client in 0..2u8 {
        let stream = UnixStream::connect(&path).await?;
        assert_eq!(stream.peer_addr()?, SockAddr::Unix(path.clone()));
        let data = pattern(20_000, client);
        stream.write_all(data.clone()).await.0?;
        stream.shutdown(Shutdown::Write).await?;
        let mut got = Vec::new();
        loop {
            let BufResult(n, buf) = stream.read(vec![0u8; 4096]).await;
            match n? {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_same_bytes(&got, &data, "unix stream echo");
    }
    server.join().await
}

pub async fn unix_datagram_pair_and_bound_sockets(dir: PathBuf) -> std::io::Result<()> {
    let (a, b) = UnixDatagram::pair()?;
    a.send(b"one".to_vec()).await.0?;
    a.send(b"two!".to_vec()).await.0?;
    for want in [&b"one"[..], b"two!"] {
        let BufResult(n, buf) = b.recv(vec![0u8; 16]).await;
        assert_same_bytes(&buf[..n?], want, "unix datagrams in order");
    }
    let (p, q) = (dir.join("p.sock"), dir.join("q.sock"));
    let p_sock = UnixDatagram::bind(&p)?;
    let q_sock = UnixDatagram::bind(&q)?;
    p_sock.send_to(b"to q".to_vec(), &q).await.0?;
    let BufResult(got, buf) = q_sock.recv_from(vec![0u8; 16]).await;
    let (n, from) = got?;
    assert_same_bytes(&buf[..n], b"to q", "send_to a path");
    assert_eq!(from, SockAddr::Unix(p.clone()), "the sender's path");
    let unbound = UnixDatagram::unbound()?;
    unbound.connect(&p)?;
    unbound.send(b"anon".to_vec()).await.0?;
    let BufResult(got, _) = p_sock.recv_from(vec![0u8; 16]).await;
    assert_eq!(got?.1, SockAddr::Unnamed, "an unbound sender has no name");
    assert_errno(
        unbound
            .send_to(b"x".to_vec(), dir.join("missing.sock"))
            .await
            .0,
        libc::ENOENT,
        "send_to a path nobody binds",
    );
    Ok(())
}

/// Pass `file_fd` from `send` to `recv` and read the file through the
/// received fd after closing ours.
async fn read_through_passed_fd(
    received: &iokernel::net::ReceivedFd,
    want: &[u8],
    what: &str,
) -> std::io::Result<()> {
    let BufResult(n, buf) = io::pread(received.as_raw_fd(), vec![0u8; 64], 0).await;
    assert_same_bytes(&buf[..n?], want, what);
    Ok(())
}

pub async fn sendmsg_passes_a_file_fd_with_scm_rights(dir: PathBuf) -> std::io::Result<()> {
    let contents = b"read me through the passed fd";
    // Over a Unix datagram pair.
    let file = create_file(&dir.join("passed-1"), contents).await?;
    let (a, b) = UnixDatagram::pair()?;
    a.send_msg(b"fd".to_vec(), &[file]).await.0?;
    io::close(file).await?;
    let BufResult(msg, buf) = b.recv_msg(vec![0u8; 8], 4).await;
    let msg = msg?;
    assert_same_bytes(&buf[..msg.bytes], b"fd", "bytes with the fd");
    assert_eq!(msg.fds.len(), 1, "one fd passed");
    assert!(!msg.fds_truncated);
    read_through_passed_fd(&msg.fds[0], contents, "file via datagram").await?;
    // Over a Unix stream pair: the fd rides with its bytes, and a receive
    // that takes them stops at their end.
    let file = create_file(&dir.join("passed-2"), contents).await?;
    let (s, t) = UnixStream::pair()?;
    s.write_all(b"plain ".to_vec()).await.0?;
    s.send_msg(b"with-fd".to_vec(), &[file]).await.0?;
    s.write_all(b" tail".to_vec()).await.0?;
    io::close(file).await?;
    let BufResult(first, buf) = t.recv_msg(vec![0u8; 64], 4).await;
    let first = first?;
    assert_same_bytes(
        &buf[..first.bytes],
        b"plain with-fd",
        "up to the end of the fd's bytes",
    );
    assert_eq!(first.fds.len(), 1, "the fd comes with its bytes");
    read_through_passed_fd(&first.fds[0], contents, "file via stream").await?;
    let BufResult(rest, buf) = t.recv_msg(vec![0u8; 64], 4).await;
    let rest = rest?;
    assert_same_bytes(&buf[..rest.bytes], b" tail", "the bytes after");
    assert!(rest.fds.is_empty());
    // No room for fds: they are closed and the message says so.
    let file = create_file(&dir.join("passed-3"), contents).await?;
    a.send_msg(b"cut".to_vec(), &[file]).await.0?;
    io::close(file).await?;
    let BufResult(msg, _) = b.recv_msg(vec![0u8; 8], 0).await;
    let msg = msg?;
    assert!(
        msg.fds.is_empty() && msg.fds_truncated,
        "MSG_CTRUNC: {msg:?}"
    );
    Ok(())
}

pub async fn shutdown_write_gives_the_peer_end_of_stream(_dir: PathBuf) -> std::io::Result<()> {
    let (a, b) = UnixStream::pair()?;
    a.write_all(b"last".to_vec()).await.0?;
    a.shutdown(Shutdown::Write).await?;
    let BufResult(n, buf) = b.read(vec![0u8; 16]).await;
    assert_same_bytes(&buf[..n?], b"last", "data before the shutdown");
    assert_eq!(b.read(vec![0u8; 16]).await.0?, 0, "then end of stream");
    // The other direction still works.
    b.write_all(b"back".to_vec()).await.0?;
    let BufResult(n, buf) = a.read(vec![0u8; 16]).await;
    assert_same_bytes(&buf[..n?], b"back", "the open direction");
    // The op on TCP too.
    let (_listener, client, server_fd) = loopback_pair().await?;
    io::shutdown(client.as_raw_fd(), Shutdown::Write).await?;
    assert_eq!(recv_exact(server_fd, 0).await?.len(), 0);
    let BufResult(n, _) = io::recv(server_fd, vec![0u8; 4]).await;
    assert_eq!(n?, 0, "TCP peer sees end of stream");
    io::close(server_fd).await
}

pub async fn recv_on_a_closed_peer(_dir: PathBuf) -> std::io::Result<()> {
    let (a, b) = UnixStream::pair()?;
    a.write_all(b"bye".to_vec()).await.0?;
    drop(a);
    let BufResult(n, buf) = b.read(vec![0u8; 16]).await;
    assert_same_bytes(&buf[..n?], b"bye", "data sent before the close");
    assert_eq!(
        b.read(vec![0u8; 16]).await.0?,
        0,
        "end of stream after close"
    );
    assert_errno(
        b.write(b"late".to_vec()).await.0,
        libc::EPIPE,
        "write to a closed Unix peer",
    );
    let (x, y) = UnixDatagram::pair()?;
    drop(x);
    let BufResult(sent, _) = y.send(b"anyone?".to_vec()).await;
    assert_errno(sent, libc::ECONNREFUSED, "send to a closed datagram peer");
    Ok(())
}

pub async fn unix_bind_to_a_path_in_use_is_eaddrinuse_naming_it(
    dir: PathBuf,
) -> std::io::Result<()> {
    let path = dir.join("taken.sock");
    let _first = UnixListener::bind(&path)?;
    let shown = path.display().to_string();
    assert_named(
        UnixListener::bind(&path),
        "EADDRINUSE",
        &shown,
        "second listener",
    );
    assert_named(
        UnixDatagram::bind(&path),
        "EADDRINUSE",
        &shown,
        "datagram on a listener's path",
    );
    match UnixListener::bind(&path) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse),
        Ok(_) => panic!("bind to a path in use succeeded"),
    }
    Ok(())
}

pub async fn a_unix_path_longer_than_sun_path_is_refused_naming_it(
    dir: PathBuf,
) -> std::io::Result<()> {
    let long = dir.join("l".repeat(120));
    let shown = long.display().to_string();
    assert_named(UnixListener::bind(&long), "ENAMETOOLONG", &shown, "bind");
    assert_named(
        UnixStream::connect(&long).await,
        "ENAMETOOLONG",
        &shown,
        "connect",
    );
    assert_named(
        UnixDatagram::bind(&long),
        "ENAMETOOLONG",
        &shown,
        "datagram bind",
    );
    Ok(())
}

/// A path that cannot be a socket address (a NUL byte, which would make
/// it an abstract name, or an empty one) is refused with `EINVAL` and a
/// message that shows it escaped and says why.
pub async fn a_unix_path_that_cannot_be_an_address_says_why(_dir: PathBuf) -> std::io::Result<()> {
    let abstract_name = r#""\0abstract""#;
    let why = "abstract socket names are not supported";
    for (name, result) in [
        ("bind", UnixListener::bind("\0abstract").map(drop)),
        ("connect", UnixStream::connect("\0abstract").await.map(drop)),
        ("datagram bind", UnixDatagram::bind("\0abstract").map(drop)),
    ] {
        assert_named(result, "EINVAL", abstract_name, name);
    }
    assert_named(UnixListener::bind("\0abstract"), why, "bind", "bind");
    assert_named(
        UnixStream::connect("").await,
        "EINVAL",
        r#""" (an empty path)"#,
        "connect to an empty path",
    );
    Ok(())
}

pub async fn recv_from_and_recvmsg_cancelled_mid_flight_keep_the_datagram(
    _dir: PathBuf,
) -> std::io::Result<()> {
    let udp_a = Arc::new(UdpSocket::bind(loopback())?);
    let udp_b = UdpSocket::bind(loopback())?;
    let udp_to = udp_b.local_addr()?;
    let (unix_a, unix_b) = UnixDatagram::pair()?;
    let unix_a = Arc::new(unix_a);
    if no_cancellation_without_a_runtime("recv_from/recvmsg") {
        udp_a.send_to(b"plain".to_vec(), udp_to).await.0?;
        assert_same_bytes(&udp_recv(&udp_b, 16).await?.0, b"plain", "recv_from");
        return Ok(());
    }
    let (mut timed_out, mut completed) = (0, 0);
    for round in 0..MSG_CANCEL_ROUNDS {
        let id = pattern(32, round as u8);
        let (limit, delay) = (
            Duration::from_micros((round * 37 % 300) as u64),
            Duration::from_micros((round * 53 % 300) as u64),
        );
        let (sent, udp, unix) = (id.clone(), Arc::clone(&udp_a), Arc::clone(&unix_a));
        let sender = spawn_peer("cancel-dgram", async move {
            sleep(delay).await;
            match round % 2 {
                0 => udp.send_to(sent, udp_to).await.0,
                _ => unix.send(sent).await.0,
            }
        });
        let first = match round % 2 {
            0 => timeout(limit, udp_b.recv_from(vec![0u8; 64]))
                .await
                .map(|BufResult(r, buf)| r.map(|(n, _)| buf[..n].to_vec())),
            _ => timeout(limit, unix_b.recv_msg(vec![0u8; 64], 0))
                .await
                .map(|BufResult(r, buf)| r.map(|m| buf[..m.bytes].to_vec())),
        };
        sender.join().await?;
        let got = match first {
            Ok(got) => {
                completed += 1;
                got?
            }
            Err(_) => {
                timed_out += 1;
                let next = match round % 2 {
                    0 => timeout(MSG_LOST_AFTER, udp_recv(&udp_b, 64))
                        .await
                        .map(|r| r.map(|(got, _)| got)),
                    _ => timeout(MSG_LOST_AFTER, unix_b.recv_msg(vec![0u8; 64], 0))
                        .await
                        .map(|BufResult(r, buf)| r.map(|m| buf[..m.bytes].to_vec())),
                };
                next.map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("round {round}: the datagram after a timed-out receive was lost"),
                    )
                })??
            }
        };
        assert_same_bytes(&got, &id, &format!("round {round}: one whole datagram"));
    }
    eprintln!("datagram races: {timed_out} timed out, {completed} completed");
    assert!(timed_out > 0, "no round timed out: the race was never run");
    // Nothing extra is left behind: a datagram is never delivered twice.
    let extra = timeout(Duration::from_millis(20), udp_b.recv_from(vec![0u8; 64])).await;
    assert!(extra.is_err(), "a datagram was delivered twice");
    Ok(())
}

/// Echo `total` bytes `stream` receives, reading into a 4 KiB buffer (so
/// small messages are short reads that drain the socket); gives the
/// stream back.
async fn echo_bytes(stream: TcpStream, total: usize) -> std::io::Result<TcpStream> {
    let mut buf = Vec::with_capacity(4096);
    let mut echoed = 0;
    while echoed < total {
        let BufResult(n, back) = stream.read(buf).await;
        let n = n?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        echoed += n;
        let BufResult(sent, mut back) = stream.write_all(back).await;
        sent?;
        back.clear();
        buf = back;
    }
    Ok(stream)
}

/// Read exactly `len` bytes from `stream`.
async fn read_exact(stream: &TcpStream, len: usize) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        let BufResult(n, buf) = stream.read(vec![0u8; (len - got.len()).min(1 << 16)]).await;
        match n? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    Ok(got)
}

/// Bytes of the bulk half of the TCP streaming body: far more than the
/// socket buffers hold, so sends come back short and wait for room.
const BULK_BYTES: usize = 4 << 20;

/// A TCP stream keeps flowing through short reads (a recv that drains the
/// socket) and short sends (a full send buffer), each followed by a wait
/// for the next data or room: a readiness driver that skips the syscall
/// after a drained result must still see what comes next. (At most two
/// ops wait at once, so the pool's blocking threads suffice.)
pub async fn tcp_echo_keeps_flowing_through_short_reads_and_sends(
    _dir: PathBuf,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(loopback())?;
    let client = Arc::new(TcpStream::connect(listener.local_addr()?).await?);
    let (server, _) = listener.accept().await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    // Ping-pong of small messages through an echo: every echo read is short.
    let sizes: Vec<usize> = (0..64).map(|round| 1 + round * 37 % 300).collect();
    let echo = spawn_peer("echo", echo_bytes(server, sizes.iter().sum()));
    for (round, &size) in sizes.iter().enumerate() {
        let msg = pattern(size, round as u8);
        let BufResult(sent, msg) = client.write_all(msg).await;
        sent?;
        let back = read_exact(&client, msg.len()).await?;
        assert_same_bytes(&back, &msg, &format!("ping-pong round {round}"));
    }
    let server = echo.join().await?;
    // Bulk one way: the writer's sends fill the buffers (short, then
    // waiting for room) while this side reads.
    let bulk = pattern(BULK_BYTES, 7);
    let writer = {
        let client = Arc::clone(&client);
        let bulk = bulk.clone();
        spawn_peer("bulk-writer", async move { client.write_all(bulk).await.0 })
    };
    let got = read_exact(&server, BULK_BYTES).await?;
    assert_same_bytes(&got, &bulk, "bulk");
    writer.join().await
}

/// A socket's fd number, closed and reused by a new socket, is waited on
/// afresh: state a readiness driver kept for the old fd (registered, known
/// not ready) must not make an op on the new one wait for an event that
/// never comes.
pub async fn a_reused_fd_number_is_waited_on_afresh(_dir: PathBuf) -> std::io::Result<()> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let mut old_fds = Vec::new();
    for round in 0..2 {
        let client = TcpStream::connect(addr).await?;
        let (server, _) = listener.accept().await?;
        let fds = [client.as_raw_fd(), server.as_raw_fd()];
        if round == 1 && fds.iter().any(|fd| !old_fds.contains(fd)) {
            eprintln!(
                "fd numbers {old_fds:?} were not all reused ({fds:?}): checking the exchange"
            );
        }
        if in_runtime() {
            // Each side waits for data that does not come (the op registers
            // the fd and learns it is not readable), then gives up.
            for stream in [&client, &server] {
                let idle = timeout(Duration::from_millis(5), stream.read(vec![0u8; 8])).await;
                assert!(idle.is_err(), "round {round}: nothing was sent yet");
            }
        }
        // Now each side waits while the other sends, a moment later.
        let (client, server) = (Arc::new(client), Arc::new(server));
        for (reader, writer) in [(&server, &client), (&client, &server)] {
            let writer = Arc::clone(writer);
            let sender = spawn_peer("late-send", async move {
                sleep(Duration::from_millis(2)).await;
                writer.write_all(b"wake").await.0
            });
            let got = timeout(MSG_LOST_AFTER, read_exact(reader, 4))
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "round {round}: bytes sent to fd {} never arrived",
                            reader.as_raw_fd()
                        ),
                    )
                })??;
            assert_eq!(got, b"wake", "round {round}");
            sender.join().await?;
        }
        old_fds = fds.to_vec();
    }
    Ok(())
}

/// IPv6 on loopback: a TCP connection and a UDP exchange report the same
/// addresses on both ends, and a listener on `[::]` takes an IPv4 client,
/// naming it as an IPv4-mapped address (as `std::net` does).
pub async fn ipv6_tcp_and_udp_report_their_addresses(_dir: PathBuf) -> std::io::Result<()> {
    let listener = match TcpListener::bind("[::1]:0") {
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
            eprintln!("skipped: no IPv6 loopback here ({e})");
            return Ok(());
        }
        other => other?,
    };
    let listen_addr = listener.local_addr()?;
    assert!(
        listen_addr.is_ipv6() && listen_addr.port() != 0,
        "{listen_addr}"
    );
    let client = TcpStream::connect(listen_addr).await?;
    let (server, peer) = listener.accept().await?;
    assert_eq!(peer, client.local_addr()?, "accept names the client");
    assert_eq!(server.peer_addr()?, peer, "the accepted stream's peer");
    assert_eq!(
        server.local_addr()?,
        listen_addr,
        "the accepted stream's end"
    );
    send_all(client.as_raw_fd(), b"over six".to_vec()).await?;
    assert_same_bytes(
        &recv_exact(server.as_raw_fd(), 8).await?,
        b"over six",
        "v6 bytes",
    );

    let (a, b) = (UdpSocket::bind("[::1]:0")?, UdpSocket::bind("[::1]:0")?);
    let sent = a.send_to(b"datagram".to_vec(), b.local_addr()?).await.0?;
    assert_eq!(sent, 8);
    let BufResult(got, buf) = b.recv_from(vec![0u8; 64]).await;
    let (n, from) = got?;
    assert_same_bytes(&buf[..n], b"datagram", "v6 datagram");
    assert_eq!(from, a.local_addr()?, "recv_from names the v6 sender");

    let any = TcpListener::bind("[::]:0")?;
    let port = any.local_addr()?.port();
    let v4_client = TcpStream::connect(("127.0.0.1", port)).await?;
    let (_v4_server, v4_peer) = any.accept().await?;
    let mapped = match v4_client.local_addr()? {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    };
    assert_eq!(v4_peer, mapped, "an IPv4 client of a [::] listener");
    Ok(())
}
