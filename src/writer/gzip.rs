//! Gzip members for the writer: each sealed chunk becomes one complete
//! member (RFC 1952), and padding becomes filler a gzip reader skips.
//!
//! The 10-byte header and 8-byte trailer are written here around raw
//! deflate output and a CRC-32, so the header can carry an
//! `FCOMMENT` when the padded-striped layout needs to grow a member by a
//! few bytes. A file made of such members, back to back, is a valid
//! multi-member gzip stream: `gzip -d` and `zcat` print the chunks'
//! concatenation, and empty members and comments add nothing to it.
//!
//! Filler of `p` bytes:
//! * `p >= 20`: [`empty_member`]s of exactly `p` bytes in all (an empty
//!   member is 20 bytes; the rest is a comment). A comment holds at most
//!   65 535 bytes before its NUL, the longest header field common readers
//!   take (flate2 refuses longer ones; gzip does not mind), so a larger gap
//!   is split evenly over several members.
//! * `p < 20`: too short for a member, so [`grow_header`] inserts a comment
//!   of exactly `p` bytes into the header of the member before the gap.
//!
//! Members are compressed with libdeflate (`libdeflater`), which
//! compresses a whole buffer in one call: a sealed chunk is exactly that,
//! and at level 6 it measured 1.2x zlib-rs's streaming deflate per byte on
//! trace lines, with smaller output. Decoding (inputs, tests) stays on
//! `flate2`. One compressor per level and one scratch buffer live in each
//! compressing thread and are reused across members.
//!
//! This module owns the byte format only; it does no I/O.

use libdeflater::{CompressionLvl, Compressor};
use std::cell::RefCell;

/// Gzip magic plus the deflate method byte.
const MAGIC_AND_METHOD: [u8; 3] = [0x1f, 0x8b, 0x08];
/// Header flag: a zero-terminated comment follows the fixed header.
const FLAG_COMMENT: u8 = 0x10;
/// Fixed header length: magic, method, flags, mtime, xfl, os.
pub const HEADER_BYTES: usize = 10;
/// Trailer length: CRC-32 and input size.
pub const TRAILER_BYTES: usize = 8;
/// A deflate stream holding nothing: one final fixed-Huffman block with
/// only the end-of-block code.
const EMPTY_DEFLATE: [u8; 2] = [0x03, 0x00];
/// The smallest complete gzip member (no comment, no data).
pub const EMPTY_MEMBER_BYTES: usize = HEADER_BYTES + EMPTY_DEFLATE.len() + TRAILER_BYTES;
/// Operating-system byte of the header: "unknown".
const OS_UNKNOWN: u8 = 0xff;
/// The byte comments are made of (any non-NUL byte works).
const COMMENT_FILL: u8 = b' ';

/// Highest compression level taken (gzip's scale, 0 = stored).
pub const MAX_LEVEL: u32 = 9;

/// Per-thread compression state, reused across members.
struct MemberEncoder {
    /// One compressor per level, made when the level is first used.
    compressors: Vec<Option<Compressor>>,
    /// Raw deflate output; grown to the largest bound seen, never shrunk.
    scratch: Vec<u8>,
}

thread_local! {
    static MEMBER_ENCODER: RefCell<MemberEncoder> = const {
        RefCell::new(MemberEncoder { compressors: Vec::new(), scratch: Vec::new() })
    };
}

impl MemberEncoder {
    /// Raw deflate of `data` at `level` (clamped to `MAX_LEVEL`), appended
    /// to `out`.
    fn deflate_into(&mut self, data: &[u8], level: u32, out: &mut Vec<u8>) {
        let level = level.min(MAX_LEVEL) as usize;
        if self.compressors.len() <= level {
            self.compressors.resize_with(level + 1, || None);
        }
        let compressor = self.compressors[level].get_or_insert_with(|| {
            let lvl = CompressionLvl::new(level as i32)
                .unwrap_or_else(|e| unreachable!("level {level} is in libdeflate's range: {e:?}"));
            Compressor::new(lvl)
        });
        let bound = compressor.deflate_compress_bound(data.len());
        if self.scratch.len() < bound {
            self.scratch.resize(bound, 0);
        }
        // The bound is libdeflate's worst case for this input length, so
        // the output always fits.
        let written = compressor
            .deflate_compress(data, &mut self.scratch[..bound])
            .unwrap_or_else(|e| unreachable!("deflate within its own bound failed: {e}"));
        out.extend_from_slice(&self.scratch[..written]);
    }
}

fn header(flags: u8) -> [u8; HEADER_BYTES] {
    let [m0, m1, m2] = MAGIC_AND_METHOD;
    [m0, m1, m2, flags, 0, 0, 0, 0, 0, OS_UNKNOWN]
}

