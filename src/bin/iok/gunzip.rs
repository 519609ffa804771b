//! A bounded, streaming multi-member gzip decoder for `iok merge` inputs.
//!
//! The caller pushes compressed bytes in whatever pieces it read them and
//! gets at most `out_max` decoded bytes back per call, so memory stays
//! bounded whatever the compression ratio (a 6 MB gzip bomb that expands to
//! 4 GiB is decoded in pieces of `out_max`), and every compressed byte is
//! looked at once (linear time). Members follow each other as in
//! `gzip -d`; zero bytes after the last member (tape padding) are accepted,
//! anything else after it is an error. Errors say at which compressed
//! offset decoding failed and where the member holding it starts.
//!
//! This module is pure (no I/O): [`crate::input`] reads, this decodes.

use flate2::{Crc, Decompress, FlushDecompress, Status};
use std::fmt;

/// The two bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// A member header longer than this (file name, comment and extra field
/// included) is rejected rather than buffered.
const HEADER_MAX_BYTES: usize = 1 << 20;
/// Bytes of the fixed part of a member header.
const HEADER_FIXED_BYTES: usize = 10;
/// Bytes of a member trailer (CRC-32, size mod 2^32).
const TRAILER_BYTES: usize = 8;
/// Decoded bytes produced per inflate step.
const STEP_OUT_BYTES: usize = 64 << 10;

/// Compression method byte of a deflate member.
const DEFLATE_METHOD: u8 = 8;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Why a gzip stream is invalid, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzipError {
    /// Compressed offset where decoding failed.
    pub offset: u64,
    /// Compressed offset where the member being decoded starts.
    pub member_start: u64,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for GzipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at compressed offset {} (in the member starting at offset {})",
            self.what, self.offset, self.member_start
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a member (or at the start): a header, zero padding or the end.
    Between,
    /// Gathering a member header.
    Header,
    /// Inflating a member's body.
    Body,
    /// Gathering a member trailer.
    Trailer,
    /// Zero padding after the last member.
    Zeros,
}

/// How much more of a header is needed.
enum HeaderNeed {
    /// The header is complete at this many bytes.
    Done,
    /// At least this many bytes in all.
    Bytes(usize),
    /// Bytes up to and including the next zero byte.
    Nul,
}

/// Decodes one multi-member gzip stream pushed to it in pieces.
pub struct GzipStream {
    state: State,
    /// Compressed bytes consumed so far.
    offset: u64,
    member_start: u64,
    members: u64,
    /// Header or trailer bytes gathered so far.
    gathered: Vec<u8>,
    inflate: Decompress,
    crc: Crc,
}

impl Default for GzipStream {
    fn default() -> Self {
        GzipStream::new()
    }
}

impl GzipStream {
    /// A decoder at the start of a stream.
    pub fn new() -> GzipStream {
        GzipStream {
            state: State::Between,
            offset: 0,
            member_start: 0,
            members: 0,
            gathered: Vec::new(),
            inflate: Decompress::new(false),
            crc: Crc::new(),
        }
    }

