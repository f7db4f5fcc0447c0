//! A cancel signal ([`LoadedModel::watch_cancel`], [`Annotator::watch_cancel`]) stops the model runs themselves, not
//! only the pipeline between them: the observers here never answer `Cancel`, they only set the signal, so a job
//! that stops was stopped by ONNX Runtime's terminated run options. Watched runs give the same images as unwatched
//! ones, and a model stopped once works again with the next job's signal. (How soon a long run stops once the
//! signal is set is measured by `cargo run --release -p pigment-engine --example cancel_latency`.)

mod common;

use common::{Collect, control_model, control_spec, controlnet_unit, fixture_image, load_demo_model, load_model};
use pigment_engine::model::{AnnotatorKind, CancelSignal, LoadedModel};
use pigment_engine::pipeline::{
    Annotator, ControlImage, ControlModels, ControlSpec, Flow, GenerateRequest, GeneratedImage, Generation,
    GenerationObserver, Progress, Resources, Stage, generate,
};
use pigment_engine::runtime::IoBindingChoice;
use pigment_engine::text::EmbeddingLibrary;
use pigment_engine::{EngineError, Result};

/// Sets `signal` at the `after`th denoising report and never cancels through the pipeline.
struct SignalAfter {
    signal: CancelSignal,
    after: usize,
    denoising_reports: usize,
    images: usize,
}

impl SignalAfter {
    fn new(signal: &CancelSignal, after: usize) -> SignalAfter {
        SignalAfter { signal: signal.clone(), after, denoising_reports: 0, images: 0 }
    }
}

impl GenerationObserver for SignalAfter {
    fn progress(&mut self, progress: &Progress) -> Flow {
        if progress.stage == Stage::Denoising {
            self.denoising_reports += 1;
            if self.denoising_reports == self.after {
                self.signal.cancel();
            }
        }
        Flow::Continue
    }

    fn image(&mut self, _: GeneratedImage) -> Result<()> {
        self.images += 1;
        Ok(())
    }
}

fn request(control: ControlSpec) -> Generation {
    let params = GenerateRequest {
        prompt: "a lighthouse".into(),
        seed: Some(5),
        steps: 5,
        width: 64,
        height: 64,
        ..GenerateRequest::default()
    };
    Generation { control, ..Generation::text(params) }
}

fn image(resources: Resources<'_>, request: &Generation) -> image::RgbImage {
    let mut collect = Collect::default();
    generate(resources, request, &mut collect).unwrap();
    collect.images.remove(0).image
}

/// The job stops at the UNet run after the signal, with no image, though the observer only ever said Continue.
fn assert_stopped_by_the_run(resources: Resources<'_>, request: &Generation) {
    let signal = CancelSignal::default();
    resources.model.watch_cancel(Some(signal.clone())).unwrap();
    let mut observer = SignalAfter::new(&signal, 2);
    let error = generate(resources, request, &mut observer).unwrap_err();
    assert!(matches!(error, EngineError::Cancelled), "{error}");
    assert_eq!(observer.denoising_reports, 2, "the step after the signal did not run");
    assert_eq!(observer.images, 0);
}

#[test]
fn a_watched_model_stops_at_its_next_run_once_the_signal_is_set_and_works_again_after() {
    let mut model = load_demo_model();
    let request = request(ControlSpec::default());
    let expected = image(Resources::new(&mut model), &request);

    // Unwatched, the same observer's signal stops nothing: the pipeline alone never sees it.
    let mut observer = SignalAfter::new(&CancelSignal::default(), 2);
    generate(Resources::new(&mut model), &request, &mut observer).unwrap();
    assert_eq!((observer.denoising_reports, observer.images), (5, 1));

    assert_stopped_by_the_run(Resources::new(&mut model), &request);
    // The next job's signal: the model runs again, and runs under a signal give the same image.
    model.watch_cancel(Some(CancelSignal::default())).unwrap();
    assert!(image(Resources::new(&mut model), &request) == expected, "a watched run changed the image");
    model.watch_cancel(None).unwrap();
    assert!(image(Resources::new(&mut model), &request) == expected);
}

#[test]
fn controlnets_and_bound_runs_stop_with_the_models_signal() {
    let runtime = common::runtime();
    let mut model = load_model(&control_model());
    let image_of_edges = ControlImage::new(fixture_image("reference/controlnet/canny_64_rgb.png"));
    let with_controlnet = request(control_spec(vec![controlnet_unit("tiny-canny", image_of_edges)]));
    // The same ControlNet session through the three jobs: stopped once, it works again with the next signal.
    let mut kept = ControlModels::default();
    let expected = image(Resources::new(&mut model).with_control_models(&mut kept), &with_controlnet);
    assert_stopped_by_the_run(Resources::new(&mut model).with_control_models(&mut kept), &with_controlnet);
    model.watch_cancel(Some(CancelSignal::default())).unwrap();
    let again = image(Resources::new(&mut model).with_control_models(&mut kept), &with_controlnet);
    assert!(again == expected, "a watched ControlNet run changed the image");

    // IO binding runs the UNet through its binding, with the same run options.
    let mut bound = LoadedModel::open(&runtime.with_io_binding(IoBindingChoice::On), &common::demo_model()).unwrap();
    assert_stopped_by_the_run(Resources::new(&mut bound), &request(ControlSpec::default()));
}

#[test]
fn a_text_encoder_made_again_with_embeddings_keeps_the_models_signal() {
    let runtime = common::runtime();
    let mut model = load_demo_model();
    let signal = CancelSignal::default();
    model.watch_cancel(Some(signal.clone())).unwrap();
    let library = EmbeddingLibrary::load_folder(&common::fixtures().join("embeddings")).unwrap();
    model.set_embeddings(&runtime, &library).unwrap();
    let ids = ndarray::Array2::<i64>::zeros((1, 77));
    model.text_encoder.encode(&ids).unwrap();
    signal.cancel();
    let error = model.text_encoder.encode(&ids).unwrap_err();
    assert!(matches!(error, EngineError::Cancelled), "{error}");
}

#[test]
fn an_annotator_run_stops_once_its_signal_is_set() {
    let runtime = common::runtime();
    let folder = AnnotatorKind::Depth.find(&common::fixtures()).unwrap();
    let picture = fixture_image("images/scene_64.png");
    let mut annotator = Annotator::open(&runtime, AnnotatorKind::Depth, &folder).unwrap();
    let never_cancel = &mut |_: &Progress| Flow::Continue;
    let (expected, _) = annotator.apply(&picture, 64, 64, never_cancel).unwrap();

    let signal = CancelSignal::default();
    annotator.watch_cancel(Some(&signal)).unwrap();
    signal.cancel();
    let error = annotator.apply(&picture, 64, 64, never_cancel).unwrap_err();
    assert!(matches!(error, EngineError::Cancelled), "{error}");

    annotator.watch_cancel(Some(&CancelSignal::default())).unwrap();
    let (again, _) = annotator.apply(&picture, 64, 64, never_cancel).unwrap();
    assert!(again.image == expected.image, "a watched annotator run changed the depth map");
}
