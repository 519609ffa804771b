//! The `tracing` feature: one `iok.op` span per op (op kind, fd, len,
//! result) on every real backend and on the simulated kernel, counted by a
//! hand-written `Subscriber` installed as the global default (nextest runs
//! each test in its own process).

use iokernel::io::{self, OpenFlags};
use iokernel::runtime::{backend_availability, Backend, Runtime};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// What one span carried.
#[derive(Clone, Debug, Default, PartialEq)]
struct OpSpan {
    op: String,
    fd: i64,
    len: u64,
    result: Option<i64>,
    closed: bool,
}

#[derive(Default)]
struct Fields(OpSpan);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "op" {
            self.0.op = format!("{value:?}").trim_matches('"').to_string();
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "op" {
            self.0.op = value.to_string();
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "fd" => self.0.fd = value,
            "result" => self.0.result = Some(value),
            "len" => self.0.len = value as u64,
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "len" => self.0.len = value,
            "fd" => self.0.fd = value as i64,
            "result" => self.0.result = Some(value as i64),
            _ => {}
        }
    }
}

/// Keeps every `iok.op` span's fields.
#[derive(Default)]
struct Counter {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, OpSpan>>,
}

impl Subscriber for Counter {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.name() == "iok.op"
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = Fields::default();
        span.record(&mut fields);
        self.spans.lock().unwrap().insert(id, fields.0);
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some(entry) = spans.get_mut(&span.into_u64()) {
            let mut fields = Fields(entry.clone());
            values.record(&mut fields);
            *entry = fields.0;
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
    fn try_close(&self, id: Id) -> bool {
        if let Some(entry) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            entry.closed = true;
        }
        true
    }
}

/// The process-wide counter (a global default reaches the runtime's
/// worker threads too).
fn counter() -> Arc<Counter> {
    static COUNTER: OnceLock<Arc<Counter>> = OnceLock::new();
    Arc::clone(COUNTER.get_or_init(|| {
        let counter = Arc::new(Counter::default());
        tracing::subscriber::set_global_default(Forward(Arc::clone(&counter)))
            .expect("the only global subscriber");
        counter
    }))
}

/// `Subscriber` for an `Arc<Counter>`.
struct Forward(Arc<Counter>);

impl Subscriber for Forward {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.0.new_span(span)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        self.0.record(span, values)
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.0.record_follows_from(span, follows)
    }
    fn event(&self, event: &Event<'_>) {
        self.0.event(event)
    }
    fn enter(&self, span: &Id) {
        self.0.enter(span)
    }
    fn exit(&self, span: &Id) {
        self.0.exit(span)
    }
    fn try_close(&self, id: Id) -> bool {
        self.0.try_close(id)
    }
}

/// Take the spans recorded so far.
fn take_spans(counter: &Counter) -> Vec<OpSpan> {
    let mut spans: Vec<(u64, OpSpan)> = counter.spans.lock().unwrap().drain().collect();
    spans.sort_by_key(|(id, _)| *id);
    spans.into_iter().map(|(_, s)| s).collect()
}

const WRITES: u64 = 5;

/// open, WRITES pwrites of 100 bytes, one pread of 300, a failing pread
/// on a closed fd (EBADF), close.
async fn workload(path: std::path::PathBuf) -> std::io::Result<i32> {
    let fd = io::open(&path, OpenFlags::RDWR | OpenFlags::CREAT, 0o644).await?;
    for i in 0..WRITES {
        io::pwrite(fd, vec![1u8; 100], i * 100).await.0?;
    }
    let n = io::pread(fd, vec![0u8; 300], 0).await.0?;
    assert_eq!(n, 300);
    io::close(fd).await?;
    let err = io::pread(fd, vec![0u8; 8], 0).await.0.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    Ok(fd)
}

fn check(spans: &[OpSpan], fd: i32, on: &str) {
    let kinds: Vec<&str> = spans.iter().map(|s| s.op.as_str()).collect();
    let mut expected = vec!["open"];
    expected.extend(std::iter::repeat("pwrite").take(WRITES as usize));
    expected.extend(["pread", "close", "pread"]);
    assert_eq!(kinds, expected, "{on}: {spans:?}");
    assert!(spans.iter().all(|s| s.closed), "{on}: every span closed");
    assert_eq!(
        spans[0].result,
        Some(i64::from(fd)),
        "{on}: open's result is the fd"
    );
    for write in &spans[1..=WRITES as usize] {
        assert_eq!(
            (write.fd, write.len, write.result),
            (i64::from(fd), 100, Some(100)),
            "{on}"
        );
    }
    let read = &spans[WRITES as usize + 1];
    assert_eq!(
        (read.fd, read.len, read.result),
        (i64::from(fd), 300, Some(300)),
        "{on}"
    );
    let failed = spans.last().unwrap();
    assert_eq!(
        failed.result,
        Some(-i64::from(libc::EBADF)),
        "{on}: minus the errno"
    );
}

#[test]
fn one_span_per_op_on_every_backend_and_on_the_simulated_kernel() {
    let counter = counter();
    for backend in Backend::CONCRETE {
        if let Err(reason) = backend_availability(backend) {
            eprintln!("skipping {backend}: {reason}");
            continue;
        }
        // Counting off too: the spans do not depend on the metrics.
        for metrics in [true, false] {
            let rt = Runtime::builder()
                .compute_threads(2)
                .io_threads(2)
                .backend(backend)
                .metrics(metrics)
                .build()
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            take_spans(&counter);
            let path = dir.path().join("t");
            // On a worker (spawned) as well as on the block_on thread.
            let fd = rt.block_on(rt.spawn(workload(path))).unwrap().unwrap();
            drop(rt);
            check(
                &take_spans(&counter),
                fd,
                &format!("{backend} metrics={metrics}"),
            );
        }
    }
    for driver in [
        iokernel::sim::SimDriver::Pool,
        iokernel::sim::SimDriver::Ring,
        iokernel::sim::SimDriver::EpollSemantics,
        iokernel::sim::SimDriver::KqueueSemantics,
    ] {
        let mut options = iokernel::sim::SimOptions::new(9);
        options.driver = driver;
        let kernel = iokernel::sim::new_kernel(options).unwrap();
        take_spans(&counter);
        let fd = iokernel::sim::run(&kernel, workload("/t".into()))
            .unwrap()
            .unwrap();
        check(&take_spans(&counter), fd, &format!("sim {driver:?}"));
    }
}
