//! The ops workload: random scripts of file ops on several concurrent tasks
//! (each in its own directory, each with its own model of names, inodes,
//! contents and fd offsets) and a socket byte stream between two tasks.
//! Every result is checked as it arrives: a success must match the model
//! (short transfers allowed), a failure must be an error the model predicts
//! or a fault the simulator may inject (which must have changed nothing).
//! At the end the files on the simulated disk must equal the model; then
//! every file is fsynced, the machine loses power, and every file whose
//! syncs all succeeded must have survived intact.

use super::{sockets, ScriptRng};
use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags, Whence};
use iokernel::runtime;
use iokernel::sim::{self, OpClass, SimKernel, SimOptions};
use iokernel::sys::Errno;
use std::collections::BTreeMap;
use std::io::Error;
use std::os::fd::RawFd;
use std::sync::Arc;

/// File tasks per seed.
const TASKS: u64 = 3;
/// Script steps per task.
const STEPS_PER_TASK: u64 = 300;
/// Largest single write.
const MAX_WRITE_BYTES: u64 = 8192;
/// Offsets stay below this.
const MAX_OFFSET_BYTES: u64 = 48 * 1024;
/// File names per task directory.
const NAMES: u64 = 5;

/// How the client treats results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    /// Resumes short writes, treats a failed fsync as fatal for the file.
    Correct,
    /// The canary: takes every write as complete.
    IgnoresShortWrites,
    /// The canary: retries a failed fsync and trusts the retry.
    RetriesFailedFsync,
}

/// Which errnos an op may fail with because the simulator injected them.
#[derive(Clone)]
pub(crate) struct Injectable(Arc<SimOptions>);

impl Injectable {
    pub(crate) fn new(kernel: &SimKernel) -> Injectable {
        Injectable(Arc::new(kernel.core().options().clone()))
    }

    /// The run's options.
    pub(crate) fn options(&self) -> &SimOptions {
        &self.0
    }

    pub(crate) fn allows(&self, class: OpClass, err: &Error) -> bool {
        let Some(raw) = errno_of(err) else {
            return false;
        };
        let faults = self.0.faults_of(class);
        let injected = faults.probability > 0.0
            && faults.errnos.contains(&Errno(raw))
            && raw != Errno::EINTR.raw();
        // A readiness driver fails the op whose wait could not be
        // registered with the poller's errno.
        let socket = matches!(
            class,
            OpClass::SocketSetup | OpClass::SocketRead | OpClass::SocketWrite
        );
        let registration = socket
            && self.0.poller_faults.register_probability > 0.0
            && self.0.driver.register_errnos().contains(&Errno(raw));
        injected || registration
    }
}

/// The errno of `err`: its raw OS error, or the [`Errno`] its source
/// chain carries (errors that name their call and path wrap it).
pub(crate) fn errno_of(err: &Error) -> Option<i32> {
    if let Some(raw) = err.raw_os_error() {
        return Some(raw);
    }
    let mut source = err
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(e) = source {
        if let Some(errno) = e.downcast_ref::<Errno>() {
            return Some(errno.raw());
        }
        source = e.source();
    }
    None
}

#[derive(Clone, Debug)]
struct OpenFile {
    inode: u64,
    offset: u64,
    append: bool,
}

/// One task's model of its directory.
#[derive(Default)]
struct Model {
    names: BTreeMap<String, u64>,
    data: BTreeMap<u64, Vec<u8>>,
    fds: BTreeMap<RawFd, OpenFile>,
    next_inode: u64,
    /// Inodes an fsync failed on: their durability is unknown.
    poisoned: Vec<u64>,
}

fn write_at(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset as usize..end].copy_from_slice(bytes);
}

struct FileTask {
    task: u64,
    dir: String,
    rng: ScriptRng,
    model: Model,
    faults: Injectable,
    client: Client,
    step: u64,
}

type Step = Result<(), String>;

impl FileTask {
    fn fail(&self, what: String) -> String {
        format!("task {} step {}: {what}", self.task, self.step)
    }

