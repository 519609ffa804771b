//! `Pipeline`: a small named task graph run on its own runtime, mirroring
//! the original C++ API (`PipelineConfig().with_name(..)`, `make_task`,
//! `set_source`, `execute`).
//!
//! Tasks whose dependencies have all succeeded run concurrently on the
//! runtime's workers. [`ErrorPolicy::FailFast`] stops at the first failure
//! (running tasks are aborted, queued ones never start);
//! [`ErrorPolicy::Continue`] runs everything that does not depend on a
//! failed task and reports every failure at the end.

use super::{Backend, JoinHandle, Runtime};
use crate::sync::unbounded_channel;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a task failed: its error, with the errno reachable without
/// downcasting ([`TaskError::errno`]).
///
/// ```
/// use iokernel::runtime::TaskError;
/// let error = TaskError::new(std::io::Error::from_raw_os_error(28));
/// assert_eq!(error.errno(), Some(28)); // ENOSPC
/// assert_eq!(TaskError::new("no errno here").errno(), None);
/// ```
pub struct TaskError {
    inner: Box<dyn Error + Send + Sync + 'static>,
}

impl TaskError {
    /// Wrap any error (an `io::Error`, a `String`, a boxed error).
    pub fn new(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> TaskError {
        TaskError {
            inner: error.into(),
        }
    }

    /// The raw errno of the first `io::Error` in the error's chain (the
    /// error itself, what it wraps, or its `source()`s), if any.
    pub fn errno(&self) -> Option<i32> {
        let mut next: Option<&(dyn Error + 'static)> = Some(&*self.inner);
        while let Some(error) = next {
            if let Some(io_error) = error.downcast_ref::<io::Error>() {
                if let Some(errno) = io_error.raw_os_error() {
                    return Some(errno);
                }
                if let Some(inner) = io_error.get_ref() {
                    next = Some(inner);
                    continue;
                }
            }
            next = error.source();
        }
        None
    }

    /// The error the task returned.
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// The error the task returned, owned.
    pub fn into_inner(self) -> Box<dyn Error + Send + Sync + 'static> {
        self.inner
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl Error for TaskError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.inner.source()
    }
}

impl From<io::Error> for TaskError {
    fn from(error: io::Error) -> TaskError {
        TaskError::new(error)
    }
}

type TaskFuture<T> = Pin<Box<dyn Future<Output = Result<T, TaskError>> + Send>>;
type TaskBody<T> = Box<dyn FnOnce(TaskScope) -> TaskFuture<T> + Send>;

/// What a task body may return: `()`, or `Result<T, E>` (an
/// `io::Result<T>`, say) whose `T` is the task's value and whose error
/// becomes a [`TaskError`].
pub trait TaskOutcome {
    /// The task's value.
    type Value;
    /// Convert to the pipeline's result type.
    fn into_result(self) -> Result<Self::Value, TaskError>;
}

impl TaskOutcome for () {
    type Value = ();
    fn into_result(self) -> Result<(), TaskError> {
        Ok(())
    }
}

impl<T, E: Into<Box<dyn Error + Send + Sync + 'static>>> TaskOutcome for Result<T, E> {
    type Value = T;
    fn into_result(self) -> Result<T, TaskError> {
        self.map_err(TaskError::new)
    }
}

/// What a running task knows about itself.
#[derive(Clone, Debug)]
pub struct TaskScope {
    name: String,
}

impl TaskScope {
    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A named unit of work in a [`Pipeline`], producing a `T`.
pub struct Task<T = ()> {
    name: String,
    body: TaskBody<T>,
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("name", &self.name).finish()
    }
}

/// Make a task from a closure returning a future (`async move { .. }`)
/// and a name, in the seed's order (`make_task(body, "Name")`). The
/// future's output is `()` or a `Result<T, E>`: `T` is the task's value
/// ([`PipelineReport::values`]), the error fails the task.
///
/// ```
/// use iokernel::runtime::{make_task, Pipeline, PipelineConfig};
/// let task = make_task(
///     |scope| async move {
///         assert_eq!(scope.name(), "Hello");
///         Ok::<_, std::io::Error>(42)
///     },
///     "Hello",
/// );
/// let mut pipeline = Pipeline::new(PipelineConfig::new().with_name("Doc").with_compute_threads(1));
/// pipeline.set_source(vec![task]);
/// let report = pipeline.execute().unwrap();
/// assert_eq!(report.completed, vec!["Hello".to_string()]);
/// assert_eq!(report.into_values(), vec![42]);
/// ```
pub fn make_task<F, Fut>(
    body: F,
    name: impl Into<String>,
) -> Task<<Fut::Output as TaskOutcome>::Value>
where
    F: FnOnce(TaskScope) -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutcome,
{
    Task {
        name: name.into(),
        body: Box::new(move |scope| Box::pin(async move { body(scope).await.into_result() })),
    }
}

