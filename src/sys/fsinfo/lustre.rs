//! The `lustre.lov` extended attribute: parse a file's layout, encode a
//! request for one. No liblustreapi, no I/O: bytes in, numbers out.
//!
//! `getxattr(path, "lustre.lov")` on a Lustre client returns the file's
//! layout as a `lov_user_md` (plain layouts) or a `lov_comp_md_v1`
//! (composite layouts: PFL, FLR mirrors, self-extending). All fields are
//! little-endian and the structs are packed. Offsets below are in bytes
//! from the start of the struct; only the fields marked *read* are looked at.
//!
//! `lov_user_md_v1` (magic `0x0BD10BD0`), 32-byte header:
//!
//! | offset | size | field | |
//! |---|---|---|---|
//! | 0 | 4 | `lmm_magic` | read |
//! | 4 | 4 | `lmm_pattern` (`LOV_PATTERN_RAID0` = 1, `MDT` = 0x100, flag bits above 0xffff) | read |
//! | 8 | 16 | `lmm_oi` (`struct ost_id`) | |
//! | 24 | 4 | `lmm_stripe_size` | read |
//! | 28 | 2 | `lmm_stripe_count` (0 = default, 0xffff = all OSTs) | read |
//! | 30 | 2 | `lmm_stripe_offset` / `lmm_layout_gen` | |
//! | 32 | 24 × n | `lmm_objects[]` (`lov_user_ost_data_v1`: oi 16, gen 4, idx 4) | |
//!
//! `lov_user_md_v3` (magic `0x0BD30BD0`) is the v1 header, then
//! `char lmm_pool_name[16]` at offset 32 (*read*; NUL-terminated unless all
//! 16 bytes are used), then the objects at offset 48. The objects are never
//! read (a template or an uninstantiated component has none), so a blob is
//! accepted as long as its header is complete.
//!
//! `lov_comp_md_v1` (magic `0x0BD60BD0`), 32-byte header, then
//! `lcm_entry_count` 48-byte `lov_comp_md_entry_v1` entries:
//!
//! | offset | size | header field | |
//! |---|---|---|---|
//! | 0 | 4 | `lcm_magic` | read |
//! | 4 | 4 | `lcm_size` (whole layout, header included) | read |
//! | 8 | 4 | `lcm_layout_gen` | |
//! | 12 | 2 | `lcm_flags` | |
//! | 14 | 2 | `lcm_entry_count` | read |
//! | 16 | 2 | `lcm_mirror_count` (mirrors − 1) | |
//! | 18 | 14 | EC count and padding | |
//!
//! | offset | size | entry field | |
//! |---|---|---|---|
//! | 0 | 4 | `lcme_id` | |
//! | 4 | 4 | `lcme_flags` (`INIT` 0x10, `STALE` 0x1, `EXTENSION` 0x40, `PARITY` 0x80) | read |
//! | 8 | 8 | `lcme_extent.e_start` | |
//! | 16 | 8 | `lcme_extent.e_end` (`u64::MAX` = EOF) | read |
//! | 24 | 4 | `lcme_offset` (of the component's `lov_user_md`, from the start of the layout) | read |
//! | 28 | 4 | `lcme_size` | read |
//! | 32 | 16 | layout gen, timestamp, EC/compression bytes | |
//!
//! **Which component a composite layout reports.** A parallel writer
//! produces large files, and most of a large file's bytes land in the
//! component whose extent reaches furthest, usually `[x, EOF)`. So the
//! parser reports the *data* component with the largest `e_end`. Extension
//! (self-extending placeholder) and parity (erasure-code) components are
//! skipped: they never hold file data laid out by their own stripe. Among
//! components with the same end (FLR mirrors), an instantiated, non-stale one
//! wins, then the first in table order. Only the chosen component's blob is
//! parsed, but every entry's blob range is bounds-checked. An uninstantiated
//! component may carry template values (stripe count 0 or 0xffff); see
//! [`LustreLayout::stripe_count_known`].
//!
//! The parser never panics, whatever the input: every read is a checked
//! slice, every offset sum is checked. It is a fuzz target.

use std::fmt;

use super::stripe::StripeBytes;

