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
use crate::sync::channel;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

/// Errors a task returns.
pub type TaskError = Box<dyn Error + Send + Sync + 'static>;

type TaskFuture = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>;
type TaskBody = Box<dyn FnOnce(TaskScope) -> TaskFuture + Send>;

/// What a task body may return: `()` or a `Result<(), E>`.
pub trait TaskOutcome {
    /// Convert to the pipeline's result type.
    fn into_result(self) -> Result<(), TaskError>;
}

impl TaskOutcome for () {
    fn into_result(self) -> Result<(), TaskError> {
        Ok(())
    }
}

impl<E: Into<TaskError>> TaskOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), TaskError> {
        self.map_err(Into::into)
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

/// A named unit of work in a [`Pipeline`].
pub struct Task {
    name: String,
    body: TaskBody,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("name", &self.name).finish()
    }
}

/// Make a task from a closure returning a future (`async move { .. }`).
///
/// ```
/// use iokernel::runtime::{make_task, Pipeline, PipelineConfig};
/// let task = make_task("Hello", |scope| async move {
///     assert_eq!(scope.name(), "Hello");
/// });
/// let mut pipeline = Pipeline::new(PipelineConfig::new().with_name("Doc").with_compute_threads(1));
/// pipeline.set_source(vec![task]);
/// let report = pipeline.execute().unwrap();
/// assert_eq!(report.completed, vec!["Hello".to_string()]);
/// ```
pub fn make_task<F, Fut>(name: impl Into<String>, body: F) -> Task
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
    io_backend: Backend,
    error_policy: ErrorPolicy,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig::new()
    }
}

impl PipelineConfig {
    /// Defaults: name "pipeline", one worker per core, Auto backend, fail fast.
    pub fn new() -> PipelineConfig {
        PipelineConfig {
            name: "pipeline".to_string(),
            compute_threads: None,
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

/// Index of a task added to a [`Pipeline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(usize);

/// Outcome of [`Pipeline::execute`], task names in completion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineReport {
    /// Tasks that finished successfully.
    pub completed: Vec<String>,
    /// Tasks that failed, with their error text.
    pub failed: Vec<(String, String)>,
    /// Tasks never run (a dependency failed, or fail-fast stopped early).
    pub skipped: Vec<String>,
}

/// A pipeline run that did not fully succeed.
#[derive(Debug)]
pub enum PipelineError {
    /// The runtime could not start.
    Runtime(io::Error),
    /// At least one task failed; the first failure and the full report.
    TaskFailed {
        /// Name of the first task that failed.
        task: String,
        /// Its error.
        error: TaskError,
        /// Everything that happened.
        report: PipelineReport,
    },
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Runtime(e) => write!(f, "pipeline runtime failed to start: {e}"),
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

impl Error for PipelineError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PipelineError::Runtime(e) => Some(e),
            PipelineError::TaskFailed { error, .. } => Some(&**error),
        }
    }
}

struct Node {
    task: Option<Task>,
    after: Vec<TaskId>,
}

/// A named task graph; see the module docs.
pub struct Pipeline {
    config: PipelineConfig,
    nodes: Vec<Node>,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new(config: PipelineConfig) -> Pipeline {
        Pipeline {
            config,
            nodes: Vec::new(),
        }
    }

    /// Add tasks with no dependencies.
    pub fn set_source(&mut self, tasks: Vec<Task>) -> Vec<TaskId> {
        tasks.into_iter().map(|t| self.add_task(t, &[])).collect()
    }

    /// Add a task that starts once every task in `after` has succeeded.
    pub fn add_task(&mut self, task: Task, after: &[TaskId]) -> TaskId {
        self.nodes.push(Node {
            task: Some(task),
            after: after.to_vec(),
        });
        TaskId(self.nodes.len() - 1)
    }

    /// Run the graph to the end on a fresh runtime.
    pub fn execute(&mut self) -> Result<PipelineReport, PipelineError> {
        let mut builder = Runtime::builder()
            .name(self.config.name.clone())
            .backend(self.config.io_backend);
        if let Some(n) = self.config.compute_threads {
            builder = builder.compute_threads(n);
        }
        let runtime = builder.build().map_err(PipelineError::Runtime)?;
        let mut run = GraphRun::new(&mut self.nodes, self.config.error_policy);
        runtime.block_on(run.drive(&runtime))
    }
}

/// Aborts the task when dropped, so aborting the reporting wrapper of a
/// pipeline task also stops the task itself.
struct AbortOnDrop(JoinHandle<Result<(), TaskError>>);

impl AbortOnDrop {
    async fn wait(mut self) -> Result<Result<(), TaskError>, super::JoinError> {
        (&mut self.0).await
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Bookkeeping for one execution of the graph.
struct GraphRun<'a> {
    nodes: &'a mut [Node],
    names: Vec<String>,
    policy: ErrorPolicy,
    done: Vec<Option<bool>>,
    started: Vec<bool>,
    report: PipelineReport,
    first_failure: Option<(String, TaskError)>,
}

impl<'a> GraphRun<'a> {
    fn new(nodes: &'a mut [Node], policy: ErrorPolicy) -> GraphRun<'a> {
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
            report: PipelineReport::default(),
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
                    .all(|d| self.done[d.0] == Some(true))
            })
            .collect()
    }

    async fn drive(&mut self, runtime: &Runtime) -> Result<PipelineReport, PipelineError> {
        let (tx, rx) = channel::<(usize, Result<(), TaskError>)>(0);
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
                            Err(join_error) => Err(join_error.into()),
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

    fn record(&mut self, i: usize, result: Result<(), TaskError>) {
        let name = self.names[i].clone();
        match result {
            Ok(()) => {
                self.done[i] = Some(true);
                self.report.completed.push(name);
            }
            Err(error) => {
                self.done[i] = Some(false);
                self.report.failed.push((name.clone(), error.to_string()));
                self.first_failure.get_or_insert((name, error));
            }
        }
    }

    fn finish(&mut self) -> Result<PipelineReport, PipelineError> {
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
                report,
            }),
        }
    }
}
