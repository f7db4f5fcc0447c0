//! ONNX Runtime sessions for the model's parts, each checking at load time that its inputs are the ones the
//! pipeline can feed, and converting between the pipeline's f32 arrays and the model's types when it runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ndarray::{Array2, Array3, ArrayD, ArrayViewD, Ix3};
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, RunOptions, Session};
use serde::Serialize;

use super::folder::{ComponentFiles, ModelFolder};
use super::fp16::{Fp16Problem, fp16_variant};
use super::graph_cache::{LoadedSession, load_error, load_session};
use super::io::{self, ElementType, TensorSpec};
use super::run_cancel::CancellableRuns;
use crate::error::{EngineError, Result};
use crate::progress::CancelSignal;
use crate::progress::Flow;
use crate::runtime::{
    ExecutionProvider, MemoryMode, ModelFamily, Precision, PrecisionDecision, Runtime, choose_precision, probe_devices,
};
use crate::schedulers::SchedulerConfig;
use crate::text::ClipTokenizer;

/// Low-VRAM mode: the parts of a model take turns on the device (in medium mode the text encoder and VAE only).
/// The one session loaded at a time, shared by the parts, with the graph file it was made from; a part that runs
/// while another is loaded releases that one first.
#[derive(Clone, Default)]
pub(super) struct TakingTurns(Arc<Mutex<Option<(SessionKey, LiveSession)>>>);

impl TakingTurns {
    fn slot(&self) -> MutexGuard<'_, Option<(SessionKey, LiveSession)>> {
        // A poisoned lock only means another part failed while loading: the slot is still usable.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a session was made for: its graph file and the free dimensions fixed in it (none unless
/// [`Runtime::fixed_dimensions`]).
type SessionKey = (PathBuf, Vec<(String, i64)>);

/// A made session, with its IO binding once it has run bound. The binding lives beside the session it refers to:
/// releasing the session (its turn is over, its shapes changed) releases the binding and its device copies too.
struct LiveSession {
    session: Session,
    binding: Option<KeptBinding>,
}

impl From<Session> for LiveSession {
    fn from(session: Session) -> LiveSession {
        LiveSession { session, binding: None }
    }
}

/// An IO binding, and the values of the inputs it keeps on the device from one run to the next.
struct KeptBinding {
    binding: IoBinding,
    kept: Vec<(String, ArrayD<f32>)>,
}

/// An input that changes rarely from one run to the next (the text embeddings in the denoising loop). With IO
/// binding it is copied to the device once and again only when its values change.
pub(super) struct KeptInput<'a> {
    pub spec: &'a TensorSpec,
    pub values: ArrayViewD<'a, f32>,
}

/// A session with its IO read from the model.
pub(super) struct ComponentSession {
    component: &'static str,
    /// `None` when the part takes turns (then the session is in `turns` while it is this part's turn).
    session: Option<LiveSession>,
    /// What the session is made from, to make it again at its turn; `None` for sessions that cannot take turns.
    source: Option<(Runtime, ComponentFiles)>,
    turns: Option<TakingTurns>,
    /// The free dimensions fixed in `session` (fixed-dimension runtimes make it again when they change).
    dimensions: Vec<(String, i64)>,
    /// Where bound outputs go, when the runtime binds IO ([`Runtime::io_binding`]): host memory.
    bound_outputs: Option<MemoryInfo<'static>>,
    /// The run options of the runs made once per image ([`Runtime::single_run_options`]).
    single_run_options: Option<RunOptions>,
    /// With a cancel signal ([`ComponentSession::watch_cancel`]), runs stop while they run once it is set.
    cancellable: Option<CancellableRuns>,
    pub(super) inputs: Vec<TensorSpec>,
    pub(super) outputs: Vec<TensorSpec>,
    /// The graph file the session was made from.
    graph: PathBuf,
}

impl ComponentSession {
    pub(super) fn load(runtime: &Runtime, component: &'static str, files: &ComponentFiles) -> Result<ComponentSession> {
        ComponentSession::load_with_initializers(runtime, component, files, Vec::new())
    }

    /// [`ComponentSession::load`] with some of the model's initializers replaced (by name) before the session is
    /// built: how textual-inversion embeddings extend the text encoder's token table (model/token_embedding.rs).
    fn load_with_initializers(
        runtime: &Runtime,
        component: &'static str,
        files: &ComponentFiles,
        initializers: Vec<(String, ort::value::DynValue)>,
    ) -> Result<ComponentSession> {
        // Sessions with replaced initializers are not kept releasable: remaking them would mean keeping the
        // replacement values (a whole token table) beside the session.
        let source = initializers.is_empty().then(|| (runtime.clone(), files.clone()));
        let LoadedSession { session, graph } = if initializers.is_empty() {
            load_graph(runtime, files)?
        } else {
            // Replaced initializers change what the graph computes: such sessions bypass the graph cache.
            let mut builder = runtime.session_builder()?;
            for (name, value) in initializers {
                builder = builder.with_initializer(&name, value).map_err(|e| EngineError::InvalidModelFile {
                    path: files.model.clone(),
                    reason: format!("replacing initializer {name}: {e}"),
                })?;
            }
            let session = builder.commit_from_file(&files.model).map_err(|e| load_error(files, e))?;
            LoadedSession { session, graph: files.model.clone() }
        };
        let inputs = session.inputs().iter().map(TensorSpec::from_outlet).collect();
        let outputs = session.outputs().iter().map(TensorSpec::from_outlet).collect();
        Ok(ComponentSession {
            component,
            session: Some(session.into()),
            source,
            turns: None,
            dimensions: Vec::new(),
            bound_outputs: runtime.io_binding().then(host_memory).transpose()?,
            single_run_options: runtime.single_run_options()?,
            cancellable: None,
            inputs,
            outputs,
            graph,
        })
    }