/// Name of the extended attribute that holds a file's layout.
pub const LOV_XATTR_NAME: &str = "lustre.lov";
/// `LOV_USER_MAGIC_V1`.
pub const LOV_USER_MAGIC_V1: u32 = 0x0BD1_0BD0;
/// `LOV_USER_MAGIC_V3` (v1 plus a pool name).
pub const LOV_USER_MAGIC_V3: u32 = 0x0BD3_0BD0;
/// `LOV_USER_MAGIC_COMP_V1` (composite layout).
pub const LOV_USER_MAGIC_COMP_V1: u32 = 0x0BD6_0BD0;
/// `LOV_PATTERN_RAID0`: plain striping.
pub const LOV_PATTERN_RAID0: u32 = 0x001;
/// `LOV_ALL_STRIPES`: "stripe over every OST", a request or template value.
pub const LOV_ALL_STRIPES: u32 = 0xFFFF;
/// `LCME_FL_STALE`: an FLR mirror component whose data is out of date.
pub const LCME_FL_STALE: u32 = 0x01;
/// `LCME_FL_INIT`: the component is instantiated (has OST objects).
pub const LCME_FL_INIT: u32 = 0x10;
/// `LCME_FL_EXTENSION`: a self-extending layout's placeholder component.
pub const LCME_FL_EXTENSION: u32 = 0x40;
/// `LCME_FL_PARITY`: an erasure-code parity component.
pub const LCME_FL_PARITY: u32 = 0x80;

const V1_HEADER_BYTES: usize = 32;
const POOL_NAME_OFFSET: usize = 32;
const POOL_NAME_BYTES: usize = 16;
const COMP_HEADER_BYTES: usize = 32;
const COMP_ENTRY_BYTES: usize = 48;

/// A file's striping, as read from `lustre.lov`.
///
/// ```
/// use iokernel::writer::lustre::{encode_v1, parse_lov};
/// use iokernel::writer::StripeBytes;
///
/// let stripe = StripeBytes::try_from(4u64 << 20).unwrap();
/// let layout = parse_lov(&encode_v1(stripe, 8)).unwrap();
/// assert_eq!(layout.stripe_bytes, 4 << 20);
/// assert_eq!(layout.stripe_count, 8);
/// assert_eq!(layout.components, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LustreLayout {
    /// Stripe size in bytes (`lmm_stripe_size`) as stored, not validated:
    /// 0 in a template means "file system default".
    pub stripe_bytes: u64,
    /// Stripe count as stored: 0 means default and 0xffff all OSTs in
    /// templates and uninstantiated components.
    pub stripe_count: u32,
    /// `lmm_pattern` (`LOV_PATTERN_RAID0` = 1, `LOV_PATTERN_MDT` = 0x100, ...).
    pub pattern: u32,
    /// OST pool name, from a v3 blob with a non-empty name.
    pub pool: Option<String>,
    /// Number of components: 1 for a plain layout, `lcm_entry_count` for a
    /// composite one.
    pub components: usize,
}

impl LustreLayout {
    /// The stripe count if it is a real count, `None` for the template values
    /// 0 (default) and 0xffff (all OSTs).
    pub fn stripe_count_known(&self) -> Option<u32> {
        match self.stripe_count {
            0 | LOV_ALL_STRIPES => None,
            n => Some(n),
        }
    }
}

/// Why a `lustre.lov` value could not be parsed. Offsets are from the start
/// of the whole xattr value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LovParseError {
    /// A struct or field runs past the end of the data.
    TooShort {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes there are from `offset` on.
        available: usize,
    },
    /// A magic that is not v1, v3 or composite.
    UnknownMagic {
        /// The magic, read little-endian.
        magic: u32,
        /// Where it was read.
        offset: usize,
    },
    /// `lcm_size` is smaller than the header or larger than the data.
    BadCompositeSize {
        /// The stored `lcm_size`.
        lcm_size: u32,
        /// Bytes actually present.
        available: usize,
    },
    /// A composite layout with `lcm_entry_count` 0.
    NoComponents,
    /// A component's blob range does not lie inside the layout.
    ComponentOutOfBounds {
        /// Index of the entry.
        index: usize,
        /// Its `lcme_offset`.
        offset: u32,
        /// Its `lcme_size`.
        size: u32,
        /// `lcm_size`, the bound it must respect.
        layout_bytes: usize,
    },
    /// A component whose blob is itself a composite layout.
    NestedComposite {
        /// Index of the entry.
        index: usize,
    },
    /// Every component is an extension or parity component.
    NoUsableComponent {
        /// How many there are.
        components: usize,
    },
}

