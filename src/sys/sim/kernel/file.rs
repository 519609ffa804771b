//! [`SimKernel`](super::SimKernel)'s file calls: read, write, seek, sync,
//! size, stat. State methods the dispatch in `dispatch.rs` calls.

use super::*;

impl State {
    /// `read`/`pread` (`at` = `Some(offset)`) on any fd.
    pub(super) fn read_fd(
        &mut self,
        fd: RawFd,
        buf: &mut [u8],
        at: Option<u64>,
    ) -> SysResult<usize> {
        let entry = self.entry(fd)?;
        if at.is_some()
            && matches!(
                entry,
                Fd::Socket(_) | Fd::Dgram(_) | Fd::PipeRead(_) | Fd::PipeWrite(_)
            )
        {
            return Err(Errno::ESPIPE);
        }
        match entry {
            Fd::File(file) => self.read_file_fd(fd, file, buf, at),
            Fd::Directory(_) => Err(Errno::EISDIR),
            Fd::Socket(s) => self.recv_socket(s, buf, false),
            Fd::PipeRead(p) => self.read_pipe(p, buf),
            Fd::PipeWrite(_) => Err(Errno::EBADF),
            Fd::Dgram(d) => {
                let mut bufs = [IoSliceMut::new(buf)];
                self.recv_dgram(d, &mut bufs, 0, false).map(|m| m.bytes)
            }
        }
    }

    fn read_file_fd(
        &mut self,
        fd: RawFd,
        file: OpenFile,
        buf: &mut [u8],
        at: Option<u64>,
    ) -> SysResult<usize> {
        if !file.readable {
            return Err(Errno::EBADF);
        }
        let offset = at.unwrap_or(file.offset);
        let len = buf.len().min(MAX_RW_COUNT);
        verify_range(offset, len)?;
        let available = self.fs.readable_len(file.inode, offset, len);
        self.inject(OpClass::Read)?;
        let n = self.short_read(available);
        self.fs.read(file.inode, offset, &mut buf[..n]);
        self.fs.cache_read(file.inode, offset, n);
        if at.is_none() {
            self.set_offset(fd, offset + n as u64);
        }
        Ok(n)
    }

    /// `write`/`pwrite` (`at` = `Some(offset)`) on any fd.
    pub(super) fn write_fd(&mut self, fd: RawFd, data: &[u8], at: Option<u64>) -> SysResult<usize> {
        let entry = self.entry(fd)?;
        if at.is_some()
            && matches!(
                entry,
                Fd::Socket(_) | Fd::Dgram(_) | Fd::PipeRead(_) | Fd::PipeWrite(_)
            )
        {
            return Err(Errno::ESPIPE);
        }
        match entry {
            Fd::File(file) => self.write_file_fd(fd, file, data, at, OpClass::Write),
            Fd::Socket(s) => self.send_socket(s, data),
            Fd::PipeWrite(p) => self.write_pipe(p, data),
            Fd::Dgram(d) => self.send_dgram(d, data, None, &[]),
            Fd::Directory(_) | Fd::PipeRead(_) => Err(Errno::EBADF),
        }
    }

    /// Write to a regular file at `at` (or the fd offset, which then moves);
    /// with `O_APPEND` always at the end, as Linux does even for `pwrite`.
    pub(super) fn write_file_fd(
        &mut self,
        fd: RawFd,
        file: OpenFile,
        data: &[u8],
        at: Option<u64>,
        class: OpClass,
    ) -> SysResult<usize> {
        if !file.writable {
            return Err(Errno::EBADF);
        }
        let data = &data[..data.len().min(MAX_RW_COUNT)];
        let offset = match (file.append, at) {
            (true, _) => self.fs.size(file.inode),
            (false, Some(offset)) => offset,
            (false, None) => file.offset,
        };
        verify_range(offset, data.len())?;
        let fit = self.fs.write_fit(file.inode, offset, data.len());
        if fit == 0 && !data.is_empty() {
            self.core.count(|s| s.enospc_full += 1);
            return Err(Errno::ENOSPC);
        }
        self.inject(class)?;
        let n = self.short_write(fit);
        self.fs.write(file.inode, offset, &data[..n]);
        if at.is_none() {
            self.set_offset(fd, offset + n as u64);
        }
        Ok(n)
    }

