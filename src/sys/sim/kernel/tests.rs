use super::*;
use crate::sys::sim::{ClassFaults, CrashModel, SimOptions};
use std::ffi::CString;

const BS: u64 = 4096;
const RW_CREATE: OpenFlags = OpenFlags(libc::O_RDWR | libc::O_CREAT);

fn kernel_with(options: SimOptions) -> SimKernel {
    options.validate().expect("valid options");
    SimKernel::new(Arc::new(SimCore::new(options)))
}

fn kernel() -> SimKernel {
    kernel_with(SimOptions::new(1))
}

/// Options with every call of `class` failing with `errno` (or with
/// probability `p`).
fn faulty(seed: u64, classes: &[OpClass], errnos: &[Errno], p: f64) -> SimOptions {
    let mut o = SimOptions::new(seed);
    for class in classes {
        o.faults[class.index()] = ClassFaults {
            probability: p,
            errnos: errnos.to_vec(),
        };
    }
    o
}

fn open(k: &SimKernel, path: &CStr, flags: OpenFlags) -> RawFd {
    k.open(path, flags, 0o644).expect("open")
}

fn close_all(k: &SimKernel, fds: &[RawFd]) {
    for &fd in fds {
        k.close(fd).expect("close");
    }
}

// ---- the model's answers (the calls both kernels share are checked once,
// on both, in tests/kernel_contract.rs) ----

#[test]
fn fstat_reports_size_type_and_links() {
    let k = kernel();
    let fd = open(&k, c"/f", RW_CREATE);
    assert_eq!(k.write(fd, &[7u8; 1000]), Ok(1000));
    k.ftruncate(fd, 1500).expect("ftruncate");
    k.fsync(fd).expect("fsync");
    k.fdatasync(fd).expect("fdatasync");
    let st = k.fstat(fd).expect("fstat");
    assert_eq!(
        (st.size_bytes, st.file_type, st.links),
        (1500, FileType::Regular, 1)
    );
    assert_eq!(
        (st.permissions, st.block_size_bytes, st.device),
        (0o644, BS, 1)
    );
    assert_ne!(st.inode, 0);
    k.mkdir(c"/d", 0o777).expect("mkdir");
    k.mkdir(c"/d/e", 0o700).expect("mkdir");
    let dir = open(&k, c"/d", OpenFlags::DIRECTORY);
    let st = k.fstat(dir).expect("fstat dir");
    assert_eq!(
        (st.file_type, st.permissions, st.links),
        (FileType::Directory, 0o755, 3)
    );
    let fs = k.fstatfs(fd).expect("fstatfs");
    assert_eq!(
        (fs.magic, fs.block_size_bytes, fs.blocks),
        (0xEF53, BS, (1 << 30) / BS)
    );
    assert_eq!(fs.blocks_available, fs.blocks - 1);
}

#[test]
fn closed_fd_is_ebadf_and_fds_are_reused_lowest_first() {
    let k = kernel();
    let fds: Vec<RawFd> = (0..3).map(|_| open(&k, c"/f", RW_CREATE)).collect();
    assert_eq!(fds, [3, 4, 5]);
    k.close(4).expect("close");
    let mut buf = [0u8; 1];
    assert_eq!(k.read(4, &mut buf), Err(Errno::EBADF));
    assert_eq!(k.write(4, b"x"), Err(Errno::EBADF));
    assert_eq!(k.fstat(4), Err(Errno::EBADF));
    assert_eq!(k.close(4), Err(Errno::EBADF));
    assert_eq!(k.fsync(99), Err(Errno::EBADF));
    assert_eq!(open(&k, c"/f", OpenFlags::RDONLY), 4);
    assert_eq!(k.open_fds(), 3);
}

