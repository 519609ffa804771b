//! The `lustre.lov` xattr parser on arbitrary bytes: it never panics, and a
//! layout it accepts re-encodes (`encode_v1`) to a blob that parses back to
//! the same stripe size and count (`iokernel::writer::lustre::fuzz_parse_lov`).
//! A v1 header built from the input's first six bytes (its stripe size
//! written raw over a valid one, so invalid sizes are read too) is also
//! checked, so the round trip is exercised even when random bytes rarely
//! parse.

#![no_main]

use iokernel::writer::{encode_v1, parse_lov, StripeBytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    iokernel::writer::lustre::fuzz_parse_lov(data);
    if let [a, b, c, d, e, f, ..] = *data {
        let stripe_bytes = u32::from_le_bytes([a, b, c, d]);
        let stripe_count = u16::from_le_bytes([e, f]);
        let mut blob = encode_v1(StripeBytes::MIN, stripe_count);
        blob[24..28].copy_from_slice(&stripe_bytes.to_le_bytes()); // lmm_stripe_size
        if let Ok(stripe) = StripeBytes::try_from(u64::from(stripe_bytes)) {
            assert_eq!(blob, encode_v1(stripe, stripe_count));
        }
        if let Ok(layout) = parse_lov(&blob) {
            assert_eq!(layout.stripe_bytes, u64::from(stripe_bytes));
            assert_eq!(layout.stripe_count, u32::from(stripe_count));
        }
        // Truncating a valid blob anywhere must be an error, never a panic
        // or a layout read from past the end.
        for cut in 0..blob.len() {
            assert!(parse_lov(&blob[..cut]).is_err(), "{cut}-byte prefix parsed");
        }
    }
});
