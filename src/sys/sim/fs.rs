//! [`SimFs`]: the simulated kernel's in-memory file system.
//!
//! Owns: inodes (regular files and directories), path resolution, sparse
//! file data with block allocation against a capacity, extended attributes,
//! and the durability model power loss reverts to. It knows nothing of fds,
//! injected faults or the trace: `SimKernel` checks a call (with the
//! lookup and `plan_*` methods here, which never change anything), draws
//! its faults, and only then applies it with the mutating methods, which
//! assume the call was checked.
//!
//! # Durability
//!
//! * **File data.** Each file keeps its *current* content (what reads see),
//!   its *durable* content (what power loss reverts to) and the log of
//!   changes (writes, size changes, allocations, punched holes) made since
//!   the last successful sync. [`SimFs::sync_file`] replays the log onto the
//!   durable content. [`SimFs::drop_dirty`] (a failed fsync) forgets the log
//!   without replaying it: reads still see those bytes, a crash loses them,
//!   and a later successful sync makes durable only what changed after the
//!   failure (the dropped bytes keep their old durable value unless a later
//!   change wrote them again).
//! * **Names.** Each directory keeps current and durable entries;
//!   [`SimFs::sync_dir`] makes its current entries durable. A create, rename
//!   or unlink is durable once every directory it touched was synced.
//! * **Power loss** ([`SimFs::crash`]): the namespace becomes the durable one,
//!   read from the root (which always exists); every file reachable from it
//!   gets its durable content, plus, under [`CrashModel::Torn`], a random
//!   granularity-aligned prefix of each logged write (size changes,
//!   allocations and holes in the log are replayed whole). Whatever is no
//!   longer reachable is gone, and the result is durable.
//!
//! Extended attributes and permission bits are durable at once. Permissions
//! are recorded and reported, never enforced.
//!
//! # Space
//!
//! File data is kept in blocks of `block_size_bytes`; a block exists only
//! once written or allocated, so holes cost nothing and `fstat` tells them
//! from data. Blocks of files that still have a name or an open fd count
//! against `capacity_bytes`.

use self::cache::PageCache;
use super::core::SimCore;
use super::options::{CrashModel, SimOptions};
use crate::sys::fsinfo;
use crate::sys::{Errno, FileStat, FileType, FsStat, SysResult};
use std::collections::{BTreeMap, VecDeque};

/// Inode number.
pub(crate) type InodeId = u64;

/// The root directory's inode number (ext4's).
pub(crate) const ROOT: InodeId = 2;
/// Longest path accepted, terminating NUL included (Linux `PATH_MAX`).
const PATH_MAX: usize = 4096;
/// Longest path component (Linux `NAME_MAX`).
const NAME_MAX: usize = 255;
/// Largest file offset (`s_maxbytes` of tmpfs, xfs and btrfs).
pub(crate) const MAX_FILE_BYTES: u64 = i64::MAX as u64;
/// The umask applied to every create (the usual default).
const UMASK: u32 = 0o022;
/// Longest xattr value (Linux `XATTR_SIZE_MAX`).
pub(crate) const XATTR_SIZE_MAX: usize = 65536;
/// `LUSTRE_SUPER_MAGIC` as an `f_type`: with it, `lustre.*` xattrs are
/// supported and files have layouts (see [`SimFs::instantiate_layout`]).
const LUSTRE_MAGIC: i64 = fsinfo::LUSTRE_MAGIC as i64;
/// The xattr holding a Lustre file's layout.
pub(crate) const LUSTRE_LOV: &[u8] = fsinfo::LOV_XATTR_NAME.as_bytes();

/// The last component of a path, as create-like calls see it.
pub(crate) enum Last {
    /// An ordinary name (its length already checked).
    Name(Vec<u8>),
    /// `.`, `..` or the root itself: the directory it resolves to.
    Dots(InodeId),
}

/// A path resolved up to its last component.
pub(crate) struct Parent {
    /// The directory holding the last component.
    pub(crate) dir: InodeId,
    /// The last component.
    pub(crate) last: Last,
    /// The path ended in `/`.
    pub(crate) trailing_slash: bool,
}

/// A checked `rename`.
pub(crate) struct Rename {
    from_dir: InodeId,
    from_name: Vec<u8>,
    inode: InodeId,
    to_dir: InodeId,
    to_name: Vec<u8>,
    replaced: Option<InodeId>,
}

/// A checked `unlink`.
pub(crate) struct Unlink {
    dir: InodeId,
    name: Vec<u8>,
    inode: InodeId,
}

/// One change to a file's content, as logged for durability.
#[derive(Clone, Debug, PartialEq)]
enum Change {
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetSize(u64),
    Allocate {
        offset: u64,
        len: u64,
        keep_size: bool,
    },
    Punch {
        offset: u64,
        len: u64,
    },
}

/// A file's bytes: its size and the allocated blocks (absent = hole).
/// Bytes at or past `size_bytes` inside an allocated block are always zero.
#[derive(Clone, Debug, Default, PartialEq)]
struct Content {
    size_bytes: u64,
    blocks: BTreeMap<u64, Vec<u8>>,
}

