//! Sizing the parallel writer from what the file system reports.
//!
//! Two pure steps, both unit- and property-tested:
//!
//! 1. [`LayoutInfo::detect`] turns the raw facts the caller gathered (the
//!    `fstatfs` magic, `st_blksize`, the `lustre.lov` xattr if on Lustre,
//!    and the `IOKERNEL_MIMIC_LUSTRE` variable) into a stripe size and count
//!    and says where they came from ([`SizingSource`]).
//! 2. [`WriterSizing::plan`] picks the chunk size (one producer buffer), the
//!    buffers per producer and the channel capacity so that everything the
//!    writer can hold in memory at once fits a budget.
//!
//! `IOKERNEL_MIMIC_LUSTRE=<stripe_bytes>:<count>` (e.g. `1M:4`) forces the
//! Lustre path on any file system, so the striped and padded-striped code is
//! exercised on a laptop or in CI. It takes precedence over detection, even
//! on a real Lustre mount; an empty value counts as unset. Only
//! `WriterConfig::from_env` reads the variable (`iok` does);
//! `WriterConfig::new` leaves `mimic_lustre` unset.

use std::fmt;

use super::fs_kind::FilesystemKind;
use super::lustre::{parse_lov, LovParseError};
pub use super::stripe::{parse_size, LUSTRE_MAX_STRIPE_COUNT, LUSTRE_STRIPE_UNIT_BYTES};
use super::stripe::{StripeBytes, StripeBytesError};

/// Environment variable that forces the Lustre path: `<stripe_bytes>:<count>`.
pub const MIMIC_LUSTRE_ENV: &str = "IOKERNEL_MIMIC_LUSTRE";
/// Chunks are whole pages.
pub const PAGE_BYTES: u64 = 4096;
/// On non-parallel file systems a chunk is at least this big.
pub const LOCAL_CHUNK_FLOOR_BYTES: u64 = 1 << 20;
/// A tight budget may shrink the chunk down to this, and no further.
pub const MIN_CHUNK_BYTES: u64 = 64 << 10;
/// Used when `st_blksize` is 0 (unknown).
pub const DEFAULT_BLOCK_BYTES: u64 = 4096;
/// Ideal buffers per producer: one filling while one is in flight.
const IDEAL_BUFFERS_PER_PRODUCER: u64 = 2;
/// The channel never holds more chunks than this.
const MAX_CHANNEL_CAPACITY: u64 = 1024;

/// Where a [`LayoutInfo`]'s stripe size came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SizingSource {
    /// The file's `lustre.lov` xattr.
    LustreXattr,
    /// The `IOKERNEL_MIMIC_LUSTRE` variable.
    MimicEnv,
    /// `st_blksize` (every file system other than Lustre-with-xattr).
    BlockSize,
    /// The writer's configuration (`WriterConfig::stripe_bytes`).
    Configured,
}

impl fmt::Display for SizingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizingSource::LustreXattr => "lustre.lov xattr",
            SizingSource::MimicEnv => MIMIC_LUSTRE_ENV,
            SizingSource::BlockSize => "st_blksize",
            SizingSource::Configured => "the writer configuration",
        })
    }
}

/// What the file system says about how a file is laid out.
///
/// On Lustre the stripe comes from the `lustre.lov` xattr (or from
/// `st_blksize`, which Lustre sets to the stripe size, when the xattr could
/// not be read). On GPFS and every other file system the "stripe" is
/// `st_blksize` and the count is 1.
///
/// ```
/// use iokernel::writer::{FilesystemKind, LayoutInfo, SizingSource};
///
/// let ext4 = LayoutInfo::detect(0xEF53, 4096, None, None).unwrap();
/// assert_eq!(ext4.fs_kind, FilesystemKind::Ext4);
/// assert_eq!(ext4.source, SizingSource::BlockSize);
///
/// let forced = LayoutInfo::detect(0xEF53, 4096, None, Some("4MiB:8")).unwrap();
/// assert_eq!(forced.fs_kind, FilesystemKind::Lustre);
/// assert_eq!((forced.stripe_bytes, forced.stripe_count), (4 << 20, 8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutInfo {
    /// The file system (Lustre when forced by `IOKERNEL_MIMIC_LUSTRE`).
    pub fs_kind: FilesystemKind,
    /// Stripe size in bytes.
    pub stripe_bytes: u64,
    /// Stripe count; 1 off Lustre, and 1 when a Lustre layout leaves it
    /// unspecified (0 or "all OSTs").
    pub stripe_count: u32,
    /// `st_blksize`, or [`DEFAULT_BLOCK_BYTES`] when that was 0.
    pub block_size_bytes: u64,
    /// Where the stripe size came from.
    pub source: SizingSource,
}

