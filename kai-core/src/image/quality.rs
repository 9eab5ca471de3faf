//! Image quality assessment, which screens photos before material recognition and
//! reconstruction; [`assess`] defines the metrics.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::RgbImage;
use crate::{Error, Result};

/// Longer side, in pixels, of the luma image that sharpness and noise are measured on.
///
/// 1024 px is above the input size of recognition models (224–384 px), and a 12-megapixel
/// photo shrinks to about 1/15 of its pixels before the two neighbourhood filters run.
/// NOTE: reconstruction extracts features at higher resolutions, so blur or noise that
/// shows only above 1024 px is not detected.
const WORKING_SIDE: usize = 1024;

/// The limits a photo must meet to pass [`assess`].
///
/// Deserializing fills missing fields from [`Default`] and rejects unknown ones, so a
/// configuration file can set only the limits it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QualityThresholds {
    /// Minimum variance of the Laplacian of luma (0–255 scale), measured with the longer
    /// side scaled to at most 1024 px. A photo below it is `blurry`.
    pub min_sharpness: f32,
    /// Luma level (0–255) at or below which a pixel counts as clipped shadow.
    pub shadow_level: f32,
    /// Maximum fraction (0–1) of pixels at or below `shadow_level`. A photo above it is
    /// `underexposed`.
    pub max_shadows_clipped: f32,
    /// Luma level (0–255) at or above which a pixel counts as clipped highlight.
    pub highlight_level: f32,
    /// Maximum fraction (0–1) of pixels at or above `highlight_level`. A photo above it is
    /// `overexposed`.
    pub max_highlights_clipped: f32,
    /// Minimum mean luma as a fraction of white (0–1). A photo below it is `underexposed`.
    pub min_mean_brightness: f32,
    /// Maximum mean luma as a fraction of white (0–1). A photo above it is `overexposed`.
    pub max_mean_brightness: f32,
    /// Minimum RMS contrast, the standard deviation of luma divided by 255 (0–1). A photo
    /// below it has `low_contrast`.
    pub min_contrast: f32,
    /// Maximum noise standard deviation in luma levels (0–255), measured with the longer
    /// side scaled to at most 1024 px. A photo above it is `noisy`.
    pub max_noise: f32,
    /// Minimum length of the shorter side in pixels. A photo below it has `low_resolution`.
    pub min_short_side: u32,
    /// Minimum pixel count in megapixels. A photo below it has `low_resolution`, and the
    /// default 0 turns this rule off.
    pub min_megapixels: f32,
}

impl Default for QualityThresholds {
    /// Limits that the six real photos in `kai-core/tests/fixtures/photos` (300–640 px
    /// wide) pass by at least a factor of 2, except for the 300 px shorter side of
    /// `chelsea.jpg`. Those photos measure sharpness
    /// 177–1597, noise 0.8–4.7, mean brightness 0.24–0.51, contrast 0.10–0.29, and up to
    /// 14% clipped shadows (the black background of `astronaut.jpg`). A Gaussian blur of
    /// σ = 2 px brings the sharpness of each of them below 11.
    fn default() -> Self {
        QualityThresholds {
            min_sharpness: 50.0,
            shadow_level: 5.0,
            max_shadows_clipped: 0.3,
            highlight_level: 250.0,
            max_highlights_clipped: 0.3,
            min_mean_brightness: 0.1,
            max_mean_brightness: 0.9,
            min_contrast: 0.05,
            max_noise: 10.0,
            // The input side of common recognition models; a shorter photo is upsampled.
            min_short_side: 224,
            min_megapixels: 0.0,
        }
    }
}

