//! A loopback TCP connection checked byte for byte: first a request-response
//! phase (small scripted messages echoed back, so both sides wait for
//! readiness over and over), then one task sends a scripted stream in
//! random-sized writes while another receives it (each through send/recv
//! or the plain write/read ops, as scripted); injected faults are
//! retried (they change nothing), short sends are resumed, and the receiver
//! must see exactly the stream and then end of stream.
//!
//! [`cancel_check`] (run by the runtime workload) races recvs and accepts
//! cancelled by timeouts against a peer's sends and connects: nothing the
//! kernel delivered to a cancelled op may be lost.
//!
//! [`datagram_check`] sends scripted UDP datagrams over loopback, which
//! the sim loses, duplicates and reorders, and checks what a datagram
//! protocol can promise: every datagram received is one that was sent,
//! whole. [`unix_stream_check`] streams bytes over a Unix listener's
//! connection with short writes and faults, passing a file's fd on the way
//! (`SCM_RIGHTS`): the stream must arrive exactly and the fd must read the
//! file.

use super::files::{retry, Injectable};
use super::ScriptRng;
use iokernel::buf::BufResult;
use iokernel::io;
use iokernel::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use iokernel::runtime::{self, sleep, timeout};
use iokernel::sim::OpClass;
use iokernel::sys::Shutdown;
use std::net::SocketAddr;
use std::time::Duration;

/// Bytes streamed per seed.
const STREAM_BYTES: usize = 96 * 1024;
/// Largest single send.
const MAX_SEND_BYTES: u64 = 16 * 1024;
/// Request-response rounds before the stream.
const ECHO_ROUNDS: usize = 24;
/// Largest echoed message.
const MAX_ECHO_BYTES: u64 = 64;

/// Send all of `data`, resuming short sends and retrying injected faults.
async fn write_all(stream: &TcpStream, faults: &Injectable, data: &[u8]) -> Result<(), String> {
    let mut sent = 0;
    while sent < data.len() {
        let BufResult(result, _) = stream.write(data[sent..].to_vec()).await;
        match result {
            Ok(0) => return Err(format!("send wrote 0 bytes at {sent}")),
            Ok(n) => sent += n,
            Err(e) if faults.allows(OpClass::SocketWrite, &e) => continue,
            Err(e) => return Err(format!("send at {sent}: {e}")),
        }
    }
    Ok(())
}

/// Receive exactly `len` bytes, retrying injected faults.
async fn read_exact(
    stream: &TcpStream,
    faults: &Injectable,
    len: usize,
) -> Result<Vec<u8>, String> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        let BufResult(result, buf) = stream.read(vec![0u8; len - got.len()]).await;
        match result {
            Ok(0) => return Err(format!("end of stream after {} of {len} bytes", got.len())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if faults.allows(OpClass::SocketRead, &e) => continue,
            Err(e) => return Err(format!("recv after {} of {len} bytes: {e}", got.len())),
        }
    }
    Ok(got)
}

/// The server side of the request-response phase: echo each message back.
async fn echo(
    server: TcpStream,
    faults: Injectable,
    lengths: Vec<usize>,
) -> Result<TcpStream, String> {
    for (round, len) in lengths.into_iter().enumerate() {
        let message = read_exact(&server, &faults, len)
            .await
            .map_err(|e| format!("echo round {round}: {e}"))?;
        write_all(&server, &faults, &message)
            .await
            .map_err(|e| format!("echo round {round}: {e}"))?;
    }
    Ok(server)
}

/// The client side: send each message and check its echo.
async fn request_response(
    client: &TcpStream,
    faults: &Injectable,
    messages: &[Vec<u8>],
) -> Result<(), String> {
    for (round, message) in messages.iter().enumerate() {
        write_all(client, faults, message)
            .await
            .map_err(|e| format!("request round {round}: {e}"))?;
        let echoed = read_exact(client, faults, message.len())
            .await
            .map_err(|e| format!("response round {round}: {e}"))?;
        if &echoed != message {
            return Err(format!("echo of round {round} differs"));
        }
    }
    Ok(())
}

