//! The writer fuzz target's check (`tests/writer_fuzz`), run on every
//! input of the committed seed corpus `fuzz/corpus/writer/` and on a
//! sweep of generated inputs, so `cargo nextest` exercises it without
//! nightly or cargo-fuzz.

mod writer_fuzz;

use std::path::Path;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/writer");
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_committed_seed_input_passes_the_check() {
    let inputs = corpus();
    assert!(
        inputs.len() >= 5,
        "the seed corpus has {} inputs",
        inputs.len()
    );
    let mut finished = 0;
    let mut failed = 0;
    let mut boundaries = 0;
    for (name, bytes) in &inputs {
        let outcome = writer_fuzz::check(bytes);
        eprintln!("{name}: {outcome:?}");
        if outcome.finished {
            finished += 1;
            assert!(outcome.bytes > 0, "{name}: nothing was compared");
        } else {
            failed += 1;
        }
        boundaries += outcome.boundaries;
    }
    assert!(finished >= 3, "only {finished} seed runs finished");
    assert!(
        failed >= 1,
        "no seed run failed: the error path went unchecked"
    );
    assert!(
        boundaries >= 2,
        "{boundaries} padded stripe boundaries checked"
    );
}

/// A padded gzip case with no faults: two producers, lines longer than a
/// stripe, 256-byte chunks.
fn padded_gzip_case() -> Vec<u8> {
    let mut data = vec![9, 0, 0, 0, 0, 0, 0, 0];
    // padded-striped, gzip 1, JSON lines, 2 producers, 64 KiB stripe.
    data.extend([1, 1, 0b10, 1, 0]);
    data.extend([0; 9]);
    for i in 0..6u8 {
        data.extend([i % 2, 8]);
        data.extend(format!("{{\"i\":{i:02}}}").bytes().take(8));
    }
    data.extend([9, 4, 10, 6]); // two long lines (kind 3), one per producer
    data.extend([0, 5]);
    data.extend(b"last!");
    data
}

/// The checks catch what they look for: the same finished run, its file
/// then damaged on the simulated disk, is refused.
#[test]
fn the_check_refuses_a_damaged_output() {
    use iokernel::sim;
    let case = writer_fuzz::decode(&padded_gzip_case());
    let kernel = sim::new_kernel(case.options.clone()).unwrap();
    let (finished, _) = writer_fuzz::run_case(&kernel, &case);
    let report = finished.expect("no faults: the writer finishes");
    let (boundaries, bytes) = writer_fuzz::check_output(&case, &kernel, &report);
    assert!(boundaries >= 1 && bytes > 128 << 10, "{boundaries} {bytes}");
    let path = report.files[0].clone();
    let good = kernel.read_file(&path).unwrap();

    let damaged = |bytes: Vec<u8>| {
        kernel.write_file_durable(&path, &bytes).unwrap();
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            writer_fuzz::check_output(&case, &kernel, &report)
        }));
        kernel.write_file_durable(&path, &good).unwrap();
        match refused {
            Ok(_) => String::new(),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "a panic without a message".into()),
        }
    };
    let members = writer_fuzz::members(&good);
    // A zero byte between the first two members.
    let second = members[1].0;
    let mut gap = good.clone();
    gap.insert(second, 0);
    let why = damaged(gap);
    assert!(
        why.contains("no gzip member at offset"),
        "a zero byte between members: {why:?}"
    );
    // The filler (empty members) left out: still valid gzip holding every
    // line, but the chunk after it no longer starts its slot.
    let unpadded: Vec<u8> = members
        .iter()
        .filter(|(_, _, decoded)| !decoded.is_empty())
        .flat_map(|(start, len, _)| good[*start..start + len].to_vec())
        .collect();
    assert!(unpadded.len() < good.len(), "the run wrote filler");
    let why = damaged(unpadded);
    assert!(
        why.contains("falls inside a member"),
        "the filler left out: {why:?}"
    );
    // The first slot cut off (it ends at a member start): its lines lost.
    let stripe = case.stripe_bytes as usize;
    let why = damaged(good[stripe..].to_vec());
    assert!(
        why.contains("decoded length"),
        "the first slot cut off: {why:?}"
    );
    // The file cut in the middle of a member.
    let why = damaged(good[..good.len() / 2].to_vec());
    assert!(why.contains("no gzip member"), "a cut member: {why:?}");
    // Untouched, the output passes.
    writer_fuzz::check_output(&case, &kernel, &report);
}