#[test]
fn access_modes_and_directories() {
    let k = kernel();
    k.write_file_durable("/f", b"data").expect("setup");
    let ro = open(&k, c"/f", OpenFlags::RDONLY);
    let wo = open(&k, c"/f", OpenFlags::WRONLY);
    let mut buf = [0u8; 4];
    assert_eq!(k.write(ro, b"x"), Err(Errno::EBADF));
    assert_eq!(k.read(wo, &mut buf), Err(Errno::EBADF));
    assert_eq!(k.ftruncate(ro, 0), Err(Errno::EINVAL));
    assert_eq!(k.fallocate(ro, 0, 0, 1), Err(Errno::EBADF));
    let dir = open(&k, c"/", OpenFlags::RDONLY | OpenFlags::DIRECTORY);
    assert_eq!(k.read(dir, &mut buf), Err(Errno::EISDIR));
    assert_eq!(k.pread(dir, &mut buf, 0), Err(Errno::EISDIR));
    assert_eq!(k.write(dir, b"x"), Err(Errno::EBADF));
    assert_eq!(k.open(c"/", OpenFlags::WRONLY, 0), Err(Errno::EISDIR));
    assert_eq!(
        k.open(c"/", OpenFlags::RDONLY | OpenFlags::TRUNC, 0),
        Err(Errno::EISDIR)
    );
    assert_eq!(k.open(c"/", OpenFlags::CREAT, 0), Err(Errno::EISDIR));
    assert_eq!(k.open(c"/f", OpenFlags::DIRECTORY, 0), Err(Errno::ENOTDIR));
    assert_eq!(k.open(c"/f/", OpenFlags::RDONLY, 0), Err(Errno::ENOTDIR));
    assert_eq!(k.open(c"/g/", RW_CREATE, 0), Err(Errno::EISDIR));
    let creat_dir = OpenFlags::CREAT | OpenFlags::DIRECTORY;
    assert_eq!(k.open(c"/g", creat_dir, 0), Err(Errno::EINVAL));
    assert_eq!(k.open(c"", OpenFlags::RDONLY, 0), Err(Errno::ENOENT));
}

#[test]
fn create_excl_and_trunc() {
    let k = kernel();
    let excl = RW_CREATE | OpenFlags::EXCL;
    let fd = open(&k, c"/f", excl);
    assert_eq!(k.open(c"/f", excl, 0o644), Err(Errno::EEXIST));
    assert_eq!(k.open(c"/.", excl, 0o644), Err(Errno::EEXIST));
    assert_eq!(k.write(fd, b"abc"), Ok(3));
    let again = open(&k, c"/f", RW_CREATE);
    assert_eq!(k.fstat(again).map(|s| s.size_bytes), Ok(3));
    let trunc = open(&k, c"/f", OpenFlags::WRONLY | OpenFlags::TRUNC);
    assert_eq!(k.fstat(trunc).map(|s| s.size_bytes), Ok(0));
    assert_eq!(k.open(c"/missing/f", RW_CREATE, 0), Err(Errno::ENOENT));
    let mode = open(&k, c"/m", OpenFlags::WRONLY | OpenFlags::CREAT);
    let _ = k.close(mode);
    let fd = k.open(c"/x", RW_CREATE, 0o4777).expect("open");
    assert_eq!(k.fstat(fd).map(|s| s.permissions), Ok(0o4755));
}

#[test]
fn append_writes_go_to_the_end() {
    let k = kernel();
    k.write_file_durable("/log", b"one\n").expect("setup");
    let a = open(&k, c"/log", OpenFlags::WRONLY | OpenFlags::APPEND);
    let b = open(&k, c"/log", OpenFlags::RDWR);
    assert_eq!(k.write(b, b"ONE"), Ok(3));
    assert_eq!(k.write(a, b"two\n"), Ok(4));
    assert_eq!(k.lseek(a, 0, Whence::Current), Ok(8));
    // Linux appends even for pwrite on an O_APPEND fd.
    assert_eq!(k.pwrite(a, b"three\n", 0), Ok(6));
    assert_eq!(k.lseek(a, 0, Whence::Current), Ok(8));
    assert_eq!(k.read_file("/log").expect("file"), b"ONE\ntwo\nthree\n");
    let (rd, wr) = k.pipe().expect("pipe");
    assert_eq!(k.sendfile(a, b, 0, 4), Err(Errno::EINVAL));
    assert_eq!(k.write(wr, b"pipe"), Ok(4));
    assert_eq!(k.splice(rd, None, a, None, 4), Err(Errno::EINVAL));
}

