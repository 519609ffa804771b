//! The pure parts of `iok merge --mpi`: which inputs each rank reads, and
//! the normalised arguments every rank must agree on. No MPI here (the
//! run itself is `mpi_merge.rs`, cargo feature `mpi`), so all of it is
//! tested in the default build.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::merge::MergeArgs;

/// Inputs for each of `ranks` ranks: contiguous runs of `sizes` in order,
/// covering every input once, balanced by bytes. Rank `r`'s run starts at
/// the first input whose preceding bytes reach `r / ranks` of the total,
/// so no rank gets more than its share plus one input
/// (`total / ranks + max(sizes)`, rounded up). With more ranks than bytes
/// to share, later ranks may get none. `ranks` of 0 is taken as 1.
pub fn assign_to_ranks(sizes: &[u64], ranks: usize) -> Vec<Range<usize>> {
    let ranks = ranks.max(1);
    let total: u128 = sizes.iter().map(|&s| u128::from(s)).sum();
    // starts[r]: the first input index with prefix(index) >= target(r).
    let mut starts = Vec::with_capacity(ranks + 1);
    let (mut index, mut prefix) = (0usize, 0u128);
    for r in 0..ranks {
        let target = total * r as u128 / ranks as u128;
        while index < sizes.len() && prefix < target {
            prefix += u128::from(sizes[index]);
            index += 1;
        }
        starts.push(index);
    }
    starts.push(sizes.len());
    starts.windows(2).map(|w| w[0]..w[1]).collect()
}

/// The inputs rank `rank` of `ranks` inspects before the merge (each input
/// exactly once, contiguous by count): spreads the opens and stats of
/// thousands of inputs over the ranks.
pub fn inspection_share(inputs: usize, rank: usize, ranks: usize) -> Range<usize> {
    let ranks = ranks.max(1);
    let at = |r: usize| inputs * r / ranks;
    at(rank.min(ranks))..at((rank + 1).min(ranks))
}

/// One argument as every rank must see it: its flag and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgValue {
    /// How the user spells it (`-o`, `--layout`, `INPUT...`).
    pub flag: &'static str,
    /// Its normalised value (paths made absolute).
    pub value: String,
}

/// `path` made absolute against the current directory (not resolved:
/// ranks on other nodes may see other symlinks).
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The arguments that decide what a rank writes, normalised, in a fixed
/// order; `inputs` are the expanded input paths.
pub fn normalized_args(args: &MergeArgs, inputs: &[PathBuf]) -> Vec<ArgValue> {
    let arg = |flag, value: String| ArgValue { flag, value };
    let inputs_text = inputs
        .iter()
        .map(|p| absolute(p))
        .collect::<Vec<_>>()
        .join("\n");
    vec![
        arg(
            "INPUT... (after --inputs-from and directories)",
            inputs_text,
        ),
        arg("-o", absolute(&args.output)),
        arg("--force", args.force.to_string()),
        arg("--layout", format!("{:?}", args.layout)),
        arg("--keep-shards", args.keep_shards.to_string()),
        arg("--gzip", format!("{:?}", args.gzip)),
        arg(
            "--stripe-size",
            format!("{:?}", args.stripe_size.map(|s| s.get())),
        ),
        arg("--stripe-count", format!("{:?}", args.stripe_count)),
        arg("--producers", args.producers.to_string()),
        arg("--ordered", args.ordered.to_string()),
        arg("--max-line-size", args.max_line_size.to_string()),
        arg("--durability", format!("{:?}", args.durability)),
    ]
}

/// FNV-1a, 64 bits: the same on every rank and build (unlike std's
/// hasher, whose algorithm may change between releases).
pub fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The digests of `args`, as bytes for an all-gather.
pub fn encode_digests(args: &[ArgValue]) -> Vec<u8> {
    args.iter()
        .flat_map(|a| digest(a.value.as_bytes()).to_le_bytes())
        .collect()
}

/// The lowest rank whose digests differ from rank 0's, and the index of
/// its first differing argument.
pub fn first_difference(all: &[Vec<u8>]) -> Option<(usize, usize)> {
    let first = all.first()?;
    all.iter().enumerate().skip(1).find_map(|(rank, digests)| {
        if digests.len() != first.len() {
            return Some((rank, digests.len().min(first.len()) / 8));
        }
        let field = digests
            .chunks(8)
            .zip(first.chunks(8))
            .position(|(a, b)| a != b)?;
        Some((rank, field))
    })
}

