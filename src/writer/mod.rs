//! The parallel writer's pure planning parts: file-system detection, Lustre
//! layout parsing, buffer sizing and the padded-striped slot plan.
//!
//! The writer module will own `ParallelWriter`: producers append line-sized
//! payloads into local buffers, full buffers go through a channel to the
//! layout's committer (striped, padded striped or sharded), and `finish()`
//! drains, fsyncs and reports (see `DESIGN.md`, "Parallel writer").
//!
//! **The `ParallelWriter` itself is not built yet.** What is here are the
//! decisions it will make, written as pure functions of numbers and byte
//! slices, with no I/O at all, so they can be unit- and property-tested (and
//! fuzzed) without a file system:
//!
//! * [`fs_kind`]: [`FilesystemKind`] from the `fstatfs` `f_type` magic.
//! * [`lustre`]: parses the `lustre.lov` xattr value (lov_user_md v1/v3 and
//!   composite/PFL layouts) into a [`LustreLayout`], and encodes a v1 blob
//!   to request a layout with `setxattr` on create.
//! * [`sizing`]: [`LayoutInfo`] (what the file system tells us: stripe size
//!   and count, block size, and where that came from) and [`WriterSizing`]
//!   (chunk size, buffers per producer, channel capacity) under a memory
//!   budget.
//! * [`plan`]: [`SlotPlanner`], which packs chunks into stripe-aligned slots
//!   for the padded-striped layout and says exactly which byte ranges hold
//!   data and which hold padding.
//!
//! The caller (the writer, later) does the syscalls: `fstatfs` for the magic,
//! `fstat` for `st_blksize`, `getxattr("lustre.lov")` on Lustre, and reads
//! the `IOKERNEL_MIMIC_LUSTRE` variable; it hands the raw results to
//! [`LayoutInfo::detect`].
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

pub mod fs_kind;
pub mod lustre;
pub mod plan;
pub mod sizing;

pub use fs_kind::FilesystemKind;
pub use lustre::{encode_v1, parse_lov, LovParseError, LustreLayout};
pub use plan::{
    plan_chunks, Placement, PlanError, PlanSummary, Region, RegionKind, SlotPlan, SlotPlanner,
    TrailingPadding,
};
pub use sizing::{parse_size, LayoutInfo, SizingError, SizingSource, WriterSizing};
