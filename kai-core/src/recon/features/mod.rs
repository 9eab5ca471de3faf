//! Local features for structure from motion: a scale-invariant feature transform (SIFT)
//! detector and descriptor after Lowe, "Distinctive image features from scale-invariant
//! keypoints", IJCV 60(2), 2004, and descriptor matching.
//!
//! [`detect`] finds extrema of the difference of Gaussians across scale space and refines
//! them to sub-pixel position and fractional scale. It rejects low-contrast and edge
//! responses, assigns each keypoint one or more dominant gradient orientations, and
//! describes the rotated window around it by 4 × 4 histograms of 8 gradient
//! orientations. Keypoints are thus invariant to image scale and rotation, and
//! descriptors, being normalised, to an affine change of intensity (gain and offset).
//! [`match_features`] pairs descriptors by mutual nearest neighbour and Lowe's ratio
//! test.
//!
//! Coordinates are pixel coordinates in which the image spans `[0, width] × [0, height]`,
//! x to the right and y down, so the centre of the top-left pixel is `(0.5, 0.5)`.

mod descriptor;
mod detector;
mod matching;
mod orientation;
mod scale_space;
#[cfg(test)]
mod test_scene;

use image::GrayImage;
use rayon::prelude::*;

pub use matching::{FeatureMatch, MatchOptions, match_descriptors, match_features};

use crate::error::{Error, Result};
use detector::{DetectorThresholds, Extremum};
use scale_space::Plane;

/// Length of a descriptor.
pub const DESCRIPTOR_LENGTH: usize = descriptor::LENGTH;

/// Smallest width and height [`detect`] accepts, in pixels.
pub const MIN_IMAGE_SIZE: u32 = 16;

/// Octaves stop once the smaller side would drop below this many samples.
const MIN_OCTAVE_SIZE: usize = 16;

/// Blur assumed in the input image from the camera, in pixels.
const INPUT_SIGMA: f32 = 0.5;

/// A detected feature's location, scale and orientation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keypoint {
    /// Horizontal position in pixels, 0 at the left edge of the image.
    pub x: f32,
    /// Vertical position in pixels, 0 at the top edge of the image.
    pub y: f32,
    /// Standard deviation, in input pixels, of the Gaussian blur at which the feature was
    /// found. A descriptor cell is 3 times this wide and the window 12 times.
    pub scale: f32,
    /// Dominant gradient direction in radians in `[0, 2π)`, measured from +x toward +y
    /// (clockwise as displayed, since y points down).
    pub orientation: f32,
}

/// Keypoints and their descriptors, in parallel lists ordered by decreasing
/// difference-of-Gaussians response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    /// The keypoints.
    pub keypoints: Vec<Keypoint>,
    /// `descriptors[i]` describes `keypoints[i]`: unit-length gradient histograms
    /// (RootSIFT-mapped when [`SiftOptions::root_sift`] is set) scaled by 512, rounded
    /// and saturated to `u8`.
    pub descriptors: Vec<[u8; DESCRIPTOR_LENGTH]>,
}

impl Features {
    /// Returns the number of features.
    pub fn len(&self) -> usize {
        self.keypoints.len()
    }

    /// Reports whether no features were found.
    pub fn is_empty(&self) -> bool {
        self.keypoints.is_empty()
    }
}

/// Settings for [`detect`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiftOptions {
    /// Maximum number of features returned. The ones with the strongest
    /// difference-of-Gaussians response are kept.
    pub max_features: usize,
    /// The first octave: -1 doubles the image first, which adds features of scale below
    /// about 1.6 pixels at about twice the time, and 0 starts at the input resolution.
    ///
    /// NOTE: with -1 the peak memory is about 200 bytes per input pixel (13 planes of
    /// `f32` at twice the resolution), 2.4 GB for a 12-megapixel photo. Resize large
    /// photos first, or start at octave 0 (about 50 bytes per pixel).
    pub first_octave: i32,
    /// Maximum number of octaves; `None` continues while the image's smaller side is at
    /// least 16 samples.
    pub max_octaves: Option<usize>,
    /// Scale levels sampled per octave (doubling of scale).
    pub levels_per_octave: usize,
    /// Blur of each octave's first level, in that octave's samples.
    pub sigma: f32,
    /// Minimum absolute difference-of-Gaussians value at a refined extremum, for
    /// intensities in [0, 1]. This value shrinks with `levels_per_octave`, because the
    /// difference of adjacent levels does.
    pub contrast_threshold: f32,
    /// Maximum ratio of principal curvatures; extrema above it lie on edges and are
    /// rejected.
    pub edge_threshold: f32,
    /// Orientations per keypoint: every histogram peak within 80% of the highest, up to
    /// this many, gives its own feature.
    pub max_orientations: usize,
    /// Whether descriptors are mapped to RootSIFT (L1-normalised, then square-rooted), under
    /// which Euclidean distance compares descriptors by the Hellinger kernel.
    pub root_sift: bool,
}