async fn bind(faults: &Injectable) -> Result<TcpListener, String> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    for _ in 0..1000 {
        match TcpListener::bind(any) {
            Err(e) if faults.allows(OpClass::SocketSetup, &e) => continue,
            other => return other.map_err(|e| format!("bind: {e}")),
        }
    }
    Err("bind kept failing with injected faults".to_string())
}

async fn send_all(
    stream: &TcpStream,
    faults: &Injectable,
    mut rng: ScriptRng,
    data: &[u8],
) -> Result<(), String> {
    let mut sent = 0;
    while sent < data.len() {
        let chunk_end = (sent + 1 + rng.below(MAX_SEND_BYTES) as usize).min(data.len());
        let chunk = data[sent..chunk_end].to_vec();
        // Some chunks (scripted) through the plain write op, and some
        // through pwrite at an offset (a stream ignores it), which must
        // wait for a full socket as send does.
        let BufResult(result, _) = match rng.below(3) {
            0 => stream.write(chunk).await,
            1 => io::write(stream.as_raw_fd(), chunk).await,
            _ => io::pwrite(stream.as_raw_fd(), chunk, rng.below(1 << 20)).await,
        };
        match result {
            Ok(0) => return Err(format!("send wrote 0 bytes at {sent}")),
            Ok(n) => sent += n,
            // Both ops wait for a full socket: EAGAIN (even an injected
            // one) never reaches the caller.
            Err(e) if is_eagain(&e) => return Err(format!("EAGAIN reached a send at {sent}")),
            Err(e) if faults.allows(OpClass::SocketWrite, &e) => continue,
            Err(e) => return Err(format!("send at {sent}: {e}")),
        }
    }
    for _ in 0..1000 {
        match stream.shutdown(Shutdown::Write).await {
            Err(e) if faults.allows(OpClass::SocketSetup, &e) => continue,
            other => return other.map_err(|e| format!("shutdown: {e}")),
        }
    }
    Err("shutdown kept failing with injected faults".to_string())
}

async fn receive_all(
    stream: TcpStream,
    faults: Injectable,
    mut rng: ScriptRng,
) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    loop {
        let len = 1 + rng.below(MAX_SEND_BYTES) as usize;
        // As the sender: some reads through the plain read op, some
        // through pread at an offset.
        let buf = Vec::with_capacity(len);
        let BufResult(result, buf) = match rng.below(3) {
            0 => stream.read(buf).await,
            1 => io::read(stream.as_raw_fd(), buf).await,
            _ => io::pread(stream.as_raw_fd(), buf, rng.below(1 << 20)).await,
        };
        match result {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_eagain(&e) => {
                return Err(format!("EAGAIN reached a recv after {} bytes", got.len()))
            }
            Err(e) if faults.allows(OpClass::SocketRead, &e) => continue,
            Err(e) => return Err(format!("recv after {} bytes: {e}", got.len())),
        }
    }
}

fn is_eagain(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(iokernel::sys::Errno::EAGAIN.raw())
}