    /// Decodes from `input`, appending to `out` until `input` is used up
    /// or `out` holds `out_max` bytes (never more). Returns how many bytes
    /// of `input` were consumed; call again with the rest.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        out_max: usize,
    ) -> Result<usize, GzipError> {
        let mut used = 0;
        while used < input.len() && out.len() < out_max {
            let rest = &input[used..];
            let step = match self.state {
                State::Between => {
                    self.start_member(rest[0]);
                    0
                }
                State::Header => self.header_step(rest)?,
                State::Body => {
                    let room = (out_max - out.len()).min(STEP_OUT_BYTES);
                    let (step, progressed) = self.body_step(rest, out, room)?;
                    if !progressed {
                        break;
                    }
                    step
                }
                State::Trailer => self.trailer_step(rest)?,
                State::Zeros => self.zeros_step(rest)?,
            };
            used += step;
            self.offset += step as u64;
        }
        Ok(used)
    }

    /// Checks the stream ended where a gzip stream may end: after a whole
    /// member (and any zero padding).
    pub fn finish(&self) -> Result<(), GzipError> {
        let what = match self.state {
            State::Zeros => return Ok(()),
            State::Between if self.members > 0 => return Ok(()),
            State::Between => "empty gzip stream",
            State::Header => "truncated gzip member header",
            State::Body => "truncated gzip member (the stream ends inside compressed data)",
            State::Trailer => "truncated gzip member trailer",
        };
        Err(self.error(what.to_string()))
    }

    fn error(&self, what: String) -> GzipError {
        GzipError {
            offset: self.offset,
            member_start: self.member_start,
            what,
        }
    }

    fn start_member(&mut self, first: u8) {
        self.member_start = self.offset;
        self.gathered.clear();
        self.state = if first == 0 && self.members > 0 {
            State::Zeros
        } else {
            State::Header
        };
    }

    fn header_step(&mut self, rest: &[u8]) -> Result<usize, GzipError> {
        let take = match self.header_need()? {
            HeaderNeed::Done => {
                self.gathered.clear();
                self.inflate.reset(false);
                self.crc.reset();
                self.state = State::Body;
                return Ok(0);
            }
            HeaderNeed::Bytes(total) => (total - self.gathered.len()).min(rest.len()),
            HeaderNeed::Nul => memchr::memchr(0, rest).map_or(rest.len(), |at| at + 1),
        };
        if self.gathered.len() + take > HEADER_MAX_BYTES {
            return Err(self.error(format!(
                "gzip member header longer than {HEADER_MAX_BYTES} bytes"
            )));
        }
        self.gathered.extend_from_slice(&rest[..take]);
        // Check what came at once, so a bad header is reported even when
        // the stream ends right after it.
        self.header_need()?;
        Ok(take)
    }

    /// What the gathered header bytes still lack; an error if they are
    /// not a gzip header.
    fn header_need(&self) -> Result<HeaderNeed, GzipError> {
        let h = &self.gathered;
        let expected = [GZIP_MAGIC[0], GZIP_MAGIC[1], DEFLATE_METHOD];
        if let Some(bad) = h.iter().zip(expected).position(|(got, want)| *got != want) {
            return Err(self.not_a_header(bad));
        }
        if h.len() < HEADER_FIXED_BYTES {
            return Ok(HeaderNeed::Bytes(HEADER_FIXED_BYTES));
        }
        let flags = h[3];
        if flags & 0xe0 != 0 {
            return Err(GzipError {
                offset: self.member_start + 3,
                member_start: self.member_start,
                what: format!("reserved gzip header flags set ({flags:#04x})"),
            });
        }
        let mut at = HEADER_FIXED_BYTES;
        if flags & FEXTRA != 0 {
            if h.len() < at + 2 {
                return Ok(HeaderNeed::Bytes(at + 2));
            }
            at += 2 + usize::from(u16::from_le_bytes([h[at], h[at + 1]]));
            if h.len() < at {
                return Ok(HeaderNeed::Bytes(at));
            }
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                match memchr::memchr(0, &h[at..]) {
                    Some(end) => at += end + 1,
                    None => return Ok(HeaderNeed::Nul),
                }
            }
        }
        if flags & FHCRC != 0 && h.len() < at + 2 {
            return Ok(HeaderNeed::Bytes(at + 2));
        }
        Ok(HeaderNeed::Done)
    }

    /// The header's byte `at` is not what a gzip member starts with.
    fn not_a_header(&self, at: usize) -> GzipError {
        let what = if self.members == 0 {
            "not a gzip member header".to_string()
        } else {
            format!(
                "bytes after gzip member {} are neither a gzip member nor zero padding",
                self.members
            )
        };
        GzipError {
            offset: self.member_start + at as u64,
            member_start: self.member_start,
            what,
        }
    }

    /// One inflate step; `(bytes consumed, whether anything happened)`.
    fn body_step(
        &mut self,
        rest: &[u8],
        out: &mut Vec<u8>,
        room: usize,
    ) -> Result<(usize, bool), GzipError> {
        let len = out.len();
        out.resize(len + room, 0);
        let in_before = self.inflate.total_in();
        let out_before = self.inflate.total_out();
        let status = self
            .inflate
            .decompress(rest, &mut out[len..], FlushDecompress::None);
        let consumed = (self.inflate.total_in() - in_before) as usize;
        let produced = (self.inflate.total_out() - out_before) as usize;
        out.truncate(len + produced);
        self.crc.update(&out[len..]);
        match status {
            Ok(Status::StreamEnd) => {
                self.state = State::Trailer;
                Ok((consumed, true))
            }
            Ok(_) => Ok((consumed, consumed > 0 || produced > 0)),
            Err(e) => {
                let offset = self.offset + consumed as u64;
                Err(GzipError {
                    offset,
                    member_start: self.member_start,
                    what: format!("corrupt deflate data ({e})"),
                })
            }
        }
    }

    fn trailer_step(&mut self, rest: &[u8]) -> Result<usize, GzipError> {
        let take = (TRAILER_BYTES - self.gathered.len()).min(rest.len());
        self.gathered.extend_from_slice(&rest[..take]);
        if self.gathered.len() < TRAILER_BYTES {
            return Ok(take);
        }
        let t = &self.gathered;
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        // Reported at the trailer's first byte (it may span reads).
        let trailer_error = |what: String| GzipError {
            offset: (self.offset + take as u64).saturating_sub(TRAILER_BYTES as u64),
            member_start: self.member_start,
            what,
        };
        if crc != self.crc.sum() {
            return Err(trailer_error(format!(
                "gzip member CRC mismatch (trailer says {crc:#010x}, data gives {:#010x})",
                self.crc.sum()
            )));
        }
        if size != self.crc.amount() {
            return Err(trailer_error(format!(
                "gzip member size mismatch (trailer says {size}, data gives {})",
                self.crc.amount()
            )));
        }
        self.members += 1;
        self.gathered.clear();
        self.state = State::Between;
        Ok(take)
    }

    fn zeros_step(&mut self, rest: &[u8]) -> Result<usize, GzipError> {
        match rest.iter().position(|&b| b != 0) {
            None => Ok(rest.len()),
            Some(at) => {
                let offset = self.offset + at as u64;
                Err(GzipError {
                    offset,
                    member_start: self.member_start,
                    what: format!(
                        "non-zero byte in the padding after gzip member {}",
                        self.members
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::{Compression, GzBuilder};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Decodes `stream` fed in pieces of `piece` bytes with `out_max`.
    fn decode_all(stream: &[u8], piece: usize, out_max: usize) -> Result<Vec<u8>, GzipError> {
        let mut d = GzipStream::new();
        let mut all = Vec::new();
        for part in stream.chunks(piece) {
            let mut at = 0;
            while at < part.len() {
                let mut out = Vec::new();
                at += d.decode(&part[at..], &mut out, out_max)?;
                assert!(out.len() <= out_max);
                all.extend_from_slice(&out);
            }
        }
        d.finish()?;
        Ok(all)
    }

    #[test]
    fn members_decode_in_any_piece_size() {
        let a = b"{\"a\":1}\n".repeat(5000);
        let b = b"{\"b\":2}\nlast".to_vec();
        let named = {
            let mut e = GzBuilder::new()
                .filename("x.pfw")
                .comment("hello")
                .extra(vec![1, 2, 3])
                .write(Vec::new(), Compression::new(1));
            e.write_all(&b).unwrap();
            e.finish().unwrap()
        };
        let stream = [gz(&a), named, gz(b"")].concat();
        for piece in [1, 2, 7, 100, 4096, stream.len()] {
            assert_eq!(
                decode_all(&stream, piece, 1000).unwrap(),
                [&a[..], &b].concat()
            );
        }
    }

    #[test]
    fn output_per_call_is_bounded_for_a_bomb() {
        let zeros = vec![0u8; 50 << 20];
        let stream = gz(&zeros);
        let mut d = GzipStream::new();
        let mut total = 0usize;
        let mut at = 0;
        while at < stream.len() {
            let mut out = Vec::new();
            at += d.decode(&stream[at..], &mut out, 1 << 20).unwrap();
            assert!(out.len() <= 1 << 20);
            total += out.len();
        }
        d.finish().unwrap();
        assert_eq!(total, zeros.len());
    }

    #[test]
    fn trailing_zeros_are_padding_other_bytes_are_not() {
        let member = gz(b"x\n");
        let padded = [&member[..], &[0u8; 512]].concat();
        assert_eq!(decode_all(&padded, 3, 64).unwrap(), b"x\n");
        let mut garbage = padded.clone();
        garbage[member.len() + 100] = 7;
        let err = decode_all(&garbage, 64, 64).unwrap_err();
        assert_eq!(err.offset, member.len() as u64 + 100, "{err}");
        let junk = [&member[..], b"junk"].concat();
        let err = decode_all(&junk, 64, 64).unwrap_err();
        assert!(err.what.contains("neither"), "{err}");
        assert_eq!(err.member_start, member.len() as u64);
    }

    #[test]
    fn corruption_is_reported_at_its_offset() {
        let first = gz(b"hello\n");
        let mut second = gz(&b"world, world\n".repeat(100));
        let flip = second.len() - 4;
        second[flip] ^= 0xff; // the size in the trailer
        let stream = [first.clone(), second.clone()].concat();
        let err = decode_all(&stream, 5, 64).unwrap_err();
        assert_eq!(err.member_start, first.len() as u64, "{err}");
        assert!(err.what.contains("size mismatch"), "{err}");
        assert_eq!(
            err.offset,
            (stream.len() - 8) as u64,
            "at the trailer: {err}"
        );
        let truncated = &stream[..stream.len() - 3];
        let err = decode_all(truncated, 5, 64).unwrap_err();
        assert!(err.what.contains("truncated"), "{err}");
        assert_eq!(err.offset, truncated.len() as u64);
        let not_gzip = decode_all(b"{\"a\":1}\n", 5, 64).unwrap_err();
        assert_eq!(not_gzip.offset, 0, "{not_gzip}");
        // A whole header in one piece is checked too (method byte 9).
        let mut bad_method = [first.clone(), first.clone()].concat();
        bad_method[first.len() + 2] = 9;
        let err = decode_all(&bad_method, 4096, 64).unwrap_err();
        assert_eq!(err.offset, first.len() as u64 + 2, "{err}");
        assert_eq!(err.member_start, first.len() as u64, "{err}");
    }

    #[test]
    fn a_bad_deflate_block_names_an_offset_inside_the_member() {
        let member = gz(&b"abcdefgh\n".repeat(1000));
        let mut bad = member.clone();
        bad[10] = 0xff; // first deflate byte: block type 3 is reserved
        let err = decode_all(&bad, 4096, 1 << 20).unwrap_err();
        assert!(err.what.contains("corrupt deflate"), "{err}");
        assert!(
            err.offset >= 10 && err.offset < member.len() as u64,
            "{err}"
        );
        assert_eq!(err.member_start, 0);
    }
}
