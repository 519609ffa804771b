//! TCP reads through receive streams (`TcpStream::read`; on io_uring one
//! multishot recv per connection receives ahead of the reads): nothing is
//! lost or reordered when reads are dropped, mixed with plain reads of the
//! raw fd, fall far behind the peer, or move to another runtime; closing
//! releases the socket; `into_raw_fd` keeps what was received, and
//! `into_raw_parts` hands it to a reader outside iokernel; what was kept
//! for a socket closed elsewhere never reaches the next on its number. Each case
//! runs on every backend this host has (the semantics are the same
//! everywhere), and on io_uring the runtime's metrics show the receive
//! stream ran. The simulated ring runs the same under faults, reordering
//! and streams that stop at random.

use iokernel::buf::BufResult;
use iokernel::io;
use iokernel::io::Shutdown;
use iokernel::net::{RawParts, TcpListener, TcpStream, UnixStream};
use iokernel::runtime::{sleep, spawn, timeout, Backend, JoinHandle, Runtime};
use iokernel::sim::{self, SimOptions};
use iokernel::sys::real::RealKernel;
use iokernel::sys::{Errno, Kernel, MsgFlags};
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

#[path = "support/bytes.rs"]
mod bytes;
use bytes::assert_same_bytes;
#[path = "support/sim_ring.rs"]
mod sim_ring;
use sim_ring::on_a_busy_sim_ring;

/// A runtime on `backend` with one worker and metrics on.
fn runtime(backend: Backend) -> Runtime {
    Runtime::builder()
        .compute_threads(1)
        .io_threads(2)
        .backend(backend)
        .metrics(true)
        .build()
        .unwrap()
}

/// Every backend this host has (the others are named as skipped).
fn backends() -> Vec<Backend> {
    Backend::CONCRETE
        .into_iter()
        .filter(
            |&backend| match iokernel::runtime::backend_availability(backend) {
                Ok(()) => true,
                Err(reason) => {
                    eprintln!("skipping {backend}: {reason}");
                    false
                }
            },
        )
        .collect()
}

/// On io_uring, the reads went through receive streams.
fn check_streamed(backend: Backend, rt: &Runtime) {
    let metrics = rt.metrics();
    if backend == Backend::IoUring {
        assert!(metrics.receive_streams > 0, "no receive stream ran");
        assert!(
            metrics.stream_reads > 0,
            "no read came from a receive stream"
        );
    } else {
        assert_eq!(metrics.receive_streams, 0, "{backend}: receive streams ran");
    }
}

/// Run `case` on a fresh connection (client, server) in a runtime on
/// every backend this host has, then check how the reads went
/// ([`check_streamed`]).
fn on_every_backend<F, Fut>(case: F)
where
    F: Fn(Backend, TcpStream, TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends() {
        let rt = runtime(backend);
        rt.block_on(async {
            let (client, server) = pair().await;
            case(backend, client, server).await;
        });
        check_streamed(backend, &rt);
    }
}