fn trailer(crc: u32, input_len: usize) -> [u8; TRAILER_BYTES] {
    let mut out = [0u8; TRAILER_BYTES];
    out[..4].copy_from_slice(&crc.to_le_bytes());
    // ISIZE is the input length modulo 2^32 (RFC 1952).
    out[4..].copy_from_slice(&((input_len as u64 & 0xffff_ffff) as u32).to_le_bytes());
    out
}

/// `data` as one complete gzip member compressed at `level` (0..=9).
///
/// ```
/// use std::io::Read;
/// let member = iokernel::writer::gzip::encode_member(b"hello\n", 6);
/// let mut out = String::new();
/// flate2::read::MultiGzDecoder::new(&member[..]).read_to_string(&mut out).unwrap();
/// assert_eq!(out, "hello\n");
/// ```
pub fn encode_member(data: &[u8], level: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 + EMPTY_MEMBER_BYTES + 64);
    out.extend_from_slice(&header(0));
    MEMBER_ENCODER.with_borrow_mut(|encoder| encoder.deflate_into(data, level, &mut out));
    out.extend_from_slice(&trailer(libdeflater::crc32(data), data.len()));
    out
}

/// Longest comment field (text plus its NUL) put in a header: 65 535
/// bytes of text, the most flate2's gzip reader takes in one field.
const MAX_COMMENT_FIELD_BYTES: usize = 65_536;
/// Longest single empty member [`empty_member`] makes.
pub const MAX_EMPTY_MEMBER_BYTES: usize = EMPTY_MEMBER_BYTES + MAX_COMMENT_FIELD_BYTES;

/// Empty members that decompress to nothing, exactly `len_bytes` long in
/// all (`len_bytes >= EMPTY_MEMBER_BYTES`; the excess is comments): one
/// member up to [`MAX_EMPTY_MEMBER_BYTES`], else as few as fit, of even
/// sizes. `None` when `len_bytes` is too short.
///
/// ```
/// use iokernel::writer::gzip::{empty_member, EMPTY_MEMBER_BYTES};
/// assert_eq!(empty_member(EMPTY_MEMBER_BYTES).unwrap().len(), 20);
/// assert_eq!(empty_member(4096).unwrap().len(), 4096);
/// assert_eq!(empty_member(1 << 20).unwrap().len(), 1 << 20);
/// assert!(empty_member(19).is_none());
/// ```
pub fn empty_member(len_bytes: usize) -> Option<Vec<u8>> {
    if len_bytes < EMPTY_MEMBER_BYTES {
        return None;
    }
    let members = len_bytes.div_ceil(MAX_EMPTY_MEMBER_BYTES);
    // Each part is at least len/members - 1 >= 32 K bytes when there are
    // several, so every part holds a member.
    let (base, extra) = (len_bytes / members, len_bytes % members);
    let mut out = Vec::with_capacity(len_bytes);
    for i in 0..members {
        push_empty_member(&mut out, base + usize::from(i < extra));
    }
    Some(out)
}

/// One empty member of `len_bytes` (`EMPTY_MEMBER_BYTES..=MAX_EMPTY_MEMBER_BYTES`).
fn push_empty_member(out: &mut Vec<u8>, len_bytes: usize) {
    let comment_bytes = len_bytes - EMPTY_MEMBER_BYTES;
    if comment_bytes == 0 {
        out.extend_from_slice(&header(0));
    } else {
        out.extend_from_slice(&header(FLAG_COMMENT));
        push_comment(out, comment_bytes);
    }
    out.extend_from_slice(&EMPTY_DEFLATE);
    out.extend_from_slice(&trailer(0, 0));
}

/// A comment field of exactly `len_bytes` (>= 1): fill then the NUL.
fn push_comment(out: &mut Vec<u8>, len_bytes: usize) {
    out.extend(std::iter::repeat(COMMENT_FILL).take(len_bytes - 1));
    out.push(0);
}

/// Why a member's header could not be grown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrowError {
    /// Growing by 0 bytes asks for nothing; a comment is at least 1 byte.
    Zero,
    /// The bytes do not start with a header [`encode_member`] writes (no
    /// optional fields yet).
    NotOwnHeader,
}

impl std::fmt::Display for GrowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GrowError::Zero => "a gzip member cannot grow by 0 bytes (a comment is at least 1)",
            GrowError::NotOwnHeader => {
                "the bytes do not start with a gzip header the writer made (no optional fields)"
            }
        })
    }
}

impl std::error::Error for GrowError {}

