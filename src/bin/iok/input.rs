//! Reading `iok merge` / `iok pgzip` inputs: plain or gzip JSON-lines files,
//! told apart by their magic bytes, read with iokernel ops on the runtime and
//! handed out as blocks of whole lines.
//!
//! Regular files are read with `pread` (one that ends short of its size at
//! inspection was truncated under the run: an error naming it, never a
//! short output); anything else (a pipe, a FIFO,
//! `<(...)`, `/dev/stdin`, `-` for stdin, a character device) is read
//! sequentially with `read`, and is opened once, at inspection, so its
//! first bytes (peeked to tell gzip from plain) are kept, not lost. Memory
//! is bounded whatever the input: gzip is decoded in pieces
//! ([`crate::gunzip`]), and a line is held whole only up to
//! [`LineRules::max_line_bytes`] (merge: longer is an error naming the
//! input and the line's offset; pgzip: a longer line is handed on in
//! pieces). Every byte is scanned for newlines once (linear time).
//!
//! This module owns input inspection and the line-block reader; it never
//! writes and knows nothing of the writer.

use iokernel::buf::{BufResult, SliceMut};
use iokernel::fs::File;
use iokernel::io::FileType;
use std::io::{Error, ErrorKind};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::gunzip::{GzipStream, GZIP_MAGIC};
use crate::progress::Progress;

/// Bytes read from an input per `pread`/`read`, and decoded bytes per
/// gzip step.
const READ_BYTES: usize = 1 << 20;
/// The path that means standard input.
pub const STDIN_PATH: &str = "-";

/// A stream input opened at inspection: the open file and the bytes
/// already read from it to tell gzip from plain.
struct OpenStream {
    file: File,
    head: Vec<u8>,
}

/// One input, checked before any output is created.
#[derive(Clone)]
pub struct Input {
    /// Where it is (`-` for stdin).
    pub path: PathBuf,
    /// Its size on disk (compressed size for gzip); `None` for a stream.
    pub len_bytes: Option<u64>,
    /// True when it starts with the gzip magic bytes.
    pub gzip: bool,
    /// A stream input's open file, taken by the one reader that reads it.
    stream: Option<Arc<Mutex<Option<OpenStream>>>>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("path", &self.path)
            .field("len_bytes", &self.len_bytes)
            .field("gzip", &self.gzip)
            .field("stream", &self.stream.is_some())
            .finish()
    }
}

impl Input {
    /// A regular file another process (an MPI rank) inspected: `len_bytes`
    /// on disk, gzip or not.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub fn regular(path: PathBuf, len_bytes: u64, gzip: bool) -> Input {
        Input {
            path,
            len_bytes: Some(len_bytes),
            gzip,
            stream: None,
        }
    }
}

/// Opens `path` (`-`: stdin), checks what it is and reads its first two
/// bytes; a stream stays open with those bytes kept. Errors name the path
/// and keep the errno (`raw_os_error()`).
pub fn inspect(path: &Path) -> std::io::Result<Input> {
    iokernel::runtime::block_on_here(async {
        let file = if path.as_os_str() == STDIN_PATH {
            let fd = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| with_path(e, "cannot duplicate", Path::new("stdin")))?;
            File::from(fd)
        } else {
            File::open(path)
                .await
                .map_err(|e| with_path(e, "cannot open input", path))?
        };
        let stat = file
            .metadata()
            .await
            .map_err(|e| with_path(e, "cannot stat input", path))?;
        let stdin = path.as_os_str() == STDIN_PATH;
        match stat.file_type {
            FileType::Regular if !stdin => {
                let BufResult(read, head) = file.read_at(Vec::with_capacity(2), 0).await;
                read.map_err(|e| with_path(e, "cannot read input", path))?;
                file.close().await?;
                let input = Input {
                    path: path.to_path_buf(),
                    len_bytes: Some(stat.size_bytes),
                    gzip: head.as_slice() == GZIP_MAGIC,
                    stream: None,
                };
                check_gz_name(&input, &head)?;
                Ok(input)
            }
            FileType::Directory => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("input {} is a directory", path.display()),
            )),
            _ => {
                let head = peek(&file, path).await?;
                let input = Input {
                    path: path.to_path_buf(),
                    len_bytes: None,
                    gzip: head.as_slice() == GZIP_MAGIC,
                    stream: None,
                };
                check_gz_name(&input, &head)?;
                let stream = OpenStream { file, head };
                Ok(Input {
                    stream: Some(Arc::new(Mutex::new(Some(stream)))),
                    ..input
                })
            }
        }
    })
}