impl Default for SiftOptions {
    fn default() -> Self {
        Self {
            max_features: 8192,
            first_octave: -1,
            max_octaves: None,
            levels_per_octave: 3,
            sigma: 1.6,
            contrast_threshold: 0.02 / 3.0,
            edge_threshold: 10.0,
            max_orientations: 2,
            root_sift: true,
        }
    }
}

impl SiftOptions {
    fn validate(&self) -> Result<()> {
        let invalid = |name: &str, reason: String| Err(Error::invalid(name, reason));
        if self.max_features == 0 {
            return invalid("max_features", "0 keeps no feature; use at least 1".into());
        }
        if !matches!(self.first_octave, -1 | 0) {
            return invalid(
                "first_octave",
                format!(
                    "{} is not supported; use -1 or 0, and resize larger images",
                    self.first_octave
                ),
            );
        }
        if self.max_octaves == Some(0) {
            return invalid(
                "max_octaves",
                "0 octaves find nothing; use at least 1 or None".into(),
            );
        }
        if self.levels_per_octave == 0 {
            return invalid(
                "levels_per_octave",
                "must be at least 1; Lowe used 3".into(),
            );
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return invalid(
                "sigma",
                format!("{} is not a positive blur; Lowe used 1.6", self.sigma),
            );
        }
        if !(self.contrast_threshold.is_finite() && self.contrast_threshold >= 0.0) {
            return invalid(
                "contrast_threshold",
                format!(
                    "{} is not a non-negative intensity difference",
                    self.contrast_threshold
                ),
            );
        }
        if !(self.edge_threshold.is_finite() && self.edge_threshold > 1.0) {
            return invalid(
                "edge_threshold",
                format!(
                    "{} is not a curvature ratio above 1; Lowe used 10",
                    self.edge_threshold
                ),
            );
        }
        if self.max_orientations == 0 {
            return invalid("max_orientations", "must be at least 1".into());
        }
        Ok(())
    }
}

/// Detects and describes SIFT features in an 8-bit grayscale image.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the image is smaller than [`MIN_IMAGE_SIZE`] on a side or
/// an option is out of range. A textureless image gives no features and no error.
pub fn detect(image: &GrayImage, options: &SiftOptions) -> Result<Features> {
    let luma: Vec<f32> = image
        .as_raw()
        .iter()
        .map(|&value| value as f32 / 255.0)
        .collect();
    detect_luma(image.width(), image.height(), &luma, options)
}

/// Detects and describes SIFT features in a row-major luma image with intensities in
/// [0, 1]; see [`detect`].
///
/// # Errors
///
/// As for [`detect`], and [`Error::InvalidInput`] when `luma` does not have `width ·
/// height` finite values.
pub fn detect_luma(
    width: u32,
    height: u32,
    luma: &[f32],
    options: &SiftOptions,
) -> Result<Features> {
    options.validate()?;
    if width < MIN_IMAGE_SIZE || height < MIN_IMAGE_SIZE {
        return Err(Error::invalid(
            "image",
            format!(
                "{width}x{height} pixels is too small for feature detection; \
                 both sides must be at least {MIN_IMAGE_SIZE} pixels"
            ),
        ));
    }
    let expected = width as usize * height as usize;
    if luma.len() != expected {
        return Err(Error::invalid(
            "luma",
            format!(
                "has {} values but a {width}x{height} image needs {expected}",
                luma.len()
            ),
        ));
    }
    if let Some(index) = luma.iter().position(|value| !value.is_finite()) {
        return Err(Error::invalid(
            "luma",
            format!("value {} at index {index} is not finite", luma[index]),
        ));
    }

    let input = Plane::new(width as usize, height as usize, luma.to_vec());
    let octaves = build_and_search_octaves(input, options);
    let mut candidates: Vec<(usize, Extremum)> = octaves
        .iter()
        .enumerate()
        .flat_map(|(index, octave)| {
            octave
                .extrema
                .iter()
                .map(move |&extremum| (index, extremum))
        })
        .collect();
    // Strongest first; the position breaks ties so that the order never depends on
    // thread scheduling.
    candidates.sort_by(|(octave_a, a), (octave_b, b)| {
        b.response
            .total_cmp(&a.response)
            .then(octave_a.cmp(octave_b))
            .then(a.level.total_cmp(&b.level))
            .then(a.y.total_cmp(&b.y))
            .then(a.x.total_cmp(&b.x))
    });
    candidates.truncate(options.max_features);

    let described: Vec<(Keypoint, [u8; DESCRIPTOR_LENGTH])> = candidates
        .par_iter()
        .flat_map_iter(|&(index, extremum)| describe_extremum(&octaves[index], &extremum, options))
        .collect();
    let (mut keypoints, mut descriptors): (Vec<_>, Vec<_>) = described.into_iter().unzip();
    keypoints.truncate(options.max_features);
    descriptors.truncate(options.max_features);
    Ok(Features {
        keypoints,
        descriptors,
    })
}

