//! Crash states of a [`SimFs`] snapshot: what a power loss at one moment
//! may legally leave behind, for crash-state exploration.
//!
//! Owns: the list of *pending items* of a snapshot (everything not yet
//! durable), the deterministic list of *candidate choices* (which items
//! survive, writes possibly torn), and building the recovered file system
//! for one choice. It knows nothing of runs, workloads or invariants; the
//! runner (`crate::sim::explore`) drives it.
//!
//! # The model
//!
//! * **File data.** Every change logged since a file's last successful
//!   sync is an item: it is lost, kept whole, or (a write) kept as a
//!   prefix ending on a `granularity_bytes` boundary (a torn write). Any
//!   subset may survive, in any combination across files: page-cache
//!   writeback has no order. Surviving changes apply in the order they
//!   were made. Data dropped by a failed fsync is not pending: it is gone.
//! * **Names.** Each directory's difference between its current and its
//!   durable entries is split into *atomic units*: entry changes that
//!   share an inode go together, so a rename is visible entirely (new name
//!   present, old name gone) or not at all, never half. Any subset of
//!   units may survive (a weaker order than ext4's journal, so a workload
//!   that passes here passes there).
//! * Everything else (xattrs, permissions) is durable at once, as in
//!   [`SimFs::crash`].

use super::{Change, FileNode, InodeId, Node, SimFs, ROOT};
use crate::sys::sim::rng::SimRng;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};

/// A recovered file system (what a crash state is built on).
pub(crate) type RecoveredFs = SimFs;

/// One moment of a recorded run at which a crash is explored: the file
/// system as it was just before a durability call (or at the end).
#[derive(Clone)]
pub(crate) struct CrashPoint {
    /// What was about to happen (`fsync of fd 5`, `end of workload`).
    pub(crate) label: String,
    /// The workload's marks recorded before this moment.
    pub(crate) marks: Vec<String>,
    /// The snapshot.
    pub(crate) fs: SimFs,
}

/// The crash points of a run being recorded.
#[derive(Default)]
pub(crate) struct CrashLog {
    pub(crate) points: Vec<CrashPoint>,
    pub(crate) marks: Vec<String>,
}

impl CrashLog {
    /// Record a crash point for `fs`.
    pub(crate) fn point(&mut self, label: String, fs: &SimFs) {
        self.points.push(CrashPoint {
            label,
            marks: self.marks.clone(),
            fs: fs.clone(),
        });
    }
}

/// One thing a crash may or may not keep.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    /// Change `index` of file `ino`'s log; `write` is `(offset, len)` for
    /// a write (which may tear).
    Data {
        ino: InodeId,
        index: usize,
        write: Option<(u64, u64)>,
    },
    /// Entry changes that survive together: `(dir, name, new entry)`.
    Names {
        changes: Vec<(InodeId, Vec<u8>, Option<InodeId>)>,
    },
}

/// What of one pending item survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Keep {
    Lost,
    Whole,
    /// The first `n` bytes of a write (torn).
    Prefix(u64),
}

/// Bounds on the candidates generated at one crash point.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Most candidates at one point.
    pub(crate) per_point_max: usize,
    /// Every subset is tried when there are at most this many items.
    pub(crate) exhaustive_items_max: usize,
    /// Torn prefixes tried per write.
    pub(crate) torn_per_write: usize,
    /// Torn writes end on multiples of this.
    pub(crate) granularity_bytes: u64,
    /// Seeds the sampled subsets when not exhaustive.
    pub(crate) seed: u64,
}

/// The candidate choices at one point, and whether the list is every
/// legal state (no torn prefix or subset left out).
pub(crate) struct Candidates {
    pub(crate) choices: Vec<Vec<Keep>>,
    pub(crate) complete: bool,
}

impl SimFs {
    /// Everything in this snapshot that is not durable, files first (by
    /// inode, in log order), then namespace units.
    pub(crate) fn pending(&self) -> Vec<Pending> {
        let mut items = Vec::new();
        for (&ino, inode) in &self.inodes {
            if let Node::File(file) = &inode.node {
                for (index, change) in file.log.iter().enumerate() {
                    let write = match change {
                        Change::Write { offset, data } => Some((*offset, data.len() as u64)),
                        _ => None,
                    };
                    items.push(Pending::Data { ino, index, write });
                }
            }
        }
        items.extend(self.name_units());
        items
    }