/// The first two bytes of a stream (fewer only if it ends first).
async fn peek(file: &File, path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(2);
    while head.len() < 2 {
        let want = Vec::with_capacity(2 - head.len());
        let BufResult(read, got) = iokernel::io::read(file.as_raw_fd(), want).await;
        let n = read.map_err(|e| with_path(e, "cannot read input", path))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&got);
    }
    Ok(head)
}

/// A non-empty file named `*.gz` must be gzip: merging it as text would
/// write its compressed bytes into the output.
fn check_gz_name(input: &Input, head: &[u8]) -> std::io::Result<()> {
    let named_gz = input
        .path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"));
    if named_gz && !head.is_empty() && !input.gzip {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "input {} is named .gz but is not gzip (it starts with bytes {}, not 1f 8b)",
                input.path.display(),
                head.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ));
    }
    Ok(())
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

/// How lines are handed on.
#[derive(Clone, Copy, Debug)]
pub struct LineRules {
    /// The longest line held whole, newline included.
    pub max_line_bytes: u64,
    /// A longer line is handed on in pieces of about a read (pgzip)
    /// instead of being an error (merge).
    pub cut_long_lines: bool,
}

/// A line longer than [`LineRules::max_line_bytes`].
#[derive(Debug, PartialEq, Eq)]
pub struct LongLine {
    /// Uncompressed offset of the line's first byte.
    pub offset: u64,
    /// The maximum it exceeds.
    pub max_line_bytes: u64,
}

/// Splits pieces of input into blocks of whole lines, carrying the
/// partial last line of each piece over to the next. Each byte is scanned
/// once; only the carried partial line is copied.
pub struct LineSplitter {
    rules: LineRules,
    carry: Vec<u8>,
    /// Uncompressed offset of `carry`'s first byte.
    carry_offset: u64,
}

impl LineSplitter {
    pub fn new(rules: LineRules) -> LineSplitter {
        LineSplitter {
            rules,
            carry: Vec::new(),
            carry_offset: 0,
        }
    }

    /// Adds the next piece of input (a copy; [`LineSplitter::next_buffer`]
    /// avoids it). Returns what [`LineSplitter::push_filled`] returns.
    #[cfg(test)]
    pub fn push(&mut self, data: Vec<u8>) -> Result<Option<Vec<u8>>, LongLine> {
        let (mut buf, start) = self.next_buffer(data.len());
        buf.extend_from_slice(&data);
        self.push_filled(buf, start)
    }

    /// A buffer to read the next piece into: the carried partial line
    /// (`start` bytes, taken out of the splitter) with room for `room`
    /// more behind it, so the next piece lands right after it and is
    /// never copied. Append to it and hand it to `push_filled`.
    pub fn next_buffer(&mut self, room: usize) -> (Vec<u8>, usize) {
        let mut buf = std::mem::take(&mut self.carry);
        let start = buf.len();
        buf.reserve_exact(room);
        (buf, start)
    }

    /// Takes back the buffer of `next_buffer` with nothing added.
    pub fn give_back(&mut self, buf: Vec<u8>) {
        self.carry = buf;
    }

    /// Takes back the buffer of `next_buffer` with the new piece from
    /// `start` on (only that part is scanned). Returns a block to hand on:
    /// whole lines ending in `\n`, or (with `cut_long_lines`) a piece of a
    /// line longer than the maximum, which does not end in `\n`.
    pub fn push_filled(
        &mut self,
        mut buf: Vec<u8>,
        start: usize,
    ) -> Result<Option<Vec<u8>>, LongLine> {
        let Some(last) = memchr::memrchr(b'\n', &buf[start..]) else {
            self.carry = buf;
            return self.check_carry();
        };
        // The carried line ends at the first newline of the new part.
        let first_end = memchr::memchr(b'\n', &buf[start..]).map_or(last, |i| i) + start + 1;
        if first_end as u64 > self.rules.max_line_bytes && !self.rules.cut_long_lines {
            return Err(LongLine {
                offset: self.carry_offset,
                max_line_bytes: self.rules.max_line_bytes,
            });
        }
        // The new partial line (at most one piece) is checked when the
        // next piece is added to it.
        self.carry = buf.split_off(start + last + 1);
        self.carry_offset += buf.len() as u64;
        Ok(Some(buf))
    }

    fn check_carry(&mut self) -> Result<Option<Vec<u8>>, LongLine> {
        if (self.carry.len() as u64) <= self.rules.max_line_bytes {
            return Ok(None);
        }
        if !self.rules.cut_long_lines {
            return Err(LongLine {
                offset: self.carry_offset,
                max_line_bytes: self.rules.max_line_bytes,
            });
        }
        let piece = std::mem::take(&mut self.carry);
        self.carry_offset += piece.len() as u64;
        Ok(Some(piece))
    }