impl QualityThresholds {
    /// Checks that every limit is a finite number in its range.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first invalid field and its value: a NaN or
    /// infinite value, a negative one, a fraction above 1, a luma level above 255, or
    /// bounds in the wrong order.
    pub fn validate(&self) -> Result<()> {
        check_range("min_sharpness", self.min_sharpness, 0.0, f32::INFINITY)?;
        check_range("max_noise", self.max_noise, 0.0, f32::INFINITY)?;
        check_range("min_megapixels", self.min_megapixels, 0.0, f32::INFINITY)?;

        check_range("shadow_level", self.shadow_level, 0.0, 255.0)?;
        check_range("max_shadows_clipped", self.max_shadows_clipped, 0.0, 1.0)?;
        check_range("highlight_level", self.highlight_level, 0.0, 255.0)?;
        check_range(
            "max_highlights_clipped",
            self.max_highlights_clipped,
            0.0,
            1.0,
        )?;

        check_range("min_mean_brightness", self.min_mean_brightness, 0.0, 1.0)?;
        check_range("max_mean_brightness", self.max_mean_brightness, 0.0, 1.0)?;
        check_range("min_contrast", self.min_contrast, 0.0, 1.0)?;

        if self.shadow_level >= self.highlight_level {
            return Err(Error::invalid(
                "shadow_level",
                format!(
                    "{} is not below highlight_level {}; the shadow level must be the lower one",
                    self.shadow_level, self.highlight_level
                ),
            ));
        }

        if self.min_mean_brightness > self.max_mean_brightness {
            return Err(Error::invalid(
                "min_mean_brightness",
                format!(
                    "{} is above max_mean_brightness {}; no photo could pass",
                    self.min_mean_brightness, self.max_mean_brightness
                ),
            ));
        }
        Ok(())
    }
}

fn check_range(name: &str, value: f32, min: f32, max: f32) -> Result<()> {
    if value.is_finite() && (min..=max).contains(&value) {
        return Ok(());
    }
    let expected = if max.is_infinite() {
        format!("a finite number ≥ {min}")
    } else {
        format!("a number from {min} to {max}")
    };
    Err(Error::invalid(
        name,
        format!("{value} is out of range; expected {expected}"),
    ))
}

/// A reason why a photo failed [`assess`], serialized as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum QualityIssue {
    /// Sharpness below `min_sharpness`.
    Blurry,
    /// Mean brightness below `min_mean_brightness`, or too many clipped shadows.
    Underexposed,
    /// Mean brightness above `max_mean_brightness`, or too many clipped highlights.
    Overexposed,
    /// Shorter side below `min_short_side`, or fewer megapixels than `min_megapixels`.
    LowResolution,
    /// RMS contrast below `min_contrast`.
    LowContrast,
    /// Noise estimate above `max_noise`.
    Noisy,
}

impl QualityIssue {
    /// Returns the snake_case name that serialization also uses, such as `low_resolution`.
    pub fn as_str(self) -> &'static str {
        match self {
            QualityIssue::Blurry => "blurry",
            QualityIssue::Underexposed => "underexposed",
            QualityIssue::Overexposed => "overexposed",
            QualityIssue::LowResolution => "low_resolution",
            QualityIssue::LowContrast => "low_contrast",
            QualityIssue::Noisy => "noisy",
        }
    }
}

