//! `kai recon sfm` and `kai recon synth`: structure from motion over a folder of photos,
//! and synthetic scenes to try it on.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kai_core::Error;
use kai_core::catalog::StoreOptions;
use kai_core::db::StorageConfig;
use kai_core::image::ImageLimits;
use kai_core::recon::jobs::write_outputs;
use kai_core::recon::sfm::{SfmOptions, inputs_from_dir, reconstruct};
use kai_core::recon::synthetic::{SceneOptions, SyntheticScene};
use kai_core::recon::{Progress, ReconstructionSummary};
use kai_core::registry::{Registry, RegistrySettings, SqliteRegistry, sfm_options};
use serde::Serialize;

use super::catalog::StoreArg;
use super::{emit, print_json};

/// Points sampled on the surfaces for the ground-truth model of `kai recon synth`.
const GROUND_TRUTH_POINTS: usize = 5000;
/// The folder inside OUT_DIR that receives the ground-truth model.
const GROUND_TRUTH_DIR: &str = "ground_truth";
/// Positions of the progress bar, which shows the fraction of the whole run.
const BAR_STEPS: u64 = 1000;

/// `kai recon` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReconCommand {
    /// Estimate the cameras and a sparse point cloud from photos of an object (structure
    /// from motion), and write them as a COLMAP text model and a PLY point cloud.
    Sfm(SfmArgs),
    /// Render a synthetic scene from known cameras: its photos, and its ground-truth
    /// COLMAP model in OUT_DIR/ground_truth, to try `kai recon sfm` without a camera.
    Synth(SynthArgs),
}

/// Arguments of `kai recon sfm`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when a model was written, even if some photos could not be registered (the \
summary lists them with the reason). 2 for invalid input, such as a folder without photos \
or a capture that cannot be reconstructed (the message names the cause). 3 for a missing \
folder or parameter set.")]
pub struct SfmArgs {
    /// Folder of photos (JPEG, PNG, WebP, BMP, TIFF); subfolders are not read.
    photos: PathBuf,
    /// Folder that receives cameras.txt, images.txt, points3D.txt and points.ply; created
    /// if missing, and existing files of those names are replaced.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// The parameter set whose `recon.*` values configure the reconstruction, such as
    /// standard, premium or enterprise [default: DEFAULT_PARAMETER_SET, else standard].
    /// Without a store the sets as shipped apply.
    #[arg(long, value_name = "NAME")]
    set: Option<String>,
    #[command(flatten)]
    store: StoreArg,
    /// Print the summary as one line of JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kai recon synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Folder that receives the photos (image_000.png, ...) and ground_truth/.
    output: PathBuf,
    /// Number of photos, taken from a ring of cameras around the objects (1 to 1000).
    #[arg(long, default_value_t = SceneOptions::default().images)]
    images: usize,
    /// Seed of the layout, textures, cameras and lighting; the same seed gives the same
    /// photos.
    #[arg(long, default_value_t = SceneOptions::default().seed)]
    seed: u64,
    /// Photo width in pixels (16 to 8192).
    #[arg(long, default_value_t = SceneOptions::default().width)]
    width: u32,
    /// Photo height in pixels (16 to 8192).
    #[arg(long, default_value_t = SceneOptions::default().height)]
    height: u32,
    /// Arc of azimuths the cameras cover, in degrees (10 to 360). Neighbouring photos
    /// should differ by at most about 15 degrees for reliable matching.
    #[arg(long, value_name = "DEGREES", default_value_t = SceneOptions::default().arc_degrees)]
    arc_degrees: f64,
}

/// The `--json` output of `kai recon sfm`.
#[derive(Serialize)]
struct SfmReport<'a> {
    /// The output folder.
    output: String,
    /// The files written there.
    files: &'a [String],
    /// The parameter set and version that configured the run.
    set: &'a str,
    set_version: u32,
    #[serde(flatten)]
    summary: &'a ReconstructionSummary,
}

/// Runs a `kai recon` subcommand.
pub fn run(command: &ReconCommand) -> Result<(), Error> {
    match command {
        ReconCommand::Sfm(args) => run_sfm(args),
        ReconCommand::Synth(args) => run_synth(args),
    }
}

/// Creates the output folder, or fails naming the path when it is a file or cannot be
/// created.
fn prepare_output(output: &std::path::Path) -> Result<(), Error> {
    if output.exists() && !output.is_dir() {
        return Err(Error::invalid(
            "output",
            format!(
                "{} is a file, not a folder; give a folder for the model files",
                output.display()
            ),
        ));
    }
    std::fs::create_dir_all(output).map_err(|err| Error::io("cannot create folder", output, err))
}