/// A value for an error message: at most `max` characters, newlines shown
/// as `, `.
pub fn shorten(value: &str, max: usize) -> String {
    let flat = value.replace('\n', ", ");
    if flat.chars().count() <= max {
        return format!("{flat:?}");
    }
    let head: String = flat.chars().take(max).collect();
    format!("{head:?}... ({} characters)", flat.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn share_bytes(sizes: &[u64], range: &Range<usize>) -> u64 {
        sizes[range.clone()].iter().sum()
    }

    #[test]
    fn equal_inputs_split_evenly() {
        assert_eq!(assign_to_ranks(&[10; 8], 4), vec![0..2, 2..4, 4..6, 6..8]);
        assert_eq!(assign_to_ranks(&[10; 3], 1), vec![0..3]);
    }

    #[test]
    fn one_big_input_takes_a_rank_of_its_own() {
        let ranges = assign_to_ranks(&[1, 1, 100, 1, 1], 3);
        assert_eq!(ranges.len(), 3);
        assert!(ranges.iter().any(|r| r.contains(&2)));
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 5);
    }

    #[test]
    fn more_ranks_than_inputs_leaves_some_empty() {
        let ranges = assign_to_ranks(&[5, 5], 4);
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 2);
        assert_eq!(assign_to_ranks(&[], 3), vec![0..0, 0..0, 0..0]);
        let flat: Vec<usize> = assign_to_ranks(&[0, 0, 0], 2)
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(flat, vec![0, 1, 2]);
    }

    #[test]
    fn inspection_shares_tile_the_inputs() {
        for (inputs, ranks) in [(0, 3), (1, 4), (7, 3), (100, 7), (3, 1)] {
            let shares: Vec<_> = (0..ranks)
                .map(|r| inspection_share(inputs, r, ranks))
                .collect();
            let flat: Vec<usize> = shares.into_iter().flatten().collect();
            assert_eq!(flat, (0..inputs).collect::<Vec<_>>());
        }
    }

    proptest! {
        #[test]
        fn assignment_is_contiguous_complete_ordered_and_balanced(
            sizes in proptest::collection::vec(0u64..1 << 40, 0..200),
            ranks in 1usize..64,
        ) {
            let ranges = assign_to_ranks(&sizes, ranks);
            prop_assert_eq!(ranges.len(), ranks);
            // Contiguous, in order, covering every input exactly once.
            let mut at = 0;
            for range in &ranges {
                prop_assert_eq!(range.start, at);
                prop_assert!(range.end >= range.start);
                at = range.end;
            }
            prop_assert_eq!(at, sizes.len());
            // Balanced: no rank past its share plus one input.
            let total: u128 = sizes.iter().map(|&s| u128::from(s)).sum();
            let biggest = u128::from(sizes.iter().copied().max().unwrap_or(0));
            let bound = total.div_ceil(ranks as u128) + biggest;
            for range in &ranges {
                prop_assert!(u128::from(share_bytes(&sizes, range)) <= bound);
            }
        }
    }

    #[test]
    fn digests_differ_by_argument_and_name_the_rank() {
        let a = vec![
            ArgValue {
                flag: "-o",
                value: "/a".into(),
            },
            ArgValue {
                flag: "--ordered",
                value: "true".into(),
            },
        ];
        let mut b = a.clone();
        b[1].value = "false".into();
        let same = encode_digests(&a);
        let all = vec![same.clone(), same.clone(), encode_digests(&b), same.clone()];
        assert_eq!(first_difference(&all), Some((2, 1)));
        assert_eq!(first_difference(&[same.clone(), same.clone()]), None);
        assert_eq!(first_difference(std::slice::from_ref(&same)), None);
        assert_eq!(
            first_difference(&[same.clone(), same[..8].to_vec()]),
            Some((1, 1))
        );
        assert_ne!(digest(b"/a"), digest(b"/b"));
        assert_eq!(digest(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn shorten_keeps_short_values_and_cuts_long_ones() {
        assert_eq!(shorten("a\nb", 10), "\"a, b\"");
        let long = "x".repeat(500);
        let cut = shorten(&long, 20);
        assert!(cut.starts_with("\"xxxxxxxxxxxxxxxxxxxx\"..."), "{cut}");
        assert!(cut.contains("500 characters"), "{cut}");
    }
}
