//! Tests of the io_uring driver: ring selection and setup errors, the
//! pool fallback, batching and device-bound submits, parking, and the
//! abandoned-reader count (over recording rings and the kernel's).

use super::*;
use crate::driver::{select, Backend};
use crate::sys::real::{RealKernel, ThreadPool};
use crate::sys::Offload;

/// A ring source whose setup always fails with `errno`.
struct RefusingRings {
    errno: i32,
    io_uring_disabled: Option<u32>,
}

impl RingSource for RefusingRings {
    fn id(&self) -> u64 {
        u64::MAX
    }

    fn open(&self, _entries: u32) -> io::Result<Box<dyn CompletionRing>> {
        Err(io::Error::from_raw_os_error(self.errno))
    }

    fn io_uring_disabled(&self) -> Option<u32> {
        self.io_uring_disabled
    }
}

fn select_with(
    requested: Backend,
    env: Option<&str>,
    errno: i32,
) -> io::Result<(crate::driver::Driver, crate::driver::BackendReport)> {
    let rings = Arc::new(RefusingRings {
        errno,
        io_uring_disabled: Some(0),
    });
    let mut host = crate::driver::Host::real(|| {
        Ok(Arc::new(ThreadPool::new("select-test", 1, 8)?) as Arc<dyn Offload>)
    });
    host.rings = rings;
    select(requested, env, "the runtime builder", host)
}

#[test]
fn auto_skips_a_ring_refused_by_seccomp_and_says_why() {
    let (_, report) = select_with(Backend::Auto, None, libc::EPERM).unwrap();
    assert_ne!(report.selected, Backend::IoUring, "{report}");
    let (rejected, why) = &report.rejected[0];
    assert_eq!(*rejected, Backend::IoUring);
    assert!(why.contains("EPERM") && why.contains("seccomp"), "{why}");
    assert!(report.to_string().contains("uring rejected"), "{report}");
}

#[test]
fn forcing_a_refused_ring_names_the_reason() {
    let err = select_with(Backend::IoUring, None, libc::ENOMEM)
        .err()
        .expect("a forced ring that cannot be set up must fail");
    let text = err.to_string();
    assert!(
        text.contains("uring was requested by the runtime builder"),
        "{text}"
    );
    assert!(text.contains("RLIMIT_MEMLOCK"), "{text}");
    let err = select_with(Backend::Auto, Some("uring"), libc::ENOSYS)
        .err()
        .expect("IOKERNEL_BACKEND=uring on a kernel without io_uring must fail");
    let text = err.to_string();
    assert!(text.contains("requested by IOKERNEL_BACKEND"), "{text}");
    assert!(text.contains("ENOSYS"), "{text}");
    // Another forced backend is not affected by the refusing ring.
    let (_, report) = select_with(Backend::Auto, Some("pool"), libc::EPERM).unwrap();
    assert_eq!(report.selected, Backend::ThreadPool);
}

/// A ring whose submission queue never drains (every push finds it full).
struct NeverDrains;