impl fmt::Display for LovParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LovParseError::TooShort {
                what,
                offset,
                needed,
                available,
            } => write!(
                f,
                "lustre.lov too short at offset {offset}: {what} needs {needed} bytes, \
                 {available} available"
            ),
            LovParseError::UnknownMagic { magic, offset } => {
                write!(
                    f,
                    "lustre.lov: unknown magic {magic:#010x} at offset {offset}"
                )?;
                if is_known_magic(magic.swap_bytes()) {
                    write!(
                        f,
                        " (byte-swapped {:#010x}: big-endian data?)",
                        magic.swap_bytes()
                    )?;
                }
                Ok(())
            }
            LovParseError::BadCompositeSize {
                lcm_size,
                available,
            } => write!(
                f,
                "lustre.lov: lov_comp_md_v1 lcm_size {lcm_size} is outside \
                 [{COMP_HEADER_BYTES}, {available}] ({available} bytes present)"
            ),
            LovParseError::NoComponents => {
                f.write_str("lustre.lov: composite layout with lcm_entry_count 0")
            }
            LovParseError::ComponentOutOfBounds {
                index,
                offset,
                size,
                layout_bytes,
            } => write!(
                f,
                "lustre.lov: component {index} offset out of bounds: blob at offset {offset}, \
                 size {size} does not fit the {layout_bytes}-byte layout"
            ),
            LovParseError::NestedComposite { index } => {
                write!(
                    f,
                    "lustre.lov: component {index} is itself a composite layout"
                )
            }
            LovParseError::NoUsableComponent { components } => write!(
                f,
                "lustre.lov: none of the {components} components is a data component \
                 (all extension or parity)"
            ),
        }
    }
}

impl std::error::Error for LovParseError {}

fn is_known_magic(magic: u32) -> bool {
    matches!(
        magic,
        LOV_USER_MAGIC_V1 | LOV_USER_MAGIC_V3 | LOV_USER_MAGIC_COMP_V1
    )
}

/// A byte slice that knows where it sits in the whole xattr value, so that
/// errors report absolute offsets. Every read is checked.
#[derive(Clone, Copy)]
struct Blob<'a> {
    bytes: &'a [u8],
    base: usize,
}

impl<'a> Blob<'a> {
    fn too_short(&self, what: &'static str, offset: usize, needed: usize) -> LovParseError {
        LovParseError::TooShort {
            what,
            offset: self.base.saturating_add(offset),
            needed,
            available: self.bytes.len().saturating_sub(offset),
        }
    }

    fn slice(
        &self,
        offset: usize,
        len: usize,
        what: &'static str,
    ) -> Result<&'a [u8], LovParseError> {
        offset
            .checked_add(len)
            .and_then(|end| self.bytes.get(offset..end))
            .ok_or_else(|| self.too_short(what, offset, len))
    }

    fn array<const N: usize>(
        &self,
        offset: usize,
        what: &'static str,
    ) -> Result<[u8; N], LovParseError> {
        let bytes = self.slice(offset, N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| self.too_short(what, offset, N))
    }

    fn u16_at(&self, offset: usize, what: &'static str) -> Result<u16, LovParseError> {
        self.array(offset, what).map(u16::from_le_bytes)
    }

    fn u32_at(&self, offset: usize, what: &'static str) -> Result<u32, LovParseError> {
        self.array(offset, what).map(u32::from_le_bytes)
    }

    fn u64_at(&self, offset: usize, what: &'static str) -> Result<u64, LovParseError> {
        self.array(offset, what).map(u64::from_le_bytes)
    }
}

/// Parses a `lustre.lov` xattr value (v1, v3 or composite).
///
/// ```
/// use iokernel::writer::lustre::{parse_lov, LovParseError};
///
/// let err = parse_lov(&[0xD0, 0x0B]).unwrap_err();
/// assert!(matches!(err, LovParseError::TooShort { offset: 0, .. }));
/// assert!(err.to_string().contains("too short at offset 0"));
/// ```
pub fn parse_lov(xattr: &[u8]) -> Result<LustreLayout, LovParseError> {
    let blob = Blob {
        bytes: xattr,
        base: 0,
    };
    let magic = blob.u32_at(0, "magic")?;
    match magic {
        LOV_USER_MAGIC_V1 | LOV_USER_MAGIC_V3 => parse_plain(blob, magic),
        LOV_USER_MAGIC_COMP_V1 => parse_composite(blob),
        magic => Err(LovParseError::UnknownMagic { magic, offset: 0 }),
    }
}

/// Parses a v1 or v3 `lov_user_md` whose magic has been checked.
fn parse_plain(blob: Blob<'_>, magic: u32) -> Result<LustreLayout, LovParseError> {
    blob.slice(0, V1_HEADER_BYTES, "lov_user_md header")?;
    let pattern = blob.u32_at(4, "lmm_pattern")?;
    let stripe_bytes = u64::from(blob.u32_at(24, "lmm_stripe_size")?);
    let stripe_count = u32::from(blob.u16_at(28, "lmm_stripe_count")?);
    let pool = if magic == LOV_USER_MAGIC_V3 {
        let raw = blob.slice(POOL_NAME_OFFSET, POOL_NAME_BYTES, "lmm_pool_name")?;
        let name = raw.split(|&b| b == 0).next().unwrap_or_default();
        (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned())
    } else {
        None
    };
    Ok(LustreLayout {
        stripe_bytes,
        stripe_count,
        pattern,
        pool,
        components: 1,
    })
}

