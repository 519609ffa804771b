//! iokernel: simulation-first async file and socket I/O.
//!
//! One syscall seam ([`sys`]) sits under every backend, so the executor
//! ([`runtime`]), the awaitable ops ([`io`], [`fs`], [`net`]) and the
//! drivers run unchanged on the real kernel or a simulated one. Ops take
//! owned buffers ([`buf`]) and give them back whatever happens; awaited
//! outside a runtime they run as plain blocking syscalls.
//!
//! ```
//! use iokernel::buf::BufResult;
//! use iokernel::fs::File;
//! use iokernel::runtime::Runtime;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("hello.txt");
//! let rt = Runtime::builder().name("hello").compute_threads(2).build().unwrap();
//! rt.block_on(async {
//!     let file = File::create(&path).await?;
//!     file.write_all_at(b"hello, iokernel\n", 0).await.0?;
//!     file.sync_all().await?;
//!     let file = File::open(&path).await?;
//!     let BufResult(n, buf) = file.read_at(vec![0u8; 64], 0).await;
//!     assert_eq!(&buf[..n?], b"hello, iokernel\n");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```

#![deny(missing_docs)]

pub mod buf;
pub(crate) mod driver;
pub mod fs;
pub mod io;
pub mod net;
pub mod op;
pub mod runtime;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sync;
pub mod sys;
pub mod writer;
