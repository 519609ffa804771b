//! The runtime workload: many tasks, timers on virtual time, bounded
//! channels with several producers and consumers, and cancellation (ops
//! dropped mid-flight by timeouts, tasks aborted while their ops run;
//! recvs and accepts timed out while a peer sends or connects).
//! Checks: every timer wakes no earlier than its deadline, every channel
//! item arrives exactly once, join handles return their values, no byte or
//! connection a cancelled recv/accept got is lost, and no fd outlives the
//! run.

use super::files::Injectable;
use super::ScriptRng;
use iokernel::buf::BufResult;
use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{self, sleep, timeout, JoinError};
use iokernel::sim::{self, SimKernel};
use iokernel::sync::{channel, unbounded_channel};
use std::sync::Arc;
use std::time::Duration;

const SLEEPERS: u64 = 40;
const PRODUCERS: u64 = 4;
const CONSUMERS: u64 = 3;
const ITEMS_PER_PRODUCER: u64 = 150;
const CANCELLERS: u64 = 20;
const FILE_BYTES: usize = 64 * 1024;

async fn sleepers(kernel: Arc<SimKernel>, rng: &mut ScriptRng) -> Result<(), String> {
    let handles: Vec<_> = (0..SLEEPERS)
        .map(|i| {
            let (kernel, ms) = (Arc::clone(&kernel), rng.below(50));
            runtime::spawn(async move {
                let start = kernel.core().now();
                sleep(Duration::from_millis(ms)).await;
                let woke = kernel.core().now();
                (i, ms, woke.saturating_sub(start))
            })
        })
        .collect();
    for handle in handles {
        let (i, ms, slept) = handle.await.map_err(|e| e.to_string())?;
        if slept < Duration::from_millis(ms) {
            return Err(format!(
                "sleeper {i} asked for {ms} ms and woke after {slept:?}"
            ));
        }
    }
    Ok(())
}

async fn channels(rng: &mut ScriptRng) -> Result<(), String> {
    let capacity = rng.below(5) as usize;
    // 0 draws an unbounded channel (a bounded one needs capacity >= 1).
    let (tx, rx) = match capacity {
        0 => unbounded_channel::<(u64, u64)>(),
        n => channel::<(u64, u64)>(n),
    };
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            runtime::spawn(async move {
                for i in 0..ITEMS_PER_PRODUCER {
                    tx.send((p, i))
                        .await
                        .map_err(|_| format!("producer {p}: channel closed early"))?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            runtime::spawn(async move {
                let mut got = Vec::new();
                // No limit on the wait, written as callers write it: a
                // deadline of Duration::MAX must neither overflow nor fire.
                loop {
                    match timeout(Duration::MAX, rx.recv()).await {
                        Ok(Some(item)) => got.push(item),
                        Ok(None) => return Ok(got),
                        Err(elapsed) => return Err(format!("consumer: {elapsed}")),
                    }
                }
            })
        })
        .collect();
    drop(rx);
    for p in producers {
        p.await.map_err(|e| e.to_string())??;
    }
    let mut all = Vec::new();
    for c in consumers {
        all.extend(c.await.map_err(|e| e.to_string())??);
    }
    all.sort_unstable();
    let expected: Vec<(u64, u64)> = (0..PRODUCERS)
        .flat_map(|p| (0..ITEMS_PER_PRODUCER).map(move |i| (p, i)))
        .collect();
    if all != expected {
        return Err(format!(
            "channel delivered {} items, expected {} exactly once each",
            all.len(),
            expected.len()
        ));
    }
    Ok(())
}

/// Ops dropped by short timeouts and tasks aborted mid-op.
async fn cancellations(faults: Injectable, rng: &mut ScriptRng) -> Result<(), String> {
    let path = "/cancel.bin";
    let fd = super::files::retry(&faults, iokernel::sim::OpClass::Open, || {
        io::open(path, OpenFlags::RDWR | OpenFlags::CREAT, 0o644)
    })
    .await
    .map_err(|e| format!("open {path}: {e}"))?;
    let BufResult(_, _) = io::pwrite(fd, vec![7u8; FILE_BYTES], 0).await;
    let handles: Vec<_> = (0..CANCELLERS)
        .map(|i| {
            let wait = Duration::from_micros(rng.below(120));
            let abort = rng.below(3) == 0;
            let handle = runtime::spawn(async move {
                // A timed-out open must not leak its fd; a timed-out read
                // must not lose its buffer while the kernel holds it.
                if let Ok(Ok(extra)) = timeout(wait, io::open(path, OpenFlags::RDONLY, 0)).await {
                    let _ = io::close(extra).await;
                }
                let read = io::pread(fd, vec![0u8; 4096], i * 512);
                if let Ok(BufResult(Ok(n), buf)) = timeout(wait, read).await {
                    if buf[..n].iter().any(|&b| b != 7) {
                        return Err(format!("canceller {i} read bytes that were never written"));
                    }
                }
                Ok::<_, String>(i)
            });
            (abort, handle)
        })
        .collect();
    for (abort, handle) in handles {
        if abort {
            handle.abort();
        }
        match handle.await {
            Ok(result) => {
                result?;
            }
            Err(JoinError::Cancelled) if abort => {}
            Err(e) => return Err(format!("canceller failed: {e}")),
        }
    }
    let _ = io::close(fd).await;
    Ok(())
}

/// Run the runtime workload for `seed`.
pub(crate) fn run(kernel: &Arc<SimKernel>, seed: u64) -> Result<String, String> {
    let faults = Injectable::new(kernel);
    let task_kernel = Arc::clone(kernel);
    let races = sim::run(kernel, async move {
        let mut rng = ScriptRng::new(seed, 0x7157);
        sleepers(task_kernel, &mut rng).await?;
        channels(&mut rng).await?;
        cancellations(faults.clone(), &mut rng).await?;
        let cached = super::cache::page_cache(faults.clone(), &mut rng).await?;
        let races = super::sockets::cancel_check(seed, faults).await?;
        Ok::<_, String>((races, cached))
    })
    .map_err(|e| e.to_string())??;
    let (races, cached) = races;
    let (recv_timeouts, accept_timeouts) = races;
    // `sim::run` finishes every queued job, so abandoned opens are closed.
    if kernel.open_fds() != 0 {
        return Err(format!("{} fds leaked by cancelled ops", kernel.open_fds()));
    }
    Ok(format!(
        "{SLEEPERS} timers, {} channel items, {CANCELLERS} cancellations, \
         {recv_timeouts} timed-out recvs and {accept_timeouts} timed-out accepts raced, {cached}",
        PRODUCERS * ITEMS_PER_PRODUCER
    ))
}
