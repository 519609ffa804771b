//! The cleanup helper of `iok merge` and `iok pgzip`: a child process that
//! removes what the run created when the run dies without removing it
//! itself.
//!
//! The signal watcher (`output.rs`) removes the partial output on SIGINT,
//! SIGTERM and SIGHUP, but nothing in a process survives SIGKILL or a
//! crash, and schedulers send SIGKILL soon after SIGTERM: Open MPI's
//! mpirun one second later (`odls_base_sigkill_timeout`) or at once when
//! its wait is cut short, Slurm after `KillWait`. So each run starts this
//! helper first (`iok cleanup-helper`, hidden) in a process group of its
//! own, out of reach of signals sent to the run's group, and hands it the
//! write end of a pipe that carries the run's [`CreatedFiles`] journal
//! ([`JournalRecord`]). The pipe's end is the run's end, however it came:
//! the helper then removes every file still listed that is the very file
//! the run created (same device and inode as when it was listed), says so
//! on stderr, and exits. A run that finished or cleaned up has unlisted
//! everything, and the helper exits quietly.
//!
//! A run that ends by itself (finished, failed, or interrupted by a
//! signal it caught) ends the journal and waits for the helper before it
//! exits ([`finish`]), so the helper is never left to whatever reaps
//! orphans (in a container whose first process does not reap, each
//! orphaned helper would stay a zombie). Only a killed run's helper
//! outlives it.
//!
//! What it cannot cover: a file whose `open` completed but which the run
//! had not listed yet (the runtime lists it when it reaps the open), and a
//! helper killed first (SIGKILL to every process named iok, a scheduler
//! that kills a whole cgroup; the helper blocks SIGINT, SIGTERM and
//! SIGHUP).

use iokernel::sys::real::signal::block_termination_signals;
use iokernel::writer::{CreatedFiles, JournalRecord};
use std::io::{BufRead, Error, ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The hidden subcommand that runs the helper.
pub const SUBCOMMAND: &str = "cleanup-helper";

/// A file as the helper saw it when it was listed: `None` when it was
/// already gone (renamed or removed before the helper looked).
type FileId = Option<(u64, u64)>;

/// The longest [`finish`] waits for the helper (which may be removing
/// a run's files on a slow file system) before leaving it to finish alone.
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// The helper this process started, and the registry journalled to it.
static HELPER: Mutex<Option<(Child, CreatedFiles)>> = Mutex::new(None);

/// Start the helper and return a registry journalled to it. Call before
/// blocking the termination signals: the helper inherits the signal mask.
pub fn start() -> std::io::Result<CreatedFiles> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(&exe)
        .arg(SUBCOMMAND)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::new(e.kind(), format!("starting {}: {e}", exe.display())))?;
    let journal = child
        .stdin
        .take()
        .ok_or_else(|| Error::other("the helper's stdin was not piped"))?;
    let created = CreatedFiles::with_journal(journal);
    let earlier = HELPER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .replace((child, created.clone()));
    // One helper per run: a second start ends the first one's journal.
    if let Some(earlier) = earlier {
        end_and_reap(earlier);
    }
    Ok(created)
}

/// The run is ending by itself: end the helper's journal and wait for the
/// helper to exit (it removes what the run left listed, if anything), at
/// most [`FINISH_WAIT`]. No-op when no helper was started.
pub fn finish() {
    let helper = HELPER.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(helper) = helper {
        end_and_reap(helper);
    }
}

