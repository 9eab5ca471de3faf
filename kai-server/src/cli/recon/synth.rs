//! `kai recon synth`: synthetic scenes with known cameras to try the reconstruction on.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::ProgressBar;
use kai_core::Error;
use kai_core::image::ImageLimits;
use kai_core::recon::jobs::write_outputs;
use kai_core::recon::synthetic::{SceneOptions, SyntheticScene};

use crate::cli::emit;

/// Points sampled on the surfaces for the ground-truth model of `kai recon synth`.
const GROUND_TRUTH_POINTS: usize = 5000;
/// The folder inside OUT_DIR that receives the ground-truth model.
const GROUND_TRUTH_DIR: &str = "ground_truth";

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

pub(super) fn run_synth(args: &SynthArgs) -> Result<(), Error> {
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