/// A connected pair: (client, server).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// `len` bytes of a pattern that shows a lost or repeated byte.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Read from `stream` until `want` bytes came, in reads of `chunk` bytes.
async fn read_exactly(stream: &TcpStream, want: usize, chunk: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(want);
    while got.len() < want {
        let BufResult(n, buf) = stream.read(vec![0u8; chunk]).await;
        let n = n.unwrap();
        assert!(n > 0, "end of stream after {} of {want} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn reads_dropped_while_they_wait_lose_nothing() {
    on_every_backend(|backend, client, server| async move {
        let data = pattern(64 * 1024);
        let mut got = Vec::new();
        for round in 0..40 {
            // Nothing is there yet: the read waits, then is dropped.
            let waited = timeout(Duration::from_millis(1), server.read(vec![0u8; 100])).await;
            assert!(waited.is_err(), "{backend}: a read found bytes never sent");
            let part = &data[round * 1638..(round + 1) * 1638];
            client.write_all(part.to_vec()).await.0.unwrap();
            got.extend(read_exactly(&server, part.len(), 1000).await);
        }
        assert_eq!(got, data[..40 * 1638], "{backend}: bytes lost or reordered");
    });
}

/// How one read of [`reads_keep_the_order`] goes.
enum Via {
    /// `TcpStream::read` (on io_uring: from the receive stream).
    Stream,
    /// `io::recv` of the raw fd.
    Recv,
    /// `io::read` of the raw fd.
    Read,
    /// `io::pread` of the raw fd at this offset (a stream ignores it).
    Pread(u64),
}

/// The client sends 200 KiB in paced pieces; the server reads them all,
/// each read as `via(round)` says, and gets them whole and in order.
async fn reads_keep_the_order(
    backend: Backend,
    client: TcpStream,
    server: TcpStream,
    via: impl Fn(u64) -> Via,
) {
    let data = pattern(200 * 1024);
    let writer = {
        let data = data.clone();
        spawn(async move {
            for piece in data.chunks(3000) {
                client.write_all(piece.to_vec()).await.0.unwrap();
                sleep(Duration::from_micros(50)).await;
            }
            client.shutdown(Shutdown::Write).await.unwrap();
            client
        })
    };
    let fd = server.as_raw_fd();
    let mut got = Vec::new();
    for round in 0u64.. {
        let BufResult(n, buf) = match via(round) {
            Via::Stream => server.read(vec![0u8; 1500]).await,
            Via::Recv => io::recv(fd, vec![0u8; 700]).await,
            Via::Read => io::read(fd, vec![0u8; 900]).await,
            Via::Pread(offset) => io::pread(fd, vec![0u8; 800], offset).await,
        };
        let n = n.unwrap_or_else(|e| panic!("{backend}: round {round}: {e}"));
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    drop(writer.await.unwrap());
    assert_same_bytes(&got, &data, &backend.to_string());
}

#[test]
fn plain_reads_of_the_raw_fd_between_stream_reads_keep_the_order() {
    on_every_backend(|backend, client, server| {
        reads_keep_the_order(backend, client, server, |round| match round % 3 {
            0 | 1 => Via::Stream,
            _ if round % 2 == 0 => Via::Recv,
            _ => Via::Read,
        })
    });
}

/// A read at an offset of a socket reads the stream (`io::pread`'s
/// docs): between stream reads, at offset 0 (which the kernel's ring runs
/// as a read of the socket) and at others (which it refuses with
/// `ESPIPE`, and the driver submits again without the offset), it takes
/// what the receive stream received first.
#[test]
fn reads_at_an_offset_between_stream_reads_keep_the_order() {
    on_every_backend(|backend, client, server| {
        reads_keep_the_order(backend, client, server, |round| match round % 4 {
            0 | 1 => Via::Stream,
            2 => Via::Pread(0),
            _ => Via::Pread(4096 * round),
        })
    });
}

/// Bytes a receive stream took in are there for a read at offset 0 of
/// the raw fd, which io_uring would otherwise run on the socket as a read
/// at its position, waiting for bytes that come later: while the stream
/// runs, and once the fd was given away (what it received then waits in
/// the fd's leftovers).
#[test]
fn a_read_at_offset_0_takes_what_was_received_first() {
    on_every_backend(|backend, client, server| async move {
        let data = pattern(6000);
        client.write_all(data[..3000].to_vec()).await.0.unwrap();
        let mut got = read_exactly(&server, 100, 100).await;
        // The rest arrives (on io_uring: into the receive stream's queue).
        sleep(Duration::from_millis(20)).await;
        let fd = server.as_raw_fd();
        got.extend(read_at_0(fd, 2900, &format!("{backend}, stream running")).await);
        client.write_all(data[3000..].to_vec()).await.0.unwrap();
        got.extend(read_exactly(&server, 100, 100).await);
        sleep(Duration::from_millis(20)).await;
        let fd = server.into_raw_fd();
        got.extend(read_at_0(fd, 2900, &format!("{backend}, fd given away")).await);
        io::close(fd).await.unwrap();
        assert_same_bytes(&got, &data, &backend.to_string());
    });
}

/// `want` bytes read at offset 0 of `fd`, each read failing the `case`
/// when it waits (the bytes were all sent before).
async fn read_at_0(fd: RawFd, want: usize, case: &str) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let read = timeout(Duration::from_secs(2), io::pread(fd, vec![0u8; want], 0)).await;
        let BufResult(n, buf) = read.unwrap_or_else(|_| {
            panic!(
                "{case}: a read at offset 0 waited, {} bytes short",
                want - got.len()
            )
        });
        let n = n.unwrap();
        assert!(n > 0, "{case}: end of stream");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn into_raw_fd_keeps_what_the_stream_received() {
    on_every_backend(|backend, client, server| async move {
        let data = pattern(50_000);
        client.write_all(data[..10].to_vec()).await.0.unwrap();
        assert_eq!(read_exactly(&server, 10, 10).await, data[..10]);
        // More arrives while the read-ahead runs, then the fd is
        // given away.
        client.write_all(data[10..30_000].to_vec()).await.0.unwrap();
        sleep(Duration::from_millis(20)).await;
        let fd = server.into_raw_fd();
        client.write_all(data[30_000..].to_vec()).await.0.unwrap();
        client.shutdown(Shutdown::Write).await.unwrap();
        let mut got = data[..10].to_vec();
        loop {
            let BufResult(n, buf) = io::recv(fd, vec![0u8; 4096]).await;
            let n = n.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        io::close(fd).await.unwrap();
        assert_eq!(got, data, "{backend}: bytes lost or reordered");
    });
}

/// A socket given away with bytes kept (`into_raw_fd`) and then closed
/// behind iokernel's back, as the library it went to would, leaves
/// nothing for the next socket that gets its fd number: that socket's
/// reads get its own bytes only.
#[test]
fn bytes_kept_for_a_socket_closed_elsewhere_never_reach_the_next_socket_on_its_fd() {
    on_every_backend(|backend, client, server| async move {
        client
            .write_all(b"first connection".to_vec())
            .await
            .0
            .unwrap();
        assert_eq!(read_exactly(&server, 5, 5).await, b"first");
        sleep(Duration::from_millis(20)).await;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        // More for the stream to take just before the fd goes.
        client
            .write_all(b" and late bytes".to_vec())
            .await
            .0
            .unwrap();
        let fd = server.into_raw_fd();
        RealKernel.close(fd).unwrap();
        // The lowest free number goes to the next socket: the client's.
        let next = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        assert_eq!(
            next.as_raw_fd(),
            fd,
            "{backend}: the fd number was not reused"
        );
        peer.write_all(b"second".to_vec()).await.0.unwrap();
        let got = read_exactly(&next, 6, 64).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            "second",
            "{backend}: the new socket read another's bytes"
        );
        drop(client);
    });
}

/// What a reader outside iokernel gets from `fd` until end of stream:
/// `kernel`'s `recv` called straight, pausing `pause` on `EAGAIN`. Other
/// errors fail, unless `faults` (injected faults take nothing).
async fn read_outside(kernel: &dyn Kernel, fd: RawFd, pause: Duration, faults: bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match kernel.recv(fd, &mut buf, MsgFlags::NONE) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) => sleep(pause).await,
            Err(_) if faults => {}
            Err(errno) => panic!("recv of fd {fd} outside iokernel: {errno}"),
        }
    }
}

