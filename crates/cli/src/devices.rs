//! `pigment devices`: the machine's CPU, memory and GPUs, the execution provider that would run, and the
//! precision Pigment would choose for an SD 1.x model.

use clap::Args;
use pigment_engine::runtime::{LowVramChoice, ModelFamily, PrecisionChoice, choose_precision, probe_devices};
use serde_json::json;

use crate::{CliError, RuntimeArgs};

#[derive(Args)]
pub struct DevicesArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

const GIB: f64 = (1u64 << 30) as f64;

pub fn run(args: DevicesArgs) -> Result<(), CliError> {
    let report = probe_devices();
    // The runtime may be missing: the hardware report is still useful then, so its error becomes a line.
    let runtime = args.runtime.load();
    let provider = runtime.as_ref().map(|r| r.providers().clone());
    let decision = provider.as_ref().ok().map(|providers| {
        let memory = report.largest_gpu().and_then(|gpu| gpu.vram_total);
        choose_precision(PrecisionChoice::Auto, LowVramChoice::Auto, providers.active, memory, ModelFamily::Sd1)
    });
    if args.json {
        let value = json!({
            "system": report,
            "execution_provider": provider.as_ref().map(|p| p.to_string()).map_err(|e| e.to_string()),
            "precision_sd1": decision,
        });
        println!("{}", serde_json::to_string_pretty(&value).map_err(|e| CliError::Usage(e.to_string()))?);
        return Ok(());
    }
    println!("system     {}", report.os);
    println!("cpu        {} ({} logical cores)", report.cpu, report.logical_cores);
    println!(
        "memory     {:.1} GiB, {:.1} GiB available",
        report.ram_total as f64 / GIB,
        report.ram_available as f64 / GIB
    );
    if report.gpus.is_empty() {
        println!("gpu        none found");
    }
    for gpu in &report.gpus {
        let memory = match (gpu.vram_total, gpu.vram_free) {
            (Some(total), Some(free)) => format!("{:.1} GiB, {:.1} GiB free", total as f64 / GIB, free as f64 / GIB),
            (Some(total), None) => format!("{:.1} GiB", total as f64 / GIB),
            _ => "memory unknown".into(),
        };
        let extra = [
            gpu.driver.as_ref().map(|d| format!("driver {d}")),
            gpu.compute_capability.as_ref().map(|c| format!("compute {c}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        println!(
            "gpu        {} ({}): {memory}{}",
            gpu.name,
            gpu.vendor,
            if extra.is_empty() { String::new() } else { format!("; {extra}") }
        );
    }
    for note in &report.notes {
        println!("note       {note}");
    }
    match (&provider, &decision) {
        (Ok(provider), Some(decision)) => {
            println!("runs on    {provider}");
            println!("precision  {} for SD 1.x", decision.reason);
        }
        (Err(error), _) => println!("runs on    nothing: {error}"),
        _ => {}
    }
    Ok(())
}
