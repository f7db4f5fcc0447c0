//! Tensor specs read from sessions, and conversions between the pipeline's f32 arrays and whatever element type a
//! model's inputs and outputs have (fp16 exports, int32/int64 token ids, timesteps of any numeric type and rank).

use std::fmt;

use half::f16;
use ndarray::{ArrayD, ArrayViewD};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
use serde::Serialize;

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    Float32,
    Float16,
    Float64,
    Int32,
    Int64,
    Other,
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElementType::Float32 => "float32",
            ElementType::Float16 => "float16",
            ElementType::Float64 => "float64",
            ElementType::Int32 => "int32",
            ElementType::Int64 => "int64",
            ElementType::Other => "unsupported type",
        })
    }
}

impl From<TensorElementType> for ElementType {
    fn from(value: TensorElementType) -> Self {
        match value {
            TensorElementType::Float32 => ElementType::Float32,
            TensorElementType::Float16 => ElementType::Float16,
            TensorElementType::Float64 => ElementType::Float64,
            TensorElementType::Int32 => ElementType::Int32,
            TensorElementType::Int64 => ElementType::Int64,
            _ => ElementType::Other,
        }
    }
}

/// A model input or output as the session declares it. Dynamic dimensions are -1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: ElementType,
    pub shape: Vec<i64>,
    /// The names the model gives its free dimensions ("batch", "height"; empty for fixed or unnamed ones): what
    /// DirectML's free-dimension overrides refer to.
    #[serde(skip)]
    pub dim_names: Vec<String>,
}

