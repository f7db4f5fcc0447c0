//! pigment-engine: Stable Diffusion through ONNX Runtime, image for image with diffusers.
//!
//! The engine knows nothing of the app or the CLI: they call [`pipeline`] with a [`pipeline::GenerateRequest`]
//! and a progress callback, and get images back. See `ARCHITECTURE.md` at the repository root for the contracts
//! between the parts.

pub mod error;
pub mod image;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod rng;
pub mod runtime;
pub mod schedulers;
pub mod text;

pub use error::{EngineError, Result};
