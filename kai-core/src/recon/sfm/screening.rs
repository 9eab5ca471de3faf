//! Screening: decoding each photo under the image limits, reading its focal length from
//! EXIF, checking its quality, and downscaling it to the size features are detected at.
//! A photo that fails any step is left out with the reason instead of failing the run.

use std::path::Path;
use std::sync::Mutex;

use image::RgbImage;
use image::imageops::FilterType;
use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use super::input::{ImageSource, SfmInput};
use super::options::SfmOptions;
use crate::error::{Error, Result};
use crate::image::ImageLimits;
use crate::recon::exif;
use crate::recon::export::write_atomically;
use crate::recon::progress::{Progress, ProgressFn, Stage};
use crate::recon::reconstruction::UnregisteredImage;

/// A photo that passed screening, kept at the resolution features are detected at.
#[derive(Debug, Clone)]
pub(crate) struct ScreenedImage {
    /// Name of the photo.
    pub name: String,
    /// Index into the caller's inputs.
    pub input: usize,
    /// Width of the decoded photo in pixels, after the EXIF orientation.
    pub width: u32,
    /// Height of the decoded photo in pixels, after the EXIF orientation.
    pub height: u32,
    /// Focal length in pixels of the original photo, from EXIF.
    pub focal_px: Option<f64>,
    /// The photo downscaled so its longer side is at most `max_image_size`.
    pub working: RgbImage,
}

/// A photo that passed screening, as `kai recon screen` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedPhoto {
    /// Name of the photo.
    pub name: String,
    /// Width in pixels, after the EXIF orientation.
    pub width: u32,
    /// Height in pixels, after the EXIF orientation.
    pub height: u32,
    /// Focal length in pixels from EXIF, when the photo has one.
    pub focal_px: Option<f64>,
}

/// Result of screening: the accepted photos, and the rejected ones with the reason. It is
/// the `screening.json` file that `kai recon screen` writes and `kai recon sfm --screening` reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScreeningReport {
    /// Photos that passed, in input order.
    pub accepted: Vec<AcceptedPhoto>,
    /// Photos left out, in input order, with the reason.
    pub rejected: Vec<UnregisteredImage>,
}

impl ScreeningReport {
    /// Writes the report to `path` as pretty-printed JSON, creating its folder.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|err| Error::Internal(format!("cannot encode the screening report: {err}")))?;
        write_atomically(path, |out| writeln!(out, "{text}"))
    }

    /// Reads a report that [`Self::write`] or `kai recon screen` wrote.
    pub fn read(path: &Path) -> Result<Self> {
        Error::require_path(path, "screening report")?;
        let text =
            std::fs::read_to_string(path).map_err(|err| Error::io("cannot read", path, err))?;
        serde_json::from_str(&text).map_err(|err| {
            Error::invalid(
                "screening report",
                format!("{} is not a screening report: {err}", path.display()),
            )
        })
    }
}

/// Screens `inputs` as structure from motion does (decoding under `limits`, EXIF focal
/// length, the quality thresholds of `options`), without keeping the pixels.
pub fn screen_photos(
    inputs: &[SfmInput],
    options: &SfmOptions,
    limits: &ImageLimits,
    progress: ProgressFn,
) -> Result<ScreeningReport> {
    options.validate()?;
    limits.validate()?;
    let (passed, rejected) = screen_with(inputs, options, limits, progress, false);
    Ok(ScreeningReport {
        accepted: passed
            .into_iter()
            .map(|image| AcceptedPhoto {
                name: image.name,
                width: image.width,
                height: image.height,
                focal_px: image.focal_px,
            })
            .collect(),
        rejected: rejected.into_iter().map(|(_, image)| image).collect(),
    })
}

/// The result of screening one input.
enum Screened {
    Passed(ScreenedImage),
    Rejected(usize, UnregisteredImage),
}

/// Screens every input in parallel. Returns the photos that passed, in input order, and
/// the ones left out with their input index and reason.
pub(crate) fn screen(
    inputs: &[SfmInput],
    options: &SfmOptions,
    limits: &ImageLimits,
    progress: ProgressFn,
) -> (Vec<ScreenedImage>, Vec<(usize, UnregisteredImage)>) {
    screen_with(inputs, options, limits, progress, true)
}

/// Screens every input; `keep_pixels` keeps the downscaled photo for feature detection.
fn screen_with(
    inputs: &[SfmInput],
    options: &SfmOptions,
    limits: &ImageLimits,
    progress: ProgressFn,
    keep_pixels: bool,
) -> (Vec<ScreenedImage>, Vec<(usize, UnregisteredImage)>) {
    let done = Mutex::new(0usize);
    let total = inputs.len();
    progress(Progress {
        stage: Stage::Screening,
        done: 0,
        total,
    });
    let results: Vec<Screened> = inputs
        .par_iter()
        .enumerate()
        .map(|(index, input)| {
            let result = match screen_one(index, input, options, limits, keep_pixels) {
                Ok(image) => image,
                Err(err) => Screened::Rejected(
                    index,
                    UnregisteredImage {
                        name: input.name.clone(),
                        reason: format!("cannot be decoded: {err}"),
                    },
                ),
            };
            // The lock keeps the reported counts increasing across threads.
            let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *done += 1;
            progress(Progress {
                stage: Stage::Screening,
                done: *done,
                total,
            });
            result
        })
        .collect();

    let mut passed = Vec::new();
    let mut rejected = Vec::new();
    for result in results {
        match result {
            Screened::Passed(image) => passed.push(image),
            Screened::Rejected(index, image) => rejected.push((index, image)),
        }
    }
    (passed, rejected)
}