/// Why sizing failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizingError {
    /// The `lustre.lov` xattr did not parse.
    Lov(LovParseError),
    /// `IOKERNEL_MIMIC_LUSTRE` is not `<stripe_bytes>:<count>`.
    BadMimic {
        /// The variable's value, as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Lustre stripe size that is not a [`StripeBytes`]: 0, not a
    /// multiple of 64 KiB, or above 4 GiB - 64 KiB.
    BadStripe {
        /// What is wrong with it (names the size).
        error: StripeBytesError,
        /// Where it came from.
        source: SizingSource,
    },
    /// `WriterSizing::plan` was asked to size for zero producers.
    NoProducers,
    /// Even the smallest chunk, one buffer per producer and a channel of one
    /// do not fit the memory budget.
    BudgetTooSmall {
        /// Bytes the smallest configuration needs.
        needed: u64,
        /// The budget given.
        budget: u64,
    },
}

impl fmt::Display for SizingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizingError::Lov(err) => write!(f, "reading the Lustre layout: {err}"),
            SizingError::BadMimic { value, reason } => write!(
                f,
                "{MIMIC_LUSTRE_ENV}={value:?} is not <stripe_bytes>:<count> (e.g. 1M:4): {reason}"
            ),
            SizingError::BadStripe { error, source } => write!(f, "from {source}: {error}"),
            SizingError::NoProducers => f.write_str("writer sizing needs at least one producer"),
            SizingError::BudgetTooSmall { needed, budget } => write!(
                f,
                "memory budget of {budget} bytes is too small: the writer needs at least \
                 {needed} bytes (one {MIN_CHUNK_BYTES}-byte chunk per producer plus one in the \
                 channel)"
            ),
        }
    }
}

impl std::error::Error for SizingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SizingError::Lov(err) => Some(err),
            _ => None,
        }
    }
}

impl LayoutInfo {
    /// Decides the layout from raw facts: the `fstatfs` `f_type` magic,
    /// `st_blksize`, the `lustre.lov` xattr value if it was read, and the
    /// value of `IOKERNEL_MIMIC_LUSTRE` if set.
    ///
    /// Precedence: a non-empty mimic value; then, on Lustre, the xattr; then
    /// `st_blksize`. An xattr passed for a non-Lustre file system is ignored.
    pub fn detect(
        magic: i64,
        st_blksize: u64,
        lov_xattr: Option<&[u8]>,
        mimic_env: Option<&str>,
    ) -> Result<LayoutInfo, SizingError> {
        let block_size_bytes = if st_blksize == 0 {
            DEFAULT_BLOCK_BYTES
        } else {
            st_blksize
        };
        if let Some(value) = mimic_env.filter(|v| !v.trim().is_empty()) {
            let (stripe, stripe_count) = parse_mimic(value)?;
            return Ok(LayoutInfo {
                fs_kind: FilesystemKind::Lustre,
                stripe_bytes: stripe.get(),
                stripe_count,
                block_size_bytes,
                source: SizingSource::MimicEnv,
            });
        }
        let fs_kind = FilesystemKind::from_magic(magic);
        match (fs_kind, lov_xattr) {
            (FilesystemKind::Lustre, Some(xattr)) => {
                let layout = parse_lov(xattr).map_err(SizingError::Lov)?;
                let stripe = StripeBytes::try_from(layout.stripe_bytes).map_err(|error| {
                    SizingError::BadStripe {
                        error,
                        source: SizingSource::LustreXattr,
                    }
                })?;
                Ok(LayoutInfo {
                    fs_kind,
                    stripe_bytes: stripe.get(),
                    stripe_count: layout.stripe_count_known().unwrap_or(1),
                    block_size_bytes,
                    source: SizingSource::LustreXattr,
                })
            }
            _ => Ok(LayoutInfo {
                fs_kind,
                stripe_bytes: block_size_bytes,
                stripe_count: 1,
                block_size_bytes,
                source: SizingSource::BlockSize,
            }),
        }
    }
}