impl Content {
    fn apply(&mut self, change: &Change, bs: u64) {
        match change {
            Change::Write { offset, data } => self.write(*offset, data, bs),
            Change::SetSize(size) => self.set_size(*size, bs),
            Change::Allocate {
                offset,
                len,
                keep_size,
            } => self.allocate(*offset, *len, *keep_size, bs),
            Change::Punch { offset, len } => self.punch(*offset, *len, bs),
        }
    }

    fn block(&mut self, index: u64, bs: u64) -> &mut Vec<u8> {
        self.blocks
            .entry(index)
            .or_insert_with(|| vec![0; bs as usize])
    }

    fn write(&mut self, offset: u64, data: &[u8], bs: u64) {
        if data.is_empty() {
            return;
        }
        let (mut pos, mut rest) = (offset, data);
        while !rest.is_empty() {
            let within = (pos % bs) as usize;
            let n = rest.len().min(bs as usize - within);
            self.block(pos / bs, bs)[within..within + n].copy_from_slice(&rest[..n]);
            pos += n as u64;
            rest = &rest[n..];
        }
        self.size_bytes = self.size_bytes.max(offset + data.len() as u64);
    }

    /// Truncate or extend; blocks wholly past a (not larger) new size are
    /// freed, preallocated ones included, as Linux truncate does.
    fn set_size(&mut self, size: u64, bs: u64) {
        if size <= self.size_bytes {
            drop(self.blocks.split_off(&size.div_ceil(bs)));
            let within = (size % bs) as usize;
            if within != 0 {
                if let Some(block) = self.blocks.get_mut(&(size / bs)) {
                    block[within..].fill(0);
                }
            }
        }
        self.size_bytes = size;
    }

    fn allocate(&mut self, offset: u64, len: u64, keep_size: bool, bs: u64) {
        if len == 0 {
            return;
        }
        for index in offset / bs..=(offset + len - 1) / bs {
            self.block(index, bs);
        }
        if !keep_size {
            self.size_bytes = self.size_bytes.max(offset + len);
        }
    }

    /// Zero `offset..offset + len`; blocks wholly inside are freed.
    fn punch(&mut self, offset: u64, len: u64, bs: u64) {
        if len == 0 {
            return;
        }
        let end = offset + len;
        let touched: Vec<u64> = self
            .blocks
            .range(offset / bs..=(end - 1) / bs)
            .map(|(index, _)| *index)
            .collect();
        for index in touched {
            let (start, stop) = (index * bs, index * bs + bs);
            if offset <= start && stop <= end {
                self.blocks.remove(&index);
            } else if let Some(block) = self.blocks.get_mut(&index) {
                let from = (offset.max(start) - start) as usize;
                let to = (end.min(stop) - start) as usize;
                block[from..to].fill(0);
            }
        }
    }

    /// Bytes a read of `len` at `offset` returns.
    fn readable_len(&self, offset: u64, len: usize) -> usize {
        let left = self.size_bytes.saturating_sub(offset);
        len.min(usize::try_from(left).unwrap_or(usize::MAX))
    }

    /// Fill `buf` from `offset` (the caller keeps it within the size).
    fn read(&self, offset: u64, buf: &mut [u8], bs: u64) {
        buf.fill(0);
        if buf.is_empty() {
            return;
        }
        let end = offset + buf.len() as u64;
        for (index, block) in self.blocks.range(offset / bs..=(end - 1) / bs) {
            let start = index * bs;
            let from = offset.max(start);
            let to = end.min(start + bs);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&block[(from - start) as usize..(to - start) as usize]);
        }
    }

    /// Blocks a write or allocation of `offset..offset + len` would add.
    fn missing_blocks(&self, offset: u64, len: u64, bs: u64) -> u64 {
        if len == 0 {
            return 0;
        }
        let (first, last) = (offset / bs, (offset + len - 1) / bs);
        (last - first + 1) - self.blocks.range(first..=last).count() as u64
    }

    /// The longest prefix of a write of `len` at `offset` whose new blocks
    /// fit in `free_blocks`.
    fn write_fit(&self, offset: u64, len: u64, bs: u64, free_blocks: u64) -> u64 {
        if self.missing_blocks(offset, len, bs) <= free_blocks {
            return len;
        }
        let mut free = free_blocks;
        for index in offset / bs..=(offset + len - 1) / bs {
            if !self.blocks.contains_key(&index) {
                if free == 0 {
                    return (index * bs).saturating_sub(offset);
                }
                free -= 1;
            }
        }
        len
    }
}

/// A regular file's data and its durability state.
#[derive(Clone, Default)]
struct FileNode {
    current: Content,
    durable: Content,
    /// Changes since the last successful sync (or failed one, which drops them).
    log: Vec<Change>,
    /// Which pages are in memory (nowait reads hit only these).
    cache: PageCache,
}

impl FileNode {
    /// Power loss: the durable content, plus torn pending writes.
    fn revert(&mut self, crash: CrashModel, bs: u64, core: &SimCore) {
        let mut content = self.durable.clone();
        let log = std::mem::take(&mut self.log);
        if let CrashModel::Torn { granularity_bytes } = crash {
            for change in &log {
                content.apply(&tear(change, granularity_bytes.max(1), core), bs);
            }
        }
        self.current = content.clone();
        self.durable = content;
        self.cache.clear();
    }
}