impl std::fmt::Display for QualityIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The measurements of one photo and the verdict of [`assess`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QualityReport {
    /// Width of the assessed image in pixels.
    pub width: u32,
    /// Height of the assessed image in pixels.
    pub height: u32,
    /// Variance of the 4-neighbour Laplacian of luma (0–255 scale), measured with the
    /// longer side scaled to at most 1024 px.
    pub sharpness: f32,
    /// Fraction of pixels with luma at or below `shadow_level`.
    pub shadows_clipped: f32,
    /// Fraction of pixels with luma at or above `highlight_level`.
    pub highlights_clipped: f32,
    /// Mean luma as a fraction of white (0–1).
    pub mean_brightness: f32,
    /// RMS contrast: standard deviation of luma divided by 255.
    pub contrast: f32,
    /// Immerkær's estimate of the noise standard deviation in luma levels (0–255),
    /// measured with the longer side scaled to at most 1024 px.
    pub noise: f32,
    /// Overall quality from 0 to 1: the minimum of the rules' sub-scores.
    ///
    /// A rule's sub-score is a smoothstep of the ratio r between its metric and its
    /// threshold, taken so that r < 1 fails the rule (value / minimum, maximum / value, and
    /// for the upper brightness bound (1 − mean) / (1 − maximum)). The sub-score is
    /// 3x² − 2x³ with x = min(r / 2, 1): 0 at r = 0, 0.5 at the threshold and 1 from r = 2
    /// on. A minimum of 0 turns its rule off, and the rule then scores 1. The score is therefore
    /// below 0.5 exactly when `passed` is false, and it never rises when any one metric
    /// gets worse.
    pub score: f32,
    /// The failed rules, without repeats, in the order of the [`QualityIssue`] variants.
    pub reasons: Vec<QualityIssue>,
    /// Whether the photo met every threshold.
    pub passed: bool,
}

/// Measures `image` and checks it against `thresholds`.
///
/// The metrics are computed on luma with the Rec. 601 weights (0.299, 0.587, 0.114) that
/// JPEG uses for its Y channel, on the 0–255 scale:
///
/// - mean brightness, RMS contrast and the fractions of clipped shadows and highlights
///   over every pixel;
/// - sharpness, the variance of the 4-neighbour Laplacian, and noise, Immerkær's estimate,
///   on the luma area-averaged so its longer side is at most 1024 pixels. A fixed scale
///   makes both values depend on the scene rather than on the camera's pixel count, and
///   noise that averaging removes at that scale does not count. Smaller images are
///   measured as they are, and an image with a side under 3 pixels measures 0 for both.
///
/// The work is spread over rows with rayon.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the image has no pixels or a threshold is invalid (see
/// [`QualityThresholds::validate`]).
pub fn assess(image: &RgbImage, thresholds: &QualityThresholds) -> Result<QualityReport> {
    thresholds.validate()?;
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            "image",
            format!("the image is {width}×{height} pixels; it must have at least one pixel"),
        ));
    }
    let (luma, exposure) = measure_exposure(image, thresholds);
    let detail = measure_detail(&downscale_to_working(luma));
    let metrics = Metrics {
        width,
        height,
        exposure,
        detail,
    };
    Ok(metrics.report(thresholds))
}

/// A single-channel f32 image stored row by row.
#[derive(Debug)]
struct Plane {
    width: usize,
    height: usize,
    values: Vec<f32>,
}

/// Statistics over every pixel's luma, as fractions of the pixel count or of white.
#[derive(Debug, Clone, Copy)]
struct Exposure {
    mean_brightness: f32,
    contrast: f32,
    shadows_clipped: f32,
    highlights_clipped: f32,
}

/// Sums over the pixels of some rows; their sum over all rows gives [`Exposure`].
#[derive(Debug, Default, Clone, Copy)]
struct LumaSums {
    sum: f64,
    sum_squares: f64,
    shadows: u64,
    highlights: u64,
}

impl std::ops::Add for LumaSums {
    type Output = LumaSums;

    fn add(self, other: LumaSums) -> LumaSums {
        LumaSums {
            sum: self.sum + other.sum,
            sum_squares: self.sum_squares + other.sum_squares,
            shadows: self.shadows + other.shadows,
            highlights: self.highlights + other.highlights,
        }
    }
}

/// Converts `image` to luma and, in the same pass, computes its exposure statistics.
fn measure_exposure(image: &RgbImage, thresholds: &QualityThresholds) -> (Plane, Exposure) {
    let width = image.width() as usize;
    let height = image.height() as usize;
    let mut values = vec![0.0f32; width * height];
    let sums = image
        .as_raw()
        .par_chunks_exact(width * 3)
        .zip(values.par_chunks_exact_mut(width))
        .map(|(rgb_row, luma_row)| luma_row_sums(rgb_row, luma_row, thresholds))
        .reduce(LumaSums::default, |a, b| a + b);

    let count = (width * height) as f64;
    let mean = sums.sum / count;
    let variance = (sums.sum_squares / count - mean * mean).max(0.0);
    let exposure = Exposure {
        mean_brightness: (mean / 255.0) as f32,
        contrast: (variance.sqrt() / 255.0) as f32,
        shadows_clipped: (sums.shadows as f64 / count) as f32,
        highlights_clipped: (sums.highlights as f64 / count) as f32,
    };
    let plane = Plane {
        width,
        height,
        values,
    };
    (plane, exposure)
}

