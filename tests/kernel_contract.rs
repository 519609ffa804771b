//! The `Kernel` contract, written once and run over both kernels: every
//! scenario below is a plain function of a [`Scratch`] (a `&dyn Kernel` and
//! a scratch directory on it), and [`contract!`] runs each one on the real
//! kernel in a temp dir (`real::<name>`) and on the simulated kernel with
//! faults off (`sim::<name>`). Both must pass the same assertions.
//!
//! What stays beside one kernel (its own unit tests): the real kernel's
//! FFI details (`O_CLOEXEC`, `O_NONBLOCK` read back with `fcntl`, sockaddr
//! conversions, closed-fd checks that park a duplicate with `fcntl`), and
//! the simulator's model (fault injection, durability and crashes, fd
//! numbering, sizes and magics it reports, sockets and pipes that return
//! `EAGAIN` where a real blocking fd would wait). `tests/parity.rs`
//! compares the two kernels' answers to edge cases call by call.

use iokernel::sim::{new_kernel, SimOptions};
use iokernel::sys::real::RealKernel;
use iokernel::sys::{
    Advice, Errno, FileType, Interest, Kernel, MsgFlags, OpenFlags, Shutdown, SockOpt, SockType,
    Whence,
};
use std::ffi::CString;
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;

/// A kernel and a scratch directory on it: a temp dir on the real kernel,
/// `/` of a fresh simulated machine.
struct Scratch {
    kernel: Arc<dyn Kernel>,
    /// Prefix of every path (`""` on the sim, whose root is empty).
    root: String,
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    fn real() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_str().expect("utf-8 temp path").to_string();
        Scratch {
            kernel: Arc::new(RealKernel),
            root,
            _dir: Some(dir),
        }
    }

    fn sim() -> Scratch {
        let kernel = new_kernel(SimOptions::new(1)).expect("quiet options are valid");
        Scratch {
            kernel,
            root: String::new(),
            _dir: None,
        }
    }

    fn k(&self) -> &dyn Kernel {
        &*self.kernel
    }

    /// `rel` (which starts with `/`) inside the scratch directory.
    fn path(&self, rel: &str) -> CString {
        CString::new(format!("{}{rel}", self.root)).expect("no NUL in test paths")
    }

    /// The scratch directory itself.
    fn dir(&self) -> CString {
        if self.root.is_empty() {
            self.path("/")
        } else {
            self.path("")
        }
    }

    /// Create (or truncate) `/name` for reading and writing.
    fn create(&self, name: &str) -> (CString, RawFd) {
        let path = self.path(&format!("/{name}"));
        let flags = OpenFlags::RDWR | OpenFlags::CREAT | OpenFlags::TRUNC;
        let fd = self.k().open(&path, flags, 0o644).expect("create file");
        (path, fd)
    }

    fn close_all(&self, fds: &[RawFd]) {
        for &fd in fds {
            self.k().close(fd).expect("close");
        }
    }

    /// A listener on 127.0.0.1 plus one accepted connection:
    /// `(listener, client, server)`.
    fn loopback_pair(&self) -> (RawFd, RawFd, RawFd) {
        let k = self.k();
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
}

/// Runs each named scenario on both kernels: `real::<name>` and
/// `sim::<name>`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod real {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Scratch::real());
                }
            )*
        }
        mod sim {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Scratch::sim());
                }
            )*
        }
    };
}

contract!(
    nowait_reads_hit_cached_pages_only,
    open_missing_file_is_enoent,
    write_then_pread_roundtrip_keeps_the_offset,
    pwritev_preadv_across_three_buffers,
    writev_readv_move_the_offset,
    lseek_maps_whence,
    offsets_above_i64_max_are_einval,
    fstat_reports_size_and_type,
    fstatfs_magic_is_nonzero,
    fallocate_extends_or_is_unsupported,
    fadvise_dontneed_keeps_the_data_and_rejects_pipes,
    reading_a_directory_is_eisdir,
    path_calls,
    getxattr_on_missing_attribute,
    setxattr_then_getxattr_when_supported,
    tcp_loopback_roundtrip,
    send_to_a_closed_peer_is_epipe_not_sigpipe,
    sendfile_file_to_socket_leaves_the_file_offset,
    pipe_and_splice,
);

