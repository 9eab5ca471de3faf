//! `kai quality`.

use std::path::{Path, PathBuf};

use clap::Args;
use kai_core::Error;
use kai_core::image::{ImageLimits, QualityReport, QualityThresholds, assess, open};
use serde::Serialize;

use super::{emit, print_json};

const EXIT_STATUS_HELP: &str = "\
Exit status: 0 when every photo was read and assessed, even if some fail the check (their \
reasons say why). 2 when a photo could not be read or decoded, after the other photos are \
reported. An error that stops the command before any photo, such as an invalid threshold \
or KAI_MAX_IMAGE_BYTES / KAI_MAX_IMAGE_PIXELS value, exits with its own status (2 for \
invalid input). KAI_MAX_IMAGE_BYTES and KAI_MAX_IMAGE_PIXELS bound each photo's file size \
and pixel count.";

/// Arguments of `kai quality`.
#[derive(Debug, Args)]
// Negative thresholds then reach `validate`, which names the field, instead of clap
// suggesting `-- -1`.
#[command(after_help = EXIT_STATUS_HELP, allow_negative_numbers = true)]
pub struct QualityArgs {
    /// Photos to assess: JPEG, PNG, WebP, BMP or TIFF files.
    #[arg(required = true, value_name = "PHOTO")]
    photos: Vec<PathBuf>,
    /// Print `{"reports": [...]}` as one line of JSON instead of a table. A photo that could
    /// not be read gets `path`, `error` and `code` in place of its measurements.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    thresholds: ThresholdArgs,
}

/// Flags for the fields of [`QualityThresholds`], with its defaults.
#[derive(Debug, Args)]
#[command(next_help_heading = "Thresholds")]
struct ThresholdArgs {
    /// Minimum variance of the Laplacian of luma (0–255 levels), measured with the longer
    /// side at most 1024 px.
    #[arg(long, value_name = "VARIANCE", default_value_t = QualityThresholds::default().min_sharpness)]
    min_sharpness: f32,
    /// Luma level (0–255) at or below which a pixel counts as clipped shadow.
    #[arg(long, value_name = "LEVEL", default_value_t = QualityThresholds::default().shadow_level)]
    shadow_level: f32,
    /// Maximum fraction (0–1) of clipped shadow pixels.
    #[arg(long, value_name = "FRACTION", default_value_t = QualityThresholds::default().max_shadows_clipped)]
    max_shadows_clipped: f32,
    /// Luma level (0–255) at or above which a pixel counts as clipped highlight.
    #[arg(long, value_name = "LEVEL", default_value_t = QualityThresholds::default().highlight_level)]
    highlight_level: f32,
    /// Maximum fraction (0–1) of clipped highlight pixels.
    #[arg(long, value_name = "FRACTION", default_value_t = QualityThresholds::default().max_highlights_clipped)]
    max_highlights_clipped: f32,
    /// Minimum mean luma as a fraction of white (0–1).
    #[arg(long, value_name = "FRACTION", default_value_t = QualityThresholds::default().min_mean_brightness)]
    min_mean_brightness: f32,
    /// Maximum mean luma as a fraction of white (0–1).
    #[arg(long, value_name = "FRACTION", default_value_t = QualityThresholds::default().max_mean_brightness)]
    max_mean_brightness: f32,
    /// Minimum RMS contrast: standard deviation of luma divided by 255 (0–1).
    #[arg(long, value_name = "FRACTION", default_value_t = QualityThresholds::default().min_contrast)]
    min_contrast: f32,
    /// Maximum estimated noise standard deviation in luma levels (0–255).
    #[arg(long, value_name = "LEVELS", default_value_t = QualityThresholds::default().max_noise)]
    max_noise: f32,
    /// Minimum length of the shorter side in pixels.
    #[arg(long, value_name = "PIXELS", default_value_t = QualityThresholds::default().min_short_side)]
    min_short_side: u32,
    /// Minimum size in megapixels. 0 turns this rule off.
    #[arg(long, value_name = "MEGAPIXELS", default_value_t = QualityThresholds::default().min_megapixels)]
    min_megapixels: f32,
}