    /// The input's unterminated last line, if any (at the end of input).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.carry.is_empty() {
            return None;
        }
        let last = std::mem::take(&mut self.carry);
        self.carry_offset += last.len() as u64;
        Some(last)
    }
}

/// Where an input's bytes come from.
enum Source {
    /// A regular file, read with `pread` at the next offset.
    Pread { file: File, offset: u64 },
    /// Anything else, read with `read`; `head` is what inspection read.
    Stream { file: File, head: Vec<u8> },
}

/// What [`LineBlocks::read_into`] got.
enum Read {
    /// Plain bytes, behind the carried line.
    Plain(Vec<u8>),
    /// Compressed bytes, and the carry buffer untouched.
    Compressed(Vec<u8>, Vec<u8>),
    /// The end of the input; the carry buffer untouched.
    End(Vec<u8>),
}

/// Reads one input as blocks of whole lines. Every block but possibly the
/// last ends with `\n`; the last one lacks it only if the input does (and,
/// with `cut_long_lines`, a piece of an over-long line lacks it too).
pub struct LineBlocks {
    input: Input,
    source: Option<Source>,
    gzip: Option<GzipStream>,
    /// Compressed bytes read but not yet decoded, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
    splitter: LineSplitter,
    finished: bool,
    progress: Progress,
}

impl LineBlocks {
    /// Opens the input (on the current runtime, or blocking without one).
    /// A stream input can be opened once only.
    pub async fn open(
        input: Input,
        progress: Progress,
        rules: LineRules,
    ) -> std::io::Result<LineBlocks> {
        let source = match &input.stream {
            None => {
                let file = File::open(&input.path)
                    .await
                    .map_err(|e| with_path(e, "cannot open input", &input.path))?;
                Source::Pread { file, offset: 0 }
            }
            Some(stream) => {
                let taken = stream.lock().unwrap_or_else(|p| p.into_inner()).take();
                let Some(OpenStream { file, head }) = taken else {
                    return Err(Error::other(format!(
                        "input {} is a stream and was already read",
                        input.path.display()
                    )));
                };
                Source::Stream { file, head }
            }
        };
        Ok(LineBlocks {
            gzip: input.gzip.then(GzipStream::new),
            input,
            source: Some(source),
            pending: Vec::new(),
            pending_at: 0,
            splitter: LineSplitter::new(rules),
            finished: false,
            progress,
        })
    }

