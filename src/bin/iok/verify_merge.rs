//! `iok verify-merge` (hidden): the checks of `tests/cli.rs` and `iok demo`
//! (`verify.rs`) on the command line, for scripts that merge with
//! `mpirun` (`tests/mpi/run.sh`): the output files hold exactly the
//! inputs' lines (a multiset; with `--ordered` also in input order, padded
//! filler taken off), and with `--padded-stripe SIZE` a chunk starts at
//! every stripe boundary of OUTPUT.
//!
//! This module owns only the command; the checks live in `verify.rs`.

use clap::Args;
use std::io::{Error, ErrorKind};
use std::path::PathBuf;

use crate::input;
use crate::verify;

#[derive(Args, Debug)]
pub struct VerifyMergeArgs {
    /// The inputs of the merge, in the order given to it (directories are
    /// expanded like `iok merge` does).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// The merge's output files, in order (several: kept shards).
    #[arg(short, long = "output", value_name = "OUTPUT", required = true)]
    outputs: Vec<PathBuf>,
    /// The lines must also be in input order.
    #[arg(long)]
    ordered: bool,
    /// The first OUTPUT is padded-striped with this stripe size (bytes):
    /// a chunk must start at every stripe boundary.
    #[arg(long, value_name = "BYTES")]
    padded_stripe: Option<u64>,
}

pub fn run(args: &VerifyMergeArgs) -> std::io::Result<()> {
    let bad = |e: String| Error::new(ErrorKind::InvalidData, e);
    let paths = input::expand_inputs(&args.inputs, None)?;
    let expected = verify::decoded_contents_all(&paths).map_err(bad)?;
    let got = verify::decoded_contents_all(&args.outputs).map_err(bad)?;
    let lines = verify::same_lines(&expected, &got).map_err(bad)?;
    if args.ordered {
        same_order(&expected, &got).map_err(bad)?;
    }
    let mut boundaries = String::new();
    if let (Some(stripe), Some(output)) = (args.padded_stripe, args.outputs.first()) {
        let raw = std::fs::read(output)?;
        let gzip = raw.starts_with(&[0x1f, 0x8b]);
        let checked = verify::check_stripe_boundaries(output, stripe, gzip).map_err(bad)?;
        boundaries = format!(", {checked} stripe boundaries");
    }
    println!(
        "verified: {lines} lines{}{boundaries}",
        if args.ordered { ", in input order" } else { "" }
    );
    Ok(())
}

/// `got`'s lines, filler (trailing spaces) taken off, are `expected`'s in
/// order; the error names the first line that differs.
fn same_order(expected: &[u8], got: &[u8]) -> Result<(), String> {
    let trim = |line: &[u8]| -> Vec<u8> {
        let end = line.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        line[..end].to_vec()
    };
    let lines = |text: &[u8]| -> Vec<Vec<u8>> {
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        body.split(|&b| b == b'\n').map(trim).collect()
    };
    let (want, have) = (lines(expected), lines(got));
    match want.iter().zip(&have).position(|(w, h)| w != h) {
        Some(i) => Err(format!(
            "line {} is out of input order: expected {:?}, found {:?}",
            i + 1,
            String::from_utf8_lossy(&want[i]),
            String::from_utf8_lossy(&have[i])
        )),
        None if want.len() != have.len() => Err(format!(
            "output has {} lines, inputs have {}",
            have.len(),
            want.len()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::same_order;

    #[test]
    fn order_ignores_filler_and_names_the_first_swap() {
        assert_eq!(same_order(b"a\nb\nc\n", b"a  \nb\nc\n"), Ok(()));
        let err = same_order(b"a\nb\nc\n", b"a\nc\nb\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(same_order(b"a\nb\n", b"a\n").is_err());
    }
}
