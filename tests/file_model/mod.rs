//! The reference model of files, names and open handles shared by the
//! state-machine tests (`tests/state_machine.rs`) and the `sim_ops` fuzz
//! target (`fuzz/fuzz_targets/sim_ops.rs`): a [`FileOp`] script runs on a
//! [`Target`] (the simulated kernel, or the real kernel in a temp dir) and
//! every result is checked against the [`Model`].
//!
//! With faults on, the model accepts an injected errno (legal for the op's
//! class; the op then changed nothing) and short transfers (the model
//! advances by the count the op returned, at least one byte when any could
//! move). With faults off, results must match the model exactly.

#![allow(dead_code)] // each includer uses its own part of the model

use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::Runtime;
use iokernel::sim::{self, OpClass, SimKernel};
use iokernel::sys::Errno;
use std::collections::BTreeMap;
use std::future::Future;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;

/// File names the sequences use; few, so renames and reopens collide.
pub const NAMES: [&str; 3] = ["a", "b", "c"];
/// Open handles a sequence juggles at once.
pub const SLOTS: usize = 3;
/// Largest offset or length a step uses: small files, many overlaps.
pub const SPAN_BYTES: u64 = 160;

/// One step of a script.
#[derive(Clone, Debug)]
pub enum FileOp {
    Open {
        slot: usize,
        name: usize,
        create: bool,
        truncate: bool,
    },
    Write {
        slot: usize,
        data: Vec<u8>,
    },
    Pwrite {
        slot: usize,
        offset: u64,
        data: Vec<u8>,
    },
    Read {
        slot: usize,
        len: usize,
    },
    Pread {
        slot: usize,
        offset: u64,
        len: usize,
    },
    Truncate {
        slot: usize,
        len_bytes: u64,
    },
    Rename {
        from: usize,
        to: usize,
    },
    Fsync {
        slot: usize,
    },
    Close {
        slot: usize,
    },
}

impl FileOp {
    /// The handle slot the op works on, if any.
    pub fn slot(&self) -> Option<usize> {
        match *self {
            FileOp::Open { .. } | FileOp::Rename { .. } => None,
            FileOp::Write { slot, .. }
            | FileOp::Pwrite { slot, .. }
            | FileOp::Read { slot, .. }
            | FileOp::Pread { slot, .. }
            | FileOp::Truncate { slot, .. }
            | FileOp::Fsync { slot }
            | FileOp::Close { slot } => Some(slot),
        }
    }
}

/// An open handle in the model: which file (inode) and the file offset.
#[derive(Clone, Copy, Debug)]
struct Handle {
    fd: RawFd,
    inode: usize,
    cursor: u64,
}

/// The reference model: names point at inodes; handles follow their inode
/// across renames; contents are plain byte vectors.
#[derive(Default)]
pub struct Model {
    names: BTreeMap<&'static str, usize>,
    inodes: Vec<Vec<u8>>,
    handles: [Option<Handle>; SLOTS],
    /// Whether injected errnos and short transfers are legal.
    pub faults: bool,
}

impl Model {
    /// An empty file system, no open handles.
    pub fn new(faults: bool) -> Model {
        Model {
            faults,
            ..Model::default()
        }
    }

    /// An op failed: legal only as an injected fault of `class` (which
    /// changes nothing), or as the errno the model itself predicts.
    fn accept_error(&self, op: &FileOp, class: OpClass, err: &std::io::Error) {
        let errno = Errno(err.raw_os_error().expect("op errors carry the errno"));
        assert!(
            self.faults && class.legal_errnos().contains(&errno) && errno != Errno::EINTR,
            "{op:?}: unexpected error {err}"
        );
    }

    /// A transfer moved `moved` of `wanted` bytes: all of them without
    /// faults; with faults a prefix of at least one byte.
    fn accept_count(&self, op: &FileOp, moved: usize, wanted: usize) {
        if self.faults && wanted > 0 {
            assert!(
                (1..=wanted).contains(&moved),
                "{op:?}: moved {moved} of {wanted}"
            );
        } else {
            assert_eq!(moved, wanted, "{op:?}: short transfer without faults");
        }
    }

