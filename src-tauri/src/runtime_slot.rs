//! The process's one ONNX Runtime (ONNX Runtime allows a single environment per process), loaded on a background
//! thread at start so the window appears without waiting for it. Whoever needs it waits until it is there.

use std::sync::{Condvar, Mutex};

use pigment_engine::runtime::Runtime;

use crate::error::{AppError, Result};

#[derive(Default)]
pub struct RuntimeSlot {
    state: Mutex<Option<Result<Runtime, String>>>,
    filled: Condvar,
}

impl RuntimeSlot {
    /// A slot that is filled later with [`RuntimeSlot::fill`].
    pub fn empty() -> RuntimeSlot {
        RuntimeSlot::default()
    }

    pub fn with(runtime: Runtime) -> RuntimeSlot {
        RuntimeSlot { state: Mutex::new(Some(Ok(runtime))), filled: Condvar::new() }
    }

    pub fn fill(&self, loaded: pigment_engine::Result<Runtime>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = Some(loaded.map_err(|e| e.to_string()));
        self.filled.notify_all();
    }

    /// The runtime, once loaded (waits for the loading thread).
    pub fn get(&self) -> Result<Runtime> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*state {
                Some(Ok(runtime)) => return Ok(runtime.clone()),
                Some(Err(reason)) => return Err(AppError::RuntimeUnavailable { reason: reason.clone() }),
                None => state = self.filled.wait(state).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    /// Without waiting: `None` while loading, else the execution provider report or the load error.
    pub fn status(&self) -> Option<Result<String, String>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.as_ref().map(|loaded| loaded.as_ref().map(|r| r.providers().to_string()).map_err(Clone::clone))
    }
}
