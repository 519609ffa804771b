//! A loopback TCP connection checked byte for byte: first a request-response
//! phase (small scripted messages echoed back, so both sides wait for
//! readiness over and over), then one task sends a scripted stream in
//! random-sized writes while another receives it; injected faults are
//! retried (they change nothing), short sends are resumed, and the receiver
//! must see exactly the stream and then end of stream.
//!
//! [`cancel_check`] (run by the runtime workload) races recvs and accepts
//! cancelled by timeouts against a peer's sends and connects: nothing the
//! kernel delivered to a cancelled op may be lost.

use super::files::{retry, Injectable};
use super::ScriptRng;
use iokernel::buf::BufResult;
use iokernel::net::{TcpListener, TcpStream};
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
        let BufResult(result, _) = stream.write(data[sent..chunk_end].to_vec()).await;
        match result {
            Ok(0) => return Err(format!("send wrote 0 bytes at {sent}")),
            Ok(n) => sent += n,
            Err(e) if faults.allows(OpClass::SocketWrite, &e) => continue,
            Err(e) => return Err(format!("send at {sent}: {e}")),
        }
    }
    for _ in 0..1000 {
        match stream.shutdown(Shutdown::Write) {
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
        let BufResult(result, buf) = stream.read(Vec::with_capacity(len)).await;
        match result {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if faults.allows(OpClass::SocketRead, &e) => continue,
            Err(e) => return Err(format!("recv after {} bytes: {e}", got.len())),
        }
    }
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
