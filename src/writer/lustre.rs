//! The `lustre.lov` extended attribute: parse a file's layout, encode a
//! request for one. The codec lives in [`crate::sys::fsinfo::lustre`] (below
//! both the writer and the simulated machine); this module keeps its
//! public path, `iokernel::writer::lustre::*`.

pub use crate::sys::fsinfo::lustre::*;