/// Grow `member` (made by [`encode_member`]) by exactly `extra_bytes` by
/// giving its header a comment of that length. Its content is unchanged.
///
/// ```
/// use std::io::Read;
/// use iokernel::writer::gzip::{encode_member, grow_header};
/// let mut member = encode_member(b"data\n", 6);
/// let before = member.len();
/// grow_header(&mut member, 7).unwrap();
/// assert_eq!(member.len(), before + 7);
/// let mut out = String::new();
/// flate2::read::MultiGzDecoder::new(&member[..]).read_to_string(&mut out).unwrap();
/// assert_eq!(out, "data\n");
/// ```
pub fn grow_header(member: &mut Vec<u8>, extra_bytes: usize) -> Result<(), GrowError> {
    if extra_bytes == 0 {
        return Err(GrowError::Zero);
    }
    if member.len() < EMPTY_MEMBER_BYTES || member[..3] != MAGIC_AND_METHOD || member[3] != 0 {
        return Err(GrowError::NotOwnHeader);
    }
    member[3] = FLAG_COMMENT;
    let mut comment = Vec::with_capacity(extra_bytes);
    push_comment(&mut comment, extra_bytes);
    member.splice(HEADER_BYTES..HEADER_BYTES, comment);
    Ok(())
}

/// Append `pad_bytes` of filler after `member` (so the member plus filler
/// take exactly `member.len() + pad_bytes`): an empty member when the gap
/// holds one, else a comment in `member`'s own header.
pub fn pad_member(member: &mut Vec<u8>, pad_bytes: usize) -> Result<(), GrowError> {
    match empty_member(pad_bytes) {
        Some(filler) => {
            member.extend_from_slice(&filler);
            Ok(())
        }
        None => grow_header(member, pad_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use proptest::prelude::*;
    use std::io::Read;

    fn decode(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn empty_members_of_every_small_size_decode_to_nothing() {
        for len in EMPTY_MEMBER_BYTES..300 {
            let member = empty_member(len).unwrap();
            assert_eq!(member.len(), len);
            let mut stream = encode_member(b"a\n", 1);
            stream.extend_from_slice(&member);
            stream.extend_from_slice(&encode_member(b"b\n", 1));
            assert_eq!(decode(&stream), b"a\nb\n", "filler of {len} bytes");
        }
    }

    #[test]
    fn large_fillers_split_into_members_flate2_reads() {
        let sizes = [
            MAX_EMPTY_MEMBER_BYTES - 1,
            MAX_EMPTY_MEMBER_BYTES,
            MAX_EMPTY_MEMBER_BYTES + 1,
            MAX_EMPTY_MEMBER_BYTES + EMPTY_MEMBER_BYTES - 1,
            2 * MAX_EMPTY_MEMBER_BYTES + 7,
            (1 << 20) - 333,
            4 << 20,
        ];
        for len in sizes {
            let filler = empty_member(len).unwrap();
            assert_eq!(filler.len(), len);
            let mut stream = encode_member(b"a\n", 6);
            stream.extend_from_slice(&filler);
            stream.extend_from_slice(&encode_member(b"b\n", 6));
            assert_eq!(decode(&stream), b"a\nb\n", "filler of {len} bytes");
        }
    }

    #[test]
    fn grown_headers_of_every_short_gap_decode_unchanged() {
        for extra in 1..EMPTY_MEMBER_BYTES {
            let mut member = encode_member(b"x y z\n", 9);
            let before = member.len();
            pad_member(&mut member, extra).unwrap();
            assert_eq!(member.len(), before + extra);
            member.extend_from_slice(&encode_member(b"next\n", 0));
            assert_eq!(decode(&member), b"x y z\nnext\n");
        }
    }

    #[test]
    fn a_header_grows_only_once_and_never_by_zero() {
        let mut member = encode_member(b"q", 6);
        assert_eq!(grow_header(&mut member, 0), Err(GrowError::Zero));
        grow_header(&mut member, 3).unwrap();
        assert_eq!(grow_header(&mut member, 3), Err(GrowError::NotOwnHeader));
        assert_eq!(
            grow_header(&mut b"not gzip at all, no".to_vec(), 1),
            Err(GrowError::NotOwnHeader)
        );
    }

    #[test]
    fn empty_input_is_a_valid_member() {
        assert_eq!(decode(&encode_member(b"", 6)), b"");
    }

    proptest! {
        #[test]
        fn members_round_trip_at_every_level(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            level in 0u32..=9,
            pad in 0usize..64,
        ) {
            let mut member = encode_member(&data, level);
            let len = member.len();
            if pad > 0 {
                pad_member(&mut member, pad).unwrap();
            }
            prop_assert_eq!(member.len(), len + pad);
            prop_assert_eq!(decode(&member), data);
        }
    }
}
