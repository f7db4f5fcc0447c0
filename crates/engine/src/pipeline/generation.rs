//! The one entry point of generation: [`generate`] runs a plain-data [`Generation`] on the loaded [`Resources`].
//! The mode follows from the source, as stable-diffusion.cpp's `generate_image` does: text alone is text to
//! image (with the hires fix when asked), a picture is image to image, a picture and a mask inpainting, a picture
//! and borders outpainting. A generation is checked whole before any model runs.

use image::GrayImage;

use super::control::ControlRequest;
use super::control_spec::{ControlModels, ControlSpec};
use super::hires::{HiresFix, HiresUpscaler, txt2img_hires};
use super::img2img::{ImageSource, img2img};
use super::inpaint::{InpaintArea, InpaintSource, OutpaintSource, inpaint, outpaint};
use super::run::Run;
use super::txt2img::txt2img;
use super::vae::INPAINTING_CHANNELS;
use super::vae::VaeTiling;
use super::{GenerateRequest, GenerateSummary, GenerationObserver};
use crate::error::{EngineError, Result};
use crate::model::{LoadedModel, UpscalerSession};

/// What a generation starts from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Source {
    /// The prompt alone: text to image.
    #[default]
    Text,
    Image(ImageSource),
    Inpaint(InpaintSource),
    Outpaint(OutpaintSource),
}

/// A whole generation as plain data: no loaded model inside, so front ends build, queue, clone and compare it
/// freely, and the same generation runs the same in the CLI, the API and the app.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Generation {
    /// Prompt, sampler, seed, steps, size and batch.
    pub params: GenerateRequest,
    pub source: Source,
    /// A second, larger pass (text to image only).
    pub hires: Option<HiresFix>,
    /// ControlNet and T2I-Adapter units: model folders and prepared pictures.
    pub control: ControlSpec,
    /// When the VAE works in tiles; a model in low-VRAM mode tiles unless told [`super::VaeTilingMode::Never`].
    pub vae_tiling: VaeTiling,
}

impl Generation {
    /// Text to image with `params`.
    pub fn text(params: GenerateRequest) -> Generation {
        Generation { params, ..Generation::default() }
    }

    /// `params` on `source`.
    pub fn from_source(params: GenerateRequest, source: Source) -> Generation {
        Generation { params, source, ..Generation::default() }
    }

    /// Every value, before any model runs, with the parameter's name and the value in the error.
    pub fn validate(&self) -> Result<()> {
        match &self.source {
            // The canvas is the size: the parameters are checked at it.
            Source::Outpaint(source) => source.validate(&self.params)?,
            Source::Text => self.params.validate()?,
            Source::Image(source) => {
                self.params.validate()?;
                source.validate()?;
            }
            Source::Inpaint(source) => {
                self.params.validate()?;
                source.validate()?;
            }
        }
        if let Some(hires) = &self.hires {
            if self.source != Source::Text {
                return Err(EngineError::parameter(
                    "hires fix",
                    format!("{}x", hires.scale),
                    "the hires fix applies to text to image only",
                ));
            }
            hires.validate(&self.params)?;
        }
        self.control.validate()
    }

    /// The images this generation makes.
    pub fn image_count(&self) -> usize {
        self.params.batch_size * self.params.batch_count
    }
}

/// What a generation runs on: the loaded model, and what else it may use.
pub struct Resources<'a> {
    pub model: &'a mut LoadedModel,
    /// ControlNets, adapters and the residual UNet, kept open between generations; without it, the units of a
    /// generation are opened for it alone.
    pub control_models: Option<&'a mut ControlModels>,
    /// The upscaler model for [`HiresUpscaler::Model`].
    pub upscaler: Option<&'a mut UpscalerSession>,
}