/// Stream a scripted byte sequence over loopback and check it arrived.
pub(crate) async fn stream_check(seed: u64, faults: Injectable) -> Result<usize, String> {
    let mut rng = ScriptRng::new(seed, 0x50C4);
    let data = rng.bytes(STREAM_BYTES);
    let listener = bind(&faults).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let client = retry(&faults, OpClass::SocketSetup, || TcpStream::connect(addr))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (server, _) = retry(&faults, OpClass::SocketSetup, || listener.accept())
        .await
        .map_err(|e| format!("accept: {e}"))?;
    let messages: Vec<Vec<u8>> = (0..ECHO_ROUNDS)
        .map(|_| {
            let len = 1 + rng.below(MAX_ECHO_BYTES) as usize;
            rng.bytes(len)
        })
        .collect();
    let lengths = messages.iter().map(Vec::len).collect();
    let echoer = runtime::spawn(echo(server, faults.clone(), lengths));
    request_response(&client, &faults, &messages).await?;
    let server = echoer.await.map_err(|e| e.to_string())??;
    let receiver = runtime::spawn(receive_all(
        server,
        faults.clone(),
        ScriptRng::new(seed, 0x8ECF),
    ));
    send_all(&client, &faults, ScriptRng::new(seed, 0x5E4D), &data).await?;
    let got = receiver.await.map_err(|e| e.to_string())??;
    if got != data {
        let at = got
            .iter()
            .zip(&data)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(data.len()));
        return Err(format!(
            "stream differs at byte {at} (got {} of {} bytes)",
            got.len(),
            data.len()
        ));
    }
    Ok(got.len())
}

/// Rounds of each cancellation race per seed.
const CANCEL_ROUNDS: u64 = 24;
/// Bytes the peer sends per recv round.
const CANCEL_BYTES: usize = 700;