/// What a reader ends with when a socket is given away: `before` (read
/// through iokernel), the parts' bytes, then what a reader outside
/// iokernel gets from the fd until the peer's end (the fd is closed after).
async fn after_give_away(backend: Backend, before: Vec<u8>, parts: RawParts) -> Vec<u8> {
    assert!(parts.error.is_none(), "{backend}: {:?}", parts.error);
    let mut got = before;
    got.extend_from_slice(&parts.received);
    got.extend(read_outside(&RealKernel, parts.fd, Duration::from_millis(1), false).await);
    RealKernel.close(parts.fd).unwrap();
    got
}

/// `into_raw_parts` gives a reader outside iokernel (here the kernel's
/// `recv`, called straight) every byte, in order: what the receive stream
/// took ahead, including what arrived while it stopped, then the socket's.
#[test]
fn into_raw_parts_gives_a_reader_outside_iokernel_every_byte() {
    on_every_backend(|backend, client, server| async move {
        let data = pattern(300_000);
        client.write_all(data[..10].to_vec()).await.0.unwrap();
        assert_eq!(read_exactly(&server, 10, 10).await, data[..10]);
        let rest = data[10..].to_vec();
        // The peer goes on sending, in small pieces, while the socket is
        // given away.
        let writer = spawn(async move {
            for piece in rest.chunks(100) {
                client.write_all(piece.to_vec()).await.0.unwrap();
            }
            client.shutdown(Shutdown::Write).await.unwrap();
            client
        });
        sleep(Duration::from_millis(2)).await;
        let parts = server.into_raw_parts().await;
        let got = after_give_away(backend, data[..10].to_vec(), parts).await;
        drop(writer.await.unwrap());
        assert_same_bytes(&got, &data, &backend.to_string());
    });
}

/// Plain reads of the raw fd (`io::recv`) on another thread than the one
/// whose ring runs the connection's receive stream, while the peer sends:
/// the first read stops the stream, whose last bytes reach that ring
/// later; the reads wait for them, and get every byte in order.
#[test]
fn plain_reads_on_another_thread_wait_for_the_stream_to_end() {
    for backend in backends() {
        let (first, second) = (runtime(backend), runtime(backend));
        // Rounds: each is a race the reads lose now and then without the
        // wait (on io_uring 2 of 6 single rounds misordered, and 5 of 5
        // runs of four).
        for round in 0..4 {
            check_plain_reads_on_another_thread(backend, &first, &second, round);
        }
        check_streamed(backend, &first);
    }
}

