//! A simulated run driven by fuzz-chosen bytes: a seed, a fault plan
//! (`SimOptions`: per-class errno probabilities, short I/O, completion
//! reordering) and a short script of file ops, run with `sim::new_kernel` /
//! `sim::run` and checked step by step against the reference model the
//! state-machine tests use (`tests/file_model`): injected errnos change
//! nothing, short transfers move a prefix, and after every step every
//! file holds exactly what the model says.
//!
//! Input layout: bytes 0..8 seed; 8..16 per-class fault probability (each
//! byte / 255 × 0.5); 16 short-I/O probability (same scale); 17 bit 0
//! reordering; then 4 bytes per op: kind, slot/name, and two parameters.

#![no_main]

#[path = "../../tests/file_model/mod.rs"]
mod file_model;

use file_model::{FileOp, Model, Session, Target, NAMES, SLOTS, SPAN_BYTES};
use iokernel::sim::{self, OpClass, SimOptions};
use libfuzzer_sys::fuzz_target;

const OPS_MAX: usize = 48;

fn options(data: &[u8]) -> (SimOptions, bool) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let mut seed = [0u8; 8];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = byte(i);
    }
    let scale = |b: u8| f64::from(b) / 255.0 * 0.5;
    let mut options = SimOptions::with_faults(u64::from_le_bytes(seed), 0.0);
    for class in OpClass::ALL {
        options.faults[class.index()].probability = scale(byte(8 + class.index()));
    }
    options.short_io_probability = scale(byte(16));
    options.reorder_completions = byte(17) & 1 == 1;
    let faults = (8..17).any(|i| byte(i) != 0);
    (options, faults)
}

fn op(bytes: &[u8]) -> FileOp {
    let [kind, who, p, q] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let slot = usize::from(who) % SLOTS;
    let name = usize::from(who / 4) % NAMES.len();
    let offset = u64::from(p) % SPAN_BYTES;
    let len = usize::from(q) % 48;
    let data: Vec<u8> = (0..len as u8).map(|i| p ^ i.wrapping_mul(31)).collect();
    match kind % 10 {
        0 | 1 => FileOp::Open {
            slot,
            name,
            create: p & 1 == 1 || p & 2 == 2,
            truncate: q & 1 == 1,
        },
        2 => FileOp::Write { slot, data },
        3 => FileOp::Pwrite { slot, offset, data },
        4 => FileOp::Read {
            slot,
            len: usize::from(q),
        },
        5 => FileOp::Pread {
            slot,
            offset,
            len: usize::from(q),
        },
        6 => FileOp::Truncate {
            slot,
            len_bytes: u64::from(q) % SPAN_BYTES,
        },
        7 => FileOp::Rename {
            from: name,
            to: usize::from(p) % NAMES.len(),
        },
        8 => FileOp::Fsync { slot },
        _ => FileOp::Close { slot },
    }
}

fuzz_target!(|data: &[u8]| {
    let (options, faults) = options(data);
    let kernel = sim::new_kernel(options).expect("options built from legal parts");
    let mut session = Session {
        target: Target::Sim(kernel),
        model: Model::new(faults),
    };
    let script = data.get(18..).unwrap_or(&[]);
    for step in script.chunks_exact(4).take(OPS_MAX) {
        session.step(&op(step));
        session.check_contents();
    }
    session.close_all();
    session.check_contents();
});