impl LayoutInfo {
    /// The same facts with the stripe size set by configuration: the file
    /// system kind, stripe count and block size stay as detected, and
    /// [`WriterSizing::plan`] sizes chunks from this stripe as it would
    /// from a Lustre one. The size was validated when the [`StripeBytes`]
    /// was made.
    ///
    /// ```
    /// use iokernel::writer::{FilesystemKind, LayoutInfo, SizingSource, StripeBytes, WriterSizing};
    ///
    /// let ext4 = LayoutInfo::detect(0xEF53, 4096, None, None).unwrap();
    /// let info = ext4.with_stripe_bytes("4M".parse::<StripeBytes>().unwrap());
    /// assert_eq!(info.fs_kind, FilesystemKind::Ext4);
    /// assert_eq!(info.source, SizingSource::Configured);
    /// let sizing = WriterSizing::plan(&info, 2, 1 << 30).unwrap();
    /// assert_eq!((sizing.chunk_bytes, sizing.stripe_bytes), (4 << 20, 4 << 20));
    /// ```
    pub fn with_stripe_bytes(self, stripe_bytes: StripeBytes) -> LayoutInfo {
        LayoutInfo {
            stripe_bytes: stripe_bytes.get(),
            source: SizingSource::Configured,
            ..self
        }
    }

    /// Whether chunks and slots follow the stripe size (a parallel file
    /// system, or a configured stripe) rather than the block size.
    fn sized_by_stripe(&self) -> bool {
        self.fs_kind.is_parallel() || self.source == SizingSource::Configured
    }
}

/// Parses `<stripe_bytes>:<count>`, e.g. `1M:4` or `4194304:16`.
fn parse_mimic(value: &str) -> Result<(StripeBytes, u32), SizingError> {
    let bad = |reason: String| SizingError::BadMimic {
        value: value.to_owned(),
        reason,
    };
    let (stripe, count) = value
        .split_once(':')
        .ok_or_else(|| bad("missing ':' between stripe size and count".to_owned()))?;
    let stripe: StripeBytes = stripe.parse().map_err(bad)?;
    let stripe_count: u32 = count
        .trim()
        .parse()
        .map_err(|_| bad(format!("stripe count {:?} is not a number", count.trim())))?;
    if stripe_count == 0 || stripe_count > LUSTRE_MAX_STRIPE_COUNT {
        return Err(bad(format!(
            "stripe count {stripe_count} is outside 1..={LUSTRE_MAX_STRIPE_COUNT}"
        )));
    }
    Ok((stripe, stripe_count))
}

/// How the writer buffers: the result of [`WriterSizing::plan`].
///
/// ```
/// use iokernel::writer::{LayoutInfo, WriterSizing};
///
/// let info = LayoutInfo::detect(0x0BD0_0BD0, 4096, None, Some("4M:8")).unwrap();
/// let sizing = WriterSizing::plan(&info, 4, 1 << 30).unwrap();
/// assert_eq!(sizing.chunk_bytes, 4 << 20);
/// assert_eq!(sizing.buffers_per_producer, 2);
/// assert_eq!(sizing.channel_capacity, 8); // one chunk per OST in flight
/// assert!(sizing.buffered_bytes(4) <= 1 << 30);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterSizing {
    /// Size of one producer buffer, hence of one chunk; a multiple of 4096.
    pub chunk_bytes: u64,
    /// Buffers each producer owns (at least 1, ideally 2).
    pub buffers_per_producer: usize,
    /// Chunks the channel to the committer holds (at least 1).
    pub channel_capacity: usize,
    /// Slot size for the padded-striped layout: the stripe size on
    /// Lustre/GPFS, else the unshrunk chunk size.
    pub stripe_bytes: u64,
}