fn luma_row_sums(rgb_row: &[u8], luma_row: &mut [f32], thresholds: &QualityThresholds) -> LumaSums {
    let mut sums = LumaSums::default();
    for (rgb, luma) in rgb_row.chunks_exact(3).zip(luma_row.iter_mut()) {
        // Integer weights that sum to 1000 keep a grey pixel's luma exactly its value.
        let weighted = 299 * u32::from(rgb[0]) + 587 * u32::from(rgb[1]) + 114 * u32::from(rgb[2]);
        let value = weighted as f32 / 1000.0;
        *luma = value;
        sums.sum += f64::from(value);
        sums.sum_squares += f64::from(value) * f64::from(value);
        sums.shadows += u64::from(value <= thresholds.shadow_level);
        sums.highlights += u64::from(value >= thresholds.highlight_level);
    }
    sums
}

/// Area-averages `luma` so its longer side is at most [`WORKING_SIDE`], keeping the aspect
/// ratio; a smaller plane is returned unchanged.
fn downscale_to_working(luma: Plane) -> Plane {
    let longer = luma.width.max(luma.height);
    if longer <= WORKING_SIDE {
        return luma;
    }
    let scale = WORKING_SIDE as f64 / longer as f64;
    let width = ((luma.width as f64 * scale).round() as usize).clamp(1, WORKING_SIDE);
    let height = ((luma.height as f64 * scale).round() as usize).clamp(1, WORKING_SIDE);
    resize_area(&luma, width, height)
}

/// Resamples `plane` to `width`×`height` by averaging, for each target pixel, the source
/// pixels its footprint covers, weighted by the covered area.
fn resize_area(plane: &Plane, width: usize, height: usize) -> Plane {
    let columns = area_weights(plane.width, width);
    let mut narrowed = vec![0.0f32; width * plane.height];
    narrowed
        .par_chunks_exact_mut(width)
        .zip(plane.values.par_chunks_exact(plane.width))
        .for_each(|(target, source)| {
            for (value, taps) in target.iter_mut().zip(&columns) {
                *value = taps.iter().map(|&(x, weight)| weight * source[x]).sum();
            }
        });

    let rows = area_weights(plane.height, height);
    let mut values = vec![0.0f32; width * height];
    values
        .par_chunks_exact_mut(width)
        .zip(rows.par_iter())
        .for_each(|(target, taps)| {
            for &(y, weight) in taps {
                let source = &narrowed[y * width..(y + 1) * width];
                for (value, &s) in target.iter_mut().zip(source) {
                    *value += weight * s;
                }
            }
        });
    Plane {
        width,
        height,
        values,
    }
}

/// Returns, for each of `target` pixels along one axis, the `source` pixels that its
/// footprint overlaps, each with the overlapped fraction of the footprint as its weight.
/// The weights of each target pixel sum to 1.
fn area_weights(source: usize, target: usize) -> Vec<Vec<(usize, f32)>> {
    let step = source as f64 / target as f64;
    (0..target)
        .map(|i| {
            let start = i as f64 * step;
            let end = start + step;
            let first = start.floor() as usize;
            let last = (end.ceil() as usize).min(source);
            (first..last)
                .map(|j| {
                    let overlap = end.min(j as f64 + 1.0) - start.max(j as f64);
                    (j, (overlap.max(0.0) / step) as f32)
                })
                .collect()
        })
        .collect()
}

/// Sharpness and noise of the working-resolution luma.
#[derive(Debug, Clone, Copy)]
struct Detail {
    sharpness: f32,
    noise: f32,
}

/// Sums over the interior pixels of some rows; their sum over all rows gives [`Detail`].
#[derive(Debug, Default, Clone, Copy)]
struct FilterSums {
    laplacian: f64,
    laplacian_squares: f64,
    noise_mask_abs: f64,
}

impl std::ops::Add for FilterSums {
    type Output = FilterSums;