    /// Entry changes grouped into atomic units (sharing an inode).
    fn name_units(&self) -> Vec<Pending> {
        type Unit = (Vec<(InodeId, Vec<u8>, Option<InodeId>)>, BTreeSet<InodeId>);
        let mut units: Vec<Unit> = Vec::new();
        for (&dir_ino, inode) in &self.inodes {
            let Node::Dir(dir) = &inode.node else {
                continue;
            };
            let names: BTreeSet<&Vec<u8>> = dir.entries.keys().chain(dir.durable.keys()).collect();
            for name in names {
                let (old, new) = (dir.durable.get(name), dir.entries.get(name));
                if old == new {
                    continue;
                }
                let inos: BTreeSet<InodeId> = old.into_iter().chain(new).copied().collect();
                let mut unit: Unit = (vec![(dir_ino, name.clone(), new.copied())], inos);
                let mut i = 0;
                while i < units.len() {
                    if units[i].1.is_disjoint(&unit.1) {
                        i += 1;
                    } else {
                        let (changes, inos) = units.remove(i);
                        unit.0.extend(changes);
                        unit.1.extend(inos);
                    }
                }
                units.push(unit);
            }
        }
        units
            .into_iter()
            .map(|(mut changes, _)| {
                changes.sort();
                Pending::Names { changes }
            })
            .collect()
    }

    /// The file system a crash leaves when `choice[i]` of `items[i]`
    /// survives (items from [`SimFs::pending`] of this snapshot).
    pub(crate) fn recovered(&self, items: &[Pending], choice: &[Keep]) -> SimFs {
        let mut fs = self.clone();
        let mut logs: BTreeMap<InodeId, Vec<Change>> = BTreeMap::new();
        for (item, keep) in items.iter().zip(choice) {
            match (item, keep) {
                (_, Keep::Lost) => {}
                (Pending::Data { ino, index, .. }, keep) => {
                    let Some(change) = self.file(*ino).and_then(|f| f.log.get(*index)) else {
                        continue;
                    };
                    logs.entry(*ino).or_default().push(cut(change, *keep));
                }
                (Pending::Names { changes }, _) => {
                    for (dir, name, new) in changes {
                        if let Some(Node::Dir(d)) = fs.inodes.get_mut(dir).map(|i| &mut i.node) {
                            match new {
                                Some(child) => d.durable.insert(name.clone(), *child),
                                None => d.durable.remove(name),
                            };
                        }
                    }
                }
            }
        }
        for (ino, inode) in fs.inodes.iter_mut() {
            if let Node::File(file) = &mut inode.node {
                file.log = logs.remove(ino).unwrap_or_default();
            }
        }
        let bs = fs.block_size_bytes;
        fs.power_loss(|file: &mut FileNode| file.replay(bs));
        fs
    }

    /// A digest of the visible tree (names, kinds, contents), equal for
    /// equal trees whatever their inode numbers.
    pub(crate) fn tree_digest(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for (path, content) in self.walk() {
            path.hash(&mut hasher);
            content.hash(&mut hasher);
        }
        hasher.finish()
    }

    /// Every path under `/` (depth first, by name) with its size (`None`
    /// for a directory).
    pub(crate) fn listing(&self) -> Vec<(String, Option<u64>)> {
        self.walk()
            .into_iter()
            .map(|(path, content)| (path, content.map(|c| c.len() as u64)))
            .collect()
    }

