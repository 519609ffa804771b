//! File-system facts: which file system a file lives on (the `fstatfs`
//! `f_type` magic numbers and [`FilesystemKind`]) and the Lustre layout
//! extended attribute (`lustre.lov`, parsed and encoded by [`lustre`]), and
//! the stripe size Lustre accepts ([`StripeBytes`], validated once).
//!
//! Owns: the magic numbers (one constant of one type per file system, the
//! kernel's 32-bit value as `u32`; `i64::from` widens one to an `f_type`),
//! [`FilesystemKind::from_magic`] and the `lov_user_md` codec. Pure data:
//! no syscalls, no state. It sits below both the writer (which sizes chunks
//! from it, and re-exports it as `iokernel::writer::{lustre, fs_kind}`) and
//! the simulated machine (which reports these magics and serves
//! `lustre.lov`), so neither has to import the other.

pub mod fs_kind;
pub mod lustre;
pub mod stripe;

pub use fs_kind::{
    FilesystemKind, BTRFS_MAGIC, EXT4_MAGIC, GPFS_MAGIC, LUSTRE_MAGIC, NFS_MAGIC, PIPEFS_MAGIC,
    SOCKFS_MAGIC, TMPFS_MAGIC, XFS_MAGIC,
};
pub use lustre::{encode_v1, parse_lov, LovParseError, LustreLayout, LOV_XATTR_NAME};
pub use stripe::{
    parse_size, StripeBytes, StripeBytesError, LUSTRE_MAX_STRIPE_COUNT, LUSTRE_STRIPE_UNIT_BYTES,
};
