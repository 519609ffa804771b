//! The parallel writer: many producers, one output, no syscall per line.
//!
//! [`ParallelWriter::new`] opens the output and sizes itself from the file
//! system; [`ParallelWriter::producer`] hands out [`Producer`]s, which
//! append line-sized payloads into chunk-sized buffers; sealed buffers
//! (each compressed into one gzip member on a spawned task when asked) go
//! through a channel to the layout's committer, which writes them with
//! `pwrite`; [`ParallelWriter::finish`] drains, merges, syncs, renames and
//! returns a [`WriteReport`]. Everything runs on the iokernel runtime and
//! does I/O only through [`crate::io`], so it runs unchanged on every
//! backend and on the simulated kernel.
//!
//! Layouts ([`Layout`]):
//! * `Striped`: one file; each chunk reserves the next byte range. With
//!   [`WriterConfig::ordered`] the file is the chunks' concatenation in
//!   sequence order.
//! * `PaddedStriped`: stripe-sized slots, each starting with a chunk and
//!   ending with filler readers skip: empty gzip members (or a header
//!   comment, for gaps under 20 bytes) for gzip, spaces before a line's
//!   newline for JSON lines, a hole for binary. A chunk larger than a
//!   stripe spans slots.
//! * `Sharded`: `<path>.shard_<i>`, optionally merged into `<path>` with
//!   `sendfile`, shards removed only after the merge is durable.
//!
//! Durability and cleanup are described in [`parallel`]; errors are
//! [`WriteError`]s inside `io::Error` ([`errno_of`] gets the errno).
//!
//! The planning parts are pure functions, unit- and property-tested
//! without a file system:
//!
//! ```
//! use iokernel::writer::{LayoutInfo, SizingSource, SlotPlanner, TrailingPadding, WriterSizing};
//!
//! // An ext4 file system (magic 0xEF53) forced onto the Lustre path.
//! let info = LayoutInfo::detect(0xEF53, 4096, None, Some("1M:4")).unwrap();
//! assert_eq!(info.source, SizingSource::MimicEnv);
//! let sizing = WriterSizing::plan(&info, 8, 64 << 20).unwrap();
//! assert_eq!(sizing.chunk_bytes, 1 << 20);
//!
//! let mut planner = SlotPlanner::new(sizing.stripe_bytes).unwrap();
//! let first = planner.place(700 << 10).unwrap();
//! let second = planner.place(700 << 10).unwrap(); // does not fit: next slot
//! assert_eq!(first.data.offset, 0);
//! assert_eq!(second.data.offset, 1 << 20);
//! assert_eq!(second.padding_before.map(|p| p.len), Some(324 << 10));
//! let summary = planner.finish(TrailingPadding::Omit);
//! assert_eq!(summary.file_len_bytes, (1 << 20) + (700 << 10));
//! ```

mod commit;
pub mod config;
pub mod coord;
pub mod error;
pub mod fs_kind;
pub mod gzip;
pub mod lustre;
pub mod output;
pub mod parallel;
pub mod plan;
mod producer;
pub mod sizing;
pub mod stripe;

pub use config::{
    ContentKind, Durability, Layout, StripeRequest, WriteReport, WriterConfig,
    DEFAULT_MEMORY_BUDGET_BYTES,
};
pub use error::{errno_of, write_error_of, WriteError};
pub use output::{is_temp_name, planned_paths, temp_path, CreatedFiles, JournalRecord};
pub use parallel::{shard_path, ParallelWriter};
pub use producer::Producer;

pub use fs_kind::FilesystemKind;
pub use lustre::{encode_v1, parse_lov, LovParseError, LustreLayout};
pub use plan::{
    plan_chunks, Placement, PlanError, PlanSummary, Region, RegionKind, SlotPlan, SlotPlanner,
    TrailingPadding,
};
pub use sizing::{
    fewest_buffer_bytes, parse_size, LayoutInfo, SizingError, SizingSource, WriterSizing,
};
pub use stripe::{
    StripeBytes, StripeBytesError, LUSTRE_MAX_STRIPE_COUNT, LUSTRE_STRIPE_UNIT_BYTES,
};