/// One round of [`plain_reads_on_another_thread_wait_for_the_stream_to_end`].
fn check_plain_reads_on_another_thread(
    backend: Backend,
    first: &Runtime,
    second: &Runtime,
    round: usize,
) {
    let data = pattern(300_000 + round);
    let (handing, handed) = std::sync::mpsc::channel();
    let (mut got, server, read) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let fd: RawFd = handed.recv().unwrap();
            second.block_on(async move {
                let mut got = Vec::new();
                loop {
                    let BufResult(n, buf) = io::recv(fd, vec![0u8; 1000]).await;
                    match n.unwrap() {
                        0 => return got,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
            })
        });
        let (got, server) = first.block_on(async {
            let (client, server) = pair().await;
            client.write_all(data[..10].to_vec()).await.0.unwrap();
            let got = read_exactly(&server, 10, 10).await;
            handing.send(server.as_raw_fd()).unwrap();
            // This loop runs the stream on (and takes its stop) while
            // the peer sends.
            for piece in data[10..].chunks(100) {
                client.write_all(piece.to_vec()).await.0.unwrap();
            }
            client.shutdown(Shutdown::Write).await.unwrap();
            sleep(Duration::from_millis(20)).await;
            (got, server)
        });
        (got, server, reader.join().unwrap())
    });
    drop(server);
    got.extend_from_slice(&read);
    assert_same_bytes(&got, &data, &format!("{backend}, round {round}"));
}

/// A plain read of the fd (`io::recv`) that reached the kernel on one
/// thread's loop, the peer's bytes arriving meanwhile, then dropped on
/// another thread, which gives the socket away at once: whatever the
/// kernel gave the dropped read (the first loop hears of the drop only
/// later) comes with the parts, before what the reader outside iokernel
/// gets.
#[test]
fn into_raw_parts_waits_for_a_read_dropped_while_the_kernel_had_it() {
    for backend in backends() {
        let (first, second) = (runtime(backend), runtime(backend));
        for round in 0..5 {
            let data = pattern(5000 + round);
            let (handing, handed) = std::sync::mpsc::channel();
            let (got, parts) = std::thread::scope(|scope| {
                let second = &second;
                let taker = scope.spawn(move || {
                    let (server, read): (TcpStream, Pin<Box<RecvOp>>) = handed.recv().unwrap();
                    // The bytes reach the dropped read's socket first.
                    std::thread::sleep(Duration::from_millis(5));
                    drop(read);
                    second.block_on(server.into_raw_parts())
                });
                let got = first.block_on(async {
                    let (client, server) = pair().await;
                    client.write_all(data[..10].to_vec()).await.0.unwrap();
                    let got = read_exactly(&server, 10, 10).await;
                    let mut read: Pin<Box<RecvOp>> =
                        Box::pin(io::recv(server.as_raw_fd(), vec![0u8; 8192]));
                    // Polled twice with a park between: the first poll
                    // stops the receive stream, and the read waits for its
                    // end; the second starts it. The next park sends it to
                    // the kernel.
                    for _ in 0..2 {
                        let polled =
                            std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
                        assert!(polled.is_pending(), "{backend}: the read found bytes");
                        sleep(Duration::from_millis(1)).await;
                    }
                    handing.send((server, read)).unwrap();
                    client.write_all(data[10..].to_vec()).await.0.unwrap();
                    client.shutdown(Shutdown::Write).await.unwrap();
                    // This loop runs on (hearing of the drop) for a while.
                    sleep(Duration::from_millis(20)).await;
                    got
                });
                (got, taker.join().unwrap())
            });
            let got = second.block_on(after_give_away(backend, got, parts));
            assert_same_bytes(&got, &data, &format!("{backend}, round {round}"));
        }
        check_streamed(backend, &first);
    }
}

/// A plain read of a socket, as `io::recv` makes it.
type RecvOp = iokernel::io::Op<iokernel::op::net::Recv<Vec<u8>>>;

/// The same, given away on another thread than the one whose ring runs
/// the receive stream: the stop reaches that ring later, and bytes it
/// takes meanwhile still come with the parts.
#[test]
fn into_raw_parts_on_another_thread_waits_for_the_stream_to_end() {
    for backend in backends() {
        let (first, second) = (runtime(backend), runtime(backend));
        let data = pattern(300_000);
        let (handing, handed) = std::sync::mpsc::channel();
        let (got, parts) = std::thread::scope(|scope| {
            let second = &second;
            let taker = scope.spawn(move || {
                let server: TcpStream = handed.recv().unwrap();
                second.block_on(server.into_raw_parts())
            });
            let got = first.block_on(async {
                let (client, server) = pair().await;
                client.write_all(data[..10].to_vec()).await.0.unwrap();
                let got = read_exactly(&server, 10, 10).await;
                handing.send(server).unwrap();
                // This loop runs on (taking the stop) while the peer sends.
                for piece in data[10..].chunks(100) {
                    client.write_all(piece.to_vec()).await.0.unwrap();
                }
                client.shutdown(Shutdown::Write).await.unwrap();
                sleep(Duration::from_millis(20)).await;
                got
            });
            (got, taker.join().unwrap())
        });
        let got = second.block_on(after_give_away(backend, got, parts));
        assert_same_bytes(&got, &data, &backend.to_string());
        check_streamed(backend, &first);
    }
}

