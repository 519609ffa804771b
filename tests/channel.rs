//! `sync::channel` semantics on the real runtime: bounded backpressure,
//! close, end of stream, many producers and consumers, cancellation.

use iokernel::runtime::{self, sleep, timeout, Backend, Runtime};
use iokernel::sync::{channel, unbounded_channel, TryRecvError, TrySendError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .compute_threads(workers)
        .io_threads(2)
        .backend(Backend::ThreadPool)
        .build()
        .expect("runtime builds")
}

#[test]
fn a_full_channel_holds_senders_back_until_an_item_is_taken() {
    let rt = runtime(2);
    let (tx, rx) = channel::<u32>(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    let sent = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&sent);
    let sender = rt.spawn(async move {
        tx.send(3).await.unwrap();
        s.store(1, Ordering::SeqCst);
    });
    rt.block_on(sleep(Duration::from_millis(20)));
    assert_eq!(sent.load(Ordering::SeqCst), 0, "send must wait while full");
    assert_eq!(rx.len(), 2);
    rt.block_on(async {
        assert_eq!(rx.recv().await, Some(1));
        sender.await.unwrap();
    });
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Ok(3));
    // The sender task is gone: end of stream.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn close_fails_sends_but_queued_items_are_still_delivered() {
    let rt = runtime(1);
    let (tx, rx) = unbounded_channel::<&str>();
    rt.block_on(async {
        tx.send("a").await.unwrap();
        tx.send("b").await.unwrap();
        rx.close();
        assert_eq!(tx.send("c").await.unwrap_err().0, "c");
        assert!(tx.is_closed());
        assert_eq!(rx.recv().await, Some("a"));
        assert_eq!(rx.recv().await, Some("b"));
        assert_eq!(rx.recv().await, None);
    });
}

#[test]
fn end_of_stream_only_after_every_sender_is_dropped() {
    let rt = runtime(1);
    let (tx, rx) = channel::<u8>(4);
    let tx2 = tx.clone();
    rt.block_on(async {
        tx.send(1).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(
            rx.try_recv(),
            Err(TryRecvError::Empty),
            "one sender remains"
        );
        tx2.send(2).await.unwrap();
        drop(tx2);
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
    });
}

#[test]
fn a_waiting_receiver_wakes_at_end_of_stream() {
    let rt = runtime(2);
    let (tx, rx) = channel::<u8>(1);
    let receiver = rt.spawn(async move { rx.recv().await });
    rt.block_on(sleep(Duration::from_millis(10)));
    drop(tx);
    assert_eq!(rt.block_on(receiver).unwrap(), None);
}

#[test]
fn a_blocked_sender_fails_when_every_receiver_is_dropped() {
    let rt = runtime(2);
    let (tx, rx) = channel::<u8>(1);
    tx.try_send(0).unwrap();
    let sender = rt.spawn(async move { tx.send(1).await.map_err(|e| e.0) });
    rt.block_on(sleep(Duration::from_millis(10)));
    drop(rx);
    assert_eq!(rt.block_on(sender).unwrap(), Err(1));
}

#[test]
fn many_producers_and_consumers_lose_and_duplicate_nothing() {
    let rt = runtime(3);
    let (tx, rx) = channel::<(u32, u32)>(16);
    const PRODUCERS: u32 = 8;
    const PER_PRODUCER: u32 = 5_000;
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            rt.spawn(async move {
                for i in 0..PER_PRODUCER {
                    tx.send((p, i)).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..5)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(async move {
                let mut seen = Vec::new();
                while let Some(item) = rx.recv().await {
                    seen.push(item);
                }
                seen
            })
        })
        .collect();
    drop(rx);
    let all = rt.block_on(async {
        for p in producers {
            p.await.unwrap();
        }
        let mut all = Vec::new();
        for c in consumers {
            all.extend(c.await.unwrap());
        }
        all
    });
    assert_eq!(all.len(), (PRODUCERS * PER_PRODUCER) as usize);
    let mut per_producer: HashMap<u32, Vec<u32>> = HashMap::new();
    for (p, i) in all {
        per_producer.entry(p).or_default().push(i);
    }
    for (p, mut items) in per_producer {
        items.sort_unstable();
        assert_eq!(items, (0..PER_PRODUCER).collect::<Vec<_>>(), "producer {p}");
    }
}

#[test]
fn a_cancelled_recv_does_not_swallow_an_item() {
    let rt = runtime(2);
    let (tx, rx) = channel::<u32>(1);
    rt.block_on(async {
        // Time out a receive: its future is dropped while waiting.
        assert!(timeout(Duration::from_millis(5), rx.recv()).await.is_err());
        let rx2 = rx.clone();
        let other = runtime::spawn(async move { rx2.recv().await });
        sleep(Duration::from_millis(5)).await;
        tx.send(9).await.unwrap();
        assert_eq!(other.await.unwrap(), Some(9));
    });
}

#[test]
fn unbounded_channel_never_blocks_senders() {
    let (tx, rx) = unbounded_channel::<u32>();
    for i in 0..100_000 {
        tx.try_send(i).unwrap();
    }
    drop(tx);
    let got: Vec<u32> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(got.len(), 100_000);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "FIFO order");
}

#[test]
#[should_panic(expected = "capacity must be at least 1")]
fn capacity_zero_is_refused_not_read_as_unbounded() {
    let _ = channel::<u32>(0);
}

#[test]
fn capacity_one_holds_one_item_until_received() {
    let (tx, rx) = channel::<u32>(1);
    tx.try_send(1).unwrap();
    assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(2).unwrap();
}
