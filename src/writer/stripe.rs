//! The stripe size, validated once. The type lives in
//! [`crate::sys::fsinfo::stripe`] (below both the writer and the simulated
//! machine, which encode it in `lustre.lov`); this module keeps its public
//! path, `iokernel::writer::stripe::*`.

pub use crate::sys::fsinfo::stripe::*;