fn open_missing_file_is_enoent(s: &Scratch) {
    let path = s.path("/missing");
    assert_eq!(s.k().open(&path, OpenFlags::RDONLY, 0), Err(Errno::ENOENT));
}

fn write_then_pread_roundtrip_keeps_the_offset(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    assert_eq!(k.write(fd, b"hello world"), Ok(11));
    let mut buf = [0u8; 5];
    assert_eq!(k.pread(fd, &mut buf, 6), Ok(5));
    assert_eq!(&buf, b"world");
    assert_eq!(k.pwrite(fd, b"J", 0), Ok(1));
    assert_eq!(k.lseek(fd, 0, Whence::Current), Ok(11));
    let mut tail = [9u8; 8];
    assert_eq!(k.pread(fd, &mut tail, 8), Ok(3));
    assert_eq!(&tail, b"rld\x09\x09\x09\x09\x09");
    assert_eq!(k.pread(fd, &mut buf, 0), Ok(5));
    assert_eq!(&buf, b"Jello");
    k.close(fd).expect("close");
}

fn pwritev_preadv_across_three_buffers(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    let out = [
        IoSlice::new(b"abc"),
        IoSlice::new(b"defg"),
        IoSlice::new(b"hi"),
    ];
    assert_eq!(k.pwritev(fd, &out, 4), Ok(9));
    let (mut a, mut b, mut c) = ([0u8; 2], [0u8; 5], [0u8; 4]);
    let mut bufs = [
        IoSliceMut::new(&mut a),
        IoSliceMut::new(&mut b),
        IoSliceMut::new(&mut c),
    ];
    assert_eq!(k.preadv(fd, &mut bufs, 4), Ok(9));
    assert_eq!((&a, &b, &c[..2]), (b"ab", b"cdefg", &b"hi"[..]));
    assert_eq!(k.lseek(fd, 0, Whence::Current), Ok(0));
    // The whole file: a hole of zeros, then the three buffers.
    let mut whole = [7u8; 16];
    assert_eq!(k.pread(fd, &mut whole, 0), Ok(13));
    assert_eq!(&whole[..13], b"\0\0\0\0abcdefghi");
    k.close(fd).expect("close");
}

fn writev_readv_move_the_offset(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    assert_eq!(
        k.writev(fd, &[IoSlice::new(b"12"), IoSlice::new(b"345")]),
        Ok(5)
    );
    assert_eq!(k.lseek(fd, 1, Whence::Set), Ok(1));
    let (mut a, mut b) = ([0u8; 1], [0u8; 8]);
    let mut bufs = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
    assert_eq!(k.readv(fd, &mut bufs), Ok(4));
    assert_eq!((&a, &b[..3]), (b"2", &b"345"[..]));
    assert_eq!(k.read(fd, &mut b), Ok(0));
    k.close(fd).expect("close");
}

fn lseek_maps_whence(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    assert_eq!(k.write(fd, b"0123456789"), Ok(10));
    assert_eq!(k.lseek(fd, 0, Whence::End), Ok(10));
    assert_eq!(k.lseek(fd, -3, Whence::Current), Ok(7));
    assert_eq!(k.lseek(fd, 2, Whence::Set), Ok(2));
    assert_eq!(k.lseek(fd, -1, Whence::Set), Err(Errno::EINVAL));
    assert_eq!(k.lseek(fd, i64::MAX, Whence::End), Err(Errno::EINVAL));
    let mut buf = [0u8; 1];
    assert_eq!(k.read(fd, &mut buf), Ok(1));
    assert_eq!(&buf, b"2");
    // Seeking past the end is fine; a write there leaves a hole.
    assert_eq!(k.lseek(fd, 20, Whence::Set), Ok(20));
    assert_eq!(k.write(fd, b"x"), Ok(1));
    assert_eq!(k.fstat(fd).map(|s| s.size_bytes), Ok(21));
    k.close(fd).expect("close");
}