/// What happens after a task fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop the pipeline at the first failure.
    #[default]
    FailFast,
    /// Keep running every task that does not depend on a failed one.
    Continue,
}

/// How a pipeline's runtime is set up.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    name: String,
    compute_threads: Option<usize>,
    io_threads: Option<usize>,
    io_backend: Backend,
    error_policy: ErrorPolicy,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig::new()
    }
}

impl PipelineConfig {
    /// Defaults: name "pipeline", one worker per core, the runtime's
    /// default I/O threads, Auto backend, fail fast.
    pub fn new() -> PipelineConfig {
        PipelineConfig {
            name: "pipeline".to_string(),
            compute_threads: None,
            io_threads: None,
            io_backend: Backend::Auto,
            error_policy: ErrorPolicy::FailFast,
        }
    }

    /// Name for reports and thread names.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Number of compute workers.
    pub fn with_compute_threads(mut self, n: usize) -> Self {
        self.compute_threads = Some(n);
        self
    }

    /// Threads for blocking I/O (the pool behind every backend; see
    /// [`Builder::io_threads`](super::Builder::io_threads)).
    ///
    /// ```
    /// use iokernel::runtime::{current_backend_report, make_task, Backend, Pipeline, PipelineConfig};
    /// let config = PipelineConfig::new().with_io_threads(3).with_io_backend(Backend::ThreadPool);
    /// let mut pipeline = Pipeline::new(config);
    /// pipeline.set_source(vec![make_task(
    ///     |_| async { Ok::<_, std::io::Error>(current_backend_report().unwrap().io_threads) },
    ///     "threads",
    /// )]);
    /// assert_eq!(pipeline.execute().unwrap().into_values(), vec![3]);
    /// ```
    pub fn with_io_threads(mut self, n: usize) -> Self {
        self.io_threads = Some(n);
        self
    }

    /// The I/O backend.
    pub fn with_io_backend(mut self, backend: Backend) -> Self {
        self.io_backend = backend;
        self
    }

    /// What to do after a task fails.
    pub fn with_error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.error_policy = policy;
        self
    }
}

/// A task added to a [`Pipeline`]: its index there, and which pipeline it
/// belongs to (an id is only good for the pipeline that returned it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId {
    pipeline: u64,
    index: usize,
}

/// Tells pipelines (and so their task ids) apart.
static NEXT_PIPELINE: AtomicU64 = AtomicU64::new(1);

/// Outcome of [`Pipeline::execute`], task names in completion order, and
/// the values of the tasks that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineReport<T = ()> {
    /// Tasks that finished successfully.
    pub completed: Vec<String>,
    /// Tasks that failed, with their error text.
    pub failed: Vec<(String, String)>,
    /// Tasks never run (a dependency failed, or fail-fast stopped early).
    pub skipped: Vec<String>,
    /// Each task's value, by [`TaskId`] (`None`: it did not succeed).
    values: Vec<Option<T>>,
    /// The pipeline that ran ([`TaskId`]'s tag; 0 for none).
    pipeline: u64,
}

impl<T> Default for PipelineReport<T> {
    fn default() -> Self {
        PipelineReport {
            completed: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            values: Vec::new(),
            pipeline: 0,
        }
    }
}

impl<T> PipelineReport<T> {
    /// The value of task `id`, if it succeeded (`None` too for an id of
    /// another pipeline).
    pub fn value(&self, id: TaskId) -> Option<&T> {
        if id.pipeline != self.pipeline {
            return None;
        }
        self.values.get(id.index).and_then(Option::as_ref)
    }

    /// The values of the tasks that succeeded, in the order the tasks were
    /// added.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.values.iter().flatten()
    }

    /// The values of the tasks that succeeded, in the order the tasks were
    /// added.
    pub fn into_values(self) -> Vec<T> {
        self.values.into_iter().flatten().collect()
    }

    /// The same report without the values.
    fn without_values(self) -> PipelineReport {
        PipelineReport {
            completed: self.completed,
            failed: self.failed,
            skipped: self.skipped,
            values: Vec::new(),
            pipeline: self.pipeline,
        }
    }
}