    fn walk(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let Some(node) = self.dir(dir) else {
                continue;
            };
            for (name, &child) in node.entries.iter().rev() {
                let path = format!("{prefix}/{}", String::from_utf8_lossy(name));
                if self.is_dir(child) {
                    stack.push((child, path.clone()));
                    out.push((path, None));
                } else {
                    out.push((path.clone(), self.read_file(path.as_bytes())));
                }
            }
        }
        out.sort();
        out
    }

    /// A name for inode `ino` in reports: a current path, else a durable one.
    fn name_of(&self, ino: InodeId) -> String {
        for (&dir_ino, inode) in &self.inodes {
            if let Node::Dir(dir) = &inode.node {
                let found = dir.entries.iter().chain(dir.durable.iter());
                if let Some((name, _)) = found.into_iter().find(|(_, c)| **c == ino) {
                    return format!(
                        "{}/{}",
                        self.dir_path(dir_ino),
                        String::from_utf8_lossy(name)
                    );
                }
            }
        }
        format!("inode {ino}")
    }

    fn dir_path(&self, mut dir: InodeId) -> String {
        let mut parts = Vec::new();
        for _ in 0..self.inodes.len() {
            if dir == ROOT {
                break;
            }
            let Some(parent) = self.dir(dir).map(|d| d.parent) else {
                break;
            };
            let name = self.dir(parent).and_then(|p| {
                p.entries
                    .iter()
                    .chain(p.durable.iter())
                    .find(|(_, c)| **c == dir)
                    .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            });
            parts.push(name.unwrap_or_else(|| format!("inode {dir}")));
            dir = parent;
        }
        parts.reverse();
        if parts.is_empty() {
            String::new()
        } else {
            format!("/{}", parts.join("/"))
        }
    }

    /// One line per item saying what `choice` kept of it.
    pub(crate) fn describe(&self, items: &[Pending], choice: &[Keep]) -> Vec<String> {
        items
            .iter()
            .zip(choice)
            .map(|(item, keep)| {
                let fate = match keep {
                    Keep::Lost => "lost".to_string(),
                    Keep::Whole => "kept".to_string(),
                    Keep::Prefix(n) => format!("torn after {n} bytes"),
                };
                match item {
                    Pending::Data {
                        ino,
                        write: Some((offset, len)),
                        ..
                    } => format!("write {} @{offset}+{len}: {fate}", self.name_of(*ino)),
                    Pending::Data { ino, index, .. } => {
                        format!(
                            "size/allocation change #{index} of {}: {fate}",
                            self.name_of(*ino)
                        )
                    }
                    Pending::Names { changes } => {
                        let what: Vec<String> = changes
                            .iter()
                            .map(|(dir, name, new)| {
                                let path = format!(
                                    "{}/{}",
                                    self.dir_path(*dir),
                                    String::from_utf8_lossy(name)
                                );
                                match new {
                                    Some(ino) => format!("{path} -> inode {ino}"),
                                    None => format!("{path} removed"),
                                }
                            })
                            .collect();
                        format!("names [{}]: {fate}", what.join(", "))
                    }
                }
            })
            .collect()
    }
}

impl FileNode {
    /// Power loss keeping exactly the logged changes (already chosen).
    fn replay(&mut self, bs: u64) {
        let mut content = self.durable.clone();
        for change in std::mem::take(&mut self.log) {
            content.apply(&change, bs);
        }
        self.current = content.clone();
        self.durable = content;
    }
}

/// `change` as `keep` leaves it (a prefix applies to writes only).
fn cut(change: &Change, keep: Keep) -> Change {
    match (change, keep) {
        (Change::Write { offset, data }, Keep::Prefix(n)) => Change::Write {
            offset: *offset,
            data: data[..(n as usize).min(data.len())].to_vec(),
        },
        _ => change.clone(),
    }
}

/// Torn prefixes of a write of `len` at `offset`: up to `count` lengths
/// ending on `granularity` boundaries strictly inside it, spread evenly
/// (first and last boundary first).
pub(crate) fn tear_points(offset: u64, len: u64, granularity: u64, count: usize) -> Vec<u64> {
    let g = granularity.max(1);
    if len == 0 || count == 0 {
        return Vec::new();
    }
    let (first, last) = (offset / g + 1, (offset + len - 1) / g);
    if first > last {
        return Vec::new();
    }
    let span = last - first;
    let mut picks: Vec<u64> = if count == 1 {
        vec![first]
    } else {
        (0..count as u64)
            .map(|i| first + span * i / (count as u64 - 1))
            .collect()
    };
    picks.dedup();
    picks.into_iter().map(|b| b * g - offset).collect()
}

