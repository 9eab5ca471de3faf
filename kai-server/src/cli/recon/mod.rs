//! `kai recon` (each stage of the reconstruction on its own, reading and writing the
//! files of `kai_core::recon::pipeline::files`), `kai reconstruct` (all stages in one
//! run) and `kai recon synth` (synthetic scenes to try them on).

mod reconstruct;
mod sfm;
mod stages;
mod synth;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kai_core::Error;
use kai_core::catalog::StoreOptions;
use kai_core::db::StorageConfig;
use kai_core::recon::pipeline::PipelineOptions;
use kai_core::recon::{Progress, Stage};
use kai_core::registry::{Registry, RegistrySettings, SqliteRegistry, pipeline_options};

use super::catalog::StoreArg;

pub use reconstruct::{ReconstructArgs, run_reconstruct};

/// Positions of the progress bar, which shows the fraction of the command's stages.
const BAR_STEPS: u64 = 1000;

/// `kai recon` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReconCommand {
    /// Check photos before a reconstruction: decode them under the image limits, read
    /// their EXIF focal length and apply the quality thresholds; writes screening.json.
    Screen(stages::ScreenArgs),
    /// Estimate the cameras and a sparse point cloud from photos (structure from motion),
    /// and write them as a COLMAP text model and a PLY point cloud.
    Sfm(sfm::SfmArgs),
    /// Compute depth maps of the registered photos by multi-view stereo and fuse them
    /// into a dense coloured point cloud with normals (PLY).
    Dense(stages::DenseArgs),
    /// Clean dense points and reconstruct a surface from them (screened Poisson), trimmed
    /// where no points support it (PLY mesh).
    Mesh(stages::MeshArgs),
    /// Simplify a mesh into levels of detail: lod0.ply (the full mesh), lod1.ply, ...
    Lod(stages::LodArgs),
    /// Write levels of detail (or one mesh) as GLB, PLY or OBJ model files: one file per
    /// level, GLB compressed with EXT_meshopt_compression by default.
    Export(stages::ExportArgs),
    /// Render a synthetic scene from known cameras: its photos, and its ground-truth
    /// COLMAP model in OUT_DIR/ground_truth, to try the reconstruction without a camera.
    Synth(synth::SynthArgs),
}

/// Runs a `kai recon` subcommand.
pub fn run(command: &ReconCommand) -> Result<(), Error> {
    match command {
        ReconCommand::Screen(args) => stages::run_screen(args),
        ReconCommand::Sfm(args) => sfm::run_sfm(args),
        ReconCommand::Dense(args) => stages::run_dense(args),
        ReconCommand::Mesh(args) => stages::run_mesh(args),
        ReconCommand::Lod(args) => stages::run_lod(args),
        ReconCommand::Export(args) => stages::run_export(args),
        ReconCommand::Synth(args) => synth::run_synth(args),
    }
}

/// The parameter set of a reconstruction command, and the store it lives in.
#[derive(Debug, Args)]
pub struct TierArg {
    /// The parameter set whose `recon.*` values configure the run, such as standard,
    /// premium or enterprise [default: DEFAULT_PARAMETER_SET, else standard]. Without a
    /// store the sets as shipped apply.
    #[arg(long = "tier", visible_alias = "set", value_name = "NAME")]
    tier: Option<String>,
    #[command(flatten)]
    store: StoreArg,
}

/// A resolved parameter set: its name, version and the options it gives.
struct Tier {
    name: String,
    version: u32,
    options: PipelineOptions,
}

impl TierArg {
    /// Resolves the parameter set. Without `--store`, a database or a store folder at
    /// the default path, the sets come from a registry in memory, which starts with the
    /// shipped sets.
    fn resolve(&self) -> Result<Tier, Error> {
        let root = StoreOptions::default_root(self.store.path());
        let config = StorageConfig::from_env()?;
        let settings = RegistrySettings::from_env()?;
        let registry = if config.registry.is_some() || root.is_dir() {
            Registry::open(&root, &config, settings)?
        } else if self.store.path().is_some() {
            // A mistyped --store must not silently fall back to the shipped sets.
            return Err(Error::NotFound {
                what: "store",
                name: root.display().to_string(),
                hint: " (check --store, or leave it out to use the shipped parameter sets)".into(),
            });
        } else {
            Registry::with_storage(Box::new(SqliteRegistry::in_memory()?), settings)
        };
        let resolution = registry.resolve(self.tier.as_deref(), &[])?;
        let options = pipeline_options(&resolution.values)?;
        Ok(Tier {
            name: resolution.name,
            version: resolution.version,
            options,
        })
    }
}

/// Creates the output folder, or fails naming the path when it is a file or cannot be
/// created.
fn prepare_folder(output: &Path) -> Result<(), Error> {
    if output.exists() && !output.is_dir() {
        return Err(Error::invalid(
            "output",
            format!(
                "{} is a file, not a folder; give a folder for the output files",
                output.display()
            ),
        ));
    }
    std::fs::create_dir_all(output).map_err(|err| Error::io("cannot create folder", output, err))
}

/// Checks that `output` can be a file: not a folder, with a parent folder that exists or
/// can be created. Commands check before they run, so a bad `-o` fails in a second
/// rather than after minutes of work.
fn prepare_file(output: &Path) -> Result<(), Error> {
    if output.is_dir() {
        return Err(Error::invalid(
            "output",
            format!("{} is a folder; give a file name", output.display()),
        ));
    }
    match output.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => prepare_folder(parent),
        None => Ok(()),
    }
}

/// A progress bar over the stages `first..=last`, with the stage as its message. Hidden
/// when standard error is not a terminal, as indicatif does by default.
struct StageBar {
    bar: ProgressBar,
    first: Stage,
    last: Stage,
}

impl StageBar {
    fn new(first: Stage, last: Stage) -> Self {
        let bar = ProgressBar::new(BAR_STEPS);
        bar.set_style(
            ProgressStyle::with_template("{msg:>14} [{bar:30}] {percent:>3}% ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(first.as_str());
        Self { bar, first, last }
    }

    /// Moves the bar to `progress`; a late report from another thread never moves it
    /// back.
    fn report(&self, progress: Progress) {
        self.bar.set_message(progress.stage.as_str());
        let fraction = progress.fraction_of(self.first, self.last);
        let position = (fraction * BAR_STEPS as f64).round() as u64;
        if position > self.bar.position() {
            self.bar.set_position(position);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Returns the photo folder's inputs, failing with "not found" for a missing folder.
fn photo_inputs(photos: &Path) -> Result<Vec<kai_core::recon::sfm::SfmInput>, Error> {
    if !photos.is_dir() {
        return Err(Error::NotFound {
            what: "photo folder",
            name: photos.display().to_string(),
            hint: String::new(),
        });
    }
    kai_core::recon::sfm::inputs_from_dir(photos)
}

/// Returns the file name of `path` for messages.
fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Joins file paths for a "wrote ..." line.
fn list_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