/// One composite entry's fields that matter here.
struct Entry {
    flags: u32,
    end: u64,
    offset: u32,
    size: u32,
}

/// Parses a `lov_comp_md_v1` whose magic has been checked.
fn parse_composite(blob: Blob<'_>) -> Result<LustreLayout, LovParseError> {
    blob.slice(0, COMP_HEADER_BYTES, "lov_comp_md_v1 header")?;
    let lcm_size = blob.u32_at(4, "lcm_size")?;
    let count = usize::from(blob.u16_at(14, "lcm_entry_count")?);
    let bad_size = LovParseError::BadCompositeSize {
        lcm_size,
        available: blob.bytes.len(),
    };
    let layout_bytes = usize::try_from(lcm_size).map_err(|_| bad_size.clone())?;
    if layout_bytes < COMP_HEADER_BYTES {
        return Err(bad_size);
    }
    let layout = Blob {
        bytes: blob.bytes.get(..layout_bytes).ok_or(bad_size)?,
        base: 0,
    };
    if count == 0 {
        return Err(LovParseError::NoComponents);
    }
    // count <= 0xffff, so this cannot overflow.
    layout.slice(
        COMP_HEADER_BYTES,
        count * COMP_ENTRY_BYTES,
        "component entry table",
    )?;
    let entries = (0..count)
        .map(|index| read_entry(layout, index))
        .collect::<Result<Vec<_>, _>>()?;
    let index =
        choose_component(&entries).ok_or(LovParseError::NoUsableComponent { components: count })?;
    let chosen = &entries[index];
    let start = chosen.offset as usize;
    let component = Blob {
        bytes: layout.slice(start, chosen.size as usize, "component blob")?,
        base: start,
    };
    let mut parsed = match component.u32_at(0, "component magic")? {
        magic @ (LOV_USER_MAGIC_V1 | LOV_USER_MAGIC_V3) => parse_plain(component, magic)?,
        LOV_USER_MAGIC_COMP_V1 => return Err(LovParseError::NestedComposite { index }),
        magic => {
            return Err(LovParseError::UnknownMagic {
                magic,
                offset: start,
            })
        }
    };
    parsed.components = count;
    Ok(parsed)
}

/// Reads entry `index` and checks that its blob lies inside the layout.
fn read_entry(layout: Blob<'_>, index: usize) -> Result<Entry, LovParseError> {
    let at = COMP_HEADER_BYTES + index * COMP_ENTRY_BYTES;
    let entry = Entry {
        flags: layout.u32_at(at + 4, "lcme_flags")?,
        end: layout.u64_at(at + 16, "lcme_extent.e_end")?,
        offset: layout.u32_at(at + 24, "lcme_offset")?,
        size: layout.u32_at(at + 28, "lcme_size")?,
    };
    let blob_end = u64::from(entry.offset) + u64::from(entry.size);
    if blob_end > layout.bytes.len() as u64 {
        return Err(LovParseError::ComponentOutOfBounds {
            index,
            offset: entry.offset,
            size: entry.size,
            layout_bytes: layout.bytes.len(),
        });
    }
    Ok(entry)
}

/// The data component with the largest extent end; ties go to a live
/// (instantiated, not stale) one, then to the first. See the module doc.
fn choose_component(entries: &[Entry]) -> Option<usize> {
    let mut best: Option<(usize, (u64, bool))> = None;
    for (index, entry) in entries.iter().enumerate() {
        if entry.flags & (LCME_FL_EXTENSION | LCME_FL_PARITY) != 0 {
            continue;
        }
        let live = entry.flags & LCME_FL_INIT != 0 && entry.flags & LCME_FL_STALE == 0;
        let key = (entry.end, live);
        let better = match best {
            None => true,
            Some((_, best_key)) => key > best_key,
        };
        if better {
            best = Some((index, key));
        }
    }
    best.map(|(index, _)| index)
}