    /// An error is acceptable if the model predicts it or it is injectable.
    fn expect_err(&self, class: OpClass, op: &str, err: &Error, predicted: Option<Errno>) -> Step {
        if predicted.is_some_and(|e| err.raw_os_error() == Some(e.raw()))
            || self.faults.allows(class, err)
        {
            return Ok(());
        }
        Err(self.fail(format!("{op} failed with {err} (predicted {predicted:?})")))
    }

    fn path(&self, name: u64) -> String {
        format!("{}/f{name}", self.dir)
    }

    fn random_path(&mut self) -> String {
        let name = self.rng.below(NAMES);
        self.path(name)
    }

    fn pick_fd(&mut self) -> Option<(RawFd, OpenFile)> {
        let n = self.model.fds.len() as u64;
        if n == 0 {
            return None;
        }
        let i = self.rng.below(n) as usize;
        self.model.fds.iter().nth(i).map(|(fd, f)| (*fd, f.clone()))
    }

    async fn open(&mut self) -> Step {
        let name = self.rng.below(NAMES);
        let path = self.path(name);
        let (create, excl, trunc, append) = (
            self.rng.below(3) != 0,
            self.rng.below(6) == 0,
            self.rng.below(5) == 0,
            self.rng.below(4) == 0,
        );
        let mut flags = OpenFlags::RDWR;
        for (on, flag) in [
            (create, OpenFlags::CREAT),
            (excl, OpenFlags::EXCL),
            (trunc, OpenFlags::TRUNC),
            (append, OpenFlags::APPEND),
        ] {
            if on {
                flags = flags | flag;
            }
        }
        let exists = self.model.names.contains_key(&path);
        let predicted = match (exists, create, excl) {
            (false, false, _) => Some(Errno::ENOENT),
            (true, true, true) => Some(Errno::EEXIST),
            _ => None,
        };
        match io::open(&path, flags, 0o644).await {
            Err(e) => self.expect_err(OpClass::Open, "open", &e, predicted),
            Ok(fd) if predicted.is_some() => Err(self.fail(format!(
                "open {path} succeeded (fd {fd}), predicted {predicted:?}"
            ))),
            Ok(fd) => {
                let inode = match self.model.names.get(&path) {
                    Some(&inode) => inode,
                    None => {
                        self.model.next_inode += 1;
                        let inode = self.model.next_inode;
                        self.model.names.insert(path, inode);
                        self.model.data.insert(inode, Vec::new());
                        inode
                    }
                };
                if trunc {
                    self.model.data.insert(inode, Vec::new());
                }
                self.model.fds.insert(
                    fd,
                    OpenFile {
                        inode,
                        offset: 0,
                        append,
                    },
                );
                Ok(())
            }
        }
    }

    async fn write(&mut self, positional: bool) -> Step {
        let Some((fd, file)) = self.pick_fd() else {
            return Ok(());
        };
        let len = 1 + self.rng.below(MAX_WRITE_BYTES) as usize;
        let bytes = self.rng.bytes(len);
        let offset = self.rng.below(MAX_OFFSET_BYTES);
        let result = if positional {
            io::pwrite(fd, bytes.clone(), offset).await
        } else {
            io::write(fd, bytes.clone()).await
        };
        let BufResult(result, _) = result;
        let n = match result {
            Err(e) => return self.expect_err(OpClass::Write, "write", &e, None),
            Ok(n) if n == 0 || n > len => {
                return Err(self.fail(format!("write of {len} returned {n}")))
            }
            Ok(n) if self.client == Client::IgnoresShortWrites => {
                let _ = n;
                len
            }
            Ok(n) => n,
        };
        let data = self
            .model
            .data
            .get_mut(&file.inode)
            .expect("open inode has data");
        let at = match (positional, file.append) {
            (_, true) => data.len() as u64,
            (true, false) => offset,
            (false, false) => file.offset,
        };
        write_at(data, at, &bytes[..n]);
        if !positional {
            self.model.fds.get_mut(&fd).expect("fd is open").offset = at + n as u64;
        }
        Ok(())
    }

