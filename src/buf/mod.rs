//! Owned I/O buffers: what an op borrows from its caller and always gives back.
//!
//! Ops take a buffer by value, hand it to the kernel (a blocking call on a
//! worker thread, or a ring entry) and return it in a [`BufResult`] together
//! with the outcome, success or failure. While the op is in flight the
//! buffer belongs to the driver; if the op future is dropped, the driver
//! keeps the buffer until the kernel is done with it.
//!
//! This module owns the buffer traits and their implementations; it performs
//! no I/O.

use std::io;

/// The outcome of an op that borrowed a buffer, and the buffer itself.
///
/// ```
/// use iokernel::buf::BufResult;
/// let result: BufResult<usize, Vec<u8>> = BufResult(Ok(3), b"abc".to_vec());
/// let BufResult(n, buf) = result;
/// assert_eq!(n.unwrap(), 3);
/// assert_eq!(buf, b"abc");
/// ```
#[must_use = "the buffer comes back with the result; dropping both loses the outcome"]
#[derive(Debug)]
pub struct BufResult<T, B>(pub io::Result<T>, pub B);

impl<T, B> BufResult<T, B> {
    /// Split into the result and the buffer.
    pub fn into_parts(self) -> (io::Result<T>, B) {
        (self.0, self.1)
    }

    /// The result, dropping the buffer.
    pub fn result(self) -> io::Result<T> {
        self.0
    }
}

/// A buffer whose initialised bytes can be written out.
///
/// The bytes must stay at the same address while the value is moved (heap
/// storage or `'static` data): a ring may still hold the pointer.
pub trait IoBuf: Send + 'static {
    /// The bytes to write.
    fn as_bytes(&self) -> &[u8];
}

/// A buffer the kernel can read into.
///
/// A read fills a prefix of [`IoBufMut::writable`] and then calls
/// [`IoBufMut::set_filled`] with the number of bytes read.
pub trait IoBufMut: IoBuf {
    /// The whole region a read may fill. For `Vec<u8>` that is the full
    /// capacity (spare capacity is zeroed first, so no unsafe is needed).
    fn writable(&mut self) -> &mut [u8];
    /// Record that the first `filled` bytes of [`IoBufMut::writable`] hold
    /// data. For `Vec<u8>` this sets the length; fixed-size buffers ignore it.
    fn set_filled(&mut self, filled: usize);
}

impl IoBuf for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl IoBufMut for Vec<u8> {
    fn writable(&mut self) -> &mut [u8] {
        let capacity = self.capacity();
        self.resize(capacity, 0);
        self
    }

    fn set_filled(&mut self, filled: usize) {
        self.truncate(filled);
    }
}

impl IoBuf for Box<[u8]> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl IoBufMut for Box<[u8]> {
    fn writable(&mut self) -> &mut [u8] {
        self
    }

    fn set_filled(&mut self, _filled: usize) {}
}

impl IoBuf for &'static [u8] {
    fn as_bytes(&self) -> &[u8] {
        self
    }
}

impl<const N: usize> IoBuf for &'static [u8; N] {
    fn as_bytes(&self) -> &[u8] {
        &self[..]
    }
}

impl IoBuf for &'static str {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
}

impl IoBuf for String {
    fn as_bytes(&self) -> &[u8] {
        String::as_bytes(self)
    }
}

/// A byte range of an owned buffer, for resuming a short write without
/// copying: writes `buf.as_bytes()[start..]`.
///
/// ```
/// use iokernel::buf::{IoBuf, Slice};
/// let s = Slice::new(b"hello".to_vec(), 2);
/// assert_eq!(s.as_bytes(), b"llo");
/// assert_eq!(s.into_inner(), b"hello");
/// ```
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    start: usize,
}

impl<B: IoBuf> Slice<B> {
    /// The bytes of `buf` from `start` on (clamped to its length).
    pub fn new(buf: B, start: usize) -> Slice<B> {
        let start = start.min(buf.as_bytes().len());
        Slice { buf, start }
    }