    fn add(self, other: FilterSums) -> FilterSums {
        FilterSums {
            laplacian: self.laplacian + other.laplacian,
            laplacian_squares: self.laplacian_squares + other.laplacian_squares,
            noise_mask_abs: self.noise_mask_abs + other.noise_mask_abs,
        }
    }
}

/// Computes the Laplacian variance and the noise estimate in one pass over the interior
/// pixels. A plane narrower or shorter than 3 pixels has no interior and measures 0 for both.
fn measure_detail(luma: &Plane) -> Detail {
    let (width, height) = (luma.width, luma.height);
    if width < 3 || height < 3 {
        return Detail {
            sharpness: 0.0,
            noise: 0.0,
        };
    }
    let sums = (1..height - 1)
        .into_par_iter()
        .map(|y| {
            let above = &luma.values[(y - 1) * width..y * width];
            let row = &luma.values[y * width..(y + 1) * width];
            let below = &luma.values[(y + 1) * width..(y + 2) * width];
            filter_row_sums(above, row, below)
        })
        .reduce(FilterSums::default, |a, b| a + b);

    let count = ((width - 2) * (height - 2)) as f64;
    let mean = sums.laplacian / count;
    let variance = (sums.laplacian_squares / count - mean * mean).max(0.0);
    // J. Immerkær, "Fast Noise Variance Estimation", Computer Vision and Image
    // Understanding 64(2):300–302, 1996: convolving with the mask M below cancels smooth image structure, and
    // for Gaussian noise of standard deviation σ, E|I∗M| = 6σ·sqrt(2/π), so
    // σ ≈ sqrt(π/2) · Σ|I∗M| / (6·(W−2)·(H−2)). Edges and fine texture also pass the mask,
    // so textured photos get a higher estimate than their true noise.
    let noise = (std::f64::consts::FRAC_PI_2).sqrt() * sums.noise_mask_abs / (6.0 * count);
    Detail {
        sharpness: variance as f32,
        noise: noise as f32,
    }
}

/// Sums the Laplacian and Immerkær's mask over the interior pixels of `row`.
///
/// The Laplacian kernel is [0 1 0; 1 −4 1; 0 1 0] and Immerkær's mask is
/// [1 −2 1; −2 4 −2; 1 −2 1].
fn filter_row_sums(above: &[f32], row: &[f32], below: &[f32]) -> FilterSums {
    let mut laplacian = 0.0f64;
    let mut laplacian_squares = 0.0f64;
    let mut noise_mask_abs = 0.0f64;
    for x in 1..row.len() - 1 {
        let center = row[x];
        let edges = above[x] + below[x] + row[x - 1] + row[x + 1];
        let corners = above[x - 1] + above[x + 1] + below[x - 1] + below[x + 1];
        let value = f64::from(edges - 4.0 * center);
        laplacian += value;
        laplacian_squares += value * value;
        noise_mask_abs += f64::from((corners - 2.0 * edges + 4.0 * center).abs());
    }
    FilterSums {
        laplacian,
        laplacian_squares,
        noise_mask_abs,
    }
}

/// Everything [`assess`] measured on one image.
#[derive(Debug, Clone, Copy)]
struct Metrics {
    width: u32,
    height: u32,
    exposure: Exposure,
    detail: Detail,
}

impl Metrics {
    fn report(&self, thresholds: &QualityThresholds) -> QualityReport {
        let ratios = self.rule_ratios(thresholds);
        let score = ratios
            .iter()
            .map(|&(_, ratio)| sub_score(ratio))
            .fold(1.0f64, f64::min);
        let mut reasons: Vec<QualityIssue> = ratios
            .iter()
            .filter(|&&(_, ratio)| ratio < 1.0)
            .map(|&(issue, _)| issue)
            .collect();
        reasons.sort();
        reasons.dedup();
        QualityReport {
            width: self.width,
            height: self.height,
            sharpness: self.detail.sharpness,
            shadows_clipped: self.exposure.shadows_clipped,
            highlights_clipped: self.exposure.highlights_clipped,
            mean_brightness: self.exposure.mean_brightness,
            contrast: self.exposure.contrast,
            noise: self.detail.noise,
            score: score as f32,
            passed: reasons.is_empty(),
            reasons,
        }
    }

