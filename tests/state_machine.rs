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

mod file_model;

use file_model::{FileOp, Model, Session, Target, NAMES, SLOTS, SPAN_BYTES};
use iokernel::runtime::Runtime;
use iokernel::sim::{self, SimOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::marker::PhantomData;

/// What generation needs to know: the run's seed and which slots were
/// opened. An open can still fail at run time (an injected fault, or
/// `ENOENT` without `O_CREAT`); the session then skips the steps on that
/// slot until it is opened again.
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
            model: Model::new(K::faults()),
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