/// Given away after the runtime whose ring ran the receive stream is
/// gone (its loop stopped the stream when it left), on another runtime:
/// nothing waits for a ring that no longer runs, and no byte is lost.
#[test]
fn into_raw_parts_after_the_streams_runtime_is_gone() {
    for backend in backends() {
        let first = runtime(backend);
        let data = pattern(50_000);
        let (client, server) = first.block_on(async {
            let (client, server) = pair().await;
            client.write_all(data[..10].to_vec()).await.0.unwrap();
            let _ = read_exactly(&server, 10, 10).await;
            client.write_all(data[10..].to_vec()).await.0.unwrap();
            client.shutdown(Shutdown::Write).await.unwrap();
            sleep(Duration::from_millis(5)).await;
            (client, server)
        });
        check_streamed(backend, &first);
        drop(first);
        let got = runtime(backend).block_on(async move {
            let parts = timeout(Duration::from_secs(5), server.into_raw_parts())
                .await
                .unwrap_or_else(|_| panic!("{backend}: the give-away waited"));
            let got = after_give_away(backend, data[..10].to_vec(), parts).await;
            drop(client);
            got
        });
        assert_same_bytes(&got, &pattern(50_000), &backend.to_string());
    }
}

#[test]
fn closing_a_connection_being_read_ahead_releases_it() {
    on_every_backend(|backend, client, server| async move {
        client.write_all(b"ping".to_vec()).await.0.unwrap();
        assert_eq!(read_exactly(&server, 4, 16).await, b"ping");
        // The read-ahead is waiting for more when the stream drops.
        drop(server);
        let BufResult(n, _) = timeout(Duration::from_secs(5), client.read(vec![0u8; 8]))
            .await
            .unwrap_or_else(|_| panic!("{backend}: the peer never saw the close"));
        assert_eq!(n.unwrap(), 0, "{backend}: no end of stream after the close");
    });
}

#[test]
fn a_reader_far_behind_its_peer_loses_nothing() {
    on_every_backend(|backend, client, server| async move {
        // Far more than a receive stream's queue holds before it stops.
        let data = pattern(3 << 20);
        let writer = {
            let data = data.clone();
            spawn(async move {
                client.write_all(data).await.0.unwrap();
                client.shutdown(Shutdown::Write).await.unwrap();
                client
            })
        };
        let mut got = read_exactly(&server, 1, 1).await;
        sleep(Duration::from_millis(100)).await;
        got.extend(read_exactly(&server, data.len() - 1, 64 * 1024).await);
        let BufResult(n, _) = server.read(vec![0u8; 8]).await;
        assert_eq!(n.unwrap(), 0, "{backend}: no end of stream after the bytes");
        let BufResult(n, _) = server.read(vec![0u8; 8]).await;
        assert_eq!(n.unwrap(), 0, "{backend}: end of stream is not sticky");
        drop(writer.await.unwrap());
        assert_eq!(got, data, "{backend}: bytes lost or reordered");
    });
}

#[test]
fn a_connection_moved_to_another_runtime_keeps_its_order() {
    for backend in backends() {
        let first = runtime(backend);
        let second = runtime(backend);
        let data = pattern(100_000);
        let (client, server, got) = first.block_on(async {
            let (client, server) = pair().await;
            client.write_all(data[..1000].to_vec()).await.0.unwrap();
            let got = read_exactly(&server, 1000, 100).await;
            (client, server, got)
        });
        // The first runtime's loop left: its read-ahead stopped, and what
        // it still got waits for the next read, on another runtime.
        let got = second.block_on(async move {
            let writer = {
                let data = data.clone();
                spawn(async move {
                    for piece in data[1000..].chunks(7000) {
                        client.write_all(piece.to_vec()).await.0.unwrap();
                    }
                    client
                })
            };
            let mut got = got;
            got.extend(read_exactly(&server, data.len() - 1000, 5000).await);
            drop(writer.await.unwrap());
            assert_eq!(got, data, "{backend}: bytes lost or reordered");
            got
        });
        assert_eq!(got.len(), 100_000);
        check_streamed(backend, &first);
    }
}