#[test]
fn openat_resolves_from_the_directory_fd() {
    let k = kernel();
    k.write_file_durable("/d/e/f", b"deep").expect("setup");
    let d = open(&k, c"/d", OpenFlags::DIRECTORY);
    let file = open(&k, c"/d/e/f", OpenFlags::RDONLY);
    let f = k.openat(d, c"e/f", OpenFlags::RDONLY, 0).expect("openat");
    assert_eq!(k.fstat(f).map(|s| s.inode), k.fstat(file).map(|s| s.inode));
    let up = k
        .openat(d, c"../d/e/../e/f", OpenFlags::RDONLY, 0)
        .expect("openat ..");
    assert_eq!(k.fstat(up).map(|s| s.inode), k.fstat(file).map(|s| s.inode));
    assert_eq!(
        k.openat(file, c"x", OpenFlags::RDONLY, 0),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(k.openat(77, c"x", OpenFlags::RDONLY, 0), Err(Errno::EBADF));
    // Absolute paths and AT_FDCWD ignore the fd (cwd is "/").
    assert!(k.openat(77, c"/d/e/f", OpenFlags::RDONLY, 0).is_ok());
    assert!(k
        .openat(libc::AT_FDCWD, c"d/e/f", OpenFlags::RDONLY, 0)
        .is_ok());
    let n = k
        .openat(d, c"new", RW_CREATE | OpenFlags::EXCL, 0o600)
        .expect("create");
    assert_eq!(k.write(n, b"x"), Ok(1));
    assert_eq!(k.list_dir("/d").expect("dir"), ["e", "new"]);
}

#[test]
fn unlinked_open_file_stays_usable() {
    let k = kernel();
    let fd = open(&k, c"/tmp", RW_CREATE);
    k.unlink(c"/tmp").expect("unlink");
    assert!(!k.exists("/tmp"));
    assert_eq!(k.pwrite(fd, b"still here", 0), Ok(10));
    let mut buf = [0u8; 10];
    assert_eq!(k.pread(fd, &mut buf, 0), Ok(10));
    assert_eq!(&buf, b"still here");
    assert_eq!(k.fstat(fd).map(|s| s.links), Ok(0));
    let before = k.fstatfs(fd).expect("statfs").blocks_available;
    k.close(fd).expect("close");
    let root = open(&k, c"/", OpenFlags::RDONLY);
    assert_eq!(k.fstatfs(root).map(|s| s.blocks_available), Ok(before + 1));
}

#[test]
fn sparse_files_fallocate_and_truncate() {
    let k = kernel();
    let fd = open(&k, c"/s", RW_CREATE);
    let mib = 1 << 20;
    assert_eq!(k.pwrite(fd, b"x", mib), Ok(1));
    let st = k.fstat(fd).expect("fstat");
    assert_eq!((st.size_bytes, st.blocks_512), (mib + 1, BS / 512));
    let mut buf = [9u8; 4];
    assert_eq!(k.pread(fd, &mut buf, 100), Ok(4));
    assert_eq!(buf, [0; 4], "holes read as zeros");
    k.ftruncate(fd, 10 * mib).expect("grow");
    assert_eq!(
        k.fstat(fd).map(|s| (s.size_bytes, s.blocks_512)),
        Ok((10 * mib, 8))
    );
    k.fallocate(fd, 0, 0, 2 * BS).expect("allocate");
    assert_eq!(k.fstat(fd).map(|s| s.blocks_512), Ok(24));
    k.fallocate(fd, KEEP_SIZE, 20 * mib, BS).expect("keep size");
    assert_eq!(
        k.fstat(fd).map(|s| (s.size_bytes, s.blocks_512)),
        Ok((10 * mib, 32))
    );
    k.fallocate(fd, PUNCH_HOLE | KEEP_SIZE, 0, BS)
        .expect("punch");
    assert_eq!(
        k.fstat(fd).map(|s| (s.size_bytes, s.blocks_512)),
        Ok((10 * mib, 24))
    );
    k.fallocate(fd, 0, 30 * mib, BS).expect("extend");
    assert_eq!(k.fstat(fd).map(|s| s.size_bytes), Ok(30 * mib + BS));
    k.ftruncate(fd, BS + 2).expect("shrink");
    // Block 0 was punched; block 1 is kept, everything past it freed.
    assert_eq!(
        k.fstat(fd).map(|s| (s.size_bytes, s.blocks_512)),
        Ok((BS + 2, 8))
    );
    assert_eq!(k.fallocate(fd, PUNCH_HOLE, 0, 1), Err(Errno::EOPNOTSUPP));
    let zero_range = crate::sys::falloc::ZERO_RANGE;
    assert_eq!(k.fallocate(fd, zero_range, 0, 1), Err(Errno::EOPNOTSUPP));
    assert_eq!(k.fallocate(fd, 0, 0, 0), Err(Errno::EINVAL));
    let dir = open(&k, c"/", OpenFlags::RDONLY);
    assert_eq!(k.fallocate(dir, 0, 0, 1), Err(Errno::EBADF));
    let (_, wr) = k.pipe().expect("pipe");
    assert_eq!(k.fallocate(wr, 0, 0, 1), Err(Errno::ESPIPE));
}

#[test]
fn full_disk_gives_a_short_write_then_enospc() {
    let mut o = SimOptions::new(1);
    o.capacity_bytes = 4 * BS;
    let k = kernel_with(o);
    let fd = open(&k, c"/big", RW_CREATE);
    assert_eq!(k.write(fd, &vec![1; 3 * BS as usize]), Ok(3 * BS as usize));
    assert_eq!(k.write(fd, &vec![2; 2 * BS as usize]), Ok(BS as usize));
    assert_eq!(k.write(fd, b"more"), Err(Errno::ENOSPC));
    assert_eq!(k.fallocate(fd, 0, 8 * BS, 1), Err(Errno::ENOSPC));
    assert_eq!(k.fstatfs(fd).map(|s| s.blocks_available), Ok(0));
    assert_eq!(k.core().stats().enospc_full, 2);
    // Overwriting allocated blocks still works; freeing space helps.
    assert_eq!(k.pwrite(fd, b"ok", 0), Ok(2));
    k.ftruncate(fd, BS).expect("shrink");
    assert_eq!(k.write(fd, b"more"), Ok(4));
}

#[test]
fn xattrs() {
    let k = kernel();
    k.write_file_durable("/f", b"").expect("setup");
    let mut buf = [0u8; 16];
    let name = c"user.iokernel";
    assert_eq!(k.getxattr(c"/f", name, &mut buf), Err(Errno::ENODATA));
    assert_eq!(k.getxattr(c"/nope", name, &mut buf), Err(Errno::ENOENT));
    assert_eq!(
        k.setxattr(c"/f", name, b"v1", XATTR_REPLACE),
        Err(Errno::ENODATA)
    );
    k.setxattr(c"/f", name, b"v1", XATTR_CREATE)
        .expect("create");
    assert_eq!(
        k.setxattr(c"/f", name, b"v2", XATTR_CREATE),
        Err(Errno::EEXIST)
    );
    assert_eq!(k.getxattr(c"/f", name, &mut []), Ok(2));
    assert_eq!(k.getxattr(c"/f", name, &mut buf[..1]), Err(Errno::ERANGE));
    assert_eq!(k.getxattr(c"/f", name, &mut buf), Ok(2));
    assert_eq!(&buf[..2], b"v1");
    k.setxattr(c"/f", name, b"v22", XATTR_REPLACE)
        .expect("replace");
    assert_eq!(k.getxattr(c"/f", name, &mut buf), Ok(3));
    assert_eq!(k.setxattr(c"/f", name, b"", 4), Err(Errno::EINVAL));
    let big = vec![0; XATTR_SIZE_MAX + 1];
    assert_eq!(k.setxattr(c"/f", name, &big, 0), Err(Errno(libc::E2BIG)));
    assert_eq!(k.getxattr(c"/f", c"", &mut buf), Err(Errno::ERANGE));
    assert_eq!(
        k.getxattr(c"/f", c"lustre.lov", &mut buf),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        k.setxattr(c"/f", c"trusted.x", b"", 0),
        Err(Errno::EOPNOTSUPP)
    );
}

fn lustre_kernel() -> SimKernel {
    let mut o = SimOptions::new(1);
    o.fs_magic = 0x0BD0_0BD0;
    kernel_with(o)
}

fn four_mib() -> crate::sys::fsinfo::StripeBytes {
    crate::sys::fsinfo::StripeBytes::try_from(4u64 << 20).expect("a valid stripe")
}

fn lov_of(k: &SimKernel, path: &CStr) -> (u64, u32) {
    let mut buf = [0u8; 256];
    let n = k.getxattr(path, c"lustre.lov", &mut buf).expect("a layout");
    let layout = crate::sys::fsinfo::parse_lov(&buf[..n]).expect("a v1 layout");
    (layout.stripe_bytes, layout.stripe_count)
}

#[test]
fn lustre_sets_the_asked_layout_on_a_delay_created_file() {
    let k = lustre_kernel();
    let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::LOV_DELAY_CREATE;
    let fd = k.open(c"/f", flags, 0o644).expect("create");
    assert_eq!(
        k.getxattr(c"/f", c"lustre.lov", &mut []),
        Err(Errno::ENODATA)
    );
    let asked = crate::sys::fsinfo::encode_v1(four_mib(), 8);
    k.setxattr(c"/f", c"lustre.lov", &asked, 0).expect("set");
    k.pwrite(fd, b"data", 0).expect("write");
    assert_eq!(lov_of(&k, c"/f"), (4 << 20, 8));
    k.close(fd).expect("close");
}

#[test]
fn lustre_keeps_an_instantiated_layout_yet_answers_success() {
    let k = lustre_kernel();
    let fd = k
        .open(c"/f", OpenFlags::WRONLY | OpenFlags::CREAT, 0o644)
        .expect("create");
    assert_eq!(
        lov_of(&k, c"/f"),
        (1 << 20, 1),
        "the default layout at create"
    );
    let asked = crate::sys::fsinfo::encode_v1(four_mib(), 8);
    k.setxattr(c"/f", c"lustre.lov", &asked, 0)
        .expect("Lustre says yes");
    assert_eq!(lov_of(&k, c"/f"), (1 << 20, 1), "but keeps the layout");
    k.close(fd).expect("close");
    // A delay-created file written before any layout was set gets the
    // default at its first write.
    let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::LOV_DELAY_CREATE;
    let fd = k.open(c"/g", flags, 0o644).expect("create");
    k.pwrite(fd, b"x", 0).expect("write");
    assert_eq!(lov_of(&k, c"/g"), (1 << 20, 1));
    k.close(fd).expect("close");
}

#[test]
fn off_lustre_files_have_no_layout() {
    let k = kernel();
    let fd = k
        .open(c"/f", OpenFlags::WRONLY | OpenFlags::CREAT, 0o644)
        .expect("create");
    k.pwrite(fd, b"x", 0).expect("write");
    assert_eq!(
        k.getxattr(c"/f", c"lustre.lov", &mut []),
        Err(Errno::EOPNOTSUPP)
    );
    k.close(fd).expect("close");
}

// ---- durability ----

#[test]
fn fsync_keeps_data_but_a_new_name_needs_the_dir_fsync() {
    let k = kernel();
    k.write_file_durable("/old", b"v1").expect("setup");
    let old = open(&k, c"/old", OpenFlags::WRONLY | OpenFlags::TRUNC);
    assert_eq!(k.write(old, b"v2"), Ok(2));
    k.fsync(old).expect("fsync");
    let new = open(&k, c"/new", OpenFlags::WRONLY | OpenFlags::CREAT);
    assert_eq!(k.write(new, b"data"), Ok(4));
    k.fsync(new).expect("fsync");
    k.crash();
    assert_eq!(k.read_file("/old").expect("old"), b"v2");
    assert!(!k.exists("/new"), "the directory was never fsynced");
    let new = open(&k, c"/new", OpenFlags::WRONLY | OpenFlags::CREAT);
    assert_eq!(k.write(new, b"data"), Ok(4));
    k.fsync(new).expect("fsync");
    let root = open(&k, c"/", OpenFlags::RDONLY);
    k.fsync(root).expect("dir fsync");
    k.crash();
    assert_eq!(k.read_file("/new").expect("new"), b"data");
    assert_eq!(k.open_fds(), 0);
    assert_eq!(k.core().stats().crashes, 2);
}

#[test]
fn writes_without_fsync_are_lost() {
    let k = kernel();
    k.write_file_durable("/f", b"durable").expect("setup");
    let fd = open(&k, c"/f", OpenFlags::RDWR);
    assert_eq!(k.pwrite(fd, b"DURABLE and more", 0), Ok(16));
    k.fallocate(fd, 0, 0, 8 * BS).expect("fallocate");
    k.crash();
    assert_eq!(k.read_file("/f").expect("file"), b"durable");
    assert_eq!(
        k.write(fd, b"x"),
        Err(Errno::EBADF),
        "fds died with the power"
    );
}

#[test]
fn torn_crash_keeps_a_granularity_aligned_prefix() {
    let data: Vec<u8> = (0..3 * BS + 100).map(|i| (i % 250) as u8 + 1).collect();
    let mut lengths = Vec::new();
    for seed in 0..30 {
        let mut o = SimOptions::new(seed);
        o.crash = CrashModel::Torn {
            granularity_bytes: 4096,
        };
        let k = kernel_with(o);
        k.write_file_durable("/f", b"").expect("setup");
        let fd = open(&k, c"/f", OpenFlags::WRONLY);
        assert_eq!(k.write(fd, &data), Ok(data.len()));
        k.crash();
        let got = k.read_file("/f").expect("file");
        assert!(
            got.len() % 4096 == 0 || got.len() == data.len(),
            "{}",
            got.len()
        );
        assert_eq!(got, data[..got.len()]);
        lengths.push(got.len());
    }
    assert!(
        lengths.iter().any(|&n| n > 0 && n < data.len()),
        "{lengths:?}"
    );
}

#[test]
fn failed_fsync_then_good_fsync_keeps_only_the_later_writes() {
    for seed in 0..200 {
        let k = kernel_with(faulty(seed, &[OpClass::Sync], &[Errno::EIO], 0.5));
        k.write_file_durable("/f", b"0000000000").expect("setup");
        let fd = open(&k, c"/f", OpenFlags::RDWR);
        assert_eq!(k.pwrite(fd, b"AAAAAA", 0), Ok(6));
        if k.fsync(fd) != Err(Errno::EIO) {
            continue;
        }
        assert_eq!(k.read_file("/f").expect("file"), b"AAAAAA0000");
        assert_eq!(k.pwrite(fd, b"BBBB", 4), Ok(4));
        if k.fsync(fd).is_err() {
            continue;
        }
        k.crash();
        assert_eq!(k.read_file("/f").expect("file"), b"0000BBBB00");
        assert_eq!(k.core().stats().fsync_dropped_data, 1);
        return;
    }
    panic!("no seed gave a failed then a successful fsync");
}

#[test]
fn rename_is_durable_only_after_the_directory_fsync() {
    let k = kernel();
    k.write_file_durable("/d/tmp", b"new").expect("setup");
    k.write_file_durable("/d/final", b"old").expect("setup");
    k.rename(c"/d/tmp", c"/d/final").expect("rename");
    assert_eq!(k.read_file("/d/final").expect("final"), b"new");
    k.crash();
    assert_eq!(k.read_file("/d/final").expect("final"), b"old");
    assert_eq!(k.read_file("/d/tmp").expect("tmp"), b"new");
    k.rename(c"/d/tmp", c"/d/final").expect("rename");
    let d = open(&k, c"/d", OpenFlags::RDONLY | OpenFlags::DIRECTORY);
    k.fsync(d).expect("dir fsync");
    k.crash();
    assert_eq!(k.read_file("/d/final").expect("final"), b"new");
    assert!(!k.exists("/d/tmp"));
}

// ---- faults ----

/// A workload touching every call family; errors are part of the trace.
fn workload(k: &SimKernel) {
    let _ = k.mkdir(c"/d", 0o755);
    for i in 0..60u64 {
        let path = CString::new(format!("/d/f{}", i % 7)).expect("path");
        if let Ok(fd) = k.open(&path, RW_CREATE | OpenFlags::APPEND, 0o644) {
            let _ = k.write(fd, &[i as u8; 700]);
            let _ = k.pwrite(fd, b"xyz", i * 10);
            let mut buf = [0u8; 64];
            let _ = k.pread(fd, &mut buf, i);
            let _ = k.fallocate(fd, KEEP_SIZE, 0, 3 * BS);
            if i % 3 == 0 {
                let _ = k.fsync(fd);
            }
            let _ = k.fstat(fd);
            let _ = k.close(fd);
        }
        if i % 5 == 0 {
            let _ = k.rename(&path, c"/d/renamed");
            let _ = k.setxattr(c"/d/renamed", c"user.i", &i.to_le_bytes(), 0);
        }
        if i % 13 == 0 {
            if let Ok(d) = k.open(c"/d", OpenFlags::RDONLY, 0) {
                let _ = k.fsync(d);
                let _ = k.close(d);
            }
        }
        if let Ok((rd, wr)) = k.pipe() {
            let _ = k.write(wr, &[i as u8; 100]);
            let mut buf = [0u8; 100];
            let _ = k.read(rd, &mut buf);
            let _ = k.close(rd);
            let _ = k.close(wr);
        }
        if i % 23 == 22 {
            k.crash();
        }
    }
}

#[test]
fn same_seed_same_trace() {
    let run = |seed| {
        let k = kernel_with(SimOptions::with_faults(seed, 0.2));
        workload(&k);
        let files: Vec<_> = (0..7).map(|i| k.read_file(format!("/d/f{i}"))).collect();
        (
            k.core().trace_hash(),
            k.core().stats(),
            files,
            k.list_dir("/d"),
        )
    };
    let (a, b, c) = (run(11), run(11), run(12));
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    let stats = &a.1;
    assert!(
        !stats.injected.is_empty() && stats.short_writes > 0,
        "{stats:?}"
    );
    assert!(stats.syscalls > 400 && stats.crashes == 2, "{stats:?}");
}

#[test]
fn eintr_is_retried_and_invisible() {
    let classes = OpClass::ALL;
    let flaky = kernel_with(faulty(5, &classes, &[Errno::EINTR], 0.5));
    let calm = kernel();
    workload(&flaky);
    workload(&calm);
    assert!(flaky.core().stats().eintr_retried > 100);
    assert!(flaky
        .core()
        .stats()
        .injected
        .keys()
        .all(|(_, e)| *e == "EINTR"));
    for i in 0..7 {
        let path = format!("/d/f{i}");
        assert_eq!(flaky.read_file(&path), calm.read_file(&path), "{path}");
    }
    assert_eq!(flaky.list_dir("/d"), calm.list_dir("/d"));
}

#[test]
fn injected_open_faults_change_nothing() {
    let k = kernel_with(faulty(1, &[OpClass::Open], &[Errno::EIO], 1.0));
    assert_eq!(k.open(c"/f", RW_CREATE, 0o644), Err(Errno::EIO));
    assert_eq!(k.mkdir(c"/d", 0o755), Err(Errno::EIO));
    assert!(!k.exists("/f") && !k.exists("/d"));
    assert_eq!(k.open_fds(), 0);
    k.write_file_durable("/t", b"keep").expect("setup");
    let trunc = OpenFlags::WRONLY | OpenFlags::TRUNC;
    assert_eq!(k.open(c"/t", trunc, 0), Err(Errno::EIO));
    assert_eq!(k.read_file("/t").expect("file"), b"keep");
    // Real errors come first and are not injected.
    assert_eq!(
        k.open(c"/missing", OpenFlags::RDONLY, 0),
        Err(Errno::ENOENT)
    );
    assert_eq!(k.core().stats().injected.values().sum::<u64>(), 3);
}

#[test]
fn injected_write_and_metadata_faults_change_nothing() {
    let classes = [OpClass::Write, OpClass::Metadata];
    let k = kernel_with(faulty(1, &classes, &[Errno::EIO, Errno::ENOSPC], 1.0));
    k.write_file_durable("/f", b"abc").expect("setup");
    let fd = open(&k, c"/f", OpenFlags::RDWR);
    assert!(k.write(fd, b"XYZW").is_err());
    assert!(k.pwrite(fd, b"XYZW", 1).is_err());
    assert!(k.writev(fd, &[IoSlice::new(b"XY")]).is_err());
    assert!(k.ftruncate(fd, 0).is_err());
    assert!(k.fallocate(fd, 0, 0, 1 << 20).is_err());
    assert!(k.lseek(fd, 2, Whence::Set).is_err());
    assert!(k.rename(c"/f", c"/g").is_err());
    assert!(k.unlink(c"/f").is_err());
    assert!(k.setxattr(c"/f", c"user.x", b"1", 0).is_err());
    assert!(k.fstat(fd).is_err());
    let mut buf = [0u8; 8];
    assert_eq!(k.read(fd, &mut buf), Ok(3), "offset unmoved");
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(k.read_file("/f").expect("file"), b"abc");
    assert!(!k.exists("/g"));
    assert_eq!(k.list_dir("/").expect("root"), ["f"]);
    let root = open(&k, c"/", OpenFlags::RDONLY);
    k.fsync(root).expect("sync class is healthy");
    k.crash();
    assert_eq!(k.read_file("/f").expect("file"), b"abc");
}

#[test]
fn injected_fsync_error_drops_dirty_data() {
    let k = kernel_with(faulty(1, &[OpClass::Sync], &[Errno::EIO], 1.0));
    k.write_file_durable("/f", b"old").expect("setup");
    let fd = open(&k, c"/f", OpenFlags::WRONLY);
    assert_eq!(k.write(fd, b"new"), Ok(3));
    assert_eq!(k.fsync(fd), Err(Errno::EIO));
    assert_eq!(k.fdatasync(fd), Err(Errno::EIO));
    assert_eq!(k.read_file("/f").expect("file"), b"new", "still cached");
    assert_eq!(k.core().stats().fsync_dropped_data, 1);
    k.crash();
    assert_eq!(k.read_file("/f").expect("file"), b"old");
}

#[test]
fn injected_stream_faults_leave_the_bytes_queued() {
    let classes = [OpClass::SocketRead];
    let k = kernel_with(faulty(1, &classes, &[Errno::ECONNRESET], 1.0));
    let (rd, wr) = k.pipe().expect("pipe");
    assert_eq!(k.write(wr, b"queued"), Ok(6));
    let mut buf = [0u8; 8];
    assert_eq!(k.read(rd, &mut buf), Err(Errno::ECONNRESET));
    let out = open(&k, c"/out", RW_CREATE);
    assert_eq!(k.splice(rd, None, out, None, 64), Ok(6));
    assert_eq!(k.read_file("/out").expect("file"), b"queued");
}

#[test]
fn short_io_moves_a_prefix() {
    let mut o = SimOptions::new(3);
    o.short_io_probability = 1.0;
    let k = kernel_with(o);
    let fd = open(&k, c"/f", RW_CREATE);
    let n = k.write(fd, b"0123456789").expect("write");
    assert!((1..10).contains(&n), "{n}");
    assert_eq!(k.read_file("/f").expect("file"), &b"0123456789"[..n]);
    assert_eq!(k.lseek(fd, 0, Whence::Current), Ok(n as u64));
    let mut buf = [b'.'; 10];
    let m = k.pread(fd, &mut buf, 0).expect("read");
    assert!(m >= 1 && (m < n || n == 1), "{m} of {n}");
    assert_eq!(&buf[..m], &b"0123456789"[..m]);
    assert!(buf[m..].iter().all(|&b| b == b'.'));
    let stats = k.core().stats();
    assert_eq!(
        (stats.short_writes, stats.short_reads),
        (1, u64::from(n > 1))
    );
}

// ---- sockets and pipes ----

/// A listener on 127.0.0.1 plus one accepted connection:
/// `(listener, client, server)`.
fn loopback_pair(k: &SimKernel) -> (RawFd, RawFd, RawFd) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = k.socket(&any, SockType::Stream).expect("socket");
    k.set_option(listener, SockOpt::ReuseAddr(true))
        .expect("reuseaddr");
    k.bind(listener, &any).expect("bind");
    k.listen(listener, 16).expect("listen");
    let addr = k.local_addr(listener).expect("local_addr");
    assert_ne!(addr.port(), 0);
    let client = k.socket(&addr, SockType::Stream).expect("socket");
    k.set_option(client, SockOpt::NoDelay(true))
        .expect("nodelay");
    k.connect(client, &addr).expect("connect");
    let (server, peer) = k.accept(listener, false).expect("accept");
    assert_eq!(peer, k.local_addr(client).expect("client addr"));
    assert_eq!(k.peer_addr(client).expect("peer_addr"), addr);
    (listener, client, server)
}