/// End `created`'s journal and wait for `child`, the helper reading it,
/// at most [`FINISH_WAIT`].
fn end_and_reap((mut child, created): (Child, CreatedFiles)) {
    created.end_journal();
    let mut waited = Duration::ZERO;
    let mut pause = Duration::from_micros(100);
    loop {
        match child.try_wait() {
            Ok(None) if waited < FINISH_WAIT => {
                std::thread::sleep(pause);
                waited += pause;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            // Exited, or still busy at the deadline (it then finishes on
            // its own, reaped by whoever reaps orphans), or not waitable.
            _ => return,
        }
    }
}

/// `iok cleanup-helper`: follow the journal on stdin to its end, then
/// remove what is still listed.
pub fn run() -> std::io::Result<()> {
    // Signals sent to every process named iok must not take the helper
    // before the run it watches: it ends when that run ends.
    block_termination_signals()?;
    let run_pid = std::os::unix::process::parent_id();
    let (listed, damaged) = follow(std::io::stdin().lock());
    let outcome = remove_leftovers(&listed);
    let mut said = String::new();
    if let Some(e) = damaged {
        said.push_str(&format!("iok: cleanup helper of pid {run_pid}: {e}\n"));
    }
    if !outcome.removed.is_empty() {
        said.push_str(&format!(
            "iok: pid {run_pid} ended without removing its partial output; removed {}\n",
            join(&outcome.removed)
        ));
    }
    for (path, why) in &outcome.left {
        said.push_str(&format!(
            "iok: pid {run_pid} ended without removing {}; left it: {why}\n",
            path.display()
        ));
    }
    if !said.is_empty() {
        // Nobody may be listening any more (the job's output closed).
        let _ = std::io::stderr().write_all(said.as_bytes());
    }
    Ok(())
}

/// Replay the journal: the files listed and not unlisted, in listing
/// order, each with its identity when listed; and the error that ended
/// the replay early, if one did (the records before it still count).
fn follow(mut journal: impl BufRead) -> (Vec<(PathBuf, FileId)>, Option<Error>) {
    let mut listed: Vec<(PathBuf, FileId)> = Vec::new();
    loop {
        match JournalRecord::read_from(&mut journal) {
            Ok(None) => return (listed, None),
            Ok(Some(JournalRecord::Listed(path))) => {
                let id = file_id(&path);
                listed.retain(|(p, _)| *p != path);
                listed.push((path, id));
            }
            Ok(Some(JournalRecord::Unlisted(path))) => listed.retain(|(p, _)| *p != path),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (listed, Some(e)),
        }
    }
}

/// Device and inode of the regular file at `path` (not following a
/// symlink); `None` for anything else or nothing.
fn file_id(path: &Path) -> FileId {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.is_file().then(|| (meta.dev(), meta.ino()))
}

#[derive(Debug, Default, PartialEq)]
struct Outcome {
    removed: Vec<PathBuf>,
    /// Listed files not removed, and why.
    left: Vec<(PathBuf, String)>,
}

/// Remove each listed file that is still the file that was listed.
fn remove_leftovers(listed: &[(PathBuf, FileId)]) -> Outcome {
    let mut outcome = Outcome::default();
    for (path, id) in listed {
        let Some(id) = id else {
            // Gone before it could be identified: nothing to remove, and
            // whatever has the name now is not provably the run's.
            continue;
        };
        match file_id(path) {
            None => {}
            Some(now) if now != *id => outcome.left.push((
                path.clone(),
                "another file has its name now (replaced since the run created it)".into(),
            )),
            Some(_) => match std::fs::remove_file(path) {
                Ok(()) => outcome.removed.push(path.clone()),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => outcome
                    .left
                    .push((path.clone(), format!("removing it: {e}"))),
            },
        }
    }
    outcome
}

fn join(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(records: &[JournalRecord]) -> Vec<u8> {
        records.iter().flat_map(|r| r.encode()).collect()
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("iok-janitor-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// What is listed and never unlisted is removed; what was unlisted
    /// (renamed into place, kept) is not touched.
    #[test]
    fn removes_what_is_still_listed_and_nothing_else() {
        let dir = scratch("listed");
        let temp = dir.join(".out.iok-tmp.1.0");
        let kept = dir.join("kept");
        std::fs::write(&temp, b"partial").unwrap();
        std::fs::write(&kept, b"finished").unwrap();
        let bytes = journal(&[
            JournalRecord::Listed(temp.clone()),
            JournalRecord::Listed(kept.clone()),
            JournalRecord::Unlisted(kept.clone()),
        ]);
        let (listed, damaged) = follow(&bytes[..]);
        assert!(damaged.is_none());
        let outcome = remove_leftovers(&listed);
        assert_eq!(outcome.removed, std::slice::from_ref(&temp));
        assert!(outcome.left.is_empty());
        assert!(!temp.exists());
        assert_eq!(std::fs::read(&kept).unwrap(), b"finished");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A file replaced after it was listed (another run took the name) is
    /// someone else's: left, with the reason.
    #[test]
    fn leaves_a_file_replaced_since_it_was_listed() {
        let dir = scratch("replaced");
        let out = dir.join("out.pfw");
        std::fs::write(&out, b"ours").unwrap();
        let bytes = journal(&[JournalRecord::Listed(out.clone())]);
        let (listed, _) = follow(&bytes[..]);
        // Replace it: a new inode under the same name.
        std::fs::remove_file(&out).unwrap();
        let holder = dir.join("holder");
        std::fs::write(&holder, b"keeps the old inode number busy").unwrap();
        std::fs::write(&out, b"theirs").unwrap();
        let outcome = remove_leftovers(&listed);
        assert!(outcome.removed.is_empty(), "{outcome:?}");
        assert_eq!(outcome.left.len(), 1, "{outcome:?}");
        assert!(outcome.left[0].1.contains("another file"), "{outcome:?}");
        assert_eq!(std::fs::read(&out).unwrap(), b"theirs");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A record cut off by the run's death ends the replay with an error;
    /// the records before it still count.
    #[test]
    fn a_cut_off_record_keeps_the_ones_before_it() {
        let dir = scratch("cut");
        let first = dir.join("first");
        std::fs::write(&first, b"x").unwrap();
        let mut bytes = journal(&[JournalRecord::Listed(first.clone())]);
        let cut = JournalRecord::Listed(dir.join("second")).encode();
        bytes.extend_from_slice(&cut[..cut.len() - 1]);
        let (listed, damaged) = follow(&bytes[..]);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, first);
        let damaged = damaged.expect("the cut record is reported");
        assert!(damaged.to_string().contains("cut off"), "{damaged}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A symlink or directory at a listed name is never the run's regular
    /// file: not removed.
    #[test]
    fn only_regular_files_are_identified() {
        let dir = scratch("kinds");
        assert_eq!(file_id(&dir), None);
        let link = dir.join("link");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert_eq!(file_id(&link), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