/// Options of a simulated run with the ring, faults, reordering and a
/// small, busy ring.
fn sim_options(seed: u64) -> SimOptions {
    on_a_busy_sim_ring(
        SimOptions::with_faults(seed, 0.02),
        Duration::from_micros(10),
    )
}

const SIM_ADDRESS: &str = "127.0.0.1:4100";

/// A listener on the simulated host at `address` (set-up calls that
/// fail with injected faults are tried again, here and in [`sim_pair`]).
fn sim_listener(address: &str) -> TcpListener {
    loop {
        if let Ok(listener) = TcpListener::bind(address) {
            return listener;
        }
    }
}

/// A connection to `listener`: (client, server).
async fn sim_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let address = listener.local_addr().unwrap();
    let client = loop {
        if let Ok(client) = TcpStream::connect(address).await {
            break client;
        }
    };
    loop {
        if let Ok((server, _)) = listener.accept().await {
            return (client, server);
        }
    }
}

/// On the simulated host: `client` sends `data` in pieces of random sizes
/// at random pauses (drawn from `seed`), then shuts its write side down;
/// what an injected fault failed is sent again.
fn spawn_sim_writer(client: TcpStream, data: Vec<u8>, seed: u64) -> JoinHandle<TcpStream> {
    spawn(async move {
        let mut at = 0;
        let mut step = seed;
        while at < data.len() {
            step = step.wrapping_mul(6364136223846793005).wrapping_add(1);
            let len = 1 + (step >> 40) as usize % 5000;
            let end = (at + len).min(data.len());
            let BufResult(sent, _) = client.write(data[at..end].to_vec()).await;
            match sent {
                Ok(n) => at += n,
                // An injected fault: nothing was sent.
                Err(e) if e.raw_os_error() != Some(libc::EAGAIN) => {}
                Err(e) => panic!("seed {seed}: EAGAIN reached a send: {e}"),
            }
            sleep(Duration::from_micros(step >> 58)).await;
        }
        // Injected faults may fail a shutdown too.
        while client.shutdown(Shutdown::Write).await.is_err() {}
        client
    })
}

/// One seed: a peer streams scripted bytes; the reader mixes stream reads
/// of random sizes, reads dropped at random deadlines and plain reads of
/// the raw fd. Returns the receive streams' chunks and ends seen.
fn check_sim_seed(seed: u64) -> (u64, u64) {
    let kernel = sim::new_kernel(sim_options(seed)).unwrap();
    let data = pattern(40_000 + (seed as usize % 7) * 3000);
    let expected = data.clone();
    let got = sim::run(&kernel, async move {
        let listener = sim_listener(SIM_ADDRESS);
        let (client, server) = sim_pair(&listener).await;
        let writer = spawn_sim_writer(client, data, seed);
        let fd = server.as_raw_fd();
        let mut got = Vec::new();
        let mut step = seed ^ 0x5EED;
        loop {
            step = step.wrapping_mul(6364136223846793005).wrapping_add(1);
            let len = 1 + (step >> 50) as usize % 3000;
            let read = match step >> 61 {
                0 => io::recv(fd, vec![0u8; len]).await,
                // At an offset, 0 now and then (the stream's bytes first),
                // some given up while they wait.
                2 => {
                    let read = io::pread(fd, vec![0u8; len], (step >> 20) % 3 * 4096);
                    match timeout(Duration::from_micros(step >> 57), read).await {
                        Ok(read) => read,
                        Err(_) => continue,
                    }
                }
                1 => {
                    let deadline = Duration::from_micros(step >> 59);
                    match timeout(deadline, server.read(vec![0u8; len])).await {
                        Ok(read) => read,
                        Err(_) => continue,
                    }
                }
                _ => server.read(vec![0u8; len]).await,
            };
            let BufResult(n, buf) = read;
            match n {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // Injected faults of a read: nothing was taken.
                Err(e) if e.raw_os_error() != Some(libc::EAGAIN) => {}
                Err(e) => panic!("seed {seed}: EAGAIN reached a read: {e}"),
            }
        }
        drop(writer.await.unwrap());
        got
    })
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(got.len(), expected.len(), "seed {seed}: bytes lost");
    assert_same_bytes(&got, &expected, &format!("seed {seed}"));
    let stats = kernel.core().stats();
    (stats.ring_stream_chunks, stats.ring_stream_ends)
}

#[test]
fn receive_streams_on_the_sim_ring_lose_nothing_under_faults() {
    let (mut chunks, mut ends) = (0, 0);
    for seed in 0..200 {
        let (c, e) = check_sim_seed(seed);
        chunks += c;
        ends += e;
    }
    eprintln!("receive streams: {chunks} chunks, {ends} ends");
    assert!(chunks > 0, "no receive stream ran on the simulated ring");
    assert!(ends > 0, "no receive stream ever ended");
}

