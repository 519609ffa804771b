//! The conformance bodies: one `async fn(PathBuf) -> io::Result<()>` per
//! behaviour, over a fresh scratch directory, using only the public API.
//! `main.rs` runs each on every executor and every simulated driver; the
//! helpers they share live there (`use super::*`).

use super::*;
use iokernel::runtime::{sleep, timeout};
use std::time::Duration;

const SENDFILE_FILE_BYTES: usize = 1 << 20;
const SENDFILE_OFFSET: usize = 1000;
const SENDFILE_BYTES: usize = 300_000;

pub async fn open_missing_file_is_enoent(dir: PathBuf) -> std::io::Result<()> {
    let missing = dir.join("open-missing");
    assert_errno(
        io::open(&missing, OpenFlags::RDONLY, 0).await,
        libc::ENOENT,
        "open of a missing file",
    );
    assert_errno(
        io::open(dir.join("no-dir/child"), RW_CREATE, 0o644).await,
        libc::ENOENT,
        "open O_CREAT under a missing directory",
    );
    Ok(())
}

pub async fn open_create_excl_on_existing_file_is_eexist(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("open-excl");
    let excl = OpenFlags::RDWR | OpenFlags::CREAT | OpenFlags::EXCL;
    let fd = io::open(&path, excl, 0o644).await?;
    io::close(fd).await?;
    assert_errno(
        io::open(&path, excl, 0o644).await,
        libc::EEXIST,
        "open O_CREAT|O_EXCL of an existing file",
    );
    Ok(())
}

pub async fn open_bad_paths_and_modes_fail_with_their_errno(dir: PathBuf) -> std::io::Result<()> {
    let file = dir.join("open-bad-file");
    io::close(create_file(&file, b"x").await?).await?;
    assert_errno(
        io::open(&file, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await,
        libc::ENOTDIR,
        "open O_DIRECTORY of a regular file",
    );
    assert_errno(
        io::open(&dir, OpenFlags::WRONLY, 0).await,
        libc::EISDIR,
        "open of a directory for writing",
    );
    assert_errno(
        io::open(file.join("below-a-file"), OpenFlags::RDONLY, 0).await,
        libc::ENOTDIR,
        "open of a path through a regular file",
    );
    assert_errno(
        io::open(dir.join("nul\0byte"), OpenFlags::RDONLY, 0).await,
        libc::EINVAL,
        "open of a path with an interior NUL",
    );
    Ok(())
}

pub async fn read_on_a_directory_fd_is_eisdir(dir: PathBuf) -> std::io::Result<()> {
    let fd = io::open(&dir, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
    assert_errno(
        io::read(fd, vec![0u8; 16]).await.0,
        libc::EISDIR,
        "read on a directory fd",
    );
    assert_errno(
        io::pread(fd, vec![0u8; 16], 0).await.0,
        libc::EISDIR,
        "pread on a directory fd",
    );
    io::close(fd).await
}

pub async fn ops_on_a_closed_fd_are_ebadf(dir: PathBuf) -> std::io::Result<()> {
    // A number no open can hand out (fds are non-negative): safe even
    // when other tests share the process.
    assert_every_fd_op_is_ebadf(-1, "fd -1").await;
    if std::env::var_os("NEXTEST").is_none() {
        // Another test thread could be handed the closed number, and
        // write/ftruncate/close would then hit that test's file.
        eprintln!("skipping the closed-fd half: it needs a process of its own (run under nextest)");
        return Ok(());
    }
    let fd = create_file(&dir.join("closed-fd"), b"0123456789").await?;
    io::close(fd).await?;
    assert_errno(io::close(fd).await, libc::EBADF, "close twice");
    assert_every_fd_op_is_ebadf(fd, "a closed fd").await;
    Ok(())
}

pub async fn ops_against_the_fd_access_mode_fail(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("access-mode");
    io::close(create_file(&path, b"0123456789").await?).await?;
    let ro = io::open(&path, OpenFlags::RDONLY, 0).await?;
    assert_errno(
        io::write(ro, b"x").await.0,
        libc::EBADF,
        "write to O_RDONLY",
    );
    assert_errno(io::pwrite(ro, b"x", 0).await.0, libc::EBADF, "pwrite");
    assert_errno(
        io::ftruncate(ro, 0).await,
        libc::EINVAL,
        "ftruncate O_RDONLY",
    );
    io::close(ro).await?;
    let wo = io::open(&path, OpenFlags::WRONLY, 0).await?;
    assert_errno(
        io::read(wo, vec![0u8; 4]).await.0,
        libc::EBADF,
        "read O_WRONLY",
    );
    io::close(wo).await?;
    assert_eq!(read_file(&path).await?, b"0123456789", "content untouched");
    Ok(())
}

pub async fn write_and_read_move_the_file_offset(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("offset-rw");
    let fd = io::open(&path, RW_CREATE, 0o644).await?;
    assert_eq!(io::write(fd, b"hello ").await.0?, 6);
    assert_eq!(io::write(fd, b"world").await.0?, 5);
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 11, "after writes");
    let BufResult(n, buf) = io::read(fd, vec![0u8; 8]).await;
    assert_eq!(n?, 0, "read at the end of the file");
    assert!(buf.is_empty(), "an empty read leaves the Vec empty");
    assert_eq!(io::lseek(fd, 0, Whence::Set).await?, 0);
    let BufResult(n, buf) = io::read(fd, vec![0u8; 4]).await;
    assert_eq!((n?, &buf[..]), (4, &b"hell"[..]));
    let BufResult(n, buf) = io::read(fd, vec![0u8; 100]).await;
    assert_eq!(
        (n?, &buf[..]),
        (7, &b"o world"[..]),
        "second read continues"
    );
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 11, "after reads");
    io::close(fd).await?;

    let append = io::open(&path, OpenFlags::WRONLY | OpenFlags::APPEND, 0).await?;
    assert_eq!(io::lseek(append, 0, Whence::Set).await?, 0);
    assert_eq!(io::write(append, b"!").await.0?, 1);
    assert_eq!(io::lseek(append, 0, Whence::Current).await?, 12, "O_APPEND");
    io::close(append).await?;
    assert_eq!(read_file(&path).await?, b"hello world!");
    Ok(())
}

