//! `tokio::io`'s `AsyncRead`, `AsyncBufRead`, `AsyncWrite` for every
//! [`Compat`] and `AsyncSeek` for `Compat<File>` (feature `compat-tokio`).
//!
//! Inside a tokio application build the adapter with
//! [`Compat::with_handle`]: its ops then run on an iokernel runtime's own
//! workers and tokio's workers never block.
//!
//! ```
//! use iokernel::fs::File;
//! use iokernel::io::compat::Compat;
//! use iokernel::runtime::Runtime;
//! use tokio::io::AsyncReadExt;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("tokio.txt");
//! # std::fs::write(&path, b"read through iokernel").unwrap();
//! let io_rt = Runtime::builder().name("iok").compute_threads(1).build().unwrap();
//! let handle = io_rt.handle();
//! let tokio_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
//! let text = tokio_rt.block_on(async move {
//!     // `File::open` runs on iokernel's worker too; tokio awaits its JoinHandle.
//!     let file = handle.spawn(File::open(path)).await??;
//!     let mut file = Compat::with_handle(file, &handle);
//!     let mut text = String::new();
//!     file.read_to_string(&mut text).await?;
//!     Ok::<_, std::io::Error>(text)
//! })
//! .unwrap();
//! assert_eq!(text, "read through iokernel");
//! ```

use super::{Compat, CompatIo};
use crate::fs::File;
use std::io;
use std::io::SeekFrom;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

impl<T: CompatIo> AsyncRead for Compat<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let ahead = ready!(this.poll_fill(cx))?;
        let n = ahead.len().min(buf.remaining());
        buf.put_slice(&ahead[..n]);
        this.consume_bytes(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: CompatIo> AsyncBufRead for Compat<T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        self.get_mut().poll_fill(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().consume_bytes(amt);
    }
}

impl<T: CompatIo> AsyncWrite for Compat<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bytes(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_all(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_shut(cx)
    }
}

impl AsyncSeek for Compat<File> {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        if this.seek_request.is_some() || this.seek_op.is_some() {
            return Err(io::Error::other(
                "compat seek: start_seek called while another seek is in progress",
            ));
        }
        this.seek_request = Some(position);
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        // Without a `start_seek`, tokio asks for the current position.
        let position = this.seek_request.unwrap_or(SeekFrom::Current(0));
        let result = ready!(this.poll_seek_to(cx, position));
        this.seek_request = None;
        Poll::Ready(result)
    }
}
