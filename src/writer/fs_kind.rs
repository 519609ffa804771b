//! Which file system a file lives on, from the `fstatfs` `f_type` magic.
//! Defined in [`crate::sys::fsinfo::fs_kind`] (below both the writer and the
//! simulated machine); this module keeps its public path,
//! `iokernel::writer::fs_kind::*`.

pub use crate::sys::fsinfo::fs_kind::*;
