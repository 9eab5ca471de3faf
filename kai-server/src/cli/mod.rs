//! The `kai` command: argument parsing, dispatch and error reporting.

mod catalog;
mod embed;
mod models;
mod params;
mod quality;
mod recon;
mod store;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kai_core::{DeviceRequest, Error, ModelStore};

/// Material intelligence from the command line.
#[derive(Debug, Parser)]
#[command(name = "kai", version)]
pub struct Cli {
    /// Folder with one sub-folder per model [default: MODEL_DIR, else ~/.cache/kai/models].
    #[arg(long, global = true, value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// Device to run models on: auto, cpu, cuda or cuda:N [default: KAI_DEVICE, else auto].
    #[arg(long, global = true, value_name = "DEVICE")]
    device: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch and list models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Compute embeddings.
    #[command(subcommand)]
    Embed(embed::EmbedCommand),
    /// Check photos for blur, exposure, contrast, noise and resolution before recognition
    /// or reconstruction.
    Quality(quality::QualityArgs),
    /// Import a catalog folder (catalog.json or catalog.csv plus images) into the store.
    Import(catalog::ImportArgs),
    /// Recognize the material in a photo: top materials and material types.
    Recognize(catalog::RecognizeArgs),
    /// Search the catalog by text, by image, or both.
    Search(catalog::SearchArgs),
    /// Show, list, update and delete materials.
    #[command(subcommand)]
    Materials(catalog::MaterialsCommand),
    /// Re-embed every material with the configured models (after a model change).
    Reindex(catalog::ReindexArgs),
    /// Train and list domain-specific classification heads.
    #[command(subcommand)]
    Heads(catalog::HeadsCommand),
    /// Read and change the parameter registry: sets, versions, results and suggestions.
    #[command(subcommand)]
    Params(params::ParamsCommand),
    /// Manage the store itself: copy an embedded store into PostgreSQL.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Reconstruct a 3D model from photos in one run: screening, structure from motion,
    /// dense points, a mesh, levels of detail and GLB (or PLY, OBJ) model files.
    Reconstruct(recon::ReconstructArgs),
    /// Run one stage of the reconstruction at a time (screen, sfm, dense, mesh, lod,
    /// export), and render synthetic scenes to try it on.
    #[command(subcommand)]
    Recon(recon::ReconCommand),
}

impl Cli {
    /// Returns the model store of `--model-dir`, else of `MODEL_DIR` (an empty variable
    /// counts as unset).
    fn store(&self) -> ModelStore {
        match &self.model_dir {
            Some(dir) => ModelStore::new(dir),
            None => ModelStore::from_env(),
        }
    }

    /// Opens the device of `--device`, else of `KAI_DEVICE`, checked against `GPU_ENABLED`.
    fn device(&self) -> Result<kai_core::Device, Error> {
        let device = self
            .device
            .clone()
            .or_else(|| std::env::var("KAI_DEVICE").ok());
        let gpu_enabled = std::env::var("GPU_ENABLED").ok();
        DeviceRequest::from_settings(device.as_deref(), gpu_enabled.as_deref())?.open()
    }
}

/// Parses the process arguments, runs the command and returns its exit code: 0 on
/// success, else the exit code of the error's kind.
pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Models(command) => models::run(&cli, command),
        Command::Embed(command) => embed::run(&cli, command),
        Command::Quality(args) => quality::run(args),
        Command::Import(args) => catalog::run_import(&cli, args),
        Command::Recognize(args) => catalog::run_recognize(&cli, args),
        Command::Search(args) => catalog::run_search(&cli, args),
        Command::Materials(command) => catalog::run_materials(&cli, command),
        Command::Reindex(args) => catalog::run_reindex(&cli, args),
        Command::Heads(command) => catalog::run_heads(&cli, command),
        Command::Params(command) => params::run(&cli, command),
        Command::Store(command) => store::run(&cli, command),
        Command::Reconstruct(args) => recon::run_reconstruct(args),
        Command::Recon(command) => recon::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`kai … | head -1`): stop quietly, as other tools do.
        Err(Error::Io { ref source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.kind().exit_code())
        }
    }
}

/// Sends logs to stderr, filtered by `KAI_LOG` (default `warn`), so stdout carries only
/// results.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints a value as one line of JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string(value)
        .map_err(|err| Error::invalid("output", format!("cannot encode JSON: {err}")))?;
    emit(text)
}

/// Writes one line to stdout, returning the write error instead of panicking as `println!`
/// does when stdout is a closed pipe or a full disk.
fn emit(line: impl std::fmt::Display) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(|err| Error::io("cannot write to", "standard output", err))
}
