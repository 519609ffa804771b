use super::*;
use crate::sys::sim::options::SimOptions;

fn fs() -> SimFs {
    SimFs::new(&SimOptions::new(1))
}

fn limits() -> Limits {
    Limits {
        per_point_max: 10_000,
        exhaustive_items_max: 12,
        torn_per_write: 3,
        granularity_bytes: 512,
        seed: 1,
    }
}

/// Distinct recovered trees over every candidate.
fn distinct(fs: &SimFs) -> (usize, bool, HashSet<u64>) {
    let items = fs.pending();
    let generated = candidates(&items, &limits());
    let digests: HashSet<u64> = generated
        .choices
        .iter()
        .map(|c| fs.recovered(&items, c).tree_digest())
        .collect();
    (items.len(), generated.complete, digests)
}

#[test]
fn crash_states_of_two_unsynced_writes_to_a_durable_file() {
    let mut fs = fs();
    fs.write_file_durable(b"/f", b"").unwrap();
    let ino = fs.lookup(ROOT, b"/f").unwrap();
    fs.write(ino, 0, b"aaaa");
    fs.write(ino, 4, b"bbbb");
    let (items, complete, digests) = distinct(&fs);
    // Two writes, each lost or kept (too short to tear): "", "aaaa",
    // "\0\0\0\0bbbb", "aaaabbbb".
    assert_eq!((items, complete, digests.len()), (2, true, 4));
}

#[test]
fn crash_states_of_a_torn_write_end_on_sector_boundaries() {
    let mut fs = fs();
    fs.write_file_durable(b"/f", b"").unwrap();
    let ino = fs.lookup(ROOT, b"/f").unwrap();
    fs.write(ino, 0, &[7u8; 2048]);
    let items = fs.pending();
    let generated = candidates(&items, &limits());
    let mut sizes: Vec<u64> = generated
        .choices
        .iter()
        .map(|c| fs.recovered(&items, c).size(ino))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    // Boundaries 512, 1024, 1536 inside: all three torn prefixes, nothing, all.
    assert_eq!(sizes, vec![0, 512, 1024, 1536, 2048]);
    assert!(generated.complete);
    assert_eq!(tear_points(100, 2048, 512, 3), vec![412, 924, 1948]);
    assert_eq!(tear_points(0, 512, 512, 3), Vec::<u64>::new());
}

#[test]
fn crash_states_keep_a_rename_whole() {
    let mut fs = fs();
    fs.write_file_durable(b"/tmp", b"new").unwrap();
    fs.write_file_durable(b"/out", b"old").unwrap();
    let plan = fs.plan_rename(b"/tmp", b"/out").unwrap().unwrap();
    fs.rename(plan);
    let items = fs.pending();
    // One unit: /tmp removed and /out replaced, together.
    assert_eq!(items.len(), 1, "{items:?}");
    let generated = candidates(&items, &limits());
    type Names = (Option<Vec<u8>>, Option<Vec<u8>>);
    let mut seen: Vec<Names> = generated
        .choices
        .iter()
        .map(|c| {
            let r = fs.recovered(&items, c);
            (r.read_file(b"/tmp"), r.read_file(b"/out"))
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        vec![
            (None, Some(b"new".to_vec())),
            (Some(b"new".to_vec()), Some(b"old".to_vec())),
        ]
    );
}

#[test]
fn crash_states_of_a_created_file_count_name_and_data() {
    let mut fs = fs();
    let ino = fs.create_file(ROOT, b"log", 0o644);
    fs.write(ino, 0, b"x");
    // Items: the write and the name. States: no file; empty file; "x".
    let (items, complete, digests) = distinct(&fs);
    assert_eq!((items, complete, digests.len()), (2, true, 3));
    fs.sync_file(ino);
    fs.sync_dir(ROOT);
    assert_eq!(distinct(&fs).0, 0);
}

#[test]
fn crash_states_are_capped_by_the_budget_and_say_so() {
    let mut fs = fs();
    fs.write_file_durable(b"/f", b"").unwrap();
    let ino = fs.lookup(ROOT, b"/f").unwrap();
    for i in 0..20u64 {
        fs.write(ino, i * 10, b"0123456789");
    }
    let items = fs.pending();
    let capped = Limits {
        per_point_max: 50,
        ..limits()
    };
    let generated = candidates(&items, &capped);
    assert_eq!(generated.choices.len(), 50);
    assert!(!generated.complete);
    // The extremes always come first.
    assert_eq!(generated.choices[0], vec![Keep::Whole; 20]);
    assert_eq!(generated.choices[1], vec![Keep::Lost; 20]);
}

#[test]
fn a_failed_fsync_leaves_nothing_pending_to_crash_into() {
    let mut fs = fs();
    fs.write_file_durable(b"/f", b"v1").unwrap();
    let ino = fs.lookup(ROOT, b"/f").unwrap();
    fs.write(ino, 0, b"v2");
    assert!(fs.drop_dirty(ino));
    let items = fs.pending();
    assert!(items.is_empty());
    let only = fs.recovered(&items, &[]);
    assert_eq!(only.read_file(b"/f").unwrap(), b"v1");
}