impl WriterSizing {
    /// Sizes the writer for `producers` producers within
    /// `memory_budget_bytes`, where the memory counted is
    /// `(producers × buffers_per_producer + channel_capacity) × chunk_bytes`.
    ///
    /// The chunk is the stripe size on Lustre and GPFS, else
    /// `max(st_blksize, 1 MiB)`, rounded up to a multiple of 4096. Within the
    /// budget, the chunk is kept (stripe-sized writes matter most) and the
    /// buffers are cut first: 2 per producer, down to 1; a channel of one
    /// chunk per producer or per stripe, whichever is more (at most 1024),
    /// down to 1. Only if one buffer per producer plus one channel slot does
    /// not fit is the chunk halved, down to 64 KiB (or the unshrunk chunk if
    /// that is smaller), after which the result is
    /// [`SizingError::BudgetTooSmall`].
    pub fn plan(
        info: &LayoutInfo,
        producers: usize,
        memory_budget_bytes: u64,
    ) -> Result<WriterSizing, SizingError> {
        if producers == 0 {
            return Err(SizingError::NoProducers);
        }
        let producers_u64 = u64::try_from(producers).unwrap_or(u64::MAX);
        let wanted_bytes = if info.sized_by_stripe() {
            info.stripe_bytes
        } else {
            info.block_size_bytes.max(LOCAL_CHUNK_FLOOR_BYTES)
        };
        let ideal_chunk_bytes = round_to_page(wanted_bytes);
        let stripe_bytes = if info.sized_by_stripe() {
            info.stripe_bytes
        } else {
            ideal_chunk_bytes
        };
        let ideal_capacity = producers_u64
            .max(u64::from(info.stripe_count))
            .clamp(1, MAX_CHANNEL_CAPACITY);
        let floor_bytes = MIN_CHUNK_BYTES.min(ideal_chunk_bytes);
        let mut chunk_bytes = ideal_chunk_bytes;
        loop {
            if let Some((buffers, capacity)) = fit(
                producers_u64,
                chunk_bytes,
                memory_budget_bytes,
                ideal_capacity,
            ) {
                return Ok(WriterSizing {
                    chunk_bytes,
                    buffers_per_producer: buffers,
                    channel_capacity: capacity,
                    stripe_bytes,
                });
            }
            if chunk_bytes <= floor_bytes {
                break;
            }
            chunk_bytes = (chunk_bytes / 2 / PAGE_BYTES * PAGE_BYTES).max(floor_bytes);
        }
        Err(SizingError::BudgetTooSmall {
            needed: fewest_buffer_bytes(producers_u64, floor_bytes),
            budget: memory_budget_bytes,
        })
    }

    /// Bytes buffered at most with `producers` producers.
    pub fn buffered_bytes(&self, producers: usize) -> u64 {
        let producers = u64::try_from(producers).unwrap_or(u64::MAX);
        let per_producer = u64::try_from(self.buffers_per_producer).unwrap_or(u64::MAX);
        let capacity = u64::try_from(self.channel_capacity).unwrap_or(u64::MAX);
        producers
            .saturating_mul(per_producer)
            .saturating_add(capacity)
            .saturating_mul(self.chunk_bytes)
    }
}

/// Rounds up to a whole page (down, for a value within a page of `u64::MAX`).
fn round_to_page(bytes: u64) -> u64 {
    let bytes = bytes.max(PAGE_BYTES);
    bytes
        .checked_next_multiple_of(PAGE_BYTES)
        .unwrap_or(bytes - bytes % PAGE_BYTES)
}

/// The least memory a writer runs with, in bytes: one chunk filling per
/// producer plus one on its way to the file. A budget below it cannot hold
/// chunks of this size.
///
/// ```
/// assert_eq!(iokernel::writer::fewest_buffer_bytes(2, 1 << 20), 3 << 20);
/// ```
pub fn fewest_buffer_bytes(producers: u64, chunk_bytes: u64) -> u64 {
    producers.saturating_add(1).saturating_mul(chunk_bytes)
}

