//! From inside tokio: the same bodies with their ops spawned on an
//! iokernel runtime per backend (`Compat::with_handle`), and proof that a
//! pending iokernel read never holds a tokio worker.

use crate::bodies::{self, How};
use crate::runtime_on;
use iokernel::io::compat::Compat;
use iokernel::net::TcpListener;
use iokernel::runtime::{backend_availability, Backend};
use iokernel::sys::real::thread::spawn_named;
use std::future::Future;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Run `body` inside a two-worker tokio runtime with its adapters' ops on
/// an iokernel runtime, once per available backend.
fn from_tokio<F, Fut>(body: F)
where
    F: Fn(PathBuf, How) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let io_rt = runtime_on(backend);
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("scratch directory");
        eprintln!("running from tokio, ops on {backend}");
        let future = body(dir.path().to_path_buf(), How::On(io_rt.handle()));
        tokio_rt
            .block_on(tokio_rt.spawn(future))
            .expect("the tokio task")
            .unwrap_or_else(|e| panic!("from tokio, ops on {backend}: {e}"));
    }
}

#[test]
fn tokio_file_bodies_from_tokio() {
    from_tokio(bodies::via_tokio::file_write_seek_read_and_lines);
    from_tokio(bodies::via_tokio::lines_across_buffers);
    from_tokio(bodies::via_tokio::into_inner_returns_the_read_ahead);
    from_tokio(bodies::via_tokio::copy_between_adapters);
    from_tokio(bodies::via_tokio::reads_and_writes_share_the_file_position);
}

#[test]
fn futures_file_bodies_from_tokio() {
    from_tokio(bodies::via_futures::file_write_seek_read_and_lines);
    from_tokio(bodies::via_futures::errors_name_the_op_and_the_object);
}

#[test]
fn stream_bodies_from_tokio() {
    from_tokio(bodies::via_tokio::tcp_echo_both_ways);
    from_tokio(bodies::via_tokio::a_dropped_writer_loses_no_accepted_byte);
}

/// On a one-thread tokio runtime, task A waits in an adapter read for
/// bytes that only task B (on the same thread) sends, through a tokio
/// socket, after a tokio sleep. If the read blocked the thread, B would
/// never run: a watchdog fails the test after 20 s instead of hanging.
#[test]
fn a_pending_iokernel_read_never_blocks_a_tokio_worker() {
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let (tx, rx) = mpsc::channel();
        let thread = spawn_named(format!("tokio-{backend}"), move || {
            let io_rt = runtime_on(backend);
            let handle = io_rt.handle();
            let tokio_rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let got = tokio_rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                let sender = tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let mut socket = tokio::net::TcpStream::connect(addr).await?;
                    socket.write_all(b"sent by tokio").await?;
                    Ok::<_, std::io::Error>(socket)
                });
                let accepted = handle.spawn(async move { listener.accept().await });
                let (server, _) = accepted.await??;
                let mut server = Compat::with_handle(server, &handle);
                let mut got = [0u8; 13];
                server.read_exact(&mut got).await?;
                drop(sender.await??);
                Ok::<_, std::io::Error>(got)
            });
            let _ = tx.send(got);
        })
        .expect("thread starts");
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("on {backend}: the tokio thread is stuck (blocked)"))
            .unwrap_or_else(|e| panic!("on {backend}: {e}"));
        assert_eq!(&got, b"sent by tokio", "on {backend}");
        thread.join().expect("thread joins");
    }
}

/// The negative control of the test above: the same wait with the
/// adapter polled in place (`Compat::new`) blocks tokio's only thread in
/// the sync fallback, which is exactly what `with_handle` avoids. The
/// blocked read is released by a helper thread after 300 ms; a tokio task
/// that was ready all along runs only after that.
#[test]
fn an_adapter_polled_in_place_on_tokio_blocks_its_thread() {
    let io_rt = runtime_on(Backend::ThreadPool);
    let handle = io_rt.handle();
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let order = tokio_rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let (events_tx, events_rx) = mpsc::channel();
        let tokio_events = events_tx.clone();
        let helper = spawn_named("unblocker".into(), move || {
            let mut socket = std::net::TcpStream::connect(addr).expect("connect");
            std::thread::sleep(Duration::from_millis(300));
            let _ = events_tx.send("helper sent");
            std::io::Write::write_all(&mut socket, b"x").expect("send");
        })
        .expect("thread starts");
        let (server, _) = handle
            .spawn(async move { listener.accept().await })
            .await??;
        // Ready to run from here on; it runs only when this task yields.
        let ticker = tokio::spawn(async move {
            let _ = tokio_events.send("tokio task ran");
        });
        let mut server = Compat::new(server);
        let mut one = [0u8; 1];
        server.read_exact(&mut one).await?;
        ticker.await.expect("ticker");
        helper.join().expect("helper");
        Ok::<_, std::io::Error>(events_rx.try_iter().collect::<Vec<_>>())
    });
    let order = order.expect("the in-place read completes");
    assert_eq!(
        order,
        ["helper sent", "tokio task ran"],
        "the in-place read held tokio's only thread until the helper sent"
    );
}

/// An adapter dropped while its read waits for a peer that never sends
/// closes its socket at once (the peer sees end of stream): the spawned
/// read is aborted, not left holding the fd.
#[test]
fn dropping_an_adapter_with_a_pending_read_closes_the_socket_on_every_backend() {
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        let io_rt = runtime_on(backend);
        let handle = io_rt.handle();
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let result = tokio_rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let mut client = tokio::net::TcpStream::connect(addr).await?;
            let (server, _) = handle
                .spawn(async move { listener.accept().await })
                .await??;
            let mut server = Compat::with_handle(server, &handle);
            let mut buf = [0u8; 8];
            let waited = tokio::time::timeout(Duration::from_millis(50), server.read(&mut buf));
            assert!(
                waited.await.is_err(),
                "nothing was sent, the read must wait"
            );
            drop(server);
            let eof = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await;
            match eof {
                Ok(Ok(0)) => Ok(()),
                Ok(other) => panic!("on {backend}: expected end of stream, got {other:?}"),
                Err(_) => panic!("on {backend}: the dropped adapter's socket stayed open"),
            }
        });
        result.unwrap_or_else(|e: std::io::Error| panic!("on {backend}: {e}"));
    }
}
