//! A loopback TCP connection checked byte for byte: first a request-response
//! phase (small scripted messages echoed back, so both sides wait for
//! readiness over and over), then one task sends a scripted stream in
//! random-sized writes while another receives it; injected faults are
//! retried (they change nothing), short sends are resumed, and the receiver
//! must see exactly the stream and then end of stream.

use super::files::{retry, Injectable};
use super::ScriptRng;
use iokernel::buf::BufResult;
use iokernel::net::{TcpListener, TcpStream};
use iokernel::runtime;
use iokernel::sim::OpClass;
use iokernel::sys::Shutdown;
use std::net::SocketAddr;

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
