//! The stripe size, validated once: [`StripeBytes`].
//!
//! A stripe size the writer takes (from `--stripe-size`, a
//! [`WriterConfig`](crate::writer::WriterConfig), `IOKERNEL_MIMIC_LUSTRE` or a
//! file's `lustre.lov`) is one Lustre would take: a positive multiple of the
//! 64 KiB stripe unit that fits the 32-bit `lmm_stripe_size` of the layout.
//! Every entry point converts through [`StripeBytes::new`], so the rule and
//! its limits live here only.

use std::fmt;
use std::str::FromStr;

/// Lustre stripe sizes are multiples of this (`LOV_MIN_STRIPE_SIZE`).
pub const LUSTRE_STRIPE_UNIT_BYTES: u64 = 64 << 10;
/// Largest Lustre stripe count (`LOV_MAX_STRIPE_COUNT`).
pub const LUSTRE_MAX_STRIPE_COUNT: u32 = 2000;

/// A valid stripe size in bytes: positive, a multiple of
/// [`LUSTRE_STRIPE_UNIT_BYTES`] (64 KiB), at most [`StripeBytes::MAX`]
/// (4 GiB - 64 KiB, the largest such multiple a `u32` holds).
///
/// Built with [`StripeBytes::new`] (also in a `const`), `TryFrom<u64>` or
/// from a size string (`"1M"`, `"64K"`, `"4194304"`); displayed as the
/// shortest exact size string, which parses back to the same value.
///
/// ```
/// use iokernel::writer::StripeBytes;
///
/// const FOUR_MIB: StripeBytes = match StripeBytes::new(4 << 20) {
///     Ok(stripe) => stripe,
///     Err(_) => panic!("not a stripe size"),
/// };
/// let stripe = StripeBytes::try_from(4u64 << 20).unwrap();
/// assert_eq!(stripe, FOUR_MIB);
/// assert_eq!(stripe.get(), 4 << 20);
/// assert_eq!(stripe.to_string(), "4M");
/// assert_eq!("4MiB".parse::<StripeBytes>(), Ok(stripe));
/// assert!(StripeBytes::try_from(100u64 << 10).is_err()); // not a multiple of 64 KiB
/// assert!(StripeBytes::try_from(4u64 << 30).is_err()); // does not fit 32 bits
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StripeBytes(u32);

impl StripeBytes {
    /// The smallest stripe: one 64 KiB stripe unit.
    pub const MIN: StripeBytes = StripeBytes(LUSTRE_STRIPE_UNIT_BYTES as u32);
    /// The largest stripe: 4 GiB - 64 KiB (4294901760 bytes).
    pub const MAX: StripeBytes =
        StripeBytes((u32::MAX as u64 / LUSTRE_STRIPE_UNIT_BYTES * LUSTRE_STRIPE_UNIT_BYTES) as u32);
    /// Lustre's own default stripe, 1 MiB: used for a stripe count
    /// requested without a size.
    pub const LUSTRE_DEFAULT: StripeBytes = StripeBytes(1 << 20);

    /// Checks `bytes` against the rule; the error says which part failed.
    pub const fn new(bytes: u64) -> Result<StripeBytes, StripeBytesError> {
        if bytes == 0 {
            Err(StripeBytesError::Zero)
        } else if bytes % LUSTRE_STRIPE_UNIT_BYTES != 0 {
            Err(StripeBytesError::NotMultiple { bytes })
        } else if bytes > StripeBytes::MAX.0 as u64 {
            Err(StripeBytesError::TooLarge { bytes })
        } else {
            Ok(StripeBytes(bytes as u32))
        }
    }

    /// The size in bytes.
    pub const fn get(self) -> u64 {
        self.0 as u64
    }

    /// The size as the 32-bit `lmm_stripe_size` of a `lustre.lov` layout;
    /// lossless by construction.
    pub const fn get_u32(self) -> u32 {
        self.0
    }
}

impl TryFrom<u64> for StripeBytes {
    type Error = StripeBytesError;

    fn try_from(bytes: u64) -> Result<StripeBytes, StripeBytesError> {
        StripeBytes::new(bytes)
    }
}