impl ThresholdArgs {
    fn to_thresholds(&self) -> QualityThresholds {
        QualityThresholds {
            min_sharpness: self.min_sharpness,
            shadow_level: self.shadow_level,
            max_shadows_clipped: self.max_shadows_clipped,
            highlight_level: self.highlight_level,
            max_highlights_clipped: self.max_highlights_clipped,
            min_mean_brightness: self.min_mean_brightness,
            max_mean_brightness: self.max_mean_brightness,
            min_contrast: self.min_contrast,
            max_noise: self.max_noise,
            min_short_side: self.min_short_side,
            min_megapixels: self.min_megapixels,
        }
    }
}

/// One photo and the outcome of reading and assessing it.
struct PhotoResult {
    path: String,
    outcome: Result<QualityReport, Error>,
}

/// One entry of `--json` output: the report's fields, or `error` and `code`.
#[derive(Serialize)]
struct PhotoJson<'a> {
    path: &'a str,
    #[serde(flatten)]
    report: Option<&'a QualityReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
}

#[derive(Serialize)]
struct ReportsJson<'a> {
    reports: Vec<PhotoJson<'a>>,
}

/// Assesses every photo and prints the results. A photo that cannot be read is reported in
/// its place, and the run then ends with an invalid-input error after all output.
pub fn run(args: &QualityArgs) -> Result<(), Error> {
    let thresholds = args.thresholds.to_thresholds();
    thresholds.validate()?;
    let limits = ImageLimits::from_env()?;

    let results: Vec<PhotoResult> = args
        .photos
        .iter()
        .map(|path| assess_photo(path, &limits, &thresholds))
        .collect();
    if args.json {
        let reports = results.iter().map(photo_json).collect();
        print_json(&ReportsJson { reports })?;
    } else {
        print_table(&results)?;
    }

    let failed = results.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        return Err(Error::invalid(
            "photos",
            format!(
                "{failed} of {} photos could not be read or decoded; the output lists the error of each",
                results.len()
            ),
        ));
    }
    Ok(())
}

fn assess_photo(path: &Path, limits: &ImageLimits, thresholds: &QualityThresholds) -> PhotoResult {
    let outcome = open(path, limits).and_then(|image| assess(&image, thresholds));
    let path = path.display().to_string();
    if let Err(err) = &outcome {
        // The error is part of the output, so the log repeats it only at debug level.
        tracing::debug!(%path, error = %err, "failed to read or assess photo");
    }
    PhotoResult { path, outcome }
}

fn photo_json(result: &PhotoResult) -> PhotoJson<'_> {
    let (report, error, code) = match &result.outcome {
        Ok(report) => (Some(report), None, None),
        Err(err) => (None, Some(err.to_string()), Some(err.kind().code())),
    };
    PhotoJson {
        path: &result.path,
        report,
        error,
        code,
    }
}

/// Prints one line per photo: path, score with two decimals, and the failed rules, "ok" or
/// the error.
fn print_table(results: &[PhotoResult]) -> Result<(), Error> {
    let width = results
        .iter()
        .map(|r| r.path.chars().count())
        .chain(["PATH".len()])
        .max()
        .unwrap_or(0);
    emit(format_args!("{:<width$}  {:>5}  RESULT", "PATH", "SCORE"))?;
    for result in results {
        let (score, verdict) = match &result.outcome {
            Ok(report) => (format!("{:.2}", report.score), verdict(report)),
            Err(err) => ("-".to_owned(), format!("error: {err}")),
        };
        emit(format_args!(
            "{:<width$}  {score:>5}  {verdict}",
            result.path
        ))?;
    }
    Ok(())
}

fn verdict(report: &QualityReport) -> String {
    if report.reasons.is_empty() {
        return "ok".to_owned();
    }
    let names: Vec<&str> = report.reasons.iter().map(|r| r.as_str()).collect();
    names.join(", ")
}