    /// From now on this part takes turns with the others sharing `turns` (its session is released now and made
    /// again when it next runs). Sessions that cannot be made again stay loaded.
    pub(super) fn take_turns(&mut self, turns: &TakingTurns) {
        if self.source.is_some() {
            self.session = None;
            self.turns = Some(turns.clone());
        }
    }

    /// A part opened apart from a model (a ControlNet, an adapter, the UNet with residual inputs) shares the
    /// device as the model's parts do: in low-VRAM mode it takes turns with them, its sessions made as theirs
    /// (`runtime`: the model's lean one); with a fully loaded model it stays loaded.
    pub(super) fn share_device(&mut self, turns: Option<&TakingTurns>, runtime: &Runtime) {
        let same = match (&self.turns, turns) {
            (Some(ours), Some(theirs)) => Arc::ptr_eq(&ours.0, &theirs.0),
            (ours, theirs) => ours.is_none() && theirs.is_none(),
        };
        let Some((source_runtime, _)) = self.source.as_mut().filter(|_| !same) else { return };
        *source_runtime = runtime.clone();
        self.session = None;
        self.turns = turns.cloned();
    }

    /// From now on this part's runs stop while they run once `signal` is set (none: they run to their end).
    pub(super) fn watch_cancel(&mut self, signal: Option<&CancelSignal>) -> Result<()> {
        let watching = |runs: &CancellableRuns| signal.is_some_and(|signal| runs.signal().same_as(signal));
        if !self.cancellable.as_ref().is_some_and(watching) {
            self.cancellable = signal.cloned().map(CancellableRuns::new).transpose()?;
        }
        Ok(())
    }

    fn input(&self, name: &str) -> Result<&TensorSpec> {
        find_input(&self.inputs, self.component, name)
    }

    pub(super) fn first_output(&self) -> Result<&TensorSpec> {
        self.outputs.first().ok_or_else(|| EngineError::UnsupportedModelIo {
            component: self.component,
            name: String::new(),
            detail: "the model has no outputs".into(),
        })
    }

    fn expect_rank(&self, spec: &TensorSpec, rank: usize) -> Result<()> {
        if spec.rank() == rank {
            return Ok(());
        }
        Err(EngineError::UnsupportedModelIo {
            component: self.component,
            name: spec.name.clone(),
            detail: format!("expected rank {rank}, the model declares {spec}"),
        })
    }

    /// Runs a part that runs once per image (text encoder, VAE) with named inputs and returns the output `output`
    /// as f32.
    pub(super) fn run(&mut self, inputs: Vec<(String, ort::value::DynValue)>, output: &str) -> Result<ArrayD<f32>> {
        let mut outputs = self.run_once(inputs, &[output.to_string()])?;
        outputs.pop().ok_or_else(|| EngineError::inference(self.component, format!("no output {output}")))
    }

    /// [`ComponentSession::run`] for parts with several outputs (the pose annotator's fields and heatmaps): the
    /// outputs named `outputs`, in that order, as f32.
    pub(super) fn run_once(
        &mut self,
        inputs: Vec<(String, ort::value::DynValue)>,
        outputs: &[String],
    ) -> Result<Vec<ArrayD<f32>>> {
        let component = self.component;
        let dimensions = self.free_dimensions(&shapes_of(&inputs, &[]));
        let options = self.single_run_options.take();
        let mut cancellable = self.cancellable.take();
        let result = self.with_live(dimensions, |live| {
            run_session(&mut live.session, component, inputs, outputs, options.as_ref(), cancellable.as_mut())
        });
        self.single_run_options = options;
        self.cancellable = cancellable;
        result
    }

