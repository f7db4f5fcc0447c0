//! The job queue: one worker thread runs jobs one at a time, in queue order. Jobs can be added, cancelled (a
//! pending one is dropped, the running one stops before its next step) and moved. The worker owns the backend,
//! so whatever it keeps between jobs (the loaded model's sessions) lives on that thread only.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use image::RgbImage;
use pigment_studio::StopFlags;

use crate::error::{AppError, Result};
use crate::models::{ErrorReport, JobEvent, JobSummary};

pub type JobId = u64;

/// Where a job's events go (the UI's channel in the app, a collector in tests).
pub trait EventSink: Send + Sync {
    fn send(&self, event: JobEvent);

    /// An image was just saved at `path`, before its [`JobEvent::Image`]: the picture and parameters text as the
    /// job has them in memory (the gallery indexes it from these without reading the file again).
    fn saved(&self, _path: &Path, _picture: &RgbImage, _parameters: &str) {}
}

/// What runs the jobs. Lives on the worker thread.
pub trait Backend: Send + 'static {
    type Job: Send + 'static;

    /// Runs `job`, sending progress and images to `events`; returns the number of images made. A job that stops
    /// because `cancel` was set returns the engine's `Cancelled` error.
    fn run(&mut self, job: &Self::Job, cancel: &StopFlags, events: &dyn EventSink) -> Result<usize>;
}

/// A job as submitted: the backend's work, and what the queue panel shows of it.
pub struct QueuedJob<J> {
    pub job: J,
    pub label: String,
    pub images: usize,
}

struct Pending<J> {
    id: JobId,
    queued: QueuedJob<J>,
    events: Box<dyn EventSink>,
}

struct Running {
    id: JobId,
    label: String,
    images: usize,
    cancel: StopFlags,
}

struct State<J> {
    pending: VecDeque<Pending<J>>,
    running: Option<Running>,
    next_id: JobId,
    closed: bool,
}

struct Shared<J> {
    state: Mutex<State<J>>,
    wake: Condvar,
}

impl<J> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // A panic while holding the lock would be a bug in this file; the state stays consistent either way
        // (every change is a single push, remove or assignment), so carry on with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct JobQueue<J: Send + 'static> {
    shared: Arc<Shared<J>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl<J: Send + 'static> JobQueue<J> {
    /// Starts the worker thread with `backend`.
    pub fn start<B: Backend<Job = J>>(backend: B) -> Result<JobQueue<J>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { pending: VecDeque::new(), running: None, next_id: 1, closed: false }),
            wake: Condvar::new(),
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("pigment-jobs".into())
            .spawn(move || work(worker_shared, backend))
            .map_err(|e| AppError::platform("start the job thread", e))?;
        Ok(JobQueue { shared, worker: Mutex::new(Some(worker)) })
    }

    /// Adds a job at the end of the queue; its events go to `events`, starting with `queued`.
    pub fn submit(&self, queued: QueuedJob<J>, events: Box<dyn EventSink>) -> Result<JobId> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(AppError::QueueStopped);
        }
        let id = state.next_id;
        state.next_id += 1;
        let position = state.pending.len() + usize::from(state.running.is_some());
        events.send(JobEvent::Queued { job_id: id, position });
        state.pending.push_back(Pending { id, queued, events });
        self.shared.wake.notify_all();
        Ok(id)
    }

    /// Cancels a job: a pending one leaves the queue at once (its channel gets `cancelled`), the running one stops
    /// before its next step.
    pub fn cancel(&self, id: JobId) -> Result<()> {
        let mut state = self.shared.lock();
        if let Some(running) = state.running.as_ref().filter(|r| r.id == id) {
            running.cancel.cancel();
            return Ok(());
        }
        let index = state.pending.iter().position(|p| p.id == id).ok_or(AppError::UnknownJob { id })?;
        if let Some(pending) = state.pending.remove(index) {
            pending.events.send(JobEvent::Cancelled { images: 0 });
        }
        Ok(())
    }

    /// Skips the current batch of the running job `id` (A1111's skip): it goes on with its next batch. A job that
    /// is not running has no batch to skip.
    pub fn skip(&self, id: JobId) -> Result<()> {
        let state = self.shared.lock();
        let running = state.running.as_ref().filter(|r| r.id == id).ok_or(AppError::UnknownJob { id })?;
        running.cancel.skip();
        Ok(())
    }

    /// Moves a pending job to `index` among the pending jobs (clamped to the end).
    pub fn move_to(&self, id: JobId, index: usize) -> Result<()> {
        let mut state = self.shared.lock();
        let from = state.pending.iter().position(|p| p.id == id).ok_or(AppError::UnknownJob { id })?;
        if let Some(job) = state.pending.remove(from) {
            let to = index.min(state.pending.len());
            state.pending.insert(to, job);
        }
        Ok(())
    }

    /// The running job first, then the pending ones in the order they will run.
    pub fn list(&self) -> Vec<JobSummary> {
        let state = self.shared.lock();
        let running = state.running.iter().map(|r| JobSummary {
            id: r.id,
            running: true,
            label: r.label.clone(),
            images: r.images,
        });
        let pending = state.pending.iter().map(|p| JobSummary {
            id: p.id,
            running: false,
            label: p.queued.label.clone(),
            images: p.queued.images,
        });
        running.chain(pending).collect()
    }

    /// Stops taking jobs, drops the pending ones, cancels the running one and waits for the worker to end.
    pub fn shutdown(&self) {
        {
            let mut state = self.shared.lock();
            state.closed = true;
            for pending in state.pending.drain(..) {
                pending.events.send(JobEvent::Cancelled { images: 0 });
            }
            if let Some(running) = &state.running {
                running.cancel.cancel();
            }
            self.shared.wake.notify_all();
        }
        let worker = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(worker) = worker {
            // A backend that panicked has already reported nothing more can be done; there is nothing to add.
            let _ = worker.join();
        }
    }
}

