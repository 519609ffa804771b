//! `iok`'s size arguments and the `IOKERNEL_MIMIC_LUSTRE` value on
//! arbitrary text: `writer::parse_size` must agree with an independent
//! reading of its documented grammar (decimal digits, optional binary
//! suffix K/M/G with optional `i`/`iB`, or `B`; case-insensitive; spaces
//! around are ignored; overflow is an error that names the input), and
//! accepted sizes round-trip through their plain and suffixed spellings.
//! `LayoutInfo::detect` with the text as the mimic value accepts it exactly
//! when it is `<size>:<count>` with a valid Lustre stripe and count.

#![no_main]

use iokernel::writer::{parse_size, LayoutInfo, SizingSource, StripeBytes};
use libfuzzer_sys::fuzz_target;

/// The documented grammar, written independently of the library.
fn expected_size(input: &str) -> Option<u64> {
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "ki" | "kib" => 10,
        "m" | "mi" | "mib" => 20,
        "g" | "gi" | "gib" => 30,
        _ => return None,
    };
    let value: u128 = digits.parse().ok()?;
    let bytes = value.checked_mul(1u128 << shift)?;
    u64::try_from(bytes).ok()
}

fn check_size(text: &str) {
    let parsed = parse_size(text);
    assert_eq!(
        parsed.as_ref().ok().copied(),
        expected_size(text),
        "{text:?} -> {parsed:?}"
    );
    match parsed {
        Ok(bytes) => {
            assert_eq!(parse_size(&bytes.to_string()), Ok(bytes));
            for (shift, unit) in [(10, "K"), (20, "MiB"), (30, "g")] {
                if bytes % (1 << shift) == 0 {
                    assert_eq!(parse_size(&format!("{}{unit}", bytes >> shift)), Ok(bytes));
                }
            }
        }
        Err(message) => assert!(message.contains(&format!("{text:?}")), "{message}"),
    }
}

fn check_mimic(text: &str) {
    let detected = LayoutInfo::detect(0xEF53, 4096, None, Some(text));
    if text.trim().is_empty() {
        assert_eq!(detected.map(|i| i.source), Ok(SizingSource::BlockSize));
        return;
    }
    let expected = text.split_once(':').and_then(|(size, count)| {
        let stripe = expected_size(size)?;
        let count: u32 = count.trim().parse().ok()?;
        let stripe_ok = stripe > 0 && stripe % (64 << 10) == 0 && stripe <= u64::from(u32::MAX);
        assert_eq!(StripeBytes::try_from(stripe).is_ok(), stripe_ok, "{stripe}");
        (stripe_ok && (1..=2000).contains(&count)).then_some((stripe, count))
    });
    match (detected, expected) {
        (Ok(info), Some((stripe, count))) => {
            assert_eq!(info.source, SizingSource::MimicEnv);
            assert_eq!((info.stripe_bytes, info.stripe_count), (stripe, count));
        }
        (Err(_), None) => {}
        (got, want) => panic!("mimic {text:?}: got {got:?}, grammar says {want:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check_size(&text);
    check_mimic(&text);
});