impl TensorSpec {
    pub(crate) fn from_outlet(outlet: &ort::value::Outlet) -> TensorSpec {
        let (dtype, shape, dim_names) = match outlet.dtype() {
            ValueType::Tensor { ty, shape, dimension_symbols } => {
                ((*ty).into(), shape.iter().copied().collect(), dimension_symbols.iter().cloned().collect())
            }
            _ => (ElementType::Other, Vec::new(), Vec::new()),
        };
        TensorSpec { name: outlet.name().to_string(), dtype, shape, dim_names }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The size of dimension `axis` when the model fixes it.
    pub fn fixed_dim(&self, axis: usize) -> Option<usize> {
        self.shape.get(axis).and_then(|&d| usize::try_from(d).ok())
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.shape.iter().map(|&d| if d < 0 { "?".into() } else { d.to_string() }).collect();
        write!(f, "{} {}[{}]", self.name, self.dtype, dims.join(", "))
    }
}

/// Tensors as an error message lists them (`none` when there are none).
pub(crate) fn describe_specs(specs: &[TensorSpec]) -> String {
    if specs.is_empty() {
        return "none".into();
    }
    specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The one input of a model that takes a single picture (`taker`: "an upscaler", "an annotator"), checked with
/// [`check_rgb_image`].
pub(crate) fn single_rgb_image(component: &'static str, inputs: &[TensorSpec], taker: &str) -> Result<TensorSpec> {
    let [input] = inputs else {
        let name = inputs.first().map_or("", |s| s.name.as_str());
        return Err(EngineError::UnsupportedModelIo {
            component,
            name: name.to_string(),
            detail: format!("{taker} takes one image input, this model takes {}", describe_specs(inputs)),
        });
    };
    check_rgb_image(component, input, "input")?;
    Ok(input.clone())
}

/// `spec` (the model's `what`: input or output) is a float RGB picture `[batch, 3, height, width]`.
pub(crate) fn check_rgb_image(component: &'static str, spec: &TensorSpec, what: &str) -> Result<()> {
    let float = matches!(spec.dtype, ElementType::Float32 | ElementType::Float16 | ElementType::Float64);
    let rgb = spec.rank() == 4 && spec.shape.get(1).is_none_or(|&c| c < 0 || c == 3);
    if float && rgb {
        return Ok(());
    }
    Err(unsupported(
        component,
        spec,
        format!("the {what} must be a float image [batch, 3 (RGB), height, width], the model declares {spec}"),
    ))
}

fn unsupported(component: &'static str, spec: &TensorSpec, detail: impl Into<String>) -> EngineError {
    EngineError::UnsupportedModelIo { component, name: spec.name.clone(), detail: detail.into() }
}

fn tensor_error(stage: &'static str, error: ort::Error) -> EngineError {
    EngineError::inference(stage, error)
}

/// A float tensor for `spec`, converted to the input's float type.
pub(crate) fn float_input(component: &'static str, spec: &TensorSpec, values: ArrayViewD<'_, f32>) -> Result<DynValue> {
    let stage = component;
    Ok(match spec.dtype {
        ElementType::Float32 => Tensor::from_array(values.to_owned()).map_err(|e| tensor_error(stage, e))?.into_dyn(),
        ElementType::Float16 => {
            Tensor::from_array(values.mapv(f16::from_f32)).map_err(|e| tensor_error(stage, e))?.into_dyn()
        }
        ElementType::Float64 => {
            Tensor::from_array(values.mapv(f64::from)).map_err(|e| tensor_error(stage, e))?.into_dyn()
        }
        other => {
            return Err(unsupported(component, spec, format!("expected a float tensor, the model declares {other}")));
        }
    })
}

/// Token ids as int32 or int64, whichever the text encoder takes.
pub(crate) fn int_input(component: &'static str, spec: &TensorSpec, values: ArrayD<i64>) -> Result<DynValue> {
    Ok(match spec.dtype {
        ElementType::Int64 => Tensor::from_array(values).map_err(|e| tensor_error(component, e))?.into_dyn(),
        ElementType::Int32 => {
            // CLIP ids are below 50,000, so the narrowing is exact.
            Tensor::from_array(values.mapv(|v| v as i32)).map_err(|e| tensor_error(component, e))?.into_dyn()
        }
        other => return Err(unsupported(component, spec, format!("expected int32 or int64 token ids, found {other}"))),
    })
}

/// The UNet's timestep: rank 0, or rank 1 of the batch size (or of the size the export fixes), in its dtype.
pub(crate) fn timestep_input(spec: &TensorSpec, timestep: f64, batch: usize) -> Result<DynValue> {
    const COMPONENT: &str = "unet";
    let shape: Vec<usize> = match spec.rank() {
        0 => vec![],
        1 => vec![spec.fixed_dim(0).unwrap_or(batch)],
        rank => {
            return Err(unsupported(
                COMPONENT,
                spec,
                format!("timestep must have rank 0 or 1, the model declares rank {rank}"),
            ));
        }
    };
    let count: usize = shape.iter().product();
    let value = match spec.dtype {
        ElementType::Float32 => Tensor::from_array((shape, vec![timestep as f32; count])).map(|t| t.into_dyn()),
        ElementType::Float16 => Tensor::from_array((shape, vec![f16::from_f64(timestep); count])).map(|t| t.into_dyn()),
        ElementType::Float64 => Tensor::from_array((shape, vec![timestep; count])).map(|t| t.into_dyn()),
        // Integer exports cannot take the fractional timesteps of sigma-based schedules; the nearest one is closest.
        ElementType::Int64 => Tensor::from_array((shape, vec![timestep.round() as i64; count])).map(|t| t.into_dyn()),
        ElementType::Int32 => Tensor::from_array((shape, vec![timestep.round() as i32; count])).map(|t| t.into_dyn()),
        other => return Err(unsupported(COMPONENT, spec, format!("timestep of type {other} is not supported"))),
    };
    value.map_err(|e| tensor_error(COMPONENT, e))
}

/// Any float output as f32.
pub(crate) fn float_output(component: &'static str, value: &DynValue, name: &str) -> Result<ArrayD<f32>> {
    let fail = |e: ort::Error| EngineError::inference(component, format!("reading output {name}: {e}"));
    let dtype = match value.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(EngineError::inference(component, format!("output {name} is not a tensor: {other:?}"))),
    };
    Ok(match dtype {
        TensorElementType::Float32 => value.try_extract_array::<f32>().map_err(fail)?.to_owned(),
        TensorElementType::Float16 => value.try_extract_array::<f16>().map_err(fail)?.mapv(f16::to_f32),
        TensorElementType::Float64 => value.try_extract_array::<f64>().map_err(fail)?.mapv(|v| v as f32),
        other => {
            return Err(EngineError::UnsupportedModelIo {
                component,
                name: name.to_string(),
                detail: format!("expected a float output, found {other:?}"),
            });
        }
    }
    .into_dyn())
}