    async fn read(&mut self, positional: bool) -> Step {
        let Some((fd, file)) = self.pick_fd() else {
            return Ok(());
        };
        let len = 1 + self.rng.below(MAX_WRITE_BYTES) as usize;
        let offset = if positional {
            self.rng.below(MAX_OFFSET_BYTES)
        } else {
            file.offset
        };
        let BufResult(result, buf) = if positional {
            io::pread(fd, vec![0u8; len], offset).await
        } else {
            io::read(fd, vec![0u8; len]).await
        };
        let n = match result {
            Err(e) => return self.expect_err(OpClass::Read, "read", &e, None),
            Ok(n) => n,
        };
        let data = &self.model.data[&file.inode];
        let available = data.len().saturating_sub(offset as usize);
        if n > len.min(available) || (n == 0 && available > 0) {
            return Err(self.fail(format!(
                "read of {len} at {offset} returned {n}, {available} available"
            )));
        }
        if n > 0 && buf[..n] != data[offset as usize..offset as usize + n] {
            return Err(self.fail(format!("read at {offset}: {n} bytes differ from the model")));
        }
        if !positional {
            self.model.fds.get_mut(&fd).expect("fd is open").offset = offset + n as u64;
        }
        Ok(())
    }

    async fn truncate(&mut self) -> Step {
        let Some((fd, file)) = self.pick_fd() else {
            return Ok(());
        };
        let len = self.rng.below(MAX_OFFSET_BYTES);
        match io::ftruncate(fd, len).await {
            Err(e) => self.expect_err(OpClass::Write, "ftruncate", &e, None),
            Ok(()) => {
                self.model
                    .data
                    .get_mut(&file.inode)
                    .expect("open inode")
                    .resize(len as usize, 0);
                Ok(())
            }
        }
    }

    async fn sync(&mut self) -> Step {
        let Some((fd, file)) = self.pick_fd() else {
            return Ok(());
        };
        let result = if self.rng.below(2) == 0 {
            io::fsync(fd).await
        } else {
            io::fdatasync(fd).await
        };
        match result {
            // Dropping the cached pages of a synced file is only a hint: it
            // has no fault class, and later reads must still match the model.
            // Only the correct client does it, so the canaries keep the
            // schedules (and the seeds that catch them) they had before.
            Ok(()) if self.client == Client::Correct => io::fadvise(fd, 0, 0, io::Advice::DontNeed)
                .await
                .map_err(|e| self.fail(format!("fadvise(DONTNEED) after fsync: {e}"))),
            Ok(()) => Ok(()),
            Err(e) if self.client == Client::RetriesFailedFsync => {
                // The canary: retry until it "works", forget the failure.
                let _ = e;
                retry(&self.faults, OpClass::Sync, || io::fsync(fd))
                    .await
                    .map_err(|e| self.fail(format!("fsync: {e}")))
            }
            Err(e) => {
                self.model.poisoned.push(file.inode);
                self.expect_err(OpClass::Sync, "fsync", &e, None)
            }
        }
    }

    async fn seek_and_stat(&mut self) -> Step {
        let Some((fd, file)) = self.pick_fd() else {
            return Ok(());
        };
        let to = self.rng.below(MAX_OFFSET_BYTES);
        match io::lseek(fd, to as i64, Whence::Set).await {
            Err(e) => self.expect_err(OpClass::Metadata, "lseek", &e, None)?,
            Ok(at) if at != to => return Err(self.fail(format!("lseek to {to} returned {at}"))),
            Ok(_) => self.model.fds.get_mut(&fd).expect("fd is open").offset = to,
        }
        match io::fstat(fd).await {
            Err(e) => self.expect_err(OpClass::Metadata, "fstat", &e, None),
            Ok(st) if st.size_bytes != self.model.data[&file.inode].len() as u64 => {
                Err(self.fail(format!(
                    "fstat size {} but the model has {}",
                    st.size_bytes,
                    self.model.data[&file.inode].len()
                )))
            }
            Ok(_) => Ok(()),
        }
    }

    async fn rename(&mut self) -> Step {
        let (from, to) = (self.random_path(), self.random_path());
        if from == to {
            return Ok(());
        }
        let predicted = (!self.model.names.contains_key(&from)).then_some(Errno::ENOENT);
        match io::rename(&from, &to).await {
            Err(e) => self.expect_err(OpClass::Metadata, "rename", &e, predicted),
            Ok(()) if predicted.is_some() => {
                Err(self.fail(format!("rename of missing {from} succeeded")))
            }
            Ok(()) => {
                let inode = self.model.names.remove(&from).expect("checked above");
                self.model.names.insert(to, inode);
                Ok(())
            }
        }
    }

