//! The output side of `iok merge` and `iok pgzip`: `-o -` (stdout as a
//! stream), `--force`, the check that no output name is an input, the
//! termination-signal watcher (with the cleanup helper of `janitor.rs`
//! for what no signal handler sees), and printing the summary without a
//! panic when stdout is gone.
//!
//! The writer owns creating, writing and removing files
//! (`iokernel::writer::output`); this module only decides what to ask it
//! for and refuses before anything is created.

use iokernel::sys::real::signal::{
    block_termination_signals, signal_name, wait_termination_signal,
};
use iokernel::writer::{planned_paths, CreatedFiles, WriterConfig};
use std::io::{Error, ErrorKind, Write};
use std::os::fd::{AsFd, IntoRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `-o -`: write to stdout.
pub const STDOUT_NAME: &str = "-";

/// What the writer is told about the output beyond its path.
#[derive(Clone, Debug, Default)]
pub struct OutputMode {
    /// Replace an existing regular output (`--force`).
    pub overwrite: bool,
    /// Write to this fd as a stream (a duplicate of stdout for `-o -`).
    pub stream_fd: Option<RawFd>,
    /// Files the writer creates, for the signal watcher to remove.
    pub created: Option<CreatedFiles>,
}

impl OutputMode {
    /// Apply to a writer configuration.
    pub fn apply(&self, config: WriterConfig) -> WriterConfig {
        config
            .overwrite(self.overwrite)
            .stream_fd(self.stream_fd)
            .created_files(self.created.clone())
    }
}

/// True for `-o -`.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == STDOUT_NAME
}

impl OutputMode {
    /// The output side of one `iok merge`/`pgzip` run: a registry of the
    /// files it creates, journalled to the cleanup helper (which removes
    /// them if the run is killed, see `janitor.rs`) and watched for
    /// termination signals (call before any other thread starts, see
    /// [`watch_signals`]), and stdout as the stream for `-o -`.
    ///
    /// `compressed` output (gzip) is refused for `-o -` when stdout is a
    /// terminal unless `force`, as gzip and pigz refuse it, before anything
    /// starts.
    pub fn for_run(output: &Path, force: bool, compressed: bool) -> std::io::Result<OutputMode> {
        use std::io::IsTerminal;
        if compressed && !force && is_stdout(output) && std::io::stdout().is_terminal() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "refusing to write compressed data to a terminal (-o - and stdout is a \
                 terminal): redirect stdout, or pass --force",
            ));
        }
        let created = crate::janitor::start().unwrap_or_else(|e| {
            eprintln!(
                "iok: warning: no cleanup helper ({e}): a partial output is removed on \
                 SIGINT, SIGTERM and SIGHUP, but not if iok is killed (SIGKILL) or crashes"
            );
            CreatedFiles::new()
        });
        watch_signals(created.clone(), output)?;
        let stream_fd = match is_stdout(output) {
            true => Some(stdout_fd()?),
            false => None,
        };
        Ok(OutputMode {
            overwrite: force,
            stream_fd,
            created: Some(created),
        })
    }
}

/// A duplicate of stdout for the writer to own (and close).
pub fn stdout_fd() -> std::io::Result<RawFd> {
    let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok(fd.into_raw_fd())
}

/// Refuse (naming both paths) when a path the writer will create or
/// replace, or stdout for `-o -`, is the same file as an input: same
/// device and inode, after following symlinks, so `..` paths, symlinks
/// and hard links are caught. Touches nothing.
pub fn check_aliases(inputs: &[PathBuf], config: &WriterConfig) -> std::io::Result<()> {
    let ids: Vec<(&PathBuf, (u64, u64))> = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| (p, (m.dev(), m.ino()))))
        .collect();
    let mut outputs: Vec<(String, (u64, u64))> = Vec::new();
    for path in planned_paths(config) {
        if let Ok(meta) = std::fs::metadata(&path) {
            outputs.push((path.display().to_string(), (meta.dev(), meta.ino())));
        }
    }
    if config.stream_fd.is_some() {
        let meta =
            std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?).metadata()?;
        // Only a regular file can be an input; a pipe or tty cannot.
        if meta.is_file() {
            outputs.push(("stdout".into(), (meta.dev(), meta.ino())));
        }
    }
    for (output, id) in &outputs {
        if let Some((input, _)) = ids.iter().find(|(_, input_id)| input_id == id) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "output {output} is the same file as input {} (device {}, inode {}): \
                     refusing to overwrite an input; nothing was written",
                    input.display(),
                    id.0,
                    id.1
                ),
            ));
        }
    }
    Ok(())
}

/// Block SIGINT, SIGTERM and SIGHUP and take them on a watcher thread
/// that removes every file in `created` (sealing it, so the writer creates
/// nothing more), says so on stderr and exits with 128 + the signal
/// number. Call before any other thread starts (the runtime, the progress
/// bar), so they all inherit the mask. The watcher does not wait for the
/// pipeline, so a read stuck on a never-ending input cannot hold it up.
pub fn watch_signals(created: CreatedFiles, output: &Path) -> std::io::Result<()> {
    block_termination_signals()?;
    let output = output.to_path_buf();
    iokernel::sys::real::thread::spawn_named("iok-signals".into(), move || {
        let Ok(signo) = wait_termination_signal() else {
            return;
        };
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for path in created.seal() {
            match std::fs::remove_file(&path) {
                Ok(()) => removed.push(path.display().to_string()),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => failed.push(format!("{} ({e})", path.display())),
            }
        }
        let mut what = if removed.is_empty() {
            format!("no partial output of {} to remove", output.display())
        } else {
            format!("removed {}", removed.join(", "))
        };
        if !failed.is_empty() {
            what.push_str(&format!("; could not remove {}", failed.join(", ")));
        }
        let _ = writeln!(
            std::io::stderr(),
            "iok: interrupted by {}; {what}",
            signal_name(signo)
        );
        crate::janitor::finish();
        std::process::exit(128 + signo);
    })?;
    Ok(())
}

/// `e`, with a hint to use `--force` when it says an output exists.
pub fn hint_force(e: Error) -> Error {
    if iokernel::writer::errno_of(&e) != Some(libc::EEXIST) {
        return e;
    }
    Error::new(
        e.kind(),
        format!("{e}; the output exists: pass --force to replace it"),
    )
}

/// Print the one-line summary: on stdout, or on stderr when stdout carries
/// the data (`-o -`). A closed stdout (`| head`, `| true`) is not an
/// error: the work is done and nobody is listening.
/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn print_summary(line: &str, data_on_stdout: bool) -> std::io::Result<()> {
    let written = if data_on_stdout {
        writeln!(std::io::stderr(), "{line}")
    } else {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}").and_then(|()| stdout.flush())
    };
    match written {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(e.kind(), format!("writing the summary: {e}"))),
        Ok(()) => Ok(()),
    }
}
