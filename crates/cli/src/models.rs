//! `pigment models inspect DIR`.

use std::path::PathBuf;

use clap::Subcommand;
use pigment_engine::model::{LoadedModel, TensorSpec};

use crate::{CliError, RuntimeArgs};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Load a model folder and print its parts, their inputs and outputs, and its settings.
    Inspect {
        folder: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
}

pub fn run(command: ModelsCommand) -> Result<(), CliError> {
    match command {
        ModelsCommand::Inspect { folder, json, runtime } => {
            let runtime = runtime.load()?;
            let info = LoadedModel::open(&runtime, &folder)?.info();
            if json {
                println!("{}", serde_json::to_string_pretty(&info).map_err(|e| CliError::Usage(e.to_string()))?);
                return Ok(());
            }
            let specs = |specs: &[TensorSpec]| specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            println!("model        {} ({})", info.folder.name, info.folder.root.display());
            println!("kind         {}", if info.inpainting { "inpainting (9-channel UNet)" } else { "text-to-image" });
            for (name, files, component) in [
                ("text_encoder", &info.folder.text_encoder, &info.text_encoder),
                ("unet", &info.folder.unet, &info.unet),
                ("vae_decoder", &info.folder.vae_decoder, &info.vae_decoder),
            ] {
                let external = if files.external_data.is_empty() { String::new() } else { ", external weights".into() };
                println!("{name:<12} {:.1} MB{external}", files.size as f64 / 1e6);
                println!("             in:  {}", specs(&component.inputs));
                println!("             out: {}", specs(&component.outputs));
            }
            println!(
                "vae_encoder  {}",
                if info.folder.vae_encoder.is_some() { "present" } else { "absent (no img2img)" }
            );
            println!("vae scaling  {}", info.folder.vae_scaling_factor);
            println!("scheduler    {}", serde_json::to_string(&info.scheduler).unwrap_or_default());
            println!("device       {}", info.execution_provider);
            Ok(())
        }
    }
}
