//! Output checks shared by `iok demo` and `tests/cli.rs` (which includes
//! this file with `#[path]`, so it uses only std and flate2).
//!
//! * [`decoded_contents`]: a file's bytes, decompressed when it starts with
//!   the gzip magic (every member, like `zcat`).
//! * [`same_lines`]: two texts hold the same multiset of lines, once the
//!   padded layout's filler (spaces before a line's `\n`) is taken off;
//!   a blank line is an error (filler must never make one).
//! * [`check_stripe_boundaries`]: a padded-striped file has a chunk start
//!   at every stripe boundary: a gzip member header for gzip, the end of a
//!   line just before it for JSON lines.
//!
//! This module owns only these checks; it never writes.

use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The bytes of `path`, decompressed if it is gzip.
pub fn decoded_contents(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| format!("{} does not decompress: {e}", path.display()))?;
    Ok(out)
}

/// The decoded contents of several files, each ending with a newline.
pub fn decoded_contents_all(paths: &[PathBuf]) -> Result<Vec<u8>, String> {
    let mut all = Vec::new();
    for path in paths {
        let mut one = decoded_contents(path)?;
        if !one.is_empty() && !one.ends_with(b"\n") {
            one.push(b'\n');
        }
        all.extend_from_slice(&one);
    }
    Ok(all)
}

/// The lines of `text` without their `\n` and without trailing spaces
/// (padding filler), sorted. A blank line is an error.
fn sorted_lines<'a>(text: &'a [u8], label: &str) -> Result<Vec<&'a [u8]>, String> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines = Vec::new();
    for (number, line) in body.split(|&b| b == b'\n').enumerate() {
        let end = line.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        if end == 0 {
            return Err(format!("{label}: line {} is blank", number + 1));
        }
        lines.push(&line[..end]);
    }
    lines.sort_unstable();
    Ok(lines)
}

/// Checks `got` holds exactly the lines of `expected`, in any order.
/// Returns the number of lines.
pub fn same_lines(expected: &[u8], got: &[u8]) -> Result<usize, String> {
    let want = sorted_lines(expected, "input")?;
    let have = sorted_lines(got, "output")?;
    if want.len() != have.len() {
        return Err(format!(
            "output has {} lines, inputs have {}",
            have.len(),
            want.len()
        ));
    }
    if let Some((w, h)) = want.iter().zip(&have).find(|(w, h)| w != h) {
        return Err(format!(
            "output lines differ from the inputs; first difference in sorted order: \
             expected {:?}, found {:?}",
            String::from_utf8_lossy(w),
            String::from_utf8_lossy(h)
        ));
    }
    Ok(want.len())
}

/// Checks that a chunk starts at every stripe boundary inside the file at
/// `path` (raw bytes, not decompressed): for gzip a member header
/// (`1f 8b 08`), for JSON lines a `\n` just before the boundary. Returns
/// the number of boundaries checked.
pub fn check_stripe_boundaries(path: &Path, stripe_bytes: u64, gzip: bool) -> Result<u64, String> {
    if stripe_bytes == 0 {
        return Err("stripe size 0".to_string());
    }
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut checked = 0;
    let mut boundary = stripe_bytes;
    while boundary < raw.len() as u64 {
        let at = boundary as usize;
        let ok = if gzip {
            raw[at..].starts_with(&[0x1f, 0x8b, 0x08])
        } else {
            raw[at - 1] == b'\n'
        };
        if !ok {
            let what = if gzip {
                "no gzip member starts"
            } else {
                "no line ends just before it"
            };
            return Err(format!(
                "{}: stripe boundary at offset {boundary}: {what}",
                path.display()
            ));
        }
        checked += 1;
        boundary += stripe_bytes;
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_lines_ignores_order_and_filler() {
        assert_eq!(same_lines(b"a\nb\nc\n", b"c\nb   \na\n"), Ok(3));
    }

    #[test]
    fn same_lines_reports_a_missing_line() {
        let err = same_lines(b"a\nb\n", b"a\n").unwrap_err();
        assert!(err.contains("1 lines"), "{err}");
    }

    #[test]
    fn same_lines_refuses_blank_lines() {
        let err = same_lines(b"a\nb\n", b"a\n   \nb\n").unwrap_err();
        assert!(err.contains("blank"), "{err}");
    }

    #[test]
    fn same_lines_reports_a_changed_line() {
        let err = same_lines(b"a\nb\n", b"a\nx\n").unwrap_err();
        assert!(err.contains("\"x\""), "{err}");
    }

    #[test]
    fn boundaries_of_text_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, b"abc\nxyz\nq").unwrap();
        assert_eq!(check_stripe_boundaries(&good, 4, false), Ok(2));
        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"abcdxyz\n").unwrap();
        assert!(check_stripe_boundaries(&bad, 4, false)
            .unwrap_err()
            .contains("offset 4"));
        let gz = dir.path().join("gz");
        std::fs::write(&gz, [0x1f, 0x8b, 0x08, 0, 0x1f, 0x8b, 0x08, 0]).unwrap();
        assert_eq!(check_stripe_boundaries(&gz, 4, true), Ok(1));
        assert!(check_stripe_boundaries(&gz, 3, true).is_err());
    }
}
