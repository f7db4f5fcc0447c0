//! The control panel's previews while they run: the depth and openpose annotators take seconds on big models, so
//! a unit's preview reports its progress to the window and can be cancelled, and a newer preview of the same unit
//! cancels the one still running (the panel shows only the latest). Units are named by the panel's own number for
//! them (`ControlUnitParams::id`); a preview without one runs untracked: it reports no progress and cannot be
//! cancelled.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use pigment_engine::pipeline::{Flow, Progress};
use serde::Serialize;
use tauri::State;
use tauri::ipc::Channel;

use crate::control::{ControlPreview, ControlUnitParams, PreviewWatch, preview};
use crate::error::Result;
use crate::runtime_slot::RuntimeSlot;
use crate::state::AppState;
use pigment_studio::StopFlags;

/// The panel's number for a control unit.
pub type UnitId = u64;

/// One progress report of a unit's preview (the annotator's run, engine stage `Preprocessing`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPreviewProgress {
    pub unit_id: UnitId,
    /// Steps done of `steps`: the annotator reports 0 before its model runs and `steps` after.
    pub step: usize,
    pub steps: usize,
    pub elapsed_ms: u64,
}

/// Where the previews' progress goes (the window's channel in the app, a collector in tests).
pub trait ControlPreviewSink: Send + Sync {
    fn send(&self, progress: ControlPreviewProgress);
}

/// The window's channel, registered by `watch_control_previews`.
struct ChannelPreviewSink(Channel<ControlPreviewProgress>);

impl ControlPreviewSink for ChannelPreviewSink {
    fn send(&self, progress: ControlPreviewProgress) {
        // The window may have been reloaded: the preview goes on, its answer is dropped with the old page.
        let _ = self.0.send(progress);
    }
}

/// The running preview of each unit, and where their progress goes.
#[derive(Default)]
pub struct ControlPreviews {
    running: Mutex<Running>,
    sink: Mutex<Option<Arc<dyn ControlPreviewSink>>>,
}

#[derive(Default)]
struct Running {
    /// Each unit's running preview: its number (told apart from a newer one of the same unit) and cancel flag.
    by_unit: HashMap<UnitId, (u64, StopFlags)>,
    next_number: u64,
}

/// A unit's preview while it runs; dropping it forgets the preview unless a newer one has taken its place.
struct PreviewRun<'a> {
    previews: &'a ControlPreviews,
    unit_id: UnitId,
    number: u64,
    cancel: StopFlags,
}

impl Drop for PreviewRun<'_> {
    fn drop(&mut self) {
        let mut running = self.previews.lock_running();
        if running.by_unit.get(&self.unit_id).is_some_and(|(number, _)| *number == self.number) {
            running.by_unit.remove(&self.unit_id);
        }
    }
}

impl ControlPreviews {
    fn lock_running(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on every preview's progress goes to `sink` (the window registers its channel once; a reloaded
    /// window replaces it).
    pub fn watch(&self, sink: Arc<dyn ControlPreviewSink>) {
        *self.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }

    /// Cancels unit `unit_id`'s running preview: it stops at its next progress report with the engine's
    /// cancelled error. Whether one was running.
    pub fn cancel(&self, unit_id: UnitId) -> bool {
        match self.lock_running().by_unit.get(&unit_id) {
            Some((_, cancel)) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether unit `unit_id` has a preview running.
    pub fn is_running(&self, unit_id: UnitId) -> bool {
        self.lock_running().by_unit.contains_key(&unit_id)
    }

    /// Registers a preview of `unit_id`, cancelling the one still running for it.
    fn start(&self, unit_id: UnitId) -> PreviewRun<'_> {
        let mut running = self.lock_running();
        let number = running.next_number;
        running.next_number += 1;
        let cancel = StopFlags::default();
        if let Some((_, older)) = running.by_unit.insert(unit_id, (number, cancel.clone())) {
            older.cancel();
        }
        PreviewRun { previews: self, unit_id, number, cancel }
    }

    fn report(&self, progress: ControlPreviewProgress) {
        // Cloned out so the sink runs without the lock (it may cancel, which takes the other lock, or block).
        let sink = self.sink.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sink) = sink {
            sink.send(progress);
        }
    }

    /// `unit`'s preview as [`crate::control::preview`] makes it, as the latest of its unit: its annotator's progress
    /// goes to the registered sink, and a cancel (`cancel`, or a newer preview of the unit) stops it with the
    /// engine's cancelled error (`AppError::is_cancelled`).
    pub fn preview(
        &self,
        unit: &ControlUnitParams,
        width: u32,
        height: u32,
        canvas_mask: Option<&str>,
        models_folder: &Path,
        runtime: &RuntimeSlot,
    ) -> Result<ControlPreview> {
        let Some(unit_id) = unit.id else {
            let watch = PreviewWatch { progress: &mut |_| Flow::Continue, cancel: None };
            return preview(unit, width, height, canvas_mask, models_folder, runtime, watch);
        };
        let run = self.start(unit_id);
        let mut progress = |progress: &Progress| {
            // A cancelled preview reports nothing more: the unit's newer one may be reporting.
            if !run.cancel.is_cancelled() {
                self.report(ControlPreviewProgress {
                    unit_id,
                    step: progress.step,
                    steps: progress.steps,
                    elapsed_ms: progress.elapsed.as_millis() as u64,
                });
            }
            if run.cancel.is_cancelled() { Flow::Cancel } else { Flow::Continue }
        };
        let watch = PreviewWatch { progress: &mut progress, cancel: Some(run.cancel.signal()) };
        preview(unit, width, height, canvas_mask, models_folder, runtime, watch)
    }
}

/// `watch_control_previews`: the channel that receives every control preview's progress.
#[tauri::command]
pub async fn watch_control_previews(
    state: State<'_, AppState>,
    on_progress: Channel<ControlPreviewProgress>,
) -> Result<()> {
    state.control_previews.watch(Arc::new(ChannelPreviewSink(on_progress)));
    Ok(())
}

/// `cancel_control_preview`: stops unit `unit_id`'s running preview (which then answers with the cancelled error);
/// whether one was running (it may have just finished).
#[tauri::command]
pub async fn cancel_control_preview(state: State<'_, AppState>, unit_id: UnitId) -> Result<bool> {
    Ok(state.control_previews.cancel(unit_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_preview_of_a_unit_cancels_the_older_and_only_its_own_end_forgets_it() {
        let previews = ControlPreviews::default();
        let first = previews.start(1);
        let other_unit = previews.start(2);
        let second = previews.start(1);
        assert!(first.cancel.is_cancelled() && !second.cancel.is_cancelled() && !other_unit.cancel.is_cancelled());
        // The older one ending does not forget the newer.
        drop(first);
        assert!(previews.is_running(1));
        assert!(previews.cancel(1) && second.cancel.is_cancelled());
        drop(second);
        assert!(!previews.is_running(1) && !previews.cancel(1));
        assert!(previews.is_running(2));
    }
}