/// Encodes a `lov_user_md_v1` requesting RAID0 striping with the given
/// stripe size and count on any OSTs (`lmm_stripe_offset` = 0xffff), ready
/// for `setxattr(path, "lustre.lov", ..)` on a newly created, still empty
/// file. The stripe size is a [`StripeBytes`], so one Lustre takes; a count
/// of 0 asks for the default and 0xffff for every OST.
///
/// ```
/// use iokernel::writer::lustre::encode_v1;
/// use iokernel::writer::StripeBytes;
///
/// let blob = encode_v1(StripeBytes::LUSTRE_DEFAULT, 4);
/// assert_eq!(blob.len(), 32);
/// assert_eq!(&blob[..4], &[0xD0, 0x0B, 0xD1, 0x0B]);
/// ```
pub fn encode_v1(stripe_bytes: StripeBytes, stripe_count: u16) -> Vec<u8> {
    let mut blob = Vec::with_capacity(V1_HEADER_BYTES);
    blob.extend_from_slice(&LOV_USER_MAGIC_V1.to_le_bytes());
    blob.extend_from_slice(&LOV_PATTERN_RAID0.to_le_bytes());
    blob.extend_from_slice(&[0u8; 16]); // lmm_oi: assigned by the MDS
    blob.extend_from_slice(&stripe_bytes.get_u32().to_le_bytes());
    blob.extend_from_slice(&stripe_count.to_le_bytes());
    blob.extend_from_slice(&u16::MAX.to_le_bytes()); // stripe_offset -1: any OST
    blob
}