impl CompletionRing for NeverDrains {
    #[allow(unsafe_code)] // implements the seam's unsafe push
    unsafe fn push(&mut self, entry: RingEntry) -> Result<(), SqFull> {
        Err(SqFull(entry))
    }
    fn queued(&mut self) -> usize {
        1
    }
    fn submit(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn wait(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
    fn pop(&mut self) -> Option<(u64, i32)> {
        None
    }
    fn supports(&self, _opcode: u8) -> bool {
        true
    }
    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        Arc::new(|| {})
    }
}

struct NeverDrainingRings;

impl RingSource for NeverDrainingRings {
    fn id(&self) -> u64 {
        u64::MAX - 1
    }
    fn open(&self, _entries: u32) -> io::Result<Box<dyn CompletionRing>> {
        Ok(Box::new(NeverDrains))
    }
}

#[test]
fn an_entry_the_ring_never_takes_goes_back_to_the_pool() {
    let offload: Arc<dyn Offload> = Arc::new(ThreadPool::new("never-drains", 1, 8).unwrap());
    let pool = PoolDriver::new(Arc::new(RealKernel), offload);
    let driver = UringDriver::new(pool, Arc::new(NeverDrainingRings)).unwrap();
    let op = crate::op::file::Sync {
        fd: -1,
        kind: crate::op::file::SyncKind::All,
    };
    // Bounded: the push gives up with EBUSY and the op comes back
    // untouched for the pool, instead of spinning on a full queue.
    let back = driver
        .submit(op, Waker::noop())
        .err()
        .expect("the op comes back");
    assert_eq!(back.fd, -1);
    close_thread_ring(u64::MAX - 1);
}

/// What a [`Recording`] ring saw and holds.
#[derive(Default)]
struct RecordingState {
    queued: Vec<u64>,
    with_kernel: Vec<u64>,
    completions: VecDeque<(u64, i32)>,
    /// Submits that handed entries over.
    submits: usize,
    /// Entries complete inside the submit (page-cache hits).
    complete_on_submit: bool,
    /// What every completion says (0 unless a test sets it).
    res: i32,
    /// Calls of `submit` and of `wait`: the kernel ring's enters.
    enters: usize,
    /// Calls of `wait`.
    waits: usize,
}

impl RecordingState {
    fn hand_over(&mut self) {
        let entries = std::mem::take(&mut self.queued);
        self.submits += usize::from(!entries.is_empty());
        if self.complete_on_submit {
            let res = self.res;
            self.completions.extend(entries.iter().map(|&u| (u, res)));
        } else {
            self.with_kernel.extend(entries);
        }
    }
}

/// A ring that records submits and completes entries when told to.
struct Recording(Arc<std::sync::Mutex<RecordingState>>);

impl CompletionRing for Recording {
    #[allow(unsafe_code)] // implements the seam's unsafe push
    unsafe fn push(&mut self, entry: RingEntry) -> Result<(), SqFull> {
        self.0.lock().unwrap().queued.push(entry.user_data);
        Ok(())
    }
    fn queued(&mut self) -> usize {
        self.0.lock().unwrap().queued.len()
    }
    fn submit(&mut self) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        state.enters += 1;
        state.hand_over();
        Ok(())
    }
    fn wait(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        state.enters += 1;
        state.waits += 1;
        state.hand_over();
        let done: Vec<u64> = state.with_kernel.drain(..).collect();
        let res = state.res;
        state.completions.extend(done.into_iter().map(|u| (u, res)));
        Ok(())
    }
    fn pop(&mut self) -> Option<(u64, i32)> {
        self.0.lock().unwrap().completions.pop_front()
    }
    fn supports(&self, _opcode: u8) -> bool {
        true
    }
    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        Arc::new(|| {})
    }
}

struct RecordingRings(Arc<std::sync::Mutex<RecordingState>>);

impl RingSource for RecordingRings {
    fn id(&self) -> u64 {
        u64::MAX - 3
    }
    fn open(&self, _entries: u32) -> io::Result<Box<dyn CompletionRing>> {
        Ok(Box::new(Recording(Arc::clone(&self.0))))
    }
}

/// A driver on a [`Recording`] ring that starts as `state`; its state,
/// the driver and the ring source's id.
fn recording_driver(
    state: RecordingState,
) -> (Arc<std::sync::Mutex<RecordingState>>, UringDriver, u64) {
    let state = Arc::new(std::sync::Mutex::new(state));
    let offload: Arc<dyn Offload> = Arc::new(ThreadPool::new("recording", 1, 8).unwrap());
    let pool = PoolDriver::new(Arc::new(RealKernel), offload);
    let driver = UringDriver::new(pool, Arc::new(RecordingRings(Arc::clone(&state)))).unwrap();
    let id = driver.rings_id();
    (state, driver, id)
}

/// A socket op (it waits on a peer) reading `fd`.
fn socket_recv(fd: RawFd) -> crate::op::net::Recv<Vec<u8>> {
    crate::op::net::Recv {
        took_leftover: false,
        fd,
        buf: vec![0u8; 8],
        flags: crate::sys::MsgFlags::NONE,
        short_drains: false,
    }
}