impl<'a> Resources<'a> {
    pub fn new(model: &'a mut LoadedModel) -> Resources<'a> {
        Resources { model, control_models: None, upscaler: None }
    }

    pub fn with_control_models(self, control_models: &'a mut ControlModels) -> Resources<'a> {
        Resources { control_models: Some(control_models), ..self }
    }

    pub fn with_upscaler(self, upscaler: Option<&'a mut UpscalerSession>) -> Resources<'a> {
        Resources { upscaler, ..self }
    }
}

/// Runs `generation` on `resources`, handing each image to `observer` as it is made.
pub fn generate(
    resources: Resources<'_>,
    generation: &Generation,
    observer: &mut dyn GenerationObserver,
) -> Result<GenerateSummary> {
    generation.validate()?;
    let Resources { model, control_models, upscaler } = resources;
    if generation.hires.as_ref().is_some_and(|hires| hires.upscaler == HiresUpscaler::Model) && upscaler.is_none() {
        return Err(EngineError::parameter("hires upscaler", "model", "no upscaler model was given"));
    }
    let control = open_control(model, control_models, &generation.control)?;
    let mut run = Run::new(observer, &generation.params, generation.vae_tiling, model)?;
    let params = &generation.params;
    match (&generation.source, &generation.hires) {
        (Source::Text, None) => txt2img(model, params, &control, &mut run)?,
        (Source::Text, Some(hires)) => txt2img_hires(model, params, hires, &control, upscaler, &mut run)?,
        (Source::Image(source), _) if model.unet.in_channels() == Some(INPAINTING_CHANNELS) => {
            // An inpainting model takes a mask: all white repaints everything, as A1111 conditions inpainting models
            // in img2img (`img2img_image_conditioning`).
            inpaint(model, params, &repaint_everything(source), &control, &mut run)?
        }
        (Source::Image(source), _) => img2img(model, params, source, &control, &mut run)?,
        (Source::Inpaint(source), _) => inpaint(model, params, source, &control, &mut run)?,
        (Source::Outpaint(source), _) => outpaint(model, params, source, &control, &mut run)?,
    }
    Ok(run.finish())
}

/// The loaded form of `spec`: from the kept `control_models`, or opened for this generation alone.
fn open_control(
    model: &LoadedModel,
    control_models: Option<&mut ControlModels>,
    spec: &ControlSpec,
) -> Result<ControlRequest> {
    if spec.is_empty() {
        return Ok(ControlRequest::default());
    }
    let mut own = ControlModels::default();
    let control_models = control_models.unwrap_or(&mut own);
    control_models.request(model.runtime(), &model.folder.root, spec)
}

/// Image to image as inpainting with a white mask (how an inpainting model does image to image).
fn repaint_everything(source: &ImageSource) -> InpaintSource {
    let (width, height) = source.image.dimensions();
    InpaintSource {
        strength: source.strength,
        resize_mode: source.resize_mode,
        mask_blur: 0,
        area: InpaintArea::WholePicture,
        ..InpaintSource::new(source.image.clone(), GrayImage::from_pixel(width, height, image::Luma([255])))
    }
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;
    use crate::image::control::ControlImage;
    use crate::model::ResidualKind;
    use crate::pipeline::{ControlUnitSpec, Preprocessing};

    fn refused(generation: &Generation) -> String {
        generation.validate().expect_err("the generation must be refused").to_string()
    }

    #[test]
    fn a_generation_is_checked_whole_with_the_parameter_named() {
        let params = GenerateRequest::default();
        Generation::text(params.clone()).validate().unwrap();
        let picture = RgbImage::new(64, 64);
        let image = Source::Image(ImageSource { strength: 1.5, ..ImageSource::new(picture.clone()) });
        assert!(refused(&Generation::from_source(params.clone(), image)).contains("strength: 1.5"));
        let hires = Some(HiresFix::default());
        let on_image = Generation {
            hires: hires.clone(),
            ..Generation::from_source(params.clone(), Source::Image(ImageSource::new(picture.clone())))
        };
        assert!(refused(&on_image).contains("hires fix"));
        Generation { hires, ..Generation::text(params.clone()) }.validate().unwrap();
        let unit = ControlUnitSpec {
            kind: ResidualKind::ControlNet,
            model: "controlnet".into(),
            image: ControlImage::new(picture.clone()),
            preprocessing: Preprocessing::default(),
            weight: 11.0,
            start: 0.0,
            end: 1.0,
            annotation: None,
        };
        let control = ControlSpec { units: vec![unit], ..ControlSpec::default() };
        assert!(refused(&Generation { control, ..Generation::text(params.clone()) }).contains("control weight: 11"));
    }

    #[test]
    fn outpainting_checks_the_parameters_at_the_canvas_size() {
        // The width asked for is ignored (the canvas is the size), so a bad one does not matter...
        let params = GenerateRequest { width: 100, ..GenerateRequest::default() };
        let borders = OutpaintSource { left: 16, ..OutpaintSource::new(RgbImage::new(64, 64)) };
        Generation::from_source(params.clone(), Source::Outpaint(borders.clone())).validate().unwrap();
        // ...but a canvas above the largest size is refused, and no border at all.
        let huge = OutpaintSource { right: 4096, ..borders };
        assert!(refused(&Generation::from_source(params.clone(), Source::Outpaint(huge))).contains("canvas size"));
        let none = Source::Outpaint(OutpaintSource::new(RgbImage::new(64, 64)));
        assert!(refused(&Generation::from_source(params, none)).contains("outpaint"));
    }
}
