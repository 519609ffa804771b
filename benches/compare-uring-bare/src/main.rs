//! `iokernel-compare-uring-bare`: an echo server written straight on
//! io_uring with no runtime, the bare loop of `benches/compare/run.sh`'s
//! echo rows (not a peer: the least user time an io_uring server spends).
//!
//! - `bare-echo ADDR THREADS MODE`: one thread, one ring set up as
//!   iokernel sets up its rings (`COOP_TASKRUN | TASKRUN_FLAG |
//!   SINGLE_ISSUER | DEFER_TASKRUN`); accept, then per connection a recv
//!   and a send of what it received, with `TCP_NODELAY`, as the peers'
//!   servers do. MODE `oneshot`: one recv entry per message into the
//!   connection's buffer (what iokernel, tokio-style runtimes and the peers
//!   do). MODE `multishot`: one multishot recv per connection into a
//!   provided-buffer ring, the bytes copied out and the buffer handed back
//!   at once. MODE `oneshot-fixed` and `multishot-fixed`: the same, with
//!   each connection's socket in the ring's table of registered files
//!   (`IOSQE_FIXED_FILE`: the kernel skips its file lookup and reference
//!   count per entry). Prints the bound address. THREADS must be 1.
//!
//! Nothing here is shared with iokernel; the unsafe blocks are the ring's
//! FFI (entries that point into memory the kernel writes).

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::io::{Error, ErrorKind, Result};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

/// Bytes per receive buffer (the peers' servers read up to 4 KiB).
const BUF_BYTES: usize = 4096;
/// Buffers in the provided-buffer ring (a power of two).
const RING_BUFS: u16 = 1024;
/// The provided-buffer group's id.
const GROUP: u16 = 1;

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;

fn user_data(kind: u64, conn: usize) -> u64 {
    kind | (conn as u64) << 8
}

struct Conn {
    fd: RawFd,
    /// One-shot mode's receive buffer (the kernel's while a recv is out).
    inbuf: Box<[u8]>,
    /// Bytes a send is out for (the kernel's until it completes).
    sending: Vec<u8>,
    sent: usize,
    /// Bytes received while a send was out (multishot mode).
    pending: Vec<u8>,
    /// Entries of this connection with the kernel.
    in_flight: u32,
    /// The peer closed (or an error ended the connection).
    closing: bool,
}

/// The provided-buffer ring: entries the kernel takes buffers from, and
/// the buffers themselves. Lives as long as the process (the ring keeps
/// its address registered).
struct BufRing {
    entries: *mut types::BufRingEntry,
    bufs: Box<[u8]>,
    tail: u16,
}

