//! Bundle adjustment of the growing model (local around the newest image, and global)
//! and the filtering of observations and points that bundle adjustment leaves poorly
//! fitted or poorly conditioned.

use super::model::Model;
use super::options::SfmOptions;
use crate::error::Result;
use crate::recon::bundle::{BundleConfig, BundleOptions, BundleReport, adjust};
use crate::recon::camera::CameraModel;

/// Levenberg-Marquardt iterations of a local bundle adjustment; it starts close to the
/// optimum, so few are needed.
const LOCAL_BA_ITERATIONS: usize = 25;

/// The intrinsics that a bundle adjustment refines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intrinsics {
    /// Held at their current values.
    Fixed,
    /// Focal length and, for the OpenCV model, distortion. The principal point stays at
    /// the image centre, where it is poorly observable from a few views.
    Refined,
}

fn bundle_options(
    options: &SfmOptions,
    max_iterations: usize,
    intrinsics: Intrinsics,
) -> BundleOptions {
    let refine = intrinsics == Intrinsics::Refined && options.refine_intrinsics;
    BundleOptions {
        max_iterations,
        loss: options.ba_loss,
        loss_scale_px: options.ba_loss_scale_px,
        refine_focal: refine,
        refine_principal_point: false,
        refine_distortion: refine && options.camera_model == CameraModel::OpenCv,
        ..BundleOptions::default()
    }
}

/// Adjusts registered image `image` and its `options.local_ba_images - 1` most connected
/// neighbours with the points they observe; images that also observe those points are
/// held constant.
pub(crate) fn local_adjust(
    model: &mut Model,
    image: usize,
    options: &SfmOptions,
) -> Result<BundleReport> {
    let mut variable = vec![image];
    variable.extend(model.most_connected(image, options.local_ba_images.saturating_sub(1)));
    let config = BundleConfig::local(&model.rec, &variable);
    adjust(
        &mut model.rec,
        &config,
        &bundle_options(options, LOCAL_BA_ITERATIONS, Intrinsics::Fixed),
    )
}

/// Adjusts every registered image and point.
pub(crate) fn global_adjust(
    model: &mut Model,
    options: &SfmOptions,
    max_iterations: usize,
    intrinsics: Intrinsics,
) -> Result<BundleReport> {
    let config = BundleConfig::global(&model.rec);
    adjust(
        &mut model.rec,
        &config,
        &bundle_options(options, max_iterations, intrinsics),
    )
}

/// Removes observations whose reprojection error exceeds `options.max_reprojection_error`
/// (or that lie behind their camera), then points whose remaining observations span less
/// than `options.min_triangulation_angle`. With `images` given, only points observed by
/// those registered images are checked. Returns the number of observations removed.
pub(crate) fn filter_points(
    model: &mut Model,
    options: &SfmOptions,
    images: Option<&[usize]>,
) -> usize {
    let points: Vec<usize> = match images {
        Some(images) => {
            let mut points: Vec<usize> = images
                .iter()
                .flat_map(|&image| model.rec.images[image].point_ids.iter().flatten().copied())
                .collect();
            points.sort_unstable();
            points.dedup();
            points
        }
        None => (0..model.rec.points.len()).collect(),
    };
    let max_error = options.max_reprojection_error;
    let mut removed = 0;
    for point in points {
        if model.rec.points[point].track.is_empty() {
            continue;
        }
        let position = model.rec.points[point].position;
        removed += model.remove_observations_where(point, |model, element| {
            model
                .error_px(&position, element)
                .is_none_or(|error| error > max_error)
        });
        let track = &model.rec.points[point].track;
        if track.is_empty() {
            continue;
        }
        if model.max_angle_deg(&position, track) < options.min_triangulation_angle {
            removed += track.len();
            model.delete_point(point);
        }
    }
    removed
}