/// One octave's refined extrema and the Gaussian levels that orientation and descriptor
/// sample.
struct Octave {
    /// Octave number: samples are `2^octave` input pixels apart.
    octave: i32,
    /// Gaussian levels 1 to `levels_per_octave`, the ones extrema are assigned to.
    levels: Vec<Plane>,
    extrema: Vec<Extremum>,
}

/// Builds the scale space octave by octave. A finished octave keeps only its extrema and
/// the `levels_per_octave` Gaussian levels that orientation and descriptor sample.
fn build_and_search_octaves(input: Plane, options: &SiftOptions) -> Vec<Octave> {
    let thresholds = DetectorThresholds {
        contrast: options.contrast_threshold,
        edge_ratio: options.edge_threshold,
    };
    let levels_per_octave = options.levels_per_octave;
    let (mut base, mut base_sigma) = if options.first_octave == -1 {
        (scale_space::upsample(&input), 2.0 * INPUT_SIGMA)
    } else {
        (input, INPUT_SIGMA)
    };
    let mut octaves = Vec::new();
    let mut octave = options.first_octave;
    loop {
        let mut levels =
            scale_space::gaussian_levels(base, base_sigma, options.sigma, levels_per_octave);
        let dogs = scale_space::difference_of_gaussians(&levels);
        let extrema = detector::find_extrema(&dogs, thresholds);
        drop(dogs);
        // Level `levels_per_octave` has twice the first level's blur, so its even samples
        // start the next octave with blur `sigma` in the coarser spacing.
        let next_base = scale_space::downsample(&levels[levels_per_octave]);
        levels.truncate(levels_per_octave + 1);
        levels.remove(0);
        octaves.push(Octave {
            octave,
            levels,
            extrema,
        });
        let room = next_base.width.min(next_base.height) >= MIN_OCTAVE_SIZE;
        let allowed = options.max_octaves.is_none_or(|max| octaves.len() < max);
        if !(room && allowed) {
            break;
        }
        base = next_base;
        base_sigma = options.sigma;
        octave += 1;
    }
    octaves
}

/// Assigns orientations to an extremum and describes each, converting octave samples to
/// input pixel coordinates.
fn describe_extremum(
    octave: &Octave,
    extremum: &Extremum,
    options: &SiftOptions,
) -> Vec<(Keypoint, [u8; DESCRIPTOR_LENGTH])> {
    let levels_per_octave = options.levels_per_octave as f32;
    let sigma = options.sigma * (extremum.level / levels_per_octave).exp2();
    let level_index = (extremum.level.round() as usize).clamp(1, options.levels_per_octave) - 1;
    let image = &octave.levels[level_index];
    let spacing = (octave.octave as f32).exp2();
    orientation::orientations(
        image,
        extremum.x,
        extremum.y,
        sigma,
        options.max_orientations,
    )
    .into_iter()
    .map(|angle| {
        let keypoint = Keypoint {
            x: extremum.x * spacing + 0.5,
            y: extremum.y * spacing + 0.5,
            scale: sigma * spacing,
            orientation: angle,
        };
        let descriptor = descriptor::describe(
            image,
            extremum.x,
            extremum.y,
            sigma,
            angle,
            options.root_sift,
        );
        (keypoint, descriptor)
    })
    .collect()
}

#[cfg(test)]
mod tests;