/// A storage op (it waits on no peer).
fn storage_sync() -> crate::op::file::Sync {
    crate::op::file::Sync {
        fd: -1,
        kind: crate::op::file::SyncKind::All,
    }
}

#[test]
fn a_device_bound_ring_submits_each_storage_entry_at_once() {
    let (state, driver, id) = recording_driver(RecordingState::default());
    let sync = storage_sync;
    let recv = || socket_recv(-1);
    let submits = || state.lock().unwrap().submits;
    // What a park does before and after its wait.
    let park_submit = || {
        with_existing_ring(id, |ring| {
            ring.flush().unwrap();
            ring.dispatch();
            ring.note_device();
            ring.device_bound
        })
        .unwrap()
    };
    let park_wait = || with_existing_ring(id, |ring| ring.ring.wait(None).unwrap());
    let mut ops = Vec::new();
    // A fresh ring has not seen the device yet: the entry waits for
    // the park.
    ops.push(driver.submit(sync(), Waker::noop()).ok().unwrap());
    between_polls(id);
    assert_eq!(submits(), 0, "batched until the worker parks");
    assert!(park_submit(), "a storage op is with the kernel");
    assert_eq!(submits(), 1);
    park_wait();
    // Woken with everything done: still device-bound (a burst that
    // came back together must not turn the rule off), so the next
    // storage entry goes at once...
    between_polls(id);
    ops.push(driver.submit(sync(), Waker::noop()).ok().unwrap());
    between_polls(id);
    assert_eq!(submits(), 2, "a device-bound ring submits at once");
    // ...and so does the one after it, with the first still out.
    ops.push(driver.submit(sync(), Waker::noop()).ok().unwrap());
    between_polls(id);
    assert_eq!(submits(), 3, "one enter per storage op, as they come");
    // Entries that complete inside the submit (page-cache hits) end
    // the device-bound state: the next entry waits for the park.
    state.lock().unwrap().complete_on_submit = true;
    park_wait();
    between_polls(id);
    ops.push(driver.submit(sync(), Waker::noop()).ok().unwrap());
    between_polls(id);
    assert_eq!(submits(), 4);
    ops.push(driver.submit(sync(), Waker::noop()).ok().unwrap());
    between_polls(id);
    assert_eq!(submits(), 4, "no submit of its own after page-cache hits");
    assert!(!park_submit());
    assert_eq!(submits(), 5);
    // A socket op waits on its peer, not the device: its entry with
    // the kernel does not make the ring device-bound.
    state.lock().unwrap().complete_on_submit = false;
    let mut socket_ops = vec![driver.submit(recv(), Waker::noop()).ok().unwrap()];
    assert!(!park_submit(), "a recv with the kernel is no storage op");
    socket_ops.push(driver.submit(recv(), Waker::noop()).ok().unwrap());
    between_polls(id);
    assert_eq!(submits(), 6, "socket entries keep batching");
    park_wait();
    between_polls(id);
    drop(ops);
    drop(socket_ops);
    assert_eq!(close_thread_ring(id), 0);
}

/// A worker for [`park`]: news (a wake or spawn) may be waiting.
#[derive(Default)]
struct TestPark {
    news: std::sync::atomic::AtomicBool,
}

impl Park for TestPark {
    fn park(&self, _timeout: Option<Duration>) {}
    fn take_news(&self) -> bool {
        self.news.swap(false, Ordering::SeqCst)
    }
    fn has_driver_wake(&self) -> bool {
        true
    }
    fn set_driver_wake(&self, _wake: super::super::sched::DriverWake) {}
    fn begin_driver_park(&self) -> bool {
        !self.take_news()
    }
    fn end_driver_park(&self) {}
}