    /// Returns each rule's issue and its margin ratio, which is below 1 when the rule fails.
    fn rule_ratios(&self, t: &QualityThresholds) -> [(QualityIssue, f64); 9] {
        let exposure = &self.exposure;
        let short_side = self.width.min(self.height);
        let megapixels = f64::from(self.width) * f64::from(self.height) / 1e6;
        [
            (
                QualityIssue::Blurry,
                at_least(self.detail.sharpness.into(), t.min_sharpness.into()),
            ),
            (
                QualityIssue::Underexposed,
                at_least(
                    exposure.mean_brightness.into(),
                    t.min_mean_brightness.into(),
                ),
            ),
            (
                QualityIssue::Underexposed,
                at_most(
                    exposure.shadows_clipped.into(),
                    t.max_shadows_clipped.into(),
                ),
            ),
            (
                QualityIssue::Overexposed,
                at_least(
                    1.0 - f64::from(exposure.mean_brightness),
                    1.0 - f64::from(t.max_mean_brightness),
                ),
            ),
            (
                QualityIssue::Overexposed,
                at_most(
                    exposure.highlights_clipped.into(),
                    t.max_highlights_clipped.into(),
                ),
            ),
            (
                QualityIssue::LowResolution,
                at_least(short_side.into(), t.min_short_side.into()),
            ),
            (
                QualityIssue::LowResolution,
                at_least(megapixels, t.min_megapixels.into()),
            ),
            (
                QualityIssue::LowContrast,
                at_least(exposure.contrast.into(), t.min_contrast.into()),
            ),
            (
                QualityIssue::Noisy,
                at_most(self.detail.noise.into(), t.max_noise.into()),
            ),
        ]
    }
}

/// Margin ratio of a rule `value ≥ minimum`; a minimum of 0 turns the rule off.
fn at_least(value: f64, minimum: f64) -> f64 {
    if minimum <= 0.0 {
        f64::INFINITY
    } else {
        value / minimum
    }
}

/// Margin ratio of a rule `value ≤ maximum`; a value of 0 always passes.
fn at_most(value: f64, maximum: f64) -> f64 {
    if value <= 0.0 {
        f64::INFINITY
    } else {
        maximum / value
    }
}