fn offsets_above_i64_max_are_einval(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    let big = i64::MAX as u64 + 1;
    let mut buf = [0u8; 4];
    assert_eq!(k.pread(fd, &mut buf, big), Err(Errno::EINVAL));
    assert_eq!(k.pwrite(fd, b"x", u64::MAX), Err(Errno::EINVAL));
    assert_eq!(
        k.pwritev(fd, &[IoSlice::new(b"x")], big),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        k.preadv(fd, &mut [IoSliceMut::new(&mut buf)], big),
        Err(Errno::EINVAL)
    );
    assert_eq!(k.ftruncate(fd, big), Err(Errno::EINVAL));
    assert_eq!(k.fallocate(fd, 0, big, 1), Err(Errno::EINVAL));
    assert_eq!(k.sendfile(fd, fd, big, 1), Err(Errno::EINVAL));
    assert_eq!(k.splice(fd, Some(big), fd, None, 1), Err(Errno::EINVAL));
    // The end of the range may not pass i64::MAX either.
    assert_eq!(k.pwrite(fd, b"xy", i64::MAX as u64), Err(Errno::EINVAL));
    assert_eq!(k.fallocate(fd, 0, i64::MAX as u64, 1), Err(Errno::EFBIG));
    assert_eq!(k.fstat(fd).map(|st| st.size_bytes), Ok(0));
    k.close(fd).expect("close");
}

fn fstat_reports_size_and_type(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    assert_eq!(k.write(fd, &[7u8; 1000]), Ok(1000));
    k.ftruncate(fd, 1500).expect("ftruncate");
    k.fsync(fd).expect("fsync");
    k.fdatasync(fd).expect("fdatasync");
    let st = k.fstat(fd).expect("fstat");
    assert_eq!(st.size_bytes, 1500);
    assert_eq!(st.file_type, FileType::Regular);
    assert_eq!(st.links, 1);
    assert_ne!(st.inode, 0);
    assert!(st.block_size_bytes > 0);
    let dir_fd = k.open(&s.dir(), OpenFlags::DIRECTORY, 0).expect("open dir");
    assert_eq!(
        k.fstat(dir_fd).map(|s| s.file_type),
        Ok(FileType::Directory)
    );
    s.close_all(&[fd, dir_fd]);
}

fn fstatfs_magic_is_nonzero(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    let fs = k.fstatfs(fd).expect("fstatfs");
    assert_ne!(fs.magic, 0);
    assert!(fs.block_size_bytes > 0);
    k.close(fd).expect("close");
}

fn fallocate_extends_or_is_unsupported(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    match k.fallocate(fd, 0, 0, 8192) {
        Ok(()) => assert_eq!(k.fstat(fd).map(|s| s.size_bytes), Ok(8192)),
        Err(e) => assert_eq!(e, Errno::EOPNOTSUPP, "fallocate"),
    }
    k.close(fd).expect("close");
}

fn fadvise_dontneed_keeps_the_data_and_rejects_pipes(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    assert_eq!(k.pwrite(fd, b"cached bytes", 0), Ok(12));
    k.fsync(fd).expect("fsync");
    assert_eq!(k.fadvise(fd, 0, 0, Advice::DontNeed), Ok(()));
    assert_eq!(k.fadvise(fd, 0, 4096, Advice::Random), Ok(()));
    let mut buf = [0u8; 12];
    assert_eq!(k.pread(fd, &mut buf, 0), Ok(12));
    assert_eq!(&buf, b"cached bytes");
    let (rd, wr) = k.pipe().expect("pipe");
    assert_eq!(k.fadvise(rd, 0, 0, Advice::DontNeed), Err(Errno::ESPIPE));
    k.close(rd).expect("close");
    k.close(wr).expect("close");
    k.close(fd).expect("close");
    assert_eq!(k.fadvise(fd, 0, 0, Advice::DontNeed), Err(Errno::EBADF));
}

