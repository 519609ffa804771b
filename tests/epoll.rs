//! The epoll readiness backend under load and cancellation: many concurrent
//! loopback connections across workers, and a recv abandoned by `timeout`
//! that must not disturb a later recv on the same socket.

use iokernel::buf::BufResult;
use iokernel::io;
use iokernel::net::{TcpListener, TcpStream};
use iokernel::runtime::{backend_availability, spawn, spawn_local, timeout, Backend, Runtime};
use std::net::SocketAddr;
use std::time::Duration;

const CONNECTIONS: usize = 200;
const MESSAGES: usize = 10;
const MESSAGE_BYTES: usize = 16;

/// An epoll runtime, or `None` (with the reason printed) where epoll is
/// unavailable.
fn epoll_runtime(compute_threads: usize) -> Option<Runtime> {
    if let Err(reason) = backend_availability(Backend::Epoll) {
        eprintln!("skipping: epoll is unavailable: {reason}");
        return None;
    }
    let rt = Runtime::builder()
        .name("epoll-test")
        .compute_threads(compute_threads)
        .io_threads(2)
        .backend(Backend::Epoll)
        .build()
        .expect("epoll runtime builds");
    assert_eq!(rt.backend_report().selected, Backend::Epoll);
    Some(rt)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("loopback address")
}

/// Read exactly `len` bytes (or fail on end of stream).
async fn read_exact(stream: &TcpStream, len: usize) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        let BufResult(n, buf) = stream.read(vec![0u8; len - got.len()]).await;
        let n = n?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(got)
}

fn message(connection: usize, round: usize) -> Vec<u8> {
    format!("c{connection:04}-r{round:02}-xxxxxx").into_bytes()[..MESSAGE_BYTES].to_vec()
}

/// Echo `MESSAGES` messages back on one accepted connection.
async fn echo(stream: TcpStream) -> std::io::Result<()> {
    for _ in 0..MESSAGES {
        let data = read_exact(&stream, MESSAGE_BYTES).await?;
        stream.write_all(data).await.0?;
    }
    Ok(())
}

#[test]
fn two_hundred_concurrent_echo_connections_all_complete() {
    let Some(rt) = epoll_runtime(2) else { return };
    let echoed = rt.block_on(async {
        let listener = TcpListener::bind(loopback())?;
        let addr = listener.local_addr()?;
        let server = spawn(async move {
            let mut echoes = Vec::with_capacity(CONNECTIONS);
            for _ in 0..CONNECTIONS {
                let (stream, _) = listener.accept().await?;
                echoes.push(spawn(echo(stream)));
            }
            for handle in echoes {
                handle.await.map_err(std::io::Error::other)??;
            }
            Ok::<_, std::io::Error>(())
        });
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|connection| {
                spawn(async move {
                    let stream = TcpStream::connect(addr).await?;
                    for round in 0..MESSAGES {
                        let sent = message(connection, round);
                        stream.write_all(sent.clone()).await.0?;
                        let back = read_exact(&stream, MESSAGE_BYTES).await?;
                        assert_eq!(back, sent, "connection {connection} round {round}");
                    }
                    Ok::<_, std::io::Error>(MESSAGES)
                })
            })
            .collect();
        let mut echoed = 0;
        for client in clients {
            echoed += client.await.map_err(std::io::Error::other)??;
        }
        server.await.map_err(std::io::Error::other)??;
        Ok::<_, std::io::Error>(echoed)
    });
    assert_eq!(
        echoed.expect("every connection echoes"),
        CONNECTIONS * MESSAGES
    );
}

#[test]
fn a_recv_dropped_by_timeout_does_not_disturb_a_later_recv() {
    let Some(rt) = epoll_runtime(2) else { return };
    rt.block_on(async {
        let listener = TcpListener::bind(loopback())?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        let fd = server.as_raw_fd();

        // Nothing to read: the recv waits on epoll until the timeout drops it.
        let early = timeout(Duration::from_millis(50), io::recv(fd, vec![0u8; 8])).await;
        assert!(early.is_err(), "the first recv times out");

        // A later recv on the same socket sees the data sent after it waits.
        let later = spawn(async move {
            let BufResult(n, buf) = io::recv(fd, vec![0u8; 8]).await;
            n.map(|n| buf[..n].to_vec())
        });
        iokernel::runtime::sleep(Duration::from_millis(20)).await;
        client.write_all(b"late".to_vec()).await.0?;
        let got = timeout(Duration::from_secs(10), later)
            .await
            .map_err(std::io::Error::from)?
            .map_err(std::io::Error::other)??;
        assert_eq!(got, b"late", "the later recv gets the data");

        // And once more in turns, with a second abandoned recv in between.
        let again = timeout(Duration::from_millis(20), io::recv(fd, vec![0u8; 8])).await;
        assert!(again.is_err(), "nothing more to read yet");
        client.write_all(b"again".to_vec()).await.0?;
        let BufResult(n, buf) = io::recv(fd, vec![0u8; 8]).await;
        assert_eq!(&buf[..n?], b"again");
        drop(server);
        Ok::<_, std::io::Error>(())
    })
    .expect("recv after an abandoned recv");
}

#[test]
fn a_reader_and_a_writer_wait_on_one_socket_and_each_is_woken() {
    let Some(rt) = epoll_runtime(1) else { return };
    rt.block_on(async {
        let listener = TcpListener::bind(loopback())?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        let fd = server.as_raw_fd();

        // Fill the send path until a send has to wait for room.
        let mut queued = 0usize;
        loop {
            let chunk = vec![7u8; 1 << 16];
            match timeout(Duration::from_millis(50), io::send(fd, chunk)).await {
                Ok(BufResult(n, _)) => queued += n?,
                Err(_) => break,
            }
        }
        assert!(queued > 0, "some data was queued before the socket filled");

        // Both wait on the same fd, on this worker: one readable, one writable.
        let reader = spawn_local(async move {
            let BufResult(n, buf) = io::recv(fd, vec![0u8; 8]).await;
            n.map(|n| buf[..n].to_vec())
        });
        let writer = spawn_local(async move { io::send(fd, vec![9u8; 1 << 16]).await.0 });
        iokernel::runtime::sleep(Duration::from_millis(20)).await;

        // Readability wakes the reader; the writer keeps waiting.
        client.write_all(b"hi".to_vec()).await.0?;
        let got = timeout(Duration::from_secs(10), reader)
            .await
            .map_err(std::io::Error::from)?
            .map_err(std::io::Error::other)??;
        assert_eq!(got, b"hi");

        // Draining the peer makes room: the writer is woken too.
        let mut drained = 0usize;
        loop {
            let read = timeout(Duration::from_millis(200), client.read(vec![0u8; 1 << 16])).await;
            match read {
                Ok(BufResult(n, _)) if *n.as_ref().unwrap_or(&0) > 0 => drained += 1,
                Ok(BufResult(n, _)) => {
                    n?;
                    break;
                }
                Err(_) => break,
            }
        }
        assert!(drained > 0, "the peer read the queued data");
        let sent = timeout(Duration::from_secs(10), writer)
            .await
            .map_err(std::io::Error::from)?
            .map_err(std::io::Error::other)??;
        assert!(sent > 0, "the writer sent once there was room");
        Ok::<_, std::io::Error>(())
    })
    .expect("reader and writer on one socket");
}
