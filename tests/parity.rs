//! Syscall-level parity: about a hundred seam calls, chosen for their edge
//! cases (bad paths, wrong fd kinds, odd flags, xattr corners, socket calls
//! on files), run on the real kernel in a temp dir and on the simulated
//! kernel with faults off. Every result and errno must be the same.
//!
//! Left out on purpose because the answer depends on the host: permission
//! bits after umask, whether `user.*` xattrs are enabled, and
//! `lseek(dir, SEEK_END)` (file-system specific).

use iokernel::sim::{self, SimOptions};
use iokernel::sys::real::RealKernel;
use iokernel::sys::*;
use std::ffi::CString;
use std::io::IoSlice;

fn run(k: &dyn Kernel, root: &str) -> Vec<String> {
    let p = |s: &str| CString::new(format!("{root}{s}")).unwrap();
    let mut out = Vec::new();
    macro_rules! rec {
        ($e:expr) => {
            out.push(format!("{} => {:?}", stringify!($e), $e));
        };
    }
    let rw = OpenFlags::RDWR | OpenFlags::CREAT;
    rec!(k.mkdir(&p("/d"), 0o777));
    rec!(k.mkdir(&p("/d/sub"), 0o700));
    let f = k.open(&p("/d/f"), rw, 0o666).unwrap();
    rec!(k.write(f, b"0123456789"));
    rec!(k.open(&p("/g/"), rw, 0o644));
    rec!(k.open(&p("/d/f/"), rw, 0o644));
    rec!(k.open(&p("/d/f/"), OpenFlags::RDONLY, 0));
    rec!(k.open(&p("/d"), OpenFlags::RDONLY | OpenFlags::TRUNC, 0));
    rec!(k.open(&p("/d"), OpenFlags::WRONLY, 0));
    rec!(k.open(&p("/d"), OpenFlags::CREAT, 0));
    rec!(k.open(&p("/d/."), rw | OpenFlags::EXCL, 0));
    rec!(k.open(&p("/d/.."), rw, 0));
    rec!(k.open(&p("/d/x"), OpenFlags::CREAT | OpenFlags::DIRECTORY, 0));
    rec!(k.open(&p("/d/f"), OpenFlags::DIRECTORY, 0));
    rec!(k.open(&p("/d/f/.."), OpenFlags::RDONLY, 0));
    rec!(k.open(&p(&format!("/d/{}", "x".repeat(256))), rw, 0));
    rec!(k.open(&p(&format!("/nope/{}", "x".repeat(256))), rw, 0));
    rec!(k.mkdir(&p("/d/."), 0o755));
    rec!(k.mkdir(&p("/d/f/x"), 0o755));
    rec!(k.unlink(&p("/d/.")));
    rec!(k.unlink(&p("/d/f/")));
    rec!(k.unlink(&p("/d/sub/")));
    rec!(k.unlink(&p("/d")));
    rec!(k.rename(&p("/d"), &p("/d/sub/x")));
    rec!(k.rename(&p("/d/sub"), &p("/d/sub")));
    rec!(k.rename(&p("/d/f"), &p("/d/f")));
    rec!(k.rename(&p("/d/f"), &p("/d/sub")));
    rec!(k.rename(&p("/d/sub"), &p("/d/f")));
    rec!(k.rename(&p("/d/f/"), &p("/d/h")));
    rec!(k.rename(&p("/d/f"), &p("/d/h/")));
    rec!(k.rename(&p("/d/."), &p("/d/h")));
    rec!(k.rename(&p("/d/f"), &p("/d/..")));
    rec!(k.mkdir(&p("/d/sub/inner"), 0o755));
    rec!(k.mkdir(&p("/e"), 0o755));
    rec!(k.rename(&p("/e"), &p("/d/sub")));
    rec!(k.rename(&p("/d/sub/inner"), &p("/d")));
    rec!(k.rename(&p("/d/sub/inner"), &p("/e")));
    rec!(k.rename(&p("/missing"), &p("/e")));
    let ro = k.open(&p("/d/f"), OpenFlags::RDONLY, 0).unwrap();
    rec!(k.ftruncate(ro, 0));
    rec!(k.fallocate(ro, 0, 0, 1));
    rec!(k.fallocate(ro, 0, 0, 0));
    rec!(k.fallocate(ro, 0x10, 0, 1));
    rec!(k.fallocate(f, iokernel::sys::falloc::PUNCH_HOLE, 0, 1));
    rec!(k.fallocate(f, 0, 0, 0));
    rec!(k.fallocate(f, 0, i64::MAX as u64, 1));
    rec!(k.pwrite(f, b"xy", i64::MAX as u64));
    rec!(k.pwrite(f, b"xy", i64::MAX as u64 - 1));
    rec!(k.lseek(f, i64::MAX, Whence::End));
    rec!(k.lseek(f, -11, Whence::End));
    rec!(k.lseek(f, 0, Whence::Current));
    rec!(k.write(ro, b"x"));
    let mut buf = [0u8; 4];
    let dir = k.open(&p("/d"), OpenFlags::RDONLY, 0).unwrap();
    rec!(k.read(dir, &mut buf));
    rec!(k.pread(dir, &mut buf, 0));
    rec!(k.read(dir, &mut []));
    rec!(k.fsync(dir));
    rec!(k.ftruncate(dir, 0));
    rec!(k.fallocate(dir, 0, 0, 1));
    rec!(k.lseek(dir, 0, Whence::End));
    rec!(k.openat(f, c"x", OpenFlags::RDONLY, 0));
    rec!(k.openat(9999, c"x", OpenFlags::RDONLY, 0));
    rec!(k.openat(dir, c"", OpenFlags::RDONLY, 0));
    rec!(k.openat(9999, c"", OpenFlags::RDONLY, 0));
    let (rd, wr) = k.pipe().unwrap();
    rec!(k.read(wr, &mut buf));
    rec!(k.write(rd, b"x"));
    rec!(k.pread(wr, &mut buf, 0));
    rec!(k.pread(rd, &mut buf, 0));
    rec!(k.fallocate(wr, 0, 0, 1));
    rec!(k.fallocate(rd, 0, 0, 1));
    rec!(k.ftruncate(wr, 0));
    rec!(k.fsync(wr));
    rec!(k.lseek(rd, 0, Whence::Set));
    rec!(k.recv(rd, &mut buf, MsgFlags::NONE));
    rec!(k.set_option(rd, SockOpt::NonBlocking(true)));
    rec!(k.set_option(rd, SockOpt::NoDelay(true)));
    rec!(k.fstat(rd).map(|s| (
        s.file_type,
        s.permissions,
        s.size_bytes,
        s.blocks_512,
        s.links
    )));
    rec!(k.fstatfs(rd).map(|s| s.magic));
    rec!(k.fadvise(f, 0, 0, Advice::DontNeed));
    rec!(k.fadvise(ro, 4096, 1, Advice::Random));
    rec!(k.fadvise(ro, i64::MAX as u64 + 1, 0, Advice::WillNeed));
    rec!(k.fadvise(rd, 0, 0, Advice::DontNeed));
    rec!(k.fadvise(wr, 0, 0, Advice::Sequential));
    rec!(k.fadvise(9999, 0, 0, Advice::Normal));
    rec!(k.splice(9999, None, wr, None, 0));
    rec!(k.splice(rd, None, wr, None, 1));
    rec!(k.splice(rd, Some(0), f, None, 1));
    rec!(k.splice(f, None, wr, Some(0), 1));
    rec!(k.splice(rd, None, ro, None, 1));
    rec!(k.splice(dir, None, wr, None, 1));
    rec!(k.sendfile(wr, dir, 0, 1));
    rec!(k.sendfile(wr, rd, 0, 1));
    rec!(k.sendfile(ro, f, 0, 1));
    rec!(k.sendfile(rd, f, 0, 1));
    let app = k
        .open(&p("/d/f"), OpenFlags::WRONLY | OpenFlags::APPEND, 0)
        .unwrap();
    rec!(k.sendfile(app, f, 0, 1));
    rec!(k.write(wr, b"ab"));
    rec!(k.splice(rd, None, app, None, 1));
    rec!(k.sendfile(f, f, 0, 0));
    rec!(k.sendfile(f, f, 100, 5));
    rec!(k.writev(f, &[IoSlice::new(b"")]));
    rec!(k.splice(rd, None, f, Some(2), 8));
    rec!(k.pwrite(app, b"appended", 0));
    rec!(k.pread(f, &mut buf, 10));
    rec!(k.fstat(f).map(|s| s.file_type));
    rec!(k.fstat(dir).map(|s| s.file_type));
    rec!(k.fstat(f).map(|s| (s.size_bytes, s.permissions, s.links)));
    rec!(k.fstat(dir).map(|s| (s.permissions, s.links)));
    let sub = k.open(&p("/d/sub"), OpenFlags::RDONLY, 0).unwrap();
    rec!(k.fstat(sub).map(|s| (s.permissions, s.links)));
    rec!(k.getxattr(&p("/d/f"), c"", &mut buf));
    rec!(k.getxattr(&p("/nope"), c"", &mut buf));
    rec!(k.getxattr(&p("/nope"), c"user.x", &mut buf));
    rec!(k.getxattr(&p("/d/f"), c"lustre.lov", &mut buf));
    rec!(k.getxattr(&p("/d/f"), c"bogus", &mut buf));
    rec!(k.getxattr(&p("/d/f"), c"user.x", &mut buf));
    rec!(k.setxattr(&p("/d/f"), c"user.x", b"", 4));
    rec!(k.setxattr(&p("/d/f"), c"user.x", b"v", 3));
    rec!(k.setxattr(&p("/d/f"), c"user.x", &vec![0; 65537], 0));
    rec!(k.setxattr(&p("/nope"), c"user.x", &vec![0; 65537], 0));
    rec!(k.setxattr(&p("/d/f"), c"user.x", b"val", 2));
    rec!(k.setxattr(&p("/d/f"), c"user.x", b"val", 1));
    rec!(k.getxattr(&p("/d/f"), c"user.x", &mut buf[..2]));
    rec!(k.getxattr(&p("/d/f/"), c"user.x", &mut buf));
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let s = k.socket(&any, SockType::Stream).unwrap();
    rec!(k.pread(s, &mut buf, 0));
    rec!(k.ftruncate(s, 0));
    rec!(k.fsync(s));
    rec!(k.fallocate(s, 0, 0, 1));
    rec!(k.lseek(s, 0, Whence::Set));
    rec!(k.fstat(s).map(|s| (s.file_type, s.permissions)));
    rec!(k.fstatfs(s).map(|s| s.magic));
    rec!(k.sendfile(s, f, 0, 1));
    rec!(k.sendfile(f, s, 0, 1));
    rec!(k.send(s, b"x", MsgFlags::NONE));
    rec!(k.recv(s, &mut buf, MsgFlags::NONE));
    rec!(k.shutdown(s, Shutdown::Write));
    rec!(k.listen(f, 1));
    rec!(k.accept(s, true).map(|_| ()));
    rec!(k.take_socket_error(f));
    rec!(k.local_addr(f));
    rec!(k.wait_ready(f, Interest::Readable, 0));
    rec!(k.wait_ready(wr, Interest::Writable, 0));
    rec!(k.wait_ready(rd, Interest::Readable, 0));
    out
}

#[test]
fn the_simulated_kernel_answers_like_the_real_one() {
    let dir = tempfile::tempdir().expect("scratch directory");
    let root = dir.path().to_str().expect("utf-8 temp path");
    let real = run(&RealKernel, root);
    let kernel = sim::new_kernel(SimOptions::new(1)).expect("sim options");
    let simulated = run(&*kernel, "");
    assert_eq!(real.len(), simulated.len());
    let differ: Vec<String> = real
        .iter()
        .zip(&simulated)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("real: {a}\n sim: {b}"))
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} calls differ:\n{}",
        differ.len(),
        real.len(),
        differ.join("\n")
    );
}