impl From<StripeBytes> for u64 {
    fn from(stripe: StripeBytes) -> u64 {
        stripe.get()
    }
}

impl FromStr for StripeBytes {
    /// The message of [`parse_size`] (naming the text) or of the
    /// [`StripeBytesError`], like `parse_size` itself.
    type Err = String;

    /// A size string as [`parse_size`] reads it (`64K`, `1M`, `4MiB`,
    /// `1048576`), then the stripe rule.
    fn from_str(text: &str) -> Result<StripeBytes, String> {
        let bytes = parse_size(text)?;
        StripeBytes::new(bytes).map_err(|e| e.to_string())
    }
}

impl fmt::Display for StripeBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.get();
        match [(30, "G"), (20, "M"), (10, "K")]
            .into_iter()
            .find(|&(shift, _)| bytes % (1 << shift) == 0)
        {
            Some((shift, suffix)) => write!(f, "{}{suffix}", bytes >> shift),
            None => write!(f, "{bytes}"),
        }
    }
}

/// Why a number is not a [`StripeBytes`]. `Copy`, so [`StripeBytes::new`]
/// can run in a `const`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StripeBytesError {
    /// 0 bytes.
    Zero,
    /// Not a multiple of [`LUSTRE_STRIPE_UNIT_BYTES`].
    NotMultiple {
        /// The size given.
        bytes: u64,
    },
    /// Above [`StripeBytes::MAX`].
    TooLarge {
        /// The size given.
        bytes: u64,
    },
}

impl fmt::Display for StripeBytesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = format!(
            "a stripe size must be a positive multiple of {LUSTRE_STRIPE_UNIT_BYTES} bytes \
             (64 KiB), at most {} bytes (4G - 64K: a Lustre stripe size is 32 bits)",
            StripeBytes::MAX.get()
        );
        match self {
            StripeBytesError::Zero => write!(f, "stripe size 0 is not positive: {rule}"),
            StripeBytesError::NotMultiple { bytes } => write!(
                f,
                "stripe size {bytes} bytes is not a multiple of 64 KiB: {rule}"
            ),
            StripeBytesError::TooLarge { bytes } => {
                write!(f, "stripe size {bytes} bytes is above the maximum: {rule}")
            }
        }
    }
}

impl std::error::Error for StripeBytesError {}

