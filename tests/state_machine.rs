//! State-machine property tests of the file ops: random sequences of
//! open / write / pwrite / read / pread / ftruncate / rename / fsync / close
//! run through the public awaitable ops and checked, step by step, against a
//! reference model of files, names and open handles.
//!
//! Three targets run the same sequences:
//! * the simulated kernel with faults on: the model accepts an injected
//!   errno (legal for the op's class; the op then changed nothing) and short
//!   transfers (the model advances by the count the op returned, which must
//!   be at least one byte when any could move);
//! * the simulated kernel with faults off, and the real kernel in a temp dir
//!   on the runtime's default backend: every result must match the model
//!   exactly (no errors but the ones the model predicts, full transfers).
//!
//! After every step the content of every name is compared with the model.
//! `proptest-state-machine` generates the sequences and shrinks a failure to
//! a minimal one, which proptest persists under `proptest-regressions/`.

use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::Runtime;
use iokernel::sim::{self, OpClass, SimKernel, SimOptions};
use iokernel::sys::Errno;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;

/// File names the sequences use; few, so renames and reopens collide.
const NAMES: [&str; 3] = ["a", "b", "c"];
/// Open handles a sequence juggles at once.
const SLOTS: usize = 3;
/// Largest offset or length a step uses: small files, many overlaps.
const SPAN_BYTES: u64 = 160;