/// Parking with only socket entries queued submits and waits in one
/// enter; a storage entry needs its submit apart (to learn whether it
/// left the ring device-bound), and news that came first still hands
/// the queued entries over, without a wait.
#[test]
fn a_park_without_storage_ops_submits_and_waits_in_one_enter() {
    let (state, driver, id) = recording_driver(RecordingState::default());
    let worker = TestPark::default();
    let recv = || socket_recv(-1);
    let sync = storage_sync;
    let counts = || {
        let state = state.lock().unwrap();
        (state.enters, state.waits, state.queued.len())
    };
    let mut ops = vec![driver.submit(recv(), Waker::noop()).ok().unwrap()];
    ops.push(driver.submit(recv(), Waker::noop()).ok().unwrap());
    park(id, &worker, None).unwrap().unwrap();
    assert_eq!(counts(), (1, 1, 0), "one enter hands both over and waits");

    let storage = driver.submit(sync(), Waker::noop()).ok().unwrap();
    park(id, &worker, None).unwrap().unwrap();
    assert_eq!(counts(), (3, 2, 0), "a storage entry: submit, then wait");
    drop(storage);
    park(id, &worker, None).unwrap().unwrap();
    let (enters, waits, _) = counts();

    ops.push(driver.submit(recv(), Waker::noop()).ok().unwrap());
    worker.news.store(true, Ordering::SeqCst);
    park(id, &worker, None).unwrap().unwrap();
    assert_eq!(
        counts(),
        (enters + 1, waits, 0),
        "news first: the entry is handed over, no wait"
    );
    drop(ops);
    assert_eq!(close_thread_ring(id), 0);
}

/// A dropped recv still with the kernel holds back the next reader of
/// its fd (bytes stay in order), found through the process-wide count
/// of abandoned readers; the count falls back when the op returns, so
/// later readers skip the table scan again.
#[test]
fn an_abandoned_reader_is_counted_until_its_op_returns() {
    let (_state, driver, id) = recording_driver(RecordingState {
        res: -libc::ECANCELED,
        ..RecordingState::default()
    });
    let recv = socket_recv;
    let deferred = || with_existing_ring(id, |ring| ring.deferred.len()).unwrap();
    let submit_all = || with_existing_ring(id, |ring| ring.flush().unwrap()).unwrap();
    let counted = || ABANDONED_READERS.load(Ordering::Acquire);
    let before = counted();
    let first = driver.submit(recv(-7), Waker::noop()).ok().unwrap();
    submit_all();
    let sync = driver
        .submit(
            crate::op::file::Sync {
                fd: -7,
                kind: crate::op::file::SyncKind::All,
            },
            Waker::noop(),
        )
        .ok()
        .unwrap();
    drop(sync);
    assert_eq!(counted(), before, "only readers are counted");
    drop(first);
    assert_eq!(counted(), before + 1, "the dropped recv is still out");
    let second = driver.submit(recv(-7), Waker::noop()).ok().unwrap();
    assert_eq!(deferred(), 1, "the next reader of its fd waits for it");
    let other = driver.submit(recv(-8), Waker::noop()).ok().unwrap();
    assert_eq!(deferred(), 1, "a reader of another fd does not");
    // The dropped recv comes back: the count falls, the held-back
    // reader goes to the kernel.
    with_existing_ring(id, |ring| {
        ring.ring.wait(None).unwrap();
        ring.dispatch();
    });
    assert_eq!(counted(), before);
    assert_eq!(deferred(), 0);
    let third = driver.submit(recv(-7), Waker::noop()).ok().unwrap();
    assert_eq!(deferred(), 0, "no abandoned reader left to wait for");
    with_existing_ring(id, |ring| {
        ring.ring.wait(None).unwrap();
        ring.dispatch();
    });
    // Taken results are no abandonment.
    for mut op in [second, other, third] {
        let waker = std::task::Waker::noop();
        assert!(op.poll(&mut Context::from_waker(waker)).is_ready());
    }
    assert_eq!(counted(), before);
    assert_eq!(close_thread_ring(id), 0);
}

/// Stands in for `KernelRings` off Linux: no kernel ring at all.
struct NoKernelRing;

impl RingSource for NoKernelRing {
    fn id(&self) -> u64 {
        u64::MAX - 2
    }
    fn open(&self, _entries: u32) -> io::Result<Box<dyn CompletionRing>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring: not built for this OS (io_uring is Linux-only; this is test-os)",
        ))
    }
}

