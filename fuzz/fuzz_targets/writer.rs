//! The parallel writer on the simulated kernel, driven by fuzz-chosen
//! bytes: a `WriterConfig` (layout, gzip level, ordered, content, final
//! newline, durability, stripe and chunk size, producers), the producers'
//! payloads (lines longer than a stripe, empty lines, no final newline,
//! binary, line pieces) and a fault plan. The output must decode to what
//! was written, padded slots must start with a chunk and gzip members
//! follow each other with nothing between, or the run must fail with an
//! errno; never panic or hang.
//!
//! The decoding and the checks live in `tests/writer_fuzz` (input layout
//! documented there), shared with `tests/writer_fuzz_corpus.rs`, which
//! replays the seed corpus under `cargo nextest`.

#![no_main]

#[path = "../../tests/writer_fuzz/mod.rs"]
mod writer_fuzz;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    writer_fuzz::check(data);
});