    fn write_at(&mut self, inode: usize, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return; // a zero-length write never extends the file
        }
        let file = &mut self.inodes[inode];
        let end = offset as usize + data.len();
        if file.len() < end {
            file.resize(end, 0);
        }
        file[offset as usize..end].copy_from_slice(data);
    }

    fn bytes_at(&self, inode: usize, offset: u64, len: usize) -> &[u8] {
        let file = &self.inodes[inode];
        let start = (offset as usize).min(file.len());
        &file[start..(start + len).min(file.len())]
    }
}

/// Where the ops run: the simulated kernel or the real one.
pub enum Target {
    Sim(Arc<SimKernel>),
    Real {
        runtime: Runtime,
        dir: tempfile::TempDir,
    },
}

impl Target {
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        match self {
            Target::Sim(kernel) => sim::run(kernel, future).expect("sim run"),
            Target::Real { runtime, .. } => runtime.block_on(future),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        match self {
            Target::Sim(_) => PathBuf::from(format!("/{name}")),
            Target::Real { dir, .. } => dir.path().join(name),
        }
    }

    pub fn content(&self, name: &str) -> Option<Vec<u8>> {
        match self {
            Target::Sim(kernel) => kernel.read_file(self.path(name)),
            Target::Real { .. } => std::fs::read(self.path(name)).ok(),
        }
    }
}

/// The system under test: a target, the model it is checked against.
pub struct Session {
    pub target: Target,
    pub model: Model,
}

impl Session {
    pub fn step(&mut self, op: &FileOp) {
        match (op, op.slot()) {
            (FileOp::Open { slot, .. }, _) if self.model.handles[*slot].is_some() => {
                return; // the slot holds an open file already
            }
            (_, Some(slot)) if self.model.handles[slot].is_none() => {
                return; // its open failed (injected fault or ENOENT)
            }
            _ => {}
        }
        match op {
            FileOp::Open { .. } => self.open(op),
            FileOp::Write { .. } | FileOp::Pwrite { .. } => self.write(op),
            FileOp::Read { .. } | FileOp::Pread { .. } => self.read(op),
            FileOp::Truncate { slot, len_bytes } => {
                let handle = self.model.handles[*slot].unwrap();
                match self.target.run(io::ftruncate(handle.fd, *len_bytes)) {
                    Ok(()) => self.model.inodes[handle.inode].resize(*len_bytes as usize, 0),
                    Err(e) => self.model.accept_error(op, OpClass::Write, &e),
                }
            }
            FileOp::Rename { from, to } => self.rename(op, *from, *to),
            FileOp::Fsync { slot } => {
                let fd = self.model.handles[*slot].unwrap().fd;
                if let Err(e) = self.target.run(io::fsync(fd)) {
                    self.model.accept_error(op, OpClass::Sync, &e);
                }
            }
            FileOp::Close { slot } => {
                let fd = self.model.handles[*slot].take().unwrap().fd;
                let closed = self.target.run(io::close(fd));
                assert!(closed.is_ok(), "{op:?}: {closed:?}");
            }
        }
    }

