//! How long a cancel waits inside one long model run, on the CPU.
//!
//!     cargo run --release -p pigment-engine --example cancel_latency
//!
//! The run: the demo model's VAE decoding 1024x1024 whole (latents 128x128, no tiles: one ONNX Runtime run of
//! seconds, as a UNet step of a full-size model on a CPU is). First timed to its end; then, with the model watching a
//! cancel signal ([`LoadedModel::watch_cancel`]), the signal is set from another thread a quarter, half and three
//! quarters of the way in, and the time from the signal to the decode's return is printed next to what the wait
//! would be without the watcher (the rest of the run). ONNX Runtime looks at its terminate flag between the graph's
//! nodes, so the wait is the node running when the signal comes (the mid-block attention is the longest here).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ndarray::{ArrayD, IxDyn};
use pigment_engine::EngineError;
use pigment_engine::model::{CancelSignal, LoadedModel};
use pigment_engine::pipeline::{VaeTiling, VaeTilingMode, decode_latents};
use pigment_engine::rng::TorchGenerator;
use pigment_engine::runtime::{DeviceChoice, Runtime, RuntimeOptions};

fn main() {
    let runtime = Runtime::load(&RuntimeOptions { device: DeviceChoice::Cpu, ..RuntimeOptions::default() })
        .expect("ONNX Runtime loads (npm run setup)");
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/tiny-sd");
    let mut model = LoadedModel::open(&runtime, &demo).expect("the demo model");
    let shape = [1, 4, 128, 128];
    let latents: ArrayD<f32> =
        TorchGenerator::new(0).randn(&shape).into_shape_with_order(IxDyn(&shape)).expect("shape");

    let whole_picture = VaeTiling { mode: VaeTilingMode::Never, ..VaeTiling::default() };

    // The first decode makes the session's buffers; the second is the one timed.
    decode_latents(&mut model, &latents, 0, whole_picture).expect("decode");
    let started = Instant::now();
    decode_latents(&mut model, &latents, 0, whole_picture).expect("decode");
    let whole = started.elapsed();

    println!(
        "{:<10} {:>16} {:>22} {:>26}",
        "signal at", "after (ms)", "waited, watched (ms)", "waited, unwatched (ms)"
    );
    println!("{:<10} {:>16.0}   (the whole decode, not cancelled)", "-", ms(whole));
    for quarter in 1..=3 {
        let delay = whole * quarter / 4;
        // A new signal per job, as the app makes one per job.
        let signal = CancelSignal::default();
        model.watch_cancel(Some(signal.clone())).expect("run options");
        let setter = {
            let signal = signal.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                signal.cancel();
                Instant::now()
            })
        };
        let result = decode_latents(&mut model, &latents, 0, whole_picture);
        let returned = Instant::now();
        let cancelled_at = setter.join().expect("the setter thread");
        match result {
            Err(EngineError::Cancelled) => {}
            // Runs vary: this one ended before the signal came.
            Ok(_) => {
                println!("{:<10} {:>16.0}   the decode ended before the signal", format!("{quarter}/4"), ms(delay));
                continue;
            }
            Err(other) => panic!("the decode failed: {other}"),
        }
        let waited = returned.saturating_duration_since(cancelled_at);
        println!(
            "{:<10} {:>16.0} {:>22.0} {:>26.0}",
            format!("{quarter}/4"),
            ms(delay),
            ms(waited),
            ms(whole.saturating_sub(delay))
        );
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
