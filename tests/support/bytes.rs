//! Comparing byte streams in tests (included with `#[path]` by the test
//! files that use it): a mismatch names the first differing byte instead
//! of printing both streams.

/// `got` is `want`, or the panic names `what`, both lengths and the first
/// byte where they differ.
#[track_caller]
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, want {}; first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}
