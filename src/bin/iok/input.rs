//! Reading `iok merge` / `iok pgzip` inputs: plain or gzip JSON-lines files,
//! told apart by their magic bytes, read with iokernel ops on the runtime and
//! handed out as blocks of whole lines.
//!
//! This module owns input inspection (does the file exist, is it gzip) and
//! the line-block reader; it never writes and knows nothing of the writer.

use flate2::write::MultiGzDecoder;
use iokernel::buf::{BufResult, SliceMut};
use iokernel::fs::File;
use std::io::{Error, ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::progress::Progress;

/// Bytes read from an input file per `pread`.
const READ_BYTES: usize = 1 << 20;
/// The two bytes every gzip member starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One input file, checked before any output is created.
#[derive(Clone, Debug)]
pub struct Input {
    /// Where it is.
    pub path: PathBuf,
    /// Its size on disk (compressed size for gzip).
    pub len_bytes: u64,
    /// True when it starts with the gzip magic bytes.
    pub gzip: bool,
}

/// Opens `path`, reads its size and its first two bytes. Errors name the
/// path and keep the errno (`raw_os_error()`).
pub fn inspect(path: &Path) -> std::io::Result<Input> {
    iokernel::runtime::block_on_here(async {
        let file = File::open(path)
            .await
            .map_err(|e| with_path(e, "cannot open input", path))?;
        let stat = file
            .metadata()
            .await
            .map_err(|e| with_path(e, "cannot stat input", path))?;
        let BufResult(read, head) = file.read_at(Vec::with_capacity(2), 0).await;
        read.map_err(|e| with_path(e, "cannot read input", path))?;
        file.close().await?;
        Ok(Input {
            path: path.to_path_buf(),
            len_bytes: stat.size_bytes,
            gzip: head.as_slice() == GZIP_MAGIC,
        })
    })
}

/// `e` with `what` and the path in front of its message, same kind and,
/// when it has one, the same errno.
pub fn with_path(e: Error, what: &str, path: &Path) -> Error {
    let message = format!("{what} {}: {e}", path.display());
    match e.raw_os_error() {
        Some(errno) => {
            let os = Error::from_raw_os_error(errno);
            Error::new(os.kind(), PathError { message, os })
        }
        None => Error::new(e.kind(), message),
    }
}

/// An OS error with the path it happened on; `source()` is the original
/// error, so callers that need the errno can downcast and ask it.
#[derive(Debug)]
pub struct PathError {
    message: String,
    os: Error,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.os)
    }
}

/// Reads one input as blocks of whole lines. Every block but possibly the
/// last ends with `\n`; the last one lacks it only if the input does.
pub struct LineBlocks {
    input: Input,
    file: Option<File>,
    offset: u64,
    decoder: Option<MultiGzDecoder<Vec<u8>>>,
    carry: Vec<u8>,
    done: bool,
    progress: Progress,
}

impl LineBlocks {
    /// Opens the input (on the current runtime, or blocking without one).
    pub async fn open(input: Input, progress: Progress) -> std::io::Result<LineBlocks> {
        let file = File::open(&input.path)
            .await
            .map_err(|e| with_path(e, "cannot open input", &input.path))?;
        let decoder = input.gzip.then(|| MultiGzDecoder::new(Vec::new()));
        Ok(LineBlocks {
            input,
            file: Some(file),
            offset: 0,
            decoder,
            carry: Vec::new(),
            done: false,
            progress,
        })
    }

    /// The next block of whole lines, or `None` at the end of the input.
    pub async fn next_block(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if self.done {
                if self.carry.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.carry)));
            }
            let mut data = self.read_more().await?;
            if let Some(last) = memchr::memrchr(b'\n', &data) {
                self.carry = data.split_off(last + 1);
                return Ok(Some(data));
            }
            self.carry = data;
        }
    }

    /// Appends the next piece of (decompressed) input to the carried
    /// partial line and returns it all; sets `done` at the end of the file.
    async fn read_more(&mut self) -> std::io::Result<Vec<u8>> {
        let Some(file) = self.file.as_ref() else {
            self.done = true;
            return Ok(std::mem::take(&mut self.carry));
        };
        let carry = std::mem::take(&mut self.carry);
        // Plain input is read straight behind the carried partial line;
        // gzip input is read on its own and decoded behind it.
        let (mut buf, start, carry) = if self.decoder.is_some() {
            (Vec::with_capacity(READ_BYTES), 0, carry)
        } else {
            let start = carry.len();
            let mut buf = carry;
            buf.reserve_exact(READ_BYTES);
            (buf, start, Vec::new())
        };
        let at = self.offset;
        let BufResult(read, back) = file
            .read_at(SliceMut::new(buf, start, start + READ_BYTES), at)
            .await;
        buf = back.into_inner();
        let n = read.map_err(|e| self.error_at(e, at))?;
        self.offset += n as u64;
        self.progress.add_bytes(n as u64);
        if n == 0 {
            self.done = true;
            if let Some(file) = self.file.take() {
                file.close().await?;
            }
        }
        let path = &self.input.path;
        let offset = self.offset;
        let bad = |e| bad_gzip(path, offset, e);
        match self.decoder.as_mut() {
            None => Ok(buf),
            Some(decoder) => {
                let decoded = if n == 0 {
                    decoder.try_finish().map_err(bad)?;
                    std::mem::take(decoder.get_mut())
                } else {
                    decoder.write_all(&buf).map_err(bad)?;
                    std::mem::take(decoder.get_mut())
                };
                let mut out = carry;
                if out.is_empty() {
                    out = decoded;
                } else {
                    out.extend_from_slice(&decoded);
                }
                Ok(out)
            }
        }
    }

    fn error_at(&self, e: Error, offset: u64) -> Error {
        let what = format!("cannot read input at offset {offset}:");
        with_path(e, &what, &self.input.path)
    }
}

fn bad_gzip(path: &Path, offset: u64, e: Error) -> Error {
    Error::new(
        ErrorKind::InvalidData,
        format!(
            "input {} is not a valid gzip stream (within the first {offset} compressed bytes): {e}",
            path.display(),
        ),
    )
}

/// Opens every path and checks it is readable before anything is written.
pub fn inspect_all(paths: &[PathBuf]) -> std::io::Result<Vec<Input>> {
    paths.iter().map(|p| inspect(p)).collect()
}

/// Sum of the inputs' sizes on disk.
pub fn total_len_bytes(inputs: &[Input]) -> u64 {
    inputs.iter().map(|i| i.len_bytes).sum()
}