    fn open(&mut self, op: &FileOp) {
        let FileOp::Open {
            slot,
            name,
            create,
            truncate,
        } = *op
        else {
            unreachable!("open() is only called for FileOp::Open")
        };
        let name = NAMES[name];
        let mut flags = OpenFlags::RDWR;
        if create {
            flags = flags | OpenFlags::CREAT;
        }
        if truncate {
            flags = flags | OpenFlags::TRUNC;
        }
        let opened = self
            .target
            .run(io::open(self.target.path(name), flags, 0o644));
        let exists = self.model.names.get(name).copied();
        match (opened, exists) {
            (Ok(fd), Some(inode)) => {
                if truncate {
                    self.model.inodes[inode].clear();
                }
                self.model.handles[slot] = Some(Handle {
                    fd,
                    inode,
                    cursor: 0,
                });
            }
            (Ok(fd), None) => {
                assert!(create, "{op:?}: opened a file that does not exist");
                self.model.inodes.push(Vec::new());
                let inode = self.model.inodes.len() - 1;
                self.model.names.insert(name, inode);
                self.model.handles[slot] = Some(Handle {
                    fd,
                    inode,
                    cursor: 0,
                });
            }
            (Err(e), None) if !create => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{op:?}: {e}");
            }
            (Err(e), _) => self.model.accept_error(op, OpClass::Open, &e),
        }
    }

    fn write(&mut self, op: &FileOp) {
        let (slot, offset, data) = match op {
            FileOp::Write { slot, data } => (*slot, None, data),
            FileOp::Pwrite { slot, offset, data } => (*slot, Some(*offset), data),
            _ => unreachable!("write() is only called for writes"),
        };
        let handle = self.model.handles[slot].unwrap();
        let BufResult(result, _) = match offset {
            Some(offset) => self.target.run(io::pwrite(handle.fd, data.clone(), offset)),
            None => self.target.run(io::write(handle.fd, data.clone())),
        };
        match result {
            Ok(moved) => {
                self.model.accept_count(op, moved, data.len());
                let at = offset.unwrap_or(handle.cursor);
                self.model.write_at(handle.inode, at, &data[..moved]);
                if offset.is_none() {
                    self.model.handles[slot].as_mut().unwrap().cursor += moved as u64;
                }
            }
            Err(e) => self.model.accept_error(op, OpClass::Write, &e),
        }
    }

    fn read(&mut self, op: &FileOp) {
        let (slot, offset, len) = match *op {
            FileOp::Read { slot, len } => (slot, None, len),
            FileOp::Pread { slot, offset, len } => (slot, Some(offset), len),
            _ => unreachable!("read() is only called for reads"),
        };
        let handle = self.model.handles[slot].unwrap();
        let BufResult(result, buf) = match offset {
            Some(offset) => self
                .target
                .run(io::pread(handle.fd, vec![0u8; len], offset)),
            None => self.target.run(io::read(handle.fd, vec![0u8; len])),
        };
        match result {
            Ok(moved) => {
                let at = offset.unwrap_or(handle.cursor);
                let expected = self.model.bytes_at(handle.inode, at, len);
                self.model.accept_count(op, moved, expected.len());
                assert_eq!(&buf[..moved], &expected[..moved], "{op:?}: bytes differ");
                if offset.is_none() {
                    self.model.handles[slot].as_mut().unwrap().cursor += moved as u64;
                }
            }
            Err(e) => self.model.accept_error(op, OpClass::Read, &e),
        }
    }

    fn rename(&mut self, op: &FileOp, from: usize, to: usize) {
        let (from, to) = (NAMES[from], NAMES[to]);
        let renamed = self
            .target
            .run(io::rename(self.target.path(from), self.target.path(to)));
        match (renamed, self.model.names.get(from).copied()) {
            (Ok(()), Some(inode)) => {
                self.model.names.remove(from);
                self.model.names.insert(to, inode);
            }
            (Ok(()), None) => panic!("{op:?}: renamed a name that does not exist"),
            (Err(e), None) => assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{op:?}: {e}"),
            (Err(e), Some(_)) => self.model.accept_error(op, OpClass::Metadata, &e),
        }
    }

    /// Every name holds exactly what the model says (or is absent).
    pub fn check_contents(&self) {
        for name in NAMES {
            let expected = self.model.names.get(name).map(|&i| &self.model.inodes[i]);
            let actual = self.target.content(name);
            assert_eq!(actual.as_ref(), expected, "content of {name}");
        }
    }

    pub fn close_all(&mut self) {
        for handle in self.model.handles.iter_mut().filter_map(Option::take) {
            let closed = self.target.run(io::close(handle.fd));
            assert!(
                closed.is_ok(),
                "closing fd {} at teardown: {closed:?}",
                handle.fd
            );
        }
    }
}
