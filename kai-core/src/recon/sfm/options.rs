//! Settings of incremental structure from motion.

use crate::error::{Error, Result};
use crate::image::QualityThresholds;
use crate::recon::bundle::LossFunction;
use crate::recon::camera::CameraModel;

/// Settings of [`reconstruct`](super::reconstruct). Pixel values refer to the photos'
/// original resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct SfmOptions {
    /// Longer side, in pixels, that photos are downscaled to before feature detection;
    /// smaller photos keep their size.
    pub max_image_size: u32,
    /// Maximum number of features per photo, the strongest kept.
    pub max_features: usize,
    /// Lowe's ratio: maximum ratio of the nearest to the second-nearest descriptor
    /// distance, in (0, 1].
    pub match_ratio: f32,
    /// Minimum number of geometrically verified matches for an image pair to count.
    pub min_pair_inliers: usize,
    /// Inlier threshold of the two-view RANSAC, in pixels.
    pub ransac_threshold_px: f64,
    /// Probability that RANSAC drew at least one outlier-free sample when it stops.
    pub ransac_confidence: f64,
    /// Maximum RANSAC samples per estimate.
    pub ransac_max_iterations: usize,
    /// Inlier threshold of image registration (PnP RANSAC), in pixels.
    pub pnp_threshold_px: f64,
    /// Minimum number of 2D-3D inliers to register an image.
    pub min_registration_inliers: usize,
    /// Minimum triangulation angle of a 3D point, in degrees.
    pub min_triangulation_angle: f64,
    /// Maximum reprojection error of an observation kept after bundle adjustment, in
    /// pixels.
    pub max_reprojection_error: f64,
    /// Maximum Levenberg-Marquardt iterations of a global bundle adjustment.
    pub ba_max_iterations: usize,
    /// Robust loss of bundle adjustment.
    pub ba_loss: LossFunction,
    /// Scale of the robust loss, in pixels: residuals above it count less than squared.
    pub ba_loss_scale_px: f64,
    /// Refines focal lengths, principal points and distortion in global bundle
    /// adjustment; otherwise they keep their prior values.
    pub refine_intrinsics: bool,
    /// Number of images, the newest included, that local bundle adjustment optimises after
    /// each registration.
    pub local_ba_images: usize,
    /// Intrinsic model of the estimated cameras.
    pub camera_model: CameraModel,
    /// Seed of every random choice (RANSAC samples), so runs repeat exactly.
    pub seed: u64,
    /// Quality screening of the photos before feature detection; `None` skips it.
    pub quality: Option<QualityThresholds>,
}

impl Default for SfmOptions {
    fn default() -> Self {
        Self {
            max_image_size: 1600,
            max_features: 4000,
            match_ratio: 0.8,
            min_pair_inliers: 30,
            ransac_threshold_px: 2.0,
            ransac_confidence: 0.9999,
            ransac_max_iterations: 10_000,
            pnp_threshold_px: 4.0,
            min_registration_inliers: 30,
            min_triangulation_angle: 1.5,
            max_reprojection_error: 4.0,
            ba_max_iterations: 50,
            ba_loss: LossFunction::Cauchy,
            ba_loss_scale_px: 1.0,
            refine_intrinsics: true,
            local_ba_images: 6,
            camera_model: CameraModel::OpenCv,
            seed: 0,
            quality: None,
        }
    }
}

impl SfmOptions {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first setting out of range, with its value.
    pub fn validate(&self) -> Result<()> {
        if self.max_image_size < 16 {
            return Err(Error::invalid(
                "max_image_size",
                format!(
                    "{} pixels is too small for feature detection; use at least 16",
                    self.max_image_size
                ),
            ));
        }
        if self.max_features == 0 {
            return Err(Error::invalid(
                "max_features",
                "0 keeps no feature; use at least 1",
            ));
        }
        if !(self.match_ratio > 0.0 && self.match_ratio <= 1.0) {
            return Err(Error::invalid(
                "match_ratio",
                format!("{} is not in (0, 1]; Lowe's value is 0.8", self.match_ratio),
            ));
        }

        check_count("min_pair_inliers", self.min_pair_inliers, 8)?;
        check_count("min_registration_inliers", self.min_registration_inliers, 4)?;
        check_count("ransac_max_iterations", self.ransac_max_iterations, 1)?;
        check_count("ba_max_iterations", self.ba_max_iterations, 1)?;
        check_count("local_ba_images", self.local_ba_images, 1)?;
        check_positive("ransac_threshold_px", self.ransac_threshold_px)?;
        check_positive("pnp_threshold_px", self.pnp_threshold_px)?;
        check_positive("max_reprojection_error", self.max_reprojection_error)?;
        check_positive("ba_loss_scale_px", self.ba_loss_scale_px)?;

        if !(self.ransac_confidence > 0.0 && self.ransac_confidence < 1.0) {
            return Err(Error::invalid(
                "ransac_confidence",
                format!(
                    "{} is not a probability in (0, 1); a typical value is 0.9999",
                    self.ransac_confidence
                ),
            ));
        }
        if !(self.min_triangulation_angle.is_finite()
            && (0.0..90.0).contains(&self.min_triangulation_angle))
        {
            return Err(Error::invalid(
                "min_triangulation_angle",
                format!(
                    "{} degrees is not in [0, 90); a typical value is 1.5",
                    self.min_triangulation_angle
                ),
            ));
        }
        if let Some(quality) = &self.quality {
            quality.validate()?;
        }
        Ok(())
    }
}

fn check_count(name: &str, value: usize, min: usize) -> Result<()> {
    if value < min {
        return Err(Error::invalid(
            name,
            format!("{value} is below the minimum of {min}"),
        ));
    }
    Ok(())
}

fn check_positive(name: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::invalid(
            name,
            format!("{value} is not a positive finite number of pixels"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SfmOptions::default().validate().expect("valid defaults");
    }

    #[test]
    fn bad_values_are_named() {
        let cases: Vec<(&str, SfmOptions)> = vec![
            (
                "max_image_size",
                SfmOptions {
                    max_image_size: 8,
                    ..SfmOptions::default()
                },
            ),
            (
                "match_ratio",
                SfmOptions {
                    match_ratio: 1.5,
                    ..SfmOptions::default()
                },
            ),
            (
                "ransac_threshold_px",
                SfmOptions {
                    ransac_threshold_px: f64::NAN,
                    ..SfmOptions::default()
                },
            ),
            (
                "ransac_confidence",
                SfmOptions {
                    ransac_confidence: 1.0,
                    ..SfmOptions::default()
                },
            ),
            (
                "min_registration_inliers",
                SfmOptions {
                    min_registration_inliers: 2,
                    ..SfmOptions::default()
                },
            ),
            (
                "min_triangulation_angle",
                SfmOptions {
                    min_triangulation_angle: -1.0,
                    ..SfmOptions::default()
                },
            ),
        ];
        for (name, options) in cases {
            let err = options.validate().expect_err(name);
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }
}