/// A pipeline run that did not fully succeed.
#[derive(Debug)]
pub enum PipelineError {
    /// The runtime could not start.
    Runtime(io::Error),
    /// [`Pipeline::execute`] was called again: the first run consumed the
    /// tasks, so there is nothing left to run.
    AlreadyExecuted,
    /// At least one task failed; the first failure and the full report
    /// (without the values of the tasks that succeeded).
    TaskFailed {
        /// Name of the first task that failed.
        task: String,
        /// Its error.
        error: TaskError,
        /// Everything that happened (boxed: it keeps the error small).
        report: Box<PipelineReport>,
    },
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Runtime(e) => write!(f, "pipeline runtime failed to start: {e}"),
            PipelineError::AlreadyExecuted => write!(
                f,
                "the pipeline already ran: its first execute() consumed the tasks"
            ),
            PipelineError::TaskFailed {
                task,
                error,
                report,
            } => write!(
                f,
                "task {task:?} failed: {error} ({} completed, {} failed, {} skipped)",
                report.completed.len(),
                report.failed.len(),
                report.skipped.len()
            ),
        }
    }
}

impl PipelineError {
    /// The errno behind the failure, if any: the runtime's start error's,
    /// or the first failed task's ([`TaskError::errno`]).
    pub fn errno(&self) -> Option<i32> {
        match self {
            PipelineError::Runtime(e) => e.raw_os_error(),
            PipelineError::AlreadyExecuted => None,
            PipelineError::TaskFailed { error, .. } => error.errno(),
        }
    }
}

impl Error for PipelineError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PipelineError::Runtime(e) => Some(e),
            PipelineError::AlreadyExecuted => None,
            PipelineError::TaskFailed { error, .. } => Some(error),
        }
    }
}

struct Node<T> {
    task: Option<Task<T>>,
    after: Vec<TaskId>,
}

/// A named task graph whose tasks produce `T`s; see the module docs.
pub struct Pipeline<T = ()> {
    config: PipelineConfig,
    nodes: Vec<Node<T>>,
    /// This pipeline's tag in its [`TaskId`]s.
    id: u64,
    /// `execute` ran (and consumed the tasks).
    executed: bool,
}

impl<T: Send + 'static> Pipeline<T> {
    /// An empty pipeline.
    pub fn new(config: PipelineConfig) -> Pipeline<T> {
        Pipeline {
            config,
            nodes: Vec::new(),
            id: NEXT_PIPELINE.fetch_add(1, Ordering::Relaxed),
            executed: false,
        }
    }

    /// Add tasks with no dependencies.
    pub fn set_source(&mut self, tasks: Vec<Task<T>>) -> Vec<TaskId> {
        tasks.into_iter().map(|t| self.add_task(t, &[])).collect()
    }

    /// Add a task that starts once every task in `after` has succeeded.
    ///
    /// Panics when an id in `after` is not one this pipeline returned (an
    /// id of another pipeline): such a dependency could name any task, or
    /// none, of this one.
    pub fn add_task(&mut self, task: Task<T>, after: &[TaskId]) -> TaskId {
        for dep in after {
            assert!(
                dep.pipeline == self.id && dep.index < self.nodes.len(),
                "Pipeline::add_task({:?}): dependency {dep:?} is not a task of this pipeline \
                 (use the ids its set_source and add_task returned)",
                task.name
            );
        }
        self.nodes.push(Node {
            task: Some(task),
            after: after.to_vec(),
        });
        TaskId {
            pipeline: self.id,
            index: self.nodes.len() - 1,
        }
    }

    /// Run the graph to the end on a fresh runtime. A pipeline runs once:
    /// a second call is [`PipelineError::AlreadyExecuted`].
    pub fn execute(&mut self) -> Result<PipelineReport<T>, PipelineError> {
        if self.executed {
            return Err(PipelineError::AlreadyExecuted);
        }
        let mut builder = Runtime::builder()
            .name(self.config.name.clone())
            .backend(self.config.io_backend);
        if let Some(n) = self.config.compute_threads {
            builder = builder.compute_threads(n);
        }
        if let Some(n) = self.config.io_threads {
            builder = builder.io_threads(n);
        }
        let runtime = builder.build().map_err(PipelineError::Runtime)?;
        self.executed = true;
        let mut run = GraphRun::new(&mut self.nodes, self.config.error_policy, self.id);
        runtime.block_on(run.drive(&runtime))
    }
}