#[test]
fn a_source_without_a_kernel_ring_says_why() {
    let why = availability(&NoKernelRing).expect_err("no ring, no backend");
    assert_eq!(
        why,
        "io_uring: not built for this OS (io_uring is Linux-only; this is test-os)"
    );
    // A kernel's own "unsupported" errno keeps the setup wording.
    let eopnotsupp = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
    assert!(
        setup_error(&eopnotsupp, None).starts_with("io_uring_setup failed: "),
        "{}",
        setup_error(&eopnotsupp, None)
    );
}

#[test]
fn setup_errors_name_their_cause() {
    let eperm = io::Error::from_raw_os_error(libc::EPERM);
    assert!(setup_error(&eperm, Some(2)).contains("kernel.io_uring_disabled = 2"));
    assert!(setup_error(&eperm, Some(1)).contains("io_uring_group"));
    assert!(setup_error(&eperm, Some(0)).contains("seccomp"));
    assert!(setup_error(&eperm, None).contains("seccomp"));
    let enosys = io::Error::from_raw_os_error(libc::ENOSYS);
    assert!(setup_error(&enosys, None).contains("no io_uring"));
    let enomem = io::Error::from_raw_os_error(libc::ENOMEM);
    assert!(setup_error(&enomem, None).contains("RLIMIT_MEMLOCK"));
}