pub async fn pread_and_pwrite_leave_the_file_offset(dir: PathBuf) -> std::io::Result<()> {
    let fd = create_file(&dir.join("offset-p"), b"0123456789").await?;
    assert_eq!(io::lseek(fd, 3, Whence::Set).await?, 3);
    assert_eq!(io::pwrite(fd, b"XY", 8).await.0?, 2);
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 3, "after pwrite");
    let BufResult(n, buf) = io::pread(fd, vec![0u8; 4], 6).await;
    assert_eq!((n?, &buf[..]), (4, &b"67XY"[..]));
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 3, "after pread");
    let BufResult(n, buf) = io::read(fd, vec![0u8; 2]).await;
    assert_eq!((n?, &buf[..]), (2, &b"34"[..]), "read starts at the offset");
    assert_eq!(
        io::pwrite(fd, b"end", 20).await.0?,
        3,
        "pwrite past the end"
    );
    assert_eq!(io::fstat(fd).await?.size_bytes, 23);
    assert_eq!(pread_exact(fd, 13, 10).await?, b"\0\0\0\0\0\0\0\0\0\0end");
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 5);
    io::close(fd).await
}

pub async fn lseek_set_current_end(dir: PathBuf) -> std::io::Result<()> {
    let fd = create_file(&dir.join("lseek"), b"0123456789").await?;
    assert_eq!(io::lseek(fd, 0, Whence::End).await?, 10);
    assert_eq!(io::lseek(fd, -3, Whence::Current).await?, 7);
    assert_eq!(io::lseek(fd, 2, Whence::Set).await?, 2);
    let BufResult(n, buf) = io::read(fd, vec![0u8; 1]).await;
    assert_eq!((n?, &buf[..]), (1, &b"2"[..]));
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 3);
    assert_eq!(io::lseek(fd, -4, Whence::End).await?, 6);
    assert_errno(io::lseek(fd, -1, Whence::Set).await, libc::EINVAL, "Set -1");
    assert_errno(
        io::lseek(fd, -11, Whence::End).await,
        libc::EINVAL,
        "End -11",
    );
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 6, "failed seeks");
    assert_eq!(io::lseek(fd, 5, Whence::End).await?, 15, "past the end");
    assert_eq!(io::write(fd, b"x").await.0?, 1);
    assert_eq!(io::fstat(fd).await?.size_bytes, 16);
    io::close(fd).await?;

    let (_listener, client, server_fd) = loopback_pair().await?;
    let sock = client.as_raw_fd();
    assert_errno(
        io::lseek(sock, 0, Whence::Set).await,
        libc::ESPIPE,
        "socket",
    );
    io::close(server_fd).await
}

pub async fn short_read_at_eof(dir: PathBuf) -> std::io::Result<()> {
    let fd = create_file(&dir.join("short-read"), b"0123456789").await?;
    let BufResult(n, buf) = io::pread(fd, vec![0u8; 4096], 6).await;
    assert_eq!(n?, 4, "pread of 4096 at 6 in a 10-byte file");
    assert_eq!(buf.len(), 4, "the Vec's length is what was read");
    assert_eq!(buf, b"6789");
    let BufResult(n, buf) = io::pread(fd, vec![0u8; 4096], 10).await;
    assert_eq!((n?, buf.len()), (0, 0), "pread at the end");
    let BufResult(n, buf) = io::pread(fd, vec![0u8; 16], 1000).await;
    assert_eq!((n?, buf.len()), (0, 0), "pread past the end");
    assert_eq!(io::lseek(fd, 7, Whence::Set).await?, 7);
    let BufResult(n, buf) = io::read(fd, Vec::with_capacity(64)).await;
    assert_eq!((n?, &buf[..]), (3, &b"789"[..]), "read into spare capacity");
    io::close(fd).await
}