    async fn unlink(&mut self) -> Step {
        let path = self.random_path();
        let predicted = (!self.model.names.contains_key(&path)).then_some(Errno::ENOENT);
        match io::unlink(&path).await {
            Err(e) => self.expect_err(OpClass::Metadata, "unlink", &e, predicted),
            Ok(()) if predicted.is_some() => {
                Err(self.fail(format!("unlink of missing {path} succeeded")))
            }
            Ok(()) => {
                self.model.names.remove(&path);
                Ok(())
            }
        }
    }

    async fn close(&mut self, fd: RawFd) -> Step {
        self.model.fds.remove(&fd);
        match io::close(fd).await {
            Ok(()) => Ok(()),
            // Linux releases the fd even when close reports an error.
            Err(e) => self.expect_err(OpClass::Metadata, "close", &e, None),
        }
    }

    async fn step(&mut self) -> Step {
        match self.rng.below(20) {
            0..=2 => self.open().await,
            3..=5 => self.write(true).await,
            6..=7 => self.write(false).await,
            8..=10 => self.read(true).await,
            11..=12 => self.read(false).await,
            13 => self.truncate().await,
            14 => self.sync().await,
            15 => self.seek_and_stat().await,
            16 => self.rename().await,
            17 => self.unlink().await,
            _ => match self.pick_fd() {
                Some((fd, _)) if self.model.fds.len() > 2 => self.close(fd).await,
                _ => self.open().await,
            },
        }
    }

    async fn run(mut self) -> Result<Model, String> {
        retry(&self.faults, OpClass::Open, || io::mkdir(&self.dir, 0o755))
            .await
            .map_err(|e| self.fail(format!("mkdir: {e}")))?;
        while self.step < STEPS_PER_TASK {
            self.step().await?;
            self.step += 1;
        }
        let fds: Vec<RawFd> = self.model.fds.keys().copied().collect();
        for fd in fds {
            self.close(fd).await?;
        }
        Ok(self.model)
    }
}

/// Retry an op while it fails with injectable errors (they change nothing).
pub(crate) async fn retry<T, F, Fut>(
    faults: &Injectable,
    class: OpClass,
    mut op: F,
) -> std::io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    for _ in 0..1000 {
        match op().await {
            Err(e) if faults.allows(class, &e) => continue,
            other => return other,
        }
    }
    Err(Error::other(
        "still failing after 1000 retries of injected faults",
    ))
}

/// The files on the simulated disk must equal the models.
fn check_disk(kernel: &SimKernel, models: &[(String, Model)]) -> Result<(), String> {
    for (dir, model) in models {
        let mut on_disk = kernel
            .list_dir(dir)
            .ok_or_else(|| format!("{dir} is missing"))?;
        on_disk.sort();
        let expected: Vec<String> = model
            .names
            .keys()
            .map(|p| p.rsplit('/').next().unwrap_or("").to_string())
            .collect();
        if on_disk != expected {
            return Err(format!("{dir} holds {on_disk:?}, the model {expected:?}"));
        }
        for (path, inode) in &model.names {
            if kernel.read_file(path).as_deref() != Some(&model.data[inode][..]) {
                return Err(format!("{path} differs from the model"));
            }
        }
    }
    Ok(())
}