/// Parses a byte size for the CLI and the mimic variable: a decimal number
/// with an optional binary suffix `K`, `M` or `G` (also `Ki`/`KiB`, ...,
/// case-insensitive; `B` means bytes). `KB`/`MB`/`GB` are refused because
/// they are ambiguous. Errors name the input.
///
/// ```
/// use iokernel::writer::parse_size;
///
/// assert_eq!(parse_size("64K"), Ok(64 << 10));
/// assert_eq!(parse_size("1M"), Ok(1 << 20));
/// assert_eq!(parse_size("4MiB"), Ok(4 << 20));
/// assert_eq!(parse_size("1048576"), Ok(1 << 20));
/// assert!(parse_size("1MB").unwrap_err().contains("\"1MB\""));
/// ```
pub fn parse_size(input: &str) -> Result<u64, String> {
    let text = input.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "invalid size {input:?}: expected a number with an optional K, M or G suffix \
             (e.g. 64K, 1M, 4MiB)"
        ));
    }
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "ki" | "kib" => 10,
        "m" | "mi" | "mib" => 20,
        "g" | "gi" | "gib" => 30,
        other => {
            return Err(format!(
                "invalid size {input:?}: unknown suffix {other:?} (use K, M or G, \
                 optionally followed by iB; sizes are binary)"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("invalid size {input:?}: does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KIB: u64 = 1 << 10;
    const GIB: u64 = 1 << 30;

    #[test]
    fn try_from_edges() {
        assert_eq!(StripeBytes::try_from(0), Err(StripeBytesError::Zero));
        assert_eq!(
            StripeBytes::try_from(64 * KIB - 1),
            Err(StripeBytesError::NotMultiple {
                bytes: 64 * KIB - 1
            })
        );
        assert_eq!(
            StripeBytes::try_from(64 * KIB).map(StripeBytes::get),
            Ok(64 * KIB)
        );
        assert_eq!(StripeBytes::try_from(64 * KIB), Ok(StripeBytes::MIN));
        assert_eq!(
            StripeBytes::try_from(4 * GIB - 64 * KIB).map(StripeBytes::get),
            Ok(4_294_901_760)
        );
        assert_eq!(
            StripeBytes::try_from(4 * GIB - 64 * KIB),
            Ok(StripeBytes::MAX)
        );
        assert_eq!(StripeBytes::MAX.get_u32(), 0xFFFF_0000);
        assert_eq!(
            StripeBytes::try_from(4 * GIB),
            Err(StripeBytesError::TooLarge { bytes: 4 * GIB })
        );
        assert_eq!(
            StripeBytes::try_from(u64::MAX),
            Err(StripeBytesError::NotMultiple { bytes: u64::MAX })
        );
        assert_eq!(
            StripeBytes::try_from(u64::MAX - (64 * KIB - 1)),
            Err(StripeBytesError::TooLarge {
                bytes: u64::MAX - (64 * KIB - 1)
            })
        );
        for bad in [
            1,
            4096,
            100 * KIB,
            64 * KIB + 1,
            4 * GIB - 1,
            3 * GIB + 4096,
        ] {
            assert_eq!(
                StripeBytes::try_from(bad),
                Err(StripeBytesError::NotMultiple { bytes: bad }),
                "{bad}"
            );
        }
        assert_eq!(StripeBytes::LUSTRE_DEFAULT.get(), 1 << 20);
    }

    #[test]
    fn errors_state_the_rule_and_the_value() {
        for (bytes, says) in [
            (0, "0 is not positive"),
            (100 * KIB, "102400 bytes is not a multiple of 64 KiB"),
            (4 * GIB, "4294967296 bytes is above the maximum"),
        ] {
            let text = StripeBytes::try_from(bytes).unwrap_err().to_string();
            assert!(text.contains(says), "{text}");
            assert!(text.contains("65536 bytes (64 KiB)"), "{text}");
            assert!(text.contains("at most 4294901760 bytes"), "{text}");
        }
    }

    #[test]
    fn from_str_reads_size_strings() {
        assert_eq!(
            "1M".parse::<StripeBytes>().map(StripeBytes::get),
            Ok(1 << 20)
        );
        assert_eq!("64K".parse(), Ok(StripeBytes::MIN));
        assert_eq!("4194240K".parse(), Ok(StripeBytes::MAX));
        for (text, err) in [
            ("100K", StripeBytesError::NotMultiple { bytes: 100 * KIB }),
            ("4G", StripeBytesError::TooLarge { bytes: 4 * GIB }),
            ("0", StripeBytesError::Zero),
        ] {
            assert_eq!(text.parse::<StripeBytes>(), Err(err.to_string()), "{text}");
        }
        let err = "12Q".parse::<StripeBytes>().unwrap_err();
        assert!(err.contains("invalid size \"12Q\""), "{err}");
    }

    #[test]
    fn display_is_the_shortest_exact_size() {
        assert_eq!(StripeBytes::MIN.to_string(), "64K");
        assert_eq!(StripeBytes::LUSTRE_DEFAULT.to_string(), "1M");
        assert_eq!(StripeBytes::try_from(3 * GIB).unwrap().to_string(), "3G");
        assert_eq!(StripeBytes::MAX.to_string(), "4194240K");
    }

    proptest! {
        #[test]
        fn multiples_of_the_unit_up_to_max_are_valid_and_round_trip(units in 1u64..=65535) {
            let bytes = units * LUSTRE_STRIPE_UNIT_BYTES;
            let stripe = StripeBytes::try_from(bytes).unwrap();
            prop_assert_eq!(stripe.get(), bytes);
            prop_assert_eq!(u64::from(stripe.get_u32()), bytes);
            prop_assert_eq!(stripe.to_string().parse::<StripeBytes>(), Ok(stripe));
        }

        #[test]
        fn everything_else_is_refused(bytes in any::<u64>()) {
            let valid = bytes > 0
                && bytes % LUSTRE_STRIPE_UNIT_BYTES == 0
                && bytes <= u64::from(u32::MAX);
            prop_assert_eq!(StripeBytes::try_from(bytes).is_ok(), valid);
        }
    }
}