pub async fn readv_and_writev_span_three_buffers(dir: PathBuf) -> std::io::Result<()> {
    let fd = io::open(dir.join("vectored"), RW_CREATE, 0o644).await?;
    let parts: Vec<&'static [u8]> = vec![b"abc", b"defgh", b"ijklmno"];
    let BufResult(n, parts) = io::writev(fd, parts).await;
    assert_eq!(n?, 15);
    assert_eq!(parts.len(), 3, "writev gives its buffers back");
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 15, "writev moves");

    assert_eq!(io::lseek(fd, 0, Whence::Set).await?, 0);
    let bufs = vec![vec![0u8; 4], vec![0u8; 8], vec![0u8; 16]];
    let BufResult(n, bufs) = io::readv(fd, bufs).await;
    assert_eq!(n?, 15);
    assert_eq!(bufs[0], b"abcd");
    assert_eq!(bufs[1], b"efghijkl");
    assert_eq!(bufs[2], b"mno", "the third Vec holds the 3 bytes left");
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 15, "readv moves");

    // Data that ends inside the second buffer.
    assert_eq!(io::lseek(fd, 9, Whence::Set).await?, 9);
    let bufs = vec![vec![0u8; 2], vec![0u8; 8], vec![0u8; 4]];
    let BufResult(n, bufs) = io::readv(fd, bufs).await;
    assert_eq!(n?, 6);
    let lens: Vec<usize> = bufs.iter().map(Vec::len).collect();
    assert_eq!(lens, [2, 4, 0], "filled lengths");
    assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"jk"[..], &b"lmno"[..]));

    // At the end: every buffer comes back empty.
    let BufResult(n, bufs) = io::readv(fd, vec![vec![0u8; 3], vec![0u8; 3]]).await;
    assert_eq!(n?, 0);
    assert!(bufs.iter().all(Vec::is_empty), "readv at the end");
    io::close(fd).await
}

pub async fn preadv_and_pwritev_span_three_buffers(dir: PathBuf) -> std::io::Result<()> {
    let fd = create_file(&dir.join("positional-vectored"), b"0123456789").await?;
    assert_eq!(io::lseek(fd, 4, Whence::Set).await?, 4);
    let parts = vec![b"XYZ".to_vec(), b"12345".to_vec(), b"!".to_vec()];
    let BufResult(n, _) = io::pwritev(fd, parts, 20).await;
    assert_eq!(n?, 9, "pwritev past the end");
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 4, "after pwritev");
    assert_eq!(io::fstat(fd).await?.size_bytes, 29);

    let bufs = vec![vec![0u8; 3], vec![0u8; 10], vec![0u8; 5]];
    let BufResult(n, bufs) = io::preadv(fd, bufs, 22).await;
    assert_eq!(n?, 7, "7 bytes from 22 to the end at 29");
    let lens: Vec<usize> = bufs.iter().map(Vec::len).collect();
    assert_eq!(lens, [3, 4, 0], "the data ends inside the second buffer");
    assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"Z12"[..], &b"345!"[..]));

    let bufs = vec![vec![0xffu8; 8], vec![0xffu8; 4], vec![0xffu8; 32]];
    let BufResult(n, bufs) = io::preadv(fd, bufs, 6).await;
    assert_eq!(n?, 23);
    assert_eq!(bufs[0], b"6789\0\0\0\0", "the hole reads as zeros");
    assert_eq!(bufs[1], b"\0\0\0\0");
    assert_eq!(bufs[2], b"\0\0XYZ12345!");

    let BufResult(n, bufs) = io::preadv(fd, vec![vec![0u8; 4]; 3], 29).await;
    assert_eq!(n?, 0);
    assert!(bufs.iter().all(Vec::is_empty), "preadv at the end");
    assert_eq!(io::lseek(fd, 0, Whence::Current).await?, 4, "after preadv");
    io::close(fd).await
}

pub async fn boxed_static_string_and_slice_buffers(dir: PathBuf) -> std::io::Result<()> {
    let fd = io::open(dir.join("buffers"), RW_CREATE, 0o644).await?;
    let boxed: Box<[u8]> = Box::from(&b"boxed|"[..]);
    assert_eq!(io::write(fd, boxed).await.0?, 6);
    assert_eq!(io::write(fd, "static str|").await.0?, 11);
    assert_eq!(io::write(fd, String::from("string|")).await.0?, 7);
    assert_eq!(io::write(fd, b"array|").await.0?, 6, "&'static [u8; N]");
    let slice: &'static [u8] = b"slice|";
    assert_eq!(io::write(fd, slice).await.0?, 6);
    let BufResult(n, back) = io::write(fd, Slice::new(b"0123456789".to_vec(), 6)).await;
    assert_eq!(n?, 4, "a Slice writes from its start");
    assert_eq!(back.into_inner(), b"0123456789");
    let want: &[u8] = b"boxed|static str|string|array|slice|6789";
    assert_eq!(io::fstat(fd).await?.size_bytes, want.len() as u64);

    // A boxed slice keeps its length; the count says what was read.
    let boxed: Box<[u8]> = vec![b'.'; 10].into_boxed_slice();
    let BufResult(n, boxed) = io::pread(fd, boxed, 36).await;
    assert_eq!(n?, 4);
    assert_eq!(&boxed[..], b"6789......");

    // A window of a Vec: filled up to start + n.
    let window = SliceMut::new(vec![b'-'; 8], 2, 7);
    let BufResult(n, window) = io::pread(fd, window, 0).await;
    assert_eq!(n?, 5);
    assert_eq!(window.into_inner(), b"--boxed");

    // AlignedBuf without O_DIRECT: length follows the count.
    let mut aligned = AlignedBuf::new(64, 512);
    aligned.extend_from_slice(b"aligned")?;
    assert_eq!(io::pwrite(fd, aligned, 100).await.0?, 7);
    let BufResult(n, aligned) = io::pread(fd, AlignedBuf::new(64, 4096), 98).await;
    assert_eq!(n?, 9);
    assert_eq!(aligned.len(), 9);
    assert_eq!(aligned.as_bytes(), b"\0\0aligned");
    io::close(fd).await
}