    /// Runs a part that runs at every step (UNet, ControlNet) and returns the outputs named `outputs` as f32.
    /// `kept` inputs change rarely: with IO binding they stay on the device while their values do not change,
    /// and the other inputs are copied to it at every run. The outputs are bound to host memory: the sampler runs
    /// on the CPU and needs them there at every step, and ONNX Runtime copies them with the provider's own
    /// transfer at the end of the run (an output left on the device would need a second session to copy it).
    pub(super) fn run_in_loop(
        &mut self,
        inputs: Vec<(String, ort::value::DynValue)>,
        kept: &[KeptInput<'_>],
        outputs: &[String],
    ) -> Result<Vec<ArrayD<f32>>> {
        let dimensions = self.free_dimensions(&shapes_of(&inputs, kept));
        let mut cancellable = self.cancellable.take();
        let result = self.run_in_loop_on(dimensions, cancellable.as_mut(), inputs, kept, outputs);
        self.cancellable = cancellable;
        result
    }

    /// [`ComponentSession::run_in_loop`] on the session made for `dimensions`, its runs stopped by `cancellable`'s
    /// signal when there is one.
    fn run_in_loop_on(
        &mut self,
        dimensions: Vec<(String, i64)>,
        cancellable: Option<&mut CancellableRuns>,
        mut inputs: Vec<(String, ort::value::DynValue)>,
        kept: &[KeptInput<'_>],
        outputs: &[String],
    ) -> Result<Vec<ArrayD<f32>>> {
        let component = self.component;
        let Some(host) = self.bound_outputs.clone() else {
            for input in kept {
                inputs.push((input.spec.name.clone(), io::float_input(component, input.spec, input.values.view())?));
            }
            return self.with_live(dimensions, |live| {
                run_session(&mut live.session, component, inputs, outputs, None, cancellable)
            });
        };
        let fail = move |e: ort::Error| EngineError::inference(component, format!("bound run: {e}"));
        self.with_live(dimensions, |live| {
            let LiveSession { session, binding } = live;
            let bound = match binding {
                Some(bound) => bound,
                None => {
                    binding.insert(KeptBinding { binding: session.create_binding().map_err(fail)?, kept: Vec::new() })
                }
            };
            for input in kept {
                let unchanged =
                    bound.kept.iter().any(|(name, values)| *name == input.spec.name && *values == input.values);
                if !unchanged {
                    let value = io::float_input(component, input.spec, input.values.view())?;
                    // ONNX Runtime copies a host value to the session's device here, once.
                    bound.binding.bind_input(input.spec.name.as_str(), &value).map_err(fail)?;
                    bound.kept.retain(|(name, _)| *name != input.spec.name);
                    bound.kept.push((input.spec.name.clone(), input.values.to_owned()));
                }
            }
            for (name, value) in &inputs {
                bound.binding.bind_input(name.as_str(), value).map_err(fail)?;
            }
            for name in outputs {
                bound.binding.bind_output_to_device(name.as_str(), &host).map_err(fail)?;
            }
            let mut run = |options: Option<&RunOptions>| {
                let results = match options {
                    Some(options) => session.run_binding_with_options(&bound.binding, options),
                    None => session.run_binding(&bound.binding),
                }
                .map_err(fail)?;
                float_outputs(component, &results, outputs)
            };
            match cancellable {
                Some(runs) => runs.run(None, |options| run(Some(options))),
                None => run(None),
            }
        })
    }

    /// Runs `work` on this part's session, made first when it is not loaded (its turn, or new shapes when the
    /// runtime fixes dimensions).
    fn with_live<R>(
        &mut self,
        dimensions: Vec<(String, i64)>,
        work: impl FnOnce(&mut LiveSession) -> Result<R>,
    ) -> Result<R> {
        let component = self.component;
        let Some((runtime, files)) = &self.source else {
            // Sessions that cannot be made again run as they were made.
            let live = self.session.as_mut().ok_or_else(|| {
                EngineError::inference(component, "the session was released and cannot be made again")
            })?;
            return work(live);
        };
        let make = |dimensions: &[(String, i64)]| {
            load_graph(&runtime.with_dimension_overrides(dimensions), files).map(|loaded| loaded.session.into())
        };
        if let Some(turns) = &self.turns {
            let mut loaded = turns.slot();
            let key = (files.model.clone(), dimensions);
            let (_, live) = match loaded.take() {
                Some(entry) if entry.0 == key => loaded.insert(entry),
                other => {
                    // Free the other part before making this one: the two are never on the device together.
                    drop(other);
                    let session = make(&key.1)?;
                    loaded.insert((key, session))
                }
            };
            return work(live);
        }
        let live = match self.session.take() {
            Some(live) if self.dimensions == dimensions => self.session.insert(live),
            other => {
                drop(other);
                let live = make(&dimensions)?;
                self.dimensions = dimensions;
                self.session.insert(live)
            }
        };
        work(live)
    }

    /// The free dimensions of inputs of these shapes, by the model's names for them, when the runtime fixes
    /// dimensions (DirectML); none otherwise. A name that takes different sizes in different inputs (exports
    /// that call both a latent's and an image's side "height") stays free.
    fn free_dimensions(&self, shapes: &[(&str, Vec<i64>)]) -> Vec<(String, i64)> {
        if !self.source.as_ref().is_some_and(|(runtime, _)| runtime.fixed_dimensions()) {
            return Vec::new();
        }
        let mut dimensions = std::collections::BTreeMap::new();
        let mut conflicting = std::collections::BTreeSet::new();
        for (name, shape) in shapes {
            let Some(spec) = self.inputs.iter().find(|spec| spec.name == *name) else { continue };
            for ((&declared, symbol), &actual) in spec.shape.iter().zip(&spec.dim_names).zip(shape) {
                if declared < 0 && !symbol.is_empty() && *dimensions.entry(symbol.clone()).or_insert(actual) != actual {
                    conflicting.insert(symbol.clone());
                }
            }
        }
        dimensions.into_iter().filter(|(symbol, _)| !conflicting.contains(symbol)).collect()
    }

    /// The free dimensions fixed in the session now (empty unless the runtime fixes dimensions).
    pub(super) fn fixed_dimensions(&self) -> Vec<(String, i64)> {
        match &self.turns {
            Some(turns) => turns.slot().as_ref().map(|((_, dimensions), _)| dimensions.clone()).unwrap_or_default(),
            None => self.dimensions.clone(),
        }
    }

    /// Whether the session is on the device now (always, unless the part takes turns).
    pub(super) fn is_loaded(&self) -> bool {
        match (&self.session, &self.turns, &self.source) {
            (Some(_), _, _) => true,
            (None, Some(turns), Some((_, files))) => {
                turns.slot().as_ref().is_some_and(|((graph, _), _)| *graph == files.model)
            }
            _ => false,
        }
    }

    /// Whether the session on the device now has run with its IO bound ([`Runtime::io_binding`]).
    fn is_bound(&self) -> bool {
        match (&self.session, &self.turns, &self.source) {
            (Some(live), _, _) => live.binding.is_some(),
            (None, Some(turns), Some((_, files))) => {
                turns.slot().as_ref().is_some_and(|((graph, _), live)| *graph == files.model && live.binding.is_some())
            }
            _ => false,
        }
    }

    fn describe(&self) -> ComponentInfo {
        ComponentInfo { inputs: self.inputs.clone(), outputs: self.outputs.clone(), graph: self.graph.clone() }
    }
}

/// The input `name` among `inputs`, or an error listing the ones the model has.
pub(super) fn find_input<'s>(inputs: &'s [TensorSpec], component: &'static str, name: &str) -> Result<&'s TensorSpec> {
    inputs.iter().find(|spec| spec.name == name).ok_or_else(|| EngineError::UnsupportedModelIo {
        component,
        name: name.to_string(),
        detail: format!(
            "the model has no such input (its inputs: {})",
            inputs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// The outputs named `names` of a run, as f32.
/// The outputs `outputs` of `session` for `inputs` as f32, run with `options` (the part's own, if any) and, under a
/// cancel signal, through `cancellable` (which then stops the run while it runs).
fn run_session(
    session: &mut Session,
    component: &'static str,
    inputs: Vec<(String, ort::value::DynValue)>,
    outputs: &[String],
    options: Option<&RunOptions>,
    cancellable: Option<&mut CancellableRuns>,
) -> Result<Vec<ArrayD<f32>>> {
    let run = |options: Option<&RunOptions>| {
        let results = match options {
            Some(options) => session.run_with_options(inputs, options),
            None => session.run(inputs),
        }
        .map_err(|e| EngineError::inference(component, e))?;
        float_outputs(component, &results, outputs)
    };
    match cancellable {
        Some(runs) => runs.run(options, |options| run(Some(options))),
        None => run(options),
    }
}

fn float_outputs(
    component: &'static str,
    results: &ort::session::SessionOutputs<'_>,
    names: &[String],
) -> Result<Vec<ArrayD<f32>>> {
    names
        .iter()
        .map(|name| {
            let value = results
                .get(name.as_str())
                .ok_or_else(|| EngineError::inference(component, format!("the model returned no output {name}")))?;
            io::float_output(component, value, name)
        })
        .collect()
}

/// The shapes of the inputs of a run, by name.
fn shapes_of<'a>(inputs: &'a [(String, ort::value::DynValue)], kept: &'a [KeptInput<'_>]) -> Vec<(&'a str, Vec<i64>)> {
    let given = inputs.iter().filter_map(|(name, value)| match value.dtype() {
        ort::value::ValueType::Tensor { shape, .. } => Some((name.as_str(), shape.iter().copied().collect())),
        _ => None,
    });
    let kept =
        kept.iter().map(|input| (input.spec.name.as_str(), input.values.shape().iter().map(|&d| d as i64).collect()));
    given.chain(kept).collect()
}

/// Host memory, where bound outputs go.
fn host_memory() -> Result<MemoryInfo<'static>> {
    MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput)
        .map_err(|e| EngineError::inference("binding IO", e))
}

/// A session from `files`, through the optimized-graph cache when the runtime has a cache folder.
fn load_graph(runtime: &Runtime, files: &ComponentFiles) -> Result<LoadedSession> {
    load_session(runtime, files, runtime.cache_dir().map(|dir| dir.join("graphs")).as_deref())
}

pub struct TextEncoderSession {
    session: ComponentSession,
    input_ids: TensorSpec,
    output: String,
    hidden_size: Option<usize>,
}

impl TextEncoderSession {
    fn load(runtime: &Runtime, files: &ComponentFiles) -> Result<TextEncoderSession> {
        TextEncoderSession::load_with_initializers(runtime, files, Vec::new())
    }

    /// The text encoder with initializers replaced by name (its token table extended by embeddings).
    pub(super) fn load_with_initializers(
        runtime: &Runtime,
        files: &ComponentFiles,
        initializers: Vec<(String, ort::value::DynValue)>,
    ) -> Result<TextEncoderSession> {
        let session = ComponentSession::load_with_initializers(runtime, "text_encoder", files, initializers)?;
        let input_ids = session.input("input_ids")?.clone();
        session.expect_rank(&input_ids, 2)?;
        if !matches!(input_ids.dtype, ElementType::Int32 | ElementType::Int64) {
            return Err(EngineError::UnsupportedModelIo {
                component: "text_encoder",
                name: input_ids.name,
                detail: format!("token ids must be int32 or int64, the model declares {}", input_ids.dtype),
            });
        }
        let output = session
            .outputs
            .iter()
            .find(|spec| spec.name == "last_hidden_state")
            .map_or(session.first_output()?, |spec| spec)
            .clone();
        session.expect_rank(&output, 3)?;
        Ok(TextEncoderSession { hidden_size: output.fixed_dim(2), output: output.name, input_ids, session })
    }

    /// Hidden states `[batch, tokens, width]` for rows of token ids.
    pub fn encode(&mut self, ids: &Array2<i64>) -> Result<Array3<f32>> {
        let value = io::int_input("text_encoder", &self.input_ids, ids.clone().into_dyn())?;
        let hidden = self.session.run(vec![(self.input_ids.name.clone(), value)], &self.output.clone())?;
        hidden
            .into_dimensionality::<Ix3>()
            .map_err(|e| EngineError::inference("text_encoder", format!("unexpected output shape: {e}")))
    }
}

pub struct UnetSession {
    session: ComponentSession,
    sample: TensorSpec,
    timestep: TensorSpec,
    encoder_hidden_states: TensorSpec,
    output: String,
}

impl UnetSession {
    fn load(runtime: &Runtime, files: &ComponentFiles) -> Result<UnetSession> {
        let session = ComponentSession::load(runtime, "unet", files)?;
        let sample = session.input("sample")?.clone();
        session.expect_rank(&sample, 4)?;
        let timestep = session.input("timestep")?.clone();
        // io::timestep_input checks the timestep's rank and type when it builds the value; check it here too so a
        // model that cannot run is refused at load time.
        io::timestep_input(&timestep, 0.0, 1)?;
        let encoder_hidden_states = session.input("encoder_hidden_states")?.clone();
        session.expect_rank(&encoder_hidden_states, 3)?;
        let output = session.first_output()?.name.clone();
        Ok(UnetSession { session, sample, timestep, encoder_hidden_states, output })
    }

    /// Latent channels the UNet takes: 4 for text-to-image models, 9 for inpainting models.
    pub fn in_channels(&self) -> Option<usize> {
        self.sample.fixed_dim(1)
    }

    pub fn context_width(&self) -> Option<usize> {
        self.encoder_hidden_states.fixed_dim(2)
    }

    /// The model's noise prediction for `sample` at `timestep`.
    pub fn predict(&mut self, sample: &ArrayD<f32>, timestep: f64, context: &Array3<f32>) -> Result<ArrayD<f32>> {
        let batch = sample.shape()[0];
        let inputs = vec![
            (self.sample.name.clone(), io::float_input("unet", &self.sample, sample.view())?),
            (self.timestep.name.clone(), io::timestep_input(&self.timestep, timestep, batch)?),
        ];
        let context = KeptInput { spec: &self.encoder_hidden_states, values: context.view().into_dyn() };
        let mut outputs = self.session.run_in_loop(inputs, &[context], std::slice::from_ref(&self.output))?;
        Ok(outputs.remove(0))
    }
}

pub struct VaeDecoderSession {
    session: ComponentSession,
    latent: TensorSpec,
    output: String,
}

impl VaeDecoderSession {
    fn load(runtime: &Runtime, files: &ComponentFiles) -> Result<VaeDecoderSession> {
        let session = ComponentSession::load(runtime, "vae_decoder", files)?;
        let latent = session.input("latent_sample")?.clone();
        session.expect_rank(&latent, 4)?;
        let output = session.first_output()?.name.clone();
        Ok(VaeDecoderSession { session, latent, output })
    }

    pub fn latent_channels(&self) -> Option<usize> {
        self.latent.fixed_dim(1)
    }

    /// Whether the decoder takes fp16 latents (an fp16 export: the kind that can overflow to NaN).
    pub fn is_fp16(&self) -> bool {
        self.latent.dtype == ElementType::Float16
    }

    /// Images in [-1, 1], `[batch, 3, height, width]`, from unscaled latents.
    pub fn decode(&mut self, latents: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let value = io::float_input("vae_decoder", &self.latent, latents.view())?;
        let output = self.output.clone();
        self.session.run(vec![(self.latent.name.clone(), value)], &output)
    }
}

/// The VAE encoder: an image in [-1, 1] to either the latent distribution's parameters (`latent_parameters`: mean
/// and log-variance, twice the latent channels, as optimum exports it) or a finished latent (older exports).
pub struct VaeEncoderSession {
    session: ComponentSession,
    sample: TensorSpec,
    output: String,
}

impl VaeEncoderSession {
    fn load(runtime: &Runtime, files: &ComponentFiles) -> Result<VaeEncoderSession> {
        let session = ComponentSession::load(runtime, "vae_encoder", files)?;
        let sample = session.input("sample")?.clone();
        session.expect_rank(&sample, 4)?;
        let output = session
            .outputs
            .iter()
            .find(|spec| spec.name == "latent_parameters")
            .map_or(session.first_output()?, |spec| spec)
            .clone();
        session.expect_rank(&output, 4)?;
        Ok(VaeEncoderSession { output: output.name, sample, session })
    }

    /// `[batch, channels, height / 8, width / 8]` for images `[batch, 3, height, width]` in [-1, 1].
    pub fn encode(&mut self, images: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let value = io::float_input("vae_encoder", &self.sample, images.view())?;
        let output = self.output.clone();
        self.session.run(vec![(self.sample.name.clone(), value)], &output)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// The graph file the session was made from: the model's own, or ONNX Runtime's optimized copy in the cache.
    pub graph: std::path::PathBuf,
}

/// What `pigment models inspect` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub folder: ModelFolder,
    pub text_encoder: ComponentInfo,
    pub unet: ComponentInfo,
    pub vae_decoder: ComponentInfo,
    pub unet_in_channels: Option<usize>,
    pub inpainting: bool,
    pub context_width: Option<usize>,
    /// The scheduler configuration as read (or SD 1.x's defaults when the folder has none).
    pub scheduler: SchedulerConfig,
    pub execution_provider: String,
    /// fp16 or fp32 for the UNet, and why.
    pub precision: PrecisionDecision,
}

/// Everything txt2img needs, loaded once and kept between generations.
pub struct LoadedModel {
    pub folder: ModelFolder,
    pub tokenizer: ClipTokenizer,
    pub text_encoder: TextEncoderSession,
    pub unet: UnetSession,
    pub vae_decoder: VaeDecoderSession,
    /// Present when the folder has `vae_encoder/` (image to image and inpainting need it).
    pub vae_encoder: Option<VaeEncoderSession>,
    /// The fp32 decoder of `vae_decoder_fp32/`, loaded the first time the fp16 decoder gives NaN or infinity.
    pub(crate) vae_decoder_fp32: Option<VaeDecoderSession>,
    pub scheduler_config: SchedulerConfig,
    /// "Model hash" in the PNG metadata: see [`unet_hash`].
    pub hash: String,
    execution_provider: String,
    precision: PrecisionDecision,
    runtime: Runtime,
    /// Low- and medium-VRAM modes: what the parts share to take turns on the device.
    turns: Option<TakingTurns>,
    /// What stops its runs while they run ([`LoadedModel::watch_cancel`]).
    cancel: Option<CancelSignal>,
}

impl LoadedModel {
    pub fn load(runtime: &Runtime, folder: ModelFolder) -> Result<LoadedModel> {
        let tokenizer = ClipTokenizer::from_folder(&folder.tokenizer)?;
        let scheduler_config = match &folder.scheduler_config {
            Some(path) => SchedulerConfig::from_file(path)?,
            None => SchedulerConfig::default(),
        };
        let mut text_encoder = TextEncoderSession::load(runtime, &folder.text_encoder)?;
        let precision = precision_for(runtime, text_encoder.hidden_size);
        // Low-VRAM mode: the text encoder, UNet and VAE take turns on the device (each made when it runs after
        // another), the VAE works in tiles and cuDNN keeps small workspaces. Medium mode: only the text encoder
        // and the VAE take turns, the UNet stays loaded at full speed.
        let turns = (precision.memory != MemoryMode::Full).then(TakingTurns::default);
        let runtime = &if precision.memory == MemoryMode::Low { runtime.lean() } else { runtime.clone() };
        if let Some(turns) = &turns {
            text_encoder.session.take_turns(turns);
        }
        // The UNet is where fp16 pays (it runs at every step); the text encoder runs once and CLIP's LayerNorms are
        // fragile in fp16, and the VAE keeps fp32 weights for its NaN retry. See runtime/precision.rs.
        let unet_files = match precision.precision {
            Precision::Fp16 => fp16_files(runtime, &folder.unet)?,
            Precision::Fp32 => folder.unet.clone(),
        };
        let mut unet = UnetSession::load(runtime, &unet_files)?;
        let mut vae_decoder = VaeDecoderSession::load(runtime, &folder.vae_decoder)?;
        let mut vae_encoder =
            folder.vae_encoder.as_ref().map(|files| VaeEncoderSession::load(runtime, files)).transpose()?;
        if let Some(turns) = &turns {
            vae_decoder.session.take_turns(turns);
            if let Some(encoder) = &mut vae_encoder {
                encoder.session.take_turns(turns);
            }
        }
        if let Some(turns) = turns.as_ref().filter(|_| precision.memory == MemoryMode::Low) {
            unet.session.take_turns(turns);
        }
        let hash = unet_hash(&folder.unet.model)?;
        let model = LoadedModel {
            hash,
            folder,
            tokenizer,
            text_encoder,
            unet,
            vae_decoder,
            vae_encoder,
            vae_decoder_fp32: None,
            scheduler_config,
            execution_provider: runtime.providers().to_string(),
            precision,
            runtime: runtime.clone(),
            turns,
            cancel: None,
        };
        model.check_consistency()?;
        Ok(model)
    }

    pub fn open(runtime: &Runtime, path: &Path) -> Result<LoadedModel> {
        LoadedModel::load(runtime, ModelFolder::open(path)?)
    }

    /// Low-VRAM mode: the VAE works in tiles unless a generation asks otherwise.
    pub fn tiles_vae_always(&self) -> bool {
        self.precision.memory == MemoryMode::Low
    }

    /// The runtime the model's parts were made with (lean in low-VRAM mode); parts opened for it use the same.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The parts must fit together: the text encoder's width is the UNet's context width, the UNet's output
    /// channels are the VAE's latent channels.
    fn check_consistency(&self) -> Result<()> {
        let mismatch =
            |detail: String| EngineError::IncompatibleComponents { folder: self.folder.root.clone(), detail };
        if let (Some(text), Some(unet)) = (self.text_encoder.hidden_size, self.unet.context_width())
            && text != unet
        {
            return Err(mismatch(format!(
                "the text encoder gives {text}-wide embeddings but the UNet expects encoder_hidden_states {unet} wide"
            )));
        }
        // 4 latent channels for text-to-image UNets, 2 * 4 + 1 for inpainting ones (latents, masked image, mask).
        if let (Some(unet), Some(vae)) = (self.unet.in_channels(), self.vae_decoder.latent_channels())
            && unet != vae
            && unet != vae * 2 + 1
        {
            return Err(mismatch(format!("the UNet takes {unet} latent channels but the VAE decoder {vae}")));
        }
        Ok(())
    }

    /// The fp32 VAE decoder of `vae_decoder_fp32/`, loaded on first use; `None` when the folder has none.
    pub(crate) fn fp32_vae_decoder(&mut self) -> Result<Option<&mut VaeDecoderSession>> {
        if self.vae_decoder_fp32.is_none()
            && let Some(files) = &self.folder.vae_decoder_fp32
        {
            let mut decoder = VaeDecoderSession::load(&self.runtime, files)?;
            decoder.session.watch_cancel(self.cancel.as_ref())?;
            if let Some(turns) = &self.turns {
                decoder.session.take_turns(turns);
            }
            self.vae_decoder_fp32 = Some(decoder);
        }
        Ok(self.vae_decoder_fp32.as_mut())
    }

    /// A part opened apart from this model (a ControlNet, an adapter, the UNet with residual inputs) shares the
    /// device as this model's parts do: see [`ComponentSession::share_device`]. They run at every step, as the
    /// UNet: in medium mode they stay loaded with it.
    /// They stop with this model's cancel signal too.
    pub(super) fn share_device(&self, session: &mut ComponentSession) -> Result<()> {
        let turns = self.turns.as_ref().filter(|_| self.precision.memory == MemoryMode::Low);
        session.share_device(turns, &self.runtime);
        session.watch_cancel(self.cancel.as_ref())
    }

    /// A part opened apart from this model that runs once per image (an annotator) shares the device as the text
    /// encoder and the VAE do: it takes turns with them in medium and low modes.
    pub(super) fn share_device_once_per_image(&self, session: &mut ComponentSession) -> Result<()> {
        session.share_device(self.turns.as_ref(), &self.runtime);
        session.watch_cancel(self.cancel.as_ref())
    }

    /// A text encoder made again (with textual-inversion embeddings) stops with the model's cancel signal too.
    pub(super) fn watch_cancel_in_text_encoder(&mut self) -> Result<()> {
        self.text_encoder.session.watch_cancel(self.cancel.as_ref())
    }

    /// From now on the model's runs (and those of the ControlNets, adapters and annotators that share its device)
    /// stop while they run once `signal` is set, with [`EngineError::Cancelled`]; `None` lets every run finish. The
    /// pipeline's own cancel ([`crate::progress::Flow::Cancel`]) is seen only between runs.
    pub fn watch_cancel(&mut self, signal: Option<CancelSignal>) -> Result<()> {
        let encoder = self.vae_encoder.as_mut().map(|encoder| &mut encoder.session);
        let fp32_decoder = self.vae_decoder_fp32.as_mut().map(|decoder| &mut decoder.session);
        let parts =
            [Some(&mut self.text_encoder.session), Some(&mut self.unet.session), Some(&mut self.vae_decoder.session)];
        for session in parts.into_iter().chain([encoder, fp32_decoder]).flatten() {
            session.watch_cancel(signal.as_ref())?;
        }
        self.cancel = signal;
        Ok(())
    }

    /// The free dimensions fixed in each part's session now, by the model's names for them: empty unless the
    /// runtime fixes dimensions (DirectML; see [`Runtime::fixed_dimensions`]).
    pub fn fixed_dimensions(&self) -> Vec<(&'static str, Vec<(String, i64)>)> {
        let encoder = self.vae_encoder.as_ref().map(|encoder| &encoder.session);
        [Some(&self.text_encoder.session), Some(&self.unet.session), Some(&self.vae_decoder.session), encoder]
            .into_iter()
            .flatten()
            .map(|session| (session.component, session.fixed_dimensions()))
            .collect()
    }

    /// The parts whose sessions are loaded now: all of them, except in low-VRAM mode, where at most one is.
    pub fn loaded_parts(&self) -> Vec<&'static str> {
        let encoder = self.vae_encoder.as_ref().map(|encoder| &encoder.session);
        let fp32_decoder = self.vae_decoder_fp32.as_ref().map(|decoder| &decoder.session);
        [
            Some(&self.text_encoder.session),
            Some(&self.unet.session),
            Some(&self.vae_decoder.session),
            encoder,
            fp32_decoder,
        ]
        .into_iter()
        .flatten()
        .filter(|session| session.is_loaded())
        .map(|session| session.component)
        .collect()
    }

    /// The parts whose loaded sessions run with their IO bound to the device: the UNet once it has run, when the
    /// runtime binds IO ([`Runtime::io_binding`]).
    pub fn bound_parts(&self) -> Vec<&'static str> {
        [&self.text_encoder.session, &self.unet.session, &self.vae_decoder.session]
            .into_iter()
            .filter(|session| session.is_bound())
            .map(|session| session.component)
            .collect()
    }