/// Buffers per producer and channel capacity for one chunk size, or `None`
/// if not even one buffer per producer plus one channel slot fits
/// ([`fewest_buffer_bytes`]).
pub(crate) fn fit(
    producers: u64,
    chunk_bytes: u64,
    budget_bytes: u64,
    ideal_capacity: u64,
) -> Option<(usize, usize)> {
    if chunk_bytes == 0 || fewest_buffer_bytes(producers, chunk_bytes) > budget_bytes {
        return None;
    }
    let slots = budget_bytes / chunk_bytes;
    let buffers = IDEAL_BUFFERS_PER_PRODUCER.min((slots - 1) / producers);
    let capacity = ideal_capacity.min(slots - producers * buffers);
    // Both are at most 1024 here.
    Some((
        usize::try_from(buffers).ok()?,
        usize::try_from(capacity).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::lustre::encode_v1;
    use proptest::prelude::*;

    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const LUSTRE: i64 = 0x0BD0_0BD0;
    const GPFS: i64 = 0x4750_4653;
    const EXT4: i64 = 0xEF53;

    fn stripe(bytes: u64) -> StripeBytes {
        StripeBytes::try_from(bytes).unwrap()
    }

    /// A v1 `lustre.lov` blob whose 32-bit `lmm_stripe_size` (offset 24)
    /// holds `raw`, valid or not, as another tool might have written it.
    fn lov_with_raw_stripe(raw: u32, count: u16) -> Vec<u8> {
        let mut blob = encode_v1(StripeBytes::MIN, count);
        blob[24..28].copy_from_slice(&raw.to_le_bytes());
        blob
    }

    fn info(fs_kind: FilesystemKind, stripe: u64, count: u32, block: u64) -> LayoutInfo {
        LayoutInfo {
            fs_kind,
            stripe_bytes: stripe,
            stripe_count: count,
            block_size_bytes: block,
            source: SizingSource::BlockSize,
        }
    }

    #[test]
    fn detect_local_file_systems_use_block_size() {
        for (magic, kind) in [
            (EXT4, FilesystemKind::Ext4),
            (0x0102_1994, FilesystemKind::Tmpfs),
            (0x6969, FilesystemKind::Nfs),
        ] {
            let got = LayoutInfo::detect(magic, 4096, None, None).unwrap();
            assert_eq!(
                got,
                LayoutInfo {
                    fs_kind: kind,
                    ..info(kind, 4096, 1, 4096)
                }
            );
        }
        // An xattr on a non-Lustre file system is ignored.
        let got = LayoutInfo::detect(EXT4, 4096, Some(&[1, 2, 3]), None).unwrap();
        assert_eq!(got.source, SizingSource::BlockSize);
        // st_blksize 0 means unknown.
        assert_eq!(
            LayoutInfo::detect(EXT4, 0, None, None)
                .unwrap()
                .block_size_bytes,
            4096
        );
    }

    #[test]
    fn detect_lustre_from_xattr() {
        let xattr = encode_v1(stripe(4 << 20), 16);
        let got = LayoutInfo::detect(LUSTRE, 4 << 20, Some(&xattr), None).unwrap();
        assert_eq!(got.fs_kind, FilesystemKind::Lustre);
        assert_eq!((got.stripe_bytes, got.stripe_count), (4 * MIB, 16));
        assert_eq!(got.source, SizingSource::LustreXattr);
        // Template stripe count: treated as 1.
        let xattr = encode_v1(StripeBytes::LUSTRE_DEFAULT, 0xFFFF);
        let got = LayoutInfo::detect(LUSTRE, 4096, Some(&xattr), None).unwrap();
        assert_eq!(got.stripe_count, 1);
    }

    #[test]
    fn detect_lustre_without_xattr_falls_back_to_block_size() {
        let got = LayoutInfo::detect(LUSTRE, 4 * MIB, None, None).unwrap();
        assert_eq!(got.fs_kind, FilesystemKind::Lustre);
        assert_eq!(got.stripe_bytes, 4 * MIB);
        assert_eq!(got.source, SizingSource::BlockSize);
    }

    #[test]
    fn detect_lustre_bad_xattr() {
        let err = LayoutInfo::detect(LUSTRE, 4096, Some(&[0; 3]), None).unwrap_err();
        assert!(
            matches!(err, SizingError::Lov(LovParseError::TooShort { .. })),
            "{err}"
        );
        let zero = lov_with_raw_stripe(0, 4);
        let err = LayoutInfo::detect(LUSTRE, 4096, Some(&zero), None).unwrap_err();
        assert_eq!(
            err,
            SizingError::BadStripe {
                error: StripeBytesError::Zero,
                source: SizingSource::LustreXattr
            }
        );
        let small = lov_with_raw_stripe(4096, 4);
        let err = LayoutInfo::detect(LUSTRE, 4096, Some(&small), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("from lustre.lov xattr: stripe size 4096 bytes"),
            "{err}"
        );
        // The largest multiple of 64 KiB a u32 holds is taken.
        let max = lov_with_raw_stripe(u32::MAX - 0xFFFF, 4);
        let got = LayoutInfo::detect(LUSTRE, 4096, Some(&max), None).unwrap();
        assert_eq!(got.stripe_bytes, StripeBytes::MAX.get());
    }

    #[test]
    fn configured_stripe_sizes_chunks_and_keeps_the_fs_kind() {
        for (magic, kind) in [
            (EXT4, FilesystemKind::Ext4),
            (0x0102_1994, FilesystemKind::Tmpfs),
            (LUSTRE, FilesystemKind::Lustre),
        ] {
            let detected = LayoutInfo::detect(magic, 4096, None, None).unwrap();
            let got = detected.with_stripe_bytes(stripe(2 * MIB));
            assert_eq!(got.fs_kind, kind);
            assert_eq!(got.source, SizingSource::Configured);
            assert_eq!((got.stripe_bytes, got.stripe_count), (2 * MIB, 1));
            let sizing = WriterSizing::plan(&got, 2, 1 << 30).unwrap();
            assert_eq!(
                (sizing.chunk_bytes, sizing.stripe_bytes),
                (2 * MIB, 2 * MIB)
            );
        }
        // Smaller than the 1 MiB local floor: still honoured.
        let ext4 = LayoutInfo::detect(EXT4, 4096, None, None).unwrap();
        let sizing = WriterSizing::plan(&ext4.with_stripe_bytes(stripe(64 * KIB)), 2, 1 << 30);
        assert_eq!(sizing.unwrap().chunk_bytes, 64 * KIB);
    }

    #[test]
    fn mimic_forces_lustre_everywhere() {
        for magic in [EXT4, LUSTRE, GPFS, 0x1234] {
            let xattr = encode_v1(stripe(8 << 20), 2);
            let got = LayoutInfo::detect(magic, 4096, Some(&xattr), Some(" 1M:4 ")).unwrap();
            assert_eq!(got.fs_kind, FilesystemKind::Lustre);
            assert_eq!((got.stripe_bytes, got.stripe_count), (MIB, 4));
            assert_eq!(got.source, SizingSource::MimicEnv);
        }
        // Empty means unset.
        let got = LayoutInfo::detect(EXT4, 4096, None, Some("")).unwrap();
        assert_eq!(got.source, SizingSource::BlockSize);
    }

    #[test]
    fn mimic_errors_name_the_string() {
        for (value, reason) in [
            ("1M", "missing ':'"),
            ("1X:4", "unknown suffix"),
            ("1M:four", "\"four\" is not a number"),
            ("1M:0", "outside 1..=2000"),
            ("1M:2001", "outside 1..=2000"),
            ("4K:1", "4096 bytes is not a multiple of 64 KiB"),
            ("0:1", "0 is not positive"),
            ("8G:1", "above the maximum"),
            ("4G:1", "at most 4294901760 bytes"),
            (":", "invalid size"),
        ] {
            let err = LayoutInfo::detect(EXT4, 4096, None, Some(value)).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, SizingError::BadMimic { .. }),
                "{value}: {text}"
            );
            assert!(text.contains(&format!("{value:?}")), "{value}: {text}");
            assert!(text.contains(reason), "{value}: {text}");
        }
    }

    #[test]
    fn parse_size_forms() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(MIB));
        assert_eq!(parse_size("64k"), Ok(64 * KIB));
        assert_eq!(parse_size("64KiB"), Ok(64 * KIB));
        assert_eq!(parse_size("64 kib"), Ok(64 * KIB));
        assert_eq!(parse_size("4Mi"), Ok(4 * MIB));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size(" 1M "), Ok(MIB));
    }

    #[test]
    fn parse_size_errors_name_the_input() {
        for bad in [
            "",
            "M",
            "-1",
            "1.5M",
            "1MB",
            "1T",
            "1 M B",
            "99999999999999999999",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert!(parse_size("17179869184G").unwrap_err().contains("64 bits"));
    }

    #[test]
    fn plan_chunk_rules() {
        let lustre = info(FilesystemKind::Lustre, 4 * MIB, 8, 4096);
        let gpfs = info(FilesystemKind::Gpfs, 16 * MIB, 1, 16 * MIB);
        let ext4 = info(FilesystemKind::Ext4, 4096, 1, 4096);
        let xfs_big = info(FilesystemKind::Xfs, 2 * MIB + 1, 1, 2 * MIB + 1);
        let plenty = 1 << 40;
        assert_eq!(
            WriterSizing::plan(&lustre, 4, plenty).unwrap().chunk_bytes,
            4 * MIB
        );
        assert_eq!(
            WriterSizing::plan(&gpfs, 4, plenty).unwrap().chunk_bytes,
            16 * MIB
        );
        let local = WriterSizing::plan(&ext4, 4, plenty).unwrap();
        assert_eq!((local.chunk_bytes, local.stripe_bytes), (MIB, MIB));
        let rounded = WriterSizing::plan(&xfs_big, 1, plenty).unwrap();
        assert_eq!(rounded.chunk_bytes, 2 * MIB + 4096);
    }

    #[test]
    fn plan_ideal_buffers() {
        let lustre = info(FilesystemKind::Lustre, MIB, 16, 4096);
        let got = WriterSizing::plan(&lustre, 4, 1 << 40).unwrap();
        assert_eq!(
            got,
            WriterSizing {
                chunk_bytes: MIB,
                buffers_per_producer: 2,
                channel_capacity: 16,
                stripe_bytes: MIB
            }
        );
        let many = WriterSizing::plan(&lustre, 5000, 1 << 40).unwrap();
        assert_eq!(many.channel_capacity, 1024);
    }

    #[test]
    fn plan_cuts_buffers_before_chunk() {
        let lustre = info(FilesystemKind::Lustre, MIB, 16, 4096);
        // 4 producers: 9 chunks give 2 each plus 1 in the channel.
        let got = WriterSizing::plan(&lustre, 4, 9 * MIB).unwrap();
        assert_eq!(
            (
                got.chunk_bytes,
                got.buffers_per_producer,
                got.channel_capacity
            ),
            (MIB, 2, 1)
        );
        // 8 chunks: 1 each, 4 in the channel.
        let got = WriterSizing::plan(&lustre, 4, 8 * MIB + 1).unwrap();
        assert_eq!(
            (
                got.chunk_bytes,
                got.buffers_per_producer,
                got.channel_capacity
            ),
            (MIB, 1, 4)
        );
        // 5 chunks: exactly the minimum.
        let got = WriterSizing::plan(&lustre, 4, 5 * MIB).unwrap();
        assert_eq!((got.buffers_per_producer, got.channel_capacity), (1, 1));
        assert_eq!(got.buffered_bytes(4), 5 * MIB);
    }

    #[test]
    fn plan_shrinks_chunk_then_gives_up() {
        let lustre = info(FilesystemKind::Lustre, 4 * MIB, 4, 4096);
        let got = WriterSizing::plan(&lustre, 4, 5 * MIB).unwrap();
        assert_eq!(got.chunk_bytes, MIB);
        assert_eq!(got.stripe_bytes, 4 * MIB);
        let got = WriterSizing::plan(&lustre, 4, 5 * 64 * KIB).unwrap();
        assert_eq!(got.chunk_bytes, 64 * KIB);
        let err = WriterSizing::plan(&lustre, 4, 5 * 64 * KIB - 1).unwrap_err();
        assert_eq!(
            err,
            SizingError::BudgetTooSmall {
                needed: 5 * 64 * KIB,
                budget: 5 * 64 * KIB - 1
            }
        );
        assert!(
            err.to_string().contains("327679 bytes is too small"),
            "{err}"
        );
        assert_eq!(
            WriterSizing::plan(&lustre, 0, 1 << 40),
            Err(SizingError::NoProducers)
        );
    }

    #[test]
    fn plan_small_gpfs_block_is_its_own_floor() {
        let gpfs = info(FilesystemKind::Gpfs, 16 * KIB, 1, 16 * KIB);
        let got = WriterSizing::plan(&gpfs, 1, 32 * KIB).unwrap();
        assert_eq!(got.chunk_bytes, 16 * KIB);
        let err = WriterSizing::plan(&gpfs, 1, 32 * KIB - 1).unwrap_err();
        assert_eq!(
            err,
            SizingError::BudgetTooSmall {
                needed: 32 * KIB,
                budget: 32 * KIB - 1
            }
        );
    }

    fn any_layout() -> impl Strategy<Value = LayoutInfo> {
        let magic = prop::sample::select(vec![LUSTRE, GPFS, EXT4, 0x5846_5342, 0x6969, 7]);
        let mimic = prop::option::of((1u64..=256, 1u32..=64));
        (magic, 0u64..=(32 << 20), mimic).prop_map(|(magic, blksize, mimic)| {
            let mimic = mimic.map(|(units, count)| format!("{}K:{count}", units * 64));
            LayoutInfo::detect(magic, blksize, None, mimic.as_deref()).unwrap()
        })
    }

    proptest! {
        #[test]
        fn plan_never_exceeds_budget(
            layout in any_layout(),
            producers in 1usize..=512,
            budget in prop_oneof![0u64..=(64 << 20), 0u64..=(64 << 30)],
        ) {
            match WriterSizing::plan(&layout, producers, budget) {
                Ok(s) => {
                    prop_assert!(s.buffered_bytes(producers) <= budget);
                    prop_assert_eq!(s.chunk_bytes % PAGE_BYTES, 0);
                    prop_assert!(s.chunk_bytes >= PAGE_BYTES);
                    prop_assert!(s.chunk_bytes <= s.stripe_bytes.max(PAGE_BYTES).next_multiple_of(PAGE_BYTES));
                    prop_assert!((1..=2).contains(&s.buffers_per_producer));
                    prop_assert!((1..=1024).contains(&s.channel_capacity));
                }
                Err(SizingError::BudgetTooSmall { needed, budget: b }) => {
                    prop_assert_eq!(b, budget);
                    prop_assert!(needed > budget);
                }
                Err(other) => prop_assert!(false, "unexpected error {}", other),
            }
        }

        #[test]
        fn plan_fits_once_budget_reaches_needed(layout in any_layout(), producers in 1usize..=64) {
            if let Err(SizingError::BudgetTooSmall { needed, .. }) =
                WriterSizing::plan(&layout, producers, 0)
            {
                prop_assert!(WriterSizing::plan(&layout, producers, needed).is_ok());
                prop_assert!(WriterSizing::plan(&layout, producers, needed - 1).is_err());
            }
        }

        #[test]
        fn parse_size_round_trips(n in 0u64..=(1 << 30), unit in 0usize..4, style in 0usize..3) {
            let (letter, shift) = [("", 0), ("k", 10), ("M", 20), ("G", 30)][unit];
            let suffix = match (letter, style) {
                ("", _) => String::new(),
                (l, 0) => l.to_owned(),
                (l, 1) => format!("{l}i"),
                (l, _) => format!("{l}iB"),
            };
            prop_assert_eq!(parse_size(&format!("{n}{suffix}")), Ok(n << shift));
        }
    }
}
