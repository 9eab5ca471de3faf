//! Dense reconstruction: depth maps by multi-view stereo on registered images, fused into a
//! coloured point cloud with normals.
//!
//! For each registered image (the reference):
//!
//! 1. The photo is resampled to a distortion-free pinhole view no larger than
//!    [`DenseOptions::max_image_size`].
//! 2. Source images are chosen among those sharing sparse points with it at a useful
//!    triangulation angle. The depth range comes from the depths of the sparse points it
//!    observes.
//! 3. A plane sweep tries fronto-parallel planes spaced uniformly in inverse depth. Each
//!    source is warped onto the reference through the plane's homography and compared by
//!    zero-mean normalized cross-correlation over a square window; the best plane wins,
//!    refined between planes by a parabola.
//!
//! The depth maps are then fused: a depth survives when enough other depth maps agree
//! with it, and the agreeing observations merge into one point.

mod fusion;
mod selection;
mod sweep;
mod view;
mod window;

use std::path::Path;

use image::RgbImage;

use self::fusion::FusionInput;
use self::sweep::{DepthMap, SweepSettings};
use self::view::View;
use crate::error::{Error, Result};
use crate::image::ImageLimits;
use crate::recon::cloud::PointCloud;
use crate::recon::progress::{Progress, ProgressFn, Stage};
use crate::recon::reconstruction::Reconstruction;

/// Largest accepted window radius; larger windows blur depth edges without gaining
/// reliability.
const MAX_WINDOW_RADIUS: usize = 15;
/// Largest accepted number of depth planes.
const MAX_DEPTH_PLANES: usize = 4096;
/// Smallest accepted longer side of the resampled images.
const MIN_IMAGE_SIZE: u32 = 16;

/// Settings of dense reconstruction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseOptions {
    /// Longer side of the images depth is computed on, in pixels; larger photos are scaled
    /// down (at least 16).
    pub max_image_size: u32,
    /// Number of source images matched against each reference image (at least 1).
    pub neighbors: usize,
    /// Number of depth planes swept between the nearest and farthest depth (3–4096).
    pub depth_planes: usize,
    /// Radius of the matching window: windows are `2 * radius + 1` pixels square (1–15).
    pub window_radius: usize,
    /// Smallest matching score (NCC, in `[-1, 1)`) for a pixel to get a depth.
    pub min_ncc: f64,
    /// Number of other depth maps that must agree with a depth (within 1 %) for it to
    /// become a point (at least 1).
    pub min_consistent_views: usize,
    /// Seed for randomized steps. The plane sweep and fusion are deterministic and draw
    /// nothing, so the result does not depend on it yet.
    pub seed: u64,
}

impl Default for DenseOptions {
    /// Images up to 1600 pixels, 4 sources, 128 planes, 7x7 windows, NCC of at least 0.5
    /// and 2 agreeing depth maps.
    fn default() -> Self {
        Self {
            max_image_size: 1600,
            neighbors: 4,
            depth_planes: 128,
            window_radius: 3,
            min_ncc: 0.5,
            min_consistent_views: 2,
            seed: 0,
        }
    }
}