    /// The regular file a positional nowait call on `fd` works on: as
    /// `preadv2`/`pwritev2` with an offset, `ESPIPE` on streams, `EISDIR`
    /// on a directory. A seeded eviction may empty its cache first.
    fn nowait_file(&mut self, fd: RawFd) -> SysResult<OpenFile> {
        let file = match self.entry(fd)? {
            Fd::File(file) => file,
            Fd::Directory(_) => return Err(Errno::EISDIR),
            Fd::Socket(_) | Fd::Dgram(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => {
                return Err(Errno::ESPIPE)
            }
        };
        let p = self.core.options().page_cache.evict_probability;
        if self.core.with_rng(|rng| rng.chance(p)) {
            self.fs.evict_cache(file.inode);
            self.core.count(|s| s.cache_evictions += 1);
        }
        Ok(file)
    }

    /// `preadv2(RWF_NOWAIT)`: the cached prefix of the range (`EAGAIN` when
    /// the first page is not cached, `0` at end of file), then as `pread`
    /// (faults and short reads included).
    /// `preadv2(RWF_NOWAIT)` at the file position: a simulated stream
    /// never waits in its read anyway (an empty one says `EAGAIN`), so it
    /// reads as `read`; files are not modelled at the position
    /// (`EOPNOTSUPP`, which callers treat as "cannot say").
    pub(super) fn read_nowait(
        &mut self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
    ) -> SysResult<usize> {
        match self.entry(fd)? {
            Fd::Socket(_) | Fd::PipeRead(_) | Fd::Dgram(_) => self.readv_fd(fd, bufs, None),
            Fd::PipeWrite(_) => Err(Errno::EBADF),
            Fd::File(_) | Fd::Directory(_) => Err(Errno::EOPNOTSUPP),
        }
    }

    pub(super) fn readv_nowait(
        &mut self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        offset: u64,
    ) -> SysResult<usize> {
        let file = self.nowait_file(fd)?;
        if !file.readable {
            return Err(Errno::EBADF);
        }
        let total = bufs.iter().map(|b| b.len()).sum::<usize>();
        let total = total.min(MAX_RW_COUNT);
        verify_range(offset, total)?;
        let available = self.fs.readable_len(file.inode, offset, total);
        let cached = self.fs.cached_prefix(file.inode, offset, available);
        if available > 0 && cached == 0 {
            self.core.count(|s| s.nowait_misses += 1);
            return Err(Errno::EAGAIN);
        }
        let mut bounce = vec![0; cached];
        let n = self.read_file_fd(fd, file, &mut bounce, Some(offset))?;
        if n > 0 {
            self.core.count(|s| s.nowait_hits += 1);
        }
        scatter(&bounce[..n], bufs);
        Ok(n)
    }

    /// `pwritev2(RWF_NOWAIT)` on a buffered file: `EOPNOTSUPP` unless the
    /// file system supports it ([`PageCacheOptions::nowait_writes`]); then
    /// `EAGAIN` unless every page touched is cached and the write stays
    /// inside the file; then as `pwrite`.
    ///
    /// [`PageCacheOptions::nowait_writes`]: super::super::options::PageCacheOptions
    pub(super) fn writev_nowait(
        &mut self,
        fd: RawFd,
        bufs: &[IoSlice<'_>],
        offset: u64,
    ) -> SysResult<usize> {
        let file = self.nowait_file(fd)?;
        if !file.writable {
            return Err(Errno::EBADF);
        }
        if !self.core.options().page_cache.nowait_writes {
            return Err(Errno::EOPNOTSUPP);
        }
        let data: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        let len = data.len().min(MAX_RW_COUNT);
        verify_range(offset, len)?;
        let at = if file.append {
            self.fs.size(file.inode)
        } else {
            offset
        };
        let inside = at + len as u64 <= self.fs.size(file.inode);
        if !inside || self.fs.cached_prefix(file.inode, at, len) < len {
            self.core.count(|s| s.nowait_misses += 1);
            return Err(Errno::EAGAIN);
        }
        let n = self.write_file_fd(fd, file, &data[..len], Some(offset), OpClass::Write)?;
        self.core.count(|s| s.nowait_hits += 1);
        Ok(n)
    }

    /// `readv`/`preadv`: one read into a bounce buffer, then scattered.
    pub(super) fn readv_fd(
        &mut self,
        fd: RawFd,
        bufs: &mut [IoSliceMut<'_>],
        at: Option<u64>,
    ) -> SysResult<usize> {
        let count = bufs.len().min(IOV_MAX);
        let bufs = &mut bufs[..count];
        let total = bufs
            .iter()
            .map(|b| b.len())
            .sum::<usize>()
            .min(MAX_RW_COUNT);
        let mut bounce = vec![0; total];
        let n = self.read_fd(fd, &mut bounce, at)?;
        scatter(&bounce[..n], bufs);
        Ok(n)
    }

    /// `writev`/`pwritev`: the buffers gathered, then one write.
    pub(super) fn writev_fd(
        &mut self,
        fd: RawFd,
        bufs: &[IoSlice<'_>],
        at: Option<u64>,
    ) -> SysResult<usize> {
        let bufs = &bufs[..bufs.len().min(IOV_MAX)];
        let mut data = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
        for buf in bufs {
            data.extend_from_slice(buf);
        }
        self.write_fd(fd, &data, at)
    }

    pub(super) fn lseek(&mut self, fd: RawFd, offset: i64, whence: Whence) -> SysResult<u64> {
        let (file, base) = match self.entry(fd)? {
            Fd::File(file) => {
                let base = match whence {
                    Whence::Set => 0,
                    Whence::Current => file.offset,
                    Whence::End => self.fs.size(file.inode),
                };
                (Some(file), base)
            }
            // Like ext4's hashed directories, whose end is the largest
            // offset; the position is not kept (there is no getdents).
            Fd::Directory(_) if whence == Whence::End => (None, MAX_FILE_BYTES),
            Fd::Directory(_) => (None, 0),
            Fd::Socket(_) | Fd::Dgram(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => {
                return Err(Errno::ESPIPE)
            }
        };
        let target = (base as i64)
            .checked_add(offset)
            .filter(|t| *t >= 0)
            .ok_or(Errno::EINVAL)? as u64;
        self.inject(OpClass::Metadata)?;
        if file.is_some() {
            self.set_offset(fd, target);
        }
        Ok(target)
    }

    /// `fsync`/`fdatasync`. An injected failure on a file drops its dirty
    /// data (it is never made durable, even by a later successful sync).
    pub(super) fn fsync(&mut self, fd: RawFd) -> SysResult<()> {
        let entry = self.entry(fd)?;
        self.crash_point(|| match entry {
            Fd::Directory(_) => format!("fsync of directory fd {fd}"),
            _ => format!("fsync of fd {fd}"),
        });
        match entry {
            Fd::File(file) => match self.inject(OpClass::Sync) {
                Ok(()) => {
                    self.fs.sync_file(file.inode);
                    Ok(())
                }
                Err(errno) => {
                    if self.fs.drop_dirty(file.inode) {
                        self.core.count(|s| s.fsync_dropped_data += 1);
                    }
                    Err(errno)
                }
            },
            Fd::Directory(dir) => {
                self.inject(OpClass::Sync)?;
                self.fs.sync_dir(dir);
                Ok(())
            }
            Fd::Socket(_) | Fd::Dgram(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => Err(Errno::EINVAL),
        }
    }

    pub(super) fn ftruncate(&mut self, fd: RawFd, len_bytes: u64) -> SysResult<()> {
        let file = match self.entry(fd)? {
            Fd::File(file) if file.writable => file,
            _ => return Err(Errno::EINVAL),
        };
        self.inject(OpClass::Write)?;
        self.fs.truncate(file.inode, len_bytes);
        Ok(())
    }

    /// The regular file `fallocate` may work on, with Linux's checks in order.
    fn fallocate_target(&self, fd: RawFd, mode: i32, offset: u64, len: u64) -> SysResult<OpenFile> {
        let entry = self.entry(fd)?;
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let punch = mode & PUNCH_HOLE != 0;
        if mode & !FALLOC_LINUX_MODES != 0 || (punch && mode & KEEP_SIZE == 0) {
            return Err(Errno::EOPNOTSUPP);
        }
        if !entry.writable() {
            return Err(Errno::EBADF);
        }
        let file = match entry {
            Fd::File(file) => file,
            Fd::PipeRead(_) | Fd::PipeWrite(_) => return Err(Errno::ESPIPE),
            Fd::Directory(_) => return Err(Errno::EISDIR),
            Fd::Socket(_) | Fd::Dgram(_) => return Err(Errno(libc::ENODEV)),
        };
        if offset + len > MAX_FILE_BYTES {
            return Err(Errno::EFBIG);
        }
        // Modes Linux knows but the sim does not model fail as an
        // unsupporting file system's would.
        if ![0, KEEP_SIZE, PUNCH_HOLE | KEEP_SIZE].contains(&mode) {
            return Err(Errno::EOPNOTSUPP);
        }
        Ok(file)
    }

    pub(super) fn fallocate(
        &mut self,
        fd: RawFd,
        mode: i32,
        offset: u64,
        len: u64,
    ) -> SysResult<()> {
        let file = self.fallocate_target(fd, mode, offset, len)?;
        let punch = mode & PUNCH_HOLE != 0;
        if !punch && !self.fs.allocate_fits(file.inode, offset, len) {
            self.core.count(|s| s.enospc_full += 1);
            return Err(Errno::ENOSPC);
        }
        self.inject(OpClass::Write)?;
        if punch {
            self.fs.punch(file.inode, offset, len);
        } else {
            self.fs
                .allocate(file.inode, offset, len, mode & KEEP_SIZE != 0);
        }
        Ok(())
    }

    pub(super) fn fstat(&self, fd: RawFd) -> SysResult<FileStat> {
        let stat = match self.entry(fd)? {
            Fd::File(OpenFile { inode, .. }) | Fd::Directory(inode) => {
                self.fs.stat(inode).ok_or(Errno::EBADF)?
            }
            Fd::Socket(s) | Fd::Dgram(s) => stream_stat(FileType::Socket, 0o777, s),
            Fd::PipeRead(p) | Fd::PipeWrite(p) => stream_stat(FileType::Fifo, 0o600, p),
        };
        self.inject(OpClass::Metadata)?;
        Ok(stat)
    }

    /// `posix_fadvise`: checked like Linux's `generic_fadvise`; only
    /// `DONTNEED` changes anything (it drops the cached pages wholly inside
    /// the range, `0` length: to the end, when the file is clean; a file
    /// with unsynced changes keeps them cached, as Linux keeps dirty pages).
    /// It has no fault class: Linux's fadvise fails only for the reasons
    /// checked here.
    pub(super) fn fadvise(
        &mut self,
        fd: RawFd,
        offset: u64,
        len_bytes: u64,
        advice: Advice,
    ) -> SysResult<()> {
        match self.entry(fd)? {
            Fd::File(file) => {
                if advice == Advice::DontNeed && !self.fs.is_dirty(file.inode) {
                    let len = if len_bytes == 0 { u64::MAX } else { len_bytes };
                    self.fs.drop_cached(file.inode, offset, len);
                }
                Ok(())
            }
            Fd::Directory(_) => Ok(()),
            Fd::Socket(_) | Fd::Dgram(_) | Fd::PipeRead(_) | Fd::PipeWrite(_) => Err(Errno::ESPIPE),
        }
    }

    pub(super) fn fstatfs(&self, fd: RawFd) -> SysResult<FsStat> {
        let stat = match self.entry(fd)? {
            Fd::File(_) | Fd::Directory(_) => self.fs.statfs(),
            Fd::Socket(_) | Fd::Dgram(_) => stream_statfs(SOCKFS_MAGIC),
            Fd::PipeRead(_) | Fd::PipeWrite(_) => stream_statfs(PIPEFS_MAGIC),
        };
        self.inject(OpClass::Metadata)?;
        Ok(stat)
    }
}

fn stream_stat(file_type: FileType, permissions: u32, id: u64) -> FileStat {
    FileStat {
        size_bytes: 0,
        file_type,
        permissions,
        block_size_bytes: STREAM_BLOCK_BYTES,
        blocks_512: 0,
        inode: id,
        device: STREAM_DEVICE,
        links: 1,
    }
}

fn stream_statfs(magic: i64) -> FsStat {
    FsStat {
        magic,
        block_size_bytes: STREAM_BLOCK_BYTES,
        blocks: 0,
        blocks_available: 0,
    }
}

/// Copy `bytes` across `bufs`, front to back.
fn scatter(mut bytes: &[u8], bufs: &mut [IoSliceMut<'_>]) {
    for buf in bufs.iter_mut() {
        let k = bytes.len().min(buf.len());
        buf[..k].copy_from_slice(&bytes[..k]);
        bytes = &bytes[k..];
    }
}