pub async fn aligned_buf_with_and_without_o_direct(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("direct");
    let data = pattern(16384, 3);
    let fd = create_file(&path, &data).await?;
    io::fsync(fd).await?;
    io::close(fd).await?;
    let fd = match io::open(&path, OpenFlags::RDWR | OpenFlags::DIRECT, 0).await {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!("skipping O_DIRECT: the scratch file system refuses it ({e})");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let BufResult(n, buf) = io::pread(fd, AlignedBuf::new(8192, 4096), 4096).await;
    assert_eq!(n?, 8192, "O_DIRECT pread of 8192 at 4096");
    assert_eq!(buf.len(), 8192);
    assert_same_bytes(buf.as_bytes(), &data[4096..12288], "O_DIRECT pread");

    let mut block = AlignedBuf::new(4096, 4096);
    block.extend_from_slice(&pattern(4096, 99))?;
    assert_eq!(
        io::pwrite(fd, block, 8192).await.0?,
        4096,
        "O_DIRECT pwrite"
    );
    let BufResult(n, buf) = io::pread(fd, AlignedBuf::new(4096, 4096), 8192).await;
    assert_eq!(n?, 4096);
    assert_same_bytes(buf.as_bytes(), &pattern(4096, 99), "O_DIRECT read back");

    let BufResult(n, buf) = io::pread(fd, AlignedBuf::new(8192, 4096), 12288).await;
    assert_eq!(n?, 4096, "O_DIRECT short read at the end");
    assert_eq!(buf.len(), 4096);
    assert_same_bytes(buf.as_bytes(), &data[12288..], "O_DIRECT tail");
    io::close(fd).await
}

pub async fn fsync_and_fdatasync(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("sync");
    let fd = create_file(&path, b"durable").await?;
    io::fsync(fd).await?;
    assert_eq!(io::pwrite(fd, b"!", 7).await.0?, 1);
    io::fdatasync(fd).await?;
    io::close(fd).await?;
    let ro = io::open(&path, OpenFlags::RDONLY, 0).await?;
    io::fsync(ro).await?;
    io::close(ro).await?;
    let dir_fd = io::open(&dir, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
    io::fsync(dir_fd).await?;
    io::close(dir_fd).await?;
    assert_eq!(read_file(&path).await?, b"durable!");
    Ok(())
}

pub async fn ftruncate_grows_and_shrinks(dir: PathBuf) -> std::io::Result<()> {
    let fd = create_file(&dir.join("truncate"), b"0123456789").await?;
    io::ftruncate(fd, 4096).await?;
    assert_eq!(io::fstat(fd).await?.size_bytes, 4096, "grown");
    assert_eq!(pread_exact(fd, 4086, 10).await?, vec![0u8; 4086], "zeros");
    io::ftruncate(fd, 3).await?;
    assert_eq!(io::fstat(fd).await?.size_bytes, 3, "shrunk");
    let BufResult(n, buf) = io::pread(fd, vec![0u8; 10], 0).await;
    assert_eq!((n?, &buf[..]), (3, &b"012"[..]));
    io::ftruncate(fd, 0).await?;
    assert_eq!(io::fstat(fd).await?.size_bytes, 0, "emptied");
    io::close(fd).await
}

pub async fn fallocate_grows_the_file(dir: PathBuf) -> std::io::Result<()> {
    let fd = io::open(dir.join("fallocate"), RW_CREATE, 0o644).await?;
    match io::fallocate(fd, 0, 0, 1 << 20).await {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            eprintln!("skipping fallocate: the scratch file system lacks it ({e})");
            return io::close(fd).await;
        }
        Err(e) => return Err(e),
    }
    let stat = io::fstat(fd).await?;
    assert_eq!(stat.size_bytes, 1 << 20, "fallocate sets the size");
    assert!(stat.blocks_512 >= 2048, "space allocated: {stat:?}");
    let keep = libc::FALLOC_FL_KEEP_SIZE;
    io::fallocate(fd, keep, 1 << 20, 1 << 20).await?;
    assert_eq!(io::fstat(fd).await?.size_bytes, 1 << 20, "KEEP_SIZE");
    assert_errno(io::fallocate(fd, 0, 0, 0).await, libc::EINVAL, "len 0");
    assert_eq!(
        pread_exact(fd, 16, 4096).await?,
        [0u8; 16],
        "reads as zeros"
    );
    io::close(fd).await
}

pub async fn fstat_reports_size_type_and_permissions(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("fstat");
    let fd = io::open(&path, RW_CREATE, 0o600).await?;
    pwrite_all(fd, b"0123456789".to_vec(), 0).await?;
    let stat = io::fstat(fd).await?;
    assert_eq!(stat.size_bytes, 10);
    assert_eq!(stat.file_type, FileType::Regular);
    assert_eq!(stat.permissions, 0o600);
    assert_eq!(stat.links, 1);
    assert!(stat.block_size_bytes > 0, "st_blksize: {stat:?}");
    let again = io::open(&path, OpenFlags::RDONLY, 0).await?;
    assert_eq!(io::fstat(again).await?.inode, stat.inode, "same file");
    io::close(again).await?;
    io::close(fd).await?;

    let dir_fd = io::open(&dir, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
    assert_eq!(io::fstat(dir_fd).await?.file_type, FileType::Directory);
    io::close(dir_fd).await?;

    let listener = TcpListener::bind(loopback())?;
    let sock = io::fstat(listener.as_raw_fd()).await?;
    assert_eq!(sock.file_type, FileType::Socket);
    Ok(())
}

pub async fn rename_moves_the_name(dir: PathBuf) -> std::io::Result<()> {
    let (old, new) = (dir.join("rename-old"), dir.join("rename-new"));
    io::close(create_file(&old, b"moved content").await?).await?;
    io::rename(&old, &new).await?;
    assert_errno(
        io::open(&old, OpenFlags::RDONLY, 0).await,
        libc::ENOENT,
        "open of the old name",
    );
    assert_eq!(read_file(&new).await?, b"moved content");

    let other = dir.join("rename-other");
    io::close(create_file(&other, b"replacement").await?).await?;
    io::rename(&other, &new).await?;
    assert_eq!(
        read_file(&new).await?,
        b"replacement",
        "replaces the target"
    );
    assert_errno(io::rename(&old, &new).await, libc::ENOENT, "rename missing");
    Ok(())
}

pub async fn unlink_removes_the_name(dir: PathBuf) -> std::io::Result<()> {
    let path = dir.join("unlink");
    let fd = create_file(&path, b"still readable").await?;
    io::unlink(&path).await?;
    assert_errno(
        io::open(&path, OpenFlags::RDONLY, 0).await,
        libc::ENOENT,
        "open after unlink",
    );
    assert_eq!(pread_exact(fd, 14, 0).await?, b"still readable", "open fd");
    assert_eq!(io::fstat(fd).await?.links, 0);
    io::close(fd).await?;
    assert_errno(io::unlink(&path).await, libc::ENOENT, "unlink twice");
    let sub = dir.join("unlink-dir");
    io::mkdir(&sub, 0o755).await?;
    assert_errno(
        io::unlink(&sub).await,
        libc::EISDIR,
        "unlink of a directory",
    );
    Ok(())
}

pub async fn mkdir_creates_a_directory_once(dir: PathBuf) -> std::io::Result<()> {
    let sub = dir.join("mkdir");
    io::mkdir(&sub, 0o755).await?;
    let fd = io::open(&sub, OpenFlags::RDONLY | OpenFlags::DIRECTORY, 0).await?;
    assert_eq!(io::fstat(fd).await?.file_type, FileType::Directory);
    io::close(fd).await?;
    assert_errno(io::mkdir(&sub, 0o755).await, libc::EEXIST, "mkdir twice");
    assert_errno(
        io::mkdir(dir.join("mkdir-missing/child"), 0o755).await,
        libc::ENOENT,
        "mkdir under a missing parent",
    );
    let inside = sub.join("inside");
    io::close(create_file(&inside, b"in a new dir").await?).await?;
    assert_eq!(read_file(&inside).await?, b"in a new dir");
    Ok(())
}

pub async fn sendfile_file_to_file(dir: PathBuf) -> std::io::Result<()> {
    let data = pattern(64 * 1024, 5);
    let src = create_file(&dir.join("sendfile-file-src"), &data).await?;
    let dst_path = dir.join("sendfile-file-dst");
    let dst = io::open(&dst_path, RW_CREATE, 0o644).await?;
    let mut copied = 0;
    while copied < 5000 {
        let n = io::sendfile(dst, src, (1000 + copied) as u64, 5000 - copied).await?;
        assert!(n > 0, "sendfile made no progress at {copied}");
        copied += n;
    }
    assert_eq!(
        io::lseek(src, 0, Whence::Current).await?,
        0,
        "source offset"
    );
    assert_eq!(
        io::lseek(dst, 0, Whence::Current).await?,
        5000,
        "dest offset"
    );
    let n = io::sendfile(dst, src, data.len() as u64, 100).await?;
    assert_eq!(n, 0, "sendfile from the end of the source");
    io::close(dst).await?;
    io::close(src).await?;
    let copy = read_file(&dst_path).await?;
    assert_same_bytes(&copy, &data[1000..6000], "file to file");
    Ok(())
}

pub async fn sendfile_file_to_socket_in_turns(dir: PathBuf) -> std::io::Result<()> {
    let data = pattern(SENDFILE_FILE_BYTES, 7);
    let file = create_file(&dir.join("sendfile-turns"), &data).await?;
    let (_listener, client, server_fd) = loopback_pair().await?;
    // Send at most 64 KiB, then drain it all: the socket always has room,
    // so one thread can play both sides.
    let mut received = Vec::with_capacity(SENDFILE_BYTES);
    while received.len() < SENDFILE_BYTES {
        let at = SENDFILE_OFFSET + received.len();
        let want = (SENDFILE_BYTES - received.len()).min(64 * 1024);
        let n = io::sendfile(server_fd, file, at as u64, want).await?;
        assert!(n > 0 && n <= want, "sendfile of {want} at {at} gave {n}");
        received.extend(recv_exact(client.as_raw_fd(), n).await?);
    }
    let want = &data[SENDFILE_OFFSET..SENDFILE_OFFSET + SENDFILE_BYTES];
    assert_same_bytes(&received, want, "sendfile in turns");
    assert_eq!(io::lseek(file, 0, Whence::Current).await?, 0, "file offset");
    io::close(server_fd).await?;
    let BufResult(n, _) = io::recv(client.as_raw_fd(), vec![0u8; 16]).await;
    assert_eq!(n?, 0, "nothing more after the server closes");
    io::close(file).await
}

pub async fn sendfile_file_to_socket_with_a_concurrent_reader(dir: PathBuf) -> std::io::Result<()> {
    let data = pattern(SENDFILE_FILE_BYTES, 11);
    let file = create_file(&dir.join("sendfile-concurrent"), &data).await?;
    let (_listener, client, server_fd) = loopback_pair().await?;
    let reader = spawn_peer(
        "sendfile-reader",
        recv_exact(client.as_raw_fd(), SENDFILE_BYTES),
    );
    let mut sent = 0;
    while sent < SENDFILE_BYTES {
        let at = (SENDFILE_OFFSET + sent) as u64;
        let n = io::sendfile(server_fd, file, at, SENDFILE_BYTES - sent).await?;
        assert!(n > 0, "sendfile made no progress after {sent} bytes");
        sent += n;
    }
    assert_eq!(sent, SENDFILE_BYTES, "never more than asked");
    let received = reader.join().await?;
    let want = &data[SENDFILE_OFFSET..SENDFILE_OFFSET + SENDFILE_BYTES];
    assert_same_bytes(&received, want, "sendfile to a concurrent reader");
    assert_eq!(io::lseek(file, 0, Whence::Current).await?, 0, "file offset");
    io::close(server_fd).await?;
    io::close(file).await
}

pub async fn accept_send_recv_ping_pong_in_turns(_dir: PathBuf) -> std::io::Result<()> {
    let (_listener, client, server_fd) = loopback_pair().await?;
    client.set_nodelay(true)?;
    let client_fd = client.as_raw_fd();
    for i in 0..100 {
        send_all(client_fd, format!("ping {i:03}").into_bytes()).await?;
        let ping = recv_exact(server_fd, 8).await?;
        assert_eq!(ping, format!("ping {i:03}").as_bytes(), "round {i}");
        send_all(server_fd, format!("pong {i:03}").into_bytes()).await?;
        let pong = recv_exact(client_fd, 8).await?;
        assert_eq!(pong, format!("pong {i:03}").as_bytes(), "round {i}");
    }
    io::close(server_fd).await
}

pub async fn accept_send_recv_ping_pong_concurrently(_dir: PathBuf) -> std::io::Result<()> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let server = spawn_peer("pong", async move {
        let (fd, _) = io::accept(listener.as_raw_fd()).await?;
        for i in 0..100 {
            let ping = recv_exact(fd, 8).await?;
            assert_eq!(ping, format!("ping {i:03}").as_bytes(), "server round {i}");
            send_all(fd, format!("pong {i:03}").into_bytes()).await?;
        }
        let BufResult(n, _) = io::recv(fd, vec![0u8; 8]).await;
        assert_eq!(n?, 0, "the client shut down");
        io::close(fd).await?;
        drop(listener);
        Ok::<_, std::io::Error>(())
    });
    let client = TcpStream::connect(addr).await?;
    client.set_nodelay(true)?;
    for i in 0..100 {
        send_all(client.as_raw_fd(), format!("ping {i:03}").into_bytes()).await?;
        let pong = recv_exact(client.as_raw_fd(), 8).await?;
        assert_eq!(pong, format!("pong {i:03}").as_bytes(), "client round {i}");
    }
    client.shutdown(Shutdown::Write).await?;
    server.join().await
}

pub async fn recv_returns_zero_after_the_peer_shuts_down(_dir: PathBuf) -> std::io::Result<()> {
    let (_listener, client, server_fd) = loopback_pair().await?;
    client.write_all(b"bye").await.0?;
    client.shutdown(Shutdown::Write).await?;
    assert_eq!(recv_exact(server_fd, 3).await?, b"bye");
    for attempt in 0..2 {
        let BufResult(n, buf) = io::recv(server_fd, vec![0u8; 16]).await;
        assert_eq!(n?, 0, "recv after the peer's shutdown, attempt {attempt}");
        assert!(buf.is_empty(), "the Vec comes back empty");
    }
    // The other direction still works.
    send_all(server_fd, b"ack".to_vec()).await?;
    assert_eq!(recv_exact(client.as_raw_fd(), 3).await?, b"ack");
    io::close(server_fd).await?;
    let BufResult(n, _) = client.read(vec![0u8; 16]).await;
    assert_eq!(n?, 0, "recv after the peer closed");
    Ok(())
}

pub async fn send_to_a_closed_peer_fails_with_epipe_or_econnreset(
    _dir: PathBuf,
) -> std::io::Result<()> {
    let (_listener, client, server_fd) = loopback_pair().await?;
    io::close(server_fd).await?;
    let chunk: &'static [u8] = &[b'z'; 1024];
    for attempt in 0..1000 {
        match io::send(client.as_raw_fd(), chunk).await.0 {
            Ok(n) => assert!(n > 0, "send {attempt} sent 0 bytes"),
            Err(e) => {
                let errno = e.raw_os_error();
                assert!(
                    errno == Some(libc::EPIPE) || errno == Some(libc::ECONNRESET),
                    "send {attempt} to a closed peer: expected EPIPE or ECONNRESET, got {e:?}"
                );
                return Ok(());
            }
        }
    }
    panic!("1000 sends to a closed peer all succeeded");
}

pub async fn connect_without_a_listener_is_econnrefused(_dir: PathBuf) -> std::io::Result<()> {
    let addr = TcpListener::bind(loopback())?.local_addr()?;
    // The listener is gone: nothing listens on `addr` now.
    assert_errno(
        TcpStream::connect(addr).await.map(|s| s.as_raw_fd()),
        libc::ECONNREFUSED,
        "connect to a port with no listener",
    );
    Ok(())
}

pub async fn bind_to_a_port_in_use_is_eaddrinuse(_dir: PathBuf) -> std::io::Result<()> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    assert_errno(
        TcpListener::bind(addr).map(|l| l.as_raw_fd()),
        libc::EADDRINUSE,
        "bind to a port another listener holds",
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Cancellation races: a timed-out recv or accept loses nothing
// ---------------------------------------------------------------------------

/// Rounds per race body: enough that some cancels meet a delivery.
const CANCEL_ROUNDS: usize = 200;
const CANCEL_BYTES: usize = 1000;
/// How long a follow-up op may wait before the bytes or the connection
/// count as lost (a lost one would make it wait forever).
const LOST_AFTER: Duration = Duration::from_secs(5);

/// Round `round`'s timeout of the first op and delay of the peer's send or
/// connect, both 0 to 299 us, varied apart so the peer's bytes land before,
/// around and after the cancel.
fn race_delays(round: usize) -> (Duration, Duration) {
    let micros = |step: usize| Duration::from_micros((round * step % 300) as u64);
    (micros(37), micros(53))
}

fn lost(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what)
}

/// In the sync fallback an op runs to completion on its first poll, so
/// nothing can cancel it: say so, and check only the plain exchange.
pub(crate) fn no_cancellation_without_a_runtime(what: &str) -> bool {
    if in_runtime() {
        return false;
    }
    eprintln!("{what}: no cancellation race in the sync fallback (an op completes on its first poll); checking the plain exchange");
    true
}

pub async fn recv_cancelled_by_a_timeout_loses_no_bytes(_dir: PathBuf) -> std::io::Result<()> {
    let (_listener, client, server_fd) = loopback_pair().await?;
    let client_fd = client.as_raw_fd();
    if no_cancellation_without_a_runtime("recv") {
        let data = pattern(CANCEL_BYTES, 1);
        send_all(client_fd, data.clone()).await?;
        assert_same_bytes(&recv_exact(server_fd, CANCEL_BYTES).await?, &data, "recv");
        return io::close(server_fd).await;
    }
    let kept_before = io::kept_after_cancel();
    let (mut timed_out, mut completed) = (0, 0);
    for round in 0..CANCEL_ROUNDS {
        let data = pattern(CANCEL_BYTES, round as u8);
        let (limit, delay) = race_delays(round);
        let sent = data.clone();
        let sender = spawn_peer("cancel-send", async move {
            sleep(delay).await;
            send_all(client_fd, sent).await
        });
        let first = timeout(limit, io::recv(server_fd, vec![0u8; CANCEL_BYTES]));
        let mut got = match first.await {
            Ok(BufResult(n, buf)) => {
                completed += 1;
                buf[..n?].to_vec()
            }
            Err(_) => {
                timed_out += 1;
                Vec::new()
            }
        };
        sender.join().await?;
        let rest = timeout(LOST_AFTER, recv_exact(server_fd, CANCEL_BYTES - got.len()))
            .await
            .map_err(|_| lost(format!("round {round}: bytes sent after a timed-out recv never arrived (had {} of {CANCEL_BYTES})", got.len())))??;
        got.extend(rest);
        assert_same_bytes(
            &got,
            &data,
            &format!("round {round}: bytes around a timed-out recv"),
        );
    }
    let kept = io::kept_after_cancel() - kept_before;
    eprintln!("recv races: {timed_out} timed out, {completed} completed, {kept} late receives kept for the next recv");
    assert!(timed_out > 0, "no round timed out: the race was never run");
    io::close(server_fd).await
}

pub async fn accept_cancelled_by_a_timeout_loses_no_connection(
    _dir: PathBuf,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let listen_fd = listener.as_raw_fd();
    if no_cancellation_without_a_runtime("accept") {
        let client = TcpStream::connect(addr).await?;
        send_all(client.as_raw_fd(), b"hello".to_vec()).await?;
        let (fd, _) = io::accept(listen_fd).await?;
        assert_same_bytes(&recv_exact(fd, 5).await?, b"hello", "accept");
        return io::close(fd).await;
    }
    let kept_before = io::kept_after_cancel();
    let (mut timed_out, mut completed) = (0, 0);
    for round in 0..CANCEL_ROUNDS {
        let (limit, delay) = race_delays(round);
        let id = pattern(8, round as u8);
        let sent = id.clone();
        let connector = spawn_peer("cancel-connect", async move {
            sleep(delay).await;
            let stream = TcpStream::connect(addr).await?;
            send_all(stream.as_raw_fd(), sent).await?;
            Ok::<_, std::io::Error>(stream)
        });
        let fd = match timeout(limit, io::accept(listen_fd)).await {
            Ok(accepted) => {
                completed += 1;
                accepted?.0
            }
            Err(_) => {
                timed_out += 1;
                let next = timeout(LOST_AFTER, io::accept(listen_fd)).await;
                next.map_err(|_| lost(format!("round {round}: the connection made after a timed-out accept was never accepted")))??.0
            }
        };
        let stream = connector.join().await?;
        let got = timeout(LOST_AFTER, recv_exact(fd, id.len()))
            .await
            .map_err(|_| lost(format!("round {round}: no data on the accepted connection")))??;
        assert_same_bytes(
            &got,
            &id,
            &format!("round {round}: the connection after a timed-out accept"),
        );
        io::close(fd).await?;
        drop(stream);
    }
    let kept = io::kept_after_cancel() - kept_before;
    eprintln!("accept races: {timed_out} timed out, {completed} completed, {kept} late connections kept for the next accept");
    assert!(timed_out > 0, "no round timed out: the race was never run");
    Ok(())
}

/// `Duration::MAX` is how callers write "no limit": a timeout of it returns
/// its future's value, and a sleep of it waits (here until an outer timeout
/// cuts it) instead of overflowing its deadline, which panicked the task.
pub async fn a_duration_max_sleep_or_timeout_waits_without_overflow(
    _dir: PathBuf,
) -> std::io::Result<()> {
    let value = timeout(Duration::MAX, async {
        sleep(Duration::from_millis(2)).await;
        7
    })
    .await;
    assert_eq!(value, Ok(7), "a timeout of Duration::MAX");
    let cut = timeout(Duration::from_millis(2), sleep(Duration::MAX)).await;
    assert!(
        cut.is_err(),
        "a sleep of Duration::MAX ended before its timeout"
    );
    Ok(())
}

/// The plain `read` and `write` ops (at the file position) on a socket,
/// whose fd is non-blocking, wait for it like `recv` and `send`: a read
/// before the peer sends waits for its bytes, and writes into a full send
/// buffer wait for the peer to drain it. `EAGAIN` never reaches the caller
/// (it did on the pool and epoll backends, while io_uring waited).
/// A read or write at an offset on a stream (a socket here; a FIFO in
/// `main.rs`, real kernel only) moves the stream, ignoring the offset, on
/// every backend (what io_uring does with a pipe; `pread` would fail with
/// `ESPIPE`): plain and vectored, and a positional read made before the
/// peer writes waits for the bytes instead of failing with `EAGAIN`.
pub async fn positional_ops_on_a_stream_move_the_stream(_dir: PathBuf) -> std::io::Result<()> {
    let (a, b) = iokernel::net::UnixStream::pair()?;
    let (a_fd, b_fd) = (a.as_raw_fd(), b.as_raw_fd());
    let peer = spawn_peer("late-positional-writer", async move {
        sleep(Duration::from_millis(20)).await;
        let BufResult(n, _) = io::pwrite(a_fd, b"first".to_vec(), 1234).await;
        assert_eq!(n?, 5, "pwrite on a socket");
        let parts = vec![b"sec".to_vec(), b"ond".to_vec()];
        let BufResult(n, _) = io::pwritev(a_fd, parts, 99).await;
        assert_eq!(n?, 6, "pwritev on a socket");
        Ok::<_, std::io::Error>(a)
    });
    // Made before the peer writes: it waits.
    let BufResult(n, got) = io::pread(b_fd, vec![0u8; 5], 777).await;
    assert_same_bytes(&got[..n?], b"first", "pread on a socket");
    let mut second = Vec::new();
    while second.len() < 6 {
        let BufResult(n, bufs) = io::preadv(b_fd, vec![vec![0u8; 3], vec![0u8; 3]], 5).await;
        let n = n?;
        assert!(n > 0, "preadv on a socket hit end of stream");
        second.extend(bufs.concat().into_iter().take(n));
    }
    assert_same_bytes(&second, b"second", "preadv on a socket");
    drop(peer.join().await?);
    drop(b);
    Ok(())
}

pub async fn plain_read_and_write_on_a_socket_wait_for_it(_dir: PathBuf) -> std::io::Result<()> {
    const BULK: usize = 4 << 20;
    let listener = TcpListener::bind(loopback())?;
    let addr = listener.local_addr()?;
    let peer = spawn_peer("late-writer-slow-reader", async move {
        let (fd, _) = io::accept(listener.as_raw_fd()).await?;
        // Late, so the other side's read is already waiting.
        sleep(Duration::from_millis(20)).await;
        send_all(fd, b"late bytes".to_vec()).await?;
        // Then drain the bulk slowly, so its writer finds the buffer full.
        sleep(Duration::from_millis(20)).await;
        let got = recv_exact(fd, BULK).await?;
        io::close(fd).await?;
        Ok::<_, std::io::Error>(got)
    });
    let client = TcpStream::connect(addr).await?;
    let fd = client.as_raw_fd();
    let BufResult(n, buf) = io::read(fd, vec![0u8; 64]).await;
    let n = n?;
    assert_same_bytes(&buf[..n], &b"late bytes"[..n], "a read that waited");
    if n < 10 {
        assert_same_bytes(
            &recv_exact(fd, 10 - n).await?,
            &b"late bytes"[n..],
            "the rest",
        );
    }
    let bulk = pattern(BULK, 9);
    let mut at = 0;
    while at < BULK {
        let BufResult(written, _) = io::write(fd, bulk[at..].to_vec()).await;
        let written = written?;
        assert!(written > 0, "write at {at} wrote nothing");
        at += written;
    }
    assert_same_bytes(&peer.join().await?, &bulk, "what the peer read");
    Ok(())
}