fn screen_one(
    index: usize,
    input: &SfmInput,
    options: &SfmOptions,
    limits: &ImageLimits,
    keep_pixels: bool,
) -> Result<Screened> {
    let bytes = match &input.source {
        ImageSource::Path(path) => crate::image::read_file(path, limits)?,
        ImageSource::Bytes(bytes) => bytes.clone(),
    };
    let photo = crate::image::decode(&bytes, limits)?;
    let (width, height) = photo.dimensions();
    if let Some(thresholds) = &options.quality {
        let report = crate::image::assess(&photo, thresholds)?;
        if !report.passed {
            let reasons: Vec<String> = report
                .reasons
                .iter()
                .map(|issue| explain(*issue, &report, thresholds))
                .collect();
            return Ok(Screened::Rejected(
                index,
                UnregisteredImage {
                    name: input.name.clone(),
                    reason: format!("failed quality screening: {}", reasons.join(", ")),
                },
            ));
        }
    }
    let focal_px = exif::focal_length_from_bytes(&bytes, width, height).map(|focal| focal.pixels);
    drop(bytes);
    let working = if keep_pixels {
        downscale(photo, options.max_image_size)
    } else {
        RgbImage::new(0, 0)
    };
    Ok(Screened::Passed(ScreenedImage {
        name: input.name.clone(),
        input: index,
        width,
        height,
        focal_px,
        working,
    }))
}

/// Scales `photo` down so its longer side is at most `max_side`, averaging over each
/// output pixel's footprint (a triangle filter widened by the scale factor).
fn downscale(photo: RgbImage, max_side: u32) -> RgbImage {
    let (width, height) = photo.dimensions();
    let longer = width.max(height);
    if longer <= max_side {
        return photo;
    }
    let factor = f64::from(max_side) / f64::from(longer);
    let new_width = ((f64::from(width) * factor).round() as u32).max(1);
    let new_height = ((f64::from(height) * factor).round() as u32).max(1);
    image::imageops::resize(&photo, new_width, new_height, FilterType::Triangle)
}

/// Names a quality issue with the measurement and the registry parameter it broke, so a
/// user sees which `quality.*` value to change or which photos to retake.
fn explain(
    issue: crate::image::QualityIssue,
    report: &crate::image::QualityReport,
    limits: &crate::image::QualityThresholds,
) -> String {
    use crate::image::QualityIssue;
    let detail = match issue {
        QualityIssue::Blurry => format!(
            "sharpness {:.1} < quality.min_sharpness {}",
            report.sharpness, limits.min_sharpness
        ),
        QualityIssue::Underexposed => format!(
            "mean brightness {:.2}, clipped shadows {:.2}; limits quality.min_mean_brightness \
             {} and quality.max_shadows_clipped {}",
            report.mean_brightness,
            report.shadows_clipped,
            limits.min_mean_brightness,
            limits.max_shadows_clipped
        ),
        QualityIssue::Overexposed => format!(
            "mean brightness {:.2}, clipped highlights {:.2}; limits \
             quality.max_mean_brightness {} and quality.max_highlights_clipped {}",
            report.mean_brightness,
            report.highlights_clipped,
            limits.max_mean_brightness,
            limits.max_highlights_clipped
        ),
        QualityIssue::LowResolution => format!(
            "{}x{} px; quality.min_short_side is {} px and quality.min_megapixels {}",
            report.width, report.height, limits.min_short_side, limits.min_megapixels
        ),
        QualityIssue::LowContrast => format!(
            "contrast {:.3} < quality.min_contrast {}",
            report.contrast, limits.min_contrast
        ),
        QualityIssue::Noisy => format!(
            "noise {:.1} > quality.max_noise {}",
            report.noise, limits.max_noise
        ),
    };
    format!("{issue} ({detail})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscale_caps_longer_side() {
        let photo = RgbImage::new(400, 300);
        let small = downscale(photo, 200);
        assert_eq!(small.dimensions(), (200, 150));
        let kept = downscale(RgbImage::new(100, 50), 200);
        assert_eq!(kept.dimensions(), (100, 50));
    }

    #[test]
    fn report_round_trips_through_a_new_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stages").join("screening.json");
        let report = ScreeningReport {
            accepted: vec![AcceptedPhoto {
                name: "a.jpg".into(),
                width: 400,
                height: 300,
                focal_px: Some(350.0),
            }],
            rejected: vec![UnregisteredImage {
                name: "b.jpg".into(),
                reason: "too dark".into(),
            }],
        };
        report.write(&path).unwrap();
        assert_eq!(ScreeningReport::read(&path).unwrap(), report);
    }

    #[test]
    fn report_read_rejects_missing_and_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("screening.json");
        let err = ScreeningReport::read(&missing).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotFound {
                    what: "screening report",
                    ..
                }
            ),
            "{err}"
        );

        std::fs::write(&missing, "{\"accepted\": 3}").unwrap();
        let err = ScreeningReport::read(&missing).unwrap_err().to_string();
        assert!(err.contains("is not a screening report"), "{err}");
        assert!(err.contains("screening.json"), "{err}");
    }
}