/// A waker that unparks the thread that made it.
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Take completions to the ring of source `id` and dispatch them (with
/// the requests in its mailbox).
fn reap(id: u64) {
    with_existing_ring(id, |ring| {
        ring.flush().unwrap();
        ring.ring.wait(None).unwrap();
        ring.dispatch();
    })
    .unwrap();
}

/// Polled on a thread that does not hold its ring, a ring op asks the ring
/// (through its mailbox) to deliver through a shared completion: the
/// result comes whether the op finished before the request or after.
#[test]
fn a_ring_op_awaited_on_another_thread_gets_its_result() {
    for finished_first in [false, true] {
        let (_state, driver, id) = recording_driver(RecordingState {
            res: 5,
            ..RecordingState::default()
        });
        let mut recv = driver.submit(socket_recv(-7), Waker::noop()).ok().unwrap();
        if finished_first {
            reap(id);
        }
        let (asked, asked_rx) = std::sync::mpsc::channel();
        let afar = crate::sys::real::thread::spawn_named("afar".into(), move || {
            let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
            let mut cx = Context::from_waker(&waker);
            let mut asked = Some(asked);
            loop {
                if let Poll::Ready(crate::buf::BufResult(n, _)) = recv.poll(&mut cx) {
                    assert_eq!(n.unwrap(), 5);
                    return;
                }
                if let Some(asked) = asked.take() {
                    assert!(
                        matches!(recv.elsewhere, Elsewhere::Shared(_)),
                        "the first poll afar asks the ring"
                    );
                    asked.send(()).unwrap();
                }
                std::thread::park();
            }
        })
        .unwrap();
        asked_rx.recv().unwrap();
        reap(id);
        afar.join().unwrap();
        assert_eq!(close_thread_ring(id), 0);
    }
}

/// Dropped on another thread, a ring op is abandoned through the mailbox:
/// counted as an abandoned reader at once, so the next reader of its fd
/// on the ring waits for it, and uncounted when it comes back.
#[test]
fn a_ring_op_dropped_on_another_thread_is_abandoned_through_the_mailbox() {
    let (state, driver, id) = recording_driver(RecordingState {
        res: -libc::ECANCELED,
        ..RecordingState::default()
    });
    let counted = || ABANDONED_READERS.load(Ordering::Acquire);
    let deferred = || with_existing_ring(id, |ring| ring.deferred.len()).unwrap();
    let before = counted();
    let first = driver.submit(socket_recv(-7), Waker::noop()).ok().unwrap();
    with_existing_ring(id, |ring| ring.flush().unwrap()).unwrap();
    let first_user_data = first.user_data;
    crate::sys::real::thread::spawn_named("afar".into(), move || drop(first))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(counted(), before + 1, "counted before the ring hears of it");
    let mut second = driver.submit(socket_recv(-7), Waker::noop()).ok().unwrap();
    assert_eq!(deferred(), 1, "the next reader of its fd waits for it");
    assert!(
        state.lock().unwrap().queued.contains(&CANCEL_USER_DATA),
        "the ring asked the kernel to cancel {first_user_data:#x}"
    );
    reap(id);
    assert_eq!(counted(), before, "uncounted once it came back");
    assert_eq!(deferred(), 0);
    reap(id);
    let waker = Waker::noop();
    assert!(second.poll(&mut Context::from_waker(waker)).is_ready());
    assert_eq!(close_thread_ring(id), 0);
}

/// Results no future took before the ring closed wait in the ring's
/// mailbox: a later poll takes its result, a later drop discards it (an
/// `open`'s fd is closed), and the mailbox goes once nothing is left.
#[test]
fn results_a_closing_ring_holds_wait_for_their_futures() {
    let fd = dev_null();
    let (state, driver, id) = recording_driver(RecordingState {
        res: fd,
        ..RecordingState::default()
    });
    let mut recv = driver.submit(socket_recv(-7), Waker::noop()).ok().unwrap();
    let open = late_open(&driver);
    reap(id);
    let ring_id = recv.ring_id;
    // One more, still with the kernel when the ring closes: the drain
    // brings it back first.
    state.lock().unwrap().res = 2;
    let mut late = driver.submit(socket_recv(-8), Waker::noop()).ok().unwrap();
    assert_eq!(close_thread_ring(id), 0);
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let Poll::Ready(crate::buf::BufResult(n, _)) = recv.poll(&mut cx) else {
        panic!("the closed ring's result was not there");
    };
    assert_eq!(n.unwrap(), usize::try_from(fd).unwrap());
    let Poll::Ready(crate::buf::BufResult(n, _)) = late.poll(&mut cx) else {
        panic!("the drained op's result was not there");
    };
    assert_eq!(n.unwrap(), 2);
    assert!(
        mailbox::of_ring(ring_id).is_some(),
        "the open's result is left"
    );
    drop(open);
    assert_eq!(
        RealKernel.close(fd),
        Err(Errno::EBADF),
        "the late fd leaked"
    );
    assert!(
        mailbox::of_ring(ring_id).is_none(),
        "a closed mailbox with nothing left is unregistered"
    );
}

/// Results a ring holds when its thread's loop leaves (`block_on`
/// returned, the ring stays open) reach futures awaited elsewhere: one
/// polled afar only after the leave takes its result from the mailbox
/// (the ring's table is read by no loop now), one polled afar before it
/// gets it through its completion, one polled later on the ring's own
/// thread finds it as well, and one dropped later discards it (an
/// `open`'s late fd is closed).
#[test]
fn results_a_leaving_loop_holds_reach_their_futures() {
    let fd = dev_null();
    let (_state, driver, id) = recording_driver(RecordingState {
        res: fd,
        ..RecordingState::default()
    });
    let mut asked_before = driver.submit(socket_recv(-7), Waker::noop()).ok().unwrap();
    let mut asked_after = driver.submit(socket_recv(-8), Waker::noop()).ok().unwrap();
    let mut polled_here = driver.submit(socket_recv(-9), Waker::noop()).ok().unwrap();
    let open = late_open(&driver);
    let ring_id = asked_after.ring_id;
    let mut asked_before = afar(move || {
        let waker = Waker::noop();
        assert!(asked_before
            .poll(&mut Context::from_waker(waker))
            .is_pending());
        asked_before
    });
    leave(id);
    let want = usize::try_from(fd).unwrap();
    let got_afar = afar(move || {
        let mut cx = Context::from_waker(Waker::noop());
        let mut results = Vec::new();
        for op in [&mut asked_before, &mut asked_after] {
            let Poll::Ready(crate::buf::BufResult(n, _)) = op.poll(&mut cx) else {
                panic!("a result the leaving loop held did not reach its future afar");
            };
            results.push(n.unwrap());
        }
        results
    });
    assert_eq!(got_afar, [want, want]);
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(crate::buf::BufResult(n, _)) = polled_here.poll(&mut cx) else {
        panic!("a result the leaving loop held did not reach its future on its thread");
    };
    assert_eq!(n.unwrap(), want);
    assert!(
        with_existing_ring(id, |_| ()).is_some(),
        "the ring stays open for the thread's next loop"
    );
    drop(open);
    assert_eq!(
        RealKernel.close(fd),
        Err(Errno::EBADF),
        "the late fd leaked"
    );
    assert_eq!(close_thread_ring(id), 0);
    assert!(
        mailbox::of_ring(ring_id).is_none(),
        "a closed mailbox with nothing left is unregistered"
    );
}

/// As its thread's loop leaves, a ring gives back the ops that wait on a
/// peer, unstarted: it cancels the one with the kernel, and the one held
/// back for an abandoned reader of its fd is given back once that reader
/// is done (never started); storage ops keep their own result. Each
/// future then runs its op again where it is polled (here, with no
/// runtime, on the kernel itself: the fake fds give `EBADF`, where a
/// cancelled op would have said `ECANCELED`).
#[test]
fn a_leaving_loop_gives_back_the_ops_that_wait_on_a_peer() {
    let (state, driver, id) = recording_driver(RecordingState::default());
    let mut waiting = driver.submit(socket_recv(-7), Waker::noop()).ok().unwrap();
    let abandoned = driver.submit(socket_recv(-9), Waker::noop()).ok().unwrap();
    let mut sync = driver.submit(storage_sync(), Waker::noop()).ok().unwrap();
    with_existing_ring(id, |ring| ring.flush().unwrap()).unwrap();
    drop(abandoned);
    let held_back = driver.submit(socket_recv(-9), Waker::noop()).ok().unwrap();
    assert_eq!(
        with_existing_ring(id, |ring| ring.deferred.len()).unwrap(),
        1,
        "the next reader of fd -9 waits for the abandoned one"
    );
    // The kernel answers every entry from now on as a won cancel would.
    state.lock().unwrap().res = -libc::ECANCELED;
    leave(id);
    let mut cx = Context::from_waker(Waker::noop());
    let errno_of = |polled: Poll<crate::buf::BufResult<usize, Vec<u8>>>| match polled {
        Poll::Ready(crate::buf::BufResult(Err(e), _)) => e.raw_os_error(),
        _ => panic!("the recv did not finish"),
    };
    assert_eq!(
        errno_of(waiting.poll(&mut cx)),
        Some(libc::EBADF),
        "the recv with the kernel was not given back and run again"
    );
    let Poll::Ready(result) = sync.poll(&mut cx) else {
        panic!("the storage op did not finish");
    };
    assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    let mut held_back = held_back;
    assert_eq!(
        afar(move || errno_of(held_back.poll(&mut Context::from_waker(Waker::noop())))),
        Some(libc::EBADF),
        "the held-back recv was not given back and run again afar"
    );
    assert_eq!(close_thread_ring(id), 0);
}

/// Run `body` on a thread that does not hold the ring: what it returns.
fn afar<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    crate::sys::real::thread::spawn_named("afar".into(), move || {
        tx.send(body()).unwrap();
    })
    .unwrap()
    .join()
    .unwrap();
    rx.recv().unwrap()
}

/// A real open fd (of `/dev/null`): the result recording rings give an
/// `open`, so that discarding it must close a real fd.
fn dev_null() -> RawFd {
    RealKernel
        .open(
            &std::ffi::CString::new("/dev/null").unwrap(),
            crate::sys::OpenFlags::RDONLY,
            0,
        )
        .unwrap()
}

/// An `open` on `driver`'s ring (its result is whatever the ring says).
fn late_open(driver: &UringDriver) -> Submission<crate::op::path::Open> {
    driver
        .submit(
            crate::op::path::Open {
                path: crate::op::path::KernelPath::new(std::path::Path::new("/late")),
                flags: crate::sys::OpenFlags::RDONLY,
                mode: 0,
            },
            Waker::noop(),
        )
        .ok()
        .unwrap()
}