#[derive(Clone, Debug)]
enum FileOp {
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
    fn slot(&self) -> Option<usize> {
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

/// What generation needs to know: the run's seed and which slots were
/// opened (an open can still fail at run time; steps on a slot whose open
/// failed are skipped and say so in the model's log).
#[derive(Clone, Debug)]
struct Shape {
    seed: u64,
    opened: [bool; SLOTS],
}

struct FileOps;

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

impl ReferenceStateMachine for FileOps {
    type State = Shape;
    type Transition = FileOp;

    fn init_state() -> BoxedStrategy<Shape> {
        any::<u64>()
            .prop_map(|seed| Shape {
                seed,
                opened: [false; SLOTS],
            })
            .boxed()
    }

    fn transitions(state: &Shape) -> BoxedStrategy<FileOp> {
        let (open, closed): (Vec<usize>, Vec<usize>) =
            (0..SLOTS).partition(|&slot| state.opened[slot]);
        let name = 0..NAMES.len();
        let renames = (name.clone(), name.clone())
            .prop_map(|(from, to)| FileOp::Rename { from, to })
            .boxed();
        let opens = (!closed.is_empty()).then(|| {
            (
                prop::sample::select(closed),
                name,
                prop::bool::weighted(0.8),
                prop::bool::weighted(0.2),
            )
                .prop_map(|(slot, name, create, truncate)| FileOp::Open {
                    slot,
                    name,
                    create,
                    truncate,
                })
                .boxed()
        });
        let Some(slot) = (!open.is_empty()).then(|| prop::sample::select(open)) else {
            return prop_oneof![3 => opens.expect("every slot is closed"), 1 => renames].boxed();
        };
        let offset = 0..SPAN_BYTES;
        let len = 0..SPAN_BYTES as usize;
        let on_handles = prop_oneof![
            3 => (slot.clone(), data()).prop_map(|(slot, data)| FileOp::Write { slot, data }),
            3 => (slot.clone(), offset.clone(), data())
                .prop_map(|(slot, offset, data)| FileOp::Pwrite { slot, offset, data }),
            2 => (slot.clone(), len.clone()).prop_map(|(slot, len)| FileOp::Read { slot, len }),
            2 => (slot.clone(), offset.clone(), len)
                .prop_map(|(slot, offset, len)| FileOp::Pread { slot, offset, len }),
            1 => (slot.clone(), offset).prop_map(|(slot, len_bytes)| FileOp::Truncate { slot, len_bytes }),
            1 => slot.clone().prop_map(|slot| FileOp::Fsync { slot }),
            1 => slot.prop_map(|slot| FileOp::Close { slot }),
        ];
        match opens {
            Some(opens) => prop_oneof![2 => opens, 12 => on_handles, 1 => renames].boxed(),
            None => prop_oneof![12 => on_handles, 1 => renames].boxed(),
        }
    }

    fn preconditions(state: &Shape, op: &FileOp) -> bool {
        match (op, op.slot()) {
            (FileOp::Open { slot, .. }, _) => !state.opened[*slot],
            (_, Some(slot)) => state.opened[slot],
            (_, None) => true,
        }
    }

    fn apply(mut state: Shape, op: &FileOp) -> Shape {
        match *op {
            FileOp::Open { slot, .. } => state.opened[slot] = true,
            FileOp::Close { slot } => state.opened[slot] = false,
            _ => {}
        }
        state
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
struct Model {
    names: BTreeMap<&'static str, usize>,
    inodes: Vec<Vec<u8>>,
    handles: [Option<Handle>; SLOTS],
    /// Whether injected errnos and short transfers are legal.
    faults: bool,
}

impl Model {
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
            assert!((1..=wanted).contains(&moved), "{op:?}: moved {moved} of {wanted}");
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
enum Target {
    Sim(Arc<SimKernel>),
    Real {
        runtime: Runtime,
        dir: tempfile::TempDir,
    },
}

impl Target {
    fn run<F: Future>(&self, future: F) -> F::Output {
        match self {
            Target::Sim(kernel) => sim::run(kernel, future).expect("sim run"),
            Target::Real { runtime, .. } => runtime.block_on(future),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        match self {
            Target::Sim(_) => PathBuf::from(format!("/{name}")),
            Target::Real { dir, .. } => dir.path().join(name),
        }
    }

    fn content(&self, name: &str) -> Option<Vec<u8>> {
        match self {
            Target::Sim(kernel) => kernel.read_file(self.path(name)),
            Target::Real { .. } => std::fs::read(self.path(name)).ok(),
        }
    }
}

/// The system under test: a target, the model it is checked against.
struct Session {
    target: Target,
    model: Model,
}

impl Session {
    fn step(&mut self, op: &FileOp) {
        if let Some(slot) = op.slot() {
            if self.model.handles[slot].is_none() {
                return; // its open failed (injected fault or ENOENT)
            }
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
        let opened = self.target.run(io::open(self.target.path(name), flags, 0o644));
        let exists = self.model.names.get(name).copied();
        match (opened, exists) {
            (Ok(fd), Some(inode)) => {
                if truncate {
                    self.model.inodes[inode].clear();
                }
                self.model.handles[slot] = Some(Handle { fd, inode, cursor: 0 });
            }
            (Ok(fd), None) => {
                assert!(create, "{op:?}: opened a file that does not exist");
                self.model.inodes.push(Vec::new());
                let inode = self.model.inodes.len() - 1;
                self.model.names.insert(name, inode);
                self.model.handles[slot] = Some(Handle { fd, inode, cursor: 0 });
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
            Some(offset) => self.target.run(io::pread(handle.fd, vec![0u8; len], offset)),
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
    fn check_contents(&self) {
        for name in NAMES {
            let expected = self.model.names.get(name).map(|&i| &self.model.inodes[i]);
            let actual = self.target.content(name);
            assert_eq!(actual.as_ref(), expected, "content of {name}");
        }
    }

    fn close_all(&mut self) {
        for handle in self.model.handles.iter_mut().filter_map(Option::take) {
            let closed = self.target.run(io::close(handle.fd));
            assert!(closed.is_ok(), "closing fd {} at teardown: {closed:?}", handle.fd);
        }
    }
}

/// Which target a test runs on.
trait TargetKind {
    fn target(seed: u64) -> Target;
    fn faults() -> bool;
}

struct SimWithFaults;
struct SimQuiet;
struct RealKernel;

impl TargetKind for SimWithFaults {
    fn target(seed: u64) -> Target {
        Target::Sim(sim::new_kernel(SimOptions::with_faults(seed, 0.15)).unwrap())
    }
    fn faults() -> bool {
        true
    }
}

impl TargetKind for SimQuiet {
    fn target(seed: u64) -> Target {
        Target::Sim(sim::new_kernel(SimOptions::new(seed)).unwrap())
    }
    fn faults() -> bool {
        false
    }
}

impl TargetKind for RealKernel {
    fn target(_seed: u64) -> Target {
        Target::Real {
            runtime: Runtime::builder()
                .name("state-machine")
                .compute_threads(1)
                .build()
                .expect("runtime"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
    fn faults() -> bool {
        false
    }
}

struct FileOpsTest<K>(PhantomData<K>);

impl<K: TargetKind> StateMachineTest for FileOpsTest<K> {
    type SystemUnderTest = Session;
    type Reference = FileOps;

    fn init_test(shape: &Shape) -> Session {
        Session {
            target: K::target(shape.seed),
            model: Model {
                faults: K::faults(),
                ..Model::default()
            },
        }
    }

    fn apply(mut session: Session, _: &Shape, op: FileOp) -> Session {
        session.step(&op);
        session
    }

    fn check_invariants(session: &Session, _: &Shape) {
        session.check_contents();
    }

    fn teardown(mut session: Session) {
        session.close_all();
        session.check_contents();
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Shrunk failures land next to the crate, committed with the fix.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/state_machine.txt",
        ))),
        ..Config::default()
    }
}

prop_state_machine! {
    #![proptest_config(config(256))]

    /// Faults on: injected errnos and short transfers are accounted for.
    #[test]
    fn file_ops_match_the_model_on_the_sim_with_faults(sequential 1..40 => FileOpsTest<SimWithFaults>);
}

prop_state_machine! {
    #![proptest_config(config(128))]

    /// Faults off: the sim must behave exactly like the model.
    #[test]
    fn file_ops_match_the_model_on_the_quiet_sim(sequential 1..40 => FileOpsTest<SimQuiet>);
}

prop_state_machine! {
    #![proptest_config(config(48))]

    /// The real kernel in a temp dir, on the runtime's default backend.
    #[test]
    fn file_ops_match_the_model_on_the_real_kernel(sequential 1..40 => FileOpsTest<RealKernel>);
}