    /// The next block of lines, or `None` at the end of the input.
    pub async fn next_block(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            let (buf, start) = self.splitter.next_buffer(READ_BYTES);
            let filled = if self.pending_at < self.pending.len() {
                self.decode_into(buf, start)?
            } else {
                match self.read_into(buf).await? {
                    Read::Compressed(raw, buf) => {
                        self.pending = raw;
                        self.pending_at = 0;
                        self.splitter.give_back(buf);
                        continue;
                    }
                    Read::Plain(buf) => buf,
                    Read::End(buf) => {
                        self.splitter.give_back(buf);
                        self.finished = true;
                        if let Some(gzip) = &self.gzip {
                            gzip.finish().map_err(|e| self.bad_gzip(e))?;
                        }
                        return Ok(self.splitter.finish());
                    }
                }
            };
            match self.splitter.push_filled(filled, start) {
                Ok(Some(block)) => return Ok(Some(block)),
                Ok(None) => {}
                Err(long) => return Err(self.long_line(long)),
            }
        }
    }

    /// Decodes up to a read's worth of the pending compressed bytes behind
    /// the carried line in `buf`.
    fn decode_into(&mut self, mut buf: Vec<u8>, start: usize) -> std::io::Result<Vec<u8>> {
        let Some(gzip) = self.gzip.as_mut() else {
            return Ok(buf);
        };
        let pending = &self.pending[self.pending_at..];
        match gzip.decode(pending, &mut buf, start + READ_BYTES) {
            Ok(used) => {
                self.pending_at += used;
                Ok(buf)
            }
            Err(e) => Err(self.bad_gzip(e)),
        }
    }

    /// Reads the next piece of input: plain bytes straight behind the
    /// carried line in `buf`; compressed bytes into a buffer of their own
    /// (`buf` comes back untouched); at the end the file is closed.
    async fn read_into(&mut self, buf: Vec<u8>) -> std::io::Result<Read> {
        let Some(source) = self.source.as_mut() else {
            return Ok(Read::End(buf));
        };
        let gzip = self.gzip.is_some();
        let (target, keep) = if gzip {
            (Vec::with_capacity(READ_BYTES), Some(buf))
        } else {
            (buf, None)
        };
        let at = target.len();
        let (read, target, offset) = match source {
            Source::Pread { file, offset } => {
                let pos = *offset;
                let slice = SliceMut::new(target, at, at + READ_BYTES);
                let BufResult(read, slice) = file.read_at(slice, pos).await;
                if let Ok(n) = read {
                    *offset += n as u64;
                }
                (read, slice.into_inner(), Some(pos))
            }
            Source::Stream { head, .. } if !head.is_empty() => {
                let mut target = target;
                target.extend_from_slice(head);
                let n = std::mem::take(head).len();
                (Ok(n), target, None)
            }
            Source::Stream { file, .. } => {
                let slice = SliceMut::new(target, at, at + READ_BYTES);
                let BufResult(read, slice) = iokernel::io::read(file.as_raw_fd(), slice).await;
                (read, slice.into_inner(), None)
            }
        };
        let n = read.map_err(|e| self.read_error(e, offset))?;
        self.progress.add_bytes(n as u64);
        if let (0, Some(end), Some(len)) = (n, offset, self.input.len_bytes) {
            if end < len {
                return Err(self.shrank(end, len));
            }
        }
        if n == 0 {
            if let Some(Source::Pread { file, .. } | Source::Stream { file, .. }) =
                self.source.take()
            {
                file.close().await?;
            }
            return Ok(Read::End(keep.unwrap_or(target)));
        }
        Ok(match keep {
            Some(buf) => Read::Compressed(target, buf),
            None => Read::Plain(target),
        })
    }

    fn read_error(&self, e: Error, offset: Option<u64>) -> Error {
        let what = match offset {
            Some(offset) => format!("cannot read input at offset {offset}:"),
            None => "cannot read input".to_string(),
        };
        with_path(e, &what, &self.input.path)
    }

    /// A regular input ended at `end`, short of the `len` bytes it had at
    /// inspection: it was truncated while being read. Going on would end
    /// the output short of the input with nothing said.
    fn shrank(&self, end: u64, len: u64) -> Error {
        Error::new(
            ErrorKind::UnexpectedEof,
            format!(
                "input {} shrank while being read: end of file at offset {end}, but it had \
                 {len} bytes when the run started (truncated under the run?); the output \
                 would miss the rest",
                self.input.path.display()
            ),
        )
    }

    fn bad_gzip(&self, e: crate::gunzip::GzipError) -> Error {
        Error::new(
            ErrorKind::InvalidData,
            format!(
                "input {} is not a valid gzip stream: {e}",
                self.input.path.display()
            ),
        )
    }

    fn long_line(&self, long: LongLine) -> Error {
        Error::new(
            ErrorKind::InvalidData,
            format!(
                "input {}: line at offset {} is longer than the maximum of {} bytes \
                 (--max-line-size)",
                self.input.path.display(),
                long.offset,
                long.max_line_bytes
            ),
        )
    }
}

/// The inputs named on the command line, in order: a directory stands for
/// every `*.pfw` and `*.pfw.gz` directly in it, sorted by name (bytes);
/// `--inputs-from FILE` adds its paths (one a line, blank lines ignored,
/// each expanded the same way) after the positional ones; `-` reads the
/// list from stdin (which then cannot also be an input). A directory
/// without such files, or a list that cannot be read, is an error naming
/// it.
pub fn expand_inputs(
    positional: &[PathBuf],
    inputs_from: Option<&Path>,
) -> std::io::Result<Vec<PathBuf>> {
    let mut named = positional.to_vec();
    if let Some(list) = inputs_from {
        named.extend(read_input_list(list)?);
        if list.as_os_str() == STDIN_PATH && named.iter().any(|p| p.as_os_str() == STDIN_PATH) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "stdin is the --inputs-from list (`--inputs-from -`); it cannot be an input `-` too",
            ));
        }
    }
    let mut paths = Vec::with_capacity(named.len());
    for path in named {
        // A stream (`-`, a FIFO) is never a directory; only stat names.
        let is_dir =
            path.as_os_str() != STDIN_PATH && std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            paths.extend(trace_files_in(&path)?);
        } else {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            match inputs_from {
                Some(list) => format!("no inputs: --inputs-from {} lists none", list.display()),
                None => "no inputs given".to_string(),
            },
        ));
    }
    Ok(paths)
}