/// What of `change` reaches the disk in a torn crash: writes keep a random
/// prefix ending at a multiple of `granularity` (or nothing, or all); other
/// changes are kept whole.
fn tear(change: &Change, granularity: u64, core: &SimCore) -> Change {
    let Change::Write { offset, data } = change else {
        return change.clone();
    };
    let len = data.len() as u64;
    if len == 0 {
        return change.clone();
    }
    // Multiples of the granularity strictly inside the written range.
    let inside = (offset + len - 1) / granularity - offset / granularity;
    let choice = core.with_rng(|rng| rng.below(inside + 2));
    let kept = match choice {
        0 => 0,
        c if c > inside => len,
        c => (offset / granularity + c) * granularity - offset,
    };
    if 0 < kept && kept < len {
        core.count(|s| s.torn_writes += 1);
    }
    Change::Write {
        offset: *offset,
        data: data[..kept as usize].to_vec(),
    }
}

/// A directory's current and durable entries.
#[derive(Clone)]
struct DirNode {
    /// The directory holding it (the root is its own parent).
    parent: InodeId,
    entries: BTreeMap<Vec<u8>, InodeId>,
    durable: BTreeMap<Vec<u8>, InodeId>,
}

#[derive(Clone)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Clone)]
struct Inode {
    node: Node,
    permissions: u32,
    /// Names in the current namespace (0: unlinked, or a directory renamed over).
    links: u64,
    /// Durable entries naming it: while any exist, a crash may revive it.
    durable_links: u64,
    /// Open fds, as counted by the kernel.
    open_refs: u64,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Inode {
    fn live(&self) -> bool {
        self.links > 0 || self.open_refs > 0
    }
}

/// A path split into components.
struct ParsedPath<'a> {
    absolute: bool,
    comps: Vec<&'a [u8]>,
    trailing_slash: bool,
}

fn parse(path: &[u8]) -> SysResult<ParsedPath<'_>> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    Ok(ParsedPath {
        absolute: path[0] == b'/',
        trailing_slash: path.ends_with(b"/") && !comps.is_empty(),
        comps,
    })
}

fn check_name(name: &[u8]) -> SysResult<()> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

/// The in-memory file system; see the module docs. A clone is a snapshot
/// (what crash exploration keeps at each durability point).
#[derive(Clone)]
pub(crate) struct SimFs {
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    block_size_bytes: u64,
    capacity_bytes: u64,
    magic: i64,
    /// Blocks held by live files.
    used_blocks: u64,
}

impl SimFs {
    /// An empty file system (just the root) sized by `options`.
    pub(crate) fn new(options: &SimOptions) -> SimFs {
        let root = Inode {
            node: Node::Dir(DirNode {
                parent: ROOT,
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            }),
            permissions: 0o755,
            links: 1,
            durable_links: 1,
            open_refs: 0,
            xattrs: BTreeMap::new(),
        };
        SimFs {
            inodes: BTreeMap::from([(ROOT, root)]),
            next_inode: ROOT + 1,
            block_size_bytes: options.block_size_bytes.max(1),
            capacity_bytes: options.capacity_bytes,
            magic: options.fs_magic,
            used_blocks: 0,
        }
    }

    // ---- lookups (never change anything) ----

    fn dir(&self, ino: InodeId) -> Option<&DirNode> {
        match self.inodes.get(&ino).map(|i| &i.node) {
            Some(Node::Dir(dir)) => Some(dir),
            _ => None,
        }
    }

    fn file(&self, ino: InodeId) -> Option<&FileNode> {
        match self.inodes.get(&ino).map(|i| &i.node) {
            Some(Node::File(file)) => Some(file),
            _ => None,
        }
    }

    /// True for a directory.
    pub(crate) fn is_dir(&self, ino: InodeId) -> bool {
        self.dir(ino).is_some()
    }

    /// A directory that lost its name (renamed over): nothing can be created in it.
    fn is_dead_dir(&self, ino: InodeId) -> bool {
        self.inodes.get(&ino).is_some_and(|i| i.links == 0)
    }

    /// The entry `name` of directory `dir`.
    pub(crate) fn child(&self, dir: InodeId, name: &[u8]) -> Option<InodeId> {
        self.dir(dir)?.entries.get(name).copied()
    }

    fn step(&self, cur: InodeId, comp: &[u8]) -> SysResult<InodeId> {
        let dir = self.dir(cur).ok_or(Errno::ENOTDIR)?;
        match comp {
            b"." => Ok(cur),
            b".." => Ok(dir.parent),
            name => {
                check_name(name)?;
                dir.entries.get(name).copied().ok_or(Errno::ENOENT)
            }
        }
    }