impl<J: Send + 'static> Drop for JobQueue<J> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn work<B: Backend>(shared: Arc<Shared<B::Job>>, mut backend: B) {
    loop {
        let next = {
            let mut state = shared.lock();
            loop {
                if state.closed {
                    return;
                }
                if let Some(next) = state.pending.pop_front() {
                    let cancel = StopFlags::default();
                    state.running = Some(Running {
                        id: next.id,
                        label: next.queued.label.clone(),
                        images: next.queued.images,
                        cancel: cancel.clone(),
                    });
                    break (next, cancel);
                }
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let (Pending { id, queued, events }, cancel) = next;
        events.send(JobEvent::Started { job_id: id });
        let started = Instant::now();
        let counting = CountingSink { inner: events.as_ref(), images: std::sync::atomic::AtomicUsize::new(0) };
        let result = backend.run(&queued.job, &cancel, &counting);
        let images = counting.images.load(Ordering::SeqCst);
        // The job leaves the running slot before its last event, so a UI that refreshes the queue on that event
        // no longer sees it.
        shared.lock().running = None;
        let last = match result {
            Ok(images) => JobEvent::Finished { images, elapsed_ms: started.elapsed().as_millis() as u64 },
            Err(error) if error.is_cancelled() => JobEvent::Cancelled { images },
            Err(error) => JobEvent::Failed { error: ErrorReport::from(&error) },
        };
        events.send(last);
    }
}

/// Counts the images a job sent, so a cancelled job can say how many it kept.
struct CountingSink<'a> {
    inner: &'a dyn EventSink,
    images: std::sync::atomic::AtomicUsize,
}