/// Receive until `want` holds `len` bytes more, retrying injected faults;
/// bytes that never come end the run as stuck (virtual time has no limit).
async fn read_into(
    stream: &TcpStream,
    faults: &Injectable,
    got: &mut Vec<u8>,
    want: usize,
) -> Result<(), String> {
    while got.len() < want {
        let BufResult(result, buf) = stream.read(vec![0u8; want - got.len()]).await;
        match result {
            Ok(0) => return Err(format!("end of stream after {} of {want} bytes", got.len())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if faults.allows(OpClass::SocketRead, &e) => continue,
            Err(e) => return Err(format!("recv after {} of {want} bytes: {e}", got.len())),
        }
    }
    Ok(())
}

/// Cancellation races on sockets: a recv (an accept) under a short timeout
/// while a peer task sends (connects) after a short delay, both drawn from
/// the script. Whatever the timed-out op got must reach the next recv
/// (accept): the bytes in order and exactly once, the connection with the
/// bytes its client sent. Returns (recv rounds, accept rounds) that timed
/// out.
pub(crate) async fn cancel_check(seed: u64, faults: Injectable) -> Result<(u64, u64), String> {
    let mut rng = ScriptRng::new(seed, 0xCA9C);
    let listener = bind(&faults).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let client = retry(&faults, OpClass::SocketSetup, || TcpStream::connect(addr))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (server, _) = retry(&faults, OpClass::SocketSetup, || listener.accept())
        .await
        .map_err(|e| format!("accept: {e}"))?;
    let client = std::sync::Arc::new(client);
    let mut recv_timeouts = 0;
    for round in 0..CANCEL_ROUNDS {
        let data = rng.bytes(CANCEL_BYTES);
        let (limit, delay) = (rng.below(200), rng.below(200));
        let sender = {
            let (client, faults, data) =
                (std::sync::Arc::clone(&client), faults.clone(), data.clone());
            runtime::spawn(async move {
                sleep(Duration::from_micros(delay)).await;
                write_all(&client, &faults, &data).await
            })
        };
        let mut got = Vec::new();
        let first = server.read(vec![0u8; CANCEL_BYTES]);
        match timeout(Duration::from_micros(limit), first).await {
            Ok(BufResult(Ok(n), buf)) => got.extend_from_slice(&buf[..n]),
            Ok(BufResult(Err(e), _)) if faults.allows(OpClass::SocketRead, &e) => {}
            Ok(BufResult(Err(e), _)) => return Err(format!("recv round {round}: {e}")),
            Err(_) => recv_timeouts += 1,
        }
        sender.await.map_err(|e| e.to_string())??;
        read_into(&server, &faults, &mut got, CANCEL_BYTES).await?;
        if got != data {
            return Err(format!(
                "recv round {round}: bytes around a timed-out recv differ (got {} of {CANCEL_BYTES})",
                got.len()
            ));
        }
    }
    let mut accept_timeouts = 0;
    for round in 0..CANCEL_ROUNDS {
        let id = rng.bytes(8);
        let (limit, delay) = (rng.below(200), rng.below(200));
        let connector = {
            let (faults, id) = (faults.clone(), id.clone());
            runtime::spawn(async move {
                sleep(Duration::from_micros(delay)).await;
                let stream = retry(&faults, OpClass::SocketSetup, || TcpStream::connect(addr))
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                write_all(&stream, &faults, &id).await?;
                Ok::<_, String>(stream)
            })
        };
        let accepted = match timeout(Duration::from_micros(limit), listener.accept()).await {
            Ok(Ok((stream, _))) => Some(stream),
            Ok(Err(e)) if faults.allows(OpClass::SocketSetup, &e) => None,
            Ok(Err(e)) => return Err(format!("accept round {round}: {e}")),
            Err(_) => {
                accept_timeouts += 1;
                None
            }
        };
        let stream = match accepted {
            Some(stream) => stream,
            None => {
                retry(&faults, OpClass::SocketSetup, || listener.accept())
                    .await
                    .map_err(|e| format!("accept round {round}: {e}"))?
                    .0
            }
        };
        let peer = connector.await.map_err(|e| e.to_string())??;
        let mut got = Vec::new();
        read_into(&stream, &faults, &mut got, id.len()).await?;
        if got != id {
            return Err(format!(
                "accept round {round}: the connection after a timed-out accept is not the one made"
            ));
        }
        drop((stream, peer));
    }
    Ok((recv_timeouts, accept_timeouts))
}

/// Datagrams sent per seed.
const DATAGRAMS: u64 = 64;
/// Largest datagram payload (after the 8-byte sequence number).
const MAX_DATAGRAM_BYTES: u64 = 512;
/// How long the receiver waits for one more datagram once the sender is done.
const DRAIN_AFTER: Duration = Duration::from_millis(5);

/// Datagram `seq` of the script: its number, then payload bytes.
fn datagram(rng: &mut ScriptRng, seq: u64) -> Vec<u8> {
    let len = rng.below(MAX_DATAGRAM_BYTES) as usize;
    let mut bytes = seq.to_le_bytes().to_vec();
    bytes.extend(rng.bytes(len));
    bytes
}

/// Send scripted datagrams over loopback UDP and check each one received
/// is one sent, whole. Returns a summary (received, duplicated, overtaken).
pub(crate) async fn datagram_check(seed: u64, faults: Injectable) -> Result<String, String> {
    let mut rng = ScriptRng::new(seed, 0xD6A4);
    let sent: Vec<Vec<u8>> = (0..DATAGRAMS).map(|seq| datagram(&mut rng, seq)).collect();
    let udp = |what: &'static str| {
        let faults = faults.clone();
        async move {
            retry(&faults, OpClass::SocketSetup, || async {
                UdpSocket::bind("127.0.0.1:0")
            })
            .await
            .map_err(|e| format!("{what} bind: {e}"))
        }
    };
    let (sender, receiver) = (udp("sender").await?, udp("receiver").await?);
    let to = receiver
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let from = sender
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sending = {
        let (sent, faults, done) = (sent.clone(), faults.clone(), std::sync::Arc::clone(&done));
        runtime::spawn(async move {
            for (seq, bytes) in sent.into_iter().enumerate() {
                let result = retry(&faults, OpClass::SocketWrite, || async {
                    sender.send_to(bytes.clone(), to).await.0
                })
                .await;
                match result {
                    Ok(n) if n == bytes.len() => {}
                    Ok(n) => return Err(format!("datagram {seq}: sent {n} of {}", bytes.len())),
                    Err(e) => return Err(format!("datagram {seq}: send_to: {e}")),
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>(())
        })
    };
    let (mut seen, mut duplicated, mut overtaken, mut highest) = (vec![0u32; sent.len()], 0, 0, 0);
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let wait = if finished {
            DRAIN_AFTER
        } else {
            Duration::from_secs(3600)
        };
        let got = match timeout(wait, receiver.recv_from(vec![0u8; 1024])).await {
            Err(_) if finished => break,
            Err(_) => continue,
            Ok(BufResult(Err(e), _)) if faults.allows(OpClass::SocketRead, &e) => continue,
            Ok(BufResult(Err(e), _)) => return Err(format!("recv_from: {e}")),
            Ok(BufResult(Ok((n, peer)), buf)) => {
                if peer != from {
                    return Err(format!("a datagram from {peer}, not the sender {from}"));
                }
                buf[..n].to_vec()
            }
        };
        let seq = got
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .filter(|&seq| seq < sent.len())
            .ok_or_else(|| format!("a {}-byte datagram that was never sent", got.len()))?;
        if got != sent[seq] {
            return Err(format!(
                "datagram {seq} arrived changed ({} bytes, sent {})",
                got.len(),
                sent[seq].len()
            ));
        }
        seen[seq] += 1;
        duplicated += u32::from(seen[seq] > 1);
        overtaken += u32::from(seq < highest);
        highest = highest.max(seq);
    }
    sending.await.map_err(|e| e.to_string())??;
    let received = seen.iter().filter(|&&n| n > 0).count();
    let exact = faults.options().datagram == iokernel::sim::DatagramFaults::default();
    if exact && (received as u64 != DATAGRAMS || duplicated > 0 || overtaken > 0) {
        return Err(format!(
            "with datagram faults off, {received}/{DATAGRAMS} arrived, \
             {duplicated} twice, {overtaken} out of order"
        ));
    }
    Ok(format!(
        "{received}/{DATAGRAMS} datagrams received whole ({duplicated} duplicates, {overtaken} out of order)"
    ))
}

/// Bytes streamed over the Unix connection per seed.
const UNIX_STREAM_BYTES: usize = 24 * 1024;
/// What the passed file holds.
const PASSED_FILE: &[u8] = b"the file behind the passed fd";

/// Stream bytes over a Unix listener's connection with faults, passing a
/// file's fd halfway; returns the bytes streamed.
pub(crate) async fn unix_stream_check(seed: u64, faults: Injectable) -> Result<usize, String> {
    let mut rng = ScriptRng::new(seed, 0x0A1C);
    let data = rng.bytes(UNIX_STREAM_BYTES);
    let path = format!("/unix-{seed}.sock");
    let listener = retry(&faults, OpClass::SocketSetup, || async {
        UnixListener::bind(&path)
    })
    .await
    .map_err(|e| format!("unix bind: {e}"))?;
    let client = retry(&faults, OpClass::SocketSetup, || UnixStream::connect(&path))
        .await
        .map_err(|e| format!("unix connect: {e}"))?;
    let (server, _) = retry(&faults, OpClass::SocketSetup, || listener.accept())
        .await
        .map_err(|e| format!("unix accept: {e}"))?;
    drop(listener);
    let file = passed_file(&faults, seed).await?;
    let receiver = runtime::spawn(receive_unix(server, faults.clone(), data.len()));
    let half = data.len() / 2;
    unix_send_all(&client, &faults, &mut rng, &data[..half]).await?;
    let marker = b"fd!".to_vec();
    // The fd rides with the bytes this send_msg moves; a short one's tail
    // goes as plain bytes.
    let sent = loop {
        match client.send_msg(marker.clone(), &[file]).await.0 {
            Ok(0) => return Err("send_msg sent 0 bytes".to_string()),
            Ok(n) => break n,
            Err(e) if faults.allows(OpClass::SocketWrite, &e) => continue,
            Err(e) => return Err(format!("send_msg: {e}")),
        }
    };
    unix_send_all(&client, &faults, &mut rng, &marker[sent..]).await?;
    retry(&faults, OpClass::Metadata, || io::close(file))
        .await
        .map_err(|e| format!("close the passed file: {e}"))?;
    unix_send_all(&client, &faults, &mut rng, &data[half..]).await?;
    retry(&faults, OpClass::SocketSetup, || {
        client.shutdown(Shutdown::Write)
    })
    .await
    .map_err(|e| format!("unix shutdown: {e}"))?;
    let (got, read_through) = receiver.await.map_err(|e| e.to_string())??;
    let mut want = data[..half].to_vec();
    want.extend_from_slice(&marker);
    want.extend_from_slice(&data[half..]);
    if got != want {
        return Err(format!(
            "unix stream differs (got {} of {} bytes)",
            got.len(),
            want.len()
        ));
    }
    if read_through != PASSED_FILE {
        return Err("the passed fd did not read the file".to_string());
    }
    Ok(got.len())
}

async fn passed_file(faults: &Injectable, seed: u64) -> Result<std::os::fd::RawFd, String> {
    let path = format!("/passed-{seed}");
    let flags = io::OpenFlags::RDWR | io::OpenFlags::CREAT | io::OpenFlags::TRUNC;
    let fd = retry(faults, OpClass::Open, || io::open(&path, flags, 0o644))
        .await
        .map_err(|e| format!("open {path}: {e}"))?;
    let mut written = 0;
    while written < PASSED_FILE.len() {
        let BufResult(result, _) =
            io::pwrite(fd, PASSED_FILE[written..].to_vec(), written as u64).await;
        match result {
            Ok(n) => written += n,
            Err(e) if faults.allows(OpClass::Write, &e) => continue,
            Err(e) => return Err(format!("write {path}: {e}")),
        }
    }
    Ok(fd)
}

async fn unix_send_all(
    stream: &UnixStream,
    faults: &Injectable,
    rng: &mut ScriptRng,
    data: &[u8],
) -> Result<(), String> {
    let mut sent = 0;
    while sent < data.len() {
        let end = (sent + 1 + rng.below(MAX_SEND_BYTES) as usize).min(data.len());
        match stream.write(data[sent..end].to_vec()).await.0 {
            Ok(0) => return Err(format!("unix send wrote 0 bytes at {sent}")),
            Ok(n) => sent += n,
            Err(e) if faults.allows(OpClass::SocketWrite, &e) => continue,
            Err(e) => return Err(format!("unix send at {sent}: {e}")),
        }
    }
    Ok(())
}

/// Receive everything with `recv_msg`, reading the passed file through the
/// fd that arrives; returns the bytes and what the fd read.
async fn receive_unix(
    stream: UnixStream,
    faults: Injectable,
    expect: usize,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (mut got, mut read_through) = (Vec::with_capacity(expect), Vec::new());
    loop {
        let BufResult(result, buf) = stream.recv_msg(vec![0u8; 4096], 1).await;
        let msg = match result {
            Ok(msg) => msg,
            Err(e) if faults.allows(OpClass::SocketRead, &e) => continue,
            Err(e) => return Err(format!("unix recv after {} bytes: {e}", got.len())),
        };
        for passed in &msg.fds {
            let fd = passed.as_raw_fd();
            while read_through.len() < PASSED_FILE.len() {
                let at = read_through.len();
                let BufResult(result, buf) = io::pread(fd, vec![0u8; 64], at as u64).await;
                match result {
                    Ok(0) => return Err("the passed fd read end of file early".to_string()),
                    Ok(n) => read_through.extend_from_slice(&buf[..n]),
                    Err(e) if faults.allows(OpClass::Read, &e) => continue,
                    Err(e) => return Err(format!("read through the passed fd: {e}")),
                }
            }
        }
        if msg.bytes == 0 {
            return Ok((got, read_through));
        }
        got.extend_from_slice(&buf[..msg.bytes]);
    }
}