    /// Resolve `path` (relative ones from directory `start`).
    pub(crate) fn lookup(&self, start: InodeId, path: &[u8]) -> SysResult<InodeId> {
        let path = parse(path)?;
        let mut cur = if path.absolute { ROOT } else { start };
        for comp in &path.comps {
            cur = self.step(cur, comp)?;
        }
        if path.trailing_slash && !self.is_dir(cur) {
            return Err(Errno::ENOTDIR);
        }
        Ok(cur)
    }

    /// Resolve every component of `path` but the last, which must be in a directory.
    pub(crate) fn lookup_parent(&self, start: InodeId, path: &[u8]) -> SysResult<Parent> {
        let path = parse(path)?;
        let mut dir = if path.absolute { ROOT } else { start };
        let Some((last, walk)) = path.comps.split_last() else {
            let last = Last::Dots(dir);
            return Ok(Parent {
                dir,
                last,
                trailing_slash: false,
            });
        };
        for comp in walk {
            dir = self.step(dir, comp)?;
        }
        let node = self.dir(dir).ok_or(Errno::ENOTDIR)?;
        let last = match *last {
            b"." => Last::Dots(dir),
            b".." => Last::Dots(node.parent),
            name => {
                check_name(name)?;
                Last::Name(name.to_vec())
            }
        };
        Ok(Parent {
            dir,
            last,
            trailing_slash: path.trailing_slash,
        })
    }

    /// The directory a new entry `path` goes in, and its name; `EEXIST` if taken.
    pub(crate) fn plan_create(&self, start: InodeId, path: &[u8]) -> SysResult<(InodeId, Vec<u8>)> {
        let parent = self.lookup_parent(start, path)?;
        let Last::Name(name) = parent.last else {
            return Err(Errno::EEXIST);
        };
        if self.child(parent.dir, &name).is_some() {
            return Err(Errno::EEXIST);
        }
        if self.is_dead_dir(parent.dir) {
            return Err(Errno::ENOENT);
        }
        Ok((parent.dir, name))
    }

    /// Check `unlink(path)`.
    pub(crate) fn plan_unlink(&self, start: InodeId, path: &[u8]) -> SysResult<Unlink> {
        let parent = self.lookup_parent(start, path)?;
        let Last::Name(name) = parent.last else {
            return Err(Errno::EISDIR);
        };
        let inode = self.child(parent.dir, &name).ok_or(Errno::ENOENT)?;
        if self.is_dir(inode) {
            return Err(Errno::EISDIR);
        }
        if parent.trailing_slash {
            return Err(Errno::ENOTDIR);
        }
        Ok(Unlink {
            dir: parent.dir,
            name,
            inode,
        })
    }

    /// Check `rename(from, to)`; `None` when it is a no-op (same inode).
    pub(crate) fn plan_rename(&self, from: &[u8], to: &[u8]) -> SysResult<Option<Rename>> {
        let src = self.lookup_parent(ROOT, from)?;
        let dst = self.lookup_parent(ROOT, to)?;
        let (Last::Name(from_name), Last::Name(to_name)) = (src.last, dst.last) else {
            return Err(Errno::EBUSY);
        };
        let inode = self.child(src.dir, &from_name).ok_or(Errno::ENOENT)?;
        let is_dir = self.is_dir(inode);
        if !is_dir && (src.trailing_slash || dst.trailing_slash) {
            return Err(Errno::ENOTDIR);
        }
        let target = self.child(dst.dir, &to_name);
        if is_dir && self.is_ancestor_or_self(inode, dst.dir) {
            return Err(Errno::EINVAL);
        }
        if target.is_some_and(|t| self.is_ancestor_or_self(t, src.dir)) {
            return Err(Errno::ENOTEMPTY);
        }
        if target == Some(inode) {
            return Ok(None);
        }
        if let Some(t) = target {
            self.check_replace(is_dir, t)?;
        } else if self.is_dead_dir(dst.dir) {
            return Err(Errno::ENOENT);
        }
        Ok(Some(Rename {
            from_dir: src.dir,
            from_name,
            inode,
            to_dir: dst.dir,
            to_name,
            replaced: target,
        }))
    }

    /// May a rename of a directory (`is_dir`) or file replace `target`?
    fn check_replace(&self, is_dir: bool, target: InodeId) -> SysResult<()> {
        match (is_dir, self.dir(target)) {
            (true, None) => Err(Errno::ENOTDIR),
            (false, Some(_)) => Err(Errno::EISDIR),
            (true, Some(dir)) if !dir.entries.is_empty() => Err(Errno::ENOTEMPTY),
            _ => Ok(()),
        }
    }

    /// True when `dir` is `ancestor` or lies below it.
    fn is_ancestor_or_self(&self, ancestor: InodeId, mut dir: InodeId) -> bool {
        for _ in 0..=self.inodes.len() {
            if dir == ancestor {
                return true;
            }
            match self.dir(dir) {
                Some(node) if dir != ROOT => dir = node.parent,
                _ => return false,
            }
        }
        false
    }

    /// Size of file `ino` in bytes.
    pub(crate) fn size(&self, ino: InodeId) -> u64 {
        self.file(ino).map_or(0, |f| f.current.size_bytes)
    }

    /// True when file `ino` has neither size nor blocks.
    pub(crate) fn is_empty_file(&self, ino: InodeId) -> bool {
        self.file(ino)
            .is_some_and(|f| f.current.size_bytes == 0 && f.current.blocks.is_empty())
    }