/// Aborts the task when dropped, so aborting the reporting wrapper of a
/// pipeline task also stops the task itself.
struct AbortOnDrop<T>(JoinHandle<Result<T, TaskError>>);

impl<T> AbortOnDrop<T> {
    async fn wait(mut self) -> Result<Result<T, TaskError>, super::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Bookkeeping for one execution of the graph.
struct GraphRun<'a, T> {
    nodes: &'a mut [Node<T>],
    names: Vec<String>,
    policy: ErrorPolicy,
    done: Vec<Option<bool>>,
    started: Vec<bool>,
    report: PipelineReport<T>,
    first_failure: Option<(String, TaskError)>,
}

impl<'a, T: Send + 'static> GraphRun<'a, T> {
    fn new(nodes: &'a mut [Node<T>], policy: ErrorPolicy, pipeline: u64) -> GraphRun<'a, T> {
        let n = nodes.len();
        let names = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.task
                    .as_ref()
                    .map_or_else(|| format!("task #{i}"), |t| t.name.clone())
            })
            .collect();
        GraphRun {
            nodes,
            names,
            policy,
            done: vec![None; n],
            started: vec![false; n],
            report: PipelineReport {
                values: (0..n).map(|_| None).collect(),
                pipeline,
                ..PipelineReport::default()
            },
            first_failure: None,
        }
    }

    /// Tasks whose dependencies all succeeded and that have not started.
    fn ready(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| !self.started[i])
            .filter(|&i| {
                self.nodes[i]
                    .after
                    .iter()
                    .all(|d| self.done[d.index] == Some(true))
            })
            .collect()
    }

    async fn drive(&mut self, runtime: &Runtime) -> Result<PipelineReport<T>, PipelineError> {
        let (tx, rx) = unbounded_channel::<(usize, Result<T, TaskError>)>();
        let mut running: Vec<(usize, JoinHandle<()>)> = Vec::new();
        loop {
            if self.first_failure.is_none() || self.policy == ErrorPolicy::Continue {
                for i in self.ready() {
                    self.started[i] = true;
                    let Some(task) = self.nodes[i].task.take() else {
                        continue;
                    };
                    let scope = TaskScope {
                        name: task.name.clone(),
                    };
                    let future = (task.body)(scope);
                    let tx = tx.clone();
                    let inner = AbortOnDrop(runtime.spawn(future));
                    let handle = runtime.spawn(async move {
                        let result = match inner.wait().await {
                            Ok(result) => result,
                            Err(join_error) => Err(TaskError::new(join_error)),
                        };
                        let _ = tx.send((i, result)).await;
                    });
                    running.push((i, handle));
                }
            }
            if running.is_empty() {
                break;
            }
            let Some((i, result)) = rx.recv().await else {
                break;
            };
            running.retain(|(j, _)| *j != i);
            self.record(i, result);
            if self.first_failure.is_some() && self.policy == ErrorPolicy::FailFast {
                for (j, handle) in running.drain(..) {
                    handle.abort();
                    let _ = handle.await;
                    self.report.skipped.push(self.name_of(j));
                }
                break;
            }
        }
        self.finish()
    }

    fn name_of(&self, i: usize) -> String {
        self.names[i].clone()
    }

    fn record(&mut self, i: usize, result: Result<T, TaskError>) {
        let name = self.names[i].clone();
        match result {
            Ok(value) => {
                self.done[i] = Some(true);
                self.report.completed.push(name);
                self.report.values[i] = Some(value);
            }
            Err(error) => {
                self.done[i] = Some(false);
                self.report.failed.push((name.clone(), error.to_string()));
                self.first_failure.get_or_insert((name, error));
            }
        }
    }

    fn finish(&mut self) -> Result<PipelineReport<T>, PipelineError> {
        for i in 0..self.nodes.len() {
            if !self.started[i] {
                self.report.skipped.push(self.name_of(i));
            }
        }
        let report = std::mem::take(&mut self.report);
        match self.first_failure.take() {
            None => Ok(report),
            Some((task, error)) => Err(PipelineError::TaskFailed {
                task,
                error,
                report: Box::new(report.without_values()),
            }),
        }
    }
}
