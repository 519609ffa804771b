//! The test bodies, written once and expanded twice: `via_futures` drives
//! the adapters through futures-util's extension traits, `via_tokio`
//! through tokio's.

#[path = "../support/bytes.rs"]
mod bytes;
pub use bytes::assert_same_bytes;
use iokernel::io::compat::{Compat, CompatIo};
use iokernel::runtime::Handle;
use std::future::Future;

/// Where a body's adapters run their ops.
#[derive(Clone, Debug)]
pub enum How {
    /// Where the adapter is polled (`Compat::new`).
    Here,
    /// On an iokernel runtime (`Compat::with_handle`).
    On(Handle),
}

impl How {
    pub fn adapt<T: CompatIo>(&self, io: T) -> Compat<T> {
        match self {
            How::Here => Compat::new(io),
            How::On(handle) => Compat::with_handle(io, handle),
        }
    }

    /// Run `future` (an iokernel op that is not an adapter's) where the
    /// adapters run theirs.
    pub async fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            How::Here => future.await,
            How::On(handle) => handle
                .spawn(future)
                .await
                .unwrap_or_else(|e| panic!("iokernel task: {e}")),
        }
    }
}

/// `len` bytes that differ at every offset from a shifted copy.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

macro_rules! bodies {
    ($close:ident, $copy:path) => {
        use super::{assert_same_bytes, pattern, How};
        use iokernel::fs::{File, OpenOptions};
        use iokernel::net::{TcpListener, TcpStream};
        use std::io::{self, SeekFrom};
        use std::path::PathBuf;

        /// Uneven writes through a 1000-byte buffer, seeks of every kind
        /// with read-ahead pending, an overwrite, lines.
        pub async fn file_write_seek_read_and_lines(dir: PathBuf, how: How) -> io::Result<()> {
            let path = dir.join("compat-file");
            let mut options = OpenOptions::new();
            options.read(true).write(true).create(true).truncate(true);
            let opened = {
                let path = path.clone();
                how.run(async move { options.open(path).await }).await?
            };
            let mut file = how.adapt(opened).with_buffer_bytes(1000);
            let data = pattern(100_003, 1);
            let (mut at, mut step) = (0, 1);
            while at < data.len() {
                let end = (at + step).min(data.len());
                file.write_all(&data[at..end]).await?;
                at = end;
                step = step * 3 % 4099 + 1;
            }
            file.flush().await?;
            let len = data.len() as u64;
            assert_eq!(
                file.seek(SeekFrom::Current(0)).await?,
                len,
                "position after writing"
            );
            assert_eq!(file.seek(SeekFrom::Start(0)).await?, 0);
            let mut back = Vec::new();
            file.read_to_end(&mut back).await?;
            assert_same_bytes(&back, &data, "read back through the adapter");

            // Relative seeks count from what was consumed, not from the
            // read-ahead the adapter holds.
            file.seek(SeekFrom::Start(10)).await?;
            let mut four = [0u8; 4];
            file.read_exact(&mut four).await?;
            assert_eq!(four[..], data[10..14]);
            assert_eq!(file.seek(SeekFrom::Current(6)).await?, 20);
            file.read_exact(&mut four).await?;
            assert_eq!(four[..], data[20..24]);
            assert_eq!(file.seek(SeekFrom::End(-3)).await?, len - 3);
            let mut tail = Vec::new();
            file.read_to_end(&mut tail).await?;
            assert_same_bytes(
                &tail,
                &data[data.len() - 3..],
                "the tail after SeekFrom::End",
            );

            // Overwrite in the middle; a plain File sees it after flush.
            file.seek(SeekFrom::Start(5)).await?;
            file.write_all(b"HELLO").await?;
            file.flush().await?;
            let len_bytes = data.len();
            let got = how
                .run(async move {
                    let plain = File::open(path).await?;
                    let (done, got) = plain
                        .read_exact_at(vec![0u8; len_bytes], 0)
                        .await
                        .into_parts();
                    done.map(|()| got)
                })
                .await?;
            let mut want = data.clone();
            want[5..10].copy_from_slice(b"HELLO");
            assert_same_bytes(&got, &want, "the file after the overwrite");
            Ok(())
        }

        /// Reads and writes on one adapted file share its position, as on
        /// a std file: a write lands after what was consumed (not after
        /// the read-ahead), a read starts after what was written (even
        /// unflushed).
        pub async fn reads_and_writes_share_the_file_position(
            dir: PathBuf,
            how: How,
        ) -> io::Result<()> {
            let path = dir.join("shared-position");
            let mut options = OpenOptions::new();
            options.read(true).write(true).create(true).truncate(true);
            let opened = {
                let path = path.clone();
                how.run(async move { options.open(path).await }).await?
            };
            let mut file = how.adapt(opened).with_buffer_bytes(64);
            file.write_all(b"abcdefghij").await?;
            file.flush().await?;
            file.seek(SeekFrom::Start(0)).await?;
            let mut two = [0u8; 2];
            file.read_exact(&mut two).await?;
            assert_eq!(&two, b"ab");
            // The adapter read ahead to the end; the write goes to 2.
            file.write_all(b"XY").await?;
            file.read_exact(&mut two).await?;
            assert_eq!(&two, b"ef", "the read after the write");
            // Unflushed write, then a read: it starts after the write.
            file.write_all(b"123").await?;
            let mut one = [0u8; 1];
            file.read_exact(&mut one).await?;
            assert_eq!(&one, b"j", "the read after an unflushed write");
            assert_eq!(file.seek(SeekFrom::Current(0)).await?, 10);
            file.flush().await?;
            let got = how
                .run(async move {
                    let plain = File::open(path).await?;
                    let (done, got) = plain.read_exact_at(vec![0u8; 10], 0).await.into_parts();
                    done.map(|()| got)
                })
                .await?;
            assert_eq!(&got, b"abXYef123j");
            Ok(())
        }

        /// Lines that span the adapter's 3-byte buffer, an empty line and
        /// a last line without a newline.
        pub async fn lines_across_buffers(dir: PathBuf, how: How) -> io::Result<()> {
            let path = dir.join("lines");
            let text = b"alpha\nbeta\n\ngamma";
            let file = {
                let path = path.clone();
                how.run(async move {
                    let file = File::create(&path).await?;
                    file.write_all_at(text.to_vec(), 0).await.0?;
                    File::open(&path).await
                })
                .await?
            };
            let mut file = how.adapt(file).with_buffer_bytes(3);
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if file.read_line(&mut line).await? == 0 {
                    break;
                }
                lines.push(line);
            }
            assert_eq!(lines, ["alpha\n", "beta\n", "\n", "gamma"]);
            Ok(())
        }

        /// A connected pair: (client, server), both plain streams.
        async fn pair(how: &How) -> io::Result<(TcpStream, TcpStream)> {
            how.run(async {
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let client = TcpStream::connect(listener.local_addr()?).await?;
                let (server, _) = listener.accept().await?;
                Ok((client, server))
            })
            .await
        }

        /// 40 000 bytes out and echoed back through adapters with odd
        /// buffer sizes on both ends; the client's close ends the echo.
        pub async fn tcp_echo_both_ways(_dir: PathBuf, how: How) -> io::Result<()> {
            let (client, server) = pair(&how).await?;
            echo_both_ways(client, server, how).await
        }

        /// The same echo over a Unix stream pair.
        pub async fn unix_echo_both_ways(_dir: PathBuf, how: How) -> io::Result<()> {
            let (client, server) = how.run(async { iokernel::net::UnixStream::pair() }).await?;
            echo_both_ways(client, server, how).await
        }

        async fn echo_both_ways<S: iokernel::io::compat::CompatIo>(
            client: S,
            server: S,
            how: How,
        ) -> io::Result<()> {
            let server_how = how.clone();
            let echo = crate::spawn_peer("echo", async move {
                let mut server = server_how.adapt(server).with_buffer_bytes(777);
                let mut buf = vec![0u8; 3000];
                let mut echoed = 0u64;
                loop {
                    let n = server.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    server.write_all(&buf[..n]).await?;
                    echoed += n as u64;
                }
                server.$close().await?;
                Ok::<_, io::Error>(echoed)
            });
            let mut client = how.adapt(client).with_buffer_bytes(1500);
            // The client reads only after writing everything, so all of it
            // must fit in the two sockets' buffers at once. Linux charges a
            // Unix stream's small writes at about three times their size
            // against a 208 KiB send buffer and polls it writable again only
            // below a quarter of that: at 100 000 bytes both ends could wait
            // on each other for good (seen on every backend). 40 000 fits.
            let data = pattern(40_000, 2);
            for chunk in data.chunks(999) {
                client.write_all(chunk).await?;
            }
            client.$close().await?;
            let mut back = Vec::new();
            client.read_to_end(&mut back).await?;
            assert_eq!(echo.join().await?, data.len() as u64, "bytes echoed");
            assert_same_bytes(&back, &data, "the echo");
            Ok(())
        }

        /// After the write direction is shut, a write fails at once naming
        /// the stream and accepts nothing (a byte accepted then could never
        /// be written); the peer gets exactly what came before, then end of
        /// stream.
        pub async fn a_write_after_shutdown_is_refused(_dir: PathBuf, how: How) -> io::Result<()> {
            let (client, server) = pair(&how).await?;
            let fd = client.as_raw_fd();
            let mut client = how.adapt(client);
            client.write_all(b"before").await?;
            client.$close().await?;
            let refused = client.write(b"after").await;
            let err = refused.expect_err("a write after the shutdown");
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            let want = format!("compat write on tcp stream fd {fd} (after 6 bytes)");
            assert!(err.to_string().contains(&want), "{err} lacks {want:?}");
            client.flush().await?;
            let mut server = how.adapt(server);
            let mut got = Vec::new();
            server.read_to_end(&mut got).await?;
            assert_same_bytes(&got, b"before", "what the peer received");
            Ok(())
        }

        /// Bytes `poll_write` accepted are written even though the adapter
        /// is dropped unflushed with a write in flight; the peer then sees
        /// end of stream (the fd closes only after the last write).
        pub async fn a_dropped_writer_loses_no_accepted_byte(
            _dir: PathBuf,
            how: How,
        ) -> io::Result<()> {
            let (client, server) = pair(&how).await?;
            let drain = crate::spawn_peer("drain", async move {
                let mut got = Vec::new();
                loop {
                    let (n, buf) = server.read(vec![0u8; 8192]).await.into_parts();
                    let n = n?;
                    if n == 0 {
                        return Ok::<_, io::Error>(got);
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            });
            let data = pattern(300_000, 3);
            let mut client = how.adapt(client).with_buffer_bytes(4096);
            for chunk in data.chunks(1000) {
                client.write_all(chunk).await?;
            }
            drop(client);
            let got = drain.join().await?;
            assert_same_bytes(&got, &data, "what the peer received after the drop");
            Ok(())
        }

        /// `into_inner` hands back the read-ahead: with it, nothing the
        /// adapter read from the file is lost.
        pub async fn into_inner_returns_the_read_ahead(dir: PathBuf, how: How) -> io::Result<()> {
            let path = dir.join("ahead");
            let data = pattern(5000, 4);
            let file = {
                let (path, data) = (path.clone(), data.clone());
                how.run(async move {
                    let file = File::create(&path).await?;
                    file.write_all_at(data, 0).await.0?;
                    File::open(&path).await
                })
                .await?
            };
            let mut file = how.adapt(file).with_buffer_bytes(1000);
            let ahead = file.fill_buf().await?.len();
            assert!(ahead > 100, "read ahead {ahead} bytes");
            std::pin::Pin::new(&mut file).consume(100);
            let (file, unread) = file.into_inner().map_err(|_| "busy").expect("idle adapter");
            let mut rest = unread.clone();
            loop {
                let fd = file.as_raw_fd();
                let (n, buf) = how
                    .run(async move { iokernel::io::read(fd, vec![0u8; 4096]).await.into_parts() })
                    .await;
                let n = n?;
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&buf[..n]);
            }
            assert_same_bytes(&rest, &data[100..], "read-ahead then the rest of the file");
            Ok(())
        }

        /// A failed write names the op, the object and how far it got; the
        /// error shows once, at the flush.
        pub async fn errors_name_the_op_and_the_object(dir: PathBuf, how: How) -> io::Result<()> {
            let path = dir.join("read-only");
            let file = {
                let path = path.clone();
                how.run(async move {
                    File::create(&path).await?;
                    File::open(&path).await
                })
                .await?
            };
            let fd = file.as_raw_fd();
            let mut file = how.adapt(file);
            // Accepted into the buffer; the write op fails with EBADF.
            let accepted = file.write(b"refused").await;
            let flushed = match accepted {
                Ok(n) => {
                    assert_eq!(n, 7);
                    file.flush().await
                }
                Err(e) => Err(e),
            };
            let err = flushed.expect_err("writing a read-only fd must fail");
            let text = err.to_string();
            let want = format!("compat write on file fd {fd} (after 0 bytes)");
            assert!(text.contains(&want), "error {text:?} lacks {want:?}");
            assert!(
                text.contains("os error 9") || text.contains("Bad file"),
                "{text}"
            );
            file.flush().await?;
            Ok(())
        }

        /// The ecosystem's `copy` between two adapted files.
        pub async fn copy_between_adapters(dir: PathBuf, how: How) -> io::Result<()> {
            let data = pattern(250_001, 5);
            let (src, dst) = {
                let (from, to, data) = (dir.join("from"), dir.join("to"), data.clone());
                how.run(async move {
                    let src = File::create(&from).await?;
                    src.write_all_at(data, 0).await.0?;
                    Ok::<_, io::Error>((File::open(&from).await?, File::create(&to).await?))
                })
                .await?
            };
            let mut src = how.adapt(src).with_buffer_bytes(4096);
            let mut dst = how.adapt(dst).with_buffer_bytes(10_000);
            let copied = $copy(&mut src, &mut dst).await?;
            dst.flush().await?;
            assert_eq!(copied, data.len() as u64);
            let check = File::open(dir.join("to"));
            let got = how
                .run(async move {
                    let file = check.await?;
                    let (done, got) = file.read_exact_at(vec![0u8; 250_001], 0).await.into_parts();
                    done.map(|()| got)
                })
                .await?;
            assert_same_bytes(&got, &data, "the copy");
            Ok(())
        }
    };
}

pub mod via_futures {
    use futures_util::io::{
        AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt,
    };
    bodies!(close, futures_util::io::copy);
}

pub mod via_tokio {
    use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
    bodies!(shutdown, tokio::io::copy);
}