/// Maps a margin ratio to [0, 1]: smoothstep of ratio / 2, so 0.5 at ratio 1 and 1 from
/// ratio 2 on. It runs in f64 so a ratio below 1 never rounds up to a sub-score of 0.5.
fn sub_score(ratio: f64) -> f64 {
    let x = (ratio / 2.0).clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn plane(width: usize, height: usize, value: impl Fn(usize, usize) -> f32) -> Plane {
        let values = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| value(x, y))
            .collect();
        Plane {
            width,
            height,
            values,
        }
    }

    fn grey(width: u32, height: u32, level: u8) -> RgbImage {
        RgbImage::from_pixel(width, height, ::image::Rgb([level; 3]))
    }

    #[test]
    fn constant_plane_has_no_detail() {
        let detail = measure_detail(&plane(8, 6, |_, _| 77.0));
        assert_eq!(detail.sharpness, 0.0);
        assert_eq!(detail.noise, 0.0);
    }

    #[test]
    fn linear_ramp_has_no_detail() {
        // Both kernels sum to zero and are symmetric, so they cancel any plane a + bx + cy.
        let detail = measure_detail(&plane(9, 7, |x, y| 3.0 * x as f32 + 5.0 * y as f32));
        assert_eq!(detail.sharpness, 0.0);
        assert_eq!(detail.noise, 0.0);
    }

    #[test]
    fn checkerboard_detail_matches_hand_count() {
        // Values ±1 alternate, so the four edge neighbours of a pixel c have the value −c and
        // the four corners c. The Laplacian is −4c − 4c = −8c and the mask
        // 4c − 2·(−4c) + 4c = 16c.
        let detail = measure_detail(&plane(
            5,
            5,
            |x, y| if (x + y) % 2 == 0 { 1.0 } else { -1.0 },
        ));
        // Interior of 5×5: 9 pixels, 5 with x + y even (Laplacian −8), 4 odd (+8).
        let mean = (5.0 * -8.0 + 4.0 * 8.0) / 9.0;
        assert!(
            (detail.sharpness - (64.0 - mean * mean)).abs() < 1e-4,
            "{detail:?}"
        );
        let expected_noise = (std::f32::consts::FRAC_PI_2).sqrt() * 16.0 / 6.0;
        assert!((detail.noise - expected_noise).abs() < 1e-5, "{detail:?}");
    }

    #[test]
    fn tiny_plane_measures_zero() {
        let detail = measure_detail(&plane(2, 50, |x, _| x as f32 * 100.0));
        assert_eq!(detail.sharpness, 0.0);
        assert_eq!(detail.noise, 0.0);
    }

    #[test]
    fn exposure_of_two_level_image() {
        // Left half black, right half white: mean 0.5, standard deviation 127.5 levels.
        let image = RgbImage::from_fn(4, 3, |x, _| ::image::Rgb([if x < 2 { 0 } else { 255 }; 3]));
        let (luma, exposure) = measure_exposure(&image, &QualityThresholds::default());
        assert_eq!(luma.values[0], 0.0);
        assert_eq!(luma.values[3], 255.0);
        assert_eq!(exposure.mean_brightness, 0.5);
        assert_eq!(exposure.contrast, 0.5);
        assert_eq!(exposure.shadows_clipped, 0.5);
        assert_eq!(exposure.highlights_clipped, 0.5);
    }

    #[test]
    fn luma_uses_rec601_weights() {
        let image = RgbImage::from_pixel(1, 1, ::image::Rgb([200, 100, 50]));
        let (luma, _) = measure_exposure(&image, &QualityThresholds::default());
        let expected = 0.299 * 200.0 + 0.587 * 100.0 + 0.114 * 50.0;
        assert!(
            (luma.values[0] - expected).abs() < 1e-4,
            "{}",
            luma.values[0]
        );
    }

    #[test]
    fn area_weights_cover_each_target_once() {
        for (source, target) in [(10, 3), (4000, 1024), (7, 7), (5, 1)] {
            let weights = area_weights(source, target);
            assert_eq!(weights.len(), target);
            let mut coverage = vec![0.0f64; source];
            for taps in &weights {
                let total: f32 = taps.iter().map(|&(_, w)| w).sum();
                assert!((total - 1.0).abs() < 1e-5, "{source}→{target}: {total}");
                for &(j, w) in taps {
                    coverage[j] += f64::from(w);
                }
            }
            // Every source pixel contributes target / source of one target pixel in total.
            let share = target as f64 / source as f64;
            for c in coverage {
                assert!((c - share).abs() < 1e-5, "{source}→{target}: {c}");
            }
        }
    }

    #[test]
    fn downscale_keeps_aspect_and_mean() {
        let luma = plane(3000, 1500, |x, y| ((x * 7 + y * 3) % 256) as f32);
        let mean_before: f64 = luma.values.iter().map(|&v| f64::from(v)).sum::<f64>() / 4.5e6;
        let small = downscale_to_working(luma);
        assert_eq!((small.width, small.height), (1024, 512));
        let mean_after: f64 =
            small.values.iter().map(|&v| f64::from(v)).sum::<f64>() / (1024.0 * 512.0);
        assert!(
            (mean_before - mean_after).abs() < 0.01,
            "{mean_before} {mean_after}"
        );
    }

    #[test]
    fn working_scale_makes_sharpness_size_independent() {
        // A 4× nearest-neighbour enlargement shows the same scene with 16 times the pixels;
        // area-averaging it back to the working side restores the original exactly.
        let small = RgbImage::from_fn(1024, 768, |x, y| {
            ::image::Rgb([((x * 31 + y * 17) % 251) as u8; 3])
        });
        let large = ::image::imageops::resize(&small, 4096, 3072, ::image::imageops::Nearest);
        let thresholds = QualityThresholds::default();
        let a = assess(&small, &thresholds).unwrap();
        let b = assess(&large, &thresholds).unwrap();
        assert!(
            (a.sharpness - b.sharpness).abs() <= 1e-3 * a.sharpness,
            "{a:?} {b:?}"
        );
        assert!((a.noise - b.noise).abs() <= 1e-3 * a.noise, "{a:?} {b:?}");
    }

    #[test]
    fn sub_score_shape() {
        assert_eq!(sub_score(0.0), 0.0);
        assert_eq!(sub_score(1.0), 0.5);
        assert_eq!(sub_score(2.0), 1.0);
        assert_eq!(sub_score(f64::INFINITY), 1.0);
        assert!(sub_score(1.0 - 1e-7) < 0.5);
        let samples: Vec<f64> = (0..=40).map(|i| sub_score(f64::from(i) * 0.05)).collect();
        assert!(samples.windows(2).all(|w| w[0] < w[1]), "{samples:?}");
    }

    #[test]
    fn score_below_half_exactly_when_failed() {
        let thresholds = QualityThresholds::default();
        let metrics = |sharpness: f32| Metrics {
            width: 1000,
            height: 1000,
            exposure: Exposure {
                mean_brightness: 0.5,
                contrast: 0.3,
                shadows_clipped: 0.0,
                highlights_clipped: 0.0,
            },
            detail: Detail {
                sharpness,
                noise: 1.0,
            },
        };
        let at_threshold = metrics(thresholds.min_sharpness).report(&thresholds);
        assert!(at_threshold.passed, "{at_threshold:?}");
        assert_eq!(at_threshold.score, 0.5);
        let just_below = metrics(thresholds.min_sharpness.next_down()).report(&thresholds);
        assert_eq!(just_below.reasons, [QualityIssue::Blurry]);
        assert!(just_below.score < 0.5, "{just_below:?}");
    }

    #[test]
    fn disabled_rules_score_one() {
        assert_eq!(at_least(0.0, 0.0), f64::INFINITY);
        assert_eq!(at_most(0.0, 0.0), f64::INFINITY);
        assert_eq!(at_most(0.1, 0.0), 0.0);
    }

    #[test]
    fn flat_grey_is_low_contrast_and_blurry() {
        let report = assess(&grey(640, 480, 128), &QualityThresholds::default()).unwrap();
        assert_eq!(report.contrast, 0.0);
        assert_eq!(report.sharpness, 0.0);
        assert_eq!(report.noise, 0.0);
        assert_eq!(
            report.reasons,
            [QualityIssue::Blurry, QualityIssue::LowContrast]
        );
        assert!(!report.passed);
        assert_eq!(report.score, 0.0);
    }

    #[test]
    fn empty_image_is_rejected() {
        let err = assess(&RgbImage::new(0, 10), &QualityThresholds::default()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("0×10"), "{err}");
    }

    #[test]
    fn issue_names_match_serde() {
        for issue in [
            QualityIssue::Blurry,
            QualityIssue::Underexposed,
            QualityIssue::Overexposed,
            QualityIssue::LowResolution,
            QualityIssue::LowContrast,
            QualityIssue::Noisy,
        ] {
            let json = serde_json::to_string(&issue).unwrap();
            assert_eq!(json, format!("\"{}\"", issue.as_str()));
        }
    }

    #[test]
    fn thresholds_round_trip_camel_case() {
        let thresholds = QualityThresholds::default();
        let json = serde_json::to_value(&thresholds).unwrap();
        assert!(json.get("minSharpness").is_some(), "{json}");
        let back: QualityThresholds = serde_json::from_value(json).unwrap();
        assert_eq!(back, thresholds);
        let partial: QualityThresholds = serde_json::from_str(r#"{"maxNoise": 3.5}"#).unwrap();
        assert_eq!(partial.max_noise, 3.5);
        assert_eq!(partial.min_sharpness, thresholds.min_sharpness);
        assert!(serde_json::from_str::<QualityThresholds>(r#"{"maxNoize": 1}"#).is_err());
    }
}