/// Fuzz entry point: parses arbitrary bytes and, when they parse, checks
/// that re-encoding the stripe size and count round-trips.
#[cfg(fuzzing)]
pub fn fuzz_parse_lov(data: &[u8]) {
    if let Ok(layout) = parse_lov(data) {
        if let (Ok(stripe), Ok(count)) = (
            StripeBytes::try_from(layout.stripe_bytes),
            u16::try_from(layout.stripe_count),
        ) {
            let again = parse_lov(&encode_v1(stripe, count));
            assert_eq!(
                again.map(|l| (l.stripe_bytes, l.stripe_count)),
                Ok((layout.stripe_bytes, layout.stripe_count))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u32 = 1 << 20;
    const EOF: u64 = u64::MAX;

    /// A v1 header plus `objects` 24-byte OST entries, built field by field.
    fn v1_blob(pattern: u32, stripe_size: u32, stripe_count: u16, objects: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&LOV_USER_MAGIC_V1.to_le_bytes());
        b.extend_from_slice(&pattern.to_le_bytes());
        b.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes()); // oi_id
        b.extend_from_slice(&0x0200_0000_0400u64.to_le_bytes()); // oi_seq
        b.extend_from_slice(&stripe_size.to_le_bytes());
        b.extend_from_slice(&stripe_count.to_le_bytes());
        b.extend_from_slice(&7u16.to_le_bytes()); // layout_gen
        assert_eq!(b.len(), 32);
        for i in 0..objects {
            b.extend_from_slice(&[0xAB; 16]); // l_ost_oi
            b.extend_from_slice(&1u32.to_le_bytes()); // l_ost_gen
            b.extend_from_slice(&(i as u32).to_le_bytes()); // l_ost_idx
        }
        b
    }

    fn v3_blob(stripe_size: u32, stripe_count: u16, pool: &[u8], objects: usize) -> Vec<u8> {
        let mut b = v1_blob(LOV_PATTERN_RAID0, stripe_size, stripe_count, 0);
        b[..4].copy_from_slice(&LOV_USER_MAGIC_V3.to_le_bytes());
        let mut name = [0u8; 16];
        name[..pool.len()].copy_from_slice(pool);
        b.extend_from_slice(&name);
        assert_eq!(b.len(), 48);
        b.extend_from_slice(&vec![0xCD; 24 * objects]);
        b
    }

    /// A composite layout: header, entry table, then the blobs in order.
    fn comp_blob(entries: &[(u32, u64, u64, Vec<u8>)]) -> Vec<u8> {
        let table_end = 32 + 48 * entries.len();
        let total = table_end + entries.iter().map(|e| e.3.len()).sum::<usize>();
        let mut b = Vec::new();
        b.extend_from_slice(&LOV_USER_MAGIC_COMP_V1.to_le_bytes());
        b.extend_from_slice(&(total as u32).to_le_bytes()); // lcm_size
        b.extend_from_slice(&3u32.to_le_bytes()); // lcm_layout_gen
        b.extend_from_slice(&0u16.to_le_bytes()); // lcm_flags
        b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes()); // lcm_mirror_count
        b.extend_from_slice(&[0u8; 14]); // ec count, padding
        assert_eq!(b.len(), 32);
        let mut blob_at = table_end;
        for (i, (flags, start, end, blob)) in entries.iter().enumerate() {
            b.extend_from_slice(&(i as u32 + 1).to_le_bytes()); // lcme_id
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&start.to_le_bytes());
            b.extend_from_slice(&end.to_le_bytes());
            b.extend_from_slice(&(blob_at as u32).to_le_bytes()); // lcme_offset
            b.extend_from_slice(&(blob.len() as u32).to_le_bytes()); // lcme_size
            b.extend_from_slice(&[0u8; 16]); // layout gen, timestamp, ec bytes
            blob_at += blob.len();
        }
        assert_eq!(b.len(), table_end);
        for entry in entries {
            b.extend_from_slice(&entry.3);
        }
        b
    }

    fn pfl() -> Vec<u8> {
        comp_blob(&[
            (LCME_FL_INIT, 0, u64::from(MIB), v1_blob(1, MIB, 1, 1)),
            (LCME_FL_INIT, u64::from(MIB), 1 << 30, v1_blob(1, MIB, 4, 4)),
            (0, 1 << 30, EOF, v3_blob(4 * MIB, 64, b"flash", 0)),
        ])
    }

    /// Offset of entry `i`'s field at `field` in a `comp_blob`.
    fn entry_field(i: usize, field: usize) -> usize {
        32 + 48 * i + field
    }

    #[test]
    fn v1_with_objects() {
        let layout = parse_lov(&v1_blob(LOV_PATTERN_RAID0, MIB, 4, 4)).unwrap();
        assert_eq!(
            layout,
            LustreLayout {
                stripe_bytes: 1 << 20,
                stripe_count: 4,
                pattern: LOV_PATTERN_RAID0,
                pool: None,
                components: 1,
            }
        );
        assert_eq!(layout.stripe_count_known(), Some(4));
    }

    #[test]
    fn v1_header_only_and_template_counts() {
        let layout = parse_lov(&v1_blob(LOV_PATTERN_RAID0, 4 * MIB, 0xFFFF, 0)).unwrap();
        assert_eq!(layout.stripe_bytes, 4 << 20);
        assert_eq!(layout.stripe_count, 0xFFFF);
        assert_eq!(layout.stripe_count_known(), None);
        let layout = parse_lov(&v1_blob(LOV_PATTERN_RAID0, 0, 0, 0)).unwrap();
        assert_eq!(layout.stripe_count_known(), None);
    }

    #[test]
    fn v1_keeps_pattern_flags() {
        let released = 0x8000_0000 | LOV_PATTERN_RAID0;
        assert_eq!(
            parse_lov(&v1_blob(released, MIB, 2, 2)).unwrap().pattern,
            released
        );
    }

    #[test]
    fn v3_pool_names() {
        let layout = parse_lov(&v3_blob(2 * MIB, 8, b"flash", 8)).unwrap();
        assert_eq!(layout.pool.as_deref(), Some("flash"));
        assert_eq!(layout.stripe_bytes, 2 << 20);
        assert_eq!(layout.stripe_count, 8);
        assert_eq!(parse_lov(&v3_blob(MIB, 1, b"", 1)).unwrap().pool, None);
        // All 16 bytes used, no NUL: the whole field is the name.
        let full = parse_lov(&v3_blob(MIB, 1, b"0123456789abcdef", 0)).unwrap();
        assert_eq!(full.pool.as_deref(), Some("0123456789abcdef"));
    }

    #[test]
    fn v3_truncated_pool_name() {
        let blob = v3_blob(MIB, 1, b"flash", 0);
        let err = parse_lov(&blob[..40]).unwrap_err();
        assert_eq!(
            err,
            LovParseError::TooShort {
                what: "lmm_pool_name",
                offset: 32,
                needed: 16,
                available: 8
            }
        );
    }

    #[test]
    fn encode_v1_layout_and_round_trip() {
        let blob = encode_v1(StripeBytes::try_from(u64::from(4 * MIB)).unwrap(), 16);
        assert_eq!(blob.len(), 32);
        assert_eq!(&blob[0..4], &LOV_USER_MAGIC_V1.to_le_bytes());
        assert_eq!(&blob[4..8], &1u32.to_le_bytes());
        assert!(blob[8..24].iter().all(|&b| b == 0));
        assert_eq!(&blob[24..28], &(4 * MIB).to_le_bytes());
        assert_eq!(&blob[28..30], &16u16.to_le_bytes());
        assert_eq!(&blob[30..32], &[0xFF, 0xFF]);
        let layout = parse_lov(&blob).unwrap();
        assert_eq!((layout.stripe_bytes, layout.stripe_count), (4 << 20, 16));
    }

    #[test]
    fn pfl_picks_the_eof_component() {
        let layout = parse_lov(&pfl()).unwrap();
        assert_eq!(layout.stripe_bytes, 4 << 20);
        assert_eq!(layout.stripe_count, 64);
        assert_eq!(layout.pool.as_deref(), Some("flash"));
        assert_eq!(layout.components, 3);
    }

    #[test]
    fn extension_and_parity_components_are_skipped() {
        let blob = comp_blob(&[
            (LCME_FL_INIT, 0, 64 * u64::from(MIB), v1_blob(1, MIB, 2, 2)),
            (
                LCME_FL_EXTENSION,
                64 * u64::from(MIB),
                EOF,
                v1_blob(1, 64 * MIB, 0, 0),
            ),
            (LCME_FL_PARITY | LCME_FL_INIT, 0, EOF, v1_blob(1, MIB, 1, 1)),
        ]);
        let layout = parse_lov(&blob).unwrap();
        assert_eq!((layout.stripe_bytes, layout.stripe_count), (1 << 20, 2));
        assert_eq!(layout.components, 3);
    }

    #[test]
    fn mirror_tie_prefers_live_then_first() {
        let stale = LCME_FL_INIT | LCME_FL_STALE;
        let blob = comp_blob(&[
            (stale, 0, EOF, v1_blob(1, MIB, 1, 1)),
            (0, 0, EOF, v1_blob(1, 2 * MIB, 2, 0)),
            (LCME_FL_INIT, 0, EOF, v1_blob(1, 4 * MIB, 4, 4)),
            (LCME_FL_INIT, 0, EOF, v1_blob(1, 8 * MIB, 8, 8)),
        ]);
        assert_eq!(parse_lov(&blob).unwrap().stripe_bytes, 4 << 20);
        let none_live = comp_blob(&[
            (0, 0, EOF, v1_blob(1, 2 * MIB, 2, 0)),
            (0, 0, EOF, v1_blob(1, 4 * MIB, 4, 0)),
        ]);
        assert_eq!(parse_lov(&none_live).unwrap().stripe_bytes, 2 << 20);
    }

    #[test]
    fn all_components_unusable() {
        let blob = comp_blob(&[(LCME_FL_EXTENSION, 0, EOF, v1_blob(1, MIB, 1, 0))]);
        assert_eq!(
            parse_lov(&blob),
            Err(LovParseError::NoUsableComponent { components: 1 })
        );
    }

    #[test]
    fn empty_and_tiny_inputs() {
        assert_eq!(
            parse_lov(&[]),
            Err(LovParseError::TooShort {
                what: "magic",
                offset: 0,
                needed: 4,
                available: 0
            })
        );
        let err = parse_lov(&LOV_USER_MAGIC_V1.to_le_bytes()).unwrap_err();
        assert_eq!(
            err,
            LovParseError::TooShort {
                what: "lov_user_md header",
                offset: 0,
                needed: 32,
                available: 4
            }
        );
        assert_eq!(
            err.to_string(),
            "lustre.lov too short at offset 0: lov_user_md header needs 32 bytes, 4 available"
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        for blob in [v1_blob(1, MIB, 4, 4), v3_blob(MIB, 4, b"p", 4), pfl()] {
            let header = match u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) {
                LOV_USER_MAGIC_V1 => 32,
                LOV_USER_MAGIC_V3 => 48,
                _ => blob.len(), // composite: lcm_size covers everything
            };
            for len in 0..header {
                assert!(
                    parse_lov(&blob[..len]).is_err(),
                    "prefix of {len} bytes parsed"
                );
            }
            // Objects are not read: a blob cut inside them still parses.
            assert!(parse_lov(&blob[..header]).is_ok());
        }
    }

    #[test]
    fn unknown_magic_is_named() {
        let mut blob = v1_blob(1, MIB, 1, 0);
        blob[..4].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        let err = parse_lov(&blob).unwrap_err();
        assert_eq!(
            err,
            LovParseError::UnknownMagic {
                magic: 0xDEAD_BEEF,
                offset: 0
            }
        );
        assert!(
            err.to_string().contains("unknown magic 0xdeadbeef"),
            "{err}"
        );
        // Big-endian data gets a hint.
        blob[..4].copy_from_slice(&LOV_USER_MAGIC_V1.to_be_bytes());
        let text = parse_lov(&blob).unwrap_err().to_string();
        assert!(text.contains("big-endian"), "{text}");
        // lov_mds_md_v1 with the deprecated join magic is not a layout we read.
        blob[..4].copy_from_slice(&0x0BD2_0BD0u32.to_le_bytes());
        assert!(matches!(
            parse_lov(&blob),
            Err(LovParseError::UnknownMagic { .. })
        ));
    }

    #[test]
    fn composite_size_checks() {
        let mut blob = pfl();
        let len = blob.len() as u32;
        blob[4..8].copy_from_slice(&(len + 1).to_le_bytes());
        assert_eq!(
            parse_lov(&blob),
            Err(LovParseError::BadCompositeSize {
                lcm_size: len + 1,
                available: len as usize
            })
        );
        blob[4..8].copy_from_slice(&16u32.to_le_bytes());
        assert!(matches!(
            parse_lov(&blob),
            Err(LovParseError::BadCompositeSize { .. })
        ));
        // Trailing bytes after lcm_size are ignored.
        let mut longer = pfl();
        longer.extend_from_slice(&[0xEE; 10]);
        assert_eq!(parse_lov(&longer).unwrap().stripe_bytes, 4 << 20);
    }

    #[test]
    fn composite_entry_count_checks() {
        let mut blob = pfl();
        blob[14..16].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(parse_lov(&blob), Err(LovParseError::NoComponents));
        blob[14..16].copy_from_slice(&5000u16.to_le_bytes());
        let err = parse_lov(&blob).unwrap_err();
        assert!(
            matches!(
                err,
                LovParseError::TooShort {
                    what: "component entry table",
                    offset: 32,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn component_offset_out_of_bounds() {
        let mut blob = pfl();
        let at = entry_field(1, 24);
        blob[at..at + 4].copy_from_slice(&100_000u32.to_le_bytes());
        let err = parse_lov(&blob).unwrap_err();
        assert!(
            matches!(
                err,
                LovParseError::ComponentOutOfBounds {
                    index: 1,
                    offset: 100_000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("component 1 offset out of bounds"),
            "{err}"
        );
        // offset + size overflows u32: still just out of bounds.
        let mut blob = pfl();
        let at = entry_field(2, 24);
        blob[at..at + 8].copy_from_slice(&[0xFF; 8]);
        assert!(matches!(
            parse_lov(&blob),
            Err(LovParseError::ComponentOutOfBounds { index: 2, .. })
        ));
    }

    #[test]
    fn component_blob_errors_report_absolute_offsets() {
        let short = comp_blob(&[(LCME_FL_INIT, 0, EOF, vec![0xD0, 0x0B, 0xD1, 0x0B, 0, 0])]);
        assert_eq!(
            parse_lov(&short),
            Err(LovParseError::TooShort {
                what: "lov_user_md header",
                offset: 80,
                needed: 32,
                available: 6
            })
        );
        let mut bad = v1_blob(1, MIB, 1, 0);
        bad[..4].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        let blob = comp_blob(&[(LCME_FL_INIT, 0, EOF, bad)]);
        assert_eq!(
            parse_lov(&blob),
            Err(LovParseError::UnknownMagic {
                magic: 0x1234_5678,
                offset: 80
            })
        );
        let empty = comp_blob(&[(LCME_FL_INIT, 0, EOF, Vec::new())]);
        assert!(matches!(
            parse_lov(&empty),
            Err(LovParseError::TooShort {
                what: "component magic",
                offset: 80,
                ..
            })
        ));
    }

    #[test]
    fn nested_composite_is_rejected() {
        let inner = comp_blob(&[(LCME_FL_INIT, 0, EOF, v1_blob(1, MIB, 1, 1))]);
        let blob = comp_blob(&[(LCME_FL_INIT, 0, EOF, inner)]);
        assert_eq!(
            parse_lov(&blob),
            Err(LovParseError::NestedComposite { index: 0 })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_lov(&bytes);
        }

        #[test]
        fn known_magic_then_garbage_never_panics(
            magic in prop::sample::select(vec![LOV_USER_MAGIC_V1, LOV_USER_MAGIC_V3, LOV_USER_MAGIC_COMP_V1]),
            rest in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = magic.to_le_bytes().to_vec();
            bytes.extend_from_slice(&rest);
            let _ = parse_lov(&bytes);
        }

        #[test]
        fn corrupted_pfl_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut blob = pfl();
            for (at, byte) in edits {
                let i = at.index(blob.len());
                blob[i] = byte;
            }
            let _ = parse_lov(&blob);
            let _ = parse_lov(&blob[..cut.index(blob.len())]);
        }

        #[test]
        fn encode_round_trips(units in 1u64..=65535, count in any::<u16>()) {
            let stripe = StripeBytes::try_from(units * 65536).unwrap();
            let layout = parse_lov(&encode_v1(stripe, count)).unwrap();
            prop_assert_eq!(layout.stripe_bytes, stripe.get());
            prop_assert_eq!(layout.stripe_count, u32::from(count));
            prop_assert_eq!(layout.pattern, LOV_PATTERN_RAID0);
        }

        #[test]
        fn any_stored_stripe_size_is_read_as_is(size in any::<u32>(), count in any::<u16>()) {
            let layout = parse_lov(&v1_blob(LOV_PATTERN_RAID0, size, count, 0)).unwrap();
            prop_assert_eq!(layout.stripe_bytes, u64::from(size));
            prop_assert_eq!(layout.stripe_count, u32::from(count));
        }
    }
}