/// The connection made after a socket was given away.
enum Next {
    Tcp((TcpStream, TcpStream)),
    Unix((UnixStream, UnixStream)),
}

impl Next {
    fn fds(&self) -> [RawFd; 2] {
        match self {
            Next::Tcp((a, b)) => [a.as_raw_fd(), b.as_raw_fd()],
            Next::Unix((a, b)) => [a.as_raw_fd(), b.as_raw_fd()],
        }
    }
}

/// One seed: a connection's reader takes part of what its peer sends
/// through the receive stream, gives the fd away while more arrives and
/// closes it behind iokernel's back; the next connection's socket that
/// gets the number reads exactly what its own peer sends, through its
/// stream and its raw fd. Returns whether the number was reused.
fn check_given_away_sim_seed(seed: u64) -> bool {
    let kernel = sim::new_kernel(sim_options(seed)).unwrap();
    let closer = Arc::clone(&kernel);
    let first = pattern(20_000);
    let second: Vec<u8> = pattern(30_000).iter().map(|b| b ^ 0xA5).collect();
    let expected = second.clone();
    let (got, reused) = sim::run(&kernel, async move {
        let listener = sim_listener(SIM_ADDRESS);
        let (client, server) = sim_pair(&listener).await;
        let first_writer = spawn(async move {
            for piece in first.chunks(1 + seed as usize % 3000) {
                // The reader goes away: sends may fail, some with faults.
                let _ = client.write(piece.to_vec()).await;
                if seed % 2 == 0 {
                    sleep(Duration::from_micros(seed % 13)).await;
                }
            }
            client
        });
        let mut step = seed ^ 0x61FE;
        let mut taken = 0;
        while taken < 1 + seed as usize % 8000 {
            step = step.wrapping_mul(6364136223846793005).wrapping_add(1);
            let BufResult(n, _) = server.read(vec![0u8; 1 + (step >> 52) as usize]).await;
            match n {
                Ok(0) => break,
                Ok(n) => taken += n,
                Err(_) => {}
            }
        }
        if seed % 3 == 0 {
            sleep(Duration::from_micros(step >> 58)).await;
        }
        let fd = server.into_raw_fd();
        let _ = closer.close(fd);
        // The next connection: a Unix pair made at once (while the old
        // stream may still deliver), or a TCP one.
        let next = match seed % 2 {
            0 => Next::Unix(loop {
                if let Ok(pair) = UnixStream::pair() {
                    break pair;
                }
            }),
            _ => Next::Tcp(sim_pair(&listener).await),
        };
        let fds = next.fds();
        let reused = fds.contains(&fd);
        let (reader, peer) = match fds[1] == fd {
            true => (fds[1], fds[0]),
            false => (fds[0], fds[1]),
        };
        let second_writer = spawn(async move {
            let mut at = 0;
            while at < second.len() {
                let end = (at + 1 + seed as usize % 5000).min(second.len());
                if let Ok(n) = io::send(peer, second[at..end].to_vec()).await.0 {
                    at += n;
                }
            }
            while io::shutdown(peer, Shutdown::Write).await.is_err() {}
        });
        let mut got = Vec::new();
        loop {
            step = step.wrapping_mul(6364136223846793005).wrapping_add(1);
            let buf = vec![0u8; 1 + (step >> 52) as usize];
            let BufResult(n, buf) = match (&next, step >> 63) {
                (Next::Tcp((client, server)), 0) if reader == server.as_raw_fd() => {
                    server.read(buf).await
                }
                (Next::Tcp((client, _)), 0) => client.read(buf).await,
                _ => io::recv(reader, buf).await,
            };
            match n {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // Injected faults of a read: nothing was taken.
                Err(_) => {}
            }
        }
        second_writer.await.unwrap();
        drop(next);
        drop(first_writer.await.unwrap());
        (got, reused)
    })
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_same_bytes(&got, &expected, &format!("seed {seed}"));
    reused
}

#[test]
fn sockets_given_away_and_closed_elsewhere_leave_nothing_on_the_sim_ring_under_faults() {
    // Seed 180 once read another socket's bytes: fstat, injected to fail,
    // could not tell the new socket from the old one.
    let reused = (0..200)
        .filter(|&seed| check_given_away_sim_seed(seed))
        .count();
    assert!(
        reused >= 100,
        "the fd number came back in {reused} seeds of 200"
    );
}