/// Fsync every file and directory, crash, and check what survived.
/// A third of the files are left unsynced, so the crash tears or loses
/// their pending writes; only the synced ones are checked.
fn check_power_loss(
    kernel: &Arc<SimKernel>,
    seed: u64,
    models: &[(String, Model)],
    client: Client,
) -> Result<usize, String> {
    let mut rng = ScriptRng::new(seed, 0xC4A5);
    let faults = Injectable::new(kernel);
    // (path, expected content, durability unknown because an fsync failed)
    let paths: Vec<(String, Vec<u8>, bool)> = models
        .iter()
        .flat_map(|(_, m)| {
            m.names
                .iter()
                .map(|(p, i)| (p.clone(), m.data[i].clone(), m.poisoned.contains(i)))
        })
        .filter(|_| rng.below(3) != 0)
        .collect();
    let dirs: Vec<String> = std::iter::once("/".to_string())
        .chain(models.iter().map(|(d, _)| d.clone()))
        .collect();
    let synced = sim::run(kernel, async move {
        let mut durable = Vec::new();
        for (path, content, poisoned) in paths {
            if sync_path(&faults, &path, client).await && !poisoned {
                durable.push((path, content));
            }
        }
        for dir in dirs {
            if !sync_path(&faults, &dir, client).await {
                return Vec::new();
            }
        }
        durable
    })
    .map_err(|e| e.to_string())?;
    kernel.crash();
    for (path, content) in &synced {
        let after = kernel.read_file(path);
        if after.as_deref() != Some(&content[..]) {
            let got = after
                .as_ref()
                .map_or("no file".to_string(), |d| format!("{} bytes", d.len()));
            let at = after_diff(after.as_deref().unwrap_or(&[]), content);
            return Err(format!(
                "{path} was fsynced (and its directory) but lost data in the power loss: {got} after, {} expected, first difference at {at}",
                content.len()
            ));
        }
    }
    Ok(synced.len())
}

fn after_diff(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Open and fsync `path`; true when the fsync succeeded (the canary client
/// retries a failed fsync and believes the retry).
async fn sync_path(faults: &Injectable, path: &str, client: Client) -> bool {
    let Ok(fd) = retry(faults, OpClass::Open, || {
        io::open(path, OpenFlags::RDONLY, 0)
    })
    .await
    else {
        return false;
    };
    let mut ok = io::fsync(fd).await.is_ok();
    if !ok && client == Client::RetriesFailedFsync {
        ok = retry(faults, OpClass::Sync, || io::fsync(fd)).await.is_ok();
    }
    let _ = io::close(fd).await;
    ok
}

/// Run the ops workload for `seed`.
pub(crate) fn run(kernel: &Arc<SimKernel>, seed: u64, client: Client) -> Result<String, String> {
    let faults = Injectable::new(kernel);
    let stream_faults = faults.clone();
    let results = sim::run(kernel, async move {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let dir = format!("/t{task}");
                let file_task = FileTask {
                    task,
                    dir: dir.clone(),
                    rng: ScriptRng::new(seed, task),
                    model: Model::default(),
                    faults: faults.clone(),
                    client,
                    step: 0,
                };
                runtime::spawn(async move { file_task.run().await.map(|m| (dir, m)) })
            })
            .collect();
        let stream = runtime::spawn(sockets::stream_check(seed, stream_faults.clone()));
        let datagrams = runtime::spawn(sockets::datagram_check(seed, stream_faults.clone()));
        let unix = runtime::spawn(sockets::unix_stream_check(seed, stream_faults));
        // Every task runs to its end before any failure is reported, so a
        // failing run stops at the same point each time it is replayed.
        let mut models = Vec::new();
        for task in tasks {
            models.push(task.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        let streamed = stream.await.map_err(|e| e.to_string()).and_then(|r| r);
        let datagrams = datagrams.await.map_err(|e| e.to_string()).and_then(|r| r);
        let unix = unix.await.map_err(|e| e.to_string()).and_then(|r| r);
        let models = models.into_iter().collect::<Result<Vec<_>, String>>()?;
        Ok::<_, String>((models, streamed?, datagrams?, unix?))
    })
    .map_err(|e| e.to_string())??;
    let (models, streamed, datagrams, unix) = results;
    check_disk(kernel, &models)?;
    if kernel.open_fds() != 0 {
        return Err(format!(
            "{} fds still open after every task closed its own",
            kernel.open_fds()
        ));
    }
    let survived = check_power_loss(kernel, seed, &models, client)?;
    Ok(format!(
        "{} files checked, {survived} survived power loss, {streamed} bytes streamed, \
         {datagrams}, {unix} bytes over a Unix stream",
        models.iter().map(|(_, m)| m.names.len()).sum::<usize>()
    ))
}