    /// Bytes a read of `len` at `offset` returns.
    pub(crate) fn readable_len(&self, ino: InodeId, offset: u64, len: usize) -> usize {
        self.file(ino)
            .map_or(0, |f| f.current.readable_len(offset, len))
    }

    /// Fill `buf` from `offset` of file `ino` (keep it within `readable_len`).
    pub(crate) fn read(&self, ino: InodeId, offset: u64, buf: &mut [u8]) {
        if let Some(file) = self.file(ino) {
            file.current.read(offset, buf, self.block_size_bytes);
        }
    }

    fn file_mut(&mut self, ino: InodeId) -> Option<&mut FileNode> {
        match self.inodes.get_mut(&ino).map(|i| &mut i.node) {
            Some(Node::File(file)) => Some(file),
            _ => None,
        }
    }

    /// A read of `offset..offset + len` of file `ino` brought its pages in.
    pub(crate) fn cache_read(&mut self, ino: InodeId, offset: u64, len: usize) {
        if let Some(file) = self.file_mut(ino) {
            file.cache.insert(offset, len as u64);
        }
    }

    /// Bytes from `offset` (at most `len`) of file `ino` in cached pages.
    pub(crate) fn cached_prefix(&self, ino: InodeId, offset: u64, len: usize) -> usize {
        self.file(ino)
            .map_or(0, |f| f.cache.cached_prefix(offset, len as u64) as usize)
    }

    /// Drop the cached pages wholly inside `offset..offset + len` of file
    /// `ino` (`fadvise(DONTNEED)`, truncation, holes).
    pub(crate) fn drop_cached(&mut self, ino: InodeId, offset: u64, len: u64) {
        if let Some(file) = self.file_mut(ino) {
            file.cache.remove(offset, len);
        }
    }

    /// True when file `ino` has changes not yet synced.
    pub(crate) fn is_dirty(&self, ino: InodeId) -> bool {
        self.file(ino).is_some_and(|f| !f.log.is_empty())
    }

    /// Memory pressure: every cached page of file `ino` is evicted.
    pub(crate) fn evict_cache(&mut self, ino: InodeId) {
        if let Some(file) = self.file_mut(ino) {
            file.cache.clear();
        }
    }

    fn free_blocks(&self) -> u64 {
        (self.capacity_bytes / self.block_size_bytes).saturating_sub(self.used_blocks)
    }

    /// How many of `len` bytes written at `offset` fit on the disk.
    pub(crate) fn write_fit(&self, ino: InodeId, offset: u64, len: usize) -> usize {
        let bs = self.block_size_bytes;
        self.file(ino).map_or(0, |f| {
            f.current
                .write_fit(offset, len as u64, bs, self.free_blocks()) as usize
        })
    }

    /// True when allocating `offset..offset + len` fits on the disk.
    pub(crate) fn allocate_fits(&self, ino: InodeId, offset: u64, len: u64) -> bool {
        let bs = self.block_size_bytes;
        self.file(ino)
            .is_some_and(|f| f.current.missing_blocks(offset, len, bs) <= self.free_blocks())
    }

    /// Inode `ino`'s `fstat`.
    pub(crate) fn stat(&self, ino: InodeId) -> Option<FileStat> {
        let inode = self.inodes.get(&ino)?;
        let bs = self.block_size_bytes;
        let (size_bytes, file_type, blocks, links) = match &inode.node {
            Node::File(f) => (
                f.current.size_bytes,
                FileType::Regular,
                f.current.blocks.len() as u64,
                inode.links,
            ),
            Node::Dir(d) => {
                let subdirs = d.entries.values().filter(|c| self.is_dir(**c)).count() as u64;
                let links = if inode.links == 0 { 0 } else { 2 + subdirs };
                (bs, FileType::Directory, 1, links)
            }
        };
        Some(FileStat {
            size_bytes,
            file_type,
            permissions: inode.permissions,
            block_size_bytes: bs,
            blocks_512: blocks * bs / 512,
            inode: ino,
            device: 1,
            links,
        })
    }

    /// The file system's `fstatfs`.
    pub(crate) fn statfs(&self) -> FsStat {
        let bs = self.block_size_bytes;
        FsStat {
            magic: self.magic,
            block_size_bytes: bs,
            blocks: self.capacity_bytes / bs,
            blocks_available: self.free_blocks(),
        }
    }

    /// `EOPNOTSUPP` unless `name` is in a supported namespace: `user.`, and
    /// `lustre.` when the file system reports Lustre's magic.
    pub(crate) fn check_xattr_name(&self, name: &[u8]) -> SysResult<()> {
        let lustre = self.magic == LUSTRE_MAGIC && name.starts_with(b"lustre.");
        if name.starts_with(b"user.") || lustre {
            Ok(())
        } else {
            Err(Errno::EOPNOTSUPP)
        }
    }

    /// True when the file system reports Lustre's magic.
    pub(crate) fn is_lustre(&self) -> bool {
        self.magic == LUSTRE_MAGIC
    }