    /// Offset of the range in the whole buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The whole buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

impl<B: IoBuf> IoBuf for Slice<B> {
    fn as_bytes(&self) -> &[u8] {
        &self.buf.as_bytes()[self.start..]
    }
}

/// A window `[start, end)` of an owned read buffer, for resuming a short
/// read without copying. Reads fill the window; `set_filled(n)` records
/// `start + n` filled bytes in the whole buffer.
#[derive(Debug)]
pub struct SliceMut<B> {
    buf: B,
    start: usize,
    end: usize,
}

impl<B: IoBufMut> SliceMut<B> {
    /// The window `[start, end)` of `buf` (clamped to its writable region).
    pub fn new(mut buf: B, start: usize, end: usize) -> SliceMut<B> {
        let room = buf.writable().len();
        let end = end.min(room);
        SliceMut {
            buf,
            start: start.min(end),
            end,
        }
    }

    /// The whole buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

impl<B: IoBufMut> IoBuf for SliceMut<B> {
    fn as_bytes(&self) -> &[u8] {
        let bytes = self.buf.as_bytes();
        &bytes[self.start.min(bytes.len())..self.end.min(bytes.len())]
    }
}

impl<B: IoBufMut> IoBufMut for SliceMut<B> {
    fn writable(&mut self) -> &mut [u8] {
        &mut self.buf.writable()[self.start..self.end]
    }

    fn set_filled(&mut self, filled: usize) {
        self.buf.set_filled(self.start + filled);
    }
}

/// A heap buffer whose start is aligned, for `O_DIRECT` I/O.
///
/// `O_DIRECT` needs the address, the length and the file offset aligned to
/// the device's logical block size (usually 512 or 4096 bytes). The buffer
/// has a fixed capacity and a length, like a `Vec` that never grows.
///
/// ```
/// use iokernel::buf::{AlignedBuf, IoBuf};
/// let mut buf = AlignedBuf::new(8192, 4096);
/// assert_eq!(buf.as_bytes().as_ptr() as usize % 4096, 0);
/// buf.extend_from_slice(b"hello").unwrap();
/// assert_eq!(buf.as_bytes(), b"hello");
/// ```
#[derive(Clone)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    capacity: usize,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `capacity` bytes starting on an `align`-byte
    /// boundary (`align` is rounded up to a power of two).
    pub fn new(capacity: usize, align: usize) -> AlignedBuf {
        let align = align.max(1).next_power_of_two();
        let storage = vec![0u8; capacity + align];
        let start = storage.as_ptr().align_offset(align);
        AlignedBuf {
            storage,
            start,
            capacity,
            len: 0,
        }
    }

    /// Bytes that may be stored.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no bytes are stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Set the length; new bytes are zero. Fails past the capacity.
    pub fn resize(&mut self, len: usize) -> io::Result<()> {
        if len > self.capacity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "AlignedBuf::resize to {len} bytes exceeds capacity {}",
                    self.capacity
                ),
            ));
        }
        if len > self.len {
            self.storage[self.start + self.len..self.start + len].fill(0);
        }
        self.len = len;
        Ok(())
    }

    /// Append bytes. Fails (appending nothing) past the capacity.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.len + bytes.len();
        if end > self.capacity {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "AlignedBuf: appending {} bytes to {} exceeds capacity {}",
                    bytes.len(),
                    self.len,
                    self.capacity
                ),
            ));
        }
        self.storage[self.start + self.len..self.start + end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl IoBuf for AlignedBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl IoBufMut for AlignedBuf {
    fn writable(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.capacity]
    }

    fn set_filled(&mut self, filled: usize) {
        self.len = filled.min(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_reads_fill_up_to_capacity_and_set_len() {
        let mut v = Vec::with_capacity(16);
        assert_eq!(v.writable().len(), 16);
        v.writable()[..3].copy_from_slice(b"abc");
        v.set_filled(3);
        assert_eq!(v, b"abc");
        assert!(v.capacity() >= 16);
    }

    #[test]
    fn aligned_buf_is_aligned_and_bounded() {
        for align in [512, 4096] {
            let mut b = AlignedBuf::new(4096, align);
            assert_eq!(b.writable().as_ptr() as usize % align, 0);
            assert_eq!(b.writable().len(), 4096);
            b.set_filled(100);
            assert_eq!(b.len(), 100);
            assert!(b.resize(5000).is_err());
            assert!(b.extend_from_slice(&[1; 4000]).is_err());
            assert_eq!(b.len(), 100, "a failed append appends nothing");
        }
    }
}
