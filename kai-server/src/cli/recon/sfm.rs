//! `kai recon sfm`: structure from motion over a folder of photos.

use std::path::PathBuf;

use clap::Args;
use kai_core::Error;
use kai_core::image::ImageLimits;
use kai_core::recon::jobs::write_outputs;
use kai_core::recon::sfm::{ScreeningReport, reconstruct};
use kai_core::recon::{ReconstructionSummary, Stage};
use serde::Serialize;

use super::{StageBar, TierArg, photo_inputs, prepare_folder};
use crate::cli::{emit, print_json};

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
    /// A screening.json from `kai recon screen`: only the photos it accepts are used, and
    /// the ones it rejects are listed as unregistered with its reason.
    #[arg(long, value_name = "FILE")]
    screening: Option<PathBuf>,
    #[command(flatten)]
    tier: TierArg,
    /// Print the summary as one line of JSON.
    #[arg(long)]
    json: bool,
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

pub(super) fn run_sfm(args: &SfmArgs) -> Result<(), Error> {
    let tier = args.tier.resolve()?;
    let limits = ImageLimits::from_env()?;
    let mut inputs = photo_inputs(&args.photos)?;
    let screening = match &args.screening {
        Some(path) => Some(ScreeningReport::read(path)?),
        None => None,
    };
    if let Some(report) = &screening {
        inputs.retain(|input| report.accepted.iter().any(|photo| photo.name == input.name));
    }
    prepare_folder(&args.output)?;

    let bar = StageBar::new(Stage::Screening, Stage::Refinement);
    let reconstruction = reconstruct(&inputs, &tier.options.sfm, &limits, &|p| bar.report(p));
    bar.finish();
    let mut reconstruction = reconstruction?;
    if let Some(report) = screening {
        reconstruction.unregistered.extend(report.rejected);
    }

    let files = write_outputs(&reconstruction, &args.output)?;
    let summary = reconstruction.summary();
    if args.json {
        return print_json(&SfmReport {
            output: args.output.display().to_string(),
            files: &files,
            set: &tier.name,
            set_version: tier.version,
            summary: &summary,
        });
    }
    print_summary(&summary, &tier.name, tier.version)?;
    emit(format_args!(
        "wrote {} to {}",
        files.join(", "),
        args.output.display()
    ))
}

/// Prints the counts, the mean reprojection error and each unregistered photo with its
/// reason.
pub(super) fn print_summary(
    summary: &ReconstructionSummary,
    set: &str,
    version: u32,
) -> Result<(), Error> {
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