    /// Lustre fixes a regular file's layout (its `lustre.lov`) when it is
    /// created, unless opened with `O_LOV_DELAY_CREATE`, in which case at
    /// its first write or when `lustre.lov` is set. Gives `ino` the default
    /// layout if it has none yet; nothing off Lustre or for directories.
    pub(crate) fn instantiate_layout(&mut self, ino: InodeId) {
        if self.is_lustre() && self.file(ino).is_some() && self.xattr(ino, LUSTRE_LOV).is_none() {
            // The layout a Lustre file gets when none was asked for: 1 MiB x 1.
            let blob = fsinfo::encode_v1(fsinfo::StripeBytes::LUSTRE_DEFAULT, 1);
            self.set_xattr(ino, LUSTRE_LOV, &blob);
        }
    }

    /// Extended attribute `name` of `ino`.
    pub(crate) fn xattr(&self, ino: InodeId, name: &[u8]) -> Option<&[u8]> {
        self.inodes.get(&ino)?.xattrs.get(name).map(Vec::as_slice)
    }

    // ---- changes (the caller has checked them) ----

    fn add_inode(&mut self, node: Node, permissions: u32) -> InodeId {
        let ino = self.next_inode;
        self.next_inode += 1;
        let inode = Inode {
            node,
            permissions,
            links: 0,
            durable_links: 0,
            open_refs: 0,
            xattrs: BTreeMap::new(),
        };
        self.inodes.insert(ino, inode);
        ino
    }

