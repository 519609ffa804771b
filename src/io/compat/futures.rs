//! `futures-io`'s `AsyncRead`, `AsyncBufRead`, `AsyncWrite` for every
//! [`Compat`] and `AsyncSeek` for `Compat<File>` (feature
//! `compat-futures`).
//!
//! ```
//! use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
//! use iokernel::fs::OpenOptions;
//! use iokernel::io::compat::Compat;
//! use std::io::SeekFrom;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("futures.txt");
//! let rt = iokernel::runtime::Runtime::builder().compute_threads(1).build().unwrap();
//! rt.block_on(async {
//!     let mut options = OpenOptions::new();
//!     options.read(true).write(true).create(true);
//!     let mut file = Compat::new(options.open(&path).await?);
//!     file.write_all(b"first line\nsecond line\n").await?;
//!     file.flush().await?;
//!     file.seek(SeekFrom::Start(0)).await?;
//!     let mut line = String::new();
//!     file.read_line(&mut line).await?;
//!     assert_eq!(line, "first line\n");
//!     let mut rest = String::new();
//!     file.read_to_string(&mut rest).await?;
//!     assert_eq!(rest, "second line\n");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```

use super::{Compat, CompatIo};
use crate::fs::File;
use futures_io::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite};
use std::io;
use std::io::SeekFrom;
use std::pin::Pin;
use std::task::{Context, Poll};

impl<T: CompatIo> AsyncRead for Compat<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_read_into(cx, buf)
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

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_shut(cx)
    }
}

impl AsyncSeek for Compat<File> {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        self.get_mut().poll_seek_to(cx, pos)
    }
}
