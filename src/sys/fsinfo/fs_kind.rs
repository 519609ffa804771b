//! Which file system a file lives on, from the `fstatfs` `f_type` magic.
//!
//! The magic numbers are Linux's (`include/uapi/linux/magic.h`, plus
//! Lustre's `LL_SUPER_MAGIC` and GPFS's): they are 32-bit values, but
//! `struct statfs::f_type` is a signed word, so a value with the top bit set
//! (btrfs's `0x9123683E`) can arrive sign-extended to 64 bits
//! (`0xFFFF_FFFF_9123_683E`). [`FilesystemKind::from_magic`] therefore
//! compares the low 32 bits only.

use std::fmt;

/// Lustre client (`LL_SUPER_MAGIC`).
pub const LUSTRE_MAGIC: u32 = 0x0BD0_0BD0;
/// IBM Spectrum Scale / GPFS (`"GPFS"` in ASCII).
pub const GPFS_MAGIC: u32 = 0x4750_4653;
/// NFS client (`NFS_SUPER_MAGIC`).
pub const NFS_MAGIC: u32 = 0x6969;
/// tmpfs (`TMPFS_MAGIC`).
pub const TMPFS_MAGIC: u32 = 0x0102_1994;
/// ext2, ext3 and ext4 share one magic (`EXT4_SUPER_MAGIC`).
pub const EXT4_MAGIC: u32 = 0xEF53;
/// XFS (`XFS_SUPER_MAGIC`, `"XFSB"`).
pub const XFS_MAGIC: u32 = 0x5846_5342;
/// btrfs (`BTRFS_SUPER_MAGIC`).
pub const BTRFS_MAGIC: u32 = 0x9123_683E;
/// The socket pseudo file system (`SOCKFS_MAGIC`), what `fstatfs` on a
/// socket reports.
pub const SOCKFS_MAGIC: u32 = 0x534F_434B;
/// The pipe pseudo file system (`PIPEFS_MAGIC`), what `fstatfs` on a pipe
/// reports.
pub const PIPEFS_MAGIC: u32 = 0x5049_5045;

/// The file systems the writer sizes differently, and everything else.
///
/// ```
/// use iokernel::writer::FilesystemKind;
/// // The same type, where it lives: below the writer and the simulator.
/// assert_eq!(FilesystemKind::Lustre, iokernel::sys::fsinfo::FilesystemKind::Lustre);
///
/// assert_eq!(FilesystemKind::from_magic(0x0BD0_0BD0), FilesystemKind::Lustre);
/// // btrfs's magic sign-extended from a 32-bit f_type.
/// assert_eq!(FilesystemKind::from_magic(0x9123_683Eu32 as i32 as i64), FilesystemKind::Btrfs);
/// assert!(FilesystemKind::Gpfs.is_parallel());
/// assert_eq!(FilesystemKind::from_magic(0x1234).name(), "other");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilesystemKind {
    /// Lustre: striped over OSTs; layout readable from the `lustre.lov` xattr.
    Lustre,
    /// GPFS / Spectrum Scale: striped in file-system blocks (`st_blksize`).
    Gpfs,
    /// An NFS mount.
    Nfs,
    /// tmpfs (memory).
    Tmpfs,
    /// ext2, ext3 or ext4 (one magic for all three).
    Ext4,
    /// XFS.
    Xfs,
    /// btrfs.
    Btrfs,
    /// Anything else; holds the magic's low 32 bits (zero-extended).
    Other(i64),
}

impl FilesystemKind {
    /// Classifies an `f_type` magic, comparing its low 32 bits only.
    pub fn from_magic(magic: i64) -> FilesystemKind {
        // Truncation is the point: f_type may be sign-extended from 32 bits.
        let low = magic as u32;
        match low {
            LUSTRE_MAGIC => FilesystemKind::Lustre,
            GPFS_MAGIC => FilesystemKind::Gpfs,
            NFS_MAGIC => FilesystemKind::Nfs,
            TMPFS_MAGIC => FilesystemKind::Tmpfs,
            EXT4_MAGIC => FilesystemKind::Ext4,
            XFS_MAGIC => FilesystemKind::Xfs,
            BTRFS_MAGIC => FilesystemKind::Btrfs,
            other => FilesystemKind::Other(i64::from(other)),
        }
    }

    /// Short lowercase name, as shown in reports (`"lustre"`, `"ext4"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FilesystemKind::Lustre => "lustre",
            FilesystemKind::Gpfs => "gpfs",
            FilesystemKind::Nfs => "nfs",
            FilesystemKind::Tmpfs => "tmpfs",
            FilesystemKind::Ext4 => "ext4",
            FilesystemKind::Xfs => "xfs",
            FilesystemKind::Btrfs => "btrfs",
            FilesystemKind::Other(_) => "other",
        }
    }

    /// True for the parallel file systems (Lustre, GPFS), where chunks are
    /// sized to the stripe rather than to the block size.
    pub fn is_parallel(self) -> bool {
        matches!(self, FilesystemKind::Lustre | FilesystemKind::Gpfs)
    }
}

impl fmt::Display for FilesystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilesystemKind::Other(magic) => write!(f, "other (magic {magic:#010x})"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_magics() {
        let cases = [
            (0x0BD0_0BD0, FilesystemKind::Lustre),
            (0x4750_4653, FilesystemKind::Gpfs),
            (0x6969, FilesystemKind::Nfs),
            (0x0102_1994, FilesystemKind::Tmpfs),
            (0xEF53, FilesystemKind::Ext4),
            (0x5846_5342, FilesystemKind::Xfs),
            (0x9123_683E, FilesystemKind::Btrfs),
        ];
        for (magic, kind) in cases {
            assert_eq!(FilesystemKind::from_magic(magic), kind, "{magic:#x}");
        }
    }

    #[test]
    fn sign_extended_magic_compares_low_32_bits() {
        let f_type = i64::from(BTRFS_MAGIC as i32);
        assert!(f_type < 0);
        assert_eq!(FilesystemKind::from_magic(f_type), FilesystemKind::Btrfs);
        // Garbage in the high half is ignored too.
        let noisy = (0x1234_i64 << 32) | i64::from(LUSTRE_MAGIC);
        assert_eq!(FilesystemKind::from_magic(noisy), FilesystemKind::Lustre);
    }

    #[test]
    fn other_keeps_low_bits_zero_extended() {
        let f_type = i64::from(0xDEAD_BEEFu32 as i32);
        assert_eq!(
            FilesystemKind::from_magic(f_type),
            FilesystemKind::Other(0xDEAD_BEEF)
        );
        assert_eq!(
            FilesystemKind::Other(0xDEAD_BEEF).to_string(),
            "other (magic 0xdeadbeef)"
        );
    }

    #[test]
    fn names_and_parallel() {
        assert_eq!(FilesystemKind::Lustre.name(), "lustre");
        assert_eq!(FilesystemKind::Ext4.to_string(), "ext4");
        assert!(FilesystemKind::Lustre.is_parallel());
        assert!(FilesystemKind::Gpfs.is_parallel());
        for kind in [
            FilesystemKind::Nfs,
            FilesystemKind::Tmpfs,
            FilesystemKind::Ext4,
            FilesystemKind::Xfs,
            FilesystemKind::Btrfs,
            FilesystemKind::Other(0),
        ] {
            assert!(!kind.is_parallel(), "{kind}");
        }
    }
}
