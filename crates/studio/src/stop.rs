//! How a running job is stopped, the same in every front end: a cancel (A1111's "interrupt") ends the job, a skip
//! ends its current batch and the job goes on with the next; either also stops the model run in progress, through
//! the engine's [`CancelSignal`], so nobody waits for a long step to finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pigment_engine::progress::{CancelSignal, Flow};

/// The stop requests of one running job. Clones share the flags: the queue keeps one, the job's observer another.
#[derive(Debug, Clone, Default)]
pub struct StopFlags {
    cancel: Arc<AtomicBool>,
    skip: Arc<AtomicBool>,
    stop_run: Arc<AtomicBool>,
}

impl StopFlags {
    pub fn cancel(&self) {
        // The run signal first: whoever sees the request finds the run already stopping.
        self.stop_run.store(true, Ordering::SeqCst);
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn skip(&self) {
        self.stop_run.store(true, Ordering::SeqCst);
        self.skip.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// The answer to a progress report: cancel; else a skip asked for since the last answer, once (the run signal
    /// is cleared with it, so the next batch runs); else go on.
    pub fn flow(&self) -> Flow {
        if self.is_cancelled() {
            Flow::Cancel
        } else if self.skip.swap(false, Ordering::SeqCst) {
            self.stop_run.store(false, Ordering::SeqCst);
            Flow::Skip
        } else {
            Flow::Continue
        }
    }

    /// The signal to give the model ([`pigment_engine::model::LoadedModel::watch_cancel`]).
    pub fn signal(&self) -> CancelSignal {
        CancelSignal::from(self.stop_run.clone())
    }

    /// Nothing asked any more: for the next job of a queue that keeps one set of flags.
    pub fn clear(&self) {
        self.cancel.store(false, Ordering::SeqCst);
        self.skip.store(false, Ordering::SeqCst);
        self.stop_run.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_answered_once_and_clears_the_run_signal_a_cancel_stays() {
        let flags = StopFlags::default();
        assert_eq!(flags.flow(), Flow::Continue);
        flags.skip();
        assert!(flags.signal().is_cancelled(), "a skip stops the model run in progress");
        assert_eq!(flags.flow(), Flow::Skip);
        assert!(!flags.signal().is_cancelled(), "the next batch's runs go on");
        assert_eq!(flags.flow(), Flow::Continue, "one skip, one batch");
        flags.cancel();
        assert!(flags.signal().is_cancelled());
        assert_eq!((flags.flow(), flags.flow()), (Flow::Cancel, Flow::Cancel));
        flags.skip();
        assert_eq!(flags.flow(), Flow::Cancel, "a cancel outweighs a skip");
        flags.clear();
        assert_eq!(flags.flow(), Flow::Continue);
        assert!(!flags.signal().is_cancelled());
    }
}
