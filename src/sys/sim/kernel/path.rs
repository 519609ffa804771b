//! [`SimKernel`](super::SimKernel)'s path calls: open, mkdir, rename,
//! unlink, xattrs.

use super::*;

/// What a checked `open` does.
enum OpenPlan {
    Existing { inode: InodeId, truncate: bool },
    Create { dir: InodeId, name: Vec<u8> },
}

impl State {
    /// The directory a relative `path` of `openat` starts from.
    fn start_dir(&self, dir_fd: RawFd, path: &[u8]) -> SysResult<InodeId> {
        if path.first() == Some(&b'/') || dir_fd == libc::AT_FDCWD {
            return Ok(ROOT);
        }
        match self.entry(dir_fd)? {
            Fd::Directory(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    pub(super) fn open(
        &mut self,
        dir_fd: RawFd,
        path: &CStr,
        flags: OpenFlags,
        mode: u32,
    ) -> SysResult<RawFd> {
        if flags.contains(OpenFlags::CREAT) && flags.contains(OpenFlags::DIRECTORY) {
            return Err(Errno::EINVAL);
        }
        let path = path.to_bytes();
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        self.check_fd_room(1)?;
        let start = self.start_dir(dir_fd, path)?;
        let plan = self.plan_open(start, path, flags)?;
        self.inject(OpClass::Open)?;
        let inode = match plan {
            OpenPlan::Create { dir, name } => {
                let inode = self.fs.create_file(dir, &name, mode);
                if !flags.contains(OpenFlags::LOV_DELAY_CREATE) {
                    self.fs.instantiate_layout(inode);
                }
                inode
            }
            OpenPlan::Existing { inode, truncate } => {
                if truncate && !self.fs.is_empty_file(inode) {
                    self.fs.truncate(inode, 0);
                }
                inode
            }
        };
        if self.fs.is_dir(inode) {
            return self.install(Fd::Directory(inode));
        }
        let access = flags.access_mode();
        self.install(Fd::File(OpenFile {
            inode,
            offset: 0,
            append: flags.contains(OpenFlags::APPEND),
            readable: access == OpenFlags::RDONLY || access == OpenFlags::RDWR,
            writable: access == OpenFlags::WRONLY || access == OpenFlags::RDWR,
        }))
    }

    fn plan_open(&self, start: InodeId, path: &[u8], flags: OpenFlags) -> SysResult<OpenPlan> {
        if !flags.contains(OpenFlags::CREAT) {
            let inode = self.fs.lookup(start, path)?;
            return self.plan_open_existing(inode, flags);
        }
        let parent = self.fs.lookup_parent(start, path)?;
        let name = match parent.last {
            Last::Dots(inode) => return self.plan_open_existing(inode, flags),
            Last::Name(name) => name,
        };
        if parent.trailing_slash {
            return Err(Errno::EISDIR);
        }
        match self.fs.child(parent.dir, &name) {
            Some(inode) => self.plan_open_existing(inode, flags),
            None => {
                let (dir, name) = self.fs.plan_create(parent.dir, &name)?;
                Ok(OpenPlan::Create { dir, name })
            }
        }
    }

    fn plan_open_existing(&self, inode: InodeId, flags: OpenFlags) -> SysResult<OpenPlan> {
        let creat = flags.contains(OpenFlags::CREAT);
        if creat && flags.contains(OpenFlags::EXCL) {
            return Err(Errno::EEXIST);
        }
        let truncate = flags.contains(OpenFlags::TRUNC);
        if self.fs.is_dir(inode) {
            let writes = flags.access_mode() != OpenFlags::RDONLY || truncate;
            if creat || writes {
                return Err(Errno::EISDIR);
            }
        } else if flags.contains(OpenFlags::DIRECTORY) {
            return Err(Errno::ENOTDIR);
        }
        Ok(OpenPlan::Existing { inode, truncate })
    }

    pub(super) fn mkdir(&mut self, path: &CStr, mode: u32) -> SysResult<()> {
        let (dir, name) = self.fs.plan_create(ROOT, path.to_bytes())?;
        self.inject(OpClass::Open)?;
        self.fs.mkdir(dir, &name, mode);
        Ok(())
    }

    pub(super) fn rename(&mut self, from: &CStr, to: &CStr) -> SysResult<()> {
        self.crash_point(|| {
            let (from, to) = (from.to_string_lossy(), to.to_string_lossy());
            format!("rename {from} -> {to}")
        });
        let plan = self.fs.plan_rename(from.to_bytes(), to.to_bytes())?;
        self.inject(OpClass::Metadata)?;
        if let Some(plan) = plan {
            self.fs.rename(plan);
        }
        Ok(())
    }

    pub(super) fn unlink(&mut self, path: &CStr) -> SysResult<()> {
        let plan = self.fs.plan_unlink(ROOT, path.to_bytes())?;
        self.inject(OpClass::Metadata)?;
        self.fs.unlink(plan);
        Ok(())
    }

    /// The inode an xattr call names, after Linux's name checks.
    fn xattr_target(&self, path: &CStr, name: &CStr) -> SysResult<InodeId> {
        let name = name.to_bytes();
        if name.is_empty() || name.len() > 255 {
            return Err(Errno::ERANGE);
        }
        let inode = self.fs.lookup(ROOT, path.to_bytes())?;
        self.fs.check_xattr_name(name)?;
        Ok(inode)
    }

    pub(super) fn getxattr(&self, path: &CStr, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
        let inode = self.xattr_target(path, name)?;
        let value = self
            .fs
            .xattr(inode, name.to_bytes())
            .ok_or(Errno::ENODATA)?;
        if !buf.is_empty() && value.len() > buf.len() {
            return Err(Errno::ERANGE);
        }
        self.inject(OpClass::Metadata)?;
        if !buf.is_empty() {
            buf[..value.len()].copy_from_slice(value);
        }
        Ok(value.len())
    }

    pub(super) fn setxattr(
        &mut self,
        path: &CStr,
        name: &CStr,
        value: &[u8],
        flags: i32,
    ) -> SysResult<()> {
        if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
            return Err(Errno::EINVAL);
        }
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno(libc::E2BIG));
        }
        let inode = self.xattr_target(path, name)?;
        let exists = self.fs.xattr(inode, name.to_bytes()).is_some();
        if exists && flags & XATTR_CREATE != 0 {
            return Err(Errno::EEXIST);
        }
        if !exists && flags & XATTR_REPLACE != 0 {
            return Err(Errno::ENODATA);
        }
        self.inject(OpClass::Metadata)?;
        let name = name.to_bytes();
        if name == LUSTRE_LOV && self.fs.is_lustre() && exists {
            // Lustre cannot change an instantiated layout and, so that cp,
            // tar and rsync can copy xattrs, answers success (it drops its
            // own EEXIST): only reading the layout back tells.
            return Ok(());
        }
        self.fs.set_xattr(inode, name, value);
        Ok(())
    }
}