fn nowait_reads_hit_cached_pages_only(s: &Scratch) {
    let k = s.k();
    let (_, fd) = s.create("f");
    let data: Vec<u8> = (0..16384u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(k.pwrite(fd, &data, 0), Ok(data.len()));
    let nowait = |len: usize, offset: u64| {
        let mut buf = vec![0u8; len];
        k.preadv_nowait(fd, &mut [IoSliceMut::new(&mut buf)], offset)
            .map(|n| buf[..n].to_vec())
    };
    // Just written: cached.
    assert_eq!(nowait(4096, 4096), Ok(data[4096..8192].to_vec()));
    // At and past end of file: 0, as pread.
    assert_eq!(nowait(10, 16384), Ok(Vec::new()));
    assert_eq!(nowait(10, 1 << 20), Ok(Vec::new()));
    // Dropped: EAGAIN (a file system that keeps its pages in memory, such
    // as tmpfs, may still serve it); a plain read brings it back.
    k.fsync(fd).expect("fsync");
    assert_eq!(k.fadvise(fd, 0, 0, Advice::DontNeed), Ok(()));
    match nowait(4096, 0) {
        Err(Errno::EAGAIN) => {}
        other => assert_eq!(other, Ok(data[..4096].to_vec())),
    }
    let mut buf = vec![0u8; 4096];
    assert_eq!(k.pread(fd, &mut buf, 0), Ok(4096));
    assert_eq!(nowait(4096, 0), Ok(data[..4096].to_vec()));
    // A buffered nowait write: done, refused or unsupported, never wrong.
    match k.pwritev_nowait(fd, &[IoSlice::new(b"xyz")], 100) {
        Ok(3) | Err(Errno::EAGAIN) | Err(Errno::EOPNOTSUPP) => {}
        other => panic!("pwritev_nowait: {other:?}"),
    }
    // Positional calls on a pipe are ESPIPE, with or without RWF_NOWAIT.
    let (rd, wr) = k.pipe().expect("pipe");
    let mut byte = [0u8; 1];
    assert_eq!(
        k.preadv_nowait(rd, &mut [IoSliceMut::new(&mut byte)], 0),
        Err(Errno::ESPIPE)
    );
    assert_eq!(
        k.pwritev_nowait(wr, &[IoSlice::new(b"x")], 0),
        Err(Errno::ESPIPE)
    );
    k.close(rd).expect("close");
    k.close(wr).expect("close");
    k.close(fd).expect("close");
    assert_eq!(nowait(1, 0), Err(Errno::EBADF));
}

fn reading_a_directory_is_eisdir(s: &Scratch) {
    let k = s.k();
    let fd = k
        .open(&s.dir(), OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0)
        .expect("open dir");
    let mut buf = [0u8; 16];
    assert_eq!(k.read(fd, &mut buf), Err(Errno::EISDIR));
    k.close(fd).expect("close");
    let (file, fd) = s.create("f");
    assert_eq!(k.open(&file, OpenFlags::DIRECTORY, 0), Err(Errno::ENOTDIR));
    k.close(fd).expect("close");
}

fn path_calls(s: &Scratch) {
    let k = s.k();
    let sub = s.path("/sub");
    k.mkdir(&sub, 0o755).expect("mkdir");
    assert_eq!(k.mkdir(&sub, 0o755), Err(Errno::EEXIST));
    assert_eq!(k.mkdir(&s.path("/nope/sub"), 0o755), Err(Errno::ENOENT));
    let sub_fd = k.open(&sub, OpenFlags::DIRECTORY, 0).expect("open sub");
    let flags = OpenFlags::WRONLY | OpenFlags::CREAT | OpenFlags::EXCL;
    let fd = k.openat(sub_fd, c"a", flags, 0o600).expect("openat");
    assert_eq!(k.openat(sub_fd, c"a", flags, 0o600), Err(Errno::EEXIST));
    let (a, b) = (s.path("/sub/a"), s.path("/sub/b"));
    k.rename(&a, &b).expect("rename");
    assert_eq!(k.unlink(&a), Err(Errno::ENOENT));
    assert_eq!(k.unlink(&sub), Err(Errno::EISDIR));
    assert_eq!(k.rename(&sub, &s.path("/sub/b/c")), Err(Errno::ENOTDIR));
    assert_eq!(k.rename(&sub, &s.path("/sub/c")), Err(Errno::EINVAL));
    k.unlink(&b).expect("unlink");
    s.close_all(&[fd, sub_fd]);
    let long = s.path(&format!("/{}", "n".repeat(256)));
    assert_eq!(k.mkdir(&long, 0o755), Err(Errno::ENAMETOOLONG));
}

fn getxattr_on_missing_attribute(s: &Scratch) {
    let k = s.k();
    let (path, fd) = s.create("f");
    let mut buf = [0u8; 16];
    let got = k.getxattr(&path, c"user.iokernel.missing", &mut buf);
    assert!(
        matches!(got, Err(Errno::ENODATA | Errno::EOPNOTSUPP)),
        "{got:?}"
    );
    k.close(fd).expect("close");
}

fn setxattr_then_getxattr_when_supported(s: &Scratch) {
    let k = s.k();
    let (path, fd) = s.create("f");
    k.close(fd).expect("close");
    if let Err(e) = k.setxattr(&path, c"user.iokernel", b"v1", 0) {
        assert_eq!(e, Errno::EOPNOTSUPP);
        eprintln!("skipping: user xattrs unsupported in the scratch dir ({e})");
        return;
    }
    assert_eq!(k.getxattr(&path, c"user.iokernel", &mut []), Ok(2));
    let mut short = [0u8; 1];
    assert_eq!(
        k.getxattr(&path, c"user.iokernel", &mut short),
        Err(Errno::ERANGE)
    );
    let mut buf = [0u8; 8];
    assert_eq!(k.getxattr(&path, c"user.iokernel", &mut buf), Ok(2));
    assert_eq!(&buf[..2], b"v1");
}

fn tcp_loopback_roundtrip(s: &Scratch) {
    let k = s.k();
    let (listener, client, server) = s.loopback_pair();
    assert_eq!(k.take_socket_error(client), Ok(None));
    assert_eq!(k.wait_ready(server, Interest::Readable, 0), Ok(false));
    assert_eq!(k.wait_ready(client, Interest::Writable, 0), Ok(true));
    assert_eq!(k.send(client, b"hello", MsgFlags::NONE), Ok(5));
    assert_eq!(k.wait_ready(server, Interest::Readable, 5_000), Ok(true));
    let mut buf = [0u8; 16];
    assert_eq!(k.recv(server, &mut buf[..2], MsgFlags::PEEK), Ok(2));
    assert_eq!(k.recv(server, &mut buf[..5], MsgFlags::WAITALL), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(k.write(client, b"via write"), Ok(9));
    assert_eq!(k.recv(server, &mut buf[..9], MsgFlags::WAITALL), Ok(9));
    assert_eq!(&buf[..9], b"via write");
    assert_eq!(k.send(server, b"back", MsgFlags::NONE), Ok(4));
    assert_eq!(k.wait_ready(client, Interest::Readable, 5_000), Ok(true));
    assert_eq!(k.read(client, &mut buf[..4]), Ok(4));
    assert_eq!(&buf[..4], b"back");
    k.shutdown(client, Shutdown::Write).expect("shutdown");
    assert_eq!(k.recv(server, &mut buf, MsgFlags::NONE), Ok(0));
    s.close_all(&[client, server, listener]);
}

fn send_to_a_closed_peer_is_epipe_not_sigpipe(s: &Scratch) {
    let k = s.k();
    let (listener, client, server) = s.loopback_pair();
    k.shutdown(client, Shutdown::Write).expect("shutdown");
    assert_eq!(k.send(client, b"x", MsgFlags::NONE), Err(Errno::EPIPE));
    s.close_all(&[client, server, listener]);
}

fn sendfile_file_to_socket_leaves_the_file_offset(s: &Scratch) {
    let k = s.k();
    let (_, file) = s.create("f");
    assert_eq!(k.pwrite(file, b"0123456789", 0), Ok(10));
    let (listener, client, server) = s.loopback_pair();
    assert_eq!(k.sendfile(client, file, 3, 5), Ok(5));
    assert_eq!(k.lseek(file, 0, Whence::Current), Ok(0));
    let mut buf = [0u8; 8];
    assert_eq!(k.recv(server, &mut buf[..5], MsgFlags::WAITALL), Ok(5));
    assert_eq!(&buf[..5], b"34567");
    assert_eq!(k.sendfile(client, file, 100, 5), Ok(0));
    assert_eq!(k.sendfile(file, client, 0, 5), Err(Errno::ESPIPE));
    let (_, copy) = s.create("copy");
    assert_eq!(k.sendfile(copy, file, 2, 100), Ok(8));
    assert_eq!(k.lseek(copy, 0, Whence::Current), Ok(8));
    let mut copied = [0u8; 16];
    assert_eq!(k.pread(copy, &mut copied, 0), Ok(8));
    assert_eq!(&copied[..8], b"23456789");
    s.close_all(&[file, client, server, listener, copy]);
}

fn pipe_and_splice(s: &Scratch) {
    let k = s.k();
    let (_, file) = s.create("f");
    assert_eq!(k.pwrite(file, b"spliced bytes", 0), Ok(13));
    let (rd, wr) = k.pipe().expect("pipe");
    assert_eq!(k.splice(file, Some(8), wr, None, 100), Ok(5));
    assert_eq!(k.lseek(file, 0, Whence::Current), Ok(0));
    assert_eq!(k.splice(rd, None, file, Some(20), 5), Ok(5));
    let mut buf = [0u8; 5];
    assert_eq!(k.pread(file, &mut buf, 20), Ok(5));
    assert_eq!(&buf, b"bytes");
    assert_eq!(k.splice(file, Some(0), file, None, 1), Err(Errno::EINVAL));
    assert_eq!(k.splice(rd, Some(0), file, None, 1), Err(Errno::ESPIPE));
    assert_eq!(k.splice(rd, None, wr, None, 1), Err(Errno::EINVAL));
    assert_eq!(k.splice(9999, None, wr, None, 0), Ok(0));
    assert_eq!(k.write(wr, b"ab"), Ok(2));
    assert_eq!(k.read(rd, &mut buf), Ok(2));
    assert_eq!(k.read(wr, &mut buf), Err(Errno::EBADF));
    assert_eq!(k.write(rd, b"x"), Err(Errno::EBADF));
    // Through a pipe into a socket, as the uring fallback for sendfile does.
    let (listener, client, server) = s.loopback_pair();
    assert_eq!(k.splice(file, None, wr, None, 7), Ok(7));
    assert_eq!(k.lseek(file, 0, Whence::Current), Ok(7));
    assert_eq!(k.splice(rd, None, client, None, 7), Ok(7));
    let mut got = [0u8; 7];
    assert_eq!(k.recv(server, &mut got, MsgFlags::WAITALL), Ok(7));
    assert_eq!(&got, b"spliced");
    assert_eq!(k.send(server, b"back", MsgFlags::NONE), Ok(4));
    assert_eq!(k.wait_ready(client, Interest::Readable, 5_000), Ok(true));
    assert_eq!(k.splice(client, None, wr, None, 64), Ok(4));
    assert_eq!(k.read(rd, &mut got), Ok(4));
    assert_eq!(&got[..4], b"back");
    s.close_all(&[wr]);
    assert_eq!(k.read(rd, &mut got), Ok(0));
    assert_eq!(k.fstat(rd).map(|st| st.file_type), Ok(FileType::Fifo));
    s.close_all(&[rd, file, listener, client, server]);
}
