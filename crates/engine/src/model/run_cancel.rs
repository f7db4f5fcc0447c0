//! Stopping a model run while it runs. A progress callback's cancel ([`crate::progress::Flow::Cancel`]) is looked at
//! between runs, so a cancel waits for the run in progress: a UNet step of an SDXL model on a CPU, an annotator on a
//! big picture, a VAE decode without tiles can each take many seconds. ONNX Runtime stops a run whose `RunOptions`
//! are terminated (it looks between the graph's nodes), so a part given a [`CancelSignal`] runs with options that a
//! watcher thread terminates once the signal is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ort::session::RunOptions;

use crate::error::{EngineError, Result};
use crate::progress::CancelSignal;

/// How often a watcher looks at the signal: the longest a cancel waits inside a run.
const WATCH_INTERVAL: Duration = Duration::from_millis(20);
/// Runs that took less than this the last time are not watched (no thread per step on a fast GPU): a cancel waits
/// for them at most this long.
const WATCH_AFTER: Duration = Duration::from_millis(100);

/// A part's runs under a signal: the options they run with, and how long the last one took.
pub(super) struct CancellableRuns {
    signal: CancelSignal,
    options: RunOptions,
    last_run: Option<Duration>,
}

impl CancellableRuns {
    pub(super) fn new(signal: CancelSignal) -> Result<CancellableRuns> {
        let options = RunOptions::new().map_err(|e| EngineError::inference("runtime", format!("run options: {e}")))?;
        Ok(CancellableRuns { signal, options, last_run: None })
    }

    pub(super) fn signal(&self) -> &CancelSignal {
        &self.signal
    }

    /// Runs `run` with `options` (the part's own, else ours), stopped by ONNX Runtime when the signal is set: at once
    /// when it is set before, within [`WATCH_INTERVAL`] when it is set during a run that is watched. A stopped run
    /// is [`EngineError::Cancelled`].
    pub(super) fn run<R>(
        &mut self,
        options: Option<&RunOptions>,
        run: impl FnOnce(&RunOptions) -> Result<R>,
    ) -> Result<R> {
        let options = options.unwrap_or(&self.options);
        let signal = &self.signal;
        let started = Instant::now();
        let result = if signal.is_cancelled() {
            // ONNX Runtime refuses to start a terminated run: no thread needed.
            terminate(options);
            run(options)
        } else if self.last_run.is_some_and(|last| last < WATCH_AFTER) {
            run(options)
        } else {
            watched(signal, options, run)
        };
        self.last_run = Some(started.elapsed());
        if signal.is_cancelled() {
            // The options serve the next job again.
            let _ = options.unterminate();
            return Err(EngineError::Cancelled);
        }
        result
    }
}

/// `run` with a thread beside it that terminates `options` once `signal` is set; the thread ends with the run.
fn watched<R>(signal: &CancelSignal, options: &RunOptions, run: impl FnOnce(&RunOptions) -> Result<R>) -> Result<R> {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Without a thread (the system refused one) the run goes on unwatched: the cancel is then seen after it.
        let watcher = std::thread::Builder::new().name("pigment-cancel-watch".into()).spawn_scoped(scope, || {
            while !done.load(Ordering::SeqCst) {
                if signal.is_cancelled() {
                    terminate(options);
                    return;
                }
                std::thread::park_timeout(WATCH_INTERVAL);
            }
        });
        let result = run(options);
        done.store(true, Ordering::SeqCst);
        if let Ok(watcher) = &watcher {
            watcher.thread().unpark();
        }
        result
    })
}

fn terminate(options: &RunOptions) {
    // Failing to terminate leaves the run to finish, as without a signal: the cancel is then seen after it.
    let _ = options.terminate();
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::runtime::{DeviceChoice, Runtime, RuntimeOptions};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// What the engine relies on at ONNX Runtime's level: a run whose options are terminated stops (here before
    /// its first node, as when the signal comes between two runs; a watcher terminates them during a run), and the
    /// options serve again afterwards.
    #[test]
    fn onnx_runtime_stops_the_runs_whose_options_the_signal_terminates() -> TestResult {
        let runtime = Runtime::load(&RuntimeOptions { device: DeviceChoice::Cpu, ..RuntimeOptions::default() })?;
        let decoder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/tiny-sd/vae_decoder/model.onnx");
        let mut session = runtime.session_builder()?.commit_from_file(&decoder)?;
        // ONNX Runtime's own answer (Err: its message), before `CancellableRuns` turns a stopped run into `Cancelled`.
        let mut run = |runs: &mut CancellableRuns, own: Option<&RunOptions>| {
            let mut answer = Err("no run was made".to_string());
            let result = runs.run(own, |options| {
                let latents = ort::value::Tensor::from_array(ndarray::Array4::<f32>::zeros((1, 4, 8, 8)))
                    .map_err(|e| EngineError::inference("test", e))?;
                let inputs = vec![("latent_sample".to_string(), latents.into_dyn())];
                answer = session.run_with_options(inputs, options).map(|_| ()).map_err(|e| e.to_string());
                Ok(())
            });
            (result, answer)
        };

        let signal = CancelSignal::default();
        let mut runs = CancellableRuns::new(signal.clone())?;
        let (result, answer) = run(&mut runs, None);
        assert!(result.is_ok() && answer.is_ok(), "{answer:?}");

        signal.cancel();
        let own = RunOptions::new()?;
        let (result, answer) = run(&mut runs, Some(&own));
        assert!(matches!(result, Err(EngineError::Cancelled)));
        assert!(answer.as_ref().is_err_and(|message| message.contains("terminate")), "{answer:?}");

        // The part's own options (the shrink settings of single runs) serve the next job's signal.
        let mut next_job = CancellableRuns::new(CancelSignal::default())?;
        let (result, answer) = run(&mut next_job, Some(&own));
        assert!(result.is_ok() && answer.is_ok(), "{answer:?}");
        Ok(())
    }
}