fn run_sfm(args: &SfmArgs) -> Result<(), Error> {
    let (set, version, options) = resolve_options(&args.store, args.set.as_deref())?;
    let limits = ImageLimits::from_env()?;
    if !args.photos.is_dir() {
        return Err(Error::NotFound {
            what: "photo folder",
            name: args.photos.display().to_string(),
            hint: String::new(),
        });
    }
    let inputs = inputs_from_dir(&args.photos)?;
    // The output folder is made before the run, so a bad `-o` fails in a second rather
    // than after minutes of reconstruction.
    prepare_output(&args.output)?;

    let bar = progress_bar();
    let handle = bar.clone();
    let on_progress = move |progress: Progress| {
        handle.set_message(progress.stage.as_str());
        let position = (progress.fraction() * BAR_STEPS as f64).round() as u64;
        // Stages report from several threads, so a late report must not move the bar
        // back.
        if position > handle.position() {
            handle.set_position(position);
        }
    };
    let reconstruction = reconstruct(&inputs, &options, &limits, &on_progress);
    bar.finish_and_clear();
    let reconstruction = reconstruction?;

    let files = write_outputs(&reconstruction, &args.output)?;
    let summary = reconstruction.summary();
    if args.json {
        return print_json(&SfmReport {
            output: args.output.display().to_string(),
            files: &files,
            set: &set,
            set_version: version,
            summary: &summary,
        });
    }
    print_summary(&summary, &set, version)?;
    emit(format_args!(
        "wrote {} to {}",
        files.join(", "),
        args.output.display()
    ))
}

/// Returns the reconstruction options of the parameter set `set`: its name, version and
/// `recon.*` values. Without `--store`, a database or a store folder at the default path,
/// the sets come from a registry in memory, which starts with the shipped sets.
fn resolve_options(
    store: &StoreArg,
    set: Option<&str>,
) -> Result<(String, u32, SfmOptions), Error> {
    let root = StoreOptions::default_root(store.path());
    let config = StorageConfig::from_env()?;
    let settings = RegistrySettings::from_env()?;
    let registry = if config.registry.is_some() || root.is_dir() {
        Registry::open(&root, &config, settings)?
    } else if store.path().is_some() {
        // A mistyped --store must not silently fall back to the shipped sets.
        return Err(Error::NotFound {
            what: "store",
            name: root.display().to_string(),
            hint: " (check --store, or leave it out to use the shipped parameter sets)".into(),
        });
    } else {
        Registry::with_storage(Box::new(SqliteRegistry::in_memory()?), settings)
    };
    let resolution = registry.resolve(set, &[])?;
    let options = sfm_options(&resolution.values)?;
    Ok((resolution.name, resolution.version, options))
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(BAR_STEPS);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {percent:>3}% ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("screening");
    bar
}

/// Prints the counts, the mean reprojection error and each unregistered photo with its
/// reason.
fn print_summary(summary: &ReconstructionSummary, set: &str, version: u32) -> Result<(), Error> {
    emit(format_args!(
        "registered {} of {} photos with parameter set {set} version {version}",
        summary.registered_images, summary.images
    ))?;
    emit(format_args!(
        "{} points, {} observations, mean track length {:.2}, mean reprojection error {:.3} px",
        summary.points,
        summary.observations,
        summary.mean_track_length,
        summary.mean_reprojection_error
    ))?;
    if !summary.unregistered.is_empty() {
        emit("unregistered photos:")?;
        for photo in &summary.unregistered {
            emit(format_args!("  {}: {}", photo.name, photo.reason))?;
        }
    }
    Ok(())
}

fn run_synth(args: &SynthArgs) -> Result<(), Error> {
    let options = SceneOptions {
        images: args.images,
        seed: args.seed,
        width: args.width,
        height: args.height,
        arc_degrees: args.arc_degrees,
        ..SceneOptions::default()
    };
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("rendering {} photos", options.images));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    check_synth_output(&args.output)?;
    let limits = ImageLimits::from_env()?;
    let pixels = u64::from(options.width) * u64::from(options.height);
    if pixels > limits.max_pixels {
        return Err(Error::invalid(
            "size",
            format!(
                "{}x{} is {pixels} pixels, over the limit of {} that `kai recon sfm` reads \
                 (KAI_MAX_IMAGE_PIXELS)",
                options.width, options.height, limits.max_pixels
            ),
        ));
    }
    let scene = SyntheticScene::generate(&options);
    spinner.finish_and_clear();
    let scene = scene?;

    let photos = scene.write_images(&args.output)?;
    let truth_dir = args.output.join(GROUND_TRUTH_DIR);
    write_ground_truth(&scene, &truth_dir)?;
    emit(format_args!(
        "wrote {} photo(s) of {}x{} to {} and the ground-truth model to {}",
        photos.len(),
        options.width,
        options.height,
        args.output.display(),
        truth_dir.display()
    ))
}

/// Rejects an output folder that already contains files, so photos of an earlier scene
/// cannot mix with the new ones.
fn check_synth_output(output: &Path) -> Result<(), Error> {
    if output.exists() && !output.is_dir() {
        return Err(Error::invalid(
            "output",
            format!("{} is a file, not a folder", output.display()),
        ));
    }
    let occupied = std::fs::read_dir(output)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if occupied {
        return Err(Error::invalid(
            "output",
            format!(
                "{} is not empty; give a new or empty folder so photos of another scene do \
                 not mix with these",
                output.display()
            ),
        ));
    }
    Ok(())
}

fn write_ground_truth(scene: &SyntheticScene, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|err| Error::io("cannot create folder", dir, err))?;
    write_outputs(&scene.ground_truth(GROUND_TRUTH_POINTS), dir).map(|_| ())
}