impl EventSink for CountingSink<'_> {
    fn send(&self, event: JobEvent) {
        if matches!(event, JobEvent::Image(_)) {
            self.images.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.send(event);
    }

    fn saved(&self, path: &Path, picture: &RgbImage, parameters: &str) {
        self.inner.saved(path, picture, parameters);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::models::ProgressReport;
    use pigment_engine::EngineError;
    use pigment_engine::pipeline::Stage;

    /// Collects a job's events and lets a test wait for its last one.
    #[derive(Clone)]
    pub(crate) struct Collector(pub mpsc::Sender<(String, JobEvent)>, pub String);

    impl EventSink for Collector {
        fn send(&self, event: JobEvent) {
            let _ = self.0.send((self.1.clone(), event));
        }
    }

    pub(crate) fn is_last(event: &JobEvent) -> bool {
        matches!(event, JobEvent::Finished { .. } | JobEvent::Cancelled { .. } | JobEvent::Failed { .. })
    }

    /// Steps on a timer; a job named "gate" waits for the test's go-ahead before its first step.
    struct FakeBackend {
        ran: Arc<Mutex<Vec<String>>>,
        gate: mpsc::Receiver<()>,
    }

    struct FakeJob {
        name: &'static str,
        steps: usize,
        fail: bool,
    }

    impl Backend for FakeBackend {
        type Job = FakeJob;
        fn run(&mut self, job: &FakeJob, cancel: &StopFlags, events: &dyn EventSink) -> Result<usize> {
            self.ran.lock().unwrap().push(job.name.to_string());
            if job.name == "gate" {
                self.gate.recv_timeout(Duration::from_secs(10)).expect("the test opens the gate");
            }
            if job.fail {
                return Err(
                    EngineError::InvalidParameter { name: "steps", value: "0".into(), reason: "bad".into() }.into()
                );
            }
            for step in 1..=job.steps {
                if cancel.is_cancelled() {
                    return Err(EngineError::Cancelled.into());
                }
                std::thread::sleep(Duration::from_millis(5));
                events.send(JobEvent::Progress(ProgressReport {
                    stage: Stage::Denoising,
                    batch: 0,
                    batches: 1,
                    step,
                    steps: job.steps,
                    elapsed_ms: 0,
                    eta_ms: None,
                    preview: None,
                }));
            }
            Ok(0)
        }
    }

    fn queue() -> (JobQueue<FakeJob>, Arc<Mutex<Vec<String>>>, mpsc::Sender<()>) {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = mpsc::channel();
        (JobQueue::start(FakeBackend { ran: ran.clone(), gate }).unwrap(), ran, open)
    }

    fn job(name: &'static str, steps: usize) -> QueuedJob<FakeJob> {
        QueuedJob { job: FakeJob { name, steps, fail: false }, label: name.into(), images: 1 }
    }

    /// Waits until `count` jobs have sent their last event; returns every event by job name.
    fn wait_for_last_events(events: &mpsc::Receiver<(String, JobEvent)>, count: usize) -> Vec<(String, JobEvent)> {
        let mut seen = Vec::new();
        while seen.iter().filter(|(_, e)| is_last(e)).count() < count {
            seen.push(events.recv_timeout(Duration::from_secs(10)).expect("jobs end"));
        }
        seen
    }

    fn wait_until_running(queue: &JobQueue<FakeJob>, id: JobId) {
        for _ in 0..1000 {
            if queue.list().first().is_some_and(|j| j.running && j.id == id) {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("job {id} never started");
    }

    #[test]
    fn jobs_run_in_order_after_a_move_and_a_cancelled_pending_job_never_runs() {
        let (queue, ran, open) = queue();
        let (tx, rx) = mpsc::channel();
        let sink = |name: &str| Box::new(Collector(tx.clone(), name.into()));
        let gate = queue.submit(job("gate", 1), sink("gate")).unwrap();
        let a = queue.submit(job("a", 1), sink("a")).unwrap();
        let b = queue.submit(job("b", 1), sink("b")).unwrap();
        let c = queue.submit(job("c", 1), sink("c")).unwrap();
        wait_until_running(&queue, gate);
        queue.move_to(c, 0).unwrap();
        queue.cancel(a).unwrap();
        let listed: Vec<(JobId, bool)> = queue.list().iter().map(|j| (j.id, j.running)).collect();
        assert_eq!(listed, vec![(gate, true), (c, false), (b, false)]);
        open.send(()).unwrap();
        let events = wait_for_last_events(&rx, 4);
        assert_eq!(*ran.lock().unwrap(), ["gate", "c", "b"]);
        let a_events: Vec<&JobEvent> = events.iter().filter(|(n, _)| n == "a").map(|(_, e)| e).collect();
        assert_eq!(a_events, [&JobEvent::Queued { job_id: a, position: 1 }, &JobEvent::Cancelled { images: 0 }]);
        assert!(queue.list().is_empty());
    }

    #[test]
    fn the_running_job_stops_between_steps_when_cancelled() {
        let (queue, _ran, _open) = queue();
        let (tx, rx) = mpsc::channel();
        let id = queue.submit(job("long", 10_000), Box::new(Collector(tx, "long".into()))).unwrap();
        // Wait for a few steps so the cancel lands mid-sampling.
        let mut steps_seen = 0;
        while steps_seen < 3 {
            if let (_, JobEvent::Progress(_)) = rx.recv_timeout(Duration::from_secs(10)).unwrap() {
                steps_seen += 1;
            }
        }
        let cancelled_at = Instant::now();
        queue.cancel(id).unwrap();
        let events = wait_for_last_events(&rx, 1);
        assert_eq!(events.last().unwrap().1, JobEvent::Cancelled { images: 0 });
        let steps = events.iter().filter(|(_, e)| matches!(e, JobEvent::Progress(_))).count();
        assert!(steps < 100, "stopped within a few steps of the cancel, ran {steps} more");
        assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_failing_job_reports_its_error_and_the_next_one_still_runs() {
        let (queue, ran, _open) = queue();
        let (tx, rx) = mpsc::channel();
        let failing = QueuedJob { job: FakeJob { name: "bad", steps: 1, fail: true }, label: "bad".into(), images: 1 };
        queue.submit(failing, Box::new(Collector(tx.clone(), "bad".into()))).unwrap();
        queue.submit(job("good", 2), Box::new(Collector(tx, "good".into()))).unwrap();
        let events = wait_for_last_events(&rx, 2);
        let last = |name: &str| events.iter().rfind(|(n, _)| n == name).map(|(_, e)| e.clone()).unwrap();
        match last("bad") {
            JobEvent::Failed { error } => {
                assert_eq!(error.field.as_deref(), Some("steps"));
                assert!(error.message.contains("invalid steps: 0"), "{}", error.message);
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert!(matches!(last("good"), JobEvent::Finished { .. }));
        assert_eq!(*ran.lock().unwrap(), ["bad", "good"]);
    }

    #[test]
    fn unknown_jobs_are_errors_and_a_stopped_queue_takes_no_jobs() {
        let (queue, _ran, _open) = queue();
        assert!(matches!(queue.cancel(99), Err(AppError::UnknownJob { id: 99 })));
        assert!(matches!(queue.move_to(99, 0), Err(AppError::UnknownJob { id: 99 })));
        queue.shutdown();
        let (tx, _rx) = mpsc::channel();
        assert!(matches!(
            queue.submit(job("late", 1), Box::new(Collector(tx, "late".into()))),
            Err(AppError::QueueStopped)
        ));
    }
}
