//! `pigment serve`: the AUTOMATIC1111-compatible HTTP API (crates/server) on one loaded model, until Ctrl+C.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use pigment_server::{Credentials, LocalBackend, LocalBackendOptions, ServerConfig};

use crate::{CliError, RuntimeArgs};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1; with --listen: 0.0.0.0].
    #[arg(long)]
    host: Option<IpAddr>,
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 7860)]
    port: u16,
    /// Allow an address other machines can reach (then --api-auth or --api-key is required).
    #[arg(long)]
    listen: bool,
    /// HTTP basic credentials, as A1111's: user:password, several separated by commas.
    #[arg(long, value_name = "USER:PASSWORD")]
    api_auth: Option<String>,
    /// A key clients send as `Authorization: Bearer KEY`.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Model folder loaded at start (default: the bundled demo model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Folder of model folders that clients may switch to (`sd_model_checkpoint`).
    #[arg(long, value_name = "DIR")]
    models_folder: Option<PathBuf>,
    /// Folder of upscaler model folders (each with model.onnx) for extras and the hires fix.
    #[arg(long, value_name = "DIR")]
    upscalers: Option<PathBuf>,
    /// Largest request body accepted, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = pigment_server::DEFAULT_MAX_BODY_BYTES >> 20)]
    max_body_mib: usize,
    /// Do not log one line per request.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    let credentials = Credentials::new(args.api_auth.as_deref(), args.api_key.as_deref()).map_err(|e| usage(&e))?;
    let default_host = if args.listen { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::LOCALHOST) };
    let address = SocketAddr::new(args.host.unwrap_or(default_host), args.port);
    credentials.check_bind(address, args.listen).map_err(|e| usage(&e))?;
    let model = match args.model {
        Some(model) => model,
        None => pigment_engine::model::find_demo_model().ok_or_else(|| {
            CliError::Usage("no --model given and the demo model (models/tiny-sd) was not found".into())
        })?,
    };
    let runtime = args.runtime.load()?;
    eprintln!("loading {} on {}", model.display(), runtime.providers());
    let backend = Arc::new(
        LocalBackend::start(LocalBackendOptions {
            runtime,
            model,
            models_folder: args.models_folder,
            upscalers_folder: args.upscalers,
        })
        .map_err(|e| usage(&e))?,
    );
    let config = ServerConfig { credentials, max_body_bytes: args.max_body_mib << 20, log_requests: !args.quiet };
    let app = pigment_server::router(backend.clone(), config);
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address).await?;
        eprintln!("listening on http://{}/sdapi/v1 (Ctrl+C stops)", listener.local_addr()?);
        let shutdown = async move {
            // Without a signal handler there is no clean stop; the server then runs until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            eprintln!("stopping: interrupting the running job");
            // Answers every queued request before the server waits for them.
            let _ = tokio::task::spawn_blocking(move || backend.shutdown()).await;
        };
        pigment_server::serve(listener, app, shutdown).await
    })?;
    Ok(())
}
