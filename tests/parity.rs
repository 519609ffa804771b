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
use std::io::{IoSlice, IoSliceMut};
use std::path::PathBuf;

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

/// Datagram and Unix socket calls, `sendmsg`/`recvmsg` with fds: results
/// recorded without fd numbers, ports or paths (they differ by host), as
/// comparisons instead.
fn run_sockets(k: &dyn Kernel, root: &str) -> Vec<String> {
    let mut out = Vec::new();
    macro_rules! rec {
        ($e:expr) => {
            out.push(format!("{} => {:?}", stringify!($e), $e));
        };
    }
    let path = |s: &str| PathBuf::from(format!("{root}{s}"));
    let nb = |fd| k.set_option(fd, SockOpt::NonBlocking(true)).map(|()| fd);
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let u = nb(k.socket(&any, SockType::Datagram).unwrap()).unwrap();
    let v = nb(k.socket(&any, SockType::Datagram).unwrap()).unwrap();
    rec!(k.bind(u, &any));
    rec!(k.bind(u, &any));
    rec!(k.bind(v, &"10.1.2.3:0".parse().unwrap()));
    rec!(k.bind(v, &any));
    let (u_addr, v_addr) = (k.local_addr(u).unwrap(), k.local_addr(v).unwrap());
    rec!(k.send(u, b"x", MsgFlags::NONE));
    let mut buf = [0u8; 8];
    rec!(k.recv(v, &mut buf, MsgFlags::NONE));
    rec!(k.peer_addr(u));
    let to = SockAddr::Inet(v_addr);
    rec!(k.sendmsg(u, &[IoSlice::new(b"abc")], Some(&to), &[], MsgFlags::NONE));
    rec!(k.sendmsg(
        u,
        &[IoSlice::new(&vec![0; 70_000])],
        Some(&to),
        &[],
        MsgFlags::NONE
    ));
    rec!(k.recv(v, &mut buf[..1], MsgFlags::PEEK));
    let meta = k.recvmsg(v, &mut [IoSliceMut::new(&mut buf[..2])], 0, MsgFlags::NONE);
    rec!(meta.map(|m| (m.bytes, m.truncated, m.from == Some(SockAddr::Inet(u_addr)))));
    rec!(k.connect(u, &v_addr));
    rec!(k.peer_addr(u).map(|a| a == v_addr));
    rec!(k.listen(u, 1));
    rec!(k.accept(u, true).map(|_| ()));
    rec!(k.accept_unix(u).map(|_| ()));
    rec!(k.lseek(u, 0, Whence::Set));
    rec!(k.fstat(u).map(|s| s.file_type));
    rec!(k.wait_ready(v, Interest::Readable, 0));
    rec!(k.wait_ready(v, Interest::Writable, 0));
    // Unix streams: names, listen, connect, accept.
    let ls = nb(k.unix_socket(SockType::Stream).unwrap()).unwrap();
    let other = nb(k.unix_socket(SockType::Stream).unwrap()).unwrap();
    let dg = nb(k.unix_socket(SockType::Datagram).unwrap()).unwrap();
    rec!(k.bind_unix(ls, &path("/s.sock")));
    rec!(k.bind_unix(other, &path("/s.sock")));
    rec!(k.bind_unix(other, &path(&format!("/{}", "l".repeat(120)))));
    rec!(k.connect_unix(other, &path("/missing.sock")));
    rec!(k.connect_unix(other, &path("/s.sock")));
    rec!(k.accept_unix(ls).map(|_| ()));
    rec!(k.shutdown(ls, Shutdown::Write));
    rec!(k.listen(ls, 4));
    rec!(k.wait_ready(ls, Interest::Readable, 0));
    rec!(k.bind_unix(dg, &path("/d.sock")));
    rec!(k.connect_unix(other, &path("/d.sock")));
    rec!(k.connect_unix(other, &path("/s.sock")));
    rec!(k.wait_ready(ls, Interest::Readable, 0));
    let accepted = k.accept_unix(ls);
    rec!(accepted.as_ref().map(|(_, peer)| peer.clone()));
    let server = accepted.unwrap().0;
    rec!(k
        .sock_name(server)
        .map(|a| a == SockAddr::Unix(path("/s.sock"))));
    rec!(k.sock_name(other).map(|a| a == SockAddr::Unnamed));
    rec!(k
        .sock_name(ls)
        .map(|a| a == SockAddr::Unix(path("/s.sock"))));
    rec!(k
        .peer_name(other)
        .map(|a| a == SockAddr::Unix(path("/s.sock"))));
    rec!(k.peer_name(server).map(|a| a == SockAddr::Unnamed));
    rec!(k.peer_name(ls).map(|_| ()));
    rec!(k.peer_name(dg).map(|_| ()));
    rec!(k.peer_name(u).map(|a| a == SockAddr::Inet(v_addr)));
    rec!(k.connect_unix(other, &path("/s.sock")));
    rec!(k.recv(server, &mut buf, MsgFlags::NONE));
    rec!(k.sendmsg(
        other,
        &[IoSlice::new(b"hi")],
        Some(&SockAddr::Unix(path("/s.sock"))),
        &[],
        MsgFlags::NONE
    ));
    rec!(k.send(other, b"hi", MsgFlags::NONE));
    rec!(k.recv(server, &mut buf, MsgFlags::NONE));
    rec!(k.local_addr(server));
    // Datagram pairs and fds.
    let (a, b) = k.unix_pair(SockType::Datagram).unwrap();
    let (a, b) = (nb(a).unwrap(), nb(b).unwrap());
    rec!(k.sendmsg(a, &[IoSlice::new(b"fd")], None, &[dg], MsgFlags::NONE));
    let meta = k.recvmsg(b, &mut [IoSliceMut::new(&mut buf)], 0, MsgFlags::NONE);
    rec!(meta.map(|m| (m.bytes, m.fds.len(), m.fds_truncated, m.from.is_some())));
    rec!(k.sendmsg(a, &[IoSlice::new(b"fd")], None, &[dg, u], MsgFlags::NONE));
    let meta = k
        .recvmsg(b, &mut [IoSliceMut::new(&mut buf)], 1, MsgFlags::NONE)
        .unwrap();
    rec!((meta.bytes, meta.fds.len(), meta.fds_truncated));
    let passed = meta.fds[0];
    rec!(k.fstat(passed).map(|s| s.file_type));
    rec!(k.close(passed));
    rec!(k.sendmsg(a, &[IoSlice::new(b"x")], None, &[12345], MsgFlags::NONE));
    rec!(k.recv(b, &mut buf, MsgFlags::NONE));
    rec!(k.close(a));
    rec!(k.send(b, b"x", MsgFlags::NONE));
    out
}

#[test]
fn the_simulated_sockets_answer_like_the_real_ones() {
    let dir = tempfile::tempdir().expect("scratch directory");
    let root = dir.path().to_str().expect("utf-8 temp path");
    let real = run_sockets(&RealKernel, root);
    let kernel = sim::new_kernel(SimOptions::new(1)).expect("sim options");
    let simulated = run_sockets(&*kernel, "");
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