    fn link(&mut self, dir: InodeId, name: &[u8], ino: InodeId) {
        if let Some(Node::Dir(node)) = self.inodes.get_mut(&dir).map(|i| &mut i.node) {
            node.entries.insert(name.to_vec(), ino);
        }
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.links += 1;
        }
    }

    /// Create an empty regular file `name` in `dir` (mode before umask).
    pub(crate) fn create_file(&mut self, dir: InodeId, name: &[u8], mode: u32) -> InodeId {
        let ino = self.add_inode(Node::File(FileNode::default()), mode & 0o7777 & !UMASK);
        self.link(dir, name, ino);
        ino
    }

    /// Create directory `name` in `dir` (mode before umask).
    pub(crate) fn mkdir(&mut self, dir: InodeId, name: &[u8], mode: u32) -> InodeId {
        let node = Node::Dir(DirNode {
            parent: dir,
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
        });
        let ino = self.add_inode(node, mode & 0o1777 & !UMASK);
        self.link(dir, name, ino);
        ino
    }

    /// Apply a checked unlink.
    pub(crate) fn unlink(&mut self, plan: Unlink) {
        if let Some(Node::Dir(dir)) = self.inodes.get_mut(&plan.dir).map(|i| &mut i.node) {
            dir.entries.remove(&plan.name);
        }
        self.drop_link(plan.inode);
    }

    /// Apply a checked rename.
    pub(crate) fn rename(&mut self, plan: Rename) {
        if let Some(Node::Dir(dir)) = self.inodes.get_mut(&plan.from_dir).map(|i| &mut i.node) {
            dir.entries.remove(&plan.from_name);
        }
        if let Some(Node::Dir(dir)) = self.inodes.get_mut(&plan.to_dir).map(|i| &mut i.node) {
            dir.entries.insert(plan.to_name, plan.inode);
        }
        if let Some(Node::Dir(moved)) = self.inodes.get_mut(&plan.inode).map(|i| &mut i.node) {
            moved.parent = plan.to_dir;
        }
        if let Some(replaced) = plan.replaced {
            self.drop_link(replaced);
        }
    }

    fn drop_link(&mut self, ino: InodeId) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.links = inode.links.saturating_sub(1);
        }
        self.settle(ino);
    }

    /// An fd now refers to `ino`.
    pub(crate) fn open_ref(&mut self, ino: InodeId) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.open_refs += 1;
        }
    }

    /// An fd referring to `ino` was closed.
    pub(crate) fn close_ref(&mut self, ino: InodeId) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.open_refs = inode.open_refs.saturating_sub(1);
        }
        self.settle(ino);
    }

    /// Free what nobody can reach any more: the blocks of an inode with no
    /// name and no fd, and the inode itself once no durable entry names it.
    fn settle(&mut self, ino: InodeId) {
        let mut work = vec![ino];
        while let Some(ino) = work.pop() {
            let Some(inode) = self.inodes.get_mut(&ino) else {
                continue;
            };
            if ino == ROOT || inode.live() {
                continue;
            }
            if let Node::File(file) = &mut inode.node {
                let freed = file.current.blocks.len() as u64;
                self.used_blocks = self.used_blocks.saturating_sub(freed);
                file.current.blocks.clear();
            }
            if inode.durable_links > 0 {
                continue;
            }
            if let Some(Node::Dir(dir)) = self.inodes.remove(&ino).map(|i| i.node) {
                for child in dir.durable.into_values() {
                    self.add_durable_links(child, -1);
                    work.push(child);
                }
            }
        }
    }

    fn add_durable_links(&mut self, ino: InodeId, delta: i64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.durable_links = inode.durable_links.saturating_add_signed(delta);
        }
    }

    /// Apply `change` to file `ino`'s current content and log it.
    fn change(&mut self, ino: InodeId, change: Change) {
        let bs = self.block_size_bytes;
        let Some(Node::File(file)) = self.inodes.get_mut(&ino).map(|i| &mut i.node) else {
            return;
        };
        let before = file.current.blocks.len() as u64;
        file.current.apply(&change, bs);
        let after = file.current.blocks.len() as u64;
        file.log.push(change);
        self.used_blocks = (self.used_blocks + after).saturating_sub(before);
    }

    /// Write `data` at `offset` of file `ino` (capacity already checked).
    /// The written pages are cached.
    pub(crate) fn write(&mut self, ino: InodeId, offset: u64, data: &[u8]) {
        self.instantiate_layout(ino);
        if let Some(file) = self.file_mut(ino) {
            file.cache.insert(offset, data.len() as u64);
        }
        if !data.is_empty() {
            let data = data.to_vec();
            self.change(ino, Change::Write { offset, data });
        }
    }

    /// Set file `ino`'s size (`ftruncate`, `O_TRUNC`); pages past it leave
    /// the cache.
    pub(crate) fn truncate(&mut self, ino: InodeId, size_bytes: u64) {
        self.drop_cached(ino, size_bytes, u64::MAX);
        self.change(ino, Change::SetSize(size_bytes));
    }

    /// Allocate `offset..offset + len`, extending the size unless `keep_size`.
    pub(crate) fn allocate(&mut self, ino: InodeId, offset: u64, len: u64, keep_size: bool) {
        let change = Change::Allocate {
            offset,
            len,
            keep_size,
        };
        self.change(ino, change);
    }

    /// Punch a hole at `offset..offset + len` (size kept).
    pub(crate) fn punch(&mut self, ino: InodeId, offset: u64, len: u64) {
        self.drop_cached(ino, offset, len);
        self.change(ino, Change::Punch { offset, len });
    }

    /// Set extended attribute `name` of `ino`.
    pub(crate) fn set_xattr(&mut self, ino: InodeId, name: &[u8], value: &[u8]) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.xattrs.insert(name.to_vec(), value.to_vec());
        }
    }

    // ---- durability ----

    /// A successful fsync of file `ino`: its logged changes become durable.
    pub(crate) fn sync_file(&mut self, ino: InodeId) {
        let bs = self.block_size_bytes;
        if let Some(Node::File(file)) = self.inodes.get_mut(&ino).map(|i| &mut i.node) {
            for change in std::mem::take(&mut file.log) {
                file.durable.apply(&change, bs);
            }
        }
    }

    /// A failed fsync of file `ino`: its logged changes are forgotten without
    /// becoming durable. True when there was something to drop.
    pub(crate) fn drop_dirty(&mut self, ino: InodeId) -> bool {
        match self.inodes.get_mut(&ino).map(|i| &mut i.node) {
            Some(Node::File(file)) => !std::mem::take(&mut file.log).is_empty(),
            _ => false,
        }
    }

    /// An fsync of directory `ino`: its current entries become durable.
    pub(crate) fn sync_dir(&mut self, ino: InodeId) {
        let Some(Node::Dir(dir)) = self.inodes.get_mut(&ino).map(|i| &mut i.node) else {
            return;
        };
        let old = std::mem::replace(&mut dir.durable, dir.entries.clone());
        let mut delta: BTreeMap<InodeId, i64> = BTreeMap::new();
        for child in old.values() {
            *delta.entry(*child).or_default() -= 1;
        }
        for child in dir.durable.values() {
            *delta.entry(*child).or_default() += 1;
        }
        for (child, d) in delta {
            self.add_durable_links(child, d);
            if d < 0 {
                self.settle(child);
            }
        }
    }

    /// Make the current entry `name` of `dir` durable (nothing else).
    fn make_entry_durable(&mut self, dir: InodeId, name: &[u8]) {
        let Some(Node::Dir(node)) = self.inodes.get_mut(&dir).map(|i| &mut i.node) else {
            return;
        };
        let Some(&child) = node.entries.get(name) else {
            return;
        };
        let old = node.durable.insert(name.to_vec(), child);
        if old != Some(child) {
            self.add_durable_links(child, 1);
            if let Some(old) = old {
                self.add_durable_links(old, -1);
                self.settle(old);
            }
        }
    }

    /// Power loss; see the module docs. Every fd must already be gone.
    pub(crate) fn crash(&mut self, core: &SimCore) {
        core.count(|s| s.crashes += 1);
        let crash = core.options().crash;
        let bs = self.block_size_bytes;
        self.power_loss(|file| file.revert(crash, bs, core));
    }

    /// The namespace becomes the durable one; every file still reachable
    /// gets its post-crash content from `revert`.
    fn power_loss(&mut self, mut revert: impl FnMut(&mut FileNode)) {
        let parents = self.durable_tree();
        self.inodes.retain(|ino, _| parents.contains_key(ino));
        for (ino, inode) in self.inodes.iter_mut() {
            inode.links = 0;
            inode.durable_links = 0;
            inode.open_refs = 0;
            match &mut inode.node {
                Node::Dir(dir) => {
                    dir.durable.retain(|_, child| parents.contains_key(child));
                    dir.entries = dir.durable.clone();
                    dir.parent = parents.get(ino).copied().unwrap_or(ROOT);
                }
                Node::File(file) => revert(file),
            }
        }
        self.recount();
    }

    /// Every inode reachable from the root through durable entries, with
    /// the directory it was first reached from (breadth first, by name).
    fn durable_tree(&self) -> BTreeMap<InodeId, InodeId> {
        let mut parents = BTreeMap::from([(ROOT, ROOT)]);
        let mut queue = VecDeque::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            let Some(node) = self.dir(dir) else {
                continue;
            };
            for &child in node.durable.values() {
                if self.inodes.contains_key(&child) && !parents.contains_key(&child) {
                    parents.insert(child, dir);
                    if self.is_dir(child) {
                        queue.push_back(child);
                    }
                }
            }
        }
        parents
    }

    /// Recompute link counts and used blocks from the (durable) namespace.
    fn recount(&mut self) {
        let named: Vec<InodeId> = self
            .inodes
            .values()
            .filter_map(|i| match &i.node {
                Node::Dir(dir) => Some(dir.entries.values().copied()),
                Node::File(_) => None,
            })
            .flatten()
            .collect();
        for ino in named {
            if let Some(inode) = self.inodes.get_mut(&ino) {
                inode.links += 1;
                inode.durable_links += 1;
            }
        }
        if let Some(root) = self.inodes.get_mut(&ROOT) {
            root.links = root.links.max(1);
            root.durable_links = root.durable_links.max(1);
        }
        self.used_blocks = self
            .inodes
            .values()
            .map(|i| match &i.node {
                Node::File(file) => file.current.blocks.len() as u64,
                Node::Dir(_) => 0,
            })
            .sum();
    }

    // ---- inspection for tests and the harness (no faults, no trace) ----

    /// The whole content of the regular file at `path`.
    pub(crate) fn read_file(&self, path: &[u8]) -> Option<Vec<u8>> {
        let ino = self.lookup(ROOT, path).ok()?;
        let file = self.file(ino)?;
        let len = usize::try_from(file.current.size_bytes).ok()?;
        let mut buf = vec![0; len];
        file.current.read(0, &mut buf, self.block_size_bytes);
        Some(buf)
    }

    /// The value of xattr `name` of the file or directory at `path`.
    pub(crate) fn read_xattr(&self, path: &[u8], name: &[u8]) -> Option<Vec<u8>> {
        let ino = self.lookup(ROOT, path).ok()?;
        self.xattr(ino, name).map(<[u8]>::to_vec)
    }

    /// True when `path` resolves.
    pub(crate) fn exists(&self, path: &[u8]) -> bool {
        self.lookup(ROOT, path).is_ok()
    }

    /// The names in directory `path`, sorted.
    pub(crate) fn list_dir(&self, path: &[u8]) -> Option<Vec<String>> {
        let dir = self.dir(self.lookup(ROOT, path).ok()?)?;
        let names = dir
            .entries
            .keys()
            .map(|n| String::from_utf8_lossy(n).into_owned());
        Some(names.collect())
    }

    /// Create or replace the file at `path` with `bytes`, creating missing
    /// parent directories; the content and every name on the path are
    /// durable afterwards. Capacity is not checked.
    pub(crate) fn write_file_durable(&mut self, path: &[u8], bytes: &[u8]) -> SysResult<()> {
        let parsed = parse(path)?;
        let Some((last, dirs)) = parsed.comps.split_last() else {
            return Err(Errno::EISDIR);
        };
        let mut dir = ROOT;
        for comp in dirs {
            dir = self.durable_dir_step(dir, comp)?;
        }
        if matches!(*last, b"." | b"..") || parsed.trailing_slash {
            return Err(Errno::EISDIR);
        }
        check_name(last)?;
        let ino = match self.child(dir, last) {
            Some(ino) if self.is_dir(ino) => return Err(Errno::EISDIR),
            Some(ino) => ino,
            None => self.create_file(dir, last, 0o644),
        };
        self.make_entry_durable(dir, last);
        self.truncate(ino, 0);
        self.write(ino, 0, bytes);
        self.sync_file(ino);
        Ok(())
    }

    /// Step into `comp` of `dir`, creating the directory if missing; the
    /// entry is made durable.
    fn durable_dir_step(&mut self, dir: InodeId, comp: &[u8]) -> SysResult<InodeId> {
        if matches!(comp, b"." | b"..") {
            return self.step(dir, comp);
        }
        check_name(comp)?;
        let next = match self.dir(dir).ok_or(Errno::ENOTDIR)?.entries.get(comp) {
            Some(&next) => next,
            None => self.mkdir(dir, comp, 0o755),
        };
        if !self.is_dir(next) {
            return Err(Errno::ENOTDIR);
        }
        self.make_entry_durable(dir, comp);
        Ok(next)
    }
}

pub(crate) mod cache;
pub(crate) mod crash;
#[cfg(test)]
mod tests;
