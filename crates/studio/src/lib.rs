//! pigment-studio: what every front end (the `pigment` command, `pigment serve`, the desktop app) shares above the
//! engine, so each rule exists once: the models offered and how an AUTOMATIC1111 title finds one ([`catalog`],
//! [`titles`]), the model kept loaded between jobs, with one rule for a load that fails ([`ModelSlot`]), and
//! how a running job is cancelled or skipped ([`StopFlags`]).
//! See ARCHITECTURE.md, "One runner for three front ends".

pub mod catalog;
mod model_slot;
mod stop;
pub mod titles;

pub use catalog::{CatalogEntry, ModelCatalog, ModelOrigin};
pub use model_slot::ModelSlot;
pub use stop::StopFlags;