/// The candidate choices for `items`, in a fixed order: nothing lost and
/// everything lost; each item alone lost and alone kept; torn writes;
/// each file's writes as an ordered prefix; then every subset (when few
/// enough items) or seeded random subsets, up to `limits.per_point_max`.
pub(crate) fn candidates(items: &[Pending], limits: &Limits) -> Candidates {
    let mut out = Gen {
        seen: HashSet::new(),
        choices: Vec::new(),
        max: limits.per_point_max.max(2),
        full: false,
    };
    let n = items.len();
    out.push(vec![Keep::Whole; n]);
    out.push(vec![Keep::Lost; n]);
    for i in 0..n {
        let mut alone_lost = vec![Keep::Whole; n];
        alone_lost[i] = Keep::Lost;
        out.push(alone_lost);
        let mut alone_kept = vec![Keep::Lost; n];
        alone_kept[i] = Keep::Whole;
        out.push(alone_kept);
    }
    let mut torn_left_out = false;
    for (i, item) in items.iter().enumerate() {
        let Pending::Data {
            ino,
            write: Some((offset, len)),
            ..
        } = item
        else {
            continue;
        };
        let points = tear_points(
            *offset,
            *len,
            limits.granularity_bytes,
            limits.torn_per_write,
        );
        let g = limits.granularity_bytes.max(1);
        let boundaries = (offset + len.saturating_sub(1)) / g - offset / g;
        torn_left_out |= (points.len() as u64) < boundaries;
        for kept in points {
            for others in [Keep::Whole, Keep::Lost] {
                let mut choice = file_prefix(items, *ino, i, others);
                choice[i] = Keep::Prefix(kept);
                out.push(choice);
            }
        }
    }
    for (i, item) in items.iter().enumerate() {
        if let Pending::Data { ino, .. } = item {
            out.push(file_prefix(items, *ino, i, Keep::Whole));
        }
    }
    let exhaustive = n <= limits.exhaustive_items_max.min(20);
    if exhaustive {
        for mask in 0u64..(1 << n) {
            out.push(mask_choice(n, mask));
        }
    } else {
        let mut rng = SimRng::new(limits.seed);
        let tries = limits.per_point_max.saturating_mul(4);
        for _ in 0..tries {
            if out.full {
                break;
            }
            let choice = (0..n)
                .map(|_| {
                    if rng.chance(0.5) {
                        Keep::Whole
                    } else {
                        Keep::Lost
                    }
                })
                .collect();
            out.push(choice);
        }
    }
    Candidates {
        complete: exhaustive && !torn_left_out && !out.full,
        choices: out.choices,
    }
}

/// Items of file `ino` before `upto` kept, the rest of it lost; every
/// other item `others`.
fn file_prefix(items: &[Pending], ino: InodeId, upto: usize, others: Keep) -> Vec<Keep> {
    items
        .iter()
        .enumerate()
        .map(|(j, item)| match item {
            Pending::Data { ino: other, .. } if *other == ino => {
                if j < upto {
                    Keep::Whole
                } else {
                    Keep::Lost
                }
            }
            _ => others,
        })
        .collect()
}

fn mask_choice(n: usize, mask: u64) -> Vec<Keep> {
    (0..n)
        .map(|i| {
            if mask >> i & 1 == 1 {
                Keep::Whole
            } else {
                Keep::Lost
            }
        })
        .collect()
}

/// Candidate list under construction: distinct choices, capped.
struct Gen {
    seen: HashSet<Vec<Keep>>,
    choices: Vec<Vec<Keep>>,
    max: usize,
    /// A candidate was refused for the cap.
    full: bool,
}

impl Gen {
    fn push(&mut self, choice: Vec<Keep>) {
        if self.seen.contains(&choice) {
            return;
        }
        if self.choices.len() >= self.max {
            self.full = true;
            return;
        }
        self.seen.insert(choice.clone());
        self.choices.push(choice);
    }
}

#[cfg(test)]
mod tests;