impl DenseOptions {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<()> {
        if self.max_image_size < MIN_IMAGE_SIZE {
            return Err(Error::invalid(
                "dense max_image_size",
                format!("{} is below {MIN_IMAGE_SIZE}", self.max_image_size),
            ));
        }
        if self.neighbors == 0 {
            return Err(Error::invalid("dense neighbors", "0 must be at least 1"));
        }
        if !(3..=MAX_DEPTH_PLANES).contains(&self.depth_planes) {
            return Err(Error::invalid(
                "dense depth_planes",
                format!("{} is outside 3..={MAX_DEPTH_PLANES}", self.depth_planes),
            ));
        }
        if !(1..=MAX_WINDOW_RADIUS).contains(&self.window_radius) {
            return Err(Error::invalid(
                "dense window_radius",
                format!("{} is outside 1..={MAX_WINDOW_RADIUS}", self.window_radius),
            ));
        }
        if !(self.min_ncc.is_finite() && (-1.0..1.0).contains(&self.min_ncc)) {
            return Err(Error::invalid(
                "dense min_ncc",
                format!("{} is outside -1..1", self.min_ncc),
            ));
        }
        if self.min_consistent_views == 0 {
            return Err(Error::invalid(
                "dense min_consistent_views",
                "0 must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Computes a dense point cloud from a sparse reconstruction and its photos, given in the
/// order of `reconstruction.images`. The points have colours and unit normals facing the
/// cameras that saw them. Progress is reported per image for [`Stage::DepthMaps`] and
/// [`Stage::Fusion`]. Images without usable sources or depth range get no depth map; the
/// cloud is empty when no depths agree.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] for invalid `options`, fewer than two registered images,
/// an image count that differs from the registered images, an image whose size differs
/// from its camera, or an invalid camera.
pub fn densify(
    reconstruction: &Reconstruction,
    images: &[RgbImage],
    options: &DenseOptions,
    progress: Option<ProgressFn>,
) -> Result<PointCloud> {
    options.validate()?;
    check_inputs(reconstruction, images)?;
    let report = |stage, done, total| {
        if let Some(progress) = progress {
            progress(Progress { stage, done, total });
        }
    };

    let count = images.len();
    let views: Vec<View> = reconstruction
        .images
        .iter()
        .zip(images)
        .map(|(registered, image)| {
            let camera = &reconstruction.cameras[registered.camera];
            View::new(image, camera, &registered.pose, options.max_image_size)
        })
        .collect();
    let visible = selection::visible_points(reconstruction);
    let settings = SweepSettings {
        planes: options.depth_planes,
        radius: options.window_radius,
        min_ncc: options.min_ncc,
    };

    report(Stage::DepthMaps, 0, count);
    let mut sources: Vec<Vec<usize>> = Vec::with_capacity(count);
    let mut depth_maps: Vec<DepthMap> = Vec::with_capacity(count);
    for reference in 0..count {
        let chosen =
            selection::select_sources(reconstruction, &visible, reference, options.neighbors);
        let range = selection::depth_range(reconstruction, &visible, reference);
        let map = match range {
            Some(range) if !chosen.is_empty() => {
                let source_views: Vec<&View> = chosen.iter().map(|&i| &views[i]).collect();
                sweep::sweep(&views[reference], &source_views, range, &settings)
            }
            _ => DepthMap {
                width: views[reference].width,
                height: views[reference].height,
                depth: vec![0.0; views[reference].width * views[reference].height],
            },
        };
        sources.push(chosen);
        depth_maps.push(map);
        report(Stage::DepthMaps, reference + 1, count);
    }

    let inputs: Vec<FusionInput> = (0..count)
        .map(|reference| {
            let mut partners = sources[reference].clone();
            partners.extend((0..count).filter(|&other| sources[other].contains(&reference)));
            partners.sort_unstable();
            partners.dedup();
            FusionInput {
                view: &views[reference],
                depth: &depth_maps[reference],
                partners,
            }
        })
        .collect();
    report(Stage::Fusion, 0, count);
    let cloud = fusion::fuse(&inputs, options.min_consistent_views, |done| {
        report(Stage::Fusion, done + 1, count);
    });
    Ok(cloud)
}

/// Like [`densify`], reading each registered image by name from `photos_dir` within
/// `limits`.
///
/// # Errors
///
/// The errors of [`densify`], and those of [`crate::image::open`] naming the file that
/// is missing or cannot be decoded.
pub fn densify_from_dir(
    reconstruction: &Reconstruction,
    photos_dir: &Path,
    limits: &ImageLimits,
    options: &DenseOptions,
    progress: Option<ProgressFn>,
) -> Result<PointCloud> {
    options.validate()?;
    check_registered(reconstruction)?;
    let images = reconstruction
        .images
        .iter()
        .map(|image| crate::image::open(&photos_dir.join(&image.name), limits))
        .collect::<Result<Vec<_>>>()?;
    densify(reconstruction, &images, options, progress)
}

fn check_registered(reconstruction: &Reconstruction) -> Result<()> {
    let registered = reconstruction.images.len();
    if registered < 2 {
        return Err(Error::invalid(
            "dense reconstruction",
            format!("{registered} registered images; multi-view stereo needs at least 2"),
        ));
    }
    Ok(())
}

fn check_inputs(reconstruction: &Reconstruction, images: &[RgbImage]) -> Result<()> {
    check_registered(reconstruction)?;
    if images.len() != reconstruction.images.len() {
        return Err(Error::invalid(
            "dense images",
            format!(
                "{} images for {} registered images",
                images.len(),
                reconstruction.images.len()
            ),
        ));
    }
    for (registered, image) in reconstruction.images.iter().zip(images) {
        let camera = reconstruction
            .cameras
            .get(registered.camera)
            .ok_or_else(|| {
                Error::invalid(
                    "dense reconstruction",
                    format!(
                        "image {} refers to camera {} of {}",
                        registered.name,
                        registered.camera,
                        reconstruction.cameras.len()
                    ),
                )
            })?;
        camera.validate()?;
        if (image.width(), image.height()) != (camera.width, camera.height) {
            return Err(Error::invalid(
                "dense images",
                format!(
                    "{} is {}x{} but its camera is {}x{}",
                    registered.name,
                    image.width(),
                    image.height(),
                    camera.width,
                    camera.height
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