    pub fn info(&self) -> ModelInfo {
        let in_channels = self.unet.in_channels();
        ModelInfo {
            folder: self.folder.clone(),
            text_encoder: self.text_encoder.session.describe(),
            unet: self.unet.session.describe(),
            vae_decoder: self.vae_decoder.session.describe(),
            unet_in_channels: in_channels,
            inpainting: in_channels == Some(9),
            context_width: self.unet.context_width(),
            scheduler: self.scheduler_config.clone(),
            execution_provider: self.execution_provider.clone(),
            precision: self.precision.clone(),
        }
    }
}

/// The first 10 hex digits of the UNet graph file's SHA-256, in the spirit of A1111's "Model hash" (which hashes
/// the checkpoint file: an ONNX folder's identity is its UNet).
fn unet_hash(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let read_error = |e: std::io::Error| EngineError::ReadFile { path: path.to_path_buf(), reason: e.to_string() };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(read_error)?;
    Ok(hasher.finalize().iter().take(5).map(|b| format!("{b:02x}")).collect())
}

/// The precision for a model whose text embeddings are `context_width` wide, on this runtime's device.
fn precision_for(runtime: &Runtime, context_width: Option<usize>) -> PrecisionDecision {
    let provider = runtime.providers().active;
    let family = ModelFamily::from_context_width(context_width.unwrap_or(768));
    // Probing GPUs costs a few milliseconds and means nothing for the CPU.
    let gpu_memory = match provider {
        ExecutionProvider::Cpu => None,
        _ => probe_devices().largest_gpu().and_then(|gpu| gpu.vram_total),
    };
    choose_precision(runtime.precision(), runtime.low_vram(), provider, gpu_memory, family)
}

/// The fp16 files for `files`: the model itself when it already is fp16, else its conversion from the cache
/// (converted now on the first use). Without a cache folder there is nowhere to keep a conversion: the model is
/// used as it is.
fn fp16_files(runtime: &Runtime, files: &ComponentFiles) -> Result<ComponentFiles> {
    let Some(cache_dir) = runtime.cache_dir() else {
        return Ok(files.clone());
    };
    match fp16_variant(&files.model, cache_dir, |_, _| Flow::Continue) {
        Ok(model) => {
            let external_data: Vec<_> =
                [model.with_file_name("model.onnx_data")].into_iter().filter(|p| p.is_file()).collect();
            let size = std::iter::once(&model)
                .chain(&external_data)
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            Ok(ComponentFiles { model, external_data, size })
        }
        Err(EngineError::Fp16Conversion { problem: Fp16Problem::AlreadyFp16, .. }) => Ok(files.clone()),
        Err(error) => Err(error),
    }
}