/// One seed: the reader takes part of what its peer sends through the
/// receive stream and plain reads of its fd (given up at random deadlines
/// too), then gives the socket away whole while the peer goes on sending;
/// a reader outside iokernel (the simulated kernel's `recv`, called
/// straight) gets the rest after the parts' bytes, nothing lost or
/// reordered.
fn check_raw_parts_sim_seed(seed: u64) {
    let kernel = sim::new_kernel(sim_options(seed)).unwrap();
    let outside = Arc::clone(&kernel);
    let data = pattern(30_000 + (seed as usize % 5) * 4000);
    let expected = data.clone();
    let got = sim::run(&kernel, async move {
        let listener = sim_listener(SIM_ADDRESS);
        let (client, server) = sim_pair(&listener).await;
        let writer = spawn_sim_writer(client, data, seed);
        let mut got = Vec::new();
        let mut step = seed ^ 0x9A27;
        while got.len() < 1 + seed as usize % 10_000 {
            step = step.wrapping_mul(6364136223846793005).wrapping_add(1);
            let (len, deadline) = (1 + (step >> 52) as usize, Duration::from_micros(step >> 58));
            // Plain reads of the raw fd now and then: what the stream had
            // goes to the fd's leftovers, where a dropped one leaves it.
            let read = match step % 3 {
                0 => timeout(deadline, io::recv(server.as_raw_fd(), vec![0u8; len])).await,
                _ => timeout(deadline, server.read(vec![0u8; len])).await,
            };
            let Ok(BufResult(n, buf)) = read else {
                continue;
            };
            match n {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // Injected faults of a read: nothing was taken.
                Err(_) => {}
            }
        }
        // The stream receives ahead meanwhile; on odd seeds a short plain
        // read then leaves most of it in the fd's leftovers.
        sleep(Duration::from_micros(step >> 56)).await;
        if seed % 2 == 1 {
            let BufResult(n, buf) = io::recv(server.as_raw_fd(), vec![0u8; 16]).await;
            if let Ok(n) = n {
                got.extend_from_slice(&buf[..n]);
            }
        }
        // On every third seed a plain read given up at once before the
        // give-away: the simulated ring may still run it and take bytes,
        // which the parts must carry.
        if seed % 3 == 2 {
            let read = io::recv(server.as_raw_fd(), vec![0u8; 4000]);
            if let Ok(BufResult(Ok(n), buf)) =
                timeout(Duration::from_micros(step >> 60), read).await
            {
                got.extend_from_slice(&buf[..n]);
            }
        }
        // (`parts.error` may be an injected fault that ended the stream.)
        let parts = server.into_raw_parts().await;
        got.extend_from_slice(&parts.received);
        let pause = Duration::from_micros(20);
        got.extend(read_outside(&*outside, parts.fd, pause, true).await);
        drop(writer.await.unwrap());
        let _ = outside.close(parts.fd);
        got
    })
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_same_bytes(&got, &expected, &format!("seed {seed}"));
}

#[test]
fn sockets_given_away_whole_lose_nothing_on_the_sim_ring_under_faults() {
    for seed in 0..150 {
        check_raw_parts_sim_seed(seed);
    }
}

/// Ping-pong `rounds` messages of `size` bytes over a fresh connection
/// on `rt`; the server's reads.
fn ping_pong(rt: &Runtime, rounds: usize, size: usize) -> usize {
    rt.block_on(async {
        let (client, server) = pair().await;
        let mut reads = 0;
        for round in 0..rounds {
            let message = vec![round as u8; size];
            client.write_all(message.clone()).await.0.unwrap();
            let mut got = Vec::new();
            while got.len() < size {
                let BufResult(n, buf) = server.read(vec![0u8; size]).await;
                got.extend_from_slice(&buf[..n.unwrap()]);
                reads += 1;
            }
            assert_eq!(got, message);
        }
        reads
    })
}

/// Small messages are read from the receive stream; big ones (each would
/// cost the stream a copy more than a plain recv) stop it, and most of
/// their reads are plain.
#[test]
fn receive_streams_serve_small_messages_and_step_aside_for_big_ones() {
    if iokernel::runtime::backend_availability(Backend::IoUring).is_err() {
        eprintln!("skipping: no io_uring here");
        return;
    }
    let rt = runtime(Backend::IoUring);
    let reads = ping_pong(&rt, 300, 64);
    let small = rt.metrics();
    assert!(
        small.stream_reads * 10 >= reads as u64 * 9,
        "{} of {reads} small reads from the stream",
        small.stream_reads
    );
    let rt = runtime(Backend::IoUring);
    let reads = ping_pong(&rt, 300, 8192);
    let big = rt.metrics();
    assert!(big.receive_streams > 0, "no stream tried the big messages");
    assert!(
        big.stream_reads * 4 <= reads as u64,
        "{} of {reads} big reads from the stream",
        big.stream_reads
    );
}