impl BufRing {
    fn register(ring: &IoUring) -> Result<BufRing> {
        let layout = std::alloc::Layout::from_size_align(
            RING_BUFS as usize * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: the layout has a non-zero size; the memory is never freed
        // (the ring holds it registered until the process ends).
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err(Error::new(ErrorKind::OutOfMemory, "buffer ring entries"));
        }
        // SAFETY: `entries` points at RING_BUFS zeroed, page-aligned entries
        // that stay valid for the rest of the process.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, RING_BUFS, GROUP, 0)?
        };
        let mut bufs = BufRing {
            entries,
            bufs: vec![0u8; RING_BUFS as usize * BUF_BYTES].into_boxed_slice(),
            tail: 0,
        };
        for bid in 0..RING_BUFS {
            bufs.give_back(bid);
        }
        Ok(bufs)
    }

    /// The bytes the kernel put in buffer `bid`.
    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * BUF_BYTES;
        &self.bufs[start..start + len]
    }

    /// Hand buffer `bid` back to the kernel.
    fn give_back(&mut self, bid: u16) {
        let addr = self.bufs.as_ptr() as u64 + (bid as usize * BUF_BYTES) as u64;
        // SAFETY: the slot index is masked into the ring; the kernel reads
        // entries only up to the published tail, which moves after the write.
        let entry = unsafe { &mut *self.entries.add((self.tail & (RING_BUFS - 1)) as usize) };
        entry.set_addr(addr);
        entry.set_len(BUF_BYTES as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field of the ring's first entry, shared with the
        // kernel, published with release ordering as liburing does.
        let tail = unsafe { &*(types::BufRingEntry::tail(self.entries) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

struct Server {
    ring: IoUring,
    listener: RawFd,
    conns: Vec<Option<Conn>>,
    bufs: Option<BufRing>,
    /// Connections' sockets are registered files, connection `id` at slot `id`.
    fixed: bool,
}

/// Slots in the table of registered files (fixed modes): one per connection.
const FIXED_SLOTS: u32 = 4096;

impl Server {
    fn push(&mut self, entry: squeue::Entry) -> Result<()> {
        loop {
            // SAFETY: every entry points into a connection's buffers (boxed,
            // not touched while the entry is out), the buffer ring, or
            // nothing (accept); see the callers.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn accept(&mut self) -> Result<()> {
        let entry = opcode::Accept::new(
            types::Fd(self.listener),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .build()
        .user_data(user_data(ACCEPT, 0));
        self.push(entry)
    }

    fn recv(&mut self, id: usize) -> Result<()> {
        let conn = self.conns[id].as_mut().expect("live connection");
        conn.in_flight += 1;
        let (buf, len) = (conn.inbuf.as_mut_ptr(), conn.inbuf.len() as u32);
        let entry = match (self.bufs.is_some(), self.fixed) {
            (true, false) => opcode::RecvMulti::new(types::Fd(conn.fd), GROUP).build(),
            (true, true) => opcode::RecvMulti::new(types::Fixed(id as u32), GROUP).build(),
            (false, false) => opcode::Recv::new(types::Fd(conn.fd), buf, len).build(),
            (false, true) => opcode::Recv::new(types::Fixed(id as u32), buf, len).build(),
        };
        self.push(entry.user_data(user_data(RECV, id)))
    }

    fn send_rest(&mut self, id: usize) -> Result<()> {
        let conn = self.conns[id].as_mut().expect("live connection");
        conn.in_flight += 1;
        let rest = &conn.sending[conn.sent..];
        let (ptr, len) = (rest.as_ptr(), rest.len() as u32);
        let entry = if self.fixed {
            opcode::Send::new(types::Fixed(id as u32), ptr, len).build()
        } else {
            opcode::Send::new(types::Fd(conn.fd), ptr, len).build()
        }
        .user_data(user_data(SEND, id));
        self.push(entry)
    }

    /// Close a connection once the peer is gone and nothing of it is out.
    fn settle(&mut self, id: usize) {
        let done = matches!(&self.conns[id], Some(c) if c.closing && c.in_flight == 0);
        if done {
            let conn = self.conns[id].take().expect("live connection");
            if self.fixed {
                // The table's reference would keep the socket open.
                if let Err(e) = self
                    .ring
                    .submitter()
                    .register_files_update(id as u32, &[-1])
                {
                    eprintln!("unregistering connection {id}'s socket: {e}");
                }
            }
            // SAFETY: the fd is this connection's, with no entry out.
            unsafe { libc::close(conn.fd) };
        }
    }

    fn on_accept(&mut self, res: i32) -> Result<()> {
        self.accept()?;
        if res < 0 {
            return Ok(()); // a failed accept (the peer gave up): go on
        }
        let fd = res;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a c_int option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        self.conns.push(Some(Conn {
            fd,
            inbuf: vec![0u8; BUF_BYTES].into_boxed_slice(),
            sending: Vec::with_capacity(BUF_BYTES),
            sent: 0,
            pending: Vec::with_capacity(BUF_BYTES),
            in_flight: 0,
            closing: false,
        }));
        let id = self.conns.len() - 1;
        if self.fixed {
            if id as u32 >= FIXED_SLOTS {
                return Err(Error::other("more connections than registered-file slots"));
            }
            self.ring
                .submitter()
                .register_files_update(id as u32, &[fd])?;
        }
        self.recv(id)
    }

    fn on_recv(&mut self, id: usize, res: i32, flags: u32) -> Result<()> {
        let multishot = self.bufs.is_some();
        let conn = self.conns[id].as_mut().expect("live connection");
        let still_armed = multishot && cqueue::more(flags);
        if !still_armed {
            conn.in_flight -= 1;
        }
        if res == -libc::ENOBUFS && multishot {
            return self.recv(id); // every buffer was out: arm again
        }
        if res <= 0 {
            conn.closing = true;
            self.settle(id);
            return Ok(());
        }
        let n = res as usize;
        if multishot {
            let bufs = self.bufs.as_mut().expect("multishot mode");
            let bid = cqueue::buffer_select(flags).expect("a multishot recv names its buffer");
            conn.pending.extend_from_slice(bufs.bytes(bid, n));
            bufs.give_back(bid);
            let idle = conn.sending.is_empty();
            if idle {
                std::mem::swap(&mut conn.sending, &mut conn.pending);
                conn.sent = 0;
            }
            if !still_armed {
                self.recv(id)?;
            }
            if idle {
                self.send_rest(id)?;
            }
            Ok(())
        } else {
            conn.sending.clear();
            conn.sending.extend_from_slice(&conn.inbuf[..n]);
            conn.sent = 0;
            self.send_rest(id)
        }
    }

    fn on_send(&mut self, id: usize, res: i32) -> Result<()> {
        let conn = self.conns[id].as_mut().expect("live connection");
        conn.in_flight -= 1;
        if res < 0 {
            conn.closing = true;
            self.settle(id);
            return Ok(());
        }
        conn.sent += res as usize;
        if conn.sent < conn.sending.len() {
            return self.send_rest(id);
        }
        conn.sending.clear();
        if conn.closing {
            self.settle(id);
            return Ok(());
        }
        if self.bufs.is_some() {
            if conn.pending.is_empty() {
                return Ok(());
            }
            std::mem::swap(&mut conn.sending, &mut conn.pending);
            conn.sent = 0;
            return self.send_rest(id);
        }
        self.recv(id)
    }

    fn run(&mut self) -> Result<()> {
        self.accept()?;
        let mut done = Vec::new();
        loop {
            self.ring.submit_and_wait(1)?;
            done.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for (data, res, flags) in done.drain(..) {
                let id = (data >> 8) as usize;
                match data & 0xff {
                    ACCEPT => self.on_accept(res)?,
                    RECV => self.on_recv(id, res, flags)?,
                    _ => self.on_send(id, res)?,
                }
            }
        }
    }
}

fn echo(args: &[String]) -> Result<()> {
    let usage = || {
        Error::new(
            ErrorKind::InvalidInput,
            "usage: bare-echo ADDR THREADS oneshot|multishot[-fixed]",
        )
    };
    let addr: SocketAddr = args.get(2).and_then(|a| a.parse().ok()).ok_or_else(usage)?;
    if args.get(3).map(String::as_str) != Some("1") {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "threads: this contender runs one thread",
        ));
    }
    let mode = args.get(4).map(String::as_str).ok_or_else(usage)?;
    let (multishot, fixed) = match mode {
        "oneshot" => (false, false),
        "multishot" => (true, false),
        "oneshot-fixed" => (false, true),
        "multishot-fixed" => (true, true),
        _ => return Err(usage()),
    };
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    let ring = IoUring::builder()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(4096)?;
    let bufs = if multishot {
        Some(BufRing::register(&ring)?)
    } else {
        None
    };
    if fixed {
        ring.submitter().register_files_sparse(FIXED_SLOTS)?;
    }
    let mut server = Server {
        ring,
        listener: listener.into_raw_fd(),
        conns: Vec::new(),
        bufs,
        fixed,
    };
    println!("echo uring-bare ({mode}) listening on {local}");
    server.run()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("bare-echo") => echo(&args),
        _ => Err(Error::new(
            ErrorKind::InvalidInput,
            "usage: iokernel-compare-uring-bare bare-echo ADDR THREADS oneshot|multishot[-fixed]",
        )),
    };
    if let Err(e) = result {
        eprintln!("iokernel-compare-uring-bare: {e}");
        std::process::exit(1);
    }
}