/// Is `name` a trace file a directory input stands for?
pub fn is_trace_name(name: &[u8]) -> bool {
    name.ends_with(b".pfw") || name.ends_with(b".pfw.gz")
}

/// Every `*.pfw` / `*.pfw.gz` directly in `dir`, sorted by file name.
fn trace_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let entries =
        std::fs::read_dir(dir).map_err(|e| with_path(e, "cannot list input directory", dir))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| with_path(e, "cannot list input directory", dir))?;
        let name = entry.file_name();
        if is_trace_name(name.as_bytes()) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "input directory {} has no *.pfw or *.pfw.gz files",
                dir.display()
            ),
        ));
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// The paths in an `--inputs-from` list: one a line (a trailing `\r` is
/// dropped), lines that are empty or only whitespace skipped.
/// `-` reads the list from stdin.
fn read_input_list(list: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    let bytes = if list.as_os_str() == STDIN_PATH {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| with_path(e, "cannot read --inputs-from", Path::new("- (stdin)")))?;
        bytes
    } else {
        std::fs::read(list).map_err(|e| with_path(e, "cannot read --inputs-from", list))?
    };
    Ok(bytes
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| PathBuf::from(std::ffi::OsStr::from_bytes(line)))
        .collect())
}

/// Opens every path and checks it is readable before anything is written;
/// `-` (stdin) may appear once at most.
pub fn inspect_all(paths: &[PathBuf]) -> std::io::Result<Vec<Input>> {
    let stdin_count = paths.iter().filter(|p| p.as_os_str() == STDIN_PATH).count();
    if stdin_count > 1 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "`-` (stdin) is given {stdin_count} times among the inputs; it can be read once"
            ),
        ));
    }
    paths.iter().map(|p| inspect(p)).collect()
}

/// Sum of the inputs' sizes on disk; `None` when one is a stream.
pub fn total_len_bytes(inputs: &[Input]) -> Option<u64> {
    inputs.iter().map(|i| i.len_bytes).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&[u8]], max: u64, cut: bool) -> Result<Vec<Vec<u8>>, LongLine> {
        let mut s = LineSplitter::new(LineRules {
            max_line_bytes: max,
            cut_long_lines: cut,
        });
        let mut blocks = Vec::new();
        for piece in pieces {
            if let Some(block) = s.push(piece.to_vec())? {
                blocks.push(block);
            }
        }
        blocks.extend(s.finish());
        Ok(blocks)
    }

    #[test]
    fn blocks_are_whole_lines_and_cover_the_input() {
        let blocks = split(&[b"ab", b"c\nde", b"f\ng", b"h"], 100, false).unwrap();
        assert_eq!(
            blocks,
            vec![b"abc\n".to_vec(), b"def\n".to_vec(), b"gh".to_vec()]
        );
    }

    #[test]
    fn a_long_line_is_an_error_at_its_offset() {
        let err = split(&[b"ok\nxxxx", b"xxxx", b"xx\n"], 8, false).unwrap_err();
        assert_eq!(
            err,
            LongLine {
                offset: 3,
                max_line_bytes: 8
            }
        );
        // Ending in the same piece it started in.
        let err = split(&[b"a\n", b"0123456789\nb\n"], 8, false).unwrap_err();
        assert_eq!(err.offset, 2);
        // Exactly the maximum, newline included, is fine.
        assert!(split(&[b"1234567\n"], 8, false).is_ok());
    }

    #[test]
    fn cut_long_lines_hands_pieces_on_and_keeps_every_byte() {
        let input: Vec<u8> = (0..10_000u32)
            .map(|i| if i % 3001 == 3000 { b'\n' } else { b'x' })
            .collect();
        let pieces: Vec<&[u8]> = input.chunks(700).collect();
        let blocks = split(&pieces, 1000, true).unwrap();
        assert_eq!(blocks.concat(), input);
        assert!(blocks.iter().all(|b| b.len() <= 1700));
    }

    #[test]
    fn splitting_is_linear_in_a_long_line() {
        // 64 MiB in 1 MiB pieces: the carry is scanned once, not per piece.
        let piece = vec![b'x'; 1 << 20];
        let mut s = LineSplitter::new(LineRules {
            max_line_bytes: 1 << 30,
            cut_long_lines: false,
        });
        use iokernel::sys::Clock;
        let clock = iokernel::sys::real::RealClock::new();
        let start = clock.now();
        for _ in 0..64 {
            assert!(s.push(piece.clone()).unwrap().is_none());
        }
        assert_eq!(s.finish().map(|l| l.len()), Some(64 << 20));
        assert!(clock.now() - start < std::time::Duration::from_secs(10));
    }
}