/// Sim sockets never block: where a real blocking socket would wait, the
/// call returns `EAGAIN` (the round trip itself is in the contract suite).
#[test]
fn tcp_loopback_never_blocks_and_closes_every_fd() {
    let k = kernel();
    let (listener, client, server) = loopback_pair(&k);
    assert_eq!(k.send(client, b"hello", MsgFlags::NONE), Ok(5));
    let mut buf = [0u8; 16];
    assert_eq!(k.recv(server, &mut buf[..5], MsgFlags::WAITALL), Ok(5));
    assert_eq!(k.recv(server, &mut buf, MsgFlags::NONE), Err(Errno::EAGAIN));
    assert_eq!(k.write(client, b"via write"), Ok(9));
    assert_eq!(k.read(server, &mut buf), Ok(9));
    assert_eq!(k.read(server, &mut buf), Err(Errno::EAGAIN));
    close_all(&k, &[client, server, listener]);
    assert_eq!(k.open_fds(), 0);
}

#[test]
fn socket_calls_check_the_fd_kind() {
    let k = kernel();
    let fd = open(&k, c"/f", RW_CREATE);
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let mut buf = [0u8; 4];
    assert_eq!(k.recv(fd, &mut buf, MsgFlags::NONE), Err(Errno::ENOTSOCK));
    assert_eq!(k.send(fd, b"x", MsgFlags::NONE), Err(Errno::ENOTSOCK));
    assert_eq!(k.bind(fd, &any), Err(Errno::ENOTSOCK));
    assert_eq!(k.accept(fd, true).map(|(fd, _)| fd), Err(Errno::ENOTSOCK));
    assert_eq!(
        k.set_option(fd, SockOpt::NoDelay(true)),
        Err(Errno::ENOTSOCK)
    );
    assert_eq!(k.set_option(fd, SockOpt::NonBlocking(true)), Ok(()));
    assert_eq!(k.recv(42, &mut buf, MsgFlags::NONE), Err(Errno::EBADF));
    assert_eq!(k.wait_ready(fd, Interest::Readable, -1), Ok(true));
    let udp = k.socket(&any, SockType::Datagram).expect("udp socket");
    assert_eq!(k.pread(udp, &mut buf, 0), Err(Errno::ESPIPE));
    assert_eq!(k.fsync(udp), Err(Errno::EINVAL));
    assert_eq!(k.fstat(udp).map(|st| st.file_type), Ok(FileType::Socket));
    assert_eq!(k.listen(udp, 1), Err(Errno::EOPNOTSUPP));
    let s = k.socket(&any, SockType::Stream).expect("socket");
    assert_eq!(k.pread(s, &mut buf, 0), Err(Errno::ESPIPE));
    assert_eq!(k.lseek(s, 0, Whence::Set), Err(Errno::ESPIPE));
    assert_eq!(k.fsync(s), Err(Errno::EINVAL));
    assert_eq!(k.ftruncate(s, 0), Err(Errno::EINVAL));
    assert_eq!(k.fstat(s).map(|st| st.file_type), Ok(FileType::Socket));
    assert_eq!(k.fstatfs(s).map(|st| st.magic), Ok(SOCKFS_MAGIC));
}

/// An empty sim pipe answers `EAGAIN` where a real blocking pipe would
/// wait (pipes and splice themselves are in the contract suite).
#[test]
fn empty_pipe_never_blocks() {
    let k = kernel();
    let file = open(&k, c"/f", RW_CREATE);
    assert_eq!(k.pwrite(file, b"spliced bytes", 0), Ok(13));
    let (rd, wr) = k.pipe().expect("pipe");
    assert_eq!(k.splice(rd, None, file, None, 1), Err(Errno::EAGAIN));
    let mut buf = [0u8; 5];
    assert_eq!(k.read(rd, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(k.write(wr, b"ab"), Ok(2));
    assert_eq!(k.read(rd, &mut buf), Ok(2));
    assert_eq!(k.read(rd, &mut buf), Err(Errno::EAGAIN));
    close_all(&k, &[wr]);
    assert_eq!(k.read(rd, &mut buf), Ok(0));
    close_all(&k, &[rd, file]);
}
